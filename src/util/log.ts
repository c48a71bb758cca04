// One root pino logger writing to stderr; modules take a child so that every
// line names where it came from.
import { pino, type Logger } from 'pino'

const root: Logger = pino(
  { level: process.env.DELTAFS_LOG_LEVEL ?? 'info', base: { pid: process.pid } },
  pino.destination({ fd: 2, sync: true }),
)

export function logger (module: string): Logger {
  return root.child({ module })
}

export type { Logger }
