// The sync client: keeps one session with the storage node alive, pushing
// the journal's outbox on a Push stream and applying what Subscribe delivers.
// When the node goes away it retries with backoff; the outbox and the applied
// cursor live in the journal, so nothing is lost or applied twice.
import { setTimeout as sleep } from 'node:timers/promises'
import * as grpc from '@grpc/grpc-js'
import type { Ack, Delivery, Transaction } from '../codec/wire.js'
import { AckStatus, opKind } from '../codec/wire.js'
import type { Codec } from '../codec/codec.js'
import type { FileRecord, Journal, PendingTx } from '../journal/journal.js'
import { movedPath, pathsOf, recordChanges, recordOf, renamesOf } from '../journal/records.js'
import { SyncStub, type StubOptions } from '../rpc/client.js'
import { type Applier, type ApplyResult, BaseMismatch, type Prebuilt } from './applier.js'
import type { ConflictResolver } from './conflict-resolver.js'
import type { FileIds } from './conflict-policy.js'
import type { SyncStats } from './sync-stats.js'
import { DeltafsError } from '../util/errors.js'
import { logger } from '../util/log.js'
import { fault } from '../util/fault.js'
import type { RwGate } from '../util/rw-gate.js'

const log = logger('sync')

const NO_DATA = new Uint8Array(0)

/**
 * What an unacked transaction needs until its ack (its ops' kinds, paths and
 * offsets: records, renames, conflicts), without the written bytes, which
 * the frame already carries: holding them doubled the window's memory.
 */
function withoutData (pending: PendingTx): PendingTx {
  const ops = pending.tx.ops.map(op => 'write' in op && op.write && op.write.data.length > 0 ? { ...op, write: { ...op.write, data: NO_DATA } } : op)
  return { ...pending, tx: { ...pending.tx, ops } }
}

/**
 * Unacked frames and bytes allowed on the Push stream. Each unacked byte is
 * held about twice over (the frame, and gRPC's framed copy of it) until the
 * node acks: 32 MiB made a 10 GiB stream peak at 228 MiB RSS. 8 MiB covers
 * the node's group fsync at several hundred MB/s on a LAN.
 */
const PUSH_WINDOW = 256
const PUSH_WINDOW_BYTES = 8 << 20
/**
 * Frames read from the outbox together go in one FrameBatch message, up to
 * this many bytes (a larger frame goes alone): the node's gRPC cost is per
 * message, and a batch stays far below the channel's message limit.
 */
const PUSH_BATCH_FRAMES = 32
const PUSH_BATCH_BYTES = 4 << 20
/** Deliveries buffered before Subscribe is paused. */
const APPLY_HIGH_WATER = 64
/** Errors that say the local disk is in trouble: retry the delivery later instead of skipping it. */
const RETRYABLE = new Set(['ENOSPC', 'EIO', 'EROFS', 'EDQUOT', 'EMFILE', 'ENFILE', 'ENOMEM'])

export interface SyncClientOptions {
  node: string
  volume: string
  journal: Journal
  codec: Codec
  applier: Applier
  stats: SyncStats
  stub?: StubOptions
  /** HMAC proving which volume key this mount holds; empty without a key. */
  keyCheck: Uint8Array
  /** Called once when syncing cannot go on (wrong key, refused token). */
  onFatal: (err: DeltafsError) => void
  /** A Rebuild did not fit this mount's copy of path: ask its author for the whole file. */
  onBaseMismatch?: (path: string, authorDevice: string) => Promise<void>
  /** Conflict checks (DESIGN §6): file ids for the node, and the losing side's handling. */
  fileIds?: FileIds
  conflicts?: ConflictResolver
  /** Held exclusive while a remote change is checked and applied; local changes hold it shared. */
  gate?: RwGate
}

/**
 * The records an apply leaves: none for a part that went into a stage (the
 * file here is still the old one, and a change made to it meanwhile is
 * based on that); files put in place early get the last part they hold, at
 * the path the transaction's renames move them to, unless it changes them itself.
 */
function appliedRecords (tx: Transaction, seq: number, result: ApplyResult): Map<string, FileRecord | null> {
  const records = new Map<string, FileRecord | null>()
  const renames = renamesOf(tx)
  for (const f of result.flushed ?? []) records.set(movedPath(f.path, renames), recordOf(f.seq, f.facts))
  if (!result.staged) for (const [p, rec] of recordChanges(tx, seq, result.facts)) records.set(p, rec)
  return records
}

/** Ends a session so that the outbox is pushed again with fresh base versions. */
class ResyncAfterConflict extends Error {}

/** Errors after which retrying cannot help: the mount must stop and say why. */
function fatalError (err: unknown): DeltafsError | undefined {
  if (err instanceof DeltafsError && (err.code === 'KEY' || err.code === 'AUTH')) return err
  const e = err as Partial<grpc.ServiceError>
  if (e.code === grpc.status.PERMISSION_DENIED || e.code === grpc.status.UNAUTHENTICATED) {
    return new DeltafsError('AUTH', `the storage node refused access: ${e.details ?? e.message ?? ''}`, { cause: err })
  }
  return undefined
}

export class SyncClient {
  private stub: SyncStub | undefined
  private loop: Promise<void> | undefined
  private closed = false
  private wake: (() => void) | undefined
  private endSession: (() => void) | undefined
  private acks: Promise<void> = Promise.resolve()

  constructor (private readonly opts: SyncClientOptions) {
    opts.journal.onClosed(() => this.wake?.())
  }

  open (): void {
    if (this.loop) return
    this.stub = new SyncStub(this.opts.node, this.opts.stub)
    this.loop = this.run()
  }

  async close (): Promise<void> {
    if (!this.loop || this.closed) return
    this.closed = true
    this.endSession?.()
    await this.loop
    await this.acks.catch(() => undefined)
    // The journal closes after this: no delivery may still be half applied.
    await this.applies.catch(() => undefined)
    this.stub?.close()
  }

  private async run (): Promise<void> {
    const stub = this.stub!
    let backoff = 100
    let offlineSaid = false
    while (!this.closed) {
      try {
        await stub.waitForReady(1000)
      } catch {
        if (!offlineSaid) log.warn({ node: this.opts.node }, 'storage node unreachable: working offline, will keep retrying')
        offlineSaid = true
        await sleep(backoff)
        backoff = Math.min(backoff * 2, 2000)
        continue
      }
      offlineSaid = false
      backoff = 100
      this.opts.stats.connected = true
      log.info({ node: this.opts.node }, 'connected to storage node')
      try {
        const readOnly = await this.hello(stub)
        await this.session(stub, readOnly)
      } catch (err) {
        this.opts.stats.lastError = (err as Error).message
        const fatal = fatalError(err)
        if (fatal) {
          this.opts.stats.connected = false
          log.error({ err: fatal.message }, 'sync stopped')
          this.closed = true
          this.opts.onFatal(fatal)
          return
        }
        if (err instanceof ResyncAfterConflict) {
          log.debug('pushing again after a conflict')
          continue
        }
        if (!this.closed) log.warn({ err: (err as Error).message }, 'connection to storage node lost, reconnecting')
      }
      this.opts.stats.connected = false
      if (!this.closed) await sleep(backoff)
    }
  }

  /** Checks access and that this mount holds the same volume key as the others. */
  private async hello (stub: SyncStub): Promise<boolean> {
    const { volume, journal, keyCheck } = this.opts
    const reply = await stub.hello({ volume, deviceId: journal.deviceId, keyCheck })
    if (!Buffer.from(reply.keyCheck).equals(Buffer.from(keyCheck))) {
      throw new DeltafsError('KEY', keyCheck.length === 0
        ? `volume "${volume}" is encrypted: mount it with its key (--key-file or DELTAFS_PASSPHRASE)`
        : reply.keyCheck.length === 0
          ? `volume "${volume}" is not encrypted (it has unencrypted history): mount it without a key`
          : `wrong key for volume "${volume}": it does not match the key the volume was created with`)
    }
    if (reply.readOnly && !this.opts.stats.readOnly) log.warn({ volume }, 'the token is read-only: receiving changes only; local changes stay in the journal')
    this.opts.stats.readOnly = reply.readOnly
    return reply.readOnly
  }

  /**
   * Deliveries being applied. It outlives a session: a new session subscribes
   * from the applied cursor only once the previous one's applies are done,
   * or a delivery still being applied would be applied a second time.
   */
  private applies: Promise<void> = Promise.resolve()

  private async session (stub: SyncStub, readOnly: boolean): Promise<void> {
    // A failed ack or conflict settling ended the last session; it must not fail this one too.
    this.acks = this.acks.catch(() => undefined)
    await this.acks
    await this.applies.catch(() => undefined)
    const { journal, codec, stats, volume } = this.opts
    const push = readOnly ? undefined : stub.pushFrames(volume, this.oneFramePerMessage)
    const sub = stub.subscribe({ volume, fromSeq: journal.applied(), deviceId: journal.deviceId })
    const inflight: Array<{ pending: PendingTx; size: number }> = []
    let inflightBytes = 0
    let lastSent = 0
    let pumping = false
    let again = false
    let queued = 0
    /** Acks waiting for the ones before them to be recorded. */
    let acked: Array<{ pending: PendingTx; seq: number }> | undefined

    await new Promise<void>((resolve, reject) => {
      let done = false
      const finish = (err?: unknown): void => {
        if (done) return
        done = true
        this.wake = undefined
        this.endSession = undefined
        push?.cancel()
        sub.cancel()
        if (err) reject(err instanceof Error ? err : new Error(String(err)))
        else resolve()
      }
      this.endSession = () => finish()
      const streamEnded = (name: string) => (err?: grpc.ServiceError) => finish(err ?? new Error(`${name} stream ended`))
      push?.on('error', (err: grpc.ServiceError) => {
        if (err.code === grpc.status.UNIMPLEMENTED && !this.oneFramePerMessage) {
          log.warn({ node: this.opts.node }, 'the storage node predates PushBatch: pushing one frame per message (upgrade the node to batch them)')
          this.oneFramePerMessage = true
        }
        streamEnded('push')(err)
      })
      push?.on('end', streamEnded('push'))
      sub.on('error', streamEnded('subscribe'))
      sub.on('end', streamEnded('subscribe'))

      const pump = async (): Promise<void> => {
        if (!push) return
        if (pumping) { again = true; return }
        pumping = true
        try {
          do {
            again = false
            while (!done && inflight.length < PUSH_WINDOW && inflightBytes < PUSH_WINDOW_BYTES) {
              const batch = await journal.readOutbox(lastSent, Math.min(PUSH_BATCH_FRAMES, PUSH_WINDOW - inflight.length), PUSH_WINDOW_BYTES - inflightBytes)
              if (batch.length === 0 || done) break
              let message: Uint8Array[] = []
              let messageBytes = 0
              const send = (): void => {
                if (message.length === 0) return
                push.write(message)
                for (let i = 0; i < message.length; i++) fault('sync.after-send')
                message = []
                messageBytes = 0
              }
              for (const pending of batch) {
                const ids = pending.checked ? this.opts.fileIds : undefined
                pending.tx.fileId = ids ? ids.of(pending.subject) : ''
                pending.tx.sourceFileId = ids && pending.source ? ids.of(pending.source) : ''
                const bytes = codec.sealBytes(pending.tx)
                if (messageBytes + bytes.length > PUSH_BATCH_BYTES) send()
                message.push(bytes)
                messageBytes += bytes.length
                stats.bytesPushed += bytes.length
                stats.framesPushed++
                inflight.push({ pending: withoutData(pending), size: bytes.length })
                inflightBytes += bytes.length
                lastSent = pending.deviceSeq
              }
              send()
            }
          } while (again && !done)
        } catch (err) {
          finish(err)
        } finally {
          pumping = false
        }
      }
      this.wake = () => { void pump() }

      const onAck = (ack: Ack): void => {
        const head = inflight.shift()
        if (!head || ack.txId?.deviceSeq !== head.pending.deviceSeq) { finish(new Error('storage node acked out of order')); return }
        inflightBytes -= head.size
        if (ack.status === AckStatus.REJECTED) {
          log.error({ deviceSeq: head.pending.deviceSeq, path: head.pending.tx.path, error: ack.error }, 'storage node refused a transaction; it stays in the outbox')
          finish(new Error(`storage node refused transaction ${head.pending.deviceSeq}: ${ack.error}`))
          return
        }
        // Follows a CONFLICT of this stream, whose settling resyncs: sent again then.
        if (ack.status === AckStatus.DEFERRED) return
        if (ack.status === AckStatus.CONFLICT) {
          acked = undefined // acks after it are recorded after its settling
          this.acks = this.acks.then(() => this.settleConflict(head.pending, ack, () => done))
          this.acks.then(() => finish(new ResyncAfterConflict()), finish)
          return
        }
        // Acks that arrive while the journal records earlier ones are recorded together, in order.
        if (acked) { acked.push({ pending: head.pending, seq: ack.seq }); return }
        const group = acked = [{ pending: head.pending, seq: ack.seq }]
        this.acks = this.acks.then(async () => {
          if (acked === group) acked = undefined
          await journal.ackMany(group)
          stats.lastPushedSeq = Math.max(stats.lastPushedSeq, group[group.length - 1]!.seq)
        })
        this.acks.then(() => pump(), finish)
      }
      push?.on('data', (acks: Ack[]) => {
        for (const ack of acks) {
          if (done) return
          onAck(ack)
        }
      })

      sub.on('data', (d: Delivery) => {
        stats.bytesReceived += d.frame?.payload?.length ?? 0
        if (++queued >= APPLY_HIGH_WATER) sub.pause()
        // Once the session ended, what it still had queued is left to the next one.
        this.applies = this.applies.then(async () => {
          if (done) return
          try { await this.applyDelivery(d) } catch (err) { finish(err); return }
          if (--queued < APPLY_HIGH_WATER / 2) sub.resume()
        })
      })

      void pump()
    })
  }

  private readonly conflictRetries = new Set<string>()
  /** The node answered PushBatch UNIMPLEMENTED: it predates it, and takes Push only. */
  private oneFramePerMessage = false

  /**
   * The node refused a transaction because another device changed its file
   * first. Once that change is applied here, the apply path has either kept
   * this version as a conflict copy (dropping the transaction) or found both
   * identical (the transaction then goes again with the fresh base). A
   * transaction refused twice for the same change is settled as lost.
   */
  private async settleConflict (pending: PendingTx, ack: Ack, sessionDone: () => boolean): Promise<void> {
    const { journal, stats } = this.opts
    log.info({ deviceSeq: pending.deviceSeq, path: pending.subject, laterSeq: ack.seq, laterDevice: ack.winnerDevice }, 'the node refused a change: the file changed on another device first')
    if (!await journal.isPending(pending.deviceSeq)) return
    while (journal.applied() < ack.seq && !sessionDone() && !this.closed) await sleep(20)
    if (journal.applied() < ack.seq || !await journal.isPending(pending.deviceSeq)) return
    // The refused frame was read before the winner's change was applied here
    // (its base predates it) and the subject's record has moved on since: the
    // next push carries the fresh base, so this refusal says nothing yet.
    if (await journal.version(pending.subject) >= ack.seq) return
    const key = `${pending.deviceSeq}@${ack.seq}`
    if (!this.conflictRetries.has(key)) { this.conflictRetries.add(key); return }
    stats.lastError = `conflict on ${pending.subject}`
    await this.alone(() => this.opts.conflicts?.lost(pending.subject, ack.winnerDevice ?? '', ack.seq) ?? Promise.resolve())
  }

  private alone<T> (fn: () => Promise<T>): Promise<T> {
    return this.opts.gate ? this.opts.gate.withExclusive(fn) : fn()
  }

  private async applyDelivery (d: Delivery): Promise<void> {
    const ahead = await this.ahead(d)
    try {
      await this.alone(() => this.applyDeliveryNow(d, ahead))
    } finally {
      await this.opts.applier.discard(ahead?.prebuilt)
    }
  }

  /**
   * The work of an apply that can run before it, while changes through the
   * mount go on: decoding the frame, building a Rebuild's result. Deliveries
   * apply one at a time, so nothing else applies meanwhile. Any failure here
   * is left for the apply to meet and handle.
   */
  private async ahead (d: Delivery): Promise<{ tx: Transaction; prebuilt?: Prebuilt } | undefined> {
    const { journal, codec, applier, volume } = this.opts
    if (d.seq <= journal.applied() || d.frame == null) return undefined
    try {
      const tx = codec.open(d.frame)
      if (tx.volume !== volume) return undefined
      const prebuilt = await applier.prebuild(tx)
      return prebuilt ? { tx, prebuilt } : { tx }
    } catch {
      return undefined
    }
  }

  private async applyDeliveryNow (d: Delivery, ahead?: { tx: Transaction; prebuilt?: Prebuilt }): Promise<void> {
    const { journal, codec, applier, stats, volume } = this.opts
    if (d.seq <= journal.applied()) return
    // Seq only: this mount's own transaction, which it has already.
    if (d.frame == null) { await journal.passOwn(d.seq); return }
    let tx: Transaction | undefined
    try {
      tx = ahead?.tx ?? codec.open(d.frame)
      if (tx.volume !== volume) throw new DeltafsError('BAD_FRAME', `transaction is for volume "${tx.volume}"`)
      // Ahead of everything the transaction changes here, conflict settling included.
      await journal.beginApply(d.seq, pathsOf(tx))
      await this.opts.conflicts?.beforeApply(tx, d.seq, { whole: applier.continuesStage(tx) })
      const result = await applier.apply(tx, ahead?.prebuilt, d.seq)
      fault('apply.after-data')
      if (log.isLevelEnabled('debug')) log.debug({ seq: d.seq, device: tx.txId.deviceId, path: tx.path, ops: tx.ops.map(op => opKind(op)) }, 'remote change applied')
      const followed = await journal.recordApplied({ seq: d.seq, tx, records: appliedRecords(tx, d.seq, result) }, result.bytes)
      if (followed > 0) log.info({ seq: d.seq, renames: renamesOf(tx), transactions: followed }, 'a remote rename moved files with local changes on their way: they follow them')
      await this.opts.conflicts?.afterApply(tx, d.seq)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (err instanceof DeltafsError && err.code === 'BASE_MISMATCH' && this.opts.onBaseMismatch && tx) {
        stats.healsRequested++
        log.warn({ seq: d.seq, path: tx.path, err: err.message, author: tx.txId.deviceId }, 'the local copy does not match the delta\'s base: asking its author for the whole file')
        await this.opts.onBaseMismatch(err instanceof BaseMismatch ? err.healPath : tx.path, tx.txId.deviceId)
        await journal.recordApplied({ seq: d.seq, records: new Map() }, 0)
        return
      }
      // Hello already proved this mount holds the volume key, so a frame that
      // does not decrypt is a bad frame to skip, not a reason to stop.
      // Only a transaction that cannot apply here is skipped: a bad frame, or a
      // filesystem error about its paths (ENOENT, ENOTDIR, EEXIST...). Anything
      // else (the disk full, the journal closing under it) is retried later.
      if (!(err instanceof DeltafsError) && (code === undefined || RETRYABLE.has(code) || !/^E[A-Z]+$/.test(code))) throw err
      // A transaction that can never apply here must not block the ones after it.
      stats.txRefused++
      log.error({ seq: d.seq, err: (err as Error).message }, 'remote transaction refused and skipped')
      await journal.recordApplied({ seq: d.seq, records: new Map() }, 0)
    }
  }
}
