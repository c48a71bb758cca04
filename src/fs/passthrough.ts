// Passthrough: the Vfs over a real backing directory. Each handle maps to a
// backing file descriptor (one lookup, then one syscall per read or write);
// the indirection lets a rewrite move the old file aside under an open
// handle and point the handle at the new, empty file.
//
// Calls that only touch an inode (lstat, create, mkdir, chmod, ...) and
// small writes, which land in the page cache, run synchronously: they take
// microseconds, less than a round trip through the libuv threadpool, which
// costs two thread switches on top of the FUSE thread's own (bench/RESULTS.md,
// "metadata path"). Reads, large writes, fsync, truncate
// and removals stay asynchronous: they can wait on the disk (freeing a large
// file's blocks, dirty-page throttling) and must not stall every other call.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import type { FuseShortcuts, StatFs, Vfs } from './vfs.js'
import { getXattr, listXattr, removeXattr, setXattr } from './xattr.js'
import { mkfifo } from './mkfifo.js'
import { FsError } from '../util/errors.js'
import { logger } from '../util/log.js'
import type { TimeSet } from '../util/times.js'
import { setTimes } from '../util/set-times.js'
import { readAt, writeAt } from '../util/fd-io.js'

const log = logger('fs')
const { S_IFMT, S_IFIFO, S_IFREG } = fs.constants

const { O_WRONLY, O_RDWR, O_ACCMODE = 3, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_NOCTTY, O_DIRECT = 0 } = fs.constants as Record<string, number> & { O_ACCMODE?: number }
// The kernel has already resolved O_CREAT/O_EXCL (lookup) and O_TRUNC
// (setattr) and computes append offsets itself; passing them on would
// re-truncate or, for O_APPEND, make every pwrite land at EOF. O_DIRECT is
// the kernel's business too (it bypasses the mount's page cache): on the
// backing file it would demand aligned buffers that FUSE's are not.
const STRIPPED_FLAGS = O_CREAT! | O_EXCL! | O_TRUNC! | O_APPEND! | O_NOCTTY! | O_DIRECT
/** The error fs.lstat would give for a missing path, without its throw and message formatting. */
function enoent (p: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`ENOENT: no such file or directory, lstat '${p}'`), { code: 'ENOENT', errno: -os.constants.errno.ENOENT, syscall: 'lstat' })
}
/** Writes up to this size are synchronous. */
const SYNC_WRITE_MAX = 32 * 1024

const openP = promisify(fs.open)
const closeP = promisify(fs.close)

export class Passthrough implements Vfs {
  private readonly fds = new Map<number, number>()
  private nextFh = 1

  readonly shortcuts: FuseShortcuts

  constructor (readonly root: string) {
    this.shortcuts = { statRoot: path.resolve(root) }
  }

  private handle (fd: number): number {
    const fh = this.nextFh++
    this.fds.set(fh, fd)
    return fh
  }

  private fd (fh: number): number {
    const fd = this.fds.get(fh)
    if (fd === undefined) throw Object.assign(new Error(`bad handle ${fh}`), { code: 'EBADF' })
    return fd
  }

  /**
   * Points an open handle at the file now at path (read-write), closing the
   * old descriptor. FUSE sends RELEASE asynchronously, so the handle may be
   * released before or while this runs: then there is nothing to point, and
   * the old descriptor is release's to close. Closing it here too would
   * close whatever file had been given its number in between.
   */
  async reopen (fh: number, p: string): Promise<void> {
    const old = this.fds.get(fh)
    if (old === undefined) return
    const fd = await openP(this.real(p), O_RDWR!)
    if (this.fds.get(fh) !== old) { await closeP(fd); return }
    this.fds.set(fh, fd)
    await closeP(old)
  }

  /** The backing path of a volume path. FUSE hands us normalized absolute paths. */
  real (p: string): string {
    return path.join(this.root, p)
  }

  /**
   * With an entry timeout of 0 the kernel asks for the attributes of every
   * path component of every call (about 11 per file of a tar x). The FUSE
   * threads answer most of them (shortcuts); these come here when they
   * cannot (names that are not UTF-8, the shipped prebuild). A missing name
   * (the lookup before every create) is answered without building a Node fs
   * error.
   */
  getattr (p: string): Promise<fs.BigIntStats> {
    try {
      const st = this.getattrNow(p)
      return st ? Promise.resolve(st) : Promise.reject(enoent(p))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  // bigint: the times to the nanosecond (a double holds them to ~100 ns).
  getattrNow (p: string): fs.BigIntStats | undefined {
    return fs.lstatSync(this.real(p), { throwIfNoEntry: false, bigint: true })
  }

  async fgetattr (p: string, fh: number): Promise<fs.BigIntStats> {
    const fd = this.fds.get(fh)
    // Directories have no handle here (no opendir): they go by name.
    if (fd === undefined) return this.getattr(p)
    return fs.fstatSync(fd, { bigint: true })
  }

  async readdir (p: string): Promise<string[]> { return fsp.readdir(this.real(p)) }

  access (p: string, mode: number): Promise<void> { return fsp.access(this.real(p), mode) }

  async statfs (p: string): Promise<StatFs> {
    const s = await fsp.statfs(this.real(p))
    return { bsize: s.bsize, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, favail: s.ffree, namemax: 255 }
  }

  async open (p: string, flags: number): Promise<number> {
    const clean = flags & ~STRIPPED_FLAGS
    // Write-only handles are opened read-write so that capture can compare
    // old bytes; if the mode forbids reading we fall back to write-only.
    if ((clean & O_ACCMODE) === O_WRONLY) {
      try { return this.handle(await openP(this.real(p), (clean & ~O_ACCMODE) | O_RDWR!)) } catch { /* fall through */ }
    }
    return this.handle(await openP(this.real(p), clean))
  }

  async create (p: string, mode: number): Promise<number> {
    return this.handle(fs.openSync(this.real(p), O_CREAT! | O_RDWR!, mode))
  }

  async read (_p: string, fh: number, buf: Buffer, len: number, pos: number): Promise<number> {
    return readAt(this.fd(fh), buf, 0, len, pos)
  }

  async write (_p: string, fh: number, buf: Buffer, len: number, pos: number): Promise<number> {
    let done = 0
    const fd = this.fd(fh)
    if (len <= SYNC_WRITE_MAX) {
      while (done < len) done += fs.writeSync(fd, buf, done, len - done, pos + done)
      return done
    }
    while (done < len) done += await writeAt(fd, buf, done, len - done, pos + done)
    return done
  }

  async fsync (_p: string, fh: number, datasync: boolean): Promise<void> {
    return promisify(datasync ? fs.fdatasync : fs.fsync)(this.fd(fh))
  }

  async release (_p: string, fh: number): Promise<void> {
    const fd = this.fd(fh)
    this.fds.delete(fh)
    await closeP(fd)
  }

  truncate (p: string, size: number): Promise<void> { return fsp.truncate(this.real(p), size) }

  async ftruncate (_p: string, fh: number, size: number): Promise<void> { return promisify(fs.ftruncate)(this.fd(fh), size) }

  unlink (p: string): Promise<void> { return fsp.unlink(this.real(p)) }

  async mkdir (p: string, mode: number): Promise<void> { fs.mkdirSync(this.real(p), { mode }) }

  rmdir (p: string): Promise<void> { return fsp.rmdir(this.real(p)) }

  rename (from: string, to: string): Promise<void> { return fsp.rename(this.real(from), this.real(to)) }

  async symlink (target: string, p: string): Promise<void> { fs.symlinkSync(target, this.real(p)) }

  readlink (p: string): Promise<string> { return fsp.readlink(this.real(p)) }

  async link (existing: string, newPath: string): Promise<void> { fs.linkSync(this.real(existing), this.real(newPath)) }

  async chmod (p: string, mode: number): Promise<void> { fs.chmodSync(this.real(p), mode) }

  async chown (p: string, uid: number, gid: number): Promise<void> { fs.lchownSync(this.real(p), uid, gid) }

  /**
   * Times come to the nanosecond, and one may be 'omit' (touch -m), only
   * with the fuse-native addon that scripts/fix-fuse-native.mjs patches;
   * its shipped prebuild passes whole milliseconds and libfuse drops
   * single-time updates (see src/fs/fuse-native-fixes.ts).
   */
  async utimens (p: string, atime: TimeSet, mtime: TimeSet): Promise<void> {
    setTimes(this.real(p), atime, mtime)
  }

  async mknod (p: string, mode: number, _dev: number): Promise<void> {
    const type = mode & S_IFMT!
    if (type === S_IFIFO) return mkfifo(this.real(p), mode & 0o7777)
    // libfuse turns mknod of a regular file into create; this is the rest.
    if (type === S_IFREG) { await (await fsp.open(this.real(p), O_CREAT! | O_EXCL! | O_WRONLY!, mode & 0o7777)).close(); return }
    // Device nodes would be a way around nodev on the other mounts, and
    // sockets only mean something to the process bound to them.
    log.warn({ path: p, mode: mode.toString(8) }, 'mknod of a device node or socket refused')
    throw new FsError(os.constants.errno.EPERM, 'only FIFOs and regular files can be created with mknod')
  }

  getxattr (p: string, name: string): Promise<Buffer> { return getXattr(this.real(p), name) }

  setxattr (p: string, name: string, value: Buffer, flags: number): Promise<void> { return setXattr(this.real(p), name, value, flags) }

  listxattr (p: string): Promise<string[]> { return listXattr(this.real(p)) }

  removexattr (p: string, name: string): Promise<void> { return removeXattr(this.real(p), name) }
}

