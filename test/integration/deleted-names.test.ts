// Mounts keep no record of deleted names (no tombstones): a volume that
// churns through temporary names (rsync's, git's, editors') would otherwise
// grow every mount's journal by one record per name, for ever. A file made
// at a name with no record is based on the mount's applied cursor: the
// storage node takes it as a new file when the name's last change (a
// deletion, FrameHeader.removes) is at or before it, so no spurious
// conflict copy, whichever mount deletes and whichever makes it again. Made
// before the mount applied that history, it is a conflict, as the mount
// itself judges it when the history arrives.
import fsp from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { Cluster } from '../helpers/cluster.js'
import { waitFor } from '../helpers/processes.js'
import { allConflictCopies, conflictCopiesOf, settleOrFail } from '../helpers/settle.js'
import { LevelJournal } from '../../src/journal/level-journal.js'

t.test('a name deleted and made again on any mount is a new file, and no mount keeps a record of deleted names', async t => {
  const c = await Cluster.start(t, 2)
  t.teardown(() => { if (!t.passing()) t.comment(c.logs()) })
  const [a, b] = c.mounts
  const at = (m: typeof a, f: string): string => path.join(m!.mountpoint, f)
  const names = ['same-mount.txt', 'other-mount.txt', 'renamed.txt', 'a-0.tmp', 'a-1.tmp', 'b-0.tmp', 'b-1.tmp']
  for (const f of names.slice(0, 3)) await fsp.writeFile(at(a, f), `first ${f}\n`)
  await settleOrFail(t, [a!, b!])

  await fsp.unlink(at(a, 'same-mount.txt'))
  await fsp.unlink(at(a, 'other-mount.txt'))
  await fsp.rename(at(a, 'renamed.txt'), at(a, 'moved.txt'))
  await settleOrFail(t, [a!, b!])
  await fsp.writeFile(at(a, 'same-mount.txt'), 'again, by the mount that deleted it\n')
  await fsp.writeFile(at(b, 'other-mount.txt'), 'again, by the other mount\n')
  await fsp.writeFile(at(b, 'renamed.txt'), 'a new file at a renamed-away name\n')
  // Temporary names, made and deleted on each side.
  for (const f of names.slice(3)) {
    const m = f.startsWith('a-') ? a : b
    await fsp.writeFile(at(m, f), 'temp\n')
    await fsp.unlink(at(m, f))
  }
  const tree = await settleOrFail(t, [a!, b!])
  if (!tree) return
  t.same(allConflictCopies(tree), [], 'no conflict copy')
  t.equal(tree['same-mount.txt']?.size, 'again, by the mount that deleted it\n'.length, 'made again where it was deleted')
  t.equal(tree['other-mount.txt']?.size, 'again, by the other mount\n'.length, 'made again by the other mount')
  t.equal(tree['renamed.txt']?.size, 'a new file at a renamed-away name\n'.length, 'made again at a rename\'s source')
  for (const m of [a!, b!]) t.equal((await m.status()).conflictsLost, 0, `${m.mountpoint}: no conflict lost`)

  await Promise.all(c.mounts.map(m => m.stop()))
  for (const m of c.mounts) {
    const journal = new LevelJournal(path.join(m.dataDir, 'vol', 'journal'), 'vol')
    await journal.open()
    try {
      const versions = await Promise.all(names.slice(3).map(f => journal.version('/' + f)))
      t.same(versions, [0, 0, 0, 0], `${path.basename(m.mountpoint)} keeps no record of the deleted temporary names`)
      t.not(await journal.version('/moved.txt'), 0, 'and still keeps one for a live file')
    } finally {
      await journal.close()
    }
  }
})

// Found by the convergence harness (seed 300512): B, behind, made a file at
// a name that A had made and that was then moved away. The node took it as a
// new file (the name's last change left none, and it was based on 0), while
// B, applying A's earlier file at that name over its own, kept its version
// as a conflict copy and then lost the name to the move: A kept B's file
// under the name, B had it only as the copy, for good.
t.test('a file made at a name whose history the mount has not applied yet ends the same on every mount', async t => {
  const { c, proxies } = await Cluster.startBehindProxies(t, 2)
  const [a, b] = c.mounts
  const at = (m: typeof a, f: string): string => path.join(m!.mountpoint, f)
  await fsp.writeFile(at(a, 'seed.txt'), 'both have seen this\n')
  await settleOrFail(t, [a!, b!])
  proxies[1]!.cut()
  await waitFor('B to notice it is cut off', async () => (await b!.status()).connected === false, 15_000)
  await fsp.writeFile(at(a, 'f.txt'), 'made on A\n')
  await waitFor('A to send it', async () => (await a!.status()).pendingTx === 0, 15_000)
  await fsp.rename(at(a, 'f.txt'), at(a, 'moved.txt'))
  await waitFor('A to send the move', async () => (await a!.status()).pendingTx === 0, 15_000)
  await fsp.writeFile(at(b, 'f.txt'), 'made on B before it heard of A\'s\n')
  proxies[1]!.heal()
  const tree = await settleOrFail(t, [a!, b!])
  if (!tree) return
  t.equal(tree['moved.txt']?.size, 'made on A\n'.length, 'A\'s file moved where A moved it')
  const copies = conflictCopiesOf(tree, 'f.txt')
  const kept = copies.length > 0 ? await fsp.readFile(at(a, copies[0]!.path), 'utf8') : tree['f.txt'] ? await fsp.readFile(at(a, 'f.txt'), 'utf8') : undefined
  t.equal(kept, 'made on B before it heard of A\'s\n', 'B\'s file is on both mounts, at the name or as its conflict copy')
})
