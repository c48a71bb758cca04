// A typed client stub for the Sync service. Every call carries the bearer
// token; Push also names its volume, which the node authorizes once per stream.
import { EventEmitter } from 'node:events'
import * as grpc from '@grpc/grpc-js'
import type { Ack, Delivery, HelloReply, HelloRequest, SubscribeRequest, VolumeInfo } from '../codec/wire.js'
import { AUTH_HEADER, SyncService, VOLUME_HEADER, channelOptions } from './service.js'

const Ctor = grpc.makeGenericClientConstructor(SyncService, 'Sync')

type Unary<Req, Res> = (req: Req, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Res) => void) => grpc.ClientUnaryCall

interface RawStub extends grpc.Client {
  hello: Unary<HelloRequest, HelloReply>
  info: Unary<{ volume: string }, VolumeInfo>
  push (md: grpc.Metadata): grpc.ClientDuplexStream<Uint8Array, Ack>
  pushBatch (md: grpc.Metadata): grpc.ClientDuplexStream<Uint8Array[], Ack[]>
  subscribe (req: SubscribeRequest, md: grpc.Metadata): grpc.ClientReadableStream<Delivery>
}

/** What the sync client uses of a push stream. */
export interface PushStream extends EventEmitter {
  write (frames: Uint8Array[]): boolean
  cancel (): void
  end (): unknown
}

export interface StubOptions {
  credentials?: grpc.ChannelCredentials
  /** Bearer token for the volume, if the node requires one. */
  token?: string
}

export class SyncStub {
  private readonly raw: RawStub

  constructor (readonly address: string, private readonly opts: StubOptions = {}) {
    this.raw = new Ctor(address, opts.credentials ?? grpc.credentials.createInsecure(), channelOptions) as unknown as RawStub
  }

  private metadata (volume?: string): grpc.Metadata {
    const md = new grpc.Metadata()
    if (this.opts.token) md.set(AUTH_HEADER, `Bearer ${this.opts.token}`)
    if (volume) md.set(VOLUME_HEADER, volume)
    return md
  }

  private unary<Req, Res> (fn: Unary<Req, Res>, req: Req, timeoutMs: number): Promise<Res> {
    return new Promise((resolve, reject) => {
      fn.call(this.raw, req, this.metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err || !res) reject(err ?? new Error('empty reply'))
        else resolve(res)
      })
    })
  }

  /** Resolves once the channel is connected, rejects after timeoutMs. */
  waitForReady (timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.raw.waitForReady(Date.now() + timeoutMs, err => err ? reject(err) : resolve())
    })
  }

  hello (req: HelloRequest, timeoutMs = 10_000): Promise<HelloReply> { return this.unary(this.raw.hello, req, timeoutMs) }

  info (volume: string, timeoutMs = 5000): Promise<VolumeInfo> { return this.unary(this.raw.info, { volume }, timeoutMs) }

  /** One frame per message (kept for nodes and mounts that predate PushBatch). */
  push (volume: string): grpc.ClientDuplexStream<Uint8Array, Ack> { return this.raw.push(this.metadata(volume)) }

  /** Encoded frames written together, one FrameBatch per write; acks come back as arrays, in order. */
  pushBatch (volume: string): grpc.ClientDuplexStream<Uint8Array[], Ack[]> { return this.raw.pushBatch(this.metadata(volume)) }

  /**
   * A push stream of frame batches: PushBatch, or with oneByOne (a node that
   * predates PushBatch answers it UNIMPLEMENTED) Push, each frame its own
   * message and each ack handed on as a batch of one.
   */
  pushFrames (volume: string, oneByOne: boolean): PushStream {
    if (!oneByOne) return this.pushBatch(volume)
    const call = this.push(volume)
    const stream = new EventEmitter() as PushStream
    stream.write = (frames: Uint8Array[]) => { for (const f of frames) call.write(f); return true }
    stream.cancel = () => call.cancel()
    stream.end = () => { call.end(); return stream }
    call.on('data', (ack: Ack) => stream.emit('data', [ack]))
    call.on('error', (err: grpc.ServiceError) => stream.emit('error', err))
    call.on('end', () => stream.emit('end'))
    return stream
  }

  subscribe (req: SubscribeRequest): grpc.ClientReadableStream<Delivery> { return this.raw.subscribe(req, this.metadata()) }

  close (): void { this.raw.close() }
}
