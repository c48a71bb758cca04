// The Journal on LevelDB. Captured ops are plain puts (LevelDB's own log makes
// them survive a process crash); sync() forces that log to disk. The data of
// large writes goes to payload segments, and their ops refer to it.
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import path from 'node:path'
import { Level } from 'level'
import { type Op, OpCodec, type Transaction } from '../codec/wire.js'
import type { AppliedUpdate, ConflictEntry, CounterName, EntryKind, FileRecord, Journal, PendingTx } from './journal.js'
import { type FileFacts, isRefreshOnly, movedPath, recordChanges, renamesOf } from './records.js'
import { isConflictChecked, subjectOf } from '../sync/conflict-policy.js'
import { keys, readU64, u64 } from './keys.js'
import { type PayloadRef, PayloadStore, SEGMENT_BYTES } from './payload-store.js'
import { bootId } from '../util/boot-id.js'
import { crcOf, decodeRef, encodeRef, isRef, opBytes, payloadOf, resolveRef, type StoredRef, writeBytes } from './op-record.js'
import { DeltafsError } from '../util/errors.js'
import { logger } from '../util/log.js'
import { fault } from '../util/fault.js'
import { nsFromJson } from '../util/times.js'

const log = logger('journal')

/** A closed transaction: ops firstOp..firstOp+opCount-1 of open transaction openId. */
interface OutboxEntry {
  openId: number; firstOp?: number; opCount: number; path: string; mtimeNs: bigint; size: number; kind?: EntryKind; bytes: number
  /** Absent in entries written before conflict checks: then path, checked. */
  subject?: string; checked?: boolean
  /** Its ops name other paths (rename or link targets). */
  targets?: boolean
  /** Of a transaction split into parts: this part's number from 1, and whether parts follow (Transaction.part). */
  part?: number; moreParts?: true
  /** Transaction.alsoAt and alsoBase. */
  alsoAt?: string[]; alsoBase?: number
}
/** An op's journaled value, and the payload segment it refers to, if any. */
interface Encoded { value: Uint8Array; bytes: number; segment?: number }
type BatchOp = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string }

const COUNTERS: CounterName[] = ['txClosed', 'txAcked', 'txApplied', 'bytesApplied', 'txDropped']
/** Outbox entries kept in memory for the pusher and the acks (LevelJournal.entries). */
const ENTRY_CACHE = 1024
/** passOwn writes the applied cursor once it is this many seqs or this long ahead of LevelDB's. */
const OWN_CURSOR_SEQS = 1024
const OWN_CURSOR_MS = 1000
/**
 * Payload bytes journaled between background payload syncs. An open after
 * a crash reads back every referenced byte past the last sync's watermark
 * (dropLostPayloads): without these syncs, a long stream with no fsync
 * (offline, say) would be read back whole, 3.8 s per cold GiB here.
 */
const PAYLOAD_SYNC_BYTES = 256 << 20

// Exact times (bigint ns) are kept as decimal strings.
function json (value: unknown): Buffer { return Buffer.from(JSON.stringify(value, (_k, v: unknown) => typeof v === 'bigint' ? v.toString() : v)) }
function parse<T> (value: Uint8Array): T { return JSON.parse(Buffer.from(value).toString()) as T }
function parseEntry (value: Uint8Array): OutboxEntry {
  const e = parse<OutboxEntry & { mtimeNs: string | number }>(value)
  return { ...e, mtimeNs: nsFromJson(e.mtimeNs) }
}

/** Whether a is further into the payload segments than b. */
function after (a: PayloadRef, b: PayloadRef): boolean {
  return a.segment > b.segment || (a.segment === b.segment && a.offset > b.offset)
}

function encodeMark (mark: PayloadRef): Uint8Array {
  const b = Buffer.alloc(16)
  b.writeBigUInt64BE(BigInt(mark.segment), 0)
  b.writeBigUInt64BE(BigInt(mark.offset), 8)
  return b
}

/** A marker written before watermarks existed (empty) vouches for nothing. */
function decodeMark (value: Uint8Array | undefined): PayloadRef {
  if (value === undefined || value.length < 16) return { segment: 0, offset: 0, length: 0 }
  const b = Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  return { segment: Number(b.readBigUInt64BE(0)), offset: Number(b.readBigUInt64BE(8)), length: 0 }
}

function openIdOf (opKey: string): number { return parseInt(opKey.slice(2, 18), 16) }
function opIndexOf (opKey: string): number { return parseInt(opKey.slice(19), 16) }

export class LevelJournal implements Journal {
  private readonly db: Level<string, Uint8Array>
  private opened = false
  private _deviceId = ''
  private deviceSeq = 0
  private appliedSeq = 0
  private lastOpenId = 0
  private readonly openTx = new Map<number, { path: string; bytes: number; sizes: number[]; whole?: true }>()
  private readonly counts = Object.fromEntries(COUNTERS.map(c => [c, 0])) as Record<CounterName, number>
  private pendingTx = 0
  private pendingBytes = 0
  /** Files whose journaled changes were partly lost (dropLostPayloads), to be sent whole. */
  private resendPaths: string[] = []
  /** How far payload bytes are known to be on disk (the last payload sync's watermark). */
  private durable: PayloadRef = { segment: 0, offset: 0, length: 0 }
  /** Payload bytes journaled since the last payload sync began (payloadSyncBytes). */
  private unsyncedBytes = 0
  private backgroundSync: Promise<void> | undefined
  /** Paths of the remote transaction being applied (beginApply), until recordApplied. */
  private applyingPaths: string[] = []
  private interruptedSeq = 0
  /**
   * Requests for a file whole this mount sent that the node took at a seq
   * not applied here yet: a remote rename ordered before one moves the file
   * away from the name it asks for (healsMoved). In memory: after a restart
   * such a request goes unanswered, as before.
   */
  private readonly heals: Array<{ path: string; ops: Op[]; facts: FileFacts; seq: number }> = []
  private readonly events = new EventEmitter()
  /** Unacked conflict-checked transactions by subject, for the conflict check on apply. */
  private readonly pendingBySubject = new Map<string, Set<number>>()
  /** Unacked transactions whose ops name other paths (renames, links): the only ones pendingLinks reads. */
  private readonly pendingTargets = new Set<number>()
  /** The links of those, read once: pendingLinks runs before every remote apply. */
  private readonly linksOf = new Map<number, Array<{ from: string; to: string; deviceSeq: number }>>()
  /** Counts unindex calls: links read across one (an ack, a drop, a remote rename moving the entry) are not kept. */
  private unindexed = 0
  /** Batches that hand out device seqs commit in seq order, so the pusher never sees N+1 before N (commitInOrder). */
  private readonly commits: Array<{ batch: BatchOp[]; added: Array<[number, OutboxEntry]>; resolve: () => void; reject: (err: unknown) => void }> = []
  private committing = false
  /**
   * Ack, drop and rebase each read an outbox entry and then write it back or
   * delete it: run one at a time, or a rebase writes back an entry that an ack
   * deleted meanwhile (its ops gone: the outbox is stuck on it for good), and
   * an ack racing a drop counts the entry out twice.
   */
  private outboxEdits: Promise<unknown> = Promise.resolve()
  private readonly payload: PayloadStore
  /** Payload segment of each op that refers to one, by open id and op index: what an ack or a drop releases. */
  private readonly refs = new Map<number, Map<number, number>>()
  /** Deletions of payload segments, one at a time. */
  private collecting: Promise<void> = Promise.resolve()
  /**
   * The outbox entries above cacheFrom, exactly as LevelDB has them up to
   * committedSeq: the pusher reads them here instead of running an iterator
   * per transaction (tar closes one file at a time), and an ack needs no
   * read. Filled in seq order by the batches that close transactions, kept
   * in step by every edit of an entry (ack, drop, a remote rename); when
   * full it starts over empty, and what is below cacheFrom is read from
   * LevelDB as before.
   */
  private readonly entries = new Map<number, OutboxEntry>()
  private cacheFrom = 0
  /** The last device seq whose closing batch was written (or failed: then it has no entry). */
  private committedSeq = 0
  /** The applied cursor as LevelDB has it, and when passOwn last wrote it. */
  private persistedApplied = 0
  private persistedAt = 0

  // A chained batch: abstract-level clones and re-validates every operation
  // of an array batch, which was the largest LevelDB cost of the mount's
  // main thread in a tar x profile (1.9 s of 16 s busy, bench/RESULTS.md).
  private writeBatch (ops: BatchOp[], options?: { sync?: boolean }): Promise<void> {
    // One key (an op appended to an open transaction): a put is one call into
    // classic-level where a batch is three (make, add, write).
    const only = ops.length === 1 ? ops[0]! : undefined
    if (only) return only.type === 'put' ? this.db.put(only.key, only.value, options ?? {}) : this.db.del(only.key, options ?? {})
    const b = this.db.batch()
    for (const op of ops) {
      if (op.type === 'put') b.put(op.key, op.value)
      else b.del(op.key)
    }
    return b.write(options ?? {})
  }

  private exclusive<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.outboxEdits.then(fn)
    this.outboxEdits = run.catch(() => undefined)
    return run
  }

  constructor (readonly dir: string, private readonly volume: string, private readonly maxTxBytes = 1 << 20, segmentBytes = SEGMENT_BYTES, private readonly payloadSyncBytes = PAYLOAD_SYNC_BYTES) {
    this.db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
    this.payload = new PayloadStore(path.join(dir, 'payload'), segmentBytes)
  }

  get deviceId (): string { return this._deviceId }

  async open (): Promise<void> {
    if (this.opened) return
    try {
      // The memtable is the mount's largest memory that grows with the
      // transactions journaled (about 1.8 KiB each, puts and deletes alike)
      // until it is flushed: at 32 MiB, a 10 GiB stream took the daemon to
      // 198 MiB of its 200 MiB target and still rising. Op data lives in the
      // payload segments, so LevelDB's entries are small and a flush is cheap.
      await this.db.open({ writeBufferSize: 16 << 20 })
    } catch (err) {
      const cause = (err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message
      throw new DeltafsError('JOURNAL', `cannot open journal ${this.dir}: ${cause}`, { cause: err })
    }
    this.opened = true
    const device = await this.db.get(keys.device)
    if (device === undefined) {
      this._deviceId = 'd' + randomBytes(8).toString('hex')
      await this.db.put(keys.device, Buffer.from(this._deviceId), { sync: true })
    } else {
      this._deviceId = Buffer.from(device).toString()
    }
    this.deviceSeq = readU64(await this.db.get(keys.deviceSeq))
    this.appliedSeq = readU64(await this.db.get(keys.applied))
    const applying = await this.db.get(keys.applying)
    const interrupted = applying === undefined ? undefined : parse<{ seq: number; paths: string[] }>(applying)
    this.applyingPaths = interrupted?.paths ?? []
    this.interruptedSeq = interrupted?.seq ?? 0
    for (const c of COUNTERS) this.counts[c] = readU64(await this.db.get(keys.counter(c)))
    this.pendingTx = 0
    this.pendingBytes = 0
    await this.dropLostPayloads()
    const resend = await this.db.get(keys.resend)
    this.resendPaths = resend === undefined ? [] : parse<{ paths: string[] }>(resend).paths
    for await (const [key, value] of this.db.iterator({ gte: keys.outboxPrefix, lt: 't"' })) {
      const e = parseEntry(value)
      const deviceSeq = parseInt(key.slice(2), 16)
      this.index(deviceSeq, e)
      // m!devseq is written with each closed transaction; never hand out a
      // seq that an outbox entry holds, whatever that counter says.
      this.deviceSeq = Math.max(this.deviceSeq, deviceSeq)
      this.pendingTx++
      this.pendingBytes += e.bytes
      this.lastOpenId = Math.max(this.lastOpenId, e.openId)
    }
    this.entries.clear()
    this.cacheFrom = this.committedSeq = this.deviceSeq
    this.persistedApplied = this.appliedSeq
    this.persistedAt = Date.now()
    await this.openPayload()
    await this.recoverOpen()
  }

  /**
   * Finds the journaled writes whose data never reached its payload segment.
   * A reference is journaled beside its bytes (appendOps), so a process
   * crash can leave one whose bytes were still being written; and a power
   * loss can take segment bytes never fsynced while LevelDB kept the
   * reference (its own flushes sync). Past the last sync's watermark, the
   * CRC tells (a hole reads as zeros, so the segment's size cannot).
   *
   * After a process crash (same boot), the backing file never got those
   * writes either (it is written after both): those ops alone go. After a
   * reboot, nothing says what reached the backing file: the transactions
   * with a lost write go whole, and their files are sent whole once the
   * mount is up (resends), whatever else is pending on them.
   */
  private async dropLostPayloads (): Promise<void> {
    const sizes = await this.payload.sizes()
    const mark = decodeMark(await this.db.get(keys.syncMarker))
    const boot = await bootId()
    const sameBoot = boot !== undefined && Buffer.from(await this.db.get(keys.boot) ?? []).toString() === boot
    const lostOps: string[] = []
    for await (const [key, value] of this.db.iterator({ gte: 'o!', lt: 'o"' })) {
      if (isRef(value) && !await this.landed(decodeRef(value), sizes, mark)) lostOps.push(key)
    }
    const batch: BatchOp[] = []
    if (boot !== undefined) batch.push({ type: 'put', key: keys.boot, value: Buffer.from(boot) })
    const lost = new Set<number>()
    for (const key of lostOps) {
      // An open transaction's op: its write was in flight, and never returned.
      if (sameBoot && await this.db.get(keys.head(openIdOf(key))) !== undefined) batch.push({ type: 'del', key })
      else lost.add(openIdOf(key))
    }
    if (lostOps.length > lost.size) log.warn({ ops: lostOps.length - lost.size }, 'writes cut short by a crash had not reached the journal whole: they are dropped (they never returned to their writers)')
    const paths = new Set<string>()
    for await (const [key, value] of this.db.iterator({ gte: keys.outboxPrefix, lt: 't"' })) {
      const e = parseEntry(value)
      if (lost.has(e.openId)) { batch.push({ type: 'del', key }); paths.add(e.path) }
    }
    for (const openId of lost) {
      const head = await this.db.get(keys.head(openId))
      if (head !== undefined) paths.add(parse<{ path: string }>(head).path)
      batch.push({ type: 'del', key: keys.head(openId) })
      for await (const key of this.db.keys({ gte: keys.opPrefix(openId), lt: keys.opPrefix(openId) + '~' })) batch.push({ type: 'del', key })
    }
    if (paths.size > 0) {
      const before = await this.db.get(keys.resend)
      const known = before === undefined ? [] : parse<{ paths: string[] }>(before).paths
      batch.push({ type: 'put', key: keys.resend, value: json({ paths: [...new Set([...known, ...paths])] }) })
      log.error({ paths: [...paths], transactions: lost.size }, 'the data of writes never fsynced was lost before it reached the disk (a power loss?): their transactions are dropped, and the files are sent as the disk has them')
    }
    await this.writeBatch(batch, { sync: lostOps.length > 0 })
  }

  /** Whether the bytes of a journaled reference are in its segment. */
  private async landed (ref: StoredRef, sizes: Map<number, number>, mark: PayloadRef): Promise<boolean> {
    if (ref.offset + ref.length > (sizes.get(ref.segment) ?? -1)) return false
    if (ref.crc === undefined || after(mark, ref)) return true
    return crcOf(await this.payload.read(ref)) === ref.crc
  }

  /** Counts the references to each payload segment; the store deletes the segments nothing refers to. */
  private async openPayload (): Promise<void> {
    const counts = new Map<number, number>()
    for await (const [key, value] of this.db.iterator({ gte: 'o!', lt: 'o"' })) {
      if (!isRef(value)) continue
      const { segment } = decodeRef(value)
      counts.set(segment, (counts.get(segment) ?? 0) + 1)
      this.noteRef(openIdOf(key), opIndexOf(key), segment)
    }
    await this.payload.open(counts)
  }

  private noteRef (openId: number, i: number, segment: number): void {
    const ops = this.refs.get(openId) ?? new Map<number, number>()
    ops.set(i, segment)
    this.refs.set(openId, ops)
  }

  /** Ops first..first+count-1 of openId are gone from the journal: their segments lose a reference each. */
  private releaseOps (openId: number, first: number, count: number): boolean {
    const ops = this.refs.get(openId)
    if (!ops) return false
    const segments: number[] = []
    for (let i = first; i < first + count; i++) {
      const seg = ops.get(i)
      if (seg !== undefined) { segments.push(seg); ops.delete(i) }
    }
    if (ops.size === 0) this.refs.delete(openId)
    return segments.length > 0 && this.payload.release(segments) > 0
  }

  /**
   * Deletes the payload segments nothing refers to. The deletions of their
   * references are made durable first: after a power loss, an op whose
   * deletion was lost must still find its data. Nobody waits for it: forcing
   * a segment's worth of bytes to disk in the ack path held the pusher back
   * (the outbox drained seconds after a fast write).
   */
  private collect (): Promise<void> {
    const run = this.collecting.then(async () => {
      const segments = this.payload.deletable()
      if (segments.length === 0 || !this.opened) return
      const marker = await this.syncPayload()
      await this.db.put(marker.key, marker.value, { sync: true })
      await this.payload.remove(segments)
    }).catch(err => { log.warn({ err }, 'deleting payload segments failed; they go at the next open') })
    this.collecting = run
    return run
  }

  /**
   * The values of ops about to be journaled and the bytes each takes inline.
   * The data of large writes starts on its way to a payload segment now
   * (written: settled when every such write is), and its reference carries
   * the data's CRC: a batch may journal it before the bytes land (appendOps),
   * and dropLostPayloads tells one whose bytes never did.
   */
  private encodeOps (ops: Op[]): { encoded: Encoded[]; written: Promise<void> } {
    const writes: Array<Promise<void>> = []
    const encoded = ops.map((op): Encoded => {
      const data = payloadOf(op)
      if (!data) {
        const value = OpCodec.encode(op)
        return { value, bytes: value.length }
      }
      const { ref, written } = this.payload.begin(data)
      writes.push(written)
      const offset = (op as { write: { offset: number } }).write.offset
      return { value: encodeRef(op, ref, crcOf(data)), bytes: writeBytes(offset, ref.length), segment: ref.segment }
    })
    const written = Promise.allSettled(writes).then(out => {
      const failed = out.find(r => r.status === 'rejected')
      if (failed) throw (failed as PromiseRejectedResult).reason
    })
    return { encoded, written }
  }

  /** The encoded ops once their payload bytes are written; their references go if that fails. */
  private async encodeWritten (ops: Op[]): Promise<Encoded[]> {
    const { encoded, written } = this.encodeOps(ops)
    try {
      await written
    } catch (err) {
      this.payload.release(encoded.flatMap(e => e.segment !== undefined ? [e.segment] : []))
      throw err
    }
    return encoded
  }

  /** After the batch that journaled encoded ops: their references count; without it (it failed), they do not. */
  private settleRefs (openId: number, first: number, encoded: Array<{ segment?: number }>, committed: boolean): void {
    if (committed) {
      encoded.forEach((e, i) => { if (e.segment !== undefined) this.noteRef(openId, first + i, e.segment) })
    } else {
      this.payload.release(encoded.flatMap(e => e.segment !== undefined ? [e.segment] : []))
    }
    if (this.payload.deletable().length > 0) void this.collect()
  }

  /** An op from its journaled value. */
  /**
   * The ops of journaled values, in order. A sequential writer's data lies
   * back to back in its segment: each such run is read once, and its ops
   * take their data from that one buffer (one read per megabyte instead of
   * one per 128 KiB write).
   */
  private async decodeOps (values: Uint8Array[]): Promise<Op[]> {
    const refs = values.map(v => isRef(v) ? decodeRef(v) : undefined)
    const out: Array<Promise<Op>> = []
    for (let i = 0; i < values.length;) {
      const ref = refs[i]
      if (!ref) { out.push(Promise.resolve(OpCodec.decode(values[i]!))); i++; continue }
      let end = i + 1
      let length = ref.length
      for (let next = refs[end]; next && next.segment === ref.segment && next.offset === ref.offset + length; next = refs[++end]) length += next.length
      const span = this.payload.read({ segment: ref.segment, offset: ref.offset, length })
      for (let j = i; j < end; j++) {
        const at = refs[j]!.offset - ref.offset
        out.push(span.then(data => resolveRef(values[j]!, data.subarray(at, at + refs[j]!.length))))
      }
      i = end
    }
    return Promise.all(out)
  }

  /**
   * Transactions that were being captured when the process died hold
   * acknowledged writes: close them. A file being sent whole is on disk in
   * full already, so what part of it was journaled would leave the others
   * with a cut-off file, and this mount's record claiming the whole one:
   * it is dropped, and the file sent whole again once the mount is up.
   */
  private async recoverOpen (): Promise<void> {
    const heads: Array<[number, { path: string; whole?: boolean }]> = []
    for await (const [key, value] of this.db.iterator({ gte: keys.headPrefix, lt: 'h"' })) {
      heads.push([parseInt(key.slice(2), 16), parse<{ path: string; whole?: boolean }>(value)])
    }
    const resend: string[] = []
    for (const [openId, { path, whole }] of heads) {
      this.lastOpenId = Math.max(this.lastOpenId, openId)
      // Indices can have gaps (an append that failed, a lost op dropped):
      // closeTx takes the missing ones for ops that are not there.
      const sizes: number[] = []
      for await (const [key, value] of this.db.iterator({ gte: keys.opPrefix(openId), lt: keys.opPrefix(openId) + '~' })) sizes[opIndexOf(key)] = opBytes(value)
      const count = sizes.length
      if (count === 0) {
        // Nothing of it reached the journal (its only writes were cut short): nothing to send.
        await this.db.del(keys.head(openId))
        if (whole) resend.push(path)
        continue
      }
      this.openTx.set(openId, { path, bytes: sizes.reduce((a, b) => a + (b ?? 0), 0), sizes })
      if (whole) {
        await this.discardTx(openId, count)
        resend.push(path)
        continue
      }
      const seq = await this.closeTx(openId, count, { mtimeNs: 0n, size: -1 })
      log.info({ path, ops: count, deviceSeq: seq }, 'recovered a transaction left open by a crash')
    }
    if (resend.length > 0) {
      this.resendPaths = [...new Set([...this.resendPaths, ...resend])]
      await this.db.put(keys.resend, json({ paths: this.resendPaths }))
      log.warn({ paths: resend }, 'a crash cut short the sending of these files whole: they are sent whole again')
    }
  }

  /** Indexed under its subject and, for a rename, its source: it changes both files. */
  private index (deviceSeq: number, e: OutboxEntry): void {
    if (e.targets) this.pendingTargets.add(deviceSeq)
    if (e.checked === false) return
    for (const p of new Set([e.subject ?? e.path, e.path])) {
      const set = this.pendingBySubject.get(p) ?? new Set<number>()
      set.add(deviceSeq)
      this.pendingBySubject.set(p, set)
    }
  }

  private unindex (deviceSeq: number, e: OutboxEntry): void {
    this.pendingTargets.delete(deviceSeq)
    this.linksOf.delete(deviceSeq)
    this.unindexed++
    for (const p of new Set([e.subject ?? e.path, e.path])) {
      const set = this.pendingBySubject.get(p)
      set?.delete(deviceSeq)
      if (set?.size === 0) this.pendingBySubject.delete(p)
    }
  }

  async close (): Promise<void> {
    if (!this.opened) return
    // The sync client is done: no passOwn or apply runs beside this write.
    if (this.appliedSeq > this.persistedApplied) await this.db.put(keys.applied, u64(this.appliedSeq)).catch(err => log.warn({ err }, 'saving the applied cursor failed'))
    await this.collecting
    await this.backgroundSync
    // A clean close leaves nothing for the next open to check (dropLostPayloads).
    try {
      const marker = await this.syncPayload()
      await this.db.put(marker.key, marker.value, { sync: true })
    } catch (err) {
      log.warn({ err }, 'cannot sync the journal before closing it: the next open checks what it holds')
    }
    this.opened = false
    await this.payload.close()
    await this.db.close()
  }

  beginTx (path: string, opts: { whole?: boolean } = {}): number {
    const id = ++this.lastOpenId
    this.openTx.set(id, { path, bytes: 0, sizes: [], ...(opts.whole ? { whole: true as const } : {}) })
    return id
  }

  async appendOps (openId: number, firstIndex: number, ops: Op[]): Promise<number> {
    const open = this.openTx.get(openId)
    if (!open) throw new DeltafsError('JOURNAL', `transaction ${openId} is not open`)
    const batch: BatchOp[] = []
    if (firstIndex === 0) batch.push({ type: 'put', key: keys.head(openId), value: json({ path: open.path, ...(open.whole ? { whole: true } : {}) }) })
    let bytes = 0
    const { encoded, written } = this.encodeOps(ops)
    encoded.forEach(({ value, bytes: n }, i) => {
      bytes += n
      batch.push({ type: 'put', key: keys.op(openId, firstIndex + i), value })
    })
    // The references go out beside their bytes: one round trip to the
    // thread pool per captured write instead of two in turn.
    const [put, landed] = await Promise.allSettled([this.writeBatch(batch), written])
    if (put.status === 'rejected' || landed.status === 'rejected') {
      // References to bytes that did not land are taken back; should that
      // fail too, their CRCs tell them at the next open.
      if (put.status === 'fulfilled') await this.writeBatch(encoded.map((_, i) => ({ type: 'del', key: keys.op(openId, firstIndex + i) }))).catch(() => undefined)
      this.settleRefs(openId, firstIndex, encoded, false)
      throw put.status === 'rejected' ? put.reason : (landed as PromiseRejectedResult).reason
    }
    // Only ops on disk get a size: closeTx leaves out the indices of a failed
    // append (its write never reached the backing file either).
    encoded.forEach(({ bytes: n }, i) => { open.sizes[firstIndex + i] = n })
    this.settleRefs(openId, firstIndex, encoded, true)
    open.bytes += bytes
    if ((this.unsyncedBytes += bytes) >= this.payloadSyncBytes) this.syncInBackground()
    return bytes
  }

  /**
   * Moves the watermark without waiting for it. The marker's put need not be
   * synced: lost, it only means more to verify at the next open; and it
   * goes out after the bytes it vouches for are on disk.
   */
  private syncInBackground (): void {
    if (this.backgroundSync) return
    this.unsyncedBytes = 0
    this.backgroundSync = this.syncPayload()
      .then(marker => this.db.put(marker.key, marker.value))
      .catch(err => log.warn({ err }, 'background payload sync failed: the next open after a crash verifies more'))
      .finally(() => { this.backgroundSync = undefined })
  }

  async discardTx (openId: number, opCount: number): Promise<void> {
    const open = this.openTx.get(openId)
    if (!open) throw new DeltafsError('JOURNAL', `transaction ${openId} is not open`)
    this.openTx.delete(openId)
    const batch: BatchOp[] = [{ type: 'del', key: keys.head(openId) }]
    for (let i = 0; i < opCount; i++) batch.push({ type: 'del', key: keys.op(openId, i) })
    await this.writeBatch(batch)
    if (this.releaseOps(openId, 0, opCount)) void this.collect()
  }

  async closeTx (openId: number, opCount: number, facts: FileFacts, alsoAt?: string[]): Promise<number> {
    const { mtimeNs, size, kind } = facts
    const open = this.openTx.get(openId)
    if (!open) throw new DeltafsError('JOURNAL', `transaction ${openId} is not open`)
    this.openTx.delete(openId)
    // A long transaction (a held rewrite, a crash-recovered one) goes out as
    // several outbox entries, each small enough for one frame.
    // An op whose append failed (ENOSPC, EIO on a segment) has no size and
    // no key: entries cover only runs of ops that are there, or the outbox
    // would stop on the missing one for good.
    const batch: BatchOp[] = [{ type: 'del', key: keys.head(openId) }]
    const added: Array<[number, OutboxEntry]> = []
    let deviceSeq = 0
    const there = (i: number): boolean => open.sizes[i] !== undefined
    let first = 0
    while (first < opCount && !there(first)) first++
    for (let entries = 0; first < opCount || entries === 0;) {
      let n = 0
      let bytes = 0
      while (first + n < opCount && there(first + n) && (n === 0 || bytes + open.sizes[first + n]! <= this.maxTxBytes)) bytes += open.sizes[first + n++]!
      deviceSeq = ++this.deviceSeq
      entries++
      // Captured writes: checked unless they went to something other than a regular file.
      const entry: OutboxEntry = { openId, firstOp: first, opCount: n, path: open.path, mtimeNs, size, ...(kind ? { kind } : {}), bytes, subject: open.path, checked: kind === undefined || kind === 'file', ...(alsoAt?.length ? { alsoAt, alsoBase: this.appliedSeq } : {}) }
      added.push([deviceSeq, entry])
      this.index(deviceSeq, entry)
      this.counts.txClosed++
      this.pendingTx++
      this.pendingBytes += bytes
      first += n
      while (first < opCount && !there(first)) first++
      if (n === 0) break
    }
    added.forEach(([seq, entry], i) => {
      if (added.length > 1) {
        entry.part = i + 1
        if (i < added.length - 1) entry.moreParts = true
      }
      batch.push({ type: 'put', key: keys.outbox(seq), value: json(entry) })
    })
    batch.push(
      { type: 'put', key: keys.deviceSeq, value: u64(this.deviceSeq) },
      { type: 'put', key: keys.counter('txClosed'), value: u64(this.counts.txClosed) },
    )
    await this.commitInOrder(batch, added)
    fault('journal.after-close')
    this.events.emit('closed')
    return deviceSeq
  }

  async appendTx (path: string, ops: Op[], facts: FileFacts, alsoAt?: string[]): Promise<{ deviceSeq: number; bytes: number }> {
    // Bytes first: a closed transaction is the pusher's at once.
    const encoded = await this.encodeWritten(ops)
    // Numbered only after the await: a closeTx running meanwhile takes the
    // next seq and commits first, so a seq taken before it would commit out
    // of order (the pusher passes it by) and store a lower devseq after a
    // higher one (reused after a restart: a silent duplicate at the node).
    const openId = ++this.lastOpenId
    const deviceSeq = ++this.deviceSeq
    const batch: BatchOp[] = []
    let bytes = 0
    encoded.forEach(({ value, bytes: n }, i) => {
      bytes += n
      batch.push({ type: 'put', key: keys.op(openId, i), value })
    })
    const entry: OutboxEntry = {
      openId, opCount: ops.length, path, mtimeNs: facts.mtimeNs, size: facts.size, ...(facts.kind ? { kind: facts.kind } : {}), bytes,
      subject: subjectOf(path, ops), checked: isConflictChecked(ops, facts.kind),
      ...(ops.some(op => ('rename' in op && op.rename) || ('link' in op && op.link)) ? { targets: true } : {}),
      ...(alsoAt?.length ? { alsoAt, alsoBase: this.appliedSeq } : {}),
    }
    this.index(deviceSeq, entry)
    this.counts.txClosed++
    batch.push(
      { type: 'put', key: keys.outbox(deviceSeq), value: json(entry) },
      { type: 'put', key: keys.deviceSeq, value: u64(deviceSeq) },
      { type: 'put', key: keys.counter('txClosed'), value: u64(this.counts.txClosed) },
    )
    try {
      await this.commitInOrder(batch, [[deviceSeq, entry]])
    } catch (err) {
      this.settleRefs(openId, 0, encoded, false)
      throw err
    }
    this.settleRefs(openId, 0, encoded, true)
    this.pendingTx++
    this.pendingBytes += bytes
    fault('journal.after-close')
    this.events.emit('closed')
    return { deviceSeq, bytes }
  }

  /**
   * Writes a batch that adds outbox entries (in device seq order, after
   * those taken before), then caches them. Batches that queue up while one
   * is written go together in the next write (group commit): transactions
   * closed together cost one LevelDB write, not one each.
   */
  private commitInOrder (batch: BatchOp[], added: Array<[number, OutboxEntry]>): Promise<void> {
    return new Promise((resolve, reject) => {
      this.commits.push({ batch, added, resolve, reject })
      if (!this.committing) void this.commitQueued()
    })
  }

  private async commitQueued (): Promise<void> {
    this.committing = true
    while (this.commits.length > 0) {
      const group = this.commits.splice(0)
      const last = group[group.length - 1]!.added
      const lastSeq = last[last.length - 1]![0]
      try {
        await this.writeBatch(group.length === 1 ? group[0]!.batch : group.flatMap(c => c.batch))
      } catch (err) {
        this.committedSeq = lastSeq
        for (const c of group) c.reject(err)
        continue
      }
      for (const c of group) for (const [deviceSeq, entry] of c.added) this.cacheEntry(deviceSeq, entry)
      this.committedSeq = lastSeq
      for (const c of group) c.resolve()
    }
    this.committing = false
  }

  private cacheEntry (deviceSeq: number, entry: OutboxEntry): void {
    if (this.entries.size >= ENTRY_CACHE) {
      this.entries.clear()
      this.cacheFrom = deviceSeq - 1
    }
    this.entries.set(deviceSeq, entry)
  }

  /** The outbox entry of a committed device seq, if it is still there. */
  private async entry (deviceSeq: number): Promise<OutboxEntry | undefined> {
    if (deviceSeq > this.cacheFrom && deviceSeq <= this.committedSeq) return this.entries.get(deviceSeq)
    const raw = await this.db.get(keys.outbox(deviceSeq))
    return raw === undefined ? undefined : parseEntry(raw)
  }

  /** Outbox entries after a device seq, oldest first, at most limit. */
  private async entriesAfter (after: number, limit: number): Promise<Array<[number, OutboxEntry]>> {
    const out: Array<[number, OutboxEntry]> = []
    if (after >= this.cacheFrom) {
      // Insertion order is seq order: entries are added in commit order, and edits keep their place.
      for (const [deviceSeq, e] of this.entries) {
        if (out.length >= limit) break
        if (deviceSeq > after && deviceSeq <= this.committedSeq) out.push([deviceSeq, e])
      }
      return out
    }
    for await (const [key, value] of this.db.iterator({ gt: keys.outbox(after), lt: 't"', limit })) out.push([parseInt(key.slice(2), 16), parseEntry(value)])
    return out
  }

  /**
   * Forces the payload bytes to disk; returns the put that records how far,
   * to go out in the synced LevelDB write that follows (the references must
   * not become durable before their bytes).
   */
  private async syncPayload (): Promise<{ type: 'put'; key: string; value: Uint8Array }> {
    const mark = await this.payload.sync()
    // Syncs can finish their puts out of order: keep the furthest.
    if (after(mark, this.durable)) this.durable = mark
    return { type: 'put', key: keys.syncMarker, value: encodeMark(this.durable) }
  }

  async sync (): Promise<void> {
    this.unsyncedBytes = 0
    // Data before the references to it: a durable reference to bytes that are not is a lost write.
    const marker = await this.syncPayload()
    await this.db.put(marker.key, marker.value, { sync: true })
  }

  async readOutbox (after: number, limit: number, maxBytes = Infinity): Promise<PendingTx[]> {
    // The pusher asks again after every close and every ack; most of the
    // time nothing is new, and a read costs more than this check.
    if (after >= this.deviceSeq) return []
    const chosen: Array<[number, OutboxEntry]> = []
    let bytes = 0
    for (const [deviceSeq, e] of await this.entriesAfter(after, limit)) {
      // Bounded by bytes as well as count: entries of split rewrites are megabytes each.
      if (chosen.length > 0 && bytes + e.bytes > maxBytes) break
      bytes += e.bytes
      chosen.push([deviceSeq, e])
    }
    if (chosen.length === 0) return []
    // The ops of every entry and the records their base versions come from, in one read.
    const wanted: string[] = []
    const at = chosen.map(([, e]) => {
      const subject = e.subject ?? e.path
      const first = wanted.length
      for (let i = 0; i < e.opCount; i++) wanted.push(keys.op(e.openId, (e.firstOp ?? 0) + i))
      wanted.push(keys.record(subject))
      if (subject !== e.path) wanted.push(keys.record(e.path))
      return first
    })
    const values = await this.db.getMany(wanted)
    const out: PendingTx[] = []
    for (const [n, [deviceSeq, e]] of chosen.entries()) {
      const first = at[n]!
      const subject = e.subject ?? e.path
      const record = (i: number): FileRecord | undefined => { const v = values[i]; return v === undefined ? undefined : parse<FileRecord>(v) }
      // An ack or a drop that ran since the entry was chosen took it and its
      // ops away, and with them maybe the payload segment their data was in.
      // It is no longer pending, so it is not part of the answer.
      let ops: Op[]
      try {
        ops = await this.decodeOps(values.slice(first, first + e.opCount).map((v, i) => {
          if (v === undefined) throw new DeltafsError('JOURNAL', `journal is missing op ${wanted[first + i]}`)
          return v
        }))
      } catch (err) {
        if (await this.db.get(keys.outbox(deviceSeq)) === undefined) continue
        throw err
      }
      const tx: Transaction = {
        txId: { deviceId: this._deviceId, deviceSeq },
        volume: this.volume,
        fileId: '',
        // A file with no record is new here: it is based on all this mount
        // has applied. The node refuses it if the name changed after that (a
        // file made and moved away, unseen here), as this mount will judge it
        // when that history arrives: based on 0, the node took it as new and
        // this mount then applied the older file over it.
        baseVersion: this.seenUpTo(record(first + e.opCount)?.version ?? Infinity),
        path: e.path,
        ops,
        mtimeNs: e.mtimeNs,
        ...(e.part ? { part: e.part, moreParts: e.moreParts === true } : {}),
        ...(e.alsoAt ? { alsoAt: e.alsoAt, alsoBase: e.alsoBase ?? 0 } : {}),
      }
      const source = subject !== e.path ? e.path : undefined
      if (source) tx.sourceBaseVersion = this.seenUpTo(record(first + e.opCount + 1)?.version ?? Infinity)
      out.push({ deviceSeq, tx, bytes: e.bytes, subject, checked: e.checked ?? true, ...(source ? { source } : {}) })
    }
    return out
  }

  ack (pending: PendingTx, seq: number): Promise<void> {
    return this.ackMany([{ pending, seq }])
  }

  ackMany (acks: Array<{ pending: PendingTx; seq: number }>): Promise<void> {
    return this.exclusive(() => this.ackNow(acks))
  }

  private async ackNow (acks: Array<{ pending: PendingTx; seq: number }>): Promise<void> {
    const batch: BatchOp[] = []
    const again: Array<{ path: string; ops: Op[]; facts: FileFacts }> = []
    const done: Array<[number, OutboxEntry]> = []
    const write = async (): Promise<void> => {
      if (done.length === 0) return
      batch.push({ type: 'put', key: keys.counter('txAcked'), value: u64(this.counts.txAcked + done.length) })
      await this.writeBatch(batch.splice(0))
      this.counts.txAcked += done.length
      for (const [deviceSeq, e] of done.splice(0)) {
        this.entries.delete(deviceSeq)
        this.unindex(deviceSeq, e)
        this.pendingTx--
        this.pendingBytes -= e.bytes
        if (this.releaseOps(e.openId, e.firstOp ?? 0, e.opCount)) void this.collect()
      }
    }
    for (const { pending, seq } of acks) {
      if (done.some(([deviceSeq]) => deviceSeq === pending.deviceSeq)) continue
      // As the journal has it now, not as readOutbox gave it: a remote rename may have moved it since.
      const e = await this.entry(pending.deviceSeq)
      if (e === undefined) continue // acked or dropped before, e.g. a duplicate ack after reconnect
      // The records a renamed directory takes along are read from LevelDB:
      // those the acks before it add must be written first.
      if (renamesOf(pending.tx).length > 0) await write()
      batch.push({ type: 'del', key: keys.outbox(pending.deviceSeq) })
      for (let i = 0; i < e.opCount; i++) batch.push({ type: 'del', key: keys.op(e.openId, (e.firstOp ?? 0) + i) })
      done.push([pending.deviceSeq, e])
      const facts: FileFacts = { size: e.size, mtimeNs: e.mtimeNs, ...(e.kind ? { kind: e.kind } : {}) }
      // A request for a file whole, moved by a remote rename while on its
      // way (followRenames): the node took it under the old name, where its
      // author has nothing to send, and ordered it after the rename (it is
      // not conflict-checked, so nothing refused it). Asked again under the
      // new name; the old name gets no record.
      const refresh = isRefreshOnly(pending.tx.ops)
      if (refresh && e.path !== pending.tx.path) {
        again.push({ path: e.path, ops: pending.tx.ops, facts })
        continue
      }
      if (refresh && seq > this.appliedSeq) this.heals.push({ path: e.path, ops: pending.tx.ops, facts, seq })
      await this.moveChildRecords(pending.tx, batch)
      for (const [path, rec] of recordChanges(pending.tx, seq, facts)) {
        batch.push(rec ? { type: 'put', key: keys.record(path), value: json(rec) } : { type: 'del', key: keys.record(path) })
      }
    }
    await write()
    for (const { path, ops, facts } of again) {
      await this.appendTx(path, ops, facts)
      log.info({ path }, 'a request for a file whole went out under the name a remote rename moved it from: asked again under its new name')
    }
  }

  pendingOn (path: string): number[] {
    return [...(this.pendingBySubject.get(path) ?? [])].sort((a, b) => a - b)
  }

  async isPending (deviceSeq: number): Promise<boolean> {
    return (await this.entry(deviceSeq)) !== undefined
  }

  async pendingLinkTo (path: string): Promise<boolean> {
    return (await this.pendingLinks()).some(l => l.to === path)
  }

  async pendingTxOn (path: string): Promise<PendingTx[]> {
    const out: PendingTx[] = []
    for (const s of this.pendingOn(path)) {
      const [p] = await this.readOutbox(s - 1, 1)
      if (p?.deviceSeq === s && p.subject === path) out.push(p)
    }
    return out
  }

  async pendingRemoval (path: string): Promise<boolean> {
    // Asked only where a remote change finds the name gone here: a scan of the outbox is rare.
    let last: { deviceSeq: number; e: OutboxEntry } | undefined
    for await (const [key, value] of this.db.iterator({ gte: keys.outboxPrefix, lt: 't"' })) {
      const e = parseEntry(value)
      if (e.path === path || e.subject === path) last = { deviceSeq: parseInt(key.slice(2), 16), e }
    }
    if (!last) return false
    const { deviceSeq, e } = last
    // Its subject is where a rename leaves the file: elsewhere, the name was renamed away; there, renamed onto.
    if ((e.subject ?? e.path) !== path) return true
    if (e.path !== path) return false
    const [p] = await this.readOutbox(deviceSeq - 1, 1)
    return p?.deviceSeq === deviceSeq && p.tx.ops.some(op => ('unlink' in op && op.unlink) || ('rmdir' in op && op.rmdir))
  }

  async pendingLinkFrom (path: string): Promise<boolean> {
    return (await this.pendingLinks()).some(l => l.from === path)
  }

  async pendingLinks (): Promise<Array<{ from: string; to: string; deviceSeq: number }>> {
    // Links are rare and not indexed by path: only entries that name other paths are read.
    const out: Array<{ from: string; to: string; deviceSeq: number }> = []
    for (const deviceSeq of [...this.pendingTargets].sort((a, b) => a - b)) {
      let links = this.linksOf.get(deviceSeq)
      if (!links) {
        const before = this.unindexed
        const e = await this.entry(deviceSeq)
        if (!e) continue
        links = []
        for (let i = 0; i < e.opCount; i++) {
          const raw = await this.db.get(keys.op(e.openId, (e.firstOp ?? 0) + i))
          if (raw === undefined || isRef(raw)) continue
          const op = OpCodec.decode(raw)
          if ('link' in op && op.link) links.push({ from: e.path, to: op.link.to, deviceSeq })
        }
        if (this.unindexed === before) this.linksOf.set(deviceSeq, links)
      }
      out.push(...links)
    }
    return out
  }

  dropPending (deviceSeqs: number[]): Promise<PendingTx[]> {
    return this.exclusive(() => this.dropNow(deviceSeqs))
  }

  private async dropNow (deviceSeqs: number[]): Promise<PendingTx[]> {
    const dropped: PendingTx[] = []
    for (const deviceSeq of [...deviceSeqs].sort((a, b) => a - b)) {
      const [pending] = await this.readOutbox(deviceSeq - 1, 1)
      if (pending?.deviceSeq !== deviceSeq) continue // acked meanwhile
      const e = (await this.entry(deviceSeq))!
      const batch: BatchOp[] = [{ type: 'del', key: keys.outbox(deviceSeq) }]
      for (let i = 0; i < e.opCount; i++) batch.push({ type: 'del', key: keys.op(e.openId, (e.firstOp ?? 0) + i) })
      this.counts.txDropped++
      batch.push({ type: 'put', key: keys.counter('txDropped'), value: u64(this.counts.txDropped) })
      batch.push(await this.syncPayload())
      await this.writeBatch(batch, { sync: true })
      this.entries.delete(deviceSeq)
      this.unindex(deviceSeq, e)
      this.pendingTx--
      this.pendingBytes -= e.bytes
      if (this.releaseOps(e.openId, e.firstOp ?? 0, e.opCount)) void this.collect()
      dropped.push(pending)
    }
    return dropped
  }

  /**
   * Pending transactions on a path a remote transaction renames (or under
   * it) follow it: their paths, subjects and rename or link targets take the
   * new name, each rename in order. Added to the batch that records the
   * apply, so a crash never leaves them moved while the rename is still to
   * be applied again (its conflict check would then count them as changes
   * concurrent with it). Returns what to re-index once the batch is written.
   */
  private async followRenames (renames: Array<[string, string]>, batch: BatchOp[]): Promise<Array<[number, OutboxEntry, OutboxEntry]>> {
    const reindex: Array<[number, OutboxEntry, OutboxEntry]> = []
    if (renames.length === 0 || this.pendingTx === 0) return reindex
    const moved = (p: string): string | undefined => {
      const at = movedPath(p, renames)
      return at === p ? undefined : at
    }
    for await (const [key, value] of this.db.iterator({ gte: keys.outboxPrefix, lt: 't"' })) {
      const e = parseEntry(value)
      const deviceSeq = parseInt(key.slice(2), 16)
      let changed = false
      if (e.targets) {
        for (let i = 0; i < e.opCount; i++) {
          const opKey = keys.op(e.openId, (e.firstOp ?? 0) + i)
          const raw = await this.db.get(opKey)
          // A reference is a write's: it names no other path.
          if (raw === undefined || isRef(raw)) continue
          const op = OpCodec.decode(raw)
          const target = 'rename' in op && op.rename ? op.rename : 'link' in op && op.link ? op.link : undefined
          const next = target && moved(target.to)
          if (target && next) {
            target.to = next
            batch.push({ type: 'put', key: opKey, value: OpCodec.encode(op) })
            changed = true
          }
        }
      }
      const path = moved(e.path)
      const subject = moved(e.subject ?? e.path)
      if (!path && !subject && !changed) continue
      const next: OutboxEntry = { ...e, path: path ?? e.path, subject: subject ?? e.subject ?? e.path }
      batch.push({ type: 'put', key, value: json(next) })
      reindex.push([deviceSeq, e, next])
    }
    return reindex
  }

  async addConflict (entry: ConflictEntry): Promise<void> {
    await this.writeBatch([await this.syncPayload(), { type: 'put', key: keys.conflict(entry), value: json(entry) }], { sync: true })
  }

  async conflicts (): Promise<ConflictEntry[]> {
    const out: ConflictEntry[] = []
    for await (const value of this.db.values({ gte: 'x!', lt: 'x"' })) out.push(parse<ConflictEntry>(value))
    return out.sort((a, b) => a.at.localeCompare(b.at))
  }

  applied (): number { return this.appliedSeq }

  recordApplied (update: AppliedUpdate, bytes: number): Promise<number> {
    const renames = update.tx ? renamesOf(update.tx) : []
    // Moving pending transactions reads and rewrites outbox entries: not beside an ack or a drop.
    return renames.length === 0 ? this.recordAppliedNow(update, bytes, []) : this.exclusive(() => this.recordAppliedNow(update, bytes, renames))
  }

  private async recordAppliedNow (update: AppliedUpdate, bytes: number, renames: Array<[string, string]>): Promise<number> {
    const batch: BatchOp[] = [
      { type: 'put', key: keys.applied, value: u64(update.seq) },
      { type: 'put', key: keys.counter('txApplied'), value: u64(this.counts.txApplied + 1) },
      { type: 'put', key: keys.counter('bytesApplied'), value: u64(this.counts.bytesApplied + bytes) },
    ]
    if (this.applyingPaths.length > 0) batch.push({ type: 'del', key: keys.applying })
    if (update.tx) await this.moveChildRecords(update.tx, batch)
    for (const [path, rec] of update.records) {
      batch.push(rec ? { type: 'put', key: keys.record(path), value: json(rec) } : { type: 'del', key: keys.record(path) })
    }
    const reindex = await this.followRenames(renames, batch)
    const moved = this.healsMoved(update.seq, renames)
    await this.writeBatch(batch)
    this.counts.txApplied++
    this.counts.bytesApplied += bytes
    for (const [deviceSeq, before, after] of reindex) {
      this.unindex(deviceSeq, before)
      this.index(deviceSeq, after)
      if (this.entries.has(deviceSeq)) this.entries.set(deviceSeq, after)
    }
    this.appliedSeq = update.seq
    this.persistedApplied = update.seq
    this.applyingPaths = []
    for (const h of moved) {
      await this.appendTx(h.path, h.ops, h.facts)
      log.info({ path: h.path }, 'a request for a file whole was taken under a name a remote rename ordered before it moves: asked again under the new name')
    }
    return reindex.length + moved.length
  }

  /**
   * The requests for a file whole (heals) that a remote rename at seq moves:
   * taken by the node after it, they ask for a name the file has left. Heals
   * at or before seq are answered before it, in order, and forgotten.
   */
  private healsMoved (seq: number, renames: Array<[string, string]>): Array<{ path: string; ops: Op[]; facts: FileFacts }> {
    const moved: Array<{ path: string; ops: Op[]; facts: FileFacts }> = []
    for (let i = this.heals.length - 1; i >= 0; i--) {
      const h = this.heals[i]!
      const to = h.seq > seq ? movedPath(h.path, renames) : undefined
      if (to === h.path) continue
      this.heals.splice(i, 1)
      if (to !== undefined) moved.push({ path: to, ops: h.ops, facts: h.facts })
    }
    return moved
  }

  async beginApply (seq: number, paths: string[]): Promise<void> {
    this.applyingPaths = paths
    await this.db.put(keys.applying, json({ seq, paths }))
  }

  applying (): string[] { return [...this.applyingPaths] }

  interruptedApply (): number { return this.interruptedSeq }

  resends (): string[] { return [...this.resendPaths] }

  async resent (paths: string[]): Promise<void> {
    this.resendPaths = this.resendPaths.filter(p => !paths.includes(p))
    if (this.resendPaths.length === 0) await this.db.del(keys.resend)
    else await this.db.put(keys.resend, json({ paths: this.resendPaths }))
  }

  /**
   * Moves the cursor in memory, and in LevelDB only now and then (and at
   * close): a write per own transaction was a tenth of the mount's LevelDB
   * time under tar x. A cursor a crash left behind is harmless: passing an
   * own transaction applies nothing, and the node sends a mount its own
   * transactions again as seqs only, which are passed again. Callers apply
   * one delivery at a time, so this write never races recordApplied's.
   */
  async passOwn (seq: number): Promise<void> {
    if (seq <= this.appliedSeq) return
    this.appliedSeq = seq
    if (seq - this.persistedApplied < OWN_CURSOR_SEQS && Date.now() - this.persistedAt < OWN_CURSOR_MS) return
    await this.db.put(keys.applied, u64(seq))
    this.persistedApplied = seq
    this.persistedAt = Date.now()
  }

  async record (path: string): Promise<FileRecord | undefined> {
    const rec = await this.recordOrTombstone(path)
    return rec?.gone ? undefined : rec
  }

  /**
   * A base version claims "I have seen every change of this file up to
   * here". A record's version can run ahead of what this mount has applied
   * (its own transaction, acked at a seq after remote changes it has not
   * received yet), so the claim is capped at the applied cursor: otherwise
   * the node would accept a change made without seeing a concurrent one.
   */
  private seenUpTo (version: number): number {
    return Math.min(version, Math.max(this.applied(), 0))
  }

  async version (path: string): Promise<number> {
    return (await this.recordOrTombstone(path))?.version ?? 0
  }

  private async recordOrTombstone (path: string): Promise<FileRecord | undefined> {
    const value = await this.db.get(keys.record(path))
    return value === undefined ? undefined : parse<FileRecord>(value)
  }

  /** A renamed directory takes the records of everything under it along. */
  private async moveChildRecords (tx: Transaction, batch: BatchOp[]): Promise<void> {
    for (const [from, to] of renamesOf(tx)) {
      for await (const [key, value] of this.db.iterator({ gt: keys.record(from + '/'), lt: keys.record(from + '0') })) {
        batch.push({ type: 'del', key })
        batch.push({ type: 'put', key: keys.record(to + key.slice(keys.record(from).length)), value })
      }
    }
  }

  async * records (): AsyncIterable<[string, FileRecord]> {
    for await (const [key, value] of this.db.iterator({ gte: 'r!', lt: 'r"' })) {
      const rec = parse<FileRecord>(value)
      if (!rec.gone) yield [key.slice(2), rec]
    }
  }

  counters (): Record<CounterName, number> { return { ...this.counts } }

  pending (): { tx: number; bytes: number } { return { tx: this.pendingTx, bytes: this.pendingBytes } }

  onClosed (listener: () => void): void { this.events.on('closed', listener) }
}
