// The embedded VolumeLog: one LevelDB for all volumes of a node. Appends are
// group-committed: every append that arrives while a synced batch is being
// written goes into the next batch, so durability costs one fsync per batch
// instead of one per transaction. Large frames go to append-only segment
// files, LevelDB keeping a reference: written once to disk instead of through
// its log, a memtable flush and compactions.
import { Level } from 'level'
import { PayloadStore, type PayloadRef } from '../journal/payload-store.js'
import { type AppendRequest, type AppendResult, type LogEntry, type VolumeLog } from './volume-log.js'
import { keys } from './level-keys.js'
import { DeltafsError } from '../util/errors.js'

interface Pending { req: AppendRequest; resolve: (r: AppendResult) => void; reject: (e: unknown) => void }

/**
 * One group commit takes at most this many frame bytes (and at least one
 * append): small frames are copied into LevelDB's WriteBatch, its log and its
 * memtable, and large ones are held until the segment sync, so an unbounded
 * batch (many streams of large frames) costs several times its size in
 * memory at once.
 */
const MAX_BATCH_BYTES = 8 << 20

/**
 * Frames from this size on are stored in segment files. Smaller ones stay
 * inline: a segment read per entry would cost catch-up more than LevelDB's
 * copies of a few KiB.
 */
export const SEGMENT_MIN_FRAME = 16 << 10

/** File states kept in memory (the node is the only writer, so they stay exact); oldest dropped first. */
const FILE_CACHE_ENTRIES = 100_000

/**
 * The conflict state of one file: its last change (s by d) and the last
 * change by a device other than d (o by od). A transaction from device X
 * with base B conflicts iff some device other than X changed the file after
 * B, i.e. iff (d != X ? s : o) > B. Two numbers suffice because X's own
 * changes never conflict with X. g: the last change left no file there.
 */
interface FileState { s: number; d: string; o: number; od: string; g?: 1 }

/**
 * Whether a transaction from `device` based on `base` conflicts; the other
 * device's change if so. A mount bases a file it has no record of (a new
 * one: mounts keep no record of deleted paths) on everything it has
 * applied, so a name deleted before that is free, and one changed after
 * it is not: the mount applies that change later and takes it as the
 * first writer's, so taking its file as new here would leave the name to
 * it on the other mounts and to that change on it.
 */
export function conflictOf (state: FileState | undefined, device: string, base: number): { seq: number; deviceId: string } | undefined {
  if (!state) return undefined
  const [seq, deviceId] = state.d !== device ? [state.s, state.d] : [state.o, state.od]
  return seq > base ? { seq, deviceId } : undefined
}

/**
 * The state after a change at seq. A file made where the last change left
 * none starts a history of its own: the deletion before it is no later
 * change for the device's next transactions, which have no record to be
 * based on while the first is unacked.
 */
function advance (state: FileState | undefined, device: string, seq: number, gone = false): FileState {
  const next: FileState = !state || state.g === 1 ? { s: seq, d: device, o: 0, od: '' }
    : state.d === device ? { s: seq, d: device, o: state.o, od: state.od }
      : { s: seq, d: device, o: state.s, od: state.d }
  if (gone) next.g = 1
  return next
}

// Seqs are safe integers (< 2^53): two 32-bit halves, no BigInt per append.
function u64 (n: number): Uint8Array {
  const b = Buffer.allocUnsafe(8)
  b.writeUInt32BE(Math.floor(n / 0x1_0000_0000), 0)
  b.writeUInt32BE(n >>> 0, 4)
  return b
}
function readU64 (b: Uint8Array): number {
  const v = Buffer.from(b.buffer, b.byteOffset, b.byteLength)
  return v.readUInt32BE(0) * 0x1_0000_0000 + v.readUInt32BE(4)
}

function encodeEntry (deviceId: string, frame: Uint8Array): Uint8Array {
  const id = Buffer.from(deviceId)
  const out = Buffer.allocUnsafe(1 + id.length + frame.length)
  out[0] = id.length
  id.copy(out, 1)
  out.set(frame, 1 + id.length)
  return out
}
/** The first byte of an entry whose frame is in a segment: never a device id's length (1..64). */
const REF_MARKER = 0xff

function encodeRef (deviceId: string, ref: PayloadRef): Uint8Array {
  const id = Buffer.from(deviceId)
  const out = Buffer.allocUnsafe(2 + id.length + 24)
  out[0] = REF_MARKER
  out[1] = id.length
  id.copy(out, 2)
  out.set(u64(ref.segment), 2 + id.length)
  out.set(u64(ref.offset), 10 + id.length)
  out.set(u64(ref.length), 18 + id.length)
  return out
}
function decodeRef (value: Uint8Array): { deviceId: string; ref: PayloadRef } {
  const len = value[1] ?? 0
  const at = 2 + len
  return {
    deviceId: Buffer.from(value.buffer, value.byteOffset + 2, len).toString(),
    ref: { segment: readU64(value.subarray(at)), offset: readU64(value.subarray(at + 8)), length: readU64(value.subarray(at + 16)) },
  }
}

function decodeEntry (seq: number, value: Uint8Array): LogEntry {
  const len = value[0] ?? 0
  return {
    seq,
    deviceId: Buffer.from(value.buffer, value.byteOffset + 1, len).toString(),
    frame: value.subarray(1 + len),
  }
}

export class LevelVolumeLog implements VolumeLog {
  private readonly db: Level<string, Uint8Array>
  private readonly segments: PayloadStore
  private readonly heads = new Map<string, number>()
  private queue: Pending[] = []
  private flushing = false
  /**
   * Highest stored deviceSeq per `volume!device`, loaded on first use: a
   * transaction above it cannot be a retry, so the common case needs no
   * transaction-id lookup before the write.
   */
  private readonly maxDeviceSeq = new Map<string, number>()
  /** Conflict state by file key; null when the file has none yet. */
  private readonly fileCache = new Map<string, FileState | null>()
  private opened = false

  /** dir: the LevelDB directory; segment files go to `<dir>-segments`, next to it. */
  constructor (dir: string, segmentBytes?: number) {
    this.db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
    this.segments = new PayloadStore(`${dir}-segments`, segmentBytes)
  }

  async open (): Promise<void> {
    if (this.opened) return
    // Frames are large; a larger memtable means fewer L0 flushes per MiB stored.
    await this.db.open({ writeBufferSize: 64 << 20 })
    // Frames are never deleted, so no segment is ever released: every file
    // found counts as referenced and stays. One without references (a crash
    // before its first commit) costs only its disk space.
    try {
      await this.segments.open(new Map([...(await this.segments.sizes()).keys()].map(id => [id, 1])))
    } catch (err) {
      await this.db.close()
      throw err
    }
    this.opened = true
  }

  async close (): Promise<void> {
    if (!this.opened) return
    while (this.flushing || this.queue.length > 0) await new Promise(resolve => setTimeout(resolve, 5))
    this.opened = false
    await this.db.close()
    await this.segments.close()
  }

  append (req: AppendRequest): Promise<AppendResult> {
    if (!this.opened) return Promise.reject(new DeltafsError('CLOSED', 'volume log is closed'))
    return new Promise((resolve, reject) => {
      this.queue.push({ req, resolve, reject })
      if (!this.flushing) setImmediate(() => { void this.flush() })
    })
  }

  async head (volume: string): Promise<number> {
    const cached = this.heads.get(volume)
    if (cached !== undefined) return cached
    const value = await this.db.get(keys.head(volume))
    const head = value === undefined ? 0 : readU64(value)
    this.heads.set(volume, head)
    return head
  }

  private keyChecks: Promise<unknown> = Promise.resolve()

  keyCheck (volume: string, proposed: Uint8Array): Promise<Uint8Array> {
    // Serialized, so two first mounts with different keys cannot both win.
    const result = this.keyChecks.then(() => this.keyCheckOnce(volume, proposed))
    this.keyChecks = result.catch(() => undefined)
    return result
  }

  private async keyCheckOnce (volume: string, proposed: Uint8Array): Promise<Uint8Array> {
    const stored = await this.db.get(keys.keyCheck(volume))
    if (stored !== undefined) return stored
    if (proposed.length === 0 || await this.head(volume) > 0) return new Uint8Array(0)
    await this.db.put(keys.keyCheck(volume), proposed, { sync: true })
    return proposed
  }

  async read (volume: string, afterSeq: number, limit: number, maxBytes = Infinity): Promise<LogEntry[]> {
    const out: LogEntry[] = []
    const loads: Array<Promise<void>> = []
    const prefix = keys.entryPrefix(volume)
    let bytes = 0
    for await (const [key, value] of this.db.iterator({ gt: keys.entry(volume, afterSeq), lt: prefix + '~', limit })) {
      const seq = parseInt(key.slice(prefix.length), 16)
      if (value[0] === REF_MARKER) {
        const { deviceId, ref } = decodeRef(value)
        const entry: LogEntry = { seq, deviceId, frame: new Uint8Array(0) }
        out.push(entry)
        loads.push(this.segments.read(ref).then(frame => { entry.frame = frame }))
        bytes += ref.length
      } else {
        out.push(decodeEntry(seq, value))
        bytes += value.length
      }
      if (bytes >= maxBytes) break
    }
    await Promise.all(loads)
    return out
  }

  /** Loads maxDeviceSeq for the given `volume!device` keys not yet known. */
  private async loadMaxDeviceSeqs (reqs: AppendRequest[]): Promise<void> {
    const missing = new Map<string, AppendRequest>()
    for (const req of reqs) {
      const vd = `${req.volume}!${req.deviceId}`
      if (!this.maxDeviceSeq.has(vd)) missing.set(vd, req)
    }
    await Promise.all([...missing].map(async ([vd, req]) => {
      const prefix = keys.txIdPrefix(req.volume, req.deviceId)
      const last = await this.db.keys({ gte: prefix, lt: prefix + '~', reverse: true, limit: 1 }).all()
      this.maxDeviceSeq.set(vd, last.length > 0 ? parseInt(last[0]!.slice(prefix.length), 16) : 0)
    }))
  }

  /** The conflict state of the given file keys, from the cache or the db. */
  private async fileStates (fileKeys: string[]): Promise<Map<string, FileState | undefined>> {
    const files = new Map<string, FileState | undefined>()
    const unknown: string[] = []
    for (const k of fileKeys) {
      const cached = this.fileCache.get(k)
      if (cached === undefined) unknown.push(k)
      else files.set(k, cached ?? undefined)
    }
    if (unknown.length > 0) {
      const values = await this.db.getMany(unknown)
      values.forEach((v, i) => {
        const state = v === undefined ? undefined : JSON.parse(Buffer.from(v).toString()) as FileState
        files.set(unknown[i]!, state)
        this.cacheFile(unknown[i]!, state)
      })
    }
    return files
  }

  private cacheFile (key: string, state: FileState | undefined): void {
    this.fileCache.delete(key)
    this.fileCache.set(key, state ?? null)
    if (this.fileCache.size > FILE_CACHE_ENTRIES) this.fileCache.delete(this.fileCache.keys().next().value!)
  }

  /** Takes the next group commit off the queue: everything waiting, up to MAX_BATCH_BYTES. */
  private takeBatch (): Pending[] {
    let bytes = 0
    let n = 0
    while (n < this.queue.length && (n === 0 || bytes + this.queue[n]!.req.frame.length <= MAX_BATCH_BYTES)) {
      bytes += this.queue[n]!.req.frame.length
      n++
    }
    const batch = n === this.queue.length ? this.queue : this.queue.slice(0, n)
    this.queue = n === this.queue.length ? [] : this.queue.slice(n)
    return batch
  }

  private async flush (): Promise<void> {
    if (this.flushing || this.queue.length === 0) return
    this.flushing = true
    const batch = this.takeBatch()
    let writing: { close: () => Promise<void> } | undefined
    try {
      const reqs = batch.map(p => p.req)
      await this.loadMaxDeviceSeqs(reqs)
      const txKeys = reqs.map(req => keys.txId(req.volume, req.deviceId, req.deviceSeq))
      // Only a transaction at or below its device's highest stored seq can be a retry.
      const lookup = reqs.flatMap((req, i) => req.deviceSeq <= this.maxDeviceSeq.get(`${req.volume}!${req.deviceId}`)! ? [i] : [])
      const known: Array<Uint8Array | undefined> = new Array(reqs.length)
      if (lookup.length > 0) (await this.db.getMany(lookup.map(i => txKeys[i]!))).forEach((v, j) => { known[lookup[j]!] = v })
      const checks = (req: AppendRequest): Array<[string, number, boolean]> => [
        ...(req.fileId ? [[keys.file(req.volume, req.fileId), req.baseVersion ?? 0, req.removes === true] as [string, number, boolean]] : []),
        ...(req.sourceFileId && req.sourceFileId !== req.fileId ? [[keys.file(req.volume, req.sourceFileId), req.sourceBaseVersion ?? 0, true] as [string, number, boolean]] : []),
      ]
      const files = await this.fileStates([...new Set(reqs.flatMap(req => checks(req).map(([k]) => k)))])
      // A chained batch: about a third of the main-thread CPU of db.batch(array)
      // (abstract-level clones and re-validates every operation of an array).
      const write = this.db.batch()
      writing = write
      const refs: Array<Promise<void>> = []
      const results: AppendResult[] = []
      const inBatch = new Map<string, number>()
      const touched = new Map<string, number>()
      const changedFiles = new Set<string>()
      const deviceSeqs = new Map<string, number>()
      for (let i = 0; i < batch.length; i++) {
        const req = reqs[i]!
        const txKey = txKeys[i]!
        const earlier = known[i] !== undefined ? readU64(known[i]!) : inBatch.get(txKey)
        if (earlier !== undefined) { results.push({ seq: earlier, duplicate: true }); continue }
        if (req.order?.refused) { results.push({ seq: 0, duplicate: false, deferred: true }); continue }
        const checked = checks(req)
        const conflict = checked.map(([k, base]) => conflictOf(files.get(k), req.deviceId, base)).find(c => c !== undefined)
        if (conflict) {
          if (req.order) req.order.refused = true
          results.push({ seq: conflict.seq, duplicate: false, conflict: { deviceId: conflict.deviceId } })
          continue
        }
        const seq = (touched.get(req.volume) ?? await this.head(req.volume)) + 1
        touched.set(req.volume, seq)
        inBatch.set(txKey, seq)
        const vd = `${req.volume}!${req.deviceId}`
        deviceSeqs.set(vd, Math.max(deviceSeqs.get(vd) ?? 0, req.deviceSeq))
        // The subject is gone after a deletion, and a rename's source always.
        for (const [k, , gone] of checked) { files.set(k, advance(files.get(k), req.deviceId, seq, gone)); changedFiles.add(k) }
        if (req.frame.length >= SEGMENT_MIN_FRAME) {
          const key = keys.entry(req.volume, seq)
          const stored = this.segments.append(req.frame).then(ref => { write.put(key, encodeRef(req.deviceId, ref)) })
          stored.catch(() => undefined) // awaited below, unless the batch fails before
          refs.push(stored)
        } else {
          write.put(keys.entry(req.volume, seq), encodeEntry(req.deviceId, req.frame))
        }
        write.put(txKey, u64(seq))
        results.push({ seq, duplicate: false })
      }
      for (const [volume, seq] of touched) write.put(keys.head(volume), u64(seq))
      for (const key of changedFiles) write.put(key, Buffer.from(JSON.stringify(files.get(key))))
      if (refs.length > 0) {
        await Promise.all(refs)
        // The frames are on disk before any reference to them can be: an
        // acked entry never points at bytes a crash could lose.
        await this.segments.sync()
      }
      writing = undefined
      if (write.length > 0) await write.write({ sync: true })
      else await write.close()
      for (const [volume, seq] of touched) this.heads.set(volume, seq)
      for (const [vd, deviceSeq] of deviceSeqs) this.maxDeviceSeq.set(vd, Math.max(this.maxDeviceSeq.get(vd)!, deviceSeq))
      for (const key of changedFiles) this.cacheFile(key, files.get(key))
      batch.forEach((p, i) => p.resolve(results[i]!))
    } catch (err) {
      await writing?.close().catch(() => undefined)
      for (const p of batch) p.reject(err)
    } finally {
      this.flushing = false
      if (this.queue.length > 0) setImmediate(() => { void this.flush() })
    }
  }
}
