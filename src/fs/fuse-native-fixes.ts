// fuse-native 2.2.6 answers some requests differently from what the kernel
// and local filesystems do; this subclass replaces those handlers (they are
// fuse-native internals, pinned by its version in package-lock.json):
// - fgetattr: it calls getattr by path and drops the handle, so a file whose
//   name is gone (unlinked by another mount) fails with ENOENT while open;
// - getxattr/listxattr: with a caller's buffer too small it copies a
//   truncated value and reports the full length (the kernel turns that into
//   EIO) instead of ERANGE, and listxattr's size query adds 128 bytes;
// - getattr/fgetattr/utimens: times in whole milliseconds. With the addon
//   that scripts/fix-fuse-native.mjs patches and builds, stats carry each
//   time's nanoseconds within the millisecond and utimens gets both tv_nsec
//   (UTIME_NOW/UTIME_OMIT included: single-time updates); with the shipped
//   prebuild (the build failed) times stay whole milliseconds;
// - unmount: it waits for fusermount without a limit.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import Fuse, { type FuseOps, type FuseOptions, type FuseStat, type FuseTime, type Signal } from 'fuse-native'
import { splitMs } from '../util/times.js'
import type { FuseShortcuts } from './vfs.js'

const { ENODATA, ERANGE } = os.constants.errno

interface PatchedAddon {
  sizeof_fuse_thread_t?: number
  deltafs_ns_times?: number
  deltafs_set_stat_root?: (thread: Buffer, root: string) => void
  deltafs_set_user_xattrs_only?: (thread: Buffer) => void
  fuse_native_unmount?: (mnt: string, thread: Buffer) => void
}

/** How long an unmount waits for fusermount. */
const UNMOUNT_TIMEOUT_MS = 15_000

/** The addon the patch built, if it is the one loaded: node-gyp-build prefers build/Release, where the patch builds it. */
function patchedAddon (): PatchedAddon | undefined {
  try {
    const require = createRequire(import.meta.url)
    const built = path.join(path.dirname(require.resolve('fuse-native/package.json')), 'build', 'Release', 'fuse.node')
    return fs.existsSync(built) ? require(built) as PatchedAddon : undefined
  } catch {
    return undefined
  }
}
const addon = patchedAddon()
export const fuseNsTimes = addon?.deltafs_ns_times === 1

// Linux's tv_nsec markers (sys/stat.h).
const UTIME_NOW = (1 << 30) - 1
const UTIME_OMIT = (1 << 30) - 2
const TWO_32 = 4294967296

function setUint64 (ints: Uint32Array, i: number, n: number): void {
  ints[i] = n % TWO_32
  ints[i + 1] = (n - ints[i]!) / TWO_32
}

function msOf (t: Date | number): number { return typeof t === 'number' ? t : t.getTime() }

/** fuse-native's stat array, plus three slots for the ns within each time's millisecond when patched. */
export function statArray (st: FuseStat, ns = fuseNsTimes): Uint32Array {
  const ints = new Uint32Array(ns ? 21 : 18)
  ints[0] = st.mode
  ints[1] = st.uid
  ints[2] = st.gid
  setUint64(ints, 3, st.size)
  ints[5] = st.dev ?? 0
  ints[6] = st.nlink || 1
  ints[7] = st.ino ?? 0
  ints[8] = st.rdev ?? 0
  ints[9] = st.blksize ?? 0
  setUint64(ints, 10, st.blocks ?? 0)
  const times: Array<[Date | number, bigint | undefined]> = [[st.atime, st.atimeNs], [st.mtime, st.mtimeNs], [st.ctime, st.ctimeNs]]
  times.forEach(([t, exact], i) => {
    const { ms, subMs } = exact === undefined ? { ms: Math.floor(msOf(t)), subMs: 0 } : splitMs(exact)
    setUint64(ints, 12 + 2 * i, ms)
    if (ns) ints[18 + i] = subMs
  })
  return ints
}

/** The addon's 64-bit ms (tv_sec * 1000 + tv_nsec / 1e6, in two uint32) as a signed number: before 1970 too. */
function signedMs (low: number, high: number): number {
  return high >= 0x80000000 ? low + (high - TWO_32) * TWO_32 : low + high * TWO_32
}

/** A utimens time from the addon's arguments: whole ms, and the tv_nsec when patched. */
export function fuseTime (ms: number, nsec: number | undefined): FuseTime {
  if (nsec === undefined) return BigInt(ms) * 1_000_000n
  if (nsec === UTIME_NOW) return 'now'
  if (nsec === UTIME_OMIT) return 'omit'
  return BigInt(Math.floor(ms / 1000)) * 1_000_000_000n + BigInt(nsec)
}

export class FixedFuse extends Fuse {
  constructor (mnt: string, ops: FuseOps, opts?: FuseOptions) {
    super(mnt, ops, opts)
  }

  /**
   * Lets the addon's FUSE threads answer what the Vfs says they may (see
   * FuseShortcuts); returns the ones taken. Call once mounted: until then,
   * and with the shipped prebuild, those requests go to the Vfs, which
   * answers them the same way.
   */
  takeShortcuts (shortcuts: FuseShortcuts): string[] {
    const thread = (this as unknown as { _thread?: Buffer })._thread
    // fuse-native may have loaded a prebuild (node-gyp-build honours
    // PREBUILDS_ONLY): its thread buffer is not this addon's.
    if (!thread || thread.length !== addon?.sizeof_fuse_thread_t) return []
    const taken: string[] = []
    if (shortcuts.statRoot !== undefined && Buffer.byteLength(shortcuts.statRoot) < 4096 && addon.deltafs_set_stat_root) {
      addon.deltafs_set_stat_root(thread, shortcuts.statRoot)
      taken.push('getattr')
    }
    if (shortcuts.userXattrsOnly && addon.deltafs_set_user_xattrs_only) {
      addon.deltafs_set_user_xattrs_only(thread)
      taken.push('getxattr')
    }
    return taken
  }

  /**
   * fuse-native's unmount (a lazy fusermount, then the addon's bookkeeping,
   * which lets the event loop end), bounded: a fusermount that never
   * returned (seen once, in a CI run) held a daemon's shutdown, and the test
   * around it, for ever. Past the limit the child is killed and left behind,
   * the bookkeeping is done anyway, and the unmount reports the failure.
   */
  protected override _close (cb: (err: Error | null) => void): void {
    const thread = (this as unknown as { _thread?: Buffer })._thread
    const unmountThread = addon?.fuse_native_unmount
    if (process.platform !== 'linux' || !thread || thread.length !== addon?.sizeof_fuse_thread_t || !unmountThread) {
      super._close(cb)
      return
    }
    let done = false
    const finish = (err: Error | null): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      try { unmountThread(this.mnt, thread) } catch (e) { err ??= e as Error }
      if (err) Object.assign(err, { unmountFailure: true })
      cb(err)
    }
    const child = execFile('fusermount', ['-uz', this.mnt], err => finish(err))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      child.unref()
      child.stdout?.destroy()
      child.stderr?.destroy()
      finish(new Error(`fusermount -uz ${this.mnt} did not return within ${UNMOUNT_TIMEOUT_MS} ms`))
    }, UNMOUNT_TIMEOUT_MS)
  }

  protected override _op_getattr (signal: Signal, path: string): void {
    this.ops.getattr!(path, (err, st) => err || !st ? signal(err || -1) : signal(0, statArray(st)))
  }

  protected override _op_fgetattr (signal: Signal, path: string, fd: number): void {
    this.ops.fgetattr!(path, fd, (err, st) => err || !st ? signal(err || -1) : signal(0, statArray(st)))
  }

  protected override _op_utimens (signal: Signal, path: string, aLow: number, aHigh: number, mLow: number, mHigh: number, aNsec?: number, mNsec?: number): void {
    const atime = fuseTime(signedMs(aLow, aHigh), aNsec)
    const mtime = fuseTime(signedMs(mLow, mHigh), mNsec)
    this.ops.utimens!(path, atime, mtime, err => signal(err))
  }

  protected _op_getxattr (signal: Signal, path: string, name: string, valueBuf: Buffer, position: number): void {
    this.ops.getxattr!(path, name, position, (err, value) => {
      if (err) return signal(err, valueBuf.buffer)
      if (!value) return signal(-ENODATA!, valueBuf.buffer)
      if (valueBuf.length === 0) return signal(value.length, valueBuf.buffer) // size query
      if (value.length > valueBuf.length) return signal(-ERANGE!, valueBuf.buffer)
      value.copy(valueBuf)
      return signal(value.length, valueBuf.buffer)
    })
  }

  protected _op_listxattr (signal: Signal, path: string, listBuf: Buffer): void {
    this.ops.listxattr!(path, (err, list) => {
      if (err || !list) return signal(err || -ENODATA!, listBuf.buffer)
      const packed = Buffer.concat(list.map(n => Buffer.from(n + '\0')))
      if (listBuf.length === 0) return signal(packed.length, listBuf.buffer) // size query
      if (packed.length > listBuf.length) return signal(-ERANGE!, listBuf.buffer)
      packed.copy(listBuf)
      return signal(packed.length, listBuf.buffer)
    })
  }
}
