// Two error kinds cross layers: DeltafsError (stable code, for the CLI, the
// journal and the wire) and FsError (an errno, for the FUSE edge).
import os from 'node:os'

export type DeltafsErrorCode =
  | 'BAD_MESSAGE' | 'BAD_ARGUMENT' | 'BAD_PATH' | 'BAD_FRAME' | 'UNSUPPORTED_CODEC'
  | 'MOUNTPOINT' | 'JOURNAL' | 'LISTEN' | 'CLOSED' | 'APPLY' | 'NOT_RUNNING'
  | 'KEY' | 'AUTH' | 'TLS' | 'BASE_MISMATCH'

export class DeltafsError extends Error {
  readonly code: DeltafsErrorCode
  constructor (code: DeltafsErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = 'DeltafsError'
  }
}

export class FsError extends Error {
  /** A positive errno value, e.g. os.constants.errno.ENOENT. */
  readonly errno: number
  constructor (errno: number, message?: string) {
    super(message ?? `errno ${errno}`)
    this.errno = errno
    this.name = 'FsError'
  }
}

const errnoByCode = os.constants.errno as Record<string, number>

/**
 * The one place an error becomes a FUSE status: a negative errno. Node fs
 * errors carry their code; anything unknown is EIO, never EPERM.
 */
export function toErrno (err: unknown): { errno: number; known: boolean } {
  if (err instanceof FsError) return { errno: -err.errno, known: true }
  const code = (err as NodeJS.ErrnoException | null)?.code
  if (typeof code === 'string' && errnoByCode[code] !== undefined) return { errno: -errnoByCode[code], known: true }
  return { errno: -errnoByCode.EIO!, known: false }
}

export function isErrno (err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === code
}
