// The deltafs command line: serve, mount, status.
import os from 'node:os'
import path from 'node:path'
import { Command, InvalidArgumentError } from 'commander'
import { StorageNode } from '../storage-node/storage-node.js'
import { LevelVolumeLog } from '../storage-node/level-volume-log.js'
import { Mount } from '../mount/mount.js'
import { fetchStatus } from '../mount/control-socket.js'
import { parseHostPort } from '../rpc/service.js'
import { DeltafsError } from '../util/errors.js'
import { logger } from '../util/log.js'

const log = logger('cli')

function hostPort (value: string): string {
  try { parseHostPort(value) } catch (err) { throw new InvalidArgumentError((err as Error).message) }
  return value
}

function defaultDataDir (): string {
  const base = process.env.XDG_DATA_HOME ?? path.join(os.homedir(), '.local', 'share')
  return path.join(base, 'deltafs')
}

/** Runs a resource until SIGINT/SIGTERM, then closes it once. */
async function runUntilSignal (resource: { close (): Promise<void> }): Promise<void> {
  await new Promise<void>(resolve => {
    const stop = (signal: string): void => {
      log.info({ signal }, 'stopping')
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      resolve()
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
  })
  await resource.close()
  // The FUSE thread or a gRPC handle can outlive close(); the daemon is done.
  process.exit(0)
}

const program = new Command()
program.name('deltafs').description('A FUSE filesystem that syncs block-level deltas through a storage node').showHelpAfterError()

program.command('serve')
  .description('run a storage node')
  .requiredOption('--data <dir>', 'directory for the volume logs')
  .option('--listen <host:port>', 'address to listen on', hostPort, '127.0.0.1:7070')
  .action(async (opts: { data: string; listen: string }) => {
    const node = new StorageNode({ listen: opts.listen, log: new LevelVolumeLog(path.resolve(opts.data, 'log')) })
    await node.open()
    await runUntilSignal(node)
  })

program.command('mount')
  .description('mount VOLUME at MOUNTPOINT and keep it in sync (runs in the foreground)')
  .argument('<volume>', 'volume name')
  .argument('<mountpoint>', 'an existing, empty directory')
  .requiredOption('--node <host:port>', 'storage node address', hostPort)
  .option('--data <dir>', 'directory for the backing files and the journal', defaultDataDir())
  .action(async (volume: string, mountpoint: string, opts: { node: string; data: string }) => {
    const mount = new Mount({ volume, mountpoint, node: opts.node, dataDir: opts.data })
    await mount.open()
    await runUntilSignal(mount)
  })

program.command('status')
  .description('show the sync state of a running mount')
  .argument('<mountpoint>', 'where the volume is mounted')
  .option('--json', 'print JSON')
  .action(async (mountpoint: string, opts: { json?: boolean }) => {
    const s = await fetchStatus(mountpoint)
    if (opts.json) {
      process.stdout.write(JSON.stringify(s, null, 2) + '\n')
      return
    }
    const lines: Array<[string, unknown]> = [
      ['volume', s.volume], ['mountpoint', s.mountpoint], ['node', s.node],
      ['connected', s.connected ? 'yes' : 'no'],
      ['pending', `${String(s.pendingTx)} transactions, ${String(s.pendingBytes)} bytes`],
      ['last pushed seq', s.lastPushedSeq], ['last applied seq', s.lastAppliedSeq],
      ['bytes written', s.bytesWritten], ['bytes captured', s.bytesCaptured],
      ['bytes journaled', s.bytesJournaled], ['bytes pushed', s.bytesPushed],
      ['transactions applied', s.txApplied], ['transactions refused', s.txRefused],
    ]
    if (s.lastError) lines.push(['last error', s.lastError])
    for (const [k, v] of lines) process.stdout.write(`${k.padEnd(22)} ${String(v)}\n`)
  })

program.parseAsync().catch((err: unknown) => {
  if (err instanceof DeltafsError) {
    process.stderr.write(`deltafs: ${err.message}\n`)
    process.exit(2)
  }
  log.error({ err }, 'failed')
  process.stderr.write(`deltafs: ${(err as Error).message ?? String(err)}\n`)
  process.exit(1)
})
