// CaptureVfs: a Vfs decorator that turns every change made through the mount
// into journaled ops. Writes are diffed against the bytes they replace and
// journaled before they reach the backing file. Whole-file rewrites (truncate
// to 0, a new file renamed over an old one) keep the old content as a record
// so that the recorder can send a delta against it (DESIGN §4).
import fs, { type BigIntStats } from 'node:fs'
import fsp from 'node:fs/promises'
import type { Op } from '../codec/wire.js'
import type { FuseShortcuts, StatFs, Vfs } from '../fs/vfs.js'
import { changedRuns } from './block-diff.js'
import type { CaptureStats } from './capture-stats.js'
import type { TxRecorder } from './tx-recorder.js'
import { fault } from '../util/fault.js'
import type { RecordStore } from './record-store.js'
import type { OpenDeleted } from './open-deleted.js'
import type { Journal } from '../journal/journal.js'
import { isFuseHidden } from '../fs/fuse-hidden.js'
import { isUserXattr } from '../fs/xattr.js'
import { sameFile } from '../util/same-file.js'
import { LinkNames } from '../fs/link-names.js'
import { FsError, isErrno } from '../util/errors.js'
import os from 'node:os'

const { ENODATA, EOPNOTSUPP, ESTALE } = os.constants.errno
const { S_IFMT, S_IFIFO } = fs.constants
const O_ACCMODE = (fs.constants as Record<string, number>).O_ACCMODE ?? 3
/** chown(2)'s "leave unchanged", as FUSE passes it (an unsigned -1). */
const KEEP_ID = 0xffffffff
const EMPTY = Buffer.alloc(0)
import type { TimeSet } from '../util/times.js'
import type { RwGate } from '../util/rw-gate.js'


/** The names of a file (p and others) but q. */
function namesBut (q: string, p: string, others: string[]): string[] {
  return [p, ...others.filter(n => n !== q)]
}

function exists (real: string): boolean {
  try {
    return fs.lstatSync(real, { throwIfNoEntry: false }) !== undefined
  } catch {
    return false // unreadable: as before, for the create to fail on
  }
}

/** What rewrites need besides the inner Vfs: the backing paths, the records area and file versions. */
export interface RewriteSupport {
  real (path: string): string
  /** Points an open handle at the (new) file now at path. */
  reopen (fh: number, path: string): Promise<void>
  records: RecordStore
  journal: Journal
  /** Files another device deleted while open here for writing. */
  openDeleted?: OpenDeleted
}

export class CaptureVfs implements Vfs {
  /** Open handles per path: a file moved aside takes its open handles to the new file. */
  private readonly handles = new Map<string, Set<number>>()
  /**
   * Handles whose file a remote rename moved, by where it is now: the kernel
   * still names them by the old path, and their changes belong to the new one.
   */
  private readonly moved = new Map<number, string>()
  /**
   * Moved handles whose file a local rename over its new name, or a local
   * unlink of it, took out of the tree. libfuse still names them by their
   * old path, so it did not hide the file for them as it does for its own
   * open files: what they write goes to an unlinked inode, as on a local
   * disk, and is not captured (it would land on the file now at the name).
   */
  private readonly orphaned = new Set<number>()
  /** Handles opened for writing: only those keep a remotely deleted file (adoptOpen). */
  private readonly writable = new Set<number>()
  /**
   * Per handle, where its last write ended when that write reached past the
   * end of the file, and the gate's exclusive count then: a write starting
   * exactly there finds nothing to compare with, so its read is skipped
   * (a new file's sequential writes would otherwise read 0 bytes each time).
   * A stale hint only ships bytes the diff would have dropped, never fewer.
   */
  private readonly appendEnd = new Map<number, { end: number; epoch: number }>()

  readonly getattrNow?: (path: string) => BigIntStats | undefined
  readonly shortcuts: FuseShortcuts
  /** A change of a hard-linked file is journaled under each of its names (see LinkNames). */
  private readonly links: LinkNames | undefined

  /**
   * gate: local changes hold it shared and remote applies exclusive, so a
   * change made through the mount never lands between the conflict check of
   * a remote transaction and its apply (which would then undo it unseen).
   */
  constructor (private readonly inner: Vfs, private readonly rec: TxRecorder, private readonly stats: CaptureStats, private readonly rw?: RewriteSupport, private readonly gate?: RwGate) {
    const now = inner.getattrNow?.bind(inner)
    if (now) this.getattrNow = now
    // getattr is the inner's, unchanged: its lstat can be answered off the
    // JS thread. getxattr refuses every name outside user.* (below).
    this.shortcuts = { ...inner.shortcuts, userXattrsOnly: true }
    this.links = rw ? new LinkNames(p => rw.real(p)) : undefined
  }

  /** ConflictResolver's otherNames. */
  otherNames (p: string): Promise<string[]> { return this.othersOf(p) }

  /** The other names of the file at p, under which its changes are journaled too. */
  private othersOf (p: string): Promise<string[]> {
    return this.links ? this.links.othersOf(p, this.gate?.exclusiveRuns ?? 0) : Promise.resolve([])
  }

  private local<T> (fn: () => Promise<T>): Promise<T> {
    return this.gate ? this.gate.withShared(fn) : fn()
  }

  private opened (p: string, fh: number): void {
    const set = this.handles.get(p) ?? new Set<number>()
    set.add(fh)
    this.handles.set(p, set)
  }

  getattr (p: string): Promise<BigIntStats> { return this.inner.getattr(p) }
  fgetattr (p: string, fh: number): Promise<BigIntStats> { return this.inner.fgetattr(p, fh) }
  // Unlinked files that are still open are gone for their users.
  async readdir (p: string): Promise<string[]> { return (await this.inner.readdir(p)).filter(n => !isFuseHidden(n)) }
  access (p: string, mode: number): Promise<void> { return this.inner.access(p, mode) }
  statfs (p: string): Promise<StatFs> { return this.inner.statfs(p) }
  async open (p: string, flags: number): Promise<number> {
    let fh: number
    try {
      fh = await this.inner.open(p, flags)
    } catch (err) {
      // The kernel looked the name up, then a remote apply removed it before
      // this OPEN. ESTALE makes the kernel look it up again and retry once,
      // so open(O_CREAT) creates the file as it would on a local disk (the
      // flags that would tell us O_CREAT never reach this callback).
      if (isErrno(err, 'ENOENT')) throw new FsError(ESTALE, `${p} was removed by a remote change while being opened`)
      throw err
    }
    this.opened(p, fh)
    if ((flags & O_ACCMODE) !== fs.constants.O_RDONLY) this.writable.add(fh)
    return fh
  }
  read (p: string, fh: number, buf: Buffer, len: number, pos: number): Promise<number> { return this.inner.read(p, fh, buf, len, pos) }
  readlink (p: string): Promise<string> { return this.inner.readlink(p) }

  write (p: string, fh: number, buf: Buffer, len: number, pos: number): Promise<number> {
    // fuse-native's buffer is FUSE's memory, reused once the request is
    // answered, and a request waiting on the gate can be answered (timed out)
    // before it runs: copy it first.
    const next = Buffer.from(buf.subarray(0, len))
    return this.local(() => this.writeNow(p, fh, next, len, pos))
  }

  private async writeNow (p: string, fh: number, next: Buffer, len: number, pos: number): Promise<number> {
    p = await this.pathOf(p, fh, true)
    // An unlinked file still open: its bytes die with it, as on a local disk.
    if (isFuseHidden(p) || this.orphaned.has(fh)) return this.inner.write(p, fh, next, len, pos)
    const epoch = this.gate?.exclusiveRuns ?? 0
    const hint = this.appendEnd.get(fh)
    // A remote apply (exclusive) may have extended the file since.
    const atEnd = hint !== undefined && hint.end === pos && hint.epoch === epoch
    let old = EMPTY
    let oldLen = 0
    if (!atEnd) {
      old = Buffer.allocUnsafe(len)
      try {
        oldLen = await this.inner.read(p, fh, old, len, pos)
      } catch {
        oldLen = 0 // unreadable (write-only file): ship the whole range
      }
    }
    const runs = changedRuns(pos, next, old, oldLen)
    this.stats.bytesWritten += len
    if (runs.length === 0) return this.inner.write(p, fh, next, len, pos)
    for (const r of runs) this.stats.bytesCaptured += r.data.length
    // Under its other names before it lands, as under p: journaled first.
    const others = await this.othersOf(p)
    for (const q of others) await this.rec.write(q, runs, undefined, namesBut(q, p, others))
    // Journaled first, then written: a crash in between replays the write.
    const landed = await this.rec.write(p, runs, () => {
      fault('capture.after-journal')
      return this.inner.write(p, fh, next, len, pos)
    }, others)
    if (oldLen < len && landed === len) this.appendEnd.set(fh, { end: pos + len, epoch })
    else this.appendEnd.delete(fh)
    return landed!
  }

  async fsync (p: string, fh: number, datasync: boolean): Promise<void> {
    if (this.orphaned.has(fh)) return this.inner.fsync(p, fh, datasync)
    p = await this.pathOf(p, fh, false)
    for (const q of await this.othersOf(p)) await this.rec.close(q)
    await this.rec.close(p)
    await this.rec.flush(p)
    await this.rec.sync()
    await this.inner.fsync(p, fh, datasync)
  }

  async release (p: string, fh: number): Promise<void> {
    this.appendEnd.delete(fh)
    this.writable.delete(fh)
    if (this.orphaned.delete(fh)) { await this.inner.release(p, fh); return }
    if (this.rw?.openDeleted?.has(fh)) {
      const copy = await this.rw.openDeleted.release(fh)
      if (copy === undefined) { await this.inner.release(p, fh); return }
      p = copy
    }
    p = this.moved.get(fh) ?? p
    this.moved.delete(fh)
    // Out of its set before anything is awaited: RELEASE is not gated, and
    // an apply running meanwhile must not adopt or move a handle being closed.
    const set = this.handles.get(p)
    set?.delete(fh)
    if (set?.size === 0) this.handles.delete(p)
    await this.inner.release(p, fh)
    // Asked after the await: the file may have been opened again meanwhile.
    if (this.handles.get(p)?.size) { await this.rec.close(p); return }
    await this.rec.released(p)
  }

  create (p: string, mode: number): Promise<number> { return this.local(() => this.createNow(p, mode)) }

  private async createNow (p: string, mode: number): Promise<number> {
    if (!this.rw) return this.changeNow(p, () => this.inner.create(p, mode), { create: { mode: mode & 0o7777 } })
    // The kernel found no such name, then a remote apply made the file before
    // this CREATE. Opening that file here would make the kernel treat it as
    // newly created: no O_TRUNC truncate would follow (new content over the
    // remote one's tail), O_EXCL would succeed on a file that exists, and a
    // Create journaled for it would claim content that starts from nothing,
    // which a mount losing a conflict to it trusts. ESTALE makes the kernel
    // look the name up again and redo the call as an OPEN of that file.
    // Synchronous, as Passthrough.getattr: the kernel has just looked the
    // name up, so this is a cached negative entry, and a thread pool round
    // trip per created file cost more than the call.
    if (exists(this.rw.real(p))) throw new FsError(ESTALE, `${p} was created by a remote change while being created here`)
    await this.rec.closeAll([p])
    const fh = await this.inner.create(p, mode)
    this.opened(p, fh)
    this.writable.add(fh)
    // The file is new and empty (no remote apply runs while the gate is held
    // shared): its first write has no old bytes to compare with.
    this.appendEnd.set(fh, { end: 0, epoch: this.gate?.exclusiveRuns ?? 0 })
    // Held: it may be a temp file about to be renamed over the file it replaces.
    await this.rec.startRewrite(p, { create: { mode: mode & 0o7777 } }, { fresh: true })
    return fh
  }

  truncate (p: string, size: number): Promise<void> {
    return this.local(() => this.truncateNow(p, size)).catch((err: unknown) => {
      // open(O_TRUNC) reaches us as OPEN, then a truncate by path (the kernel
      // drops the handle for it): a remote delete applied in between must not
      // fail the open with ENOENT. ESTALE makes the kernel redo the whole
      // open (or truncate(2)) after a fresh lookup, which then creates the file.
      if (isErrno(err, 'ENOENT')) throw new FsError(ESTALE, `${p} was removed by a remote change while being truncated`)
      throw err
    })
  }

  private async truncateNow (p: string, size: number): Promise<void> {
    // open(O_TRUNC) arrives as open, then truncate of the path to 0.
    if (size === 0 && await this.startRewrite(p)) return
    return this.changeNow(p, () => this.inner.truncate(p, size), { truncate: { size } }, [], true)
  }

  ftruncate (p: string, fh: number, size: number): Promise<void> { return this.local(() => this.ftruncateNow(p, fh, size)) }

  private async ftruncateNow (p: string, fh: number, size: number): Promise<void> {
    if (this.orphaned.has(fh)) return this.inner.ftruncate(p, fh, size)
    p = await this.pathOf(p, fh, true)
    if (size === 0 && await this.startRewrite(p)) return
    return this.changeNow(p, () => this.inner.ftruncate(p, fh, size), { truncate: { size } }, [], true)
  }

  /**
   * Truncation to 0 of a non-empty file: move the old content aside in O(1)
   * as the record, start over with an empty file (the handles open on the
   * path follow it: to them the file is empty either way), and hold the
   * rewrite until it ends.
   */
  private async startRewrite (p: string): Promise<boolean> {
    if (!this.rw || this.rec.isHeld(p) || isFuseHidden(p)) return false
    const real = this.rw.real(p)
    const st = await fsp.lstat(real).catch(() => undefined)
    if (!st?.isFile() || st.size === 0 || st.nlink > 1) return false
    await this.rec.closeAll([p])
    // Link the old content into the records, then atomically replace the
    // path with an empty file: a crash in between never leaves the path missing.
    const base = await this.rw.records.keepByLink(real, (await this.rw.journal.record(p))?.version ?? 0)
    const empty = this.rw.records.tempPath()
    const fd = await fsp.open(empty, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, st.mode & 0o7777)
    await fd.chown(st.uid, st.gid).catch(() => undefined)
    await fd.close()
    await fsp.rename(empty, real)
    await this.reopenHandles(p)
    await this.rec.startRewrite(p, { truncate: { size: 0 } }, { base, fresh: false })
    return true
  }


  unlink (p: string): Promise<void> {
    return this.change(p, async () => { await this.inner.unlink(p); this.orphanAt(p) }, { unlink: {} })
  }
  mkdir (p: string, mode: number): Promise<void> { return this.change(p, () => this.inner.mkdir(p, mode), { mkdir: { mode: mode & 0o7777 } }) }
  // A directory holding an open, unlinked (hidden) file stays ENOTEMPTY until
  // the last close: libfuse forgets a removed directory's nodes, so moving the
  // hidden file elsewhere would break its open descriptors instead.
  rmdir (p: string): Promise<void> { return this.change(p, () => this.inner.rmdir(p), { rmdir: {} }) }
  rename (from: string, to: string): Promise<void> { return this.local(() => this.renameNow(from, to)) }

  private async renameNow (from: string, to: string): Promise<void> {
    if (isFuseHidden(to) && !isFuseHidden(from)) {
      // libfuse hiding a file unlinked (or renamed over) while open.
      await this.changeNow(from, () => this.inner.rename(from, to), { unlink: {} })
      this.moveHandles(from, to)
      return
    }
    if (this.rw && this.sameFile(from, to)) {
      // Two names of one file: rename(2) does nothing, so nothing is sent.
      // Sent, it would remove the source name on mounts where the two names
      // are different files (the link has not reached them, or never will).
      return this.inner.rename(from, to)
    }
    if (this.rw && this.rec.claimHeld(from)) {
      const target = await fsp.lstat(this.rw.real(to)).catch(() => undefined)
      if (target?.isFile()) {
        // A new file saved over an old one: keep the old content (a hard
        // link, O(1)) and let the recorder send the difference.
        await this.rec.closeAll([to])
        this.links?.forget()
        const base = await this.rw.records.keepByLink(this.rw.real(to), (await this.rw.journal.record(to))?.version ?? 0)
        try {
          await this.inner.rename(from, to)
        } catch (err) {
          await this.rw.records.drop(base)
          // claimHeld stopped its grace timer: start it again.
          if (!this.handles.get(from)?.size) await this.rec.released(from)
          throw err
        }
        this.moveHandles(from, to)
        await this.rec.renamedOver(from, to, base)
        return
      }
    }
    await this.changeNow(from, () => this.inner.rename(from, to), { rename: { to } }, [to])
    this.moveHandles(from, to)
  }

  /** Whether both names are there and are one file (synchronous, as exists()). */
  private sameFile (a: string, b: string): boolean {
    try {
      const sa = fs.lstatSync(this.rw!.real(a), { throwIfNoEntry: false })
      // A file with one name (nearly every rename) needs no second lstat.
      const sb = sa && sa.nlink > 1 ? fs.lstatSync(this.rw!.real(b), { throwIfNoEntry: false }) : undefined
      return sa !== undefined && sb !== undefined && sameFile(sa, sb)
    } catch {
      return false // unreadable: as a plain rename, for it to fail there
    }
  }

  /**
   * Points the descriptors open on path at the file now there (a new inode:
   * a rewrite started, or a remote Rebuild renamed its result into place), so
   * that writes through them reach the file everyone else gets.
   */
  async reopenHandles (p: string): Promise<void> {
    if (!this.rw) return
    for (const fh of this.handles.get(p) ?? []) await this.rw.reopen(fh, p)
  }

  /**
   * A remote Unlink is about to delete p: if a handle has it open for
   * writing, the file is moved out of the tree for its handles instead
   * (OpenDeleted). Runs inside the apply, so no local change is under way.
   */
  async adoptOpen (p: string, by: { deviceId: string; seq: number }): Promise<void> {
    const set = this.handles.get(p)
    const od = this.rw?.openDeleted
    if (!od || !set || ![...set].some(fh => this.writable.has(fh))) return
    await od.adopt(p, set, by)
    this.handles.delete(p)
    for (const fh of set) this.moved.delete(fh)
  }

  /** ConflictResolver's moveOpen: the conflict copy of a file open here for writing is the file itself. */
  async moveOpen (p: string, copy: string): Promise<boolean> {
    const set = this.handles.get(p)
    if (!this.rw || !set || ![...set].some(fh => this.writable.has(fh))) return false
    await fsp.rename(this.rw.real(p), this.rw.real(copy))
    this.movedRemotely(p, copy)
    return true
  }

  /** A remote rename moved `from` (a file, or a directory and all under it) to `to`: handles open there follow. */
  movedRemotely (from: string, to: string): void {
    this.rekey(from, to, () => true)
  }

  /**
   * Handles open at or under `from` are now at or under `to`. follows: those
   * whose changes go by the new path from now on (the kernel does not know it).
   */
  private rekey (from: string, to: string, follows: (fh: number) => boolean): void {
    for (const [p, set] of [...this.handles]) {
      if (p !== from && !p.startsWith(from + '/')) continue
      const now = to + p.slice(from.length)
      this.handles.delete(p)
      const there = this.handles.get(now)
      this.handles.set(now, there ? new Set([...there, ...set]) : set)
      for (const fh of set) if (follows(fh)) this.moved.set(fh, now)
    }
  }

  /** A local change took the file at p out of the tree: the moved handles on it are orphaned. */
  private orphanAt (p: string): void {
    const set = this.handles.get(p)
    if (!set) return
    for (const fh of [...set]) {
      if (this.moved.get(fh) !== p) continue
      set.delete(fh)
      this.moved.delete(fh)
      this.orphaned.add(fh)
    }
    if (set.size === 0) this.handles.delete(p)
  }

  /**
   * The volume path a handle's change is captured under. The kernel still
   * names a remotely deleted file by its old name; a write (or truncate)
   * through it brings it back as a conflict copy, and it is that copy's
   * change. Without `write`, an unwritten deleted file keeps its old name.
   * A remote rename moves handles the same way (movedRemotely).
   */
  private async pathOf (p: string, fh: number, write: boolean): Promise<string> {
    const od = this.rw?.openDeleted
    if (write && od?.has(fh)) {
      const { copy, handles } = await od.copyFor(fh)
      // From here on they are handles of the copy, as after a remote rename.
      for (const h of handles) { this.opened(copy, h); this.moved.set(h, copy) }
    }
    return this.moved.get(fh) ?? p
  }

  /**
   * After a local rename. libfuse renamed its nodes, so the kernel names
   * their handles by the new path; a handle a remote rename had moved here
   * goes on with the file, under the new path too. A file the rename
   * replaced had its own handles hidden by libfuse first, but not those of
   * a moved handle: libfuse knows that one by its old name.
   */
  private moveHandles (from: string, to: string): void {
    this.orphanAt(to)
    this.rekey(from, to, fh => this.moved.has(fh))
  }
  symlink (target: string, p: string): Promise<void> { return this.change(p, () => this.inner.symlink(target, p), { symlink: { target } }) }
  link (existing: string, p: string): Promise<void> { return this.change(existing, () => this.inner.link(existing, p), { link: { to: p } }) }
  chmod (p: string, mode: number): Promise<void> { return this.attr(p, () => this.inner.chmod(p, mode), { setAttr: { hasMode: true, mode: mode & 0o7777 } }) }

  // Numeric ids, as NFS without id mapping does; a receiver that may not
  // chown (not root) keeps its own ownership.
  chown (p: string, uid: number, gid: number): Promise<void> {
    return this.attr(p, () => this.inner.chown(p, uid, gid), {
      setAttr: { ...(uid !== KEEP_ID ? { hasUid: true, uid } : {}), ...(gid !== KEEP_ID ? { hasGid: true, gid } : {}) },
    })
  }

  mknod (p: string, mode: number, dev: number): Promise<void> {
    if ((mode & S_IFMT) !== S_IFIFO) return this.inner.mknod(p, mode, dev) // refused there, or a regular file (libfuse creates those)
    return this.change(p, () => this.inner.mknod(p, mode, dev), { mknod: { mode: S_IFIFO | (mode & 0o7777) } })
  }

  // Only user.* attributes exist on this filesystem (see isUserXattr): the
  // others could not be replicated. Reads of other names find nothing, which
  // also answers the kernel's security.capability check on every write
  // without a disk access.
  async getxattr (p: string, name: string): Promise<Buffer> {
    if (!isUserXattr(name)) throw new FsError(ENODATA, `no attribute ${name}`)
    return this.inner.getxattr(p, name)
  }

  async listxattr (p: string): Promise<string[]> {
    return (await this.inner.listxattr(p)).filter(isUserXattr)
  }

  setxattr (p: string, name: string, value: Buffer, flags: number): Promise<void> {
    if (!isUserXattr(name)) return Promise.reject(new FsError(EOPNOTSUPP, `attribute namespace of ${name} not supported`))
    return this.attr(p, () => this.inner.setxattr(p, name, value, flags), { setXattr: { name, value } })
  }

  removexattr (p: string, name: string): Promise<void> {
    if (!isUserXattr(name)) return Promise.reject(new FsError(EOPNOTSUPP, `attribute namespace of ${name} not supported`))
    return this.attr(p, () => this.inner.removexattr(p, name), { removeXattr: { name } })
  }

  /** Journals the times the file got ('now' read back from it), and only those that were set. */
  utimens (p: string, atime: TimeSet, mtime: TimeSet): Promise<void> {
    return this.attr(p, () => this.inner.utimens(p, atime, mtime), async () => {
      const st = atime === 'now' || mtime === 'now' ? await this.inner.getattr(p) : undefined
      const exact = (t: TimeSet, now: bigint | undefined): bigint => t === 'now' ? now! : t as bigint
      return {
        setAttr: {
          ...(atime !== 'omit' ? { hasAtime: true, atimeNs: exact(atime, st?.atimeNs) } : {}),
          ...(mtime !== 'omit' ? { hasMtime: true, mtimeNs: exact(mtime, st?.mtimeNs) } : {}),
        },
      }
    })
  }

  /**
   * Namespace and attribute changes: open transactions close first (their
   * writes happened before), then the change runs, then it is journaled.
   * A change that fails is never journaled.
   */
  private change<T> (p: string, run: () => Promise<T>, op: Op | (() => Promise<Op>), alsoRelated: string[] = []): Promise<T> {
    return this.local(() => this.changeNow(p, run, op, alsoRelated))
  }

  /**
   * An attribute change: of a held rewrite (a file just written by tar or
   * git), it joins that rewrite's transaction (TxRecorder.amendHeld), whose
   * facts are then read after it; otherwise it is a change like the others.
   */
  private attr (p: string, run: () => Promise<void>, op: Op | (() => Promise<Op>)): Promise<void> {
    return this.local(async () => {
      if (isFuseHidden(p) || !this.rec.isHeld(p)) return this.changeNow(p, run, op, [], true)
      await run()
      const done = typeof op === 'function' ? await op() : op
      // The rewrite ended meanwhile (its grace ran out, a rename took it): on its own, after it.
      if (await this.rec.amendHeld(p, done)) return
      await this.rec.closeAll([p])
      await this.rec.record(p, done)
    })
  }

  /**
   * change() for callers already holding the gate (it is not re-entrant).
   * ofFile: the op changes the file (its size or attributes), not its name,
   * so it is journaled under each of its names; any other op may change
   * which names a file has.
   */
  private async changeNow<T> (p: string, run: () => Promise<T>, op: Op | (() => Promise<Op>), alsoRelated: string[] = [], ofFile = false): Promise<T> {
    if (isFuseHidden(p)) return run() // already unlinked, for everyone else
    const others = ofFile ? await this.othersOf(p) : []
    await this.rec.closeAll([p, ...alsoRelated, ...others])
    if (!ofFile) this.links?.forget()
    const result = await run()
    const done = typeof op === 'function' ? await op() : op
    await this.rec.record(p, done, others)
    for (const q of others) await this.rec.record(q, done, namesBut(q, p, others))
    return result
  }
}
