// Passthrough over a temp backing dir, without FUSE: exact error codes, handle
// I/O, and the open-flag rules capture depends on.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { Passthrough } from '../../src/fs/passthrough.js'
import { toErrno } from '../../src/util/errors.js'

const { O_RDONLY, O_WRONLY, O_RDWR, O_APPEND, O_TRUNC, O_CREAT, O_EXCL } = fs.constants
const E = os.constants.errno

async function backing (t: Test): Promise<{ vfs: Passthrough; root: string }> {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'deltafs-passthrough-'))
  t.teardown(() => fsp.rm(root, { recursive: true, force: true }))
  return { vfs: new Passthrough(root), root }
}

/** Opens and registers the handle for release at teardown. */
async function opened (t: Test, vfs: Passthrough, p: string, flags: number): Promise<number> {
  const fh = await vfs.open(p, flags)
  t.teardown(() => vfs.release(p, fh).catch(() => undefined))
  return fh
}

/** What a promise rejected with, as code and FUSE errno. */
async function failure (p: Promise<unknown>): Promise<{ code: string | undefined; errno: number } | 'resolved'> {
  try {
    await p
    return 'resolved'
  } catch (err) {
    return { code: (err as NodeJS.ErrnoException).code, errno: toErrno(err).errno }
  }
}

t.test('exact error codes', async t => {
  const { vfs, root } = await backing(t)
  await fsp.mkdir(path.join(root, 'dir'))
  await fsp.writeFile(path.join(root, 'dir', 'inside'), 'x')
  await fsp.mkdir(path.join(root, 'empty'))
  await fsp.writeFile(path.join(root, 'file'), 'content')

  t.same(await failure(vfs.getattr('/missing')), { code: 'ENOENT', errno: -E.ENOENT }, 'getattr of a missing path: ENOENT')
  t.same(await failure(vfs.getattr('/dir/missing/deeper')), { code: 'ENOENT', errno: -E.ENOENT }, 'getattr below a missing dir: ENOENT')
  t.same(await failure(vfs.mkdir('/dir', 0o755)), { code: 'EEXIST', errno: -E.EEXIST }, 'mkdir of an existing dir: EEXIST')
  t.same(await failure(vfs.mkdir('/file', 0o755)), { code: 'EEXIST', errno: -E.EEXIST }, 'mkdir over a file: EEXIST')
  t.same(await failure(vfs.rmdir('/dir')), { code: 'ENOTEMPTY', errno: -E.ENOTEMPTY }, 'rmdir of a non-empty dir: ENOTEMPTY')
  t.same(await failure(vfs.rmdir('/file')), { code: 'ENOTDIR', errno: -E.ENOTDIR }, 'rmdir of a file: ENOTDIR')
  t.same(await failure(vfs.unlink('/empty')), { code: 'EISDIR', errno: -E.EISDIR }, 'unlink of a directory: EISDIR (Linux)')
  t.same(await failure(vfs.unlink('/missing')), { code: 'ENOENT', errno: -E.ENOENT }, 'unlink of a missing file: ENOENT')
  t.same(await failure(vfs.open('/file/below', O_RDONLY)), { code: 'ENOTDIR', errno: -E.ENOTDIR }, 'open of a path under a file: ENOTDIR')
  t.same(await failure(vfs.open('/missing', O_RDONLY)), { code: 'ENOENT', errno: -E.ENOENT }, 'open of a missing file: ENOENT')
  t.same(await failure(vfs.readlink('/file')), { code: 'EINVAL', errno: -E.EINVAL }, 'readlink of a regular file: EINVAL')
  t.same(await failure(vfs.readdir('/file')), { code: 'ENOTDIR', errno: -E.ENOTDIR }, 'readdir of a file: ENOTDIR')
  t.same(await failure(vfs.rename('/empty', '/dir')), { code: 'ENOTEMPTY', errno: -E.ENOTEMPTY }, 'rename a dir over a non-empty dir: ENOTEMPTY')
  t.same(await failure(vfs.rename('/file', '/empty')), { code: 'EISDIR', errno: -E.EISDIR }, 'rename a file over a dir: EISDIR')
  t.same(await failure(vfs.access('/missing', fs.constants.F_OK)), { code: 'ENOENT', errno: -E.ENOENT }, 'access of a missing path: ENOENT')
  t.same(await failure(vfs.link('/dir', '/dirlink')), { code: 'EPERM', errno: -E.EPERM }, 'hard link to a directory: EPERM')
  t.same(await failure(vfs.symlink('/target', '/file')), { code: 'EEXIST', errno: -E.EEXIST }, 'symlink over an existing name: EEXIST')
})

t.test('write and read through a handle', async t => {
  const { vfs, root } = await backing(t)
  const fh = await vfs.create('/f', 0o644)
  t.teardown(() => vfs.release('/f', fh).catch(() => undefined))
  t.equal(await vfs.write('/f', fh, Buffer.from('hello world'), 11, 0), 11, 'write returns the byte count')
  t.equal(await vfs.write('/f', fh, Buffer.from('WORLD-and-more'), 5, 6), 5, 'only len bytes of the buffer are written')
  const buf = Buffer.alloc(64)
  t.equal(await vfs.read('/f', fh, buf, 64, 0), 11, 'read returns the file length when asking for more')
  t.equal(buf.subarray(0, 11).toString(), 'hello WORLD', 'bytes read back')
  t.equal(await vfs.read('/f', fh, buf, 3, 6), 3, 'read of 3 bytes at 6')
  t.equal(buf.subarray(0, 3).toString(), 'WOR', 'the bytes at 6')
  t.equal(await vfs.read('/f', fh, buf, 10, 11), 0, 'read at EOF: 0')
  t.equal(await vfs.write('/f', fh, Buffer.from('z'), 1, 1 << 20), 1, 'write far past EOF')
  t.equal((await vfs.getattr('/f')).size, BigInt((1 << 20) + 1), 'the file grew to 1 MiB + 1')
  t.equal(await vfs.read('/f', fh, buf, 4, 100), 4, 'a hole reads as bytes')
  t.same([...buf.subarray(0, 4)], [0, 0, 0, 0], 'zeros')
  await vfs.ftruncate('/f', fh, 5)
  t.equal((await fsp.readFile(path.join(root, 'f'))).toString(), 'hello', 'ftruncate through the handle')
  await vfs.fsync('/f', fh, false)
  await vfs.fsync('/f', fh, true)
  t.pass('fsync and fdatasync of the handle')
})

t.test('O_WRONLY handles can still be read (capture compares old bytes)', async t => {
  const { vfs, root } = await backing(t)
  await fsp.writeFile(path.join(root, 'f'), '0123456789')
  const fh = await opened(t, vfs, '/f', O_WRONLY)
  const buf = Buffer.alloc(4)
  t.equal(await vfs.read('/f', fh, buf, 4, 2), 4, 'read through a write-only handle')
  t.equal(buf.toString(), '2345', 'the old bytes')
  t.equal(await vfs.write('/f', fh, Buffer.from('ab'), 2, 8), 2, 'and it writes')
  t.equal(await fsp.readFile(path.join(root, 'f'), 'utf8'), '01234567ab', 'content after the write')

  const ro = await opened(t, vfs, '/f', O_RDONLY)
  t.same(await failure(vfs.write('/f', ro, Buffer.from('x'), 1, 0)), { code: 'EBADF', errno: -E.EBADF }, 'a read-only handle still refuses writes: EBADF')
})

t.test('flags the kernel already handled are stripped', async t => {
  const { vfs, root } = await backing(t)
  const file = path.join(root, 'f')
  await fsp.writeFile(file, 'hello world')

  const app = await opened(t, vfs, '/f', O_WRONLY | O_APPEND)
  t.equal(await vfs.write('/f', app, Buffer.from('J'), 1, 0), 1, 'write at offset 0 on an O_APPEND handle')
  t.equal(await fsp.readFile(file, 'utf8'), 'Jello world', 'it landed at offset 0, not at EOF')
  t.equal(await vfs.write('/f', app, Buffer.from('!'), 1, 11), 1, 'write at the EOF offset the kernel computed')
  t.equal(await fsp.readFile(file, 'utf8'), 'Jello world!', 'appended once')

  await opened(t, vfs, '/f', O_RDWR | O_TRUNC)
  t.equal(await fsp.readFile(file, 'utf8'), 'Jello world!', 'O_TRUNC in open flags does not truncate (the kernel sends a setattr)')

  await opened(t, vfs, '/f', O_RDWR | O_CREAT | O_EXCL)
  t.pass('O_CREAT|O_EXCL on an existing file opens it (the kernel checked existence)')
})

t.test('namespace and attribute operations land in the backing dir', async t => {
  const { vfs, root } = await backing(t)
  await vfs.mkdir('/d', 0o755)
  const fh = await vfs.create('/d/a', 0o644)
  await vfs.write('/d/a', fh, Buffer.from('abc'), 3, 0)
  await vfs.release('/d/a', fh)
  await vfs.symlink('a', '/d/s')
  await vfs.link('/d/a', '/d/h')
  t.same((await vfs.readdir('/d')).sort(), ['a', 'h', 's'], 'readdir lists names without . and ..')
  t.equal(await vfs.readlink('/d/s'), 'a', 'readlink gives the target as written')
  t.ok((await vfs.getattr('/d/s')).isSymbolicLink(), 'getattr does not follow a symlink')
  t.equal((await vfs.getattr('/d/h')).nlink, 2n, 'hard link: two links')
  await vfs.rename('/d/a', '/d/b')
  t.equal(await fsp.readFile(path.join(root, 'd', 'b'), 'utf8'), 'abc', 'rename moved the file')
  await vfs.truncate('/d/b', 1)
  t.equal(await fsp.readFile(path.join(root, 'd', 'b'), 'utf8'), 'a', 'truncate by path')
  await vfs.chmod('/d/b', 0o600)
  t.equal((await fsp.stat(path.join(root, 'd', 'b'))).mode & 0o7777, 0o600, 'chmod')
  await vfs.utimens('/d/b', 1_600_000_000_000_000_000n, 1_650_000_000_123_456_789n)
  let st = await fsp.stat(path.join(root, 'd', 'b'), { bigint: true })
  t.same([st.atimeNs, st.mtimeNs], [1_600_000_000_000_000_000n, 1_650_000_000_123_456_789n], 'utimens sets both times to the ns')
  await vfs.utimens('/d/b', 'omit', 1_000_000_000_000_000_001n)
  st = await fsp.stat(path.join(root, 'd', 'b'), { bigint: true })
  t.same([st.atimeNs, st.mtimeNs], [1_600_000_000_000_000_000n, 1_000_000_000_000_000_001n], 'utimens with atime omitted keeps it')
  await vfs.unlink('/d/b')
  await vfs.unlink('/d/h')
  await vfs.unlink('/d/s')
  await vfs.rmdir('/d')
  t.same(await fsp.readdir(root), [], 'everything removed')
  const sf = await vfs.statfs('/')
  t.equal(sf.namemax, 255, 'statfs namemax')
  t.ok(sf.bsize > 0 && sf.blocks > 0, 'statfs has sizes')
})

t.test('a handle released while a rewrite reopens it stays released, and no other descriptor is closed', async t => {
  const { vfs, root } = await backing(t)
  await fsp.writeFile(path.join(root, 'f'), 'old content')
  await fsp.writeFile(path.join(root, 'g'), 'other file')
  const openFds = (): number => fs.readdirSync('/proc/self/fd').length
  const fh = await vfs.open('/f', O_RDWR)
  const before = openFds()
  // FUSE's RELEASE is asynchronous: it can arrive while the reopen waits for
  // its open, and another open can then be given the released number.
  const reopening = vfs.reopen(fh, '/f')
  const releasing = vfs.release('/f', fh)
  const other = await opened(t, vfs, '/g', O_RDONLY)
  t.equal(await failure(reopening), 'resolved', 'the reopen of a handle released meanwhile succeeds (nothing left to point)')
  await releasing
  t.same(await failure(vfs.read('/f', fh, Buffer.alloc(4), 4, 0)), { code: 'EBADF', errno: -E.EBADF }, 'the released handle stays released')
  const buf = Buffer.alloc(10)
  t.equal(await vfs.read('/g', other, buf, 10, 0), 10, 'the file opened meanwhile still reads')
  t.equal(buf.toString(), 'other file', 'through its own descriptor')
  t.equal(openFds(), before, 'no descriptor leaked: f\'s closed, g\'s open')
  // Released before the reopen starts: nothing to do either.
  t.equal(await failure(vfs.reopen(fh, '/f')), 'resolved', 'a reopen after the release is a no-op')
})
