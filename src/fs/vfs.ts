// Vfs: the filesystem operations the FUSE edge calls, as promises. Paths are
// volume paths ("/", "/a/b"); fh is the handle returned by open/create.
import type { BigIntStats } from 'node:fs'
import type { TimeSet } from '../util/times.js'

export interface StatFs {
  bsize: number; frsize: number; blocks: number; bfree: number; bavail: number
  files: number; ffree: number; favail: number; namemax: number
}

/**
 * Requests the FUSE edge may answer on its own threads, without a round trip
 * through the JS thread to the Vfs (a tar x asks for attributes about ten
 * times per file, and a security.capability before every write). Each must
 * give exactly what the Vfs itself would answer.
 */
export interface FuseShortcuts {
  /** getattr(p) is lstat(statRoot + p), nothing more. */
  statRoot?: string
  /** getxattr of a name outside user.* is ENODATA. */
  userXattrsOnly?: boolean
}

export interface Vfs {
  readonly shortcuts?: FuseShortcuts
  /** lstat of a path. */
  getattr (path: string): Promise<BigIntStats>
  /** fstat of an open handle: its name may be gone (unlinked by another mount). */
  fgetattr (path: string, fh: number): Promise<BigIntStats>
  /**
   * lstat of a path answered at once, undefined when it does not exist: the
   * kernel asks for attributes dozens of times per created file, and a
   * promise chain per answer is a measurable part of the cost.
   */
  getattrNow? (path: string): BigIntStats | undefined
  /** Names in a directory, without "." and "..". */
  readdir (path: string): Promise<string[]>
  /** Checks access(2) mode bits. */
  access (path: string, mode: number): Promise<void>
  /** Usage of the backing store. */
  statfs (path: string): Promise<StatFs>
  /** Opens an existing file; returns a handle. */
  open (path: string, flags: number): Promise<number>
  /** Creates and opens a file; returns a handle. */
  create (path: string, mode: number): Promise<number>
  /** Reads into buf; returns the byte count. */
  read (path: string, fh: number, buf: Buffer, len: number, pos: number): Promise<number>
  /** Writes buf; returns the byte count. buf may be reused once the promise settles. */
  write (path: string, fh: number, buf: Buffer, len: number, pos: number): Promise<number>
  /** fsync/fdatasync of an open file. */
  fsync (path: string, fh: number, datasync: boolean): Promise<void>
  /** Last close of a handle. */
  release (path: string, fh: number): Promise<void>
  /** Sets the size of a file by path. */
  truncate (path: string, size: number): Promise<void>
  /** Sets the size of an open file. */
  ftruncate (path: string, fh: number, size: number): Promise<void>
  /** Removes a file, symlink or other non-directory. */
  unlink (path: string): Promise<void>
  /** Creates a directory. */
  mkdir (path: string, mode: number): Promise<void>
  /** Removes an empty directory. */
  rmdir (path: string): Promise<void>
  /** Renames, replacing the target as rename(2) does. */
  rename (from: string, to: string): Promise<void>
  /** Creates a symlink at path pointing to target. */
  symlink (target: string, path: string): Promise<void>
  /** The target of a symlink. */
  readlink (path: string): Promise<string>
  /** Creates a hard link newPath to existing. */
  link (existing: string, newPath: string): Promise<void>
  /** Sets permission bits. */
  chmod (path: string, mode: number): Promise<void>
  /** Sets owner and group. */
  chown (path: string, uid: number, gid: number): Promise<void>
  /** Sets access and modification times (ns since the epoch, 'now'), or leaves one unchanged ('omit'). */
  utimens (path: string, atime: TimeSet, mtime: TimeSet): Promise<void>
  /** Creates a special file; mode carries the file type (S_IFIFO, S_IFCHR, ...). */
  mknod (path: string, mode: number, dev: number): Promise<void>
  /** The value of an extended attribute; ENODATA when there is none of that name. */
  getxattr (path: string, name: string): Promise<Buffer>
  /** Sets an extended attribute; flags are XATTR_CREATE / XATTR_REPLACE. */
  setxattr (path: string, name: string, value: Buffer, flags: number): Promise<void>
  /** Names of the extended attributes. */
  listxattr (path: string): Promise<string[]>
  /** Removes an extended attribute; ENODATA when there is none of that name. */
  removexattr (path: string, name: string): Promise<void>
}
