// CaptureVfs: a Vfs decorator that turns every change made through the mount
// into journaled ops. Writes are diffed against the bytes they replace and
// journaled before they reach the backing file.
import type { Stats } from 'node:fs'
import type { Op } from '../codec/wire.js'
import type { StatFs, Vfs } from '../fs/vfs.js'
import { changedRuns } from './block-diff.js'
import type { CaptureStats } from './capture-stats.js'
import type { TxRecorder } from './tx-recorder.js'
import { fault } from '../util/fault.js'

function msToNs (ms: number): number { return Math.round(ms * 1e6) }

export class CaptureVfs implements Vfs {
  constructor (private readonly inner: Vfs, private readonly rec: TxRecorder, private readonly stats: CaptureStats) {}

  getattr (p: string): Promise<Stats> { return this.inner.getattr(p) }
  readdir (p: string): Promise<string[]> { return this.inner.readdir(p) }
  access (p: string, mode: number): Promise<void> { return this.inner.access(p, mode) }
  statfs (p: string): Promise<StatFs> { return this.inner.statfs(p) }
  open (p: string, flags: number): Promise<number> { return this.inner.open(p, flags) }
  read (p: string, fh: number, buf: Buffer, len: number, pos: number): Promise<number> { return this.inner.read(p, fh, buf, len, pos) }
  readlink (p: string): Promise<string> { return this.inner.readlink(p) }

  async write (p: string, fh: number, buf: Buffer, len: number, pos: number): Promise<number> {
    // fuse-native's buffer is FUSE's memory and is reused once we answer.
    const next = Buffer.from(buf.subarray(0, len))
    const old = Buffer.allocUnsafe(len)
    let oldLen: number
    try {
      oldLen = await this.inner.read(p, fh, old, len, pos)
    } catch {
      oldLen = 0 // unreadable (write-only file): ship the whole range
    }
    const runs = changedRuns(pos, next, old, oldLen)
    this.stats.bytesWritten += len
    if (runs.length > 0) {
      for (const r of runs) this.stats.bytesCaptured += r.data.length
      await this.rec.write(p, runs)
      fault('capture.after-journal')
    }
    return this.inner.write(p, fh, next, len, pos)
  }

  async flush (p: string, fh: number): Promise<void> {
    await this.rec.close(p)
    await this.inner.flush(p, fh)
  }

  async fsync (p: string, fh: number, datasync: boolean): Promise<void> {
    await this.rec.close(p)
    await this.rec.sync()
    await this.inner.fsync(p, fh, datasync)
  }

  async release (p: string, fh: number): Promise<void> {
    await this.rec.close(p)
    await this.inner.release(p, fh)
  }

  create (p: string, mode: number): Promise<number> {
    return this.change(p, () => this.inner.create(p, mode), { create: { mode: mode & 0o7777 } })
  }

  truncate (p: string, size: number): Promise<void> {
    return this.change(p, () => this.inner.truncate(p, size), { truncate: { size } })
  }

  ftruncate (p: string, fh: number, size: number): Promise<void> {
    return this.change(p, () => this.inner.ftruncate(p, fh, size), { truncate: { size } })
  }

  unlink (p: string): Promise<void> { return this.change(p, () => this.inner.unlink(p), { unlink: {} }) }
  mkdir (p: string, mode: number): Promise<void> { return this.change(p, () => this.inner.mkdir(p, mode), { mkdir: { mode: mode & 0o7777 } }) }
  rmdir (p: string): Promise<void> { return this.change(p, () => this.inner.rmdir(p), { rmdir: {} }) }
  rename (from: string, to: string): Promise<void> { return this.change(from, () => this.inner.rename(from, to), { rename: { to } }) }
  symlink (target: string, p: string): Promise<void> { return this.change(p, () => this.inner.symlink(target, p), { symlink: { target } }) }
  link (existing: string, p: string): Promise<void> { return this.change(existing, () => this.inner.link(existing, p), { link: { to: p } }) }
  chmod (p: string, mode: number): Promise<void> { return this.change(p, () => this.inner.chmod(p, mode), { setAttr: { hasMode: true, mode: mode & 0o7777 } }) }

  // Ownership is not replicated: the other side may not have the same users.
  chown (p: string, uid: number, gid: number): Promise<void> { return this.inner.chown(p, uid, gid) }

  utimens (p: string, atimeMs: number, mtimeMs: number): Promise<void> {
    return this.change(p, () => this.inner.utimens(p, atimeMs, mtimeMs), {
      setAttr: { hasAtime: true, atimeNs: msToNs(atimeMs), hasMtime: true, mtimeNs: msToNs(mtimeMs) },
    })
  }

  /**
   * Namespace and attribute changes: open transactions close first (their
   * writes happened before), then the change runs, then it is journaled.
   * A change that fails is never journaled.
   */
  private async change<T> (p: string, run: () => Promise<T>, op: Op): Promise<T> {
    await this.rec.closeAll()
    const result = await run()
    await this.rec.record(p, op)
    return result
  }
}
