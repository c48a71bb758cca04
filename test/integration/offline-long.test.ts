// Issue 4, offline work: with the storage node down, mounts keep working for
// thousands of transactions (each fsynced, so each is its own journaled
// transaction), across a restart of a mount while offline, and catch up by
// themselves once the node is back: every tree converges, every transaction
// is stored once.
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { Cluster } from '../helpers/cluster.js'
import { diffTrees, snapshot } from '../helpers/tree.js'
import { startMount, waitFor } from '../helpers/processes.js'

const TX = Number(process.env.DELTAFS_OFFLINE_TX ?? 3000)

/** One fsynced small write: a transaction of its own. */
function writeSynced (file: string, offset: number, text: string): void {
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644)
  try {
    fs.writeSync(fd, text, offset)
    fs.fsyncSync(fd)
  } finally { fs.closeSync(fd) }
}

t.test(`${TX} transactions while the node is down, then catch-up`, async t => {
  const c = await Cluster.start(t, 2)
  let A = c.mounts[0]!
  const B = c.mounts[1]!
  t.teardown(() => { if (!t.passing()) t.comment(c.logs()) })
  const files = 20
  // The files exist before the node goes: a new file's writes are held
  // together until it has been closed for a moment (issue 5), so offline
  // writes to new files would merge into fewer transactions.
  fs.mkdirSync(path.join(A.mountpoint, 'offline'))
  for (let f = 0; f < files; f++) fs.writeFileSync(path.join(A.mountpoint, 'offline', `log-${f}.txt`), '')
  await waitFor('B to see the files', () => fs.existsSync(path.join(B.mountpoint, 'offline', `log-${files - 1}.txt`)))
  await waitFor('A to push them', async () => Number((await A.status()).pendingTx) === 0 && Number((await A.status()).heldRewrites) === 0)
  const headBefore = await c.headSeq()
  const port = c.node!.port
  await c.node!.stop()
  await waitFor('A to notice the node is gone', async () => (await A.status()).connected === false, 15_000)

  const started = Date.now()
  for (let i = 0; i < TX; i++) {
    // Each file is a log of fixed-width lines: line i of file i % files.
    const line = `${String(i).padStart(6, '0')} written offline by A\n`
    writeSynced(path.join(A.mountpoint, 'offline', `log-${i % files}.txt`), Math.floor(i / files) * line.length, line)
    if (i === Math.floor(TX / 2)) {
      // Offline across a restart of the mount itself.
      await A.stop()
      A = await startMount('vol', A.mountpoint, A.dataDir, `127.0.0.1:${port}`)
      c.mounts[0] = A
    }
  }
  const offlineMs = Date.now() - started
  const s = await A.status()
  t.ok(Number(s.pendingTx) >= TX, `A holds ${String(s.pendingTx)} pending transactions after ${TX} fsynced writes offline (${offlineMs} ms, with a restart)`)
  t.equal(s.connected, false, 'A is still offline')
  t.ok(fs.readFileSync(path.join(A.mountpoint, 'offline', 'log-0.txt'), 'utf8').startsWith('000000 written offline by A'), 'A reads its own offline writes')

  await c.startNode(port)
  const catchUp = Date.now()
  await waitFor('A to push everything', async () => Number((await A.status()).pendingTx) === 0, 120_000, 100)
  const expected = await snapshot(A.mountpoint)
  let diff: string | null = null
  await waitFor('B to converge', async () => (diff = diffTrees(expected, await snapshot(B.mountpoint))) === null, 60_000, 200)
    .catch(err => t.fail(`${(err as Error).message}\n${diff ?? ''}`))
  t.comment(`caught up in ${Date.now() - catchUp} ms`)
  const head = await c.headSeq()
  const a = await A.status()
  t.ok(head - headBefore >= TX, `the node stored ${head - headBefore} new transactions (≥ ${TX})`)
  t.equal(Number(a.lastPushedSeq) <= head, true, 'A\'s acks are within the log')
  await waitFor('B to apply up to the head', async () => Number((await B.status()).lastAppliedSeq) === head, 30_000)
  t.equal(Number((await B.status()).lastAppliedSeq), head, `B applied up to the head (${head}): nothing stored twice or skipped`)
  const sample = fs.readFileSync(path.join(B.mountpoint, 'offline', `log-${(TX - 1) % files}.txt`), 'utf8')
  t.match(sample, new RegExp(`${String(TX - 1).padStart(6, '0')} written offline by A\\n$`), 'B has the last offline write')
})
