// The storage node: a gRPC Sync service over a VolumeLog. It checks access,
// sequences pushed transactions, acks each once durable, and streams the log
// to subscribers. It never decodes payloads: with a volume key they are
// ciphertext to it.
import { EventEmitter, once } from 'node:events'
import * as grpc from '@grpc/grpc-js'
import { type VolumeLog } from './volume-log.js'
import type { Grant, TokenStore } from './token-store.js'
import { AUTH_HEADER, type ReceivedFrame, SyncService, VOLUME_HEADER, serverOptions, parseHostPort, isLoopbackHost } from '../rpc/service.js'
import { type ServerTlsOptions, serverCredentials } from '../rpc/tls.js'
import {
  type Ack, AckStatus, encodeDelivery, type HelloReply, type HelloRequest, type SubscribeRequest,
  type VolumeInfo, type VolumeInfoRequest,
} from '../codec/wire.js'
import { MAX_FRAME_BYTES } from '../codec/codec.js'
import { isValidName } from '../util/names.js'
import { DeltafsError } from '../util/errors.js'
import { logger } from '../util/log.js'
import { fault } from '../util/fault.js'

const log = logger('storage-node')

/** A subscriber is fed at most this many entries, or this many bytes, per log read. */
const SUBSCRIBE_BATCH = 256
const SUBSCRIBE_BATCH_BYTES = 4 << 20

export interface NodeLimits {
  /** Largest frame accepted on Push. */
  maxFrameBytes: number
  /** Bytes of frames one Push stream may have waiting for the log before it is paused. */
  maxInflightBytes: number
  /** Bytes of frames all Push streams together may have waiting before every stream that sends more is paused. */
  maxNodeInflightBytes: number
  /** Open streams allowed per token (or per anonymous volume). */
  maxConnectionsPerToken: number
}

export const DEFAULT_LIMITS: NodeLimits = { maxFrameBytes: MAX_FRAME_BYTES, maxInflightBytes: 64 << 20, maxNodeInflightBytes: 128 << 20, maxConnectionsPerToken: 64 }

export interface StorageNodeOptions {
  listen: string
  log: VolumeLog
  tokens: TokenStore
  tls?: ServerTlsOptions
  limits?: Partial<NodeLimits>
}

/**
 * Resolves on the first of several events and removes every listener it
 * added (racing bare `once` calls leaves the losers' listeners behind, one
 * set per wake-up: a leak on a busy volume).
 */
async function firstOf (events: Array<[EventEmitter, string]>): Promise<void> {
  const ac = new AbortController()
  try {
    await Promise.race(events.map(([emitter, name]) => once(emitter, name, { signal: ac.signal })))
  } catch (err) {
    if ((err as Error).name !== 'AbortError') throw err
  } finally {
    ac.abort()
  }
}

class RpcError extends Error {
  constructor (readonly code: grpc.status, readonly details: string) { super(details) }
}

function bearer (md: grpc.Metadata): string | undefined {
  const v = md.get(AUTH_HEADER)[0]
  const m = typeof v === 'string' ? /^Bearer (\S+)$/.exec(v) : null
  return m?.[1]
}

export class StorageNode {
  private server: grpc.Server | undefined
  private readonly appended = new EventEmitter()
  private readonly versions = new Map<string, number>()
  private readonly connections = new Map<string, number>()
  /** Whether each volume has a registered key check, i.e. is end-to-end encrypted. */
  private readonly encryptedVolumes = new Map<string, boolean>()
  private readonly limits: NodeLimits
  /** Frame bytes received on all Push streams and not yet acked. */
  private inflightBytes = 0
  /** Resume checks of paused Push streams; each returns true once its stream is resumed. */
  private readonly paused = new Set<() => boolean>()
  private requireTokens = true
  private closing = false
  port = 0

  constructor (private readonly opts: StorageNodeOptions) {
    this.appended.setMaxListeners(0)
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits }
  }

  async open (): Promise<void> {
    if (this.server) return
    const { host, port } = parseHostPort(this.opts.listen)
    const credentials = serverCredentials(this.opts.listen, this.opts.tls ?? {}, log)
    // Reachable from the network: every volume needs a token.
    this.requireTokens = !isLoopbackHost(host)
    await this.opts.log.open()
    const server = new grpc.Server(serverOptions(this.limits.maxFrameBytes))
    server.addService(SyncService, {
      hello: (call: grpc.ServerUnaryCall<HelloRequest, HelloReply>, cb: grpc.sendUnaryData<HelloReply>) => { void this.hello(call, cb) },
      push: (call: grpc.ServerDuplexStream<ReceivedFrame, Ack>) => {
        this.push(call, frame => [frame], acks => { for (const ack of acks) call.write(ack) })
      },
      pushBatch: (call: grpc.ServerDuplexStream<ReceivedFrame[], Ack[]>) => {
        this.push(call, frames => frames, acks => { call.write(acks) })
      },
      subscribe: (call: grpc.ServerWritableStream<SubscribeRequest, Uint8Array>) => { void this.subscribe(call) },
      info: (call: grpc.ServerUnaryCall<VolumeInfoRequest, VolumeInfo>, cb: grpc.sendUnaryData<VolumeInfo>) => { void this.info(call, cb) },
    })
    this.port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${host}:${port}`, credentials, (err, bound) => {
        if (err) reject(new DeltafsError('LISTEN', `cannot listen on ${this.opts.listen}: ${err.message}`, { cause: err }))
        else resolve(bound)
      })
    }).catch(async err => { await this.opts.log.close(); throw err })
    this.server = server
    log.info({ address: `${host}:${this.port}`, tls: Boolean(this.opts.tls?.cert), requireTokens: this.requireTokens }, 'listening')
  }

  async close (): Promise<void> {
    const server = this.server
    if (!server || this.closing) return
    this.closing = true
    this.appended.emit('close')
    await new Promise<void>(resolve => {
      const force = setTimeout(() => { server.forceShutdown(); resolve() }, 2000)
      server.tryShutdown(() => { clearTimeout(force); resolve() })
    })
    await this.opts.log.close()
    this.server = undefined
    log.info('stopped')
  }

  /** Checks the caller's token for a volume; throws RpcError(PERMISSION_DENIED) otherwise. */
  private authorize (md: grpc.Metadata, volume: unknown, write: boolean): Grant {
    if (!isValidName(volume)) throw new RpcError(grpc.status.INVALID_ARGUMENT, `bad volume name ${JSON.stringify(volume)}`)
    if (!this.requireTokens && !this.opts.tokens.hasTokens(volume)) return { volume, readOnly: false, tokenId: `anonymous:${volume}` }
    const grant = this.opts.tokens.check(volume, bearer(md))
    if (!grant) {
      log.warn({ volume }, 'refused: missing or wrong access token')
      throw new RpcError(grpc.status.PERMISSION_DENIED, `missing or wrong access token for volume "${volume}"`)
    }
    if (write && grant.readOnly) {
      log.warn({ volume, token: grant.tokenId }, 'refused: read-only token tried to push')
      throw new RpcError(grpc.status.PERMISSION_DENIED, `the token for volume "${volume}" is read-only`)
    }
    return grant
  }

  /** Counts an open stream against its token; returns the release function. */
  private connect (grant: Grant): () => void {
    const n = this.connections.get(grant.tokenId) ?? 0
    if (n >= this.limits.maxConnectionsPerToken) {
      throw new RpcError(grpc.status.RESOURCE_EXHAUSTED, `too many open streams for this token (limit ${this.limits.maxConnectionsPerToken})`)
    }
    this.connections.set(grant.tokenId, n + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      this.connections.set(grant.tokenId, (this.connections.get(grant.tokenId) ?? 1) - 1)
    }
  }

  private async hello (call: grpc.ServerUnaryCall<HelloRequest, HelloReply>, cb: grpc.sendUnaryData<HelloReply>): Promise<void> {
    try {
      const grant = this.authorize(call.metadata, call.request.volume, false)
      const keyCheck = await this.opts.log.keyCheck(grant.volume, call.request.keyCheck ?? new Uint8Array(0))
      this.encryptedVolumes.set(grant.volume, keyCheck.length > 0)
      cb(null, { headSeq: await this.opts.log.head(grant.volume), keyCheck, readOnly: grant.readOnly })
    } catch (err) {
      cb(this.toStatus(err))
    }
  }

  private toStatus (err: unknown): Partial<grpc.StatusObject> {
    if (err instanceof RpcError) return { code: err.code, details: err.details }
    log.error({ err }, 'request failed')
    return { code: grpc.status.INTERNAL, details: 'storage node error' }
  }

  /**
   * A Push or PushBatch stream: `framesOf` gives the frames of one message,
   * `send` writes the acks that are ready, in order (one message per ack on
   * Push, one for all of them on PushBatch).
   */
  private push<In, Out> (call: grpc.ServerDuplexStream<In, Out>, framesOf: (msg: In) => ReceivedFrame[], send: (acks: Ack[]) => void): void {
    let grant: Grant
    let release: () => void
    try {
      const volume = call.metadata.get(VOLUME_HEADER)[0]
      grant = this.authorize(call.metadata, volume, true)
      release = this.connect(grant)
    } catch (err) {
      call.emit('error', this.toStatus(err))
      return
    }
    call.on('close', release)
    call.on('error', (err: Error & { code?: number }) => {
      release()
      if (err.code === grpc.status.CANCELLED) log.debug({ err: err.message }, 'push stream cancelled')
      else log.warn({ volume: grant.volume, token: grant.tokenId, code: err.code, err: err.message }, 'push stream failed (undecodable or oversized frame?)')
    })
    // Appends start at once so that they share group commits; acks go out
    // in arrival order: each waits in `pending` until those before it are done.
    const pending: Array<{ size: number; ack?: Ack }> = []
    let streamBytes = 0
    let ended = false
    const order = { refused: false }
    const overLimit = (): boolean => streamBytes >= this.limits.maxInflightBytes || this.inflightBytes >= this.limits.maxNodeInflightBytes
    const tryResume = (): boolean => {
      if (overLimit()) return false
      call.resume()
      return true
    }
    call.on('close', () => this.paused.delete(tryResume))
    const sendAcks = (): void => {
      sendScheduled = false
      const ready: Ack[] = []
      while (pending.length > 0 && pending[0]!.ack !== undefined) {
        const { size, ack } = pending.shift()!
        streamBytes -= size
        this.inflightBytes -= size
        ready.push(ack!)
      }
      if (ready.length > 0 && !call.destroyed) send(ready)
      for (const resume of this.paused) if (resume()) this.paused.delete(resume)
      if (ended && pending.length === 0 && !call.destroyed && !call.writableEnded) call.end()
    }
    // The appends of one group commit settle together: their acks go out
    // together once the promise callbacks of that commit have all run.
    let sendScheduled = false
    const scheduleAcks = (): void => {
      if (sendScheduled) return
      sendScheduled = true
      process.nextTick(sendAcks)
    }
    // Frames must reach the log in arrival order. Until the node knows
    // whether the volume is encrypted (a stream without a Hello first), they
    // wait for that lookup, all on the one promise, so none overtakes another.
    let keyState: Promise<unknown> | undefined = this.encryptedVolumes.has(grant.volume) ? undefined
      : this.isEncrypted(grant.volume).catch((err: unknown) => { log.error({ err }, 'cannot read the volume\'s key check') })
    void keyState?.then(() => { keyState = undefined })
    call.on('data', (msg: In) => {
      for (const received of framesOf(msg)) {
        const slot: { size: number; ack?: Ack } = { size: received.bytes.length }
        pending.push(slot)
        streamBytes += slot.size
        this.inflightBytes += slot.size
        const stored = keyState ? keyState.then(() => this.ingest(grant.volume, received, order)) : this.ingest(grant.volume, received, order)
        stored.then(ack => { slot.ack = ack }, (err: unknown) => {
          log.error({ err }, 'ingest failed')
          slot.ack = { txId: received.header?.txId ?? { deviceId: '', deviceSeq: 0 }, seq: 0, status: AckStatus.REJECTED, error: 'storage node could not store the transaction' }
        }).finally(scheduleAcks)
      }
      if (overLimit()) {
        call.pause()
        this.paused.add(tryResume)
      }
    })
    call.on('end', () => {
      ended = true
      if (pending.length === 0) call.end()
    })
  }

  private async ingest (volume: string, { header: h, bytes, error }: ReceivedFrame, order: { refused: boolean }): Promise<Ack> {
    const txId = h?.txId ?? { deviceId: '', deviceSeq: 0 }
    const reject = (error: string): Ack => {
      log.warn({ volume, txId, error }, 'frame rejected')
      return { txId, seq: 0, status: AckStatus.REJECTED, error }
    }
    if (error !== undefined) return reject(error)
    if (bytes.length > this.limits.maxFrameBytes) return reject(`frame of ${bytes.length} bytes exceeds the limit of ${this.limits.maxFrameBytes}`)
    if (h == null || h.txId == null) return reject('frame has no header or transaction id')
    if (h.volume !== volume) return reject(`frame is for volume "${String(h.volume)}" but the stream is for "${volume}"`)
    if (!isValidName(txId.deviceId) || !Number.isSafeInteger(txId.deviceSeq) || txId.deviceSeq <= 0) return reject('bad transaction id')
    if (!h.encrypted) {
      // Known by now: push waits for the lookup. If it failed, the frame is refused rather than let through.
      const encrypted = this.encryptedVolumes.get(volume)
      if (encrypted === undefined) return reject(`the storage node could not read volume "${volume}"'s key check; send again later`)
      if (encrypted) return reject(`volume "${volume}" is end-to-end encrypted: unencrypted frames are refused`)
    }
    const fileId = h.fileId ?? ''
    const sourceFileId = h.sourceFileId ?? ''
    if (![fileId, sourceFileId].every(id => id.length <= 64 && /^[A-Za-z0-9_-]*$/.test(id))) return reject('bad file id')
    const version = (v: number | undefined): number => Number.isSafeInteger(v) && v! >= 0 ? v! : 0
    const baseVersion = version(h.baseVersion)
    try {
      const { seq, duplicate, conflict, deferred } = await this.opts.log.append({
        volume, deviceId: txId.deviceId, deviceSeq: txId.deviceSeq, frame: bytes, ...(fileId ? { fileId, baseVersion, ...(h.removes === true ? { removes: true } : {}) } : {}),
        ...(sourceFileId ? { sourceFileId, sourceBaseVersion: version(h.sourceBaseVersion) } : {}),
        order,
      })
      if (deferred) return { txId, seq: 0, status: AckStatus.DEFERRED, error: 'an earlier transaction of this stream was refused as a conflict' }
      if (conflict) {
        log.info({ volume, txId, fileId, baseVersion, laterSeq: seq, laterDevice: conflict.deviceId }, 'conflict: the file changed on another device after this transaction\'s base; refused, the author keeps its version as a conflict copy')
        return { txId, seq, status: AckStatus.CONFLICT, error: `file changed by ${conflict.deviceId} at seq ${seq}, after base ${baseVersion}`, winnerDevice: conflict.deviceId }
      }
      fault('node.after-append')
      if (duplicate) log.info({ volume, txId, seq }, 'duplicate transaction id: acked with its original seq')
      else this.notify(volume, seq)
      return { txId, seq, status: duplicate ? AckStatus.DUPLICATE : AckStatus.OK, error: '' }
    } catch (err) {
      // A storage failure: what follows from this stream must not be stored
      // ahead of it. (Malformed frames are refused alone: they are nobody's
      // real change, and the stream goes on.)
      order.refused = true
      log.error({ err }, 'append failed')
      return { txId, seq: 0, status: AckStatus.REJECTED, error: 'storage node could not store the transaction' }
    }
  }

  private async isEncrypted (volume: string): Promise<boolean> {
    let known = this.encryptedVolumes.get(volume)
    if (known === undefined) {
      known = (await this.opts.log.keyCheck(volume, new Uint8Array(0))).length > 0
      this.encryptedVolumes.set(volume, known)
    }
    return known
  }

  private notify (volume: string, seq: number): void {
    this.versions.set(volume, seq)
    this.appended.emit(volume)
  }

  private async subscribe (call: grpc.ServerWritableStream<SubscribeRequest, Uint8Array>): Promise<void> {
    const req = call.request
    let release: () => void
    try {
      release = this.connect(this.authorize(call.metadata, req.volume, false))
    } catch (err) {
      call.emit('error', this.toStatus(err))
      return
    }
    let cursor = Number.isSafeInteger(req.fromSeq) ? Math.max(0, req.fromSeq) : 0
    let ended = false
    const stop = (): void => { ended = true; release(); this.appended.emit(req.volume) }
    call.on('cancelled', stop)
    call.on('close', stop)
    call.on('error', stop)
    log.info({ volume: req.volume, fromSeq: cursor, device: req.deviceId }, 'subscriber attached')
    try {
      while (!ended && !this.closing) {
        // Read the notification version before reading the log, so an append
        // that lands in between wakes us instead of being missed.
        const version = this.versions.get(req.volume)
        const entries = await this.opts.log.read(req.volume, cursor, SUBSCRIBE_BATCH, SUBSCRIBE_BATCH_BYTES)
        if (entries.length === 0) {
          if (version === this.versions.get(req.volume)) {
            await firstOf([[this.appended, req.volume], [this.appended, 'close']])
          }
          continue
        }
        const last = entries[entries.length - 1]
        for (const e of entries) {
          cursor = e.seq
          // The subscriber's own transactions are not sent back, except as a
          // seq-only delivery when one ends the batch: its applied cursor
          // then reaches the head even when the log ends with its own changes.
          const own = e.deviceId === req.deviceId
          if (own && e !== last) continue
          // Backpressure: a subscriber that does not read stops this loop,
          // so the node holds at most one batch for it.
          if (!call.write(own ? encodeDelivery(e.seq) : encodeDelivery(e.seq, e.frame))) {
            await firstOf([[call, 'drain'], [this.appended, 'close'], [call, 'close']])
          }
          if (ended) break
        }
      }
    } catch (err) {
      log.error({ err }, 'subscribe failed')
      call.emit('error', { code: grpc.status.INTERNAL, details: 'storage node read failed' })
      return
    } finally {
      release()
    }
    if (!call.destroyed) call.end()
  }

  private async info (call: grpc.ServerUnaryCall<VolumeInfoRequest, VolumeInfo>, cb: grpc.sendUnaryData<VolumeInfo>): Promise<void> {
    try {
      const grant = this.authorize(call.metadata, call.request.volume, false)
      cb(null, { volume: grant.volume, headSeq: await this.opts.log.head(grant.volume) })
    } catch (err) {
      cb(this.toStatus(err))
    }
  }
}
