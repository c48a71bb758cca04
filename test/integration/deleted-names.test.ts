// Mounts keep no record of deleted names (no tombstones): a volume that
// churns through temporary names (rsync's, git's, editors') would otherwise
// grow every mount's journal by one record per name, for ever. A file made
// again at a deleted name is based on 0, which the storage node takes as a
// new file because the deletion told it so (FrameHeader.removes): no
// spurious conflict copy, whichever mount deletes and whichever makes it again.
import fsp from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { Cluster } from '../helpers/cluster.js'
import { allConflictCopies, settleOrFail } from '../helpers/settle.js'
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
