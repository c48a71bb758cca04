// A file open for writing on mount A while mount B deletes it (DESIGN §6:
// edited on one side and deleted on the other, the edit is kept). What A
// writes through its open descriptor after the delete reached it used to go
// into an unlinked inode and vanish. Now the deletion stands for the name,
// and what A wrote comes back as a conflict copy on every mount. A file that
// is only read, or not written after the delete, is simply gone.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import t, { type Test } from 'tap'
import { Cluster } from '../helpers/cluster.js'
import { allConflictCopies, settleOrFail } from '../helpers/settle.js'
import { type MountHandle, waitFor } from '../helpers/processes.js'

t.setTimeout(5 * 60_000)

const OLD = 'old content of the document\n'.repeat(20)
const BEFORE = 'written by A before the delete\n'
const AFTER = 'written by A after the delete\n'

const exists = (p: string): Promise<boolean> => fsp.stat(p).then(() => true, () => false)

/** Two mounts of one node (their logs printed if the test fails) and `at`, a path on one of them. */
async function twoMounts (t: Test): Promise<{ a: MountHandle; b: MountHandle; at: (m: MountHandle, f: string) => string }> {
  const c = await Cluster.start(t, 2)
  t.teardown(() => { if (!t.passing()) t.comment(c.logs()) })
  const [a, b] = c.mounts
  return { a: a!, b: b!, at: (m, f) => path.join(m.mountpoint, f) }
}

async function deletedWhileOpen (t: Test, flags: 'w' | 'r+' | 'r', writeBefore: boolean, writeAfter: boolean): Promise<Record<string, string> | undefined> {
  const { a, b, at } = await twoMounts(t)
  await fsp.writeFile(at(a, 'doc.txt'), OLD)
  await settleOrFail(t, [a, b])

  const fh = await fsp.open(at(a, 'doc.txt'), flags)
  if (writeBefore) await fh.write(BEFORE, 0)
  await fsp.unlink(at(b, 'doc.txt'))
  await waitFor('the delete to reach A', async () => !(await exists(at(a, 'doc.txt'))), 15_000)
  if (writeAfter) await fh.write(AFTER, BEFORE.length)
  await fh.close()
  const tree = await settleOrFail(t, [a, b])
  if (!tree) return undefined
  t.notOk('doc.txt' in tree, 'the deletion stands for the name')
  const contents: Record<string, string> = {}
  for (const name of allConflictCopies(tree)) {
    const onA = await fsp.readFile(at(a, name), 'utf8')
    t.equal(await fsp.readFile(at(b, name), 'utf8'), onA, `${name}: the same on B`)
    contents[name] = onA
  }
  const aside = path.join(a.dataDir, 'vol', 'records')
  t.same(fs.existsSync(aside) ? fs.readdirSync(aside).filter(f => f.endsWith('.tmp')) : [], [], 'nothing is left aside on A')
  const status = await a.status() as { conflicts?: Array<{ path: string; copy: string }> }
  t.same((status.conflicts ?? []).map(e => e.copy).sort(), Object.keys(contents).map(n => '/' + n).sort(), 'A lists its conflict copies')
  return contents
}

t.test('O_TRUNC, written before and after the delete: everything A wrote is kept in one conflict copy', async t => {
  const copies = await deletedWhileOpen(t, 'w', true, true)
  if (!copies) return
  // The write before the delete was unsent when the delete came: the node
  // refused it, and the file itself became the conflict copy, so the write
  // after it lands there too.
  t.same(Object.values(copies), [BEFORE + AFTER], 'one conflict copy, holding both writes')
})

t.test('O_RDWR, written before and after the delete: the edited file is kept in one conflict copy', async t => {
  const copies = await deletedWhileOpen(t, 'r+', true, true)
  if (!copies) return
  t.same(Object.values(copies), [BEFORE + AFTER + OLD.slice(BEFORE.length + AFTER.length)], 'one conflict copy, holding both writes over the old bytes')
})

t.test('O_RDWR, written only after the delete: one conflict copy with the write', async t => {
  const copies = await deletedWhileOpen(t, 'r+', false, true)
  if (!copies) return
  t.same(Object.values(copies), [OLD.slice(0, BEFORE.length) + AFTER + OLD.slice(BEFORE.length + AFTER.length)], 'one copy: the old bytes with the write')
})

for (const flags of ['r+', 'r'] as const) {
  t.test(`open ${flags === 'r' ? 'only to read' : 'for writing, not written'}, deleted on B: gone, no copy`, async t => {
    const copies = await deletedWhileOpen(t, flags, false, false)
    if (copies) t.same(copies, {}, 'no conflict copy')
  })
}

t.test('renamed on B while open for writing on A, written after the rename reached A: the write is at the new name', async t => {
  const { a, b, at } = await twoMounts(t)
  await fsp.writeFile(at(a, 'doc.txt'), OLD)
  await settleOrFail(t, [a, b])
  const fh = await fsp.open(at(a, 'doc.txt'), 'r+')
  await fsp.rename(at(b, 'doc.txt'), at(b, 'moved.txt'))
  await waitFor('the rename to reach A', async () => !(await exists(at(a, 'doc.txt'))) && await exists(at(a, 'moved.txt')), 15_000)
  await fh.write(AFTER, 0)
  await fh.close()
  const tree = await settleOrFail(t, [a, b])
  if (!tree) return
  const want = AFTER + OLD.slice(AFTER.length)
  t.notOk('doc.txt' in tree, 'the old name is gone')
  t.equal(await fsp.readFile(at(a, 'moved.txt'), 'utf8'), want, 'A: the write is in moved.txt')
  t.equal(await fsp.readFile(at(b, 'moved.txt'), 'utf8'), want, 'B: the write is in moved.txt')
  t.same(allConflictCopies(tree), [], 'no conflict copy')
})

t.test('a directory renamed or removed on B while a file in it is open for writing on A', async t => {
  const { a, b, at } = await twoMounts(t)
  for (const d of ['moving', 'going']) {
    await fsp.mkdir(at(a, d))
    await fsp.writeFile(at(a, `${d}/doc.txt`), OLD)
  }
  await settleOrFail(t, [a, b])
  const moving = await fsp.open(at(a, 'moving/doc.txt'), 'r+')
  const going = await fsp.open(at(a, 'going/doc.txt'), 'r+')
  await fsp.rename(at(b, 'moving'), at(b, 'moved'))
  await fsp.rm(at(b, 'going'), { recursive: true })
  await waitFor('both to reach A', async () => !(await exists(at(a, 'moving'))) && !(await exists(at(a, 'going'))) && await exists(at(a, 'moved/doc.txt')), 15_000)
  await moving.write(AFTER, 0)
  await going.write(AFTER, 0)
  await Promise.all([moving.close(), going.close()])
  const tree = await settleOrFail(t, [a, b])
  if (!tree) return
  const want = AFTER + OLD.slice(AFTER.length)
  t.equal(await fsp.readFile(at(b, 'moved/doc.txt'), 'utf8'), want, 'the write follows the renamed directory')
  const copies = allConflictCopies(tree)
  t.equal(copies.length, 1, `one conflict copy (${JSON.stringify(copies)})`)
  t.equal(path.posix.dirname(copies[0] ?? 'x/y'), '.', 'at the top, its directory being gone')
  if (copies[0]) t.equal(await fsp.readFile(at(b, copies[0]), 'utf8'), want, 'holding the write to the removed directory\'s file')
  t.notOk('going' in tree, 'the removed directory stays removed')
})

t.test('replaced on B by a rename (an atomic save) while open for writing on A, written after', async t => {
  const { a, b, at } = await twoMounts(t)
  await fsp.writeFile(at(a, 'doc.txt'), OLD)
  await settleOrFail(t, [a, b])
  const fh = await fsp.open(at(a, 'doc.txt'), 'r+')
  const SAVED = 'saved on B, a whole new version\n'
  await fsp.writeFile(at(b, '.doc.txt.swp'), SAVED)
  await fsp.rename(at(b, '.doc.txt.swp'), at(b, 'doc.txt'))
  await waitFor('the save to reach A', async () => (await fsp.readFile(at(a, 'doc.txt'), 'utf8').catch(() => '')) === SAVED, 15_000)
  await fh.write(AFTER, 0)
  await fh.close()
  const tree = await settleOrFail(t, [a, b])
  if (!tree) return
  t.equal(await fsp.readFile(at(b, 'doc.txt'), 'utf8'), SAVED, 'the name holds B\'s save')
  const copies = allConflictCopies(tree)
  t.equal(copies.length, 1, 'one conflict copy')
  if (copies[0]) t.equal(await fsp.readFile(at(b, copies[0]), 'utf8'), AFTER + OLD.slice(AFTER.length), 'holding A\'s write over the version it had open')
})

t.test('two descriptors write at once after the delete: one conflict copy holds both writes', async t => {
  const { a, b, at } = await twoMounts(t)
  await fsp.writeFile(at(a, 'doc.txt'), OLD)
  await settleOrFail(t, [a, b])
  const [one, two] = await Promise.all([fsp.open(at(a, 'doc.txt'), 'r+'), fsp.open(at(a, 'doc.txt'), 'r+')])
  await fsp.unlink(at(b, 'doc.txt'))
  await waitFor('the delete to reach A', async () => !(await exists(at(a, 'doc.txt'))), 15_000)
  await Promise.all([one!.write('ONE', 0), two!.write('TWO', 100)])
  await Promise.all([one!.close(), two!.close()])
  const tree = await settleOrFail(t, [a, b])
  if (!tree) return
  const copies = allConflictCopies(tree)
  t.equal(copies.length, 1, `one conflict copy (${JSON.stringify(copies)})`)
  const want = 'ONE' + OLD.slice(3, 100) + 'TWO' + OLD.slice(103)
  if (copies[0]) t.equal(await fsp.readFile(at(b, copies[0]), 'utf8'), want, 'with both writes, on B too')
})

t.test('a directory renamed on B, then again on A, while a file in it is open for writing on A: the write follows both', async t => {
  const { a, b, at } = await twoMounts(t)
  await fsp.mkdir(at(a, 'moving'))
  await fsp.writeFile(at(a, 'moving/doc.txt'), OLD)
  await settleOrFail(t, [a, b])
  const fh = await fsp.open(at(a, 'moving/doc.txt'), 'r+')
  await fsp.rename(at(b, 'moving'), at(b, 'moved'))
  await waitFor('the rename to reach A', async () => !(await exists(at(a, 'moving'))) && await exists(at(a, 'moved/doc.txt')), 15_000)
  await fsp.rename(at(a, 'moved'), at(a, 'renamed'))
  await fh.write(AFTER, 0)
  await fh.close()
  const tree = await settleOrFail(t, [a, b])
  if (!tree) return
  const want = AFTER + OLD.slice(AFTER.length)
  t.equal(await fsp.readFile(at(a, 'renamed/doc.txt'), 'utf8'), want, 'A: the write is in renamed/doc.txt')
  t.equal(await fsp.readFile(at(b, 'renamed/doc.txt'), 'utf8'), want, 'B: the write is in renamed/doc.txt')
  t.same(allConflictCopies(tree), [], 'no conflict copy')
})

t.test('renamed on B, then replaced on A by a local rename over the new name: the descriptor\'s later write dies with its file', async t => {
  const { a, b, at } = await twoMounts(t)
  await fsp.writeFile(at(a, 'doc.txt'), OLD)
  await settleOrFail(t, [a, b])
  const fh = await fsp.open(at(a, 'doc.txt'), 'r+')
  await fsp.rename(at(b, 'doc.txt'), at(b, 'moved.txt'))
  await waitFor('the rename to reach A', async () => !(await exists(at(a, 'doc.txt'))) && await exists(at(a, 'moved.txt')), 15_000)
  // As on a local disk: the file the descriptor has is unlinked by the
  // rename over its name, and what is written to it after goes nowhere.
  const NEW = 'a new version saved over moved.txt on A\n'.repeat(10)
  await fsp.writeFile(at(a, 'new.txt'), NEW)
  await fsp.rename(at(a, 'new.txt'), at(a, 'moved.txt'))
  await fh.write(AFTER, 0)
  await fh.close()
  const tree = await settleOrFail(t, [a, b])
  if (!tree) return
  t.equal(await fsp.readFile(at(a, 'moved.txt'), 'utf8'), NEW, 'A: moved.txt holds the saved version')
  t.equal(await fsp.readFile(at(b, 'moved.txt'), 'utf8'), NEW, 'B: moved.txt holds the saved version, not mixed with the orphaned write')
  t.same(allConflictCopies(tree), [], 'no conflict copy')
})

t.test('replaced on B by an atomic save while A has it open with unsent writes, written after: one conflict copy', async t => {
  const { a, b, at } = await twoMounts(t)
  await fsp.writeFile(at(a, 'doc.txt'), OLD)
  await settleOrFail(t, [a, b])
  // O_TRUNC: the rewrite is held (unsent) until the file is closed.
  const fh = await fsp.open(at(a, 'doc.txt'), 'w')
  await fh.write(BEFORE, 0)
  const SAVED = 'saved on B, a whole new version\n'
  await fsp.writeFile(at(b, '.doc.txt.swp'), SAVED)
  await fsp.rename(at(b, '.doc.txt.swp'), at(b, 'doc.txt'))
  await waitFor('the save to reach A', async () => (await fsp.readFile(at(a, 'doc.txt'), 'utf8').catch(() => '')) === SAVED, 15_000)
  await fh.write(AFTER, BEFORE.length)
  await fh.close()
  const tree = await settleOrFail(t, [a, b])
  if (!tree) return
  t.equal(await fsp.readFile(at(b, 'doc.txt'), 'utf8'), SAVED, 'the name holds B\'s save')
  const copies = allConflictCopies(tree)
  const contents = await Promise.all(copies.map(f => fsp.readFile(at(b, f), 'utf8')))
  t.equal(copies.length, 1, `one conflict copy (${JSON.stringify(Object.fromEntries(copies.map((f, i) => [f, contents[i]])))})`)
  t.equal(contents[0], BEFORE + AFTER, 'holding both of A\'s writes')
})
