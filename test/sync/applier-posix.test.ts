// The applier's new ops from the wire: user.* extended attributes, FIFOs
// and owners are applied idempotently; other attribute namespaces, device
// nodes and out-of-range ids are refused before anything changes.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import t, { type Test } from 'tap'
import { getAttribute, listAttributes } from 'fs-xattr'
import type { Op, Transaction } from '../../src/codec/wire.js'
import { Applier } from '../../src/sync/applier.js'
import { tempDir } from '../helpers/processes.js'

let seq = 0
function tx (p: string, ops: Op[]): Transaction {
  return { txId: { deviceId: 'dev', deviceSeq: ++seq }, volume: 'v', fileId: '', baseVersion: 0, path: p, ops, mtimeNs: 0n }
}

async function refused (t: Test, p: Promise<unknown>, code: string, what: string): Promise<void> {
  await p.then(() => t.fail(`${what}: applied`), (err: { code?: string }) => t.equal(err.code, code, what))
}

t.test('xattrs, FIFOs and owners from the wire', async t => {
  const root = tempDir()
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }))
  const applier = new Applier(root)
  const real = (p: string): string => path.join(root, p)

  await applier.apply(tx('/f', [{ create: { mode: 0o644 } }, { setXattr: { name: 'user.tag', value: Buffer.from('v1') } }]))
  t.equal(String(await getAttribute(real('f'), 'user.tag')), 'v1', 'SetXattr applied')
  await applier.apply(tx('/f', [{ setXattr: { name: 'user.tag', value: Buffer.from('v1') } }]))
  t.equal(String(await getAttribute(real('f'), 'user.tag')), 'v1', 'SetXattr replayed: same result')
  await applier.apply(tx('/f', [{ removeXattr: { name: 'user.tag' } }]))
  await applier.apply(tx('/f', [{ removeXattr: { name: 'user.tag' } }]))
  t.same(await listAttributes(real('f')), [], 'RemoveXattr applied, and replayed without error')

  await refused(t, applier.apply(tx('/g', [{ create: { mode: 0o644 } }, { setXattr: { name: 'trusted.x', value: Buffer.from('v') } }])), 'BAD_FRAME', 'trusted.* refused')
  await refused(t, applier.apply(tx('/g', [{ create: { mode: 0o644 } }, { setXattr: { name: 'security.capability', value: Buffer.from('v') } }])), 'BAD_FRAME', 'security.* refused')
  await refused(t, applier.apply(tx('/g', [{ create: { mode: 0o644 } }, { removeXattr: { name: 'system.posix_acl_access' } }])), 'BAD_FRAME', 'system.* refused')
  await refused(t, applier.apply(tx('/g', [{ create: { mode: 0o644 } }, { setXattr: { name: 'user.big', value: Buffer.alloc(65537) } }])), 'BAD_FRAME', 'a value over 64 KiB refused')
  t.equal(await fsp.lstat(real('g')).then(() => 'there', () => 'absent'), 'absent', 'a refused transaction changed nothing')

  // A symlink at the path: the attribute never reaches its target.
  await fsp.writeFile(real('target'), '')
  await fsp.symlink('target', real('link'))
  await refused(t, applier.apply(tx('/link', [{ setXattr: { name: 'user.x', value: Buffer.from('v') } }])), 'EPERM', 'SetXattr on a symlink fails')
  t.same(await listAttributes(real('target')), [], 'the symlink target is untouched')

  await applier.apply(tx('/fifo', [{ mknod: { mode: fs.constants.S_IFIFO | 0o640 } }]))
  await applier.apply(tx('/fifo', [{ mknod: { mode: fs.constants.S_IFIFO | 0o600 } }]))
  const st = await fsp.lstat(real('fifo'))
  t.ok(st.isFIFO(), 'Mknod made a FIFO')
  t.equal(st.mode & 0o7777, 0o600, 'a replay over the FIFO sets its mode')
  await refused(t, applier.apply(tx('/f', [{ mknod: { mode: fs.constants.S_IFIFO | 0o600 } }])), 'BAD_PATH', 'Mknod over a regular file refused')
  await refused(t, applier.apply(tx('/dev', [{ mknod: { mode: fs.constants.S_IFCHR | 0o600 } }])), 'BAD_FRAME', 'a character device refused')
  await refused(t, applier.apply(tx('/dev', [{ mknod: { mode: fs.constants.S_IFBLK | 0o600 } }])), 'BAD_FRAME', 'a block device refused')
  await refused(t, applier.apply(tx('/dev', [{ mknod: { mode: fs.constants.S_IFSOCK | 0o600 } }])), 'BAD_FRAME', 'a socket refused')

  await applier.apply(tx('/f', [{ setAttr: { hasUid: true, uid: 65534, hasGid: true, gid: 1234 } }]))
  let o = await fsp.lstat(real('f'))
  t.same([o.uid, o.gid], [65534, 1234], 'SetAttr owner and group applied')
  await applier.apply(tx('/f', [{ setAttr: { hasGid: true, gid: 4321 } }]))
  o = await fsp.lstat(real('f'))
  t.same([o.uid, o.gid], [65534, 4321], 'a group alone leaves the owner')
  await refused(t, applier.apply(tx('/f', [{ setAttr: { hasUid: true, uid: 0xffffffff } }])), 'BAD_FRAME', 'uid (uid_t)-1 refused')
  await refused(t, applier.apply(tx('/f', [{ setAttr: { hasGid: true, gid: -5 } }])), 'BAD_FRAME', 'a negative gid refused')
})

t.test('in-place writes to a file this mount does not have ask for the whole file', async t => {
  const root = tempDir()
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }))
  const applier = new Applier(root)
  const data = Buffer.from('tail')
  await refused(t, applier.apply(tx('/missing', [{ write: { offset: 6096, data } }])), 'BASE_MISMATCH', 'a write at an offset into nothing is a base mismatch')
  t.equal(await fsp.lstat(path.join(root, 'missing')).then(() => 'there', () => 'absent'), 'absent', 'no sparse fragment was made')
  await applier.apply(tx('/new', [{ create: { mode: 0o644 } }, { write: { offset: 0, data } }]))
  await applier.apply(tx('/fresh', [{ truncate: { size: 0 } }, { write: { offset: 0, data } }]))
  t.equal(fs.readFileSync(path.join(root, 'new'), 'utf8') + fs.readFileSync(path.join(root, 'fresh'), 'utf8'), 'tailtail', 'a create or a rewrite from 0 still makes the file')
  await applier.apply(tx('/new', [{ write: { offset: 4, data } }]))
  t.equal(fs.readFileSync(path.join(root, 'new'), 'utf8'), 'tailtail', 'a write to a file that is there applies')
  fs.writeFileSync(path.join(root, 'there'), 'a longer file this mount had at the name')
  await applier.apply(tx('/there', [{ create: { mode: 0o644 } }, { write: { offset: 0, data } }]))
  t.equal(fs.readFileSync(path.join(root, 'there'), 'utf8'), 'tail', 'a Create starts the file over: no tail of what was there')
  // Without the directory, the author's whole file could not be applied either: no heal loop.
  await refused(t, applier.apply(tx('/gone-dir/f', [{ write: { offset: 10, data } }])), 'ENOENT', 'a write under a missing directory fails plainly')

  // A hard link of a file deleted here: the author sends the linked name whole.
  await refused(t, applier.apply(tx('/deleted-here', [{ link: { to: '/linked' } }])), 'BASE_MISMATCH', 'a link of a missing file is a base mismatch')
  fs.writeFileSync(path.join(root, 'linked'), 'kept')
  await refused(t, applier.apply(tx('/deleted-here', [{ link: { to: '/linked' } }])), 'BASE_MISMATCH', 'so is one onto a name that is here')
  t.equal(fs.readFileSync(path.join(root, 'linked'), 'utf8'), 'kept', 'which is left as it is until the author sends it')
})

t.test('a Create over a hard link replaces that name only', async t => {
  const root = tempDir()
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }))
  const applier = new Applier(root)
  fs.writeFileSync(path.join(root, 'x'), 'the linked file')
  fs.linkSync(path.join(root, 'x'), path.join(root, 'y'))
  await applier.apply(tx('/y', [{ create: { mode: 0o644 } }, { write: { offset: 0, data: Buffer.from('new y') } }]))
  t.equal(fs.readFileSync(path.join(root, 'y'), 'utf8'), 'new y', 'y is the new file')
  t.equal(fs.readFileSync(path.join(root, 'x'), 'utf8'), 'the linked file', 'x keeps its content')
  t.equal(fs.statSync(path.join(root, 'x')).nlink, 1, 'and is no longer linked to y')
})

// The author renamed a over b, two different files there; here the two are
// one file (this mount linked them): rename(2) alone would do nothing.
t.test('a rename between two names of one file here removes the source name', async t => {
  const root = tempDir()
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }))
  const applier = new Applier(root)
  fs.writeFileSync(path.join(root, 'a'), 'one file')
  fs.linkSync(path.join(root, 'a'), path.join(root, 'b'))
  await applier.apply(tx('/a', [{ rename: { to: '/b' } }]))
  t.notOk(fs.existsSync(path.join(root, 'a')), 'a is gone, as on the author')
  t.equal(fs.readFileSync(path.join(root, 'b'), 'utf8'), 'one file', 'b has the file')
  await applier.apply(tx('/a', [{ rename: { to: '/b' } }]))
  t.equal(fs.readFileSync(path.join(root, 'b'), 'utf8'), 'one file', 'applied again (a replay after a crash): nothing changes')
})

// Links can differ between mounts (one made offline, one that lost a race):
// a file sent whole replaces its name, as on its author, where the name
// had no other.
t.test('a file started over with its content replaces a hard-linked name; a lone truncate empties the file in place', async t => {
  const root = tempDir()
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }))
  const applier = new Applier(root)
  fs.writeFileSync(path.join(root, 'x'), 'the linked file')
  fs.linkSync(path.join(root, 'x'), path.join(root, 'y'))
  await applier.apply(tx('/y', [{ truncate: { size: 0 } }, { write: { offset: 0, data: Buffer.from('y whole') } }, { setAttr: { hasMode: true, mode: 0o600 } }]))
  t.equal(fs.readFileSync(path.join(root, 'y'), 'utf8'), 'y whole', 'y is the file sent')
  t.equal(fs.statSync(path.join(root, 'y')).mode & 0o777, 0o600, 'with its mode')
  t.equal(fs.readFileSync(path.join(root, 'x'), 'utf8'), 'the linked file', 'x keeps its content')
  fs.linkSync(path.join(root, 'x'), path.join(root, 'z'))
  await applier.apply(tx('/z', [{ truncate: { size: 0 } }]))
  t.equal(fs.readFileSync(path.join(root, 'x'), 'utf8'), '', 'a lone truncate to 0 empties every name of the file, as on its author')
})

// This mount linked v to w and has not sent it: the others apply the link
// after this change, so w ends with the new content there too.
t.test('a file started over is written through a hard link this mount made from it and has not sent', async t => {
  const root = tempDir()
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }))
  const asked: string[] = []
  const applier = new Applier(root, { deviceId: 'me', tempPath: () => path.join(root, 'tmp'), onRefresh: async () => {}, linksPendingFrom: async p => { asked.push(p); return p === '/v' } })
  fs.writeFileSync(path.join(root, 'v'), 'old')
  fs.linkSync(path.join(root, 'v'), path.join(root, 'w'))
  await applier.apply(tx('/v', [{ truncate: { size: 0 } }, { write: { offset: 0, data: Buffer.from('new v') } }]))
  t.same(asked, ['/v'], 'the mount was asked about its unsent links')
  t.equal(fs.readFileSync(path.join(root, 'w'), 'utf8'), 'new v', 'w, linked here and soon everywhere, has the new content')
  t.equal(fs.statSync(path.join(root, 'v')).nlink, 2, 'v and w are still one file')
})

// Links can differ between mounts. A write reaches every name of the file
// it is applied to, so it must be applied to a file with no names beyond
// those it reached on its author, who sent it under each of them (alsoAt).
t.test("a change of a hard-linked name reaches only the names it reached on its author", async t => {
  const root = tempDir()
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }))
  let n = 0
  const applier = new Applier(root, { deviceId: 'me', tempPath: () => path.join(root, `.tmp${++n}`), onRefresh: async () => {} })
  const real = (p: string): string => path.join(root, p)
  const ino = (p: string): number => fs.statSync(real(p)).ino
  fs.writeFileSync(real('x'), 'old content')
  fs.linkSync(real('x'), real('y'))
  fs.linkSync(real('x'), real('z'))
  const edit = { write: { offset: 0, data: Buffer.from('NEW') } }

  // Linked as here on the author: applied in place, the links stay.
  await applier.apply({ ...tx('/x', [edit]), alsoAt: ['/y', '/z'] })
  t.same(['x', 'y', 'z'].map(p => fs.readFileSync(real(p), 'utf8')), ['NEW content', 'NEW content', 'NEW content'], 'every name has the write')
  t.equal(ino('y'), ino('x'), 'still one file')

  // The author had x and y as one file, and z not.
  const second = { write: { offset: 4, data: Buffer.from('CONTENT') } }
  await applier.apply({ ...tx('/x', [second]), alsoAt: ['/y'] })
  t.equal(fs.readFileSync(real('z'), 'utf8'), 'NEW content', 'z, not a name of the file on the author, is left as it was')
  t.equal(fs.readFileSync(real('x'), 'utf8'), 'NEW CONTENT', 'x has the write')
  await applier.apply({ ...tx('/y', [second]), alsoAt: ['/x'] })
  t.equal(fs.readFileSync(real('y'), 'utf8'), 'NEW CONTENT', 'y has it by its own transaction')
  t.equal(fs.readFileSync(real('z'), 'utf8'), 'NEW content', 'z still as it was')

  // An author with one name: nothing else changes.
  fs.linkSync(real('x'), real('w'))
  await applier.apply(tx('/w', [{ setAttr: { hasMode: true, mode: 0o600 } }, { truncate: { size: 3 } }]))
  t.equal(fs.readFileSync(real('w'), 'utf8'), 'NEW', 'w has the truncation')
  t.equal(fs.readFileSync(real('x'), 'utf8'), 'NEW CONTENT', 'x, which the author did not change, keeps its content')
  t.equal(fs.statSync(real('x')).mode & 0o777, 0o644, 'and its mode')
  t.equal(fs.statSync(real('w')).mode & 0o777, 0o600, 'w has the mode')
})

// The author linked c to x and y (its link ordered after another mount's
// change of x and y), then wrote through one of them without having seen
// that change: the node refuses the write under x and y, and takes it
// under c, a name new to the file. Applied in place here, it would reach x
// and y through the link and replace the change that came first.
t.test('a change under a name new to a file does not reach names that changed after its author last looked', async t => {
  const root = tempDir()
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }))
  let n = 0
  // x and y changed at seq 10 by another device; c was linked at 11 by the author (dev).
  const last: Record<string, { version: number; by: string }> = { '/x': { version: 10, by: 'other' }, '/y': { version: 10, by: 'other' }, '/c': { version: 11, by: 'dev' } }
  const applier = new Applier(root, { deviceId: 'me', tempPath: () => path.join(root, `.tmp${++n}`), onRefresh: async () => {}, lastChange: async p => last[p] })
  const real = (p: string): string => path.join(root, p)
  fs.writeFileSync(real('x'), 'the first change')
  fs.linkSync(real('x'), real('y'))
  fs.linkSync(real('x'), real('c'))
  await applier.apply({ ...tx('/c', [{ write: { offset: 0, data: Buffer.from('concurrent') } }]), alsoAt: ['/x', '/y'], alsoBase: 5 })
  t.equal(fs.readFileSync(real('c'), 'utf8'), 'concurrentchange', 'c has the change')
  t.same(['x', 'y'].map(p => fs.readFileSync(real(p), 'utf8')), ['the first change', 'the first change'], 'x and y keep the change that came first')
  await applier.apply({ ...tx('/c', [{ write: { offset: 0, data: Buffer.from('C') } }]), alsoAt: ['/x', '/y'], alsoBase: 12 })
  t.equal(fs.readFileSync(real('x'), 'utf8'), 'the first change', 'a later change of c stays off them too (c is a file of its own now)')
  fs.linkSync(real('x'), real('d'))
  // The author's own changes after alsoBase (the link that made d) are known to it.
  last['/x'] = { version: 14, by: 'dev' }
  await applier.apply({ ...tx('/d', [{ write: { offset: 0, data: Buffer.from('T') } }]), alsoAt: ['/x', '/y'], alsoBase: 12 })
  t.same(['x', 'y', 'd'].map(p => fs.readFileSync(real(p), 'utf8')), ['The first change', 'The first change', 'The first change'], 'a change made after seeing theirs reaches them')
})

// This mount deleted c and has not sent it; another mount's link to c,
// ordered first, reaches here: the others make the link and then delete it.
t.test('a remote hard link to a name this mount deleted and has not sent is not made', async t => {
  const root = tempDir()
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }))
  const applier = new Applier(root, { deviceId: 'me', tempPath: () => path.join(root, '.tmp'), onRefresh: async () => {}, removedHere: async p => p === '/c' })
  fs.writeFileSync(path.join(root, 'x'), 'x')
  await applier.apply(tx('/x', [{ link: { to: '/c' } }]))
  t.notOk(fs.existsSync(path.join(root, 'c')), 'c stays deleted, as it ends on the others')
  await applier.apply(tx('/x', [{ link: { to: '/d' } }]))
  t.equal(fs.statSync(path.join(root, 'd')).ino, fs.statSync(path.join(root, 'x')).ino, 'a link to another name is made')
})

// This mount deleted x (or renamed it away) and has not sent it; another
// mount's rename of x over c, ordered first, reaches here. The others put x
// in c's place, then apply this mount's change, which follows the rename.
t.test('a remote rename over a name, of a file this mount removed and has not sent: the old file there goes', async t => {
  const root = tempDir()
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }))
  const real = (p: string): string => path.join(root, p)
  const removing: string[] = []
  const applier = new Applier(root, {
    deviceId: 'me', tempPath: () => real('.tmp'), onRefresh: async () => {}, onRemoving: async p => { removing.push(p) },
    removedHere: async p => p === '/x', changedHere: p => p === '/e', interruptedSeq: () => 7,
  })
  fs.writeFileSync(real('c'), 'the old c')
  await applier.apply(tx('/x', [{ rename: { to: '/c' } }]), undefined, 5)
  t.notOk(fs.existsSync(real('c')), 'c is gone, as it ends on the others once the removal follows')
  t.same(removing, ['/c'], 'descriptors open on it are told')
  // Not removed here: the file is missing for another reason (a deletion
  // that lost a conflict, its content still to come back). Renamed over,
  // d would keep its old content: its author sends it whole.
  fs.writeFileSync(real('d'), 'the old d')
  await refused(t, applier.apply(tx('/y', [{ rename: { to: '/d' } }]), undefined, 6), 'BASE_MISMATCH', 'a rename of a missing file over a name that is here is a base mismatch')
  t.equal(fs.readFileSync(real('d'), 'utf8'), 'the old d', 'and changes nothing')
  // The apply a crash interrupted, again: its rename is done already.
  await applier.apply(tx('/y', [{ rename: { to: '/d' } }]), undefined, 7)
  t.equal(fs.readFileSync(real('d'), 'utf8'), 'the old d', 'a replay finds the rename done: the file at its target stays')
  // A name this mount changed itself (its own rename of the same file there, say).
  fs.writeFileSync(real('e'), 'x, renamed to e here too')
  await applier.apply(tx('/x', [{ rename: { to: '/e' } }]), undefined, 8)
  t.equal(fs.readFileSync(real('e'), 'utf8'), 'x, renamed to e here too', "a target with this mount's own change pending stays")
})

t.test('a FIFO where a file is expected does not block the apply', async t => {
  const root = tempDir()
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }))
  const applier = new Applier(root)
  await applier.apply(tx('/p', [{ mknod: { mode: fs.constants.S_IFIFO | 0o644 } }]))
  const started = Date.now()
  await refused(t, applier.apply(tx('/p', [{ create: { mode: 0o644 } }, { write: { offset: 0, data: Buffer.from('x') } }])), 'ENXIO', 'refused at once: no reader')
  t.ok(Date.now() - started < 5000, 'without waiting for a reader')
})
