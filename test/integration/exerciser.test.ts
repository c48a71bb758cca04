// Issue 3: a seeded random-operation exerciser. Tens of thousands of writes
// (at random offsets, past EOF, with holes), truncations, saves, renames
// (over existing files too), links, unlinks, creates and reads run on mount
// A and on an in-memory model at once; every read is checked against the
// model, and at checkpoints mount B must converge to the model's bytes,
// modes and links. A failure prints the seed and the shortest op list found
// that still fails.
//   DELTAFS_EXERCISER_SEED=<n>|random  replay a seed      DELTAFS_EXERCISER_OPS=<n>  run length
//   DELTAFS_EXERCISER_SHRINK_MS=<n>  time budget for shrinking a failure
import path from 'node:path'
import t from 'tap'
import { Cluster } from '../helpers/cluster.js'
import type { MountHandle } from '../helpers/processes.js'
import { type Failure, type Mounts, checkA, runInChild, shrinkFailure, waitForB } from '../exerciser/driver.js'
import { generateOps } from '../exerciser/model.js'
import { formatOp } from '../exerciser/ops.js'
import { shrink } from '../exerciser/shrink.js'

// A random seed each run (printed for replay; DELTAFS_EXERCISER_SEED=random
// also means that). The read mismatches on A once seen late in long runs
// (seeds 674263515 at op 4994 and 345424931 at op 7604, about 1 run in 3)
// were reads of one name of a hard-linked file after a write through
// another name: the kernel kept that name's stale pages (auto_cache, fooled
// by same-millisecond mtimes); mounts now drop cached pages at every open
// (test/integration/page-cache.test.ts).
const seedEnv = process.env.DELTAFS_EXERCISER_SEED
const seed = seedEnv === undefined || seedEnv === 'random' ? Math.floor(Math.random() * 2 ** 31) : Number(seedEnv)
// About 4-6 ms an op through FUSE and the journal on a 2-core machine
// (20,000 ops took 72-123 s of ops, depending on the load): 15,000 ops keep
// the file under 2 minutes on a busy machine.
const count = Number(process.env.DELTAFS_EXERCISER_OPS ?? 15_000)
const shrinkMs = Number(process.env.DELTAFS_EXERCISER_SHRINK_MS ?? 120_000)

t.test('the shrinker finds a minimal failing list', async t => {
  // Fails when "b" comes after "a" and "c" after that.
  const ops = 'xxaxxxyxbyyxxxxxzzxcxx'.split('')
  const fails = async (xs: string[]): Promise<false | string[]> => {
    const a = xs.indexOf('a')
    const b = xs.indexOf('b', a)
    return a >= 0 && b >= 0 && xs.indexOf('c', b) >= 0 ? xs : false
  }
  const r = await shrink(ops, fails, 10_000)
  t.same(r.ops, ['a', 'b', 'c'], `shrunk to a, b, c in ${r.trials} trials`)
})

t.test(`random operations on A and the model, B converges (seed ${seed}, ${count} ops)`, async t => {
  t.setTimeout(10 * 60_000)
  t.comment(`exerciser seed ${seed}, ${count} ops (replay: DELTAFS_EXERCISER_SEED=${seed} DELTAFS_EXERCISER_OPS=${count})`)
  const c = await Cluster.start(t, 2)
  const [A, B] = c.mounts as [MountHandle, MountHandle]
  const m: Mounts = { A, B, headSeq: () => c.headSeq() }
  const rel = 'run'
  const checkpoints = [Math.floor(count / 3), Math.floor((2 * count) / 3)].filter(i => i > 0 && i < count - 1)
  // The checkpoint ops close every descriptor: held rewrites end at the last close.
  const ops = generateOps(seed, count, checkpoints)
  let failure: Failure | undefined

  const started = Date.now()
  const out = await runInChild(path.join(A.mountpoint, rel), ops, checkpoints, async index => {
    const upto = ops.slice(0, index + 1)
    const onA = checkA(m, rel, upto)
    if (onA !== null) { failure = { kind: 'A', ops: upto, message: onA }; return onA }
    const onB = await waitForB(m, rel, upto, 60_000)
    if (onB !== null) { failure = { kind: 'B', ops: upto, message: onB }; return onB }
    t.pass(`checkpoint after op ${index}: A and B hold the model's state`)
    return null
  })
  if (!out.ok && !failure) failure = { kind: 'A', ops: ops.slice(0, out.index + 1), message: out.message }
  if (out.ok) {
    t.comment(`${count} ops on A in ${out.ms} ms (${Math.round(count / (out.ms / 1000))} ops/s); ms per kind: ${JSON.stringify(Object.fromEntries(Object.entries(out.msByKind).map(([k, v]) => [k, Math.round(v)])))}`)
    const onA = checkA(m, rel, ops)
    if (onA !== null) failure = { kind: 'A', ops, message: onA }
    else {
      const onB = await waitForB(m, rel, ops, 60_000)
      if (onB !== null) failure = { kind: 'B', ops, message: onB }
    }
  }
  // A heal means B's copy differed from the base of one of A's deltas for a
  // while (B then asked A for the whole file and converged). With one writer
  // that never has to happen: the heals once seen here (seed 1275174472, about
  // 1 run in 2) were writes made right after a save by truncation overtaking
  // that rewrite in the outbox (test/integration/rewrite-order.test.ts).
  const heals = Number((await B.status()).healsRequested)
  t.equal(heals, 0, 'B never had to ask A for a whole file')

  if (!failure) {
    t.pass(`every read matched the model; A and B hold the model's state at the end (${Date.now() - started} ms)`)
    return
  }
  t.comment(`exerciser seed ${seed} failed: ${failure.message}`)
  t.comment(c.logs())
  t.comment(`FAILED (${failure.kind === 'A' ? 'mount A disagrees with the model' : 'mount B did not converge'}) after ${failure.ops.length} ops; shrinking for up to ${shrinkMs} ms`)
  const small = await shrinkFailure(m, failure, shrinkMs).catch(err => ({ ops: failure!.ops, message: `shrinking failed: ${String(err)}`, trials: 0, timedOut: false }))
  const report = [
    `exerciser seed ${seed}: ${failure.message}`,
    `shortest failing op list found (${small.ops.length} ops, ${small.trials} trials${small.timedOut ? ', shrink budget ran out' : ''}):`,
    ...small.ops.map((op, i) => `  ${i}: ${formatOp(op)}`),
    `its failure: ${small.message}`,
    `replay: DELTAFS_EXERCISER_SEED=${seed} DELTAFS_EXERCISER_OPS=${count}`,
  ].join('\n')
  t.comment(report)
  t.fail(`exerciser seed ${seed} failed; the shortest failing op list is printed above`, { report })
})
