// Starts real deltafs processes for integration tests and makes sure they
// end: every handle is stopped by PID in teardown, mounts are unmounted.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { fetchStatus } from '../../src/mount/control-socket.js'
import { DAEMON_NODE_FLAGS } from '../../src/cli/daemon-flags.js'

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url))
export const deltafsBin = path.join(repoRoot, 'bin', 'deltafs.js')

export async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

/** Polls fn until it returns a truthy value; throws after timeoutMs. */
export async function waitFor<T> (what: string, fn: () => T | Promise<T>, timeoutMs = 10_000, everyMs = 25): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  let lastErr: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v) return v as NonNullable<T>
    } catch (err) { lastErr = err }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`)
    await sleep(everyMs)
  }
}

export async function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port
      srv.close(() => resolve(port))
    })
    srv.on('error', reject)
  })
}

export function tempDir (prefix = 'deltafs-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix))
}

export interface Proc {
  child: ChildProcess
  logFile: string
  log (): string
  /** SIGTERM, then SIGKILL after graceMs; resolves with the exit code. */
  stop (graceMs?: number): Promise<number | null>
  kill (): Promise<void>
  exited: Promise<number | null>
}

/** Runs `deltafs ARGS` with stderr in a log file (a full pipe would stall the child). */
export function runDeltafs (args: string[], logFile: string, env: NodeJS.ProcessEnv = {}): Proc {
  const fd = fs.openSync(logFile, 'a')
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, deltafsBin, ...args], {
    stdio: ['ignore', fd, fd], env: { ...process.env, ...env },
  })
  fs.closeSync(fd)
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  const proc: Proc = {
    child,
    logFile,
    exited,
    log: () => fs.readFileSync(logFile, 'utf8'),
    async stop (graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
      const code = await exited
      clearTimeout(timer)
      return code
    },
    async kill () {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGKILL')
      await exited
    },
  }
  return proc
}

async function waitForLog (proc: Proc, pattern: RegExp, what: string, timeoutMs = 15_000): Promise<RegExpExecArray> {
  return waitFor(what, () => {
    if (proc.child.exitCode !== null) throw new Error(`${what}: process exited with ${proc.child.exitCode}:\n${proc.log()}`)
    return pattern.exec(proc.log())
  }, timeoutMs)
}

export interface NodeHandle extends Proc { port: number; address: string; dataDir: string }

export async function startNode (dataDir: string, port = 0, extraArgs: string[] = []): Promise<NodeHandle> {
  fs.mkdirSync(dataDir, { recursive: true })
  const proc = runDeltafs(['serve', '--data', dataDir, '--listen', `127.0.0.1:${port}`, ...extraArgs], path.join(dataDir, `node-${Date.now()}.log`))
  const m = await waitForLog(proc, /"address":"127\.0\.0\.1:(\d+)"[^\n]*"msg":"listening"/, 'storage node to listen')
  const bound = Number(m[1])
  return Object.assign(proc, { port: bound, address: `127.0.0.1:${bound}`, dataDir })
}

export interface MountHandle extends Proc { mountpoint: string; dataDir: string; status (): Promise<Record<string, number | string | boolean>> }

export async function startMount (volume: string, mountpoint: string, dataDir: string, node: string, extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<MountHandle> {
  fs.mkdirSync(mountpoint, { recursive: true })
  fs.mkdirSync(dataDir, { recursive: true })
  const proc = runDeltafs(['mount', volume, mountpoint, '--node', node, '--data', dataDir, ...extraArgs], path.join(dataDir, `mount-${Date.now()}.log`), env)
  await waitForLog(proc, /"msg":"mounted"/, `mount of ${mountpoint}`)
  const handle = Object.assign(proc, {
    mountpoint,
    dataDir,
    status: () => fetchStatus(mountpoint) as Promise<Record<string, number | string | boolean>>,
  })
  // Object.assign returned proc itself: keep its methods before wrapping them.
  const stop = handle.stop
  const kill = handle.kill
  handle.stop = async (graceMs?: number) => {
    const code = await stop(graceMs)
    forceUnmount(mountpoint)
    return code
  }
  handle.kill = async () => {
    await kill()
    forceUnmount(mountpoint)
  }
  return handle
}

/** Runs a deltafs command to its end (bounded); returns its exit code and output. */
export async function runToEnd (args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 20_000): Promise<{ code: number | null; out: string }> {
  const dir = tempDir()
  const logFile = path.join(dir, 'out.log')
  const proc = runDeltafs(args, logFile, env)
  const timer = setTimeout(() => { void proc.kill() }, timeoutMs)
  const code = await proc.exited
  clearTimeout(timer)
  const out = fs.readFileSync(logFile, 'utf8')
  fs.rmSync(dir, { recursive: true, force: true })
  return { code, out }
}

/** Detaches a FUSE mount that a killed daemon left behind, if any. */
export function forceUnmount (mountpoint: string): void {
  const mounts = fs.readFileSync('/proc/self/mounts', 'utf8')
  if (mounts.split('\n').some(l => l.split(' ')[1] === path.resolve(mountpoint))) {
    try { execFileSync('fusermount', ['-uz', mountpoint], { stdio: 'ignore', timeout: 10_000 }) } catch { /* already gone */ }
  }
}
