// Conflicts on the losing mount (DESIGN §6: first writer wins, nobody
// loses). The node has already ordered the winner; this mount's concurrent
// version of the file is kept as a conflict copy, journaled as a new file so
// it reaches every mount, and its transactions that the node refuses are
// dropped. Where the winner's change cannot be applied on top of the local
// version (a delta of a version this mount never had), the winner's author
// is asked for the whole file. Identical concurrent content is no conflict.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import type { Op, Transaction } from '../codec/wire.js'
import type { ConflictEntry, Journal } from '../journal/journal.js'
import { isOfFile, renamesOf } from '../journal/records.js'
import { conflictCopyName, isConflictCopyName, sameResult, subjectOf } from './conflict-policy.js'
import type { SyncStats } from './sync-stats.js'
import { logger } from '../util/log.js'
import { fault } from '../util/fault.js'
import { detachName } from '../fs/detach.js'

const log = logger('conflict')

/** What the resolver needs from the capture side of the mount. */
export interface LocalChanges {
  /** Whether path has a transaction still being captured. */
  isOpen (path: string): boolean
  /** Closes open transactions (ending held rewrites at or under `related`), so they are in the outbox. */
  closeAll (related: string[]): Promise<void>
  /** Journals a single-op transaction, after closing what is open. */
  record (path: string, op: Op): Promise<void>
  /** Journals the file now at volPath as a new file: created, its content, its attributes. */
  journalNewFile (volPath: string): Promise<void>
  /** Journals the file now at volPath whole, replacing whatever the others have there. */
  journalWholeFile (volPath: string): Promise<void>
  /**
   * When path is open here for writing, moves the file itself to copy, its
   * descriptors following it (so what they write next lands in the copy);
   * false when nothing has it open for writing.
   */
  moveOpen?: (path: string, copy: string) => Promise<boolean>
  /** The other names of the file at path (hard links), under which its changes were journaled too. */
  otherNames?: (path: string) => Promise<string[]>
}

export interface ConflictResolverOptions {
  journal: Journal
  local: LocalChanges
  /** The backing path of a volume path. */
  real: (volPath: string) => string
  /** A new temp path on the backing filesystem, outside the volume. */
  tempPath: () => string
  stats: SyncStats
  now?: () => Date
}

/**
 * Whether the transaction's content owes nothing to the file's old bytes. A
 * Create is journaled only for a name that held no file on its author (see
 * CaptureVfs.create), whatever its base: a name deleted and made again has
 * the delete as its base, and its content is still whole.
 */
function startsFromNothing (tx: Transaction): boolean {
  const first = tx.ops.find(op => !('setAttr' in op))
  if (!first) return false
  if ('truncate' in first && first.truncate) return first.truncate.size === 0
  return 'create' in first && first.create !== undefined
}

/** Whether file is missing or has exactly the bytes of other. */
async function missingOrSame (file: string, other: string): Promise<boolean> {
  const [a, b] = await Promise.all([fsp.open(file, 'r').catch(() => undefined), fsp.open(other, 'r')])
  if (!a) { await b.close(); return true }
  try {
    if ((await a.stat()).size !== (await b.stat()).size) return false
    const x = Buffer.allocUnsafe(64 << 10)
    const y = Buffer.allocUnsafe(64 << 10)
    for (let off = 0; ;) {
      const [{ bytesRead: n }, { bytesRead: m }] = await Promise.all([a.read(x, 0, x.length, off), b.read(y, 0, y.length, off)])
      if (n !== m || !x.subarray(0, n).equals(y.subarray(0, m))) return false
      if (n === 0) return true
      off += n
    }
  } finally {
    await Promise.all([a.close(), b.close()])
  }
}

export class ConflictResolver {
  private readonly seen: ConflictEntry[] = []

  constructor (private readonly opts: ConflictResolverOptions) {}

  async open (): Promise<void> {
    this.seen.push(...await this.opts.journal.conflicts())
  }

  /** Conflicts seen by this mount, for `deltafs status`. */
  list (): ConflictEntry[] { return [...this.seen] }

  /**
   * Called before a remote transaction is applied. When this mount has its
   * own unacked change of the same file, the remote one came first (the node
   * ordered it): keep the local version as a conflict copy unless both
   * reached the same content.
   */
  async beforeApply (tx: Transaction, seq: number, hints: { whole?: boolean } = {}): Promise<void> {
    await this.checkConflict(tx, seq, hints.whole === true)
    // A local change of a file that a remote rename moves is no conflict: it
    // follows the file to its new name (the journal moves it when it records
    // the apply). Writes still being captured there must be in the outbox by then.
    for (const [from] of renamesOf(tx)) await this.opts.local.closeAll([from])
  }

  /** whole: tx completes a file whose earlier parts carry its whole content (Applier.continuesStage). */
  private async checkConflict (tx: Transaction, seq: number, whole: boolean): Promise<void> {
    if (!tx.fileId) return
    const { journal, local } = this.opts
    const subject = subjectOf(tx.path, tx.ops)
    if (journal.pendingOn(subject).length === 0 && !local.isOpen(subject)) return
    await local.closeAll([subject])
    const seqs = journal.pendingOn(subject)
    if (seqs.length === 0) return
    const mine: Op[] = []
    for (const s of seqs) mine.push(...((await journal.readOutbox(s - 1, 1))[0]?.tx.ops ?? []))
    if (await sameResult(tx, this.opts.real(subject), mine)) {
      log.info({ path: subject, seq, device: tx.txId.deviceId }, 'another device made the same change concurrently: no conflict')
      return
    }
    // A winner that carries its whole content (a Create or a truncation to 0
    // first, each of which starts the file over when applied) needs nothing
    // more; any other change is a delta of a version this mount no longer
    // has once its own is kept: its author sends the file whole.
    const removes = tx.ops.some(op => 'unlink' in op && op.unlink)
    const heal = !whole && !startsFromNothing(tx) && !removes
    // Another file renamed over it (an atomic save) takes it out of the tree
    // as a delete does, for the descriptors open on it here.
    const replaced = tx.path !== subject && tx.ops.some(op => 'rename' in op && op.rename?.to === subject)
    // Applied in place, the winner's change reaches here the names it was journaled under on its author.
    const reaches = tx.ops.every(isOfFile) ? tx.alsoAt ?? [] : []
    await this.keepLocal(subject, tx.txId.deviceId, seq, seqs, heal, removes || replaced, reaches)
  }

  /** Called after a remote transaction was applied: conflict copies made elsewhere are listed here too. */
  async afterApply (tx: Transaction, seq: number): Promise<void> {
    const subject = subjectOf(tx.path, tx.ops)
    if (!isConflictCopyName(subject) || !tx.ops.some(op => 'create' in op && op.create)) return
    if (this.seen.some(c => c.copy === subject)) return
    await this.remember({ path: subject.replace(/ \(conflict [^)]*\)/, ''), copy: subject, device: tx.txId.deviceId, winner: '', seq, at: new Date(Number(tx.mtimeNs) / 1e6 || Date.now()).toISOString() })
  }

  /** A file deleted by another device was written to here after that, and kept as `copy` (OpenDeleted). */
  async keptDeleted (entry: { path: string; copy: string; winner: string; seq: number }): Promise<void> {
    this.opts.stats.conflicts++
    await this.remember({ ...entry, device: this.opts.journal.deviceId, at: new Date().toISOString() })
  }

  /**
   * The node refused a local transaction on `subject` again after the
   * winner's change was applied here: settle it as a conflict now.
   */
  async lost (subject: string, winner: string, seq: number): Promise<void> {
    await this.opts.local.closeAll([subject])
    const seqs = this.opts.journal.pendingOn(subject)
    if (seqs.length === 0) return
    await this.keepLocal(subject, winner, seq, seqs, true)
  }

  /**
   * Keeps the local version of subject as a conflict copy and drops the
   * transactions that made it. With heal, the winner's author is asked for
   * the whole file first: once they are dropped, a crash before the request
   * is journaled would leave nothing to mend the file here (the winner's
   * change applies again on top of this version, a mix only this mount has).
   */
  private async keepLocal (subject: string, winner: string, seq: number, seqs: number[], heal: boolean, removed = false, reaches: string[] = []): Promise<void> {
    const { journal, local, real, stats } = this.opts
    let copy = ''
    const st = await fsp.lstat(real(subject)).catch(() => undefined)
    if (st?.isFile()) {
      // The same conflict met again after a crash mid-way (its delivery was
      // not recorded as applied) reuses the copy's name: one copy, not two.
      // Only while the copy is missing or holds these very bytes: a copy
      // that went out with other content is another version, which this
      // one sent under its name would replace everywhere.
      const before = this.seen.find(c => c.path === subject && c.seq === seq && c.device === journal.deviceId && c.copy !== '')
      const reuse = before !== undefined && await missingOrSame(real(before.copy), real(subject))
      copy = reuse ? before.copy : conflictCopyName(subject, journal.deviceId, (this.opts.now ?? (() => new Date()))(), p => fs.existsSync(real(p)))
      if (!reuse) await this.remember({ path: subject, copy, device: journal.deviceId, winner, seq, at: new Date().toISOString() })
      // Deleted, or replaced by a rename, by the winner while open here for writing: the file itself
      // becomes the copy, so that what its descriptors write next is kept
      // in it too (a second copy otherwise: see OpenDeleted).
      const moved = removed && !reuse && st.nlink === 1 && await local.moveOpen?.(subject, copy) === true
      if (!moved) {
        await fsp.copyFile(real(subject), real(copy), fs.constants.COPYFILE_FICLONE)
        await fsp.chmod(real(copy), st.mode & 0o7777)
        await fsp.utimes(real(copy), st.atime, st.mtime)
      }
      await local.journalNewFile(copy)
      if (!moved && st.nlink > 1 && reaches.length > 0) await this.dropMirrors(subject, reaches)
      // A hard link this mount made to subject and has not sent: the
      // winner's change, applied next in place, would reach the linked
      // file's other names too, which the others do not have linked here.
      // This name gets its own copy of the content first.
      // (Not for a winner that deletes the name or renames a file over it:
      // nothing is applied in place, and LinkRebase sets the link aside for
      // that change and makes it again after it, as the others will.)
      if (!moved && !removed && st.nlink > 1 && await journal.pendingLinkTo(subject)) await this.detach(subject)
    }
    if (heal) await this.askForWholeFile(subject, winner)
    const dropped = await journal.dropPending(seqs)
    fault('conflict.after-drop')
    // A dropped rename never happens on the other mounts: where it took its
    // file from, they still have it (here it is gone: remove it there too);
    // where it put it, they have nothing or an older file (send it whole).
    for (const d of dropped) {
      for (const [from, to] of renamesOf(d.tx)) {
        // A file made at `from` after the rename was journaled as new (create
        // and writes on nothing), while the others still have the old one
        // there: it too must go whole.
        if (from !== subject) {
          if (!fs.existsSync(real(from))) await local.record(from, { unlink: {} })
          else await this.sendWhole(from)
        }
        if (to !== subject && fs.existsSync(real(to))) await this.sendWhole(to)
      }
    }
    stats.conflicts++
    if (!copy) await this.remember({ path: subject, copy, device: journal.deviceId, winner, seq, at: new Date().toISOString() })
    log.warn({ path: subject, copy: copy || undefined, winner, seq, dropped: dropped.length },
      copy
        ? `conflict: ${subject} was changed on device ${winner} (seq ${seq}) while this mount changed it too; ` +
          `that change wins, this mount's version is kept as ${path.posix.basename(copy)}`
        : `conflict: ${subject} was changed on device ${winner} (seq ${seq}) while this mount deleted or renamed it; the change wins and the file comes back`)
  }

  /**
   * The changes of a hard-linked file went out under each of its names
   * (CaptureVfs), and the copy just made holds what they left. Where the
   * winner's change, applied in place next, reaches another name here too
   * (it was journaled under it on its author), this mount's changes pending
   * under that name are dropped with the subject's: kept, they would be
   * judged "the same change" (the winner's bytes are there by then) and
   * sent again over the winner's. Under names it does not reach they stay:
   * the applier gives the subject a file of its own first, so those names
   * keep this mount's version, and their changes go out as they are. Only
   * changes of content and attributes: a name's create, rename or delete is
   * not the file's.
   */
  private async dropMirrors (subject: string, reaches: string[]): Promise<void> {
    const { journal, local } = this.opts
    for (const q of await local.otherNames?.(subject) ?? []) {
      if (!reaches.includes(q)) continue
      const mirrors = (await journal.pendingTxOn(q)).filter(p => p.source === undefined && p.tx.ops.every(isOfFile)).map(p => p.deviceSeq)
      if (mirrors.length === 0) continue
      await journal.dropPending(mirrors)
      log.info({ path: q, of: subject, dropped: mirrors.length }, "a hard-linked file's changes under another of its names are kept in the conflict copy")
    }
  }

  /** Gives path an inode of its own with the same content, mode and times, in one rename. */
  private async detach (volPath: string): Promise<void> {
    await detachName(this.opts.real(volPath), this.opts.tempPath())
    log.info({ path: volPath }, 'a hard link made here and not yet sent is detached from its other names before the change that won is applied')
  }

  private async remember (entry: ConflictEntry): Promise<void> {
    if (this.seen.some(c => c.path === entry.path && c.seq === entry.seq && c.copy === entry.copy)) return
    await this.opts.journal.addConflict(entry)
    this.seen.push(entry)
  }

  /**
   * Replaces what is pending on path (changes made after a rename the node
   * refused, based on a file the others never got) by its whole content.
   */
  private async sendWhole (volPath: string): Promise<void> {
    const { journal, local } = this.opts
    await local.closeAll([volPath])
    await journal.dropPending((await journal.pendingTxOn(volPath)).filter(p => p.source === undefined).map(p => p.deviceSeq))
    await local.journalWholeFile(volPath)
  }

  private async askForWholeFile (subject: string, device: string): Promise<void> {
    // Journaled before the winner's change is applied, so a crash in between still heals.
    await this.opts.local.record(subject, { refresh: { deviceId: device } })
  }
}
