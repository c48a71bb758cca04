// A mount of this version against a storage node that predates PushBatch
// (mounts may be upgraded first): the node answers PushBatch UNIMPLEMENTED,
// and the mount goes on with Push, one frame per message. The old node is a
// gRPC server that serves only Hello, Push, Subscribe and Info, forwarding
// them to a real node; a second mount on the real node must get every change.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import * as grpc from '@grpc/grpc-js'
import t from 'tap'
import { SyncStub } from '../../src/rpc/client.js'
import { type ReceivedFrame, SyncService, VOLUME_HEADER } from '../../src/rpc/service.js'
import { type Ack, type Delivery, encodeDelivery, FrameCodec, type HelloReply, type HelloRequest, type SubscribeRequest, type VolumeInfo, type VolumeInfoRequest } from '../../src/codec/wire.js'
import { startMount, startNode, tempDir, waitFor } from '../helpers/processes.js'

t.setTimeout(3 * 60_000)

/** Serves the old Sync service on a port of its own by forwarding to `upstream`; counts Push streams. */
async function oldNode (upstream: SyncStub): Promise<{ address: string; pushes: () => number; close: () => void }> {
  const { hello, push, subscribe, info } = SyncService
  const server = new grpc.Server()
  let pushes = 0
  const status = (err: unknown): Partial<grpc.StatusObject> => ({ code: (err as grpc.ServiceError).code ?? grpc.status.INTERNAL, details: (err as Error).message })
  server.addService({ hello, push, subscribe, info }, {
    hello: (call: grpc.ServerUnaryCall<HelloRequest, HelloReply>, cb: grpc.sendUnaryData<HelloReply>) => { upstream.hello(call.request).then(r => cb(null, r), e => cb(status(e))) },
    info: (call: grpc.ServerUnaryCall<VolumeInfoRequest, VolumeInfo>, cb: grpc.sendUnaryData<VolumeInfo>) => { upstream.info(call.request.volume).then(r => cb(null, r), e => cb(status(e))) },
    push: (call: grpc.ServerDuplexStream<ReceivedFrame, Ack>) => {
      pushes++
      const up = upstream.push(String(call.metadata.get(VOLUME_HEADER)[0]))
      call.on('data', (f: ReceivedFrame) => up.write(f.bytes))
      call.on('end', () => up.end())
      call.on('cancelled', () => up.cancel())
      up.on('data', (ack: Ack) => call.write(ack))
      up.on('end', () => call.end())
      up.on('error', (err: grpc.ServiceError) => { if (err.code !== grpc.status.CANCELLED) call.emit('error', status(err)) })
    },
    subscribe: (call: grpc.ServerWritableStream<SubscribeRequest, Uint8Array>) => {
      const up = upstream.subscribe(call.request)
      call.on('cancelled', () => up.cancel())
      up.on('data', (d: Delivery) => call.write(encodeDelivery(d.seq, d.frame ? FrameCodec.encode(d.frame) : undefined)))
      up.on('end', () => call.end())
      up.on('error', (err: grpc.ServiceError) => { if (err.code !== grpc.status.CANCELLED) call.emit('error', status(err)) })
    },
  })
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => err ? reject(err) : resolve(p)))
  return { address: `127.0.0.1:${port}`, pushes: () => pushes, close: () => server.forceShutdown() }
}

t.test('a mount pushes one frame per message to a node without PushBatch', async t => {
  const dir = tempDir()
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const node = await startNode(path.join(dir, 'node'))
  t.teardown(() => node.stop())
  const upstream = new SyncStub(node.address)
  t.teardown(() => upstream.close())
  const old = await oldNode(upstream)
  t.teardown(() => old.close())

  const a = await startMount('vol', path.join(dir, 'mnt-a'), path.join(dir, 'data-a'), old.address)
  t.teardown(() => a.stop())
  const b = await startMount('vol', path.join(dir, 'mnt-b'), path.join(dir, 'data-b'), node.address)
  t.teardown(() => b.stop())

  const files = Array.from({ length: 20 }, (_v, i) => [`f${i}.txt`, `file ${i} written on A through an old node\n`] as const)
  for (const [name, text] of files) await fsp.writeFile(path.join(a.mountpoint, name), text)
  await waitFor('B to have all 20 files', async () => {
    for (const [name, text] of files) if (await fsp.readFile(path.join(b.mountpoint, name), 'utf8').catch(() => '') !== text) return false
    return true
  }, 30_000)
  t.pass('B got every file A wrote')
  await fsp.writeFile(path.join(b.mountpoint, 'from-b.txt'), 'written on B\n')
  await waitFor('A to get B\'s file', async () => await fsp.readFile(path.join(a.mountpoint, 'from-b.txt'), 'utf8').catch(() => '') === 'written on B\n', 30_000)
  t.pass('A gets changes through the old node too')
  t.ok(old.pushes() >= 1, `A pushed on Push (${old.pushes()} streams)`)
  t.match(a.log(), /predates PushBatch/, 'A says why it pushes one frame per message')
  t.equal((await a.status()).pendingTx, 0, 'nothing is left in A\'s outbox')
})
