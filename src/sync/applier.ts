// Applies a remote transaction straight into the backing directory (not
// through FUSE, so nothing is captured again). Every op is idempotent, so a
// crash between the data and the cursor update only repeats harmless work.
import fs, { type BigIntStats } from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { type Op, opKind, type RebuildOp, type Transaction } from '../codec/wire.js'
import { applyDelta } from '../delta/delta-engine.js'
import { checkVolumePath, resolveInside } from '../fs/safe-path.js'
import { type FileFacts, isOfFile, isRefreshOnly, kindOf } from '../journal/records.js'
import { LinkNames } from '../fs/link-names.js'
import { detachName } from '../fs/detach.js'
import { DeltafsError, isErrno } from '../util/errors.js'
import { getXattr, isUserXattr, listXattr, removeXattr, setXattr, XATTR_SIZE_MAX } from '../fs/xattr.js'
import { mkfifo } from '../fs/mkfifo.js'
import { logger } from '../util/log.js'
import { setTimes } from '../util/set-times.js'
import { sameFile } from '../util/same-file.js'
import { pathsOf } from '../journal/records.js'
import { LinkRebase, type PendingLinks } from './link-rebase.js'
import type { PartStages, Stage } from './part-stages.js'

const log = logger('apply')

const { O_WRONLY, O_CREAT, O_NOFOLLOW, O_NONBLOCK, O_TRUNC, S_IFMT, S_IFIFO } = fs.constants
/**
 * Opening for writing: O_NONBLOCK because a FIFO made here under the same
 * name would otherwise block the apply (and every local change waiting for
 * it) until a reader comes; on regular files it changes nothing.
 */
const WRITE_FLAGS = O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK
/** Largest uid/gid taken from the wire; (uid_t)-1 means "unchanged" to chown. */
const MAX_ID = 0xfffffffe
/** Modes from the wire keep permission and sticky bits; setuid/setgid never cross. */
const MODE_MASK = 0o1777
/** Largest offset + length a Write or Truncate may reach (8 EiB would overflow doubles). */
const MAX_FILE_END = 2 ** 52

/** A change that needs a file this mount does not have: healed by asking the author for healPath whole. */
export class BaseMismatch extends DeltafsError {
  constructor (readonly healPath: string, message: string, options?: { cause?: unknown }) {
    super('BASE_MISMATCH', message, options)
  }
}

export interface ApplyResult {
  path: string; facts: FileFacts; bytes: number
  /** The transaction went into a stage: the file here has not changed yet, and neither does its record. */
  staged?: true
  /** Staged files this transaction put in place first, with the volume seq of the last part each holds. */
  flushed?: Array<{ path: string; seq: number; facts: FileFacts }>
}

/** What a part of a split transaction does with the stages (PartStages). */
interface StagePlan {
  /** Stages the transaction touches and does not continue: they go in place before it applies. */
  flush: Stage[]
  step?: 'start' | 'extend' | 'finish'
  stage?: Stage
}

/** Ops that can be applied to a staged file as to the file itself. */
const STAGEABLE = new Set(['create', 'write', 'truncate', 'setAttr', 'setXattr', 'removeXattr'])

/** A transaction's leading Rebuild, built ahead of its apply from the file as it was then (Applier.prebuild). */
export interface Prebuilt { op: RebuildOp; tmp: string; base: BigIntStats }

/** Whether st is the file that was stat'ed as base, unchanged (any write or chmod moves ctime). */
function unchanged (st: BigIntStats, base: BigIntStats): boolean {
  return st.dev === base.dev && st.ino === base.ino && st.size === base.size && st.mtimeNs === base.mtimeNs && st.ctimeNs === base.ctimeNs
}

export interface ApplierOptions {
  /** This mount's device id, to recognise Refresh requests addressed to it. */
  deviceId: string
  /** A temporary file on the backing filesystem, outside the visible tree. */
  tempPath: () => string
  /** Sends the whole content of path: another mount asked for it. */
  onRefresh: (path: string) => Promise<void>
  /** path is a new file now (a Rebuild renamed it into place): descriptors open on the old one must follow. */
  onReplaced?: (path: string) => Promise<void>
  /**
   * A remote Unlink is about to delete path: files open here are moved out of
   * the tree for their descriptors, so that writes made through them after
   * the delete can still be kept (CaptureVfs.adoptOpen). by: the deletion.
   */
  onRemoving?: (path: string, by: { deviceId: string; seq: number }) => Promise<void>
  /** A remote Rename moved from (a file or a directory) to `to`: descriptors open under from now write there. */
  onMoved?: (from: string, to: string) => void
  /**
   * Whether this mount deleted path, or renamed it away, and has not sent
   * that yet: the node orders it after the change being applied.
   */
  removedHere?: (path: string) => Promise<boolean>
  /** Whether this mount has changed path and not sent it yet (a conflict-checked transaction on it is pending). */
  changedHere?: (path: string) => boolean
  /** The seq of an apply a crash interrupted (Journal.interruptedApply). */
  interruptedSeq?: () => number
  /** Whether this mount has hard-linked path to another name and not sent it yet. */
  linksPendingFrom?: (path: string) => Promise<boolean>
  /** The hard links this mount has made and not sent yet (LinkRebase). */
  pendingLinks?: PendingLinks
  /** Where files sent whole in parts are put together; without it, parts apply in place one by one. */
  stages?: PartStages
  /** The last change of path applied or made here: its volume seq and author (its record's version and by). */
  lastChange?: (path: string) => Promise<{ version: number; by?: string } | undefined>
}

export class Applier {
  private readonly links: LinkRebase | undefined
  /** The names of hard-linked files here (onlyAuthorsNames). */
  private readonly names: LinkNames
  private namesEpoch = 0

  constructor (private readonly root: string, private readonly opts?: ApplierOptions) {
    this.links = opts?.pendingLinks ? new LinkRebase(root, opts.pendingLinks) : undefined
    this.names = new LinkNames(p => path.join(root, p))
  }

  /**
   * Builds the result of a transaction that starts with a Rebuild, before
   * the apply: the copy takes as long as the file is large, and changes
   * through the mount wait for the whole apply (past fuse-native's timeout,
   * they would fail). apply uses it only if the file is still the one it
   * was built from; whatever goes wrong here, apply builds it again and
   * says why. The caller discards it after the apply.
   */
  async prebuild (tx: Transaction): Promise<Prebuilt | undefined> {
    const op = tx.ops[0]
    if (!this.opts || !op || !('rebuild' in op && op.rebuild)) return undefined
    try {
      validate(tx)
      const real = await resolveInside(this.root, tx.path)
      const base = await fsp.lstat(real, { bigint: true })
      if (!base.isFile()) return undefined
      const tmp = this.opts.tempPath()
      try {
        await applyDelta(real, op.rebuild, tmp, { sync: false })
      } catch (err) {
        await fsp.rm(tmp, { force: true })
        throw err
      }
      return { op: op.rebuild, tmp, base }
    } catch (err) {
      log.debug({ path: tx.path, err: (err as Error).message }, 'no Rebuild ahead of the apply: it builds the file itself')
      return undefined
    }
  }

  /** Removes what prebuild made, if the apply did not take it. */
  async discard (prebuilt: Prebuilt | undefined): Promise<void> {
    if (prebuilt) await fsp.rm(prebuilt.tmp, { force: true })
  }

  /**
   * Applies tx, the volume's change seq. A part of a file sent whole goes
   * into its stage instead, and the last part puts the stage in place.
   */
  /** The transaction being applied, for onRemoving (ops are applied one at a time, deep below apply). */
  private applying = { deviceId: '', seq: 0 }

  async apply (tx: Transaction, prebuilt?: Prebuilt, seq = 0): Promise<ApplyResult> {
    validate(tx)
    // A request for a file whole changes no name here. Its answer, if it is
    // this mount's to give, is journaled after this mount's unsent links, so
    // the others apply it after them: the links stay as they are for it.
    const names = this.links && !isRefreshOnly(tx.ops) ? this.links : undefined
    return names ? await names.around(pathsOf(tx), () => this.applyOrdered(tx, prebuilt, seq)) : await this.applyOrdered(tx, prebuilt, seq)
  }

  private async applyOrdered (tx: Transaction, prebuilt: Prebuilt | undefined, seq: number): Promise<ApplyResult> {
    this.applying = { deviceId: tx.txId.deviceId, seq }
    const plan = await this.stagePlan(tx)
    const flushed: NonNullable<ApplyResult['flushed']> = []
    for (const stage of plan.flush) {
      const done = await this.putInPlace(stage, 'another change of it came first')
      if (done) flushed.push(done)
    }
    const result = plan.step ? await this.applyStaged(tx, plan, seq) : await this.applyInPlace(tx, prebuilt)
    return flushed.length > 0 ? { ...result, flushed } : result
  }

  /**
   * Whether tx continues a file staged here: the conflict check then knows
   * that the file it leaves is whole, not a delta of one this mount lacks.
   */
  continuesStage (tx: Transaction): boolean {
    const stage = this.opts?.stages?.get(tx.path)
    return stage !== undefined && (tx.part ?? 0) > 1 && this.sameSplit(stage, tx) && tx.part! <= stage.part + 1
  }

  private sameSplit (stage: Stage, tx: Transaction): boolean {
    return stage.deviceId === tx.txId.deviceId && stage.deviceSeq - stage.part === tx.txId.deviceSeq - (tx.part ?? 0)
  }

  /**
   * A first part that starts the file over (a Create, or a truncation to 0)
   * starts a stage; the parts after it extend it, the last puts it in place.
   * Anything else that touches a staged file (another device's change that
   * came first, a rename of its directory) puts it in place as it is first:
   * what the parts so far would have made of it in place, so every mount
   * still applies the same changes to the same file.
   */
  private async stagePlan (tx: Transaction): Promise<StagePlan> {
    const stages = this.opts?.stages
    if (!stages) return { flush: [] }
    const touched = stages.size > 0 ? stages.within(pathsOf(tx)) : []
    const part = tx.part ?? 0
    if (part === 0 || !tx.ops.every(op => STAGEABLE.has(opKind(op)))) return { flush: touched }
    const current = stages.get(tx.path)
    const same = current !== undefined && this.sameSplit(current, tx)
    if (same && part > 1 && part <= current.part + 1) {
      return { flush: touched.filter(s => s !== current), step: tx.moreParts === true ? 'extend' : 'finish', stage: current }
    }
    if (part === 1 && tx.moreParts === true && await this.startsWhole(tx)) {
      // Part 1 again (a crash before its apply was recorded) starts its stage over.
      return { flush: touched.filter(s => !(same && s === current)), step: 'start' }
    }
    return { flush: touched }
  }

  /** Whether tx's content replaces the file's, so that it can be built aside and renamed over it. */
  private async startsWhole (tx: Transaction): Promise<boolean> {
    const first = tx.ops.find(op => !('setAttr' in op && op.setAttr))
    if (first === undefined) return false
    if ('create' in first && first.create) return true
    if (!('truncate' in first && first.truncate && first.truncate.size === 0)) return false
    // Written through the inode on purpose (unlinkIfLinked): not replaced by a new one.
    const real = await resolveInside(this.root, tx.path)
    const st = await fsp.lstat(real).catch(() => undefined)
    return !(st?.isFile() && st.nlink > 1 && await this.opts?.linksPendingFrom?.(tx.path))
  }

  private async applyStaged (tx: Transaction, plan: StagePlan, seq: number): Promise<ApplyResult> {
    const stages = this.opts!.stages!
    const real = await resolveInside(this.root, tx.path)
    const from = { deviceId: tx.txId.deviceId, deviceSeq: tx.txId.deviceSeq, part: tx.part!, seq }
    const stage = plan.step === 'start' ? await stages.begin(tx.path, from) : { ...plan.stage!, ...from }
    if (plan.step === 'start') {
      log.debug({ path: tx.path, author: tx.txId.deviceId }, 'a file sent in parts: staged until its last part')
      await startAs(stage.file, real)
    }
    let bytes = 0
    let fh: fsp.FileHandle | undefined
    try {
      for (const op of tx.ops) {
        if ('write' in op && op.write) {
          fh ??= await fsp.open(stage.file, WRITE_FLAGS, 0o644)
          await fh.write(op.write.data, 0, op.write.data.length, op.write.offset)
          bytes += op.write.data.length
          continue
        }
        await fh?.close()
        fh = undefined
        await this.applyOther(tx.path, op, undefined, stage.file)
      }
    } finally {
      await fh?.close()
    }
    if (tx.mtimeNs > 0n) setTimes(stage.file, 'omit', tx.mtimeNs)
    if (plan.step !== 'finish') {
      await stages.note(stage)
      return { path: tx.path, facts: { size: -1, mtimeNs: 0n }, bytes, staged: true }
    }
    const done = await this.putInPlace(stage)
    if (!done) throw new DeltafsError('APPLY', `the file staged for ${JSON.stringify(tx.path)} could not be put in place`)
    return { path: tx.path, facts: done.facts, bytes }
  }

  /** Renames a stage over its file; undefined when it cannot go there (its directory is gone, say): it is dropped. */
  private async putInPlace (stage: Stage, why?: string): Promise<{ path: string; seq: number; facts: FileFacts } | undefined> {
    const stages = this.opts!.stages!
    try {
      await fsp.rename(stage.file, await resolveInside(this.root, stage.path))
    } catch (err) {
      log.warn({ path: stage.path, err: (err as Error).message }, 'a file received in parts could not be put in place: dropped')
      await stages.forget(stage.path)
      return undefined
    }
    await stages.forget(stage.path)
    if (why) log.info({ path: stage.path, parts: stage.part, why }, 'a file received in parts went in place before its last part')
    await this.opts!.onReplaced?.(stage.path)
    return { path: stage.path, seq: stage.seq, facts: await this.finish(stage.path, 0n) }
  }

  private async applyInPlace (tx: Transaction, prebuilt?: Prebuilt): Promise<ApplyResult> {
    await this.checkBaseExists(tx)
    if (startsOver(tx)) await this.unlinkIfLinked(tx.path)
    else if (tx.ops.every(isOfFile)) await this.onlyAuthorsNames(tx)
    let subject = tx.path
    let bytes = 0
    let fh: fsp.FileHandle | undefined
    const closeFile = async (): Promise<void> => { await fh?.close(); fh = undefined }
    try {
      for (const op of tx.ops) {
        if ('write' in op && op.write) {
          const { offset, data } = op.write
          checkRange(offset, data.length)
          fh ??= await fsp.open(await resolveInside(this.root, subject), WRITE_FLAGS, 0o644)
          await fh.write(data, 0, data.length, offset)
          bytes += data.length
          continue
        }
        await closeFile()
        subject = await this.applyOther(subject, op, prebuilt)
      }
      await closeFile()
      return { path: subject, facts: await this.finish(subject, tx.mtimeNs), bytes }
    } finally {
      await closeFile()
    }
  }

  /**
   * A file started over with its content (sent whole, or rewritten on an
   * author where it had one name only) is the author's file at that name.
   * Where the name is a hard link here (links made on this mount alone, or
   * one that lost a race), written in place it would change the other names
   * too, which the author's did not: the name is replaced instead, as a
   * Create and a Rebuild replace it. A lone Truncate to 0 is the author
   * emptying a file in place, links included. So is a link from this name
   * that this mount made and has not sent: the others apply it after this
   * change, so there the other name ends with this content too.
   */
  private async unlinkIfLinked (volPath: string): Promise<void> {
    const real = await resolveInside(this.root, volPath)
    const st = await fsp.lstat(real).catch(() => undefined)
    if (!st?.isFile() || st.nlink < 2) return
    if (await this.opts?.linksPendingFrom?.(volPath)) return
    await fsp.unlink(real)
  }

  /**
   * A change of a file's content or attributes reaches every name of the
   * file it is applied to. Its author journaled it under each name it
   * reached there (alsoAt), so where this path is also a name of the file
   * outside those (links that differ here, for now or for good: a race of a
   * link with a rename or delete on another mount), the path gets a file of
   * its own first. The change then reaches here just the names it reached
   * on its author, each by its own transaction. So it does where one of
   * those names changed after what its author had seen (alsoBase): that is
   * a concurrent change of the same file, which came first, and the node
   * refuses the author's change under that name; under a name new to the
   * file (a link) it would still be taken, and reach the first change's
   * names here through the link.
   */
  private async onlyAuthorsNames (tx: Transaction): Promise<void> {
    if (!this.opts) return
    const real = await resolveInside(this.root, tx.path)
    const st = await fsp.lstat(real).catch(() => undefined)
    if (!st?.isFile() || st.nlink < 2) return
    const authors = new Set([tx.path, ...tx.alsoAt ?? []])
    const seen = tx.alsoBase ?? 0
    const outside: string[] = []
    for (const n of await this.names.othersOf(tx.path, ++this.namesEpoch)) {
      if (!authors.has(n) || (tx.alsoAt?.length && await this.changedUnseen(n, seen, tx.txId.deviceId))) outside.push(n)
    }
    if (outside.length === 0) return
    await detachName(real, this.opts.tempPath())
    log.info({ path: tx.path, outside, author: tx.txId.deviceId }, "a hard-linked name gets a file of its own before a change its author made to it without its other names here")
  }

  /** Whether path changed after seq by a device other than author (whose own changes it knows). */
  private async changedUnseen (path: string, seq: number, author: string): Promise<boolean> {
    const last = await this.opts?.lastChange?.(path)
    return last !== undefined && last.version > seq && last.by !== author
  }

  /**
   * A rename from a name that is not here over one that is: what the file
   * it renames is here.
   * - 'done': this apply renamed it already, before a crash, or this mount
   *   changed the target itself (its own file there, kept as a conflict copy
   *   first if it lost, or its own rename of the same file there).
   * - 'removed': this mount deleted it, or moved it away, and has not sent
   *   that. The change follows the rename (LevelJournal.followRenames), so
   *   the others take the target's old file out of the tree for the renamed
   *   one and then apply it to that; here, the renamed one is already where
   *   this mount left it, and the old one goes the same way.
   * - 'missing': it is not here for another reason (its deletion here lost
   *   a conflict, and the file is still to come back): renamed over, the old
   *   file would stay, so its author sends it whole at its new name.
   */
  private async renamedFileHere (from: string, to: string): Promise<'done' | 'removed' | 'missing'> {
    const opts = this.opts
    if (!opts?.removedHere) return 'done'
    if (this.applying.seq > 0 && this.applying.seq === opts.interruptedSeq?.()) return 'done'
    if (opts.changedHere?.(to)) return 'done'
    return await opts.removedHere(from) ? 'removed' : 'missing'
  }

  /**
   * Writes that start from the file's old bytes (no create or truncation to
   * 0 first) need that file: written into nothing they would make a sparse
   * fragment, not the author's file. The author sends it whole instead.
   */
  private async checkBaseExists (tx: Transaction): Promise<void> {
    const first = tx.ops.find(op => !('setAttr' in op && op.setAttr))
    if (!first) return
    // The same for a truncation to a non-zero size (it keeps old bytes), and
    // for a rename of a file this mount does not have to a name it does not
    // have either, and a hard link of one (deleted here first, say): the
    // author sends the file at its new name whole.
    const keepsOld = ('write' in first && first.write) || ('truncate' in first && first.truncate && first.truncate.size > 0)
    const movesMissing = ('rename' in first && first.rename) || ('link' in first && first.link)
    if (!keepsOld && !movesMissing) return
    const real = await resolveInside(this.root, tx.path).catch(() => undefined)
    // Without its directory the write fails as before (refused and skipped):
    // asking for the whole file would only fail the same way, again and again.
    if (real === undefined || !(await exists(path.dirname(real))) || await exists(real)) return
    if (movesMissing) {
      const to = checkVolumePath(movesMissing.to)
      const realTo = await resolveInside(this.root, to).catch(() => undefined)
      if (realTo === undefined || !(await exists(path.dirname(realTo)))) return
      // A link to it could not be made at all: the author's file at that name is taken whole.
      // A rename over a name that is here: see renamedFileHere (a directory there is left to the rename).
      const there = 'rename' in first && first.rename ? await fsp.lstat(realTo).catch(() => undefined) : undefined
      if (there && (!there.isFile() || await this.renamedFileHere(tx.path, to) !== 'missing')) return
      throw new BaseMismatch(to, `${'rename' in first && first.rename ? 'rename' : 'link'} of ${JSON.stringify(tx.path)}, which this mount does not have, to ${JSON.stringify(to)}`)
    }
    throw new BaseMismatch(tx.path, `change of ${JSON.stringify(tx.path)} from its old bytes, which this mount does not have`)
  }

  /** Applies one non-Write op, to at if given (a stage) or else to subject; returns the path later ops act on. */
  private async applyOther (subject: string, op: Op, prebuilt?: Prebuilt, at?: string): Promise<string> {
    const real = at ?? await resolveInside(this.root, subject)
    if ('create' in op && op.create) {
      // A Create says its author had no file at this name (CaptureVfs.create):
      // the content starts from nothing here too. A file found here is this
      // mount's own version, kept as a conflict copy first if it was unsent
      // (ConflictResolver), or one a crash left between this apply and its
      // record: written over without truncating, its tail would outlive it.
      // A hard link found here is neither: this mount linked another file
      // to this name and has not sent the link yet (the author, who made a
      // new file here, never had it). Truncated in place, the linked file
      // would take the new bytes under its own name too; the name is
      // replaced instead, and the other names keep their content.
      const there = await fsp.lstat(real).catch(() => undefined)
      if (there?.isFile() && there.nlink > 1) await fsp.unlink(real)
      const fh = await fsp.open(real, WRITE_FLAGS | O_TRUNC, op.create.mode & MODE_MASK)
      await fh.chmod(op.create.mode & MODE_MASK)
      await fh.close()
    } else if ('truncate' in op && op.truncate) {
      checkRange(op.truncate.size, 0)
      const fh = await fsp.open(real, WRITE_FLAGS, 0o644)
      try { await fh.truncate(op.truncate.size) } finally { await fh.close() }
    } else if ('unlink' in op && op.unlink) {
      if (at === undefined) await this.opts?.onRemoving?.(subject, this.applying)
      await ignore(fsp.unlink(real), 'ENOENT')
    } else if ('mkdir' in op && op.mkdir) {
      await ignore(fsp.mkdir(real, { mode: op.mkdir.mode & MODE_MASK }), 'EEXIST')
      // chmod follows symlinks: only touch what is really a directory here.
      if (!(await fsp.lstat(real)).isDirectory()) throw new DeltafsError('BAD_PATH', `mkdir ${JSON.stringify(subject)}: something other than a directory is there`)
      await fsp.chmod(real, op.mkdir.mode & MODE_MASK)
    } else if ('rmdir' in op && op.rmdir) {
      await ignore(fsp.rmdir(real), 'ENOENT')
    } else if ('rename' in op && op.rename) {
      const to = await resolveInside(this.root, checkVolumePath(op.rename.to))
      const source = await fsp.lstat(real).catch(() => undefined)
      const target = await fsp.lstat(to).catch(() => undefined)
      if (source && target && sameFile(source, target)) {
        // Two names of one file here (this mount linked them), not on the
        // author's side: rename(2) would do nothing and leave the source
        // name, which the author's rename removed.
        await fsp.unlink(real)
      } else if (source || !target) {
        if (source && target && at === undefined) await this.opts?.onRemoving?.(op.rename.to, this.applying)
        await fsp.rename(real, to)
        if (source && at === undefined) this.opts?.onMoved?.(subject, op.rename.to)
      } else if (at === undefined && await this.renamedFileHere(subject, op.rename.to) === 'removed') {
        // (Without a source but with a target, and 'done': nothing to do.)
        await this.opts?.onRemoving?.(op.rename.to, this.applying)
        await (target.isDirectory() ? ignore(fsp.rmdir(to), 'ENOTEMPTY') : fsp.unlink(to))
      }
      return op.rename.to
    } else if ('symlink' in op && op.symlink) {
      const target = op.symlink.target
      if (typeof target !== 'string' || target.length === 0 || target.includes('\0')) throw new DeltafsError('BAD_PATH', 'bad symlink target')
      const current = await fsp.readlink(real).catch(() => undefined)
      if (current !== target) {
        if (current !== undefined) await fsp.unlink(real)
        await fsp.symlink(target, real)
      }
    } else if ('rebuild' in op && op.rebuild) {
      await this.rebuild(subject, real, op.rebuild, prebuilt?.op === op.rebuild ? prebuilt : undefined)
    } else if ('refresh' in op && op.refresh) {
      if (this.opts && op.refresh.deviceId === this.opts.deviceId) await this.opts.onRefresh(subject)
    } else if ('link' in op && op.link) {
      const to = await resolveInside(this.root, checkVolumePath(op.link.to))
      // This mount's deletion of that name, not sent yet, comes after the
      // link everywhere: the others make the link and then delete it.
      if (!(await exists(to)) && await this.opts?.removedHere?.(op.link.to)) return subject
      await ignore(fsp.link(real, to), 'EEXIST')
    } else if ('mknod' in op && op.mknod) {
      const mode = op.mknod.mode & MODE_MASK
      const st = await fsp.lstat(real).catch(() => undefined)
      if (!st) await mkfifo(real, mode)
      else if (!st.isFIFO()) throw new DeltafsError('BAD_PATH', `mknod ${JSON.stringify(subject)}: something other than a FIFO is there`)
      else await fsp.chmod(real, mode)
    } else if ('setXattr' in op && op.setXattr) {
      await setXattr(real, op.setXattr.name, op.setXattr.value)
    } else if ('removeXattr' in op && op.removeXattr) {
      await ignore(removeXattr(real, op.removeXattr.name), 'ENODATA')
    } else if ('setAttr' in op && op.setAttr) {
      const a = op.setAttr
      const st = await fsp.lstat(real, { bigint: true })
      if (a.hasUid || a.hasGid) {
        try {
          await fsp.lchown(real, a.hasUid ? a.uid ?? -1 : -1, a.hasGid ? a.gid ?? -1 : -1)
        } catch (err) {
          // Only root may give files away: a mount run by a user keeps its own ids.
          if (!isErrno(err, 'EPERM')) throw err
          log.debug({ path: subject }, 'ownership not applied: not permitted here')
        }
      }
      if (a.hasMode && !st.isSymbolicLink()) await fsp.chmod(real, (a.mode ?? 0) & MODE_MASK)
      if (a.hasMtime || a.hasAtime) {
        setTimes(real, a.hasAtime ? a.atimeNs ?? 0n : 'omit', a.hasMtime ? a.mtimeNs ?? 0n : 'omit')
      }
    } else {
      throw new DeltafsError('BAD_FRAME', 'transaction has an op of unknown kind')
    }
    return subject
  }

  /**
   * Rebuilds a file from its current content and a delta, into a temp file
   * renamed over it. The base's digest is checked while it is copied and the
   * result's after: a base that differs from the author's is reported as
   * BASE_MISMATCH and the file is left as it was.
   */
  private async rebuild (subject: string, real: string, rebuild: RebuildOp, prebuilt?: Prebuilt): Promise<void> {
    if (!this.opts) throw new DeltafsError('APPLY', 'this applier cannot apply Rebuild ops')
    const st = await fsp.lstat(real, { bigint: true }).catch(() => undefined)
    if (!st?.isFile()) throw new DeltafsError('BASE_MISMATCH', `Rebuild of ${JSON.stringify(subject)}: no regular file to rebuild from`)
    // Built from this very file, or (changed since, or none) built now.
    const tmp = prebuilt && unchanged(st, prebuilt.base) ? prebuilt.tmp : this.opts.tempPath()
    if (tmp !== prebuilt?.tmp) {
      try {
        await applyDelta(real, rebuild, tmp, { sync: false })
      } catch (err) {
        await fsp.rm(tmp, { force: true })
        if (err instanceof DeltafsError && err.code === 'APPLY') {
          throw new DeltafsError('BASE_MISMATCH', `Rebuild of ${JSON.stringify(subject)} refused: ${err.message}`, { cause: err })
        }
        throw err
      }
    }
    await fsp.chmod(tmp, Number(st.mode) & MODE_MASK)
    await fsp.rename(tmp, real)
    await this.opts.onReplaced?.(subject)
  }

  /** Gives the file the author's mtime and returns what its record holds. */
  private async finish (subject: string, mtimeNs: bigint): Promise<FileFacts> {
    const real = await resolveInside(this.root, subject)
    try {
      let st = await fsp.lstat(real, { bigint: true })
      if (mtimeNs > 0n && st.isFile()) {
        setTimes(real, 'omit', mtimeNs)
        st = await fsp.lstat(real, { bigint: true })
      }
      return { size: Number(st.size), mtimeNs: st.mtimeNs, kind: kindOf(st) }
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return { size: -1, mtimeNs: 0n }
      throw err
    }
  }
}

/** Checks every op before any is applied, so a bad transaction changes nothing. */
function validate (tx: Transaction): void {
  checkVolumePath(tx.path)
  if (!Array.isArray(tx.ops)) throw new DeltafsError('BAD_FRAME', 'transaction has no op list')
  for (const op of tx.ops) {
    if ('write' in op && op.write) {
      if (!(op.write.data instanceof Uint8Array)) throw new DeltafsError('BAD_FRAME', 'write without data')
      checkRange(op.write.offset, op.write.data.length)
    } else if ('truncate' in op && op.truncate) checkRange(op.truncate.size, 0)
    else if ('rename' in op && op.rename) checkVolumePath(op.rename.to)
    else if ('link' in op && op.link) checkVolumePath(op.link.to)
    else if ('symlink' in op && op.symlink) {
      const target = op.symlink.target
      if (typeof target !== 'string' || target.length === 0 || target.length > 4096 || target.includes('\0')) throw new DeltafsError('BAD_PATH', 'bad symlink target')
    } else if ('rebuild' in op && op.rebuild) {
      const r = op.rebuild
      if (!Array.isArray(r.pieces) || !Number.isSafeInteger(r.resultSize) || r.resultSize < 0 || r.resultSize > MAX_FILE_END) throw new DeltafsError('BAD_FRAME', 'malformed Rebuild')
    } else if ('refresh' in op && op.refresh) {
      if (typeof op.refresh.deviceId !== 'string') throw new DeltafsError('BAD_FRAME', 'malformed Refresh')
    } else if ('setXattr' in op && op.setXattr) {
      checkXattrName(op.setXattr.name)
      const v = op.setXattr.value
      if (!(v instanceof Uint8Array) || v.length > XATTR_SIZE_MAX) throw new DeltafsError('BAD_FRAME', 'extended attribute value missing or too large')
    } else if ('removeXattr' in op && op.removeXattr) {
      checkXattrName(op.removeXattr.name)
    } else if ('mknod' in op && op.mknod) {
      // Device nodes would get around nodev on every other mount; sockets mean nothing remotely.
      if (typeof op.mknod.mode !== 'number' || (op.mknod.mode & S_IFMT) !== S_IFIFO) throw new DeltafsError('BAD_FRAME', 'mknod of anything but a FIFO refused')
    } else if ('setAttr' in op && op.setAttr) {
      const a = op.setAttr
      if ((a.hasUid && !isId(a.uid)) || (a.hasGid && !isId(a.gid))) throw new DeltafsError('BAD_FRAME', 'malformed owner in SetAttr')
    } else if (!['create', 'unlink', 'mkdir', 'rmdir'].some(k => (op as Record<string, unknown>)[k] != null)) {
      throw new DeltafsError('BAD_FRAME', 'transaction has an op of unknown or unsupported kind')
    }
  }
}

function checkXattrName (name: unknown): void {
  if (!isUserXattr(name)) throw new DeltafsError('BAD_FRAME', `extended attribute ${JSON.stringify(name)} refused: only user.* names cross the wire`)
}

function isId (id: unknown): boolean {
  return Number.isSafeInteger(id) && (id as number) >= 0 && (id as number) <= MAX_ID
}

function checkRange (offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > MAX_FILE_END) {
    throw new DeltafsError('BAD_FRAME', `offset ${offset} + ${length} is out of range`)
  }
}

async function ignore (p: Promise<unknown>, code: string): Promise<void> {
  try { await p } catch (err) { if (!isErrno(err, code)) throw err }
}

/** A Truncate to 0 followed by the file's content (TxRecorder.recordWhole, a held rewrite). */
function startsOver (tx: Transaction): boolean {
  const first = tx.ops[0]
  return tx.ops.length > 1 && first !== undefined && 'truncate' in first && first.truncate !== undefined && first.truncate.size === 0
}

/**
 * Starts a stage as the file it will replace: its mode, owner and extended
 * attributes, which a truncation in place would have kept (a Create sets
 * its own mode on the empty file).
 */
async function startAs (stageFile: string, real: string): Promise<void> {
  const st = await fsp.lstat(real).catch(() => undefined)
  const fh = await fsp.open(stageFile, WRITE_FLAGS | O_TRUNC, 0o644)
  try {
    if (!st?.isFile()) return
    await fh.chmod(st.mode & MODE_MASK)
    await fh.chown(st.uid, st.gid).catch(err => { if (!isErrno(err, 'EPERM')) throw err })
  } finally {
    await fh.close()
  }
  if (!st?.isFile()) return
  for (const name of (await listXattr(real).catch(() => [])).filter(isUserXattr)) {
    await setXattr(stageFile, name, await getXattr(real, name))
  }
}

async function exists (real: string): Promise<boolean> {
  try { await fsp.lstat(real); return true } catch { return false }
}
