// Issue 4 (part): changes made to a mount's backing directory while it was
// not running are found at startup and synced, and unchanged files are not
// sent again.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { Cluster } from '../helpers/cluster.js'
import { diffTrees, snapshot } from '../helpers/tree.js'
import { startMount, waitFor } from '../helpers/processes.js'

t.test('edits made while unmounted are journaled at the next start', async t => {
  const c = await Cluster.start(t, 2)
  let A = c.mounts[0]!
  const B = c.mounts[1]!
  t.teardown(() => { if (!t.passing()) t.comment(c.logs()) })
  const a = (p: string): string => path.join(A.mountpoint, p)
  await fsp.writeFile(a('keep.txt'), 'unchanged\n')
  await fsp.writeFile(a('edit.txt'), 'before\n')
  await fsp.writeFile(a('del.txt'), 'to be deleted\n')
  await fsp.mkdir(a('dir'))
  await fsp.writeFile(a('dir/sub.txt'), 'in dir\n')
  await fsp.mkdir(a('moved'))
  await fsp.writeFile(a('moved/child.txt'), 'follows its dir\n')
  await fsp.rename(a('moved'), a('renamed'))
  await waitFor('A to drain', async () => (await A.status()).pendingTx === 0, 10_000)
  const first = await snapshot(A.mountpoint)
  await waitFor('B to match A', async () => diffTrees(first, await snapshot(B.mountpoint)) === null, 10_000)

  await A.stop()
  const files = path.join(A.dataDir, 'vol', 'files')
  fs.writeFileSync(path.join(files, 'edit.txt'), 'after, edited while unmounted\n')
  fs.rmSync(path.join(files, 'del.txt'))
  fs.rmSync(path.join(files, 'dir'), { recursive: true })
  fs.writeFileSync(path.join(files, 'new.txt'), 'created while unmounted\n')
  fs.mkdirSync(path.join(files, 'newdir'), { mode: 0o750 })
  fs.writeFileSync(path.join(files, 'newdir', 'x.bin'), Buffer.alloc(300_000, 7))

  A = await startMount('vol', A.mountpoint, A.dataDir, c.node!.address)
  c.mounts[0] = A
  const m = /"created":(\d+),"changed":(\d+),"removed":(\d+)/.exec(A.log())
  t.same(m?.slice(1).map(Number), [3, 1, 3], 'startup found 3 new entries, 1 changed file, 3 removed entries and nothing else')
  const expected = await snapshot(A.mountpoint)
  t.equal(expected['edit.txt']?.size, 30, 'A shows the offline edit')
  let diff: string | null = null
  await waitFor('B to receive the offline changes', async () => (diff = diffTrees(expected, await snapshot(B.mountpoint))) === null, 10_000)
    .catch(err => t.fail(`${(err as Error).message}\n${diff ?? ''}`))
  t.same(await snapshot(B.mountpoint), expected, 'B is identical to A, offline edits included')
  t.notOk(fs.existsSync(path.join(B.mountpoint, 'del.txt')), 'the offline delete reached B')
  t.equal(fs.readFileSync(path.join(B.mountpoint, 'renamed/child.txt'), 'utf8'), 'follows its dir\n', 'records followed the renamed directory')
})
