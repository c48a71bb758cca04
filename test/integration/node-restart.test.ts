// Issue 2, scenario 4: the storage node restarts while A keeps writing. Both
// mounts reconnect by themselves; nothing is lost and nothing applied twice.
import fsp from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { Cluster } from '../helpers/cluster.js'
import { diffTrees, snapshot } from '../helpers/tree.js'
import { sleep, waitFor } from '../helpers/processes.js'

t.test('mounts ride out a storage node restart', async t => {
  const c = await Cluster.start(t, 2)
  const [A, B] = c.mounts as [typeof c.mounts[0], typeof c.mounts[0]]
  t.teardown(() => { if (t.passing() === false) t.comment(c.logs()) })

  let writing = true
  let written = 0
  const writer = (async () => {
    while (writing) {
      const i = written++
      await fsp.mkdir(path.join(A.mountpoint, `d${i % 7}`), { recursive: true })
      await fsp.writeFile(path.join(A.mountpoint, `d${i % 7}`, `f${i}.txt`), `content ${i}\n`.repeat(1 + (i % 50)))
      if (i % 10 === 0) await fsp.appendFile(path.join(A.mountpoint, 'log.txt'), `line ${i}\n`)
      await sleep(5)
    }
  })()

  await sleep(500)
  await c.node!.stop()
  const writtenWhileDown = written
  await waitFor('A to notice the node is gone', async () => (await A.status()).connected === false, 10_000)
  await sleep(700)
  t.ok(written > writtenWhileDown, `A kept writing while the node was down (${written - writtenWhileDown} files)`)
  await c.startNode()
  await waitFor('A to reconnect', async () => (await A.status()).connected === true, 15_000)
  await waitFor('B to reconnect', async () => (await B.status()).connected === true, 15_000)
  await sleep(500)
  writing = false
  await writer

  const expected = await snapshot(A.mountpoint)
  t.equal(Object.keys(expected).filter(k => /\/f\d+\.txt$/.test(k)).length, written, `A holds all ${written} files`)
  await waitFor('A to drain its outbox', async () => (await A.status()).pendingTx === 0, 15_000)
  let diff: string | null = null
  await waitFor('B to match A', async () => (diff = diffTrees(expected, await snapshot(B.mountpoint))) === null, 15_000, 100)
    .catch(err => t.fail(`${(err as Error).message}\n${diff ?? ''}`))
  t.same(await snapshot(B.mountpoint), expected, 'B is identical to A')

  const head = await c.headSeq()
  const as = await A.status()
  const bs = await B.status()
  t.equal(as.txAcked, head, `node log holds each of A's ${String(as.txAcked)} transactions once (head ${head})`)
  t.equal(as.txClosed, as.txAcked, 'every transaction A journaled was acked')
  t.equal(bs.txApplied, head, 'B applied each transaction exactly once')
  t.equal(bs.lastAppliedSeq, head, 'B is at the node head')
})
