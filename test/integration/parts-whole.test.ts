// A file larger than one frame reaches the other mounts in parts. Readers
// there see no half of it: the file is missing (or old) until its last part
// is applied, then whole. Found as a gap in issue 4's list: before staging,
// B showed a new 12 MB file at 3 MiB, then 6, then 9.
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { Cluster } from '../helpers/cluster.js'
import { settleOrFail } from '../helpers/settle.js'
import { type MountHandle, startMount, waitFor } from '../helpers/processes.js'

const SIZE = 12_000_000

/**
 * Every size a reader of `file` meets until it holds `data` (its size, and
 * its head: an old file of the same size is not the new one), or the time is up.
 */
async function watchSizes (file: string, data: Buffer, limitMs: number): Promise<Set<number>> {
  const seen = new Set<number>()
  const until = Date.now() + limitMs
  const head = Buffer.alloc(64)
  while (Date.now() < until) {
    const st = await fsp.stat(file).catch(() => undefined)
    seen.add(st?.size ?? -1)
    if (st?.size !== data.length) continue
    const fh = await fsp.open(file, 'r').catch(() => undefined)
    if (!fh) continue
    try { await fh.read(head, 0, head.length, 0) } finally { await fh.close() }
    if (head.equals(data.subarray(0, head.length))) break
  }
  return seen
}

t.test('a file sent in parts appears on the others whole, never partly', async t => {
  const c = await Cluster.start(t, 2)
  t.teardown(() => { if (!t.passing()) t.comment(c.logs()) })
  const [a, b] = c.mounts
  // A new file, the same file rewritten with other bytes, and another new file.
  for (const [round, name] of ['new.bin', 'new.bin', 'other.bin'].entries()) {
    const data = randomBytes(SIZE)
    const watching = watchSizes(path.join(b!.mountpoint, name), data, 60_000)
    // Written and closed as one file: its transaction is held until the close, then goes in parts.
    fs.writeFileSync(path.join(a!.mountpoint, name), data)
    const sizes = await watching
    const partial = [...sizes].filter(s => s !== -1 && s !== SIZE)
    t.same(partial, [], `round ${round + 1}: B saw ${name} only missing or whole (sizes seen: ${[...sizes].join(', ')})`)
    const got = await fsp.readFile(path.join(b!.mountpoint, name))
    t.ok(got.equals(data), `round ${round + 1}: B has A's bytes in the end`)
  }
  const st = await b!.status()
  t.equal(Number(st.txRefused ?? 0), 0, 'no transaction refused on B')
  t.equal(st.stagedFiles, 0, 'no file left staged on B')
  await settleOrFail(t, [a!, b!])
})

t.test('a receiver killed between the parts still has the old file, and completes it after its restart', async t => {
  const c = await Cluster.start(t, 2)
  t.teardown(() => { if (!t.passing()) t.comment(c.logs()) })
  const [a, b] = c.mounts
  const data = randomBytes(SIZE)
  await b!.stop()
  fs.writeFileSync(path.join(a!.mountpoint, 'big.bin'), data)
  await waitFor('A to push big.bin', async () => Number((await a!.status()).pendingTx) === 0 && Number((await a!.status()).heldRewrites) === 0, 30_000)
  // Its parts are B's first applies: it dies once part 2 is in the files, before its cursor moves.
  const armed = await startMount('vol', b!.mountpoint, b!.dataDir, c.node!.address, [], { DELTAFS_FAULTS: 'apply.after-data@2' })
  c.mounts[1] = armed
  await waitFor('B to die after part 2', () => armed.child.exitCode !== null || armed.child.signalCode !== null, 30_000)
  await armed.kill()
  const backing = path.join(b!.dataDir, 'vol', 'files', 'big.bin')
  t.equal(fs.existsSync(backing), false, 'no half of big.bin in B\'s files')
  t.equal(fs.readdirSync(path.join(b!.dataDir, 'vol', 'staging')).length, 2, 'its parts so far are staged (data and description)')
  const again = c.mounts[1] = await startMount('vol', b!.mountpoint, b!.dataDir, c.node!.address)
  const got = await waitFor('big.bin whole on B', async () => {
    const bytes = await fsp.readFile(path.join(again.mountpoint, 'big.bin')).catch(() => undefined)
    return bytes?.length === SIZE ? bytes : undefined
  }, 30_000, 100)
  t.ok(got.equals(data), 'B has A\'s bytes after its restart')
  t.equal((await again.status()).stagedFiles, 0, 'nothing left staged')
  t.same(fs.readdirSync(path.join(b!.dataDir, 'vol', 'staging')), [], 'the staging area is empty')
})

t.test('two mounts that write the same large file offline keep both versions whole', async t => {
  const c = await Cluster.start(t, 2)
  t.teardown(() => { if (!t.passing()) t.comment(c.logs()) })
  const [a, b] = c.mounts as [MountHandle, MountHandle]
  await c.node!.stop()
  for (const m of [a, b]) await waitFor(`${m.mountpoint} to notice the node is gone`, async () => (await m.status()).connected === false, 15_000)
  const va = randomBytes(SIZE)
  const vb = randomBytes(SIZE - 1000)
  fs.writeFileSync(path.join(a.mountpoint, 'big.bin'), va)
  fs.writeFileSync(path.join(b.mountpoint, 'big.bin'), vb)
  await c.startNode()
  const tree = await settleOrFail(t, [a, b], 90_000)
  if (!tree) return
  const hash = (buf: Buffer): string => createHash('sha256').update(buf).digest('hex')
  const copies = Object.keys(tree).filter(p => p.startsWith('big (conflict '))
  t.equal(copies.length, 1, `one conflict copy: ${copies.join(', ')}`)
  const versions = [tree['big.bin']?.sha256, tree[copies[0] ?? '']?.sha256].sort()
  t.same(versions, [hash(va), hash(vb)].sort(), 'the name and the copy hold the two versions, each whole')
  for (const m of [a, b]) t.equal((await m.status()).stagedFiles, 0, `nothing left staged on ${m.mountpoint}`)
})
