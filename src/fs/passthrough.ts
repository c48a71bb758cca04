// Passthrough: the Vfs over a real backing directory. Each handle maps to a
// backing file descriptor (one lookup, then one syscall per read or write);
// the indirection lets a rewrite move the old file aside under an open
// handle and point the handle at the new, empty file.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import type { StatFs, Vfs } from './vfs.js'
import { msToNumberNs, utimesSeconds } from '../util/times.js'

const { O_WRONLY, O_RDWR, O_ACCMODE = 3, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_NOCTTY } = fs.constants as Record<string, number> & { O_ACCMODE?: number }
// The kernel has already resolved O_CREAT/O_EXCL (lookup) and O_TRUNC
// (setattr) and computes append offsets itself; passing them on would
// re-truncate or, for O_APPEND, make every pwrite land at EOF.
const STRIPPED_FLAGS = O_CREAT! | O_EXCL! | O_TRUNC! | O_APPEND! | O_NOCTTY!

// fs.read/fs.write carry their own promisified forms, which resolve to
// objects; these resolve to the byte count, without a FileHandle.
function readP (fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, off, len, pos, (err, n) => err ? reject(err) : resolve(n)))
}
function writeP (fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, buf, off, len, pos, (err, n) => err ? reject(err) : resolve(n)))
}
const openP = promisify(fs.open)
const closeP = promisify(fs.close)

export class Passthrough implements Vfs {
  private readonly fds = new Map<number, number>()
  private nextFh = 1

  constructor (readonly root: string) {}

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

  /** Points an open handle at the file now at path (read-write), closing the old descriptor. */
  async reopen (fh: number, p: string): Promise<void> {
    const old = this.fd(fh)
    this.fds.set(fh, await openP(this.real(p), O_RDWR!))
    await closeP(old)
  }

  /** The backing path of a volume path. FUSE hands us normalized absolute paths. */
  real (p: string): string {
    return path.join(this.root, p)
  }

  getattr (p: string): Promise<fs.Stats> { return fsp.lstat(this.real(p)) }

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
    return this.handle(await openP(this.real(p), O_CREAT! | O_RDWR!, mode))
  }

  async read (_p: string, fh: number, buf: Buffer, len: number, pos: number): Promise<number> {
    return readP(this.fd(fh), buf, 0, len, pos)
  }

  async write (_p: string, fh: number, buf: Buffer, len: number, pos: number): Promise<number> {
    let done = 0
    const fd = this.fd(fh)
    while (done < len) done += await writeP(fd, buf, done, len - done, pos + done)
    return done
  }

  async flush (): Promise<void> {}

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

  mkdir (p: string, mode: number): Promise<void> { return fsp.mkdir(this.real(p), { mode }) }

  rmdir (p: string): Promise<void> { return fsp.rmdir(this.real(p)) }

  rename (from: string, to: string): Promise<void> { return fsp.rename(this.real(from), this.real(to)) }

  symlink (target: string, p: string): Promise<void> { return fsp.symlink(target, this.real(p)) }

  readlink (p: string): Promise<string> { return fsp.readlink(this.real(p)) }

  link (existing: string, newPath: string): Promise<void> { return fsp.link(this.real(existing), this.real(newPath)) }

  chmod (p: string, mode: number): Promise<void> { return fsp.chmod(this.real(p), mode) }

  chown (p: string, uid: number, gid: number): Promise<void> { return fsp.lchown(this.real(p), uid, gid) }

  utimens (p: string, atimeMs: number, mtimeMs: number): Promise<void> {
    return fsp.lutimes(this.real(p), utimesSeconds(msToNumberNs(atimeMs)), utimesSeconds(msToNumberNs(mtimeMs)))
  }
}

