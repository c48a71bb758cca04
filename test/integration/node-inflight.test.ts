// The storage node's cap on unacked frame bytes over all Push streams: with a
// cap far below what the streams send at once, every stream still gets every
// ack, in order (paused streams are resumed), and a stream cancelled with
// frames in flight does not keep its bytes counted against the others.
import fs from 'node:fs'
import t from 'tap'
import type * as grpc from '@grpc/grpc-js'
import { SyncStub } from '../../src/rpc/client.js'
import { type Ack, AckStatus, FrameCodec, PayloadCodec } from '../../src/codec/wire.js'
import { startNode, tempDir } from '../helpers/processes.js'

const VOLUME = 'capped'
const FRAME_DATA = 128 << 10

function frame (deviceId: string, deviceSeq: number): Uint8Array {
  return FrameCodec.encode({
    header: { volume: VOLUME, txId: { deviceId, deviceSeq }, fileId: '', baseVersion: 0, codec: PayloadCodec.NONE, encrypted: false, rawSize: FRAME_DATA },
    payload: Buffer.alloc(FRAME_DATA, deviceSeq & 0xff),
  })
}

/**
 * Writes `count` frames at once on one stream, resolves with the acks once
 * all arrived: on Push one frame per message, on PushBatch 4 per message.
 */
function pushAll (stub: SyncStub, deviceId: string, count: number, batched: boolean): { call: { cancel: () => void }; acks: Promise<Ack[]> } {
  const got: Ack[] = []
  let resolve!: (acks: Ack[]) => void
  let reject!: (err: unknown) => void
  const acks = new Promise<Ack[]>((res, rej) => { resolve = res; reject = rej })
  const take = (call: { end: () => void }, more: Ack[]): void => { got.push(...more); if (got.length === count) { call.end(); resolve(got) } }
  if (batched) {
    const call = stub.pushBatch(VOLUME)
    call.on('data', (a: Ack[]) => take(call, a))
    call.on('error', reject)
    for (let i = 1; i <= count; i += 4) call.write(Array.from({ length: Math.min(4, count - i + 1) }, (_v, k) => frame(deviceId, i + k)))
    return { call, acks }
  }
  const call = stub.push(VOLUME)
  call.on('data', (a: Ack) => take(call, [a]))
  call.on('error', reject)
  for (let i = 1; i <= count; i++) call.write(frame(deviceId, i))
  return { call, acks }
}

for (const batched of [false, true]) t.test(`${batched ? 'PushBatch' : 'Push'} streams far over the node-wide cap all complete, in order`, async t => {
  const dir = tempDir()
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  // 1 MiB for the whole node, 512 KiB per stream: 6 streams × 24 frames of 128 KiB are 18 MiB sent at once.
  const node = await startNode(dir, 0, ['--max-node-inflight-bytes', String(1 << 20), '--max-inflight-bytes', String(512 << 10)])
  t.teardown(() => node.stop())
  const stub = new SyncStub(node.address)
  t.teardown(() => stub.close())
  await stub.waitForReady(10_000)

  const streams = Array.from({ length: 6 }, (_v, k) => pushAll(stub, `dev${k}`, 24, batched))
  const timeout = setTimeout(() => { for (const s of streams) s.call.cancel() }, 60_000)
  const results = await Promise.all(streams.map(s => s.acks))
  clearTimeout(timeout)
  for (const [k, acks] of results.entries()) {
    t.same(acks.map(a => [a.txId.deviceSeq, a.status]), Array.from({ length: 24 }, (_v, i) => [i + 1, AckStatus.OK]), `dev${k}: 24 acks, in order, all OK`)
  }
  const seqs = results.flatMap(acks => acks.map(a => a.seq)).sort((a, b) => a - b)
  t.same(seqs, Array.from({ length: 144 }, (_v, i) => i + 1), 'the log holds all 144, seqs 1..144')

  // A stream cancelled with many frames unacked: its bytes must leave the count once their appends finish.
  const cancelled = batched ? stub.pushBatch(VOLUME) : stub.push(VOLUME)
  cancelled.on('error', () => { /* cancelled on purpose */ })
  if (batched) for (let i = 1; i <= 40; i += 4) (cancelled as grpc.ClientDuplexStream<Uint8Array[], Ack[]>).write([1, 2, 3, 4].map(k => frame('quitter', i + k - 1)))
  else for (let i = 1; i <= 40; i++) (cancelled as grpc.ClientDuplexStream<Uint8Array, Ack>).write(frame('quitter', i))
  await new Promise(resolve => setTimeout(resolve, 200))
  cancelled.cancel()
  const after = pushAll(stub, 'after', 24, batched)
  const timer = setTimeout(() => after.call.cancel(), 30_000)
  const acks = await after.acks
  clearTimeout(timer)
  t.same(acks.map(a => a.status), Array(24).fill(AckStatus.OK), 'a new stream after the cancelled one gets all its acks')
  t.equal(node.child.exitCode, null, 'the node is still running')
})
