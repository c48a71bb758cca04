// OpenDeleted on its own, on a real directory: a file deleted elsewhere while
// open here comes back once as a conflict copy, whatever fails on the way.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { OpenDeleted } from '../../src/capture/open-deleted.js'

const BY = { deviceId: 'dev-b', seq: 7 }

async function setup (t: Test, journalNewFile: (p: string) => Promise<void> = async () => {}): Promise<{ files: string; asideDir: string; od: OpenDeleted; kept: string[] }> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'deltafs-open-deleted-'))
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  const files = path.join(dir, 'files')
  const asideDir = path.join(dir, 'aside')
  await fsp.mkdir(files)
  await fsp.mkdir(asideDir)
  let n = 0
  const kept: string[] = []
  const od = new OpenDeleted({
    real: p => path.join(files, p),
    aside: () => path.join(asideDir, `${++n}.tmp`),
    deviceId: 'dev-a',
    journalNewFile,
    kept: async e => { kept.push(e.copy) },
    now: () => new Date('2026-12-07T12:00:00Z'),
  })
  return { files, asideDir, od, kept }
}

t.test('a copy whose journaling failed is journaled by the next write, under the same name', async t => {
  let fail = true
  const journaled: string[] = []
  const { files, asideDir, od, kept } = await setup(t, async p => {
    if (fail) { fail = false; throw new Error('journal unavailable') }
    journaled.push(p)
  })
  await fsp.writeFile(path.join(files, 'doc.txt'), 'content')
  await od.adopt('/doc.txt', [3], BY)
  t.notOk(fs.existsSync(path.join(files, 'doc.txt')), 'moved out of the tree')
  await t.rejects(od.copyFor(3), /journal unavailable/, 'the first attempt fails')
  t.ok(od.has(3), 'the handle still waits for its copy')
  const { copy, handles } = await od.copyFor(3)
  t.match(copy, /^\/doc \(conflict dev-a 20261207T120000Z\)\.txt$/, 'the copy has a conflict copy name')
  t.same(handles, [3])
  t.same(journaled, [copy], 'journaled once, under the name the link gave it')
  t.same(kept, [copy])
  t.equal(await fsp.readFile(path.join(files, copy), 'utf8'), 'content')
  t.same(fs.readdirSync(files), [path.posix.basename(copy)], 'one copy in the tree')
  t.same(fs.readdirSync(asideDir), [], 'nothing left aside')
  t.notOk(od.has(3))
})

t.test('adopted with no handle left open (all released during the move): the file goes, as the delete said', async t => {
  const { files, asideDir, od } = await setup(t)
  await fsp.writeFile(path.join(files, 'doc.txt'), 'content')
  await od.adopt('/doc.txt', [], BY)
  t.same(fs.readdirSync(files), [], 'not in the tree')
  t.same(fs.readdirSync(asideDir), [], 'not left aside')
})

t.test('a file already gone when adopted: nothing to keep, and no error (the delete goes on)', async t => {
  const { asideDir, od } = await setup(t)
  await od.adopt('/missing.txt', [4], BY)
  t.notOk(od.has(4), 'the handle has no deleted file')
  t.same(fs.readdirSync(asideDir), [])
})

t.test('closed without a write: removed; written: kept', async t => {
  const { files, asideDir, od } = await setup(t)
  await fsp.writeFile(path.join(files, 'a.txt'), 'a')
  await fsp.writeFile(path.join(files, 'b.txt'), 'b')
  await od.adopt('/a.txt', [1, 2], BY)
  await od.adopt('/b.txt', [5], BY)
  t.equal(await od.release(1), undefined)
  t.equal(fs.readdirSync(asideDir).length, 2, 'a stays aside while handle 2 has it')
  t.equal(await od.release(2), undefined)
  const { copy } = await od.copyFor(5)
  t.equal(await od.release(5), undefined, 'the copy\'s handles are the caller\'s once it is made')
  t.same(fs.readdirSync(asideDir), [], 'nothing left aside')
  t.same(fs.readdirSync(files), [path.posix.basename(copy)], 'only b\'s copy in the tree')
})
