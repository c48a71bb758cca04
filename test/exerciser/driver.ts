// The test side of the exerciser: runs an op list in a child against a
// directory of mount A, waits for mount B to hold what the model holds, and
// turns a failure into the shortest op list that still fails.
import { type ChildProcess, fork } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ChildMessage, ChildRequest } from './child.js'
import { expectedAfter } from './model.js'
import type { Op } from './ops.js'
import { compareStates, describeDir } from './real.js'
import { type MountHandle, sleep, waitFor } from '../helpers/processes.js'
import { shrink } from './shrink.js'

const childPath = fileURLToPath(new URL('./child.js', import.meta.url))

export type RunOutcome = { ok: true; ms: number; msByKind: Record<string, number> } | { ok: false; index: number; message: string }

/** A child process that runs op lists on directories of mount A, one run at a time. */
export class ChildRunner {
  private child: ChildProcess | undefined

  private spawn (): ChildProcess {
    this.child ??= fork(childPath, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    return this.child
  }

  /**
   * Runs ops on root; onCheckpoint runs after each checkpoint op and may
   * stop the run with a message. A run over timeoutMs kills the child.
   */
  async run (root: string, ops: Op[], checkpoints: number[] = [], onCheckpoint?: (index: number) => Promise<string | null>, timeoutMs = 10 * 60_000): Promise<RunOutcome> {
    const child = this.spawn()
    let onMessage: ((m: ChildMessage) => void) | undefined
    let onExit: ((code: number | null) => void) | undefined
    let timer: NodeJS.Timeout | undefined
    // Reusable once the child itself ended the run; not when stopped at a checkpoint, failed or timed out.
    let reusable = false
    try {
      const outcome = await new Promise<RunOutcome>((resolve, reject) => {
        onMessage = m => {
          if (m.type === 'done') { reusable = true; resolve({ ok: true, ms: m.ms, msByKind: m.msByKind }) } else if (m.type === 'fail') { reusable = true; resolve({ ok: false, index: m.index, message: m.message }) } else {
            (onCheckpoint?.(m.index) ?? Promise.resolve(null)).then(stop => {
              if (stop === null) child.send('go')
              else resolve({ ok: false, index: m.index, message: stop })
            }, reject)
          }
        }
        onExit = code => reject(new Error(`exerciser child exited with ${code} before reporting`))
        timer = setTimeout(() => reject(new Error(`exerciser run took over ${timeoutMs} ms`)), timeoutMs)
        child.on('message', onMessage)
        child.once('exit', onExit)
        child.send({ root, ops, checkpoints } satisfies ChildRequest)
      })
      return outcome
    } finally {
      clearTimeout(timer)
      if (onMessage) child.off('message', onMessage)
      if (onExit) child.off('exit', onExit)
      if (!reusable) await this.close()
    }
  }

  async close (): Promise<void> {
    const child = this.child
    this.child = undefined
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise(resolve => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
  }
}

/** Runs ops once in a fresh child. */
export async function runInChild (root: string, ops: Op[], checkpoints: number[] = [], onCheckpoint?: (index: number) => Promise<string | null>): Promise<RunOutcome> {
  const runner = new ChildRunner()
  try { return await runner.run(root, ops, checkpoints, onCheckpoint) } finally { await runner.close() }
}

export interface Mounts { A: MountHandle; B: MountHandle; headSeq: () => Promise<number> }

/** Waits until A has pushed everything and B has applied it, then until B's dir equals the expected state. */
export async function waitForB (m: Mounts, rel: string, ops: Op[], timeoutMs: number): Promise<string | null> {
  const expected = expectedAfter(ops)
  let last: string | null = 'not compared yet'
  try {
    await waitFor('A to push everything', async () => { const s = await m.A.status(); return s.pendingTx === 0 && s.heldRewrites === 0 }, timeoutMs, 50)
    const head = await m.headSeq()
    await waitFor('B to apply everything', async () => Number((await m.B.status()).lastAppliedSeq) >= head, timeoutMs, 50)
    // Heals (a Refresh answered by A) may still be in flight.
    await waitFor('B to hold the model\'s state', () => {
      last = compareStates(expected, describeDir(path.join(m.B.mountpoint, rel)))
      return last === null
    }, Math.min(timeoutMs, 3000), 100)
    return null
  } catch (err) {
    return `${(err as Error).message}\n${last ?? ''}`
  }
}

/** Null when A's dir equals the model's state after ops. */
export function checkA (m: Mounts, rel: string, ops: Op[]): string | null {
  const diff = compareStates(expectedAfter(ops), describeDir(path.join(m.A.mountpoint, rel)))
  return diff === null ? null : `A differs from the model:\n${diff}`
}

export interface Failure { kind: 'A' | 'B'; ops: Op[]; message: string }

/** The shortest op list found within budgetMs that fails the same way, each trial in a fresh directory. */
export async function shrinkFailure (m: Mounts, f: Failure, budgetMs: number): Promise<{ ops: Op[]; message: string; trials: number; timedOut: boolean }> {
  let n = 0
  let message = f.message
  const runner = new ChildRunner()
  const result = await shrink(f.ops, async ops => {
    const rel = `shrink-${process.pid}-${n++}`
    // A trial that hangs or crashes does not count as the same failure.
    const out = await runner.run(path.join(m.A.mountpoint, rel), ops, [], undefined, 120_000).catch(() => undefined)
    if (out === undefined) return false
    if (!out.ok) {
      if (f.kind !== 'A') return false
      message = out.message
      return ops.slice(0, out.index + 1)
    }
    if (f.kind === 'A') {
      const diff = checkA(m, rel, ops)
      if (diff !== null) { message = diff; return ops }
      return false
    }
    await sleep(0)
    const diff = await waitForB(m, rel, ops, 15_000)
    if (diff === null) return false
    message = diff
    return ops
  }, budgetMs).finally(() => runner.close())
  return { ops: result.ops, message, trials: result.trials, timedOut: result.timedOut }
}
