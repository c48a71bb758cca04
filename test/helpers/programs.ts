// Runs real programs (git, tar, sqlite3, cp, rsync) against a mount and waits
// for another mount to hold the same tree.
import { execFile } from 'node:child_process'
import type { Test } from 'tap'
import { type Entry, type SnapshotOptions, diffTrees, snapshot } from './tree.js'
import { waitFor } from './processes.js'

export interface RunResult { code: number; stdout: string; stderr: string }

/** Runs a program to its end (bounded); never throws on a non-zero exit. */
export async function run (cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise(resolve => {
    const child = execFile(cmd, args, {
      cwd: opts.cwd, env: { ...process.env, ...opts.env }, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20, killSignal: 'SIGKILL',
    }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0
      resolve({ code, stdout: String(stdout), stderr: String(stderr) + (err && code === -1 ? `\n${err.message}` : '') })
    })
    if (opts.input !== undefined) child.stdin?.end(opts.input)
  })
}

/** Runs a program and fails the test (with its output) unless it exits 0. */
export async function mustRun (t: Test, what: string, cmd: string, args: string[], opts: Parameters<typeof run>[2] = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts)
  t.equal(r.code, 0, what, r.code === 0 ? {} : { stdout: r.stdout.slice(-2000), stderr: r.stderr.slice(-2000) })
  return r
}

/**
 * Waits until the tree at `replica` equals `expected` (a snapshot or a
 * directory to snapshot each time); one assertion, with the remaining
 * differences on failure.
 */
export async function assertConverges (t: Test, what: string, expected: string | Record<string, Entry>, replica: string, opts: SnapshotOptions = {}, timeoutMs = 60_000): Promise<void> {
  let last: string | null = 'not compared yet'
  try {
    await waitFor(what, async () => {
      const want = typeof expected === 'string' ? await snapshot(expected, opts) : expected
      last = diffTrees(want, await snapshot(replica, opts))
      return last === null
    }, timeoutMs, 200)
    t.pass(what)
  } catch (err) {
    t.fail(`${what}: ${(err as Error).message}\n${last ?? ''}`)
  }
}
