// A typed client stub for the Sync service.
import * as grpc from '@grpc/grpc-js'
import type { Ack, Delivery, SubscribeRequest, VolumeInfo } from '../codec/wire.js'
import { SyncService, channelOptions } from './service.js'

const Ctor = grpc.makeGenericClientConstructor(SyncService, 'Sync')

interface RawStub extends grpc.Client {
  push (): grpc.ClientDuplexStream<Uint8Array, Ack>
  subscribe (req: SubscribeRequest): grpc.ClientReadableStream<Delivery>
  info (req: { volume: string }, cb: (err: grpc.ServiceError | null, res?: VolumeInfo) => void): grpc.ClientUnaryCall
}

export class SyncStub {
  private readonly raw: RawStub

  constructor (readonly address: string) {
    this.raw = new Ctor(address, grpc.credentials.createInsecure(), channelOptions) as unknown as RawStub
  }

  /** Resolves once the channel is connected, rejects after timeoutMs. */
  waitForReady (timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.raw.waitForReady(Date.now() + timeoutMs, err => err ? reject(err) : resolve())
    })
  }

  push (): grpc.ClientDuplexStream<Uint8Array, Ack> { return this.raw.push() }

  subscribe (req: SubscribeRequest): grpc.ClientReadableStream<Delivery> { return this.raw.subscribe(req) }

  info (volume: string, timeoutMs = 5000): Promise<VolumeInfo> {
    return new Promise((resolve, reject) => {
      this.raw.info({ volume }, (err, res) => err || !res ? reject(err ?? new Error('empty reply')) : resolve(res))
      setTimeout(() => reject(new Error('info timed out')), timeoutMs).unref()
    })
  }

  close (): void { this.raw.close() }
}
