// The FUSE edge: each fuse-native callback calls the Vfs and maps the outcome
// to a status exactly once. No filesystem logic lives here.
import type { FuseOps, FuseStat } from 'fuse-native'
import type { BigIntStats } from 'node:fs'
import os from 'node:os'
import type { Vfs } from './vfs.js'
import { toErrno } from '../util/errors.js'
import type { Logger } from '../util/log.js'

function toFuseStat (s: BigIntStats): FuseStat {
  return {
    mode: Number(s.mode), uid: Number(s.uid), gid: Number(s.gid), size: Number(s.size), dev: Number(s.dev), nlink: Number(s.nlink),
    ino: Number(s.ino), rdev: Number(s.rdev), blksize: Number(s.blksize), blocks: Number(s.blocks),
    atime: Number(s.atimeMs), mtime: Number(s.mtimeMs), ctime: Number(s.ctimeMs), atimeNs: s.atimeNs, mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs,
  }
}

export function fuseOps (vfs: Vfs, log: Logger): FuseOps {
  const fail = (op: string, err: unknown): number => {
    const { errno, known } = toErrno(err)
    if (!known) log.error({ op, err }, 'unexpected error, returning EIO')
    else if (log.isLevelEnabled('debug')) log.debug({ op, err: (err as Error).message }, 'operation failed')
    return errno
  }
  // Settles a FUSE callback from a promise: value callbacks get (0, value),
  // failures get the negative errno.
  function status (op: string, p: Promise<unknown>, cb: (status: number) => void): void {
    p.then(() => cb(0), err => cb(fail(op, err)))
  }
  function value<T> (op: string, p: Promise<T>, cb: (status: number, value?: T) => void): void {
    p.then(v => cb(0, v), err => cb(fail(op, err)))
  }
  function count (op: string, p: Promise<number>, cb: (result: number) => void): void {
    p.then(n => cb(n), err => cb(fail(op, err)))
  }

  const getattrNow = vfs.getattrNow?.bind(vfs)
  const ENOENT = -os.constants.errno.ENOENT
  return {
    getattr: getattrNow
      ? (p, cb) => {
          let st: BigIntStats | undefined
          try { st = getattrNow(p) } catch (err) { cb(fail('getattr', err)); return }
          if (st) cb(0, toFuseStat(st)); else cb(ENOENT)
        }
      : (p, cb) => value('getattr', vfs.getattr(p).then(toFuseStat), cb),
    fgetattr: (p, fd, cb) => value('fgetattr', vfs.fgetattr(p, fd).then(toFuseStat), cb),
    readdir: (p, cb) => value('readdir', vfs.readdir(p), cb),
    access: (p, mode, cb) => status('access', vfs.access(p, mode), cb),
    statfs: (p, cb) => value('statfs', vfs.statfs(p).then(s => ({ ...s, fsid: 0, flag: 0 })), cb),
    open: (p, flags, cb) => value('open', vfs.open(p, flags), cb),
    create: (p, mode, cb) => value('create', vfs.create(p, mode), cb),
    read: (p, fd, buf, len, pos, cb) => count('read', vfs.read(p, fd, buf, len, pos), cb),
    write: (p, fd, buf, len, pos, cb) => count('write', vfs.write(p, fd, buf, len, pos), cb),
    // No flush: libfuse answers the first FLUSH with ENOSYS, after which the
    // kernel sends none, and close(2) returns without a trip through the JS
    // thread (a fifth of a git clone's requests). Nothing is lost: writes
    // went through already, and a file's transaction closes at its RELEASE.
    fsync: (p, datasync, fd, cb) => status('fsync', vfs.fsync(p, fd, datasync), cb),
    release: (p, fd, cb) => status('release', vfs.release(p, fd), cb),
    truncate: (p, size, cb) => status('truncate', vfs.truncate(p, size), cb),
    ftruncate: (p, fd, size, cb) => status('ftruncate', vfs.ftruncate(p, fd, size), cb),
    unlink: (p, cb) => status('unlink', vfs.unlink(p), cb),
    mkdir: (p, mode, cb) => status('mkdir', vfs.mkdir(p, mode), cb),
    rmdir: (p, cb) => status('rmdir', vfs.rmdir(p), cb),
    rename: (from, to, cb) => status('rename', vfs.rename(from, to), cb),
    symlink: (target, p, cb) => status('symlink', vfs.symlink(target, p), cb),
    readlink: (p, cb) => value('readlink', vfs.readlink(p), cb),
    link: (existing, p, cb) => status('link', vfs.link(existing, p), cb),
    chmod: (p, mode, cb) => status('chmod', vfs.chmod(p, mode), cb),
    chown: (p, uid, gid, cb) => status('chown', vfs.chown(p, uid, gid), cb),
    utimens: (p, atime, mtime, cb) => status('utimens', vfs.utimens(p, atime, mtime), cb),
    mknod: (p, mode, dev, cb) => status('mknod', vfs.mknod(p, mode, dev), cb),
    getxattr: (p, name, _position, cb) => value('getxattr', vfs.getxattr(p, name), cb),
    // value is FUSE's memory, valid only until we answer.
    setxattr: (p, name, v, _position, flags, cb) => status('setxattr', vfs.setxattr(p, name, Buffer.from(v), flags), cb),
    listxattr: (p, cb) => value('listxattr', vfs.listxattr(p), cb),
    removexattr: (p, name, cb) => status('removexattr', vfs.removexattr(p, name), cb),
  }
}
