// The embedded VolumeLog: one LevelDB for all volumes of a node. Appends are
// group-committed: every append that arrives while a synced batch is being
// written goes into the next batch, so durability costs one fsync per batch
// instead of one per transaction.
import { Level } from 'level'
import { type AppendRequest, type AppendResult, type LogEntry, type VolumeLog } from './volume-log.js'
import { keys } from './level-keys.js'
import { DeltafsError } from '../util/errors.js'

interface Pending { req: AppendRequest; resolve: (r: AppendResult) => void; reject: (e: unknown) => void }

/**
 * The conflict state of one file: its last change (s by d) and the last
 * change by a device other than d (o by od). A transaction from device X
 * with base B conflicts iff some device other than X changed the file after
 * B, i.e. iff (d != X ? s : o) > B. Two numbers suffice because X's own
 * changes never conflict with X.
 */
interface FileState { s: number; d: string; o: number; od: string }

/** Whether a transaction from `device` based on `base` conflicts; the other device's change if so. */
export function conflictOf (state: FileState | undefined, device: string, base: number): { seq: number; deviceId: string } | undefined {
  if (!state) return undefined
  const [seq, deviceId] = state.d !== device ? [state.s, state.d] : [state.o, state.od]
  return seq > base ? { seq, deviceId } : undefined
}

function advance (state: FileState | undefined, device: string, seq: number): FileState {
  if (!state) return { s: seq, d: device, o: 0, od: '' }
  if (state.d === device) return { ...state, s: seq }
  return { s: seq, d: device, o: state.s, od: state.d }
}

function u64 (n: number): Uint8Array {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(n))
  return b
}
function readU64 (b: Uint8Array): number {
  return Number(Buffer.from(b.buffer, b.byteOffset, b.byteLength).readBigUInt64BE(0))
}

function encodeEntry (deviceId: string, frame: Uint8Array): Uint8Array {
  const id = Buffer.from(deviceId)
  const out = Buffer.allocUnsafe(1 + id.length + frame.length)
  out[0] = id.length
  id.copy(out, 1)
  out.set(frame, 1 + id.length)
  return out
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
  private readonly heads = new Map<string, number>()
  private queue: Pending[] = []
  private flushing = false
  private opened = false

  constructor (dir: string) {
    this.db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  }

  async open (): Promise<void> {
    if (this.opened) return
    // Frames are large; a larger memtable means fewer L0 flushes per MiB stored.
    await this.db.open({ writeBufferSize: 64 << 20 })
    this.opened = true
  }

  async close (): Promise<void> {
    if (!this.opened) return
    while (this.flushing || this.queue.length > 0) await new Promise(resolve => setTimeout(resolve, 5))
    this.opened = false
    await this.db.close()
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
    const prefix = keys.entryPrefix(volume)
    let bytes = 0
    for await (const [key, value] of this.db.iterator({ gt: keys.entry(volume, afterSeq), lt: prefix + '~', limit })) {
      out.push(decodeEntry(parseInt(key.slice(prefix.length), 16), value))
      bytes += value.length
      if (bytes >= maxBytes) break
    }
    return out
  }

  private async flush (): Promise<void> {
    if (this.flushing || this.queue.length === 0) return
    this.flushing = true
    const batch = this.queue
    this.queue = []
    try {
      const txKeys = batch.map(p => keys.txId(p.req.volume, p.req.deviceId, p.req.deviceSeq))
      const known = await this.db.getMany(txKeys)
      const checks = (req: AppendRequest): Array<[string, number]> => [
        ...(req.fileId ? [[keys.file(req.volume, req.fileId), req.baseVersion ?? 0] as [string, number]] : []),
        ...(req.sourceFileId && req.sourceFileId !== req.fileId ? [[keys.file(req.volume, req.sourceFileId), req.sourceBaseVersion ?? 0] as [string, number]] : []),
      ]
      const fileKeys = [...new Set(batch.flatMap(p => checks(p.req).map(([k]) => k)))]
      const files = new Map<string, FileState | undefined>()
      ;(await this.db.getMany(fileKeys)).forEach((v, i) => files.set(fileKeys[i]!, v === undefined ? undefined : JSON.parse(Buffer.from(v).toString()) as FileState))
      const ops: Array<{ type: 'put'; key: string; value: Uint8Array }> = []
      const results: AppendResult[] = []
      const inBatch = new Map<string, number>()
      const touched = new Map<string, number>()
      const changedFiles = new Set<string>()
      for (let i = 0; i < batch.length; i++) {
        const { req } = batch[i]!
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
        for (const [k] of checked) { files.set(k, advance(files.get(k), req.deviceId, seq)); changedFiles.add(k) }
        ops.push({ type: 'put', key: keys.entry(req.volume, seq), value: encodeEntry(req.deviceId, req.frame) })
        ops.push({ type: 'put', key: txKey, value: u64(seq) })
        results.push({ seq, duplicate: false })
      }
      for (const [volume, seq] of touched) ops.push({ type: 'put', key: keys.head(volume), value: u64(seq) })
      for (const key of changedFiles) ops.push({ type: 'put', key, value: Buffer.from(JSON.stringify(files.get(key))) })
      if (ops.length > 0) await this.db.batch(ops, { sync: true })
      for (const [volume, seq] of touched) this.heads.set(volume, seq)
      batch.forEach((p, i) => p.resolve(results[i]!))
    } catch (err) {
      for (const p of batch) p.reject(err)
    } finally {
      this.flushing = false
      if (this.queue.length > 0) setImmediate(() => { void this.flush() })
    }
  }
}
