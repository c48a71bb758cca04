// Local typings for fuse-native 2.x: callbacks take a status (0 or a negative
// errno) first; read and write take the byte count or a negative errno.
declare module 'fuse-native' {
  type Cb = (status: number) => void
  type CbV<T> = (status: number, value?: T) => void
  export interface FuseStat {
    mode: number; uid: number; gid: number; size: number; dev?: number; nlink: number; ino?: number
    rdev?: number; blksize?: number; blocks?: number; atime: Date | number; mtime: Date | number; ctime: Date | number
    /** The times in ns since the epoch, exact; FixedFuse passes them whole where the addon is patched (else ms). */
    atimeNs?: bigint; mtimeNs?: bigint; ctimeNs?: bigint
  }
  /** A time utimens asks for, as FixedFuse (src/fs/fuse-native-fixes.ts) passes it: ns since the epoch, now, or unchanged. */
  export type FuseTime = bigint | 'now' | 'omit'
  export interface FuseStatfs {
    bsize: number; frsize: number; blocks: number; bfree: number; bavail: number
    files: number; ffree: number; favail: number; fsid: number; flag: number; namemax: number
  }
  export interface FuseOps {
    init?: (cb: Cb) => void
    statfs?: (path: string, cb: CbV<FuseStatfs>) => void
    getattr?: (path: string, cb: CbV<FuseStat>) => void
    fgetattr?: (path: string, fd: number, cb: CbV<FuseStat>) => void
    access?: (path: string, mode: number, cb: Cb) => void
    open?: (path: string, flags: number, cb: CbV<number>) => void
    create?: (path: string, mode: number, cb: CbV<number>) => void
    /** With FixedFuse: exact times, and single-time updates (one of them 'omit'). fuse-native itself passes ms numbers. */
    utimens?: (path: string, atime: FuseTime, mtime: FuseTime, cb: Cb) => void
    release?: (path: string, fd: number, cb: Cb) => void
    read?: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (result: number) => void) => void
    write?: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (result: number) => void) => void
    readdir?: (path: string, cb: (status: number, names?: string[]) => void) => void
    flush?: (path: string, fd: number, cb: Cb) => void
    fsync?: (path: string, datasync: boolean, fd: number, cb: Cb) => void
    truncate?: (path: string, size: number, cb: Cb) => void
    ftruncate?: (path: string, fd: number, size: number, cb: Cb) => void
    readlink?: (path: string, cb: CbV<string>) => void
    chown?: (path: string, uid: number, gid: number, cb: Cb) => void
    chmod?: (path: string, mode: number, cb: Cb) => void
    unlink?: (path: string, cb: Cb) => void
    rename?: (src: string, dest: string, cb: Cb) => void
    link?: (src: string, dest: string, cb: Cb) => void
    symlink?: (target: string, path: string, cb: Cb) => void
    mkdir?: (path: string, mode: number, cb: Cb) => void
    rmdir?: (path: string, cb: Cb) => void
    mknod?: (path: string, mode: number, dev: number, cb: Cb) => void
    /** Answers the value, or ENODATA; the Fuse class fits it into the caller's buffer. */
    getxattr?: (path: string, name: string, position: number, cb: CbV<Buffer>) => void
    setxattr?: (path: string, name: string, value: Buffer, position: number, flags: number, cb: Cb) => void
    listxattr?: (path: string, cb: CbV<string[]>) => void
    removexattr?: (path: string, name: string, cb: Cb) => void
  }
  /** The internal reply function of a fuse-native op: status or size first. */
  export type Signal = (status: number, ...values: unknown[]) => void
  export interface FuseOptions {
    debug?: boolean; force?: boolean; mkdir?: boolean; timeout?: number | false
    fsname?: string; subtype?: string
  }
  export default class Fuse {
    constructor (mnt: string, ops: FuseOps, opts?: FuseOptions)
    readonly mnt: string
    readonly opts: FuseOptions
    mount (cb: (err: Error | null) => void): void
    unmount (cb: (err: Error | null) => void): void
    static unmount (mnt: string, cb: (err: Error | null) => void): void
    protected _fuseOptions (): string
    protected _close (cb: (err: Error | null) => void): void
    protected readonly ops: FuseOps
    protected _op_getattr (signal: Signal, path: string): void
    protected _op_fgetattr (signal: Signal, path: string, fd: number): void
    protected _op_utimens (signal: Signal, path: string, ...args: number[]): void
  }
}
