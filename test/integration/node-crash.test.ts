// Issue 4 (part): the storage node is killed with SIGKILL while two mounts
// push hard. After a restart every tree converges and the node's log holds
// every transaction the mounts journaled exactly once: nothing it acked was
// lost, and the retries of unacked ones were stored once. Some files are
// large and random, so that their frames go to the node's segment files.
import { randomBytes } from 'node:crypto'
import fsp from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { Cluster } from '../helpers/cluster.js'
import { diffTrees, snapshot } from '../helpers/tree.js'
import { sleep, waitFor } from '../helpers/processes.js'

t.test('a SIGKILLed node loses no acked transaction and stores retries once', async t => {
  const c = await Cluster.start(t, 3)
  const [A, B, C] = c.mounts as [typeof c.mounts[0], typeof c.mounts[0], typeof c.mounts[0]]
  t.teardown(() => { if (!t.passing()) t.comment(c.logs()) })

  let writing = true
  const writer = (mountpoint: string, tag: string) => (async () => {
    let i = 0
    while (writing) {
      await fsp.writeFile(path.join(mountpoint, `${tag}-${i % 40}.txt`), `${tag} ${i}\n`.repeat(1 + (i % 300))).catch(() => undefined)
      if (i % 10 === 0) await fsp.writeFile(path.join(mountpoint, `${tag}-big-${(i / 10) % 4}.bin`), randomBytes((64 << 10) + (i % 7) * (32 << 10))).catch(() => undefined)
      i++
    }
    return i
  })()
  const writers = [writer(A.mountpoint, 'a'), writer(B.mountpoint, 'b')]
  await sleep(800)
  const ackedBefore = Number((await A.status()).txAcked) + Number((await B.status()).txAcked)
  await c.node!.kill()
  t.ok(ackedBefore > 0, `${ackedBefore} transactions were acked before the kill`)
  await sleep(500)
  await c.startNode()
  await sleep(800)
  writing = false
  const counts = await Promise.all(writers)
  t.comment(`writes: A ${counts[0]}, B ${counts[1]}`)

  await waitFor('A and B to drain', async () => (await A.status()).pendingTx === 0 && (await B.status()).pendingTx === 0, 30_000)
  const head = await c.headSeq()
  const as = await A.status()
  const bs = await B.status()
  t.equal(Number(as.txAcked) + Number(bs.txAcked), head, `the log holds each of the ${head} journaled transactions once`)
  t.equal(as.txAcked, as.txClosed, 'every transaction A closed was acked')
  t.equal(bs.txAcked, bs.txClosed, 'every transaction B closed was acked')
  t.ok(head >= ackedBefore, 'nothing acked before the kill is missing')

  // A and B still apply each other's transactions: wait until all three agree.
  let diff: string | null = null
  await waitFor('A, B and C to converge', async () => {
    const [a, b, cc] = await Promise.all([A, B, C].map(m => snapshot(m.mountpoint)))
    diff = diffTrees(a!, b!) ?? diffTrees(a!, cc!)
    return diff === null
  }, 30_000, 200).catch(err => t.fail(`${(err as Error).message}\n${diff ?? ''}`))
  const expected = await snapshot(A.mountpoint)
  t.equal(Object.keys(expected).length, 88, 'A holds the 88 files both writers wrote')
  t.same(await snapshot(B.mountpoint), expected, 'B converged')
  t.same(await snapshot(C.mountpoint), expected, 'C converged')
  t.equal((await C.status()).txApplied, head, 'C applied every transaction once')
  const segments = await fsp.readdir(path.join(c.dir, 'node', 'log-segments'))
  t.ok(segments.length >= 2, `the node stored large frames in segments (${segments.length} files: one more per restart)`)
})
