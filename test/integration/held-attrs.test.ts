// Attribute changes of a file still being written (tar x sets a new file's
// times, owner and mode through its descriptor before closing it; an editor
// copies the old mode onto its temp file before renaming it over) join the
// file's transaction: one transaction per file, and the attributes reach the
// other mounts with the content, a delta's included.
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { Cluster } from '../helpers/cluster.js'
import type { MountHandle } from '../helpers/processes.js'
import { settled } from '../helpers/sync-barrier.js'

const MTIME = new Date('2001-02-03T04:05:06.000Z')

function attrs (p: string): { mode: number; mtimeMs: number; size: number } {
  const st = fs.statSync(p)
  return { mode: st.mode & 0o7777, mtimeMs: st.mtimeMs, size: st.size }
}

const closed = async (m: MountHandle): Promise<number> => Number((await m.status()).txClosed)

t.test('a file written as tar x writes it is one transaction, attributes included', async t => {
  const c = await Cluster.start(t, 2)
  const [A, B] = c.mounts as [MountHandle, MountHandle]
  t.teardown(() => { if (!t.passing()) t.comment(c.logs()) })
  await settled(c, A)
  const before = await closed(A)
  const fh = await fsp.open(path.join(A.mountpoint, 'f.txt'), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600)
  await fh.write('from the archive\n')
  await fh.utimes(MTIME, MTIME)
  await fh.chown(process.getuid?.() ?? 0, process.getgid?.() ?? 0)
  await fh.chmod(0o754)
  await fh.close()
  await settled(c, A)
  t.equal(await closed(A) - before, 1, 'create, write, times, owner and mode: one transaction')
  const want = attrs(path.join(A.mountpoint, 'f.txt'))
  t.same(want, { mode: 0o754, mtimeMs: MTIME.getTime(), size: 17 }, 'A has what tar set')
  t.same(attrs(path.join(B.mountpoint, 'f.txt')), want, 'B has the content, mode and time')
  t.equal(fs.readFileSync(path.join(B.mountpoint, 'f.txt'), 'utf8'), 'from the archive\n')
})

t.test('a temp file given its mode and time, then renamed over the file: the delta carries them', async t => {
  const c = await Cluster.start(t, 2)
  const [A, B] = c.mounts as [MountHandle, MountHandle]
  t.teardown(() => { if (!t.passing()) t.comment(c.logs()) })
  // Random text: compression alone must not make the whole file look like a delta.
  const lines = Array.from({ length: 20_000 }, (_, i) => `line ${i} ${randomBytes(16).toString('hex')}\n`).join('')
  const target = path.join(A.mountpoint, 'doc.txt')
  await fsp.writeFile(target, lines, { mode: 0o644 })
  await settled(c, A)
  const pushedBefore = Number((await A.status()).bytesPushed)
  const edited = lines.replace('line 10000 ', 'LINE 10000 ')
  const tmp = path.join(A.mountpoint, '.doc.txt.swp')
  const fh = await fsp.open(tmp, 'wx', 0o600)
  await fh.write(edited)
  await fh.chmod(0o640)
  await fh.utimes(MTIME, MTIME)
  await fh.close()
  await fsp.rename(tmp, target)
  await settled(c, A)
  const pushed = Number((await A.status()).bytesPushed) - pushedBefore
  t.ok(pushed < 16 << 10, `sent as a delta (${pushed} bytes pushed for a ${edited.length}-byte file)`)
  const onB = path.join(B.mountpoint, 'doc.txt')
  t.equal(fs.readFileSync(onB, 'utf8'), edited, 'B has the new content')
  t.same(attrs(onB), attrs(target), 'and the mode and time set on the temp file')
  t.same(attrs(onB), { mode: 0o640, mtimeMs: MTIME.getTime(), size: edited.length })
  t.notOk(fs.existsSync(path.join(B.mountpoint, '.doc.txt.swp')), 'no temp file left on B')
})
