// The storage node: a gRPC Sync service over a VolumeLog. It sequences pushed
// transactions, acks each once durable, and streams the log to subscribers.
import { EventEmitter, once } from 'node:events'
import * as grpc from '@grpc/grpc-js'
import { type VolumeLog } from './volume-log.js'
import { type ReceivedFrame, SyncService, serverOptions, parseHostPort } from '../rpc/service.js'
import {
  type Ack, AckStatus, encodeDelivery, type SubscribeRequest, type VolumeInfo, type VolumeInfoRequest,
} from '../codec/wire.js'
import { isValidName } from '../util/names.js'
import { DeltafsError } from '../util/errors.js'
import { logger } from '../util/log.js'

const log = logger('storage-node')

/** Frames a single Push stream may have waiting for the log before it is paused. */
const MAX_IN_FLIGHT_PER_STREAM = 4096
const SUBSCRIBE_BATCH = 256

export interface StorageNodeOptions { listen: string; log: VolumeLog }

export class StorageNode {
  private server: grpc.Server | undefined
  private readonly appended = new EventEmitter()
  private readonly versions = new Map<string, number>()
  private closing = false
  port = 0

  constructor (private readonly opts: StorageNodeOptions) {
    this.appended.setMaxListeners(0)
  }

  async open (): Promise<void> {
    if (this.server) return
    const { host, port } = parseHostPort(this.opts.listen)
    await this.opts.log.open()
    const server = new grpc.Server(serverOptions)
    server.addService(SyncService, {
      push: (call: grpc.ServerDuplexStream<ReceivedFrame, Ack>) => this.push(call),
      subscribe: (call: grpc.ServerWritableStream<SubscribeRequest, Uint8Array>) => { void this.subscribe(call) },
      info: (call: grpc.ServerUnaryCall<VolumeInfoRequest, VolumeInfo>, cb: grpc.sendUnaryData<VolumeInfo>) => { void this.info(call, cb) },
    })
    const bindHost = host.startsWith('[') ? host : host
    this.port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${bindHost}:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
        if (err) reject(new DeltafsError('LISTEN', `cannot listen on ${this.opts.listen}: ${err.message}`, { cause: err }))
        else resolve(bound)
      })
    }).catch(async err => { await this.opts.log.close(); throw err })
    this.server = server
    log.info({ address: `${host}:${this.port}` }, 'listening')
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

  private push (call: grpc.ServerDuplexStream<ReceivedFrame, Ack>): void {
    let acks: Promise<void> = Promise.resolve()
    let inFlight = 0
    call.on('data', (received: ReceivedFrame) => {
      // Appends start at once so that they share group commits; acks are
      // written in arrival order by chaining on the previous ack.
      const result = this.ingest(received)
      if (++inFlight >= MAX_IN_FLIGHT_PER_STREAM) call.pause()
      acks = acks.then(async () => {
        const ack = await result
        if (--inFlight < MAX_IN_FLIGHT_PER_STREAM) call.resume()
        if (!call.destroyed) call.write(ack)
      })
    })
    call.on('end', () => { void acks.then(() => call.end()) })
    call.on('error', err => log.debug({ err: err.message }, 'push stream ended'))
  }

  private async ingest ({ frame, bytes }: ReceivedFrame): Promise<Ack> {
    const h = frame.header
    const txId = h?.txId ?? { deviceId: '', deviceSeq: 0 }
    const reject = (error: string): Ack => {
      log.warn({ volume: h?.volume, txId, error }, 'frame rejected')
      return { txId, seq: 0, status: AckStatus.REJECTED, error }
    }
    if (h == null || h.txId == null) return reject('frame has no header or transaction id')
    if (!isValidName(h.volume)) return reject(`bad volume name "${String(h.volume)}"`)
    if (!isValidName(txId.deviceId) || !(txId.deviceSeq > 0)) return reject('bad transaction id')
    try {
      const { seq, duplicate } = await this.opts.log.append({ volume: h.volume, deviceId: txId.deviceId, deviceSeq: txId.deviceSeq, frame: bytes })
      if (!duplicate) this.notify(h.volume, seq)
      return { txId, seq, status: duplicate ? AckStatus.DUPLICATE : AckStatus.OK, error: '' }
    } catch (err) {
      log.error({ err }, 'append failed')
      return { txId, seq: 0, status: AckStatus.REJECTED, error: 'storage node could not store the transaction' }
    }
  }

  private notify (volume: string, seq: number): void {
    this.versions.set(volume, seq)
    this.appended.emit(volume)
  }

  private async subscribe (call: grpc.ServerWritableStream<SubscribeRequest, Uint8Array>): Promise<void> {
    const req = call.request
    if (!isValidName(req.volume)) {
      call.destroy(Object.assign(new Error(`bad volume name "${String(req.volume)}"`), { code: grpc.status.INVALID_ARGUMENT }))
      return
    }
    let cursor = Math.max(0, req.fromSeq)
    let ended = false
    const stop = (): void => { ended = true; this.appended.emit(req.volume) }
    call.on('cancelled', stop)
    call.on('close', stop)
    call.on('error', stop)
    log.info({ volume: req.volume, fromSeq: cursor, device: req.deviceId }, 'subscriber attached')
    try {
      while (!ended && !this.closing) {
        // Read the notification version before reading the log, so an append
        // that lands in between wakes us instead of being missed.
        const version = this.versions.get(req.volume)
        const entries = await this.opts.log.read(req.volume, cursor, SUBSCRIBE_BATCH)
        if (entries.length === 0) {
          if (version === this.versions.get(req.volume)) {
            await Promise.race([once(this.appended, req.volume), once(this.appended, 'close')])
          }
          continue
        }
        for (const e of entries) {
          cursor = e.seq
          if (e.deviceId === req.deviceId) continue
          if (!call.write(encodeDelivery(e.seq, e.frame))) {
            await Promise.race([once(call, 'drain'), once(this.appended, 'close'), once(call, 'close')])
          }
          if (ended) break
        }
      }
    } catch (err) {
      log.error({ err }, 'subscribe failed')
      call.destroy(Object.assign(new Error('storage node read failed'), { code: grpc.status.INTERNAL }))
      return
    }
    if (!call.destroyed) call.end()
  }

  private async info (call: grpc.ServerUnaryCall<VolumeInfoRequest, VolumeInfo>, cb: grpc.sendUnaryData<VolumeInfo>): Promise<void> {
    const volume = call.request.volume
    if (!isValidName(volume)) { cb({ code: grpc.status.INVALID_ARGUMENT, details: 'bad volume name' }); return }
    try {
      cb(null, { volume, headSeq: await this.opts.log.head(volume) })
    } catch (err) {
      log.error({ err }, 'info failed')
      cb({ code: grpc.status.INTERNAL, details: 'storage node read failed' })
    }
  }
}
