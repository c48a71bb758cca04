// The exerciser's child process: runs ops on a directory of a mount and on
// the model, and checks every outcome. It reports to its parent over IPC and
// waits at checkpoints until told to go on. Reading a FUSE mount from the
// process serving it would deadlock; this process serves nothing.
import fs from 'node:fs'
import path from 'node:path'
import { Model } from './model.js'
import { formatOp, type Op, SUBDIR } from './ops.js'
import { compareOutcome, runOp, Slots } from './real.js'

export interface ChildRequest { root: string; ops: Op[]; checkpoints: number[] }
export type ChildMessage =
  | { type: 'checkpoint'; index: number }
  | { type: 'fail'; index: number; message: string }
  | { type: 'done'; ms: number; msByKind: Record<string, number> }

function send (m: ChildMessage): Promise<void> {
  return new Promise((resolve, reject) => process.send!(m, undefined, {}, err => err ? reject(err) : resolve()))
}

let resume: (() => void) | undefined
function resumed (): Promise<void> {
  return new Promise(resolve => { resume = resolve })
}

async function main (req: ChildRequest): Promise<void> {
  process.umask(0o022)
  const started = Date.now()
  fs.mkdirSync(path.join(req.root, SUBDIR), { recursive: true })
  const model = new Model()
  const slots = new Slots()
  const checkpoints = new Set(req.checkpoints)
  const msByKind: Record<string, number> = {}
  for (let i = 0; i < req.ops.length; i++) {
    const op = req.ops[i]!
    const want = model.apply(op)
    let diff: string | null
    const t0 = performance.now()
    try {
      diff = compareOutcome(want, runOp(req.root, op, slots))
      msByKind[op.k] = (msByKind[op.k] ?? 0) + performance.now() - t0
    } catch (err) {
      diff = `threw ${(err as Error).message}`
    }
    if (diff !== null) {
      slots.closeAll()
      await send({ type: 'fail', index: i, message: `op ${i} (${formatOp(op)}): ${diff}` })
      return
    }
    if (checkpoints.has(i)) {
      const go = resumed()
      await send({ type: 'checkpoint', index: i })
      await go
    }
  }
  slots.closeAll()
  await send({ type: 'done', ms: Date.now() - started, msByKind })
}

// One child serves run after run (shrinking replays many): a request starts
// a run, any other message resumes it from a checkpoint.
process.on('message', (m: ChildRequest | 'go') => {
  if (m === 'go') { resume?.(); return }
  main(m).catch(err => { console.error(err); process.exit(1) })
})
