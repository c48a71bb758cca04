// Groups captured ops into transactions. Writes to a path accumulate in its
// open transaction; it closes on flush/fsync/release, after a quiet window,
// or when it grows past a size cap. Any other op first closes the open
// transactions, so the outbox order is a valid replay order for the volume.
//
// Rewrites are held instead: a file truncated to 0 (its old content kept as a
// record) or newly created keeps one open transaction, whatever its size,
// until the rewrite ends: at the last release for a truncated file, at a
// rename over another file or a short grace after release for a new one. Then
// the new content is compared with the record, and a Rebuild replaces the
// held writes when it is smaller. Held transactions are closed early only by
// ops on their own path or a parent, so reordering them is safe.
//
// A new file's writes and attribute changes are not journaled one by one:
// they wait in memory (up to FRESH_BUFFER_BYTES) and go in one append when
// its rewrite ends. Its transaction is journaled as sent whole: a crash
// before the end drops what part of it reached the journal, and startup
// sends the file whole from the backing directory, which has every write
// that was answered (each lands there before its answer). So the file and
// its journal head are its write-ahead log, and a tar x or checkout pays
// one journal write per file instead of one per request.
import fs from 'node:fs'
import type { Op } from '../codec/wire.js'
import type { Journal } from '../journal/journal.js'
import type { CaptureStats } from './capture-stats.js'
import type { ChangedRun } from './block-diff.js'
import { logger } from '../util/log.js'
import { type FileFacts, kindOf } from '../journal/records.js'
import type { KeptRecord, RecordStore } from './record-store.js'
import { MAX_REBUILD_BYTES, type RebuildChoice, rebuildAgainst } from './rewrite-delta.js'

const log = logger('capture')

export interface TxRecorderOptions {
  /** Close a transaction after this long without writes. */
  quietMs: number
  /** Close a transaction once its journaled ops reach this many bytes. */
  maxTxBytes: number
  /** How long a new file's rewrite stays held after its last release, waiting for a rename over another file. */
  freshGraceMs: number
  /**
   * A new file larger than this stops being held and streams: holding a
   * multi-GiB copy until its close would delay it and fill the journal, and
   * temp files of atomic saves are rarely that big.
   */
  maxHeldFreshBytes: number
}

/** A held rewrite: base is the kept previous version (none for a new file). */
export interface Held { base?: KeptRecord; fresh: boolean }

/** A held new file's ops not yet appended to the journal: from index first, bytes estimated. */
interface Unjournaled { first: number; ops: Op[]; bytes: number }

/**
 * What a new file's rewrite keeps in memory before appending it, and what all
 * of them may keep together. Past either, it is appended at once: a large
 * new file is journaled a megabyte at a time.
 */
export const FRESH_BUFFER_BYTES = 1 << 20
const FRESH_BUFFER_TOTAL = 16 << 20

/** A buffered op's journal bytes, near enough for size caps and the Rebuild comparison. */
function estimateBytes (op: Op): number {
  return 32 + ('write' in op && op.write ? op.write.data.length : 0)
}

interface OpenTx {
  openId: number; opCount: number; bytes: number; chain: Promise<unknown>; timer?: NodeJS.Timeout; held?: Held
  unjournaled?: Unjournaled
  /**
   * Appending its unjournaled ops failed: their writes are in the file but
   * not the journal, so it is never closed without them. It stays open in
   * the journal, whose next open sends the file whole.
   */
  unjournalable?: unknown
  /** The journaled writes' pwrites to the backing file: the facts (mtime, size) are read after they land. */
  landing?: Promise<unknown>
  /** Attribute changes journaled into a held rewrite (amendHeld): a Rebuild that replaces its ops must carry them. */
  attrs?: Op[]
  /** The file's other names its writes are journaled under too (Transaction.alsoAt). */
  alsoAt?: string[]
}

/**
 * Graces end on a shared tick: the files a program writes one after the
 * other (tar x, a checkout) then close together, so the journal commits
 * them in one batch, the pusher reads and sends them together and their acks
 * come back together, instead of one round of each per file.
 */
const GRACE_TICK_MS = 40

function graceDelay (graceMs: number): number {
  const end = Date.now() + graceMs
  return graceMs + (GRACE_TICK_MS - end % GRACE_TICK_MS) % GRACE_TICK_MS
}

/** Whether `p` is `dir` or inside it. */
function within (p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir + '/')
}

export class TxRecorder {
  private readonly open = new Map<string, OpenTx>()
  /** Held rewrites taken out of `open` whose delta is still being computed. */
  private finishing = 0
  /**
   * Those rewrites' ends in flight, with the paths they journal: they get
   * their place in the outbox only when they settle, so an op on one of
   * those paths journaled meanwhile (the rename of a temp file whose grace
   * just ran out) would overtake them. closeAll waits for the related ones.
   */
  private readonly inflight = new Map<Promise<unknown>, string[]>()
  /** Bytes of every open transaction's unjournaled ops. */
  private buffered = 0

  private track<T> (paths: string[], p: Promise<T>): Promise<T> {
    this.inflight.set(p, paths)
    const done = (): void => { this.inflight.delete(p) }
    p.then(done, done)
    return p
  }

  constructor (
    private readonly journal: Journal,
    private readonly realPath: (path: string) => string,
    private readonly stats: CaptureStats,
    private readonly opts: TxRecorderOptions,
    private readonly records?: RecordStore,
  ) {}

  /** Starts a held rewrite of path with its first op (Truncate to 0 or Create). */
  async startRewrite (path: string, firstOp: Op, held: Held): Promise<void> {
    const openId = this.journal.beginTx(path, held.fresh ? { whole: true } : {})
    const appended = this.journal.appendOps(openId, 0, [firstOp])
    // On the chain before the transaction is visible: an op on a parent
    // (rsync's generator setting a directory's times while its receiver
    // creates a temp file in it) can end the rewrite at once, and its close
    // must find the first op journaled, or it closes the transaction
    // without its Create.
    const tx: OpenTx = { openId, opCount: 1, bytes: 0, chain: appended.catch(() => undefined), held }
    this.open.set(path, tx)
    const bytes = await appended
    this.stats.bytesJournaled += bytes
    tx.bytes += bytes
  }

  isHeld (path: string): boolean { return this.open.get(path)?.held !== undefined }

  /** Whether path has a transaction still being captured. */
  /** Also while its transaction is being closed (a held rewrite's Rebuild is computed after it left `open`). */
  isOpen (path: string): boolean {
    if (this.open.has(path)) return true
    for (const paths of this.inflight.values()) if (paths.includes(path)) return true
    return false
  }

  /** Transactions still being captured, held rewrites aside: they reach the outbox at their release or quiet time. */
  openCount (): number {
    let n = 0
    for (const tx of this.open.values()) if (!tx.held) n++
    return n
  }

  /** Rewrites still being held (and so not yet in the outbox). */
  heldCount (): number {
    let n = this.finishing
    for (const tx of this.open.values()) if (tx.held) n++
    return n
  }

  /** The last handle of path was released. */
  async released (path: string): Promise<void> {
    const tx = this.open.get(path)
    if (!tx?.held) return this.close(path)
    if (!tx.held.fresh) return this.finish(path)
    clearTimeout(tx.timer)
    tx.timer = setTimeout(() => { this.finish(path).catch(err => log.error({ err, path }, 'finishing a rewrite failed')) }, graceDelay(this.opts.freshGraceMs))
  }

  /**
   * A held rewrite of path is about to be renamed over another file: its
   * grace timer must not end it in between (the rename would then be
   * journaled as a plain rename, or lost). Returns whether path is held.
   */
  claimHeld (path: string): boolean {
    const tx = this.open.get(path)
    if (!tx?.held) return false
    clearTimeout(tx.timer)
    tx.timer = undefined
    return true
  }

  /**
   * A held new file at `from` was renamed over an existing file at `to`,
   * whose previous content was kept as `base`: journal a Rebuild of `to` if
   * that is smaller, or else the held writes and the rename.
   */
  async renamedOver (from: string, to: string, base: KeptRecord): Promise<void> {
    const tx = this.open.get(from)
    if (!tx?.held) {
      // Ended meanwhile (a write past the hold limit, an eviction): the
      // rename already happened, so it goes as a plain one, after that end.
      try {
        await this.closeAll([from, to])
        await this.record(from, { rename: { to } })
      } finally {
        await this.records?.drop(base)
      }
      return
    }
    return this.track([from, to], this.endRenamedOver(tx, from, to, base))
  }

  private async endRenamedOver (tx: OpenTx, from: string, to: string, base: KeptRecord): Promise<void> {
    this.open.delete(from)
    clearTimeout(tx.timer)
    this.finishing++
    try {
      await tx.chain
      await tx.landing
      const choice = await this.tryRebuild(base, to, tx)
      if (choice) {
        this.unbuffer(tx)
        await this.journal.discardTx(tx.openId, tx.opCount)
        this.stats.bytesJournaled += (await this.journal.appendTx(to, [choice.op, ...tx.attrs ?? []], await this.facts(to))).bytes
        log.debug({ path: to, rebuildBytes: choice.wireBytes, replacedBytes: tx.bytes }, 'rename-over sent as a delta')
        // A new temp file never reached the others, but an existing file
        // rewritten in place (truncated, still open) did: its name must go.
        if (!tx.held?.fresh) await this.record(from, { unlink: {} })
        return
      }
      await this.flushTx(tx)
      await this.journal.closeTx(tx.openId, tx.opCount, await this.facts(to))
      await this.record(from, { rename: { to } })
    } finally {
      this.finishing--
      await this.records?.drop(base)
      if (tx.held?.base) await this.records?.drop(tx.held.base)
    }
  }

  /** Ends a held rewrite: a Rebuild against its record when smaller, else the held writes. */
  async finish (path: string): Promise<void> {
    const tx = this.open.get(path)
    if (!tx) return
    if (!tx.held) return this.close(path)
    return this.track([path], this.endHeld(tx, path))
  }

  private async endHeld (tx: OpenTx, path: string): Promise<void> {
    this.open.delete(path)
    clearTimeout(tx.timer)
    const base = tx.held?.base
    this.finishing++
    try {
      await tx.chain
      await tx.landing
      const choice = base ? await this.tryRebuild(base, path, tx) : undefined
      if (choice) {
        this.unbuffer(tx)
        await this.journal.discardTx(tx.openId, tx.opCount)
        this.stats.bytesJournaled += (await this.journal.appendTx(path, [choice.op, ...tx.attrs ?? []], await this.facts(path))).bytes
        return
      }
      await this.flushTx(tx)
      await this.journal.closeTx(tx.openId, tx.opCount, await this.facts(path))
    } finally {
      this.finishing--
      if (base) await this.records?.drop(base)
    }
  }

  /**
   * The Rebuild of path against its record, if that is the smaller way to
   * send the rewrite. Any failure (a record evicted meanwhile, a file changed
   * under the delta) means the held writes go instead: they are never lost.
   */
  private async tryRebuild (base: KeptRecord, path: string, tx: OpenTx): Promise<RebuildChoice | undefined> {
    if (!this.records?.holds(base)) return undefined
    try {
      const choice = await rebuildAgainst(base.file, this.realPath(path), base.baseVersion)
      return choice.wireBytes < tx.bytes && choice.wireBytes <= MAX_REBUILD_BYTES ? choice : undefined
    } catch (err) {
      log.warn({ path, err: (err as Error).message }, 'no delta for this rewrite: sending it as writes')
      return undefined
    }
  }

  /** A record was evicted for the budget: its rewrite goes as plain writes. */
  evicted (base: KeptRecord): void {
    for (const [path, tx] of this.open) {
      if (tx.held?.base === base) {
        delete tx.held.base
        this.finish(path).catch(err => log.error({ err, path }, 'finishing an evicted rewrite failed'))
      }
    }
  }

  /**
   * Journals the changed runs of a write, then calls land (the pwrite to the
   * backing file; none when the bytes are there already) and resolves with
   * its result. The landing joins the transaction before anything is
   * awaited: an end of the transaction that starts meanwhile (a grace timer,
   * another op's closeAll) must read the file's content and facts after it.
   */
  async write (path: string, runs: ChangedRun[], land?: () => Promise<number>, alsoAt: string[] = []): Promise<number | undefined> {
    let tx = this.open.get(path)
    if (!tx) {
      tx = { openId: this.journal.beginTx(path), opCount: 0, bytes: 0, chain: Promise.resolve() }
      this.open.set(path, tx)
    }
    // A namespace change closes open transactions first, so the names a transaction's writes reach stay the same.
    if (alsoAt.length > 0) tx.alsoAt = alsoAt
    const ops: Op[] = runs.map(r => ({ write: { offset: r.offset, data: r.data } }))
    if (tx.held?.fresh) return this.writeFresh(path, tx, ops, land)
    const first = tx.opCount
    tx.opCount += ops.length
    const openId = tx.openId
    // Appends of one transaction are chained so that close never overtakes them.
    const appended = tx.chain.then(() => this.journal.appendOps(openId, first, ops))
    tx.chain = appended.catch(() => undefined)
    const landed = land ? appended.then(land) : undefined
    if (landed) this.joinLanding(tx, landed)
    const bytes = await appended
    this.stats.bytesJournaled += bytes
    tx.bytes += bytes
    if (this.open.get(path) === tx) await this.afterWrite(path, tx)
    return landed
  }

  /** A write of a held new file: landed at once, journaled with the rest of the file (see the top of this file). */
  private async writeFresh (path: string, tx: OpenTx, ops: Op[], land?: () => Promise<number>): Promise<number | undefined> {
    this.buffer(tx, ops)
    const landed = land?.()
    if (landed) this.joinLanding(tx, landed)
    if ((tx.unjournaled?.bytes ?? 0) >= FRESH_BUFFER_BYTES || this.buffered >= FRESH_BUFFER_TOTAL) await this.flushTx(tx)
    if (this.open.get(path) === tx) await this.afterWrite(path, tx)
    return landed
  }

  private joinLanding (tx: OpenTx, landed: Promise<unknown>): void {
    const settled = landed.catch(() => undefined)
    tx.landing = tx.landing ? Promise.all([tx.landing, settled]) : settled
  }

  private buffer (tx: OpenTx, ops: Op[]): void {
    const u = tx.unjournaled ??= { first: tx.opCount, ops: [], bytes: 0 }
    let bytes = 0
    for (const op of ops) bytes += estimateBytes(op)
    u.ops.push(...ops)
    u.bytes += bytes
    tx.opCount += ops.length
    tx.bytes += bytes
    this.buffered += bytes
  }

  /** Appends a transaction's unjournaled ops, after whatever it appended before. */
  private async flushTx (tx: OpenTx): Promise<void> {
    if (tx.unjournalable !== undefined) throw tx.unjournalable
    const u = tx.unjournaled
    if (!u) return tx.chain.then(() => undefined)
    tx.unjournaled = undefined
    this.buffered -= u.bytes
    const appended = tx.chain.then(() => this.journal.appendOps(tx.openId, u.first, u.ops))
    tx.chain = appended.catch(() => undefined)
    let bytes: number
    try {
      bytes = await appended
    } catch (err) {
      tx.unjournalable = err
      log.error({ err, openId: tx.openId }, 'journaling a new file failed: it is sent whole when the mount next starts')
      throw err
    }
    this.stats.bytesJournaled += bytes
    tx.bytes += bytes - u.bytes
  }

  /** Forgets a transaction's unjournaled ops: a Rebuild replaces them. */
  private unbuffer (tx: OpenTx): void {
    if (tx.unjournaled) this.buffered -= tx.unjournaled.bytes
    tx.unjournaled = undefined
  }

  /** Journals what a held new file at path keeps in memory (before an fsync makes the journal durable). */
  async flush (path: string): Promise<void> {
    const tx = this.open.get(path)
    if (tx) await this.flushTx(tx)
  }

  /**
   * Journals an attribute change (mode, owner, times, xattrs) of a held
   * rewrite as an op of its transaction, which stays held; false when path
   * has none. tar and git set a new file's times, owner and mode right after
   * writing it: each would otherwise end the rewrite and be a transaction of
   * its own, four per file instead of one, each pushed, acked and applied.
   */
  async amendHeld (path: string, op: Op): Promise<boolean> {
    const tx = this.open.get(path)
    if (!tx?.held) return false
    const attrs = tx.attrs ??= []
    if (tx.held.fresh) {
      // Done already (the caller ran it), so kept for a Rebuild at once.
      this.buffer(tx, [op])
      attrs.push(op)
      return true
    }
    const first = tx.opCount++
    // Kept for a Rebuild only once journaled: a failed append's op was never done.
    const appended = tx.chain.then(async () => {
      const bytes = await this.journal.appendOps(tx.openId, first, [op])
      attrs.push(op)
      return bytes
    })
    tx.chain = appended.catch(() => undefined)
    this.stats.bytesJournaled += await appended
    return true
  }

  /** Lets a held new file that grew too large stream, closes a transaction at its size cap, or restarts its quiet timer. */
  private async afterWrite (path: string, tx: OpenTx): Promise<void> {
    if (tx.held?.fresh && tx.bytes > this.opts.maxHeldFreshBytes) {
      log.debug({ path, bytes: tx.bytes }, 'new file too large to hold: streaming it')
      await this.flushTx(tx)
      tx.held = undefined
    }
    if (tx.held) return
    if (tx.bytes >= this.opts.maxTxBytes) {
      await this.close(path)
    } else {
      clearTimeout(tx.timer)
      tx.timer = setTimeout(() => { this.close(path).catch(err => log.error({ err, path }, 'closing a quiet transaction failed')) }, this.opts.quietMs)
    }
  }

  /**
   * Journals a file sent whole (its first op, its content, its attributes)
   * as one transaction, however it is produced: in pieces, the others would
   * apply its first op alone (a file emptied, its content still to come) and
   * each piece could lose a conflict on its own. The journal still splits
   * what would not fit one frame (closeTx), so only files larger than that
   * go in parts. Callers hold the gate exclusive or run before FUSE starts:
   * no write of path is captured meanwhile.
   */
  async recordWhole (path: string, ops: AsyncIterable<Op[]>): Promise<void> {
    await this.closeAll([path])
    const openId = this.journal.beginTx(path, { whole: true })
    let count = 0
    try {
      for await (const batch of ops) {
        this.stats.bytesJournaled += await this.journal.appendOps(openId, count, batch)
        count += batch.length
      }
    } catch (err) {
      // Half a whole file would leave the others with a truncated one.
      await this.journal.discardTx(openId, count).catch(() => undefined)
      throw err
    }
    await this.journal.closeTx(openId, count, await this.facts(path))
  }

  /** Journals a single-op transaction. Callers close open transactions first (closeAll). */
  async record (path: string, op: Op, alsoAt?: string[]): Promise<void> {
    // The record a transaction leaves is for the path it ends at (a rename's target).
    const { bytes } = await this.journal.appendTx(path, [op], await this.facts('rename' in op && op.rename ? op.rename.to : path), alsoAt)
    this.stats.bytesJournaled += bytes
  }

  /**
   * Size and mtime of the backing file now, for its record; zeros when it is
   * gone. Synchronous for the same reason as Passthrough.getattr: one per
   * transaction, on an inode that was just touched.
   */
  private async facts (path: string): Promise<FileFacts> {
    try {
      const st = fs.lstatSync(this.realPath(path), { bigint: true, throwIfNoEntry: false })
      if (st) return { mtimeNs: st.mtimeNs, size: Number(st.size), kind: kindOf(st) }
    } catch { /* unreadable: as gone */ }
    return { mtimeNs: 0n, size: -1 }
  }

  /** Closes the open transaction of a path, if any; held rewrites stay open. */
  async close (path: string): Promise<void> {
    const tx = this.open.get(path)
    if (!tx || tx.held) return
    this.open.delete(path)
    clearTimeout(tx.timer)
    await this.flushTx(tx)
    await tx.landing
    // A held rewrite of this path that ended just before these writes began
    // (its last release came first) may still be computing its delta: these
    // writes were made on top of it, so they must follow it in the outbox.
    // Ahead of it, they would land on the others' old copy and be undone by
    // the rewrite, or make its delta's base mismatch there.
    await this.settled([path])
    await this.journal.closeTx(tx.openId, tx.opCount, await this.facts(path), tx.alsoAt)
  }

  /** Waits for the ends of held rewrites in flight that journal at or under one of `related`. */
  private async settled (related: string[]): Promise<void> {
    const ending = [...this.inflight].filter(([, paths]) => paths.some(p => related.some(r => within(p, r))))
    await Promise.all(ending.map(([p]) => p.catch(() => undefined)))
  }

  /**
   * Closes every open transaction before another op is journaled, and ends
   * the held rewrites that op could depend on: those at or under `related`.
   */
  async closeAll (related: string[] = []): Promise<void> {
    await Promise.all([...this.open.entries()].map(([p, tx]) => {
      if (!tx.held) return this.close(p)
      if (related.some(r => within(p, r))) return this.finish(p)
      return undefined
    }))
    await this.settled(related)
  }

  /** Ends everything, held rewrites included (unmount). */
  async closeEverything (): Promise<void> {
    await Promise.all([...this.open.keys()].map(p => this.finish(p)))
  }

  sync (): Promise<void> { return this.journal.sync() }
}
