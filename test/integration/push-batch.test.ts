// PushBatch against a real storage node over TCP: every frame of every batch
// gets its own ack, in the order sent, and is stored once; a bad frame in a
// batch is refused alone; bytes that are no batch at all are refused without
// stopping the node. (Push, one frame per message, is covered by
// hostile.test.ts and node-inflight.test.ts.)
import fs from 'node:fs'
import * as grpc from '@grpc/grpc-js'
import t from 'tap'
import { SyncStub } from '../../src/rpc/client.js'
import { SyncService, VOLUME_HEADER, channelOptions } from '../../src/rpc/service.js'
import { type Ack, AckStatus, FrameCodec, PayloadCodec } from '../../src/codec/wire.js'
import { startNode, tempDir } from '../helpers/processes.js'

const VOLUME = 'batched'

function frame (deviceId: string, deviceSeq: number, over: { volume?: string; data?: number } = {}): Uint8Array {
  const data = over.data ?? 100
  return FrameCodec.encode({
    header: { volume: over.volume ?? VOLUME, txId: { deviceId, deviceSeq }, fileId: '', baseVersion: 0, codec: PayloadCodec.NONE, encrypted: false, rawSize: data },
    payload: Buffer.alloc(data, deviceSeq & 0xff),
  })
}

/** A PushBatch stream that collects acks and the number of ack messages they came in. */
function open (stub: SyncStub): { call: grpc.ClientDuplexStream<Uint8Array[], Ack[]>; acks: Ack[]; messages: number; until: (n: number) => Promise<void> } {
  const call = stub.pushBatch(VOLUME)
  const s = { call, acks: [] as Ack[], messages: 0, until: async (_n: number) => {} }
  let wake: (() => void) | undefined
  let failure: Error | undefined
  call.on('data', (acks: Ack[]) => { s.messages++; s.acks.push(...acks); wake?.() })
  call.on('error', (err: Error) => { failure = err; wake?.() })
  s.until = async n => {
    const deadline = Date.now() + 20_000
    while (s.acks.length < n) {
      if (failure) throw failure
      if (Date.now() > deadline) throw new Error(`${s.acks.length} of ${n} acks within 20 s`)
      await new Promise<void>(resolve => { wake = resolve; setTimeout(resolve, 100) })
    }
  }
  return s
}

const view = (acks: Ack[]): Array<[string, number, number]> => acks.map(a => [a.txId.deviceId, a.txId.deviceSeq, a.status])

t.test('PushBatch: acks per frame, in order, stored once; bad frames refused alone', async t => {
  const dir = tempDir()
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const node = await startNode(dir, 0, ['--max-frame-bytes', String(64 << 10)])
  t.teardown(() => node.stop())
  const stub = new SyncStub(node.address)
  t.teardown(() => stub.close())
  await stub.waitForReady(10_000)

  const s = open(stub)
  t.teardown(() => s.call.cancel())
  // 5 batches of 8 frames, written at once.
  for (let b = 0; b < 5; b++) s.call.write(Array.from({ length: 8 }, (_v, i) => frame('devA', b * 8 + i + 1)))
  await s.until(40)
  t.same(view(s.acks), Array.from({ length: 40 }, (_v, i) => ['devA', i + 1, AckStatus.OK]), '40 acks, in the order sent, all OK')
  t.same(s.acks.map(a => a.seq), Array.from({ length: 40 }, (_v, i) => i + 1), 'seqs 1..40')
  t.ok(s.messages < 40, `the acks came in fewer messages than frames (${s.messages})`)

  // Retries across and within a batch.
  s.call.write([frame('devA', 39), frame('devA', 40), frame('devA', 41), frame('devA', 41)])
  await s.until(44)
  const retried = s.acks.slice(40)
  t.same(retried.map(a => [a.txId.deviceSeq, a.status, a.seq]), [
    [39, AckStatus.DUPLICATE, 39], [40, AckStatus.DUPLICATE, 40], [41, AckStatus.OK, 41], [41, AckStatus.DUPLICATE, 41],
  ], 'earlier and repeated ids are DUPLICATEs with their first seq')

  // Bad frames between good ones: refused one by one, the rest stored, order kept.
  s.call.write([frame('devA', 42), Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f]), frame('devA', 43, { volume: 'other' }), frame('devA', 44, { data: 70 << 10 }), frame('devA', 45)])
  await s.until(49)
  const mixed = s.acks.slice(44)
  t.same(mixed.map(a => a.status), [AckStatus.OK, AckStatus.REJECTED, AckStatus.REJECTED, AckStatus.REJECTED, AckStatus.OK], 'good, bad, bad, bad, good')
  t.match(mixed[1]!.error, /malformed Frame/, `undecodable frame: ${mixed[1]!.error}`)
  t.match(mixed[2]!.error, /volume "other"/, `frame for another volume: ${mixed[2]!.error}`)
  t.match(mixed[3]!.error, /exceeds the limit/, `frame over --max-frame-bytes: ${mixed[3]!.error}`)
  t.same([mixed[0]!.seq, mixed[4]!.seq], [42, 43], 'the good ones got the next seqs')
  t.equal((await stub.info(VOLUME)).headSeq, 43, 'the log holds 43 transactions')

  // Bytes that are no FrameBatch: one REJECTED ack; the node serves on.
  const Raw = grpc.makeGenericClientConstructor({ pushBatch: { ...SyncService.pushBatch, requestSerialize: (b: Uint8Array) => Buffer.from(b) } }, 'Sync')
  const raw = new Raw(node.address, grpc.credentials.createInsecure(), channelOptions) as unknown as { pushBatch: (md: grpc.Metadata) => grpc.ClientDuplexStream<Uint8Array, Ack[]>; close: () => void }
  t.teardown(() => raw.close())
  const md = new grpc.Metadata()
  md.set(VOLUME_HEADER, VOLUME)
  const bad = raw.pushBatch(md)
  const badAcks = new Promise<Ack[]>((resolve, reject) => { bad.on('data', resolve); bad.on('error', reject) })
  bad.write(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f]))
  const got = await badAcks
  bad.cancel()
  t.same(got.map(a => a.status), [AckStatus.REJECTED], 'one REJECTED ack for the batch')
  t.match(got[0]!.error, /malformed FrameBatch/, `with a clear error: ${got[0]!.error}`)

  const after = open(stub)
  t.teardown(() => after.call.cancel())
  after.call.write([frame('devB', 1), frame('devB', 2)])
  await after.until(2)
  t.same(after.acks.map(a => [a.status, a.seq]), [[AckStatus.OK, 44], [AckStatus.OK, 45]], 'a new stream is served after it')
  t.equal(node.child.exitCode, null, 'the node is still running')
})
