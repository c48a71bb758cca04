// The deltafs command line: serve, mount, status.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Command, InvalidArgumentError } from 'commander'
import { StorageNode } from '../storage-node/storage-node.js'
import { LevelVolumeLog } from '../storage-node/level-volume-log.js'
import { Mount } from '../mount/mount.js'
import { fetchStatus } from '../mount/control-socket.js'
import { TokenStore } from '../storage-node/token-store.js'
import { keyFromPassphrase, readKeyFile } from '../codec/volume-key.js'
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

function positiveInt (value: string): number {
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive whole number')
  return n
}

function seconds (value: string): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 3600) throw new InvalidArgumentError('must be a number of seconds from 0 to 3600')
  return n
}

function readSecretFile (file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim()
  } catch (err) {
    throw new DeltafsError('BAD_ARGUMENT', `cannot read ${what} file ${file}: ${(err as Error).message}`)
  }
}

/**
 * Runs a resource until SIGINT/SIGTERM, or until it fails for good, then
 * closes it once and exits.
 */
async function runUntilSignal (resource: { close (): Promise<void> }, failed?: Promise<DeltafsError>, ended?: Promise<void>): Promise<void> {
  let failure: DeltafsError | undefined
  void failed?.then(err => { failure = err; process.emit('SIGTERM') })
  void ended?.then(() => { log.info('the mount point was unmounted: stopping'); process.emit('SIGTERM') })
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
  if (failure) {
    process.stderr.write(`deltafs: ${failure.message}\n`)
    process.exit(3)
  }
  // The FUSE thread or a gRPC handle can outlive close(); the daemon is done.
  process.exit(0)
}

const program = new Command()
program.name('deltafs').description('A FUSE filesystem that syncs block-level deltas through a storage node').showHelpAfterError()
  // Bad arguments exit with 2, as the README promises (commander's own is 1);
  // help and version are not errors. Subcommands inherit this.
  .exitOverride(err => { process.exit(err.exitCode === 0 ? 0 : 2) })

program.command('serve')
  .description('run a storage node')
  .requiredOption('--data <dir>', 'directory for the volume logs')
  .option('--listen <host:port>', 'address to listen on', hostPort, '127.0.0.1:7070')
  .option('--tls-cert <file>', 'PEM certificate chain for TLS')
  .option('--tls-key <file>', 'PEM private key for TLS')
  .option('--tls-client-ca <file>', 'require client certificates signed by this CA (mTLS)')
  .option('--insecure', 'allow plaintext on a non-loopback address')
  .option('--max-frame-bytes <n>', 'largest transaction frame accepted', positiveInt)
  .option('--max-inflight-bytes <n>', 'frame bytes one connection may have waiting to be stored', positiveInt)
  .option('--max-node-inflight-bytes <n>', 'frame bytes all connections together may have waiting to be stored', positiveInt)
  .option('--max-connections-per-token <n>', 'open streams allowed per token', positiveInt)
  .action(async (opts: { data: string; listen: string; tlsCert?: string; tlsKey?: string; tlsClientCa?: string; insecure?: boolean; maxFrameBytes?: number; maxInflightBytes?: number; maxNodeInflightBytes?: number; maxConnectionsPerToken?: number }) => {
    const node = new StorageNode({
      listen: opts.listen,
      log: new LevelVolumeLog(path.resolve(opts.data, 'log')),
      tokens: TokenStore.forDataDir(path.resolve(opts.data)),
      tls: { cert: opts.tlsCert, key: opts.tlsKey, clientCa: opts.tlsClientCa, insecure: opts.insecure },
      limits: {
        ...(opts.maxFrameBytes ? { maxFrameBytes: opts.maxFrameBytes } : {}),
        ...(opts.maxInflightBytes ? { maxInflightBytes: opts.maxInflightBytes } : {}),
        ...(opts.maxNodeInflightBytes ? { maxNodeInflightBytes: opts.maxNodeInflightBytes } : {}),
        ...(opts.maxConnectionsPerToken ? { maxConnectionsPerToken: opts.maxConnectionsPerToken } : {}),
      },
    })
    await node.open()
    await runUntilSignal(node)
  })

program.command('mount')
  .description('mount VOLUME at MOUNTPOINT and keep it in sync (runs in the foreground)')
  .argument('<volume>', 'volume name')
  .argument('<mountpoint>', 'an existing, empty directory')
  .requiredOption('--node <host:port>', 'storage node address', hostPort)
  .option('--data <dir>', 'directory for the backing files and the journal', defaultDataDir())
  .option('--token-file <file>', 'file holding the volume access token (or set DELTAFS_TOKEN)')
  .option('--key-file <file>', 'volume key for end-to-end encryption: 32 bytes, hex or base64')
  .option('--passphrase-file <file>', 'derive the volume key from the passphrase in this file (or set DELTAFS_PASSPHRASE)')
  .option('--tls-ca <file>', 'CA certificate that signed the node\'s TLS certificate')
  .option('--tls-cert <file>', 'client certificate for mTLS')
  .option('--tls-key <file>', 'client private key for mTLS')
  .option('--insecure', 'allow plaintext to a non-loopback node')
  .option('--record-budget-mib <n>', 'space for previous versions kept while a rewrite is sent as a delta (default 4096)', positiveInt)
  .option('--record-budget-seconds <n>', 'how long a previous version may wait for its rewrite to end (default 600)', positiveInt)
  .option('--allow-other', 'let other users use the mount, with permissions checked as on a local disk (root, or user_allow_other in /etc/fuse.conf)')
  .option('--attr-cache <seconds>', 'how long the kernel may trust attributes it has for an open file before asking again; a path is looked up afresh at every use (default 1, 0 = never trust)', seconds)
  .action(async (volume: string, mountpoint: string, opts: { node: string; data: string; tokenFile?: string; keyFile?: string; passphraseFile?: string; tlsCa?: string; tlsCert?: string; tlsKey?: string; insecure?: boolean; recordBudgetMib?: number; recordBudgetSeconds?: number; allowOther?: boolean; attrCache?: number }) => {
    const token = opts.tokenFile ? readSecretFile(opts.tokenFile, 'token') : process.env.DELTAFS_TOKEN
    const passphrase = opts.passphraseFile ? readSecretFile(opts.passphraseFile, 'passphrase') : process.env.DELTAFS_PASSPHRASE
    if (opts.keyFile && passphrase) throw new DeltafsError('BAD_ARGUMENT', 'give either --key-file or a passphrase, not both')
    const key = opts.keyFile ? readKeyFile(opts.keyFile) : passphrase ? keyFromPassphrase(passphrase, volume) : undefined
    const mount = new Mount({
      volume, mountpoint, node: opts.node, dataDir: opts.data, token: token || undefined, key,
      tls: { ca: opts.tlsCa, cert: opts.tlsCert, key: opts.tlsKey, insecure: opts.insecure },
      allowOther: opts.allowOther ?? false,
      ...(opts.attrCache !== undefined ? { attrCacheSeconds: opts.attrCache } : {}),
      recordBudget: {
        ...(opts.recordBudgetMib ? { maxBytes: opts.recordBudgetMib * 2 ** 20 } : {}),
        ...(opts.recordBudgetSeconds ? { maxAgeMs: opts.recordBudgetSeconds * 1000 } : {}),
      },
    })
    await mount.open()
    await runUntilSignal(mount, mount.failed, mount.unmounted)
  })

const token = program.command('token').description('manage volume access tokens on a storage node')
token.command('create')
  .description('create an access token for VOLUME; prints it once (only its hash is stored)')
  .argument('<volume>', 'volume name')
  .requiredOption('--data <dir>', 'the storage node\'s data directory')
  .option('--read-only', 'the token can subscribe but not push')
  .action((volume: string, opts: { data: string; readOnly?: boolean }) => {
    process.stdout.write(TokenStore.forDataDir(path.resolve(opts.data)).create(volume, Boolean(opts.readOnly)) + '\n')
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
      ['rewrites held', s.heldRewrites], ['read-only', s.readOnly ? 'yes' : 'no'],
      ['last pushed seq', s.lastPushedSeq], ['last applied seq', s.lastAppliedSeq],
      ['bytes written', s.bytesWritten], ['bytes captured', s.bytesCaptured],
      ['bytes journaled', s.bytesJournaled], ['bytes pushed', s.bytesPushed],
      ['transactions applied', s.txApplied], ['transactions refused', s.txRefused],
      ['heals requested', s.healsRequested],
    ]
    if (s.lastError) lines.push(['last error', s.lastError])
    const conflicts = Array.isArray(s.conflicts) ? s.conflicts as Array<Record<string, string>> : []
    lines.push(['conflicts', conflicts.length])
    for (const [k, v] of lines) process.stdout.write(`${k.padEnd(22)} ${String(v)}\n`)
    for (const c of conflicts) {
      process.stdout.write(c.copy
        ? `  ${c.at}  ${c.path}: the version of ${c.device} is kept as ${c.copy}\n`
        : `  ${c.at}  ${c.path}: deleted or renamed on ${c.device} while changed elsewhere; the change was kept\n`)
    }
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
