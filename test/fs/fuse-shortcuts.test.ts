// The FUSE threads answer getattr and foreign-namespace getxattr themselves
// when the Vfs allows it (FuseShortcuts), and the answers are the ones the
// Vfs would give. The mount runs in this process, so the test only uses
// asynchronous calls: a synchronous one would block the thread that serves
// the requests it makes.
import fs from 'node:fs'
import os from 'node:os'
import fsp from 'node:fs/promises'
import path from 'node:path'
import t, { type Test } from 'tap'
import { getAttribute, setAttribute } from 'fs-xattr'
import { FuseSession, inodesFit32Bits } from '../../src/fs/fuse-session.js'
import { fuseOps } from '../../src/fs/fuse-ops.js'
import { Passthrough } from '../../src/fs/passthrough.js'
import type { FuseShortcuts, Vfs } from '../../src/fs/vfs.js'
import { FsError } from '../../src/util/errors.js'
import { logger } from '../../src/util/log.js'
import { forceUnmount, tempDir } from '../helpers/processes.js'

const { ENODATA } = os.constants.errno

/** A Passthrough that counts the getattr and getxattr calls reaching it; refuses non-user attributes as CaptureVfs does. */
function countingVfs (root: string, shortcuts: FuseShortcuts | undefined): { vfs: Vfs; calls: { getattr: number; getxattr: number } } {
  const inner = new Passthrough(root)
  const calls = { getattr: 0, getxattr: 0 }
  const vfs = Object.create(inner) as Vfs & { shortcuts?: FuseShortcuts }
  Object.defineProperty(vfs, 'shortcuts', { value: shortcuts })
  vfs.getattrNow = (p: string) => { calls.getattr++; return inner.getattrNow(p) }
  vfs.getxattr = async (p: string, name: string) => {
    calls.getxattr++
    if (!name.startsWith('user.')) throw new FsError(ENODATA!, `no attribute ${name}`)
    return inner.getxattr(p, name)
  }
  return { vfs, calls }
}

async function mounted (t: Test, shortcutsFor: (back: string) => FuseShortcuts | undefined): Promise<{ back: string; mnt: string; session: FuseSession; calls: { getattr: number; getxattr: number } }> {
  const dir = tempDir('deltafs-shortcuts-')
  const back = path.join(dir, 'back')
  const mnt = path.join(dir, 'mnt')
  fs.mkdirSync(back)
  fs.mkdirSync(mnt)
  const shortcuts = shortcutsFor(path.resolve(back))
  const { vfs, calls } = countingVfs(back, shortcuts)
  const session = new FuseSession(mnt, fuseOps(vfs, logger('test')), { fsname: 'shortcuts-test', attrTimeout: 0, useIno: await inodesFit32Bits(back), shortcuts })
  await session.open()
  t.teardown(async () => {
    await session.close().catch(() => forceUnmount(mnt))
    fs.rmSync(dir, { recursive: true, force: true })
  })
  return { back, mnt, session, calls }
}

async function errCode (p: Promise<unknown>): Promise<string | undefined> {
  try { await p; return undefined } catch (err) { return (err as NodeJS.ErrnoException).code }
}

for (const on of [true, false]) {
  t.test(`shortcuts ${on ? 'taken' : 'not asked for'}: stat and getxattr answer the same`, async t => {
    const m = await mounted(t, back => on ? { statRoot: back, userXattrsOnly: true } : undefined)
    t.same(m.session.shortcutsTaken, on ? ['getattr', 'getxattr'] : [])
    fs.mkdirSync(path.join(m.back, 'd'))
    fs.writeFileSync(path.join(m.back, 'd', 'f.txt'), 'hello')
    fs.symlinkSync('f.txt', path.join(m.back, 'd', 'link'))
    await setAttribute(path.join(m.back, 'd', 'f.txt'), 'user.color', Buffer.from('blue'))
    const before = { ...m.calls }

    for (const name of ['d', 'd/f.txt', 'd/link']) {
      const viaMount = await fsp.lstat(path.join(m.mnt, name), { bigint: true })
      const direct = fs.lstatSync(path.join(m.back, name), { bigint: true })
      t.same([viaMount.mode, viaMount.size, viaMount.ino, viaMount.nlink, viaMount.mtimeNs, viaMount.ctimeNs], [direct.mode, direct.size, direct.ino, direct.nlink, direct.mtimeNs, direct.ctimeNs], `${name}: lstat through the mount is the backing lstat`)
    }
    t.equal(await errCode(fsp.lstat(path.join(m.mnt, 'd', 'missing'))), 'ENOENT', 'a missing name is ENOENT')
    t.equal(await errCode(fsp.lstat(path.join(m.mnt, 'd', 'f.txt', 'under-a-file'))), 'ENOTDIR', 'a path through a file is ENOTDIR')
    t.equal(await errCode(getAttribute(path.join(m.mnt, 'd', 'f.txt'), 'security.capability')), 'ENODATA', 'security.capability is absent')
    t.equal((await getAttribute(path.join(m.mnt, 'd', 'f.txt'), 'user.color')).toString(), 'blue', 'a user attribute is read from the file')

    const xattrCalls = m.calls.getxattr - before.getxattr
    const getattrCalls = m.calls.getattr - before.getattr
    // A name that is not UTF-8 reaches the Vfs as JS spells it (U+FFFD for
    // the bad byte) in create: its stat must look up that same spelling.
    const latin1 = Buffer.from(path.join(m.mnt, 'd', 'caf\xe9.txt'), 'latin1')
    await fsp.writeFile(latin1, 'x')
    t.equal((await fsp.lstat(latin1)).size, 1, 'a name that is not UTF-8 is found where create put it')
    const latin1Getattrs = m.calls.getattr - before.getattr - getattrCalls

    if (on) {
      t.equal(getattrCalls, 0, 'no getattr of a UTF-8 name reached the Vfs')
      t.ok(latin1Getattrs > 0, 'those of the name that is not UTF-8 did')
      // fs-xattr asks for the size, then the value: two requests for one read.
      t.equal(xattrCalls, 2, 'only the user.* getxattr reached the Vfs')
    } else {
      t.ok(getattrCalls >= 5, `every getattr reached the Vfs (${getattrCalls})`)
      t.equal(xattrCalls, 3, 'both getxattr reached the Vfs')
    }
  })
}

t.test('a stat root cannot be set twice', async t => {
  const m = await mounted(t, () => ({ statRoot: '/' }))
  t.same(m.session.shortcutsTaken, ['getattr'])
  const fuse = (m.session as unknown as { fuse: { takeShortcuts (s: FuseShortcuts): string[] } }).fuse
  t.throws(() => fuse.takeShortcuts({ statRoot: '/tmp' }), /already set/)
})
