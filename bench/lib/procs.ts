// Starts the processes a benchmark needs (storage node, deltafs mounts,
// bindfs) as real child processes and makes sure they end: every start
// registers a stop in a Cleanup, which stops by PID and unmounts, also when
// the benchmark fails.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fetchStatus } from '../../src/mount/control-socket.js'
import { DAEMON_NODE_FLAGS } from '../../src/cli/daemon-flags.js'
import { killRunningCommands, repoRoot, runCmd, sleep, waitFor } from './common.js'

export const deltafsBin = path.join(repoRoot, 'bin', 'deltafs.js')

/** Stops registered resources in reverse order of registration, once each. */
export class Cleanup {
  private readonly steps: Array<{ what: string; fn: () => Promise<void> | void }> = []

  constructor () { active.add(this) }

  add (what: string, fn: () => Promise<void> | void): void { this.steps.push({ what, fn }) }

  async run (): Promise<void> {
    while (this.steps.length > 0) {
      const step = this.steps.pop()!
      try {
        await step.fn()
      } catch (err) {
        process.stderr.write(`cleanup: ${step.what}: ${(err as Error).message}\n`)
      }
    }
    active.delete(this)
  }
}

const active = new Set<Cleanup>()

/** Runs every Cleanup not yet run (on SIGINT/SIGTERM). */
export async function runAllCleanups (): Promise<void> {
  killRunningCommands()
  await Promise.all([...active].map(c => c.run()))
}

export interface Proc {
  child: ChildProcess
  pid: number
  logFile: string
  log (): string
  exited: Promise<number | null>
  /** SIGTERM by PID, SIGKILL after graceMs. */
  stop (graceMs?: number): Promise<void>
}

function alive (child: ChildProcess): boolean { return child.exitCode === null && child.signalCode === null }

export function spawnLogged (cmd: string, args: string[], logFile: string): Proc {
  const fd = fs.openSync(logFile, 'a')
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd] })
  fs.closeSync(fd)
  if (child.pid === undefined) throw new Error(`could not start ${cmd}`)
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  return {
    child,
    pid: child.pid,
    logFile,
    exited,
    log: () => { try { return fs.readFileSync(logFile, 'utf8') } catch { return '' } },
    async stop (graceMs = 10_000) {
      if (!alive(child)) return
      process.kill(child.pid!, 'SIGTERM')
      const timer = setTimeout(() => { if (alive(child)) process.kill(child.pid!, 'SIGKILL') }, graceMs)
      await exited
      clearTimeout(timer)
    },
  }
}

async function waitForLog (proc: Proc, pattern: RegExp, what: string, timeoutMs = 20_000): Promise<RegExpExecArray> {
  return waitFor(what, () => {
    if (!alive(proc.child)) throw new Error(`${what}: process exited with ${proc.child.exitCode}:\n${proc.log().slice(-3000)}`)
    return pattern.exec(proc.log())
  }, timeoutMs, 25)
}

export function isMounted (mountpoint: string): boolean {
  const mounts = fs.readFileSync('/proc/self/mounts', 'utf8')
  const want = path.resolve(mountpoint)
  return mounts.split('\n').some(l => l.split(' ')[1] === want)
}

/** Detaches a FUSE mount left behind, if any. */
export function forceUnmount (mountpoint: string): void {
  if (!isMounted(mountpoint)) return
  try { execFileSync('fusermount', ['-u', mountpoint], { stdio: 'ignore', timeout: 10_000 }) } catch {
    try { execFileSync('fusermount', ['-uz', mountpoint], { stdio: 'ignore', timeout: 10_000 }) } catch { /* gone */ }
  }
}

export interface NodeHandle extends Proc { address: string; dataDir: string }

/** nodeArgs go to node itself, before the script (e.g. --cpu-prof). */
export async function startNode (cleanup: Cleanup, dataDir: string, nodeArgs: string[] = []): Promise<NodeHandle> {
  fs.mkdirSync(dataDir, { recursive: true })
  const proc = spawnLogged(process.execPath, [...DAEMON_NODE_FLAGS, ...nodeArgs, deltafsBin, 'serve', '--data', dataDir, '--listen', '127.0.0.1:0'], path.join(dataDir, 'node.log'))
  cleanup.add(`storage node pid ${proc.pid}`, () => proc.stop())
  // The "listening" log line (pino JSON) carries the bound address.
  const m = await waitForLog(proc, /^\{.*"msg":"listening".*\}$/m, 'storage node to listen')
  const address = (JSON.parse(m[0]) as { address?: string }).address
  if (!address || !/^127\.0\.0\.1:\d+$/.test(address)) throw new Error(`storage node logged an unexpected address: ${m[0]}`)
  return Object.assign(proc, { address, dataDir })
}

export type Status = Record<string, number | string | boolean>

export interface MountHandle extends Proc {
  mountpoint: string
  dataDir: string
  /** The backing directory (<data>/<volume>/files). */
  backing: string
  status (): Promise<Status>
}

export async function startMount (cleanup: Cleanup, volume: string, mountpoint: string, dataDir: string, node: string, nodeArgs: string[] = [], mountArgs: string[] = []): Promise<MountHandle> {
  fs.mkdirSync(mountpoint, { recursive: true })
  fs.mkdirSync(dataDir, { recursive: true })
  // DELTAFS_BENCH_MOUNT_ARGS: extra node options for every mount (e.g. --cpu-prof --cpu-prof-dir=DIR).
  const envArgs = (process.env.DELTAFS_BENCH_MOUNT_ARGS ?? '').split(/\s+/).filter(Boolean)
  const proc = spawnLogged(process.execPath, [...DAEMON_NODE_FLAGS, ...envArgs, ...nodeArgs, deltafsBin, 'mount', volume, mountpoint, '--node', node, '--data', dataDir, ...mountArgs], path.join(dataDir, 'mount.log'))
  cleanup.add(`deltafs mount pid ${proc.pid} at ${mountpoint}`, async () => {
    await proc.stop()
    forceUnmount(mountpoint)
  })
  await waitForLog(proc, /"msg":"mounted"/, `deltafs mount of ${mountpoint}`)
  const handle = Object.assign(proc, {
    mountpoint,
    dataDir,
    backing: path.join(dataDir, volume, 'files'),
    status: () => fetchStatus(mountpoint) as Promise<Status>,
  })
  await waitFor('mount to connect to the storage node', async () => (await handle.status()).connected === true, 20_000, 50)
  return handle
}

/**
 * Nothing left to push: no transaction in the outbox and none held back
 * (a new file's writes are held until a short grace after its last close,
 * so pendingTx alone can be 0 while a whole file still waits).
 */
export function settled (s: Status): boolean {
  return s.pendingTx === 0 && Number(s.heldRewrites ?? 0) === 0
}

/** Waits until the mount has nothing left to push (see settled); returns the ms it took. */
export async function drain (m: MountHandle, timeoutMs: number): Promise<number> {
  const t0 = Date.now()
  await waitFor(`deltafs outbox of ${m.mountpoint} to drain`, async () => settled(await m.status()), timeoutMs, 20)
  return Date.now() - t0
}

export interface BindfsHandle extends Proc { mountpoint: string; source: string; options: string[] }

/**
 * bindfs in the foreground (-f) so that it has a PID of its own to stop;
 * unmounted with fusermount -u, then stopped by PID if it lingers.
 */
export async function startBindfs (cleanup: Cleanup, source: string, mountpoint: string, options: string[], logFile: string): Promise<BindfsHandle> {
  const args = ['-f', ...(options.length > 0 ? ['-o', options.join(',')] : []), source, mountpoint]
  const proc = await startPassthrough(cleanup, 'bindfs', args, source, mountpoint, logFile)
  return Object.assign(proc, { mountpoint, source, options })
}

/** The fuse-native session and Passthrough of a deltafs mount, alone (dist/bench/fuse-floor.js). */
export async function startFuseFloor (cleanup: Cleanup, source: string, mountpoint: string, logFile: string, cacheNames = false): Promise<Proc & { mountpoint: string }> {
  const proc = await startPassthrough(cleanup, process.execPath, [path.join(repoRoot, 'dist', 'bench', 'fuse-floor.js'), source, mountpoint, ...(cacheNames ? ['--cache-names'] : [])], source, mountpoint, logFile)
  return Object.assign(proc, { mountpoint })
}

/** Starts a FUSE passthrough process of source on mountpoint and waits for the mount. */
async function startPassthrough (cleanup: Cleanup, cmd: string, args: string[], source: string, mountpoint: string, logFile: string): Promise<Proc> {
  fs.mkdirSync(source, { recursive: true })
  fs.mkdirSync(mountpoint, { recursive: true })
  const name = path.basename(cmd)
  const proc = spawnLogged(cmd, args, logFile)
  const stop = async (): Promise<void> => {
    forceUnmount(mountpoint)
    await Promise.race([proc.exited, sleep(5000)])
    await proc.stop(3000)
  }
  cleanup.add(`${name} pid ${proc.pid} at ${mountpoint}`, stop)
  await waitFor(`${name} mount of ${mountpoint}`, () => {
    if (!alive(proc.child)) throw new Error(`${name} exited with ${proc.child.exitCode}: ${proc.log()}`)
    return isMounted(mountpoint)
  }, 15_000, 25)
  return proc
}

export interface ProcIo { rchar: number; wchar: number; readBytes: number; writeBytes: number }

/** /proc/<pid>/io of a process (needs root or the same user). */
export function procIo (pid: number): ProcIo {
  const text = fs.readFileSync(`/proc/${pid}/io`, 'utf8')
  const get = (k: string): number => Number(new RegExp(`^${k}: (\\d+)$`, 'm').exec(text)?.[1] ?? NaN)
  return { rchar: get('rchar'), wchar: get('wchar'), readBytes: get('read_bytes'), writeBytes: get('write_bytes') }
}

export function ioDelta (a: ProcIo, b: ProcIo): ProcIo {
  return { rchar: b.rchar - a.rchar, wchar: b.wchar - a.wchar, readBytes: b.readBytes - a.readBytes, writeBytes: b.writeBytes - a.writeBytes }
}

/** Resident set size of a process in bytes. */
export function procRss (pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) * 1024 : NaN
}

/**
 * VmRSS (current), VmHWM (the kernel's peak RSS since start), and the RSS
 * split into RssAnon (heap, malloc, V8) and RssFile (mapped files, e.g.
 * LevelDB's mmap'd tables: page cache the kernel can drop), in bytes.
 */
export function procMem (pid: number): { rss: number; hwm: number; anon: number; file: number } {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (k: string): number => { const m = new RegExp(`^${k}:\\s+(\\d+) kB$`, 'm').exec(text); return m ? Number(m[1]) * 1024 : NaN }
  return { rss: kb('VmRSS'), hwm: kb('VmHWM'), anon: kb('RssAnon'), file: kb('RssFile') + kb('RssShmem') }
}

/** CPU seconds (user + system) per thread name (/proc/<pid>/task/<tid>/comm; same-named threads summed). */
export function threadCpuSeconds (pid: number): Record<string, number> {
  const out: Record<string, number> = {}
  let tids: string[]
  try { tids = fs.readdirSync(`/proc/${pid}/task`) } catch { return out }
  for (const tid of tids) {
    try {
      const comm = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim()
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      // The main thread carries the process name; call it that.
      const name = tid === String(pid) ? `main (${comm})` : comm
      out[name] = (out[name] ?? 0) + (Number(fields[11]) + Number(fields[12])) / 100
    } catch { /* thread ended */ }
  }
  return out
}

/** CPU seconds (user + system) a process has used so far. */
export function procCpuSeconds (pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const ticks = Number(fields[11]) + Number(fields[12])
  return ticks / 100
}

export interface WorkerResult { ms: number; bytes?: number; ops?: number; writesMs?: number; value?: number }

const workerJs = new URL('../worker.js', import.meta.url).pathname

/** Runs one timed I/O job in a separate process (dist/bench/worker.js), killed after timeoutMs. */
export async function runWorker (op: string, args: Record<string, unknown>, timeoutMs: number): Promise<WorkerResult> {
  const res = await runCmd(process.execPath, [workerJs, op, JSON.stringify(args)], { timeoutMs })
  const last = res.stdout.trim().split('\n').pop() ?? ''
  return JSON.parse(last) as WorkerResult
}
