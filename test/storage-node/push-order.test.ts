// A stream's frames are stored in the order they arrived, even while the
// node still has to look up whether their volume is encrypted (a stream that
// pushes without a Hello first). The lookup is slowed down here so that a
// later batch arrives while the first one waits for it.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { StorageNode } from '../../src/storage-node/storage-node.js'
import { LevelVolumeLog } from '../../src/storage-node/level-volume-log.js'
import { TokenStore } from '../../src/storage-node/token-store.js'
import { SyncStub } from '../../src/rpc/client.js'
import { type Ack, FrameCodec, PayloadCodec } from '../../src/codec/wire.js'

function frame (volume: string, deviceSeq: number): Uint8Array {
  return FrameCodec.encode({
    header: { volume, txId: { deviceId: 'dev', deviceSeq }, fileId: '', baseVersion: 0, codec: PayloadCodec.NONE, encrypted: false, rawSize: 10 },
    payload: Buffer.alloc(10, deviceSeq),
  })
}

t.test('frames of one stream keep their order while the volume\'s key state is looked up', async t => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deltafs-push-order-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const log = new LevelVolumeLog(path.join(dir, 'log'))
  const keyCheck = log.keyCheck.bind(log)
  // Each lookup waits its turn and takes 40 ms, as a slow disk would make the node's serialized reads.
  let queue = Promise.resolve()
  log.keyCheck = (volume, proposed) => {
    const turn = queue.then(() => new Promise(resolve => setTimeout(resolve, 40)))
    queue = turn.then(() => undefined)
    return turn.then(() => keyCheck(volume, proposed))
  }
  const node = new StorageNode({ listen: '127.0.0.1:0', log, tokens: new TokenStore(path.join(dir, 'tokens.json')) })
  await node.open()
  t.teardown(() => node.close())
  const stub = new SyncStub(`127.0.0.1:${node.port}`)
  t.teardown(() => stub.close())
  await stub.waitForReady(10_000)

  for (const kind of ['push', 'pushBatch'] as const) {
    // A volume of its own: the node remembers a volume's key state once looked up.
    const VOLUME = `ordered-${kind}`
    const volumeAcks: Ack[] = []
    const done = new Promise<void>((resolve, reject) => {
      if (kind === 'push') {
        const call = stub.push(VOLUME)
        call.on('data', (a: Ack) => { volumeAcks.push(a); if (volumeAcks.length === 16) { call.end(); resolve() } })
        call.on('error', reject)
        for (let i = 1; i <= 8; i++) call.write(frame(VOLUME, i))
        setTimeout(() => { for (let i = 9; i <= 16; i++) call.write(frame(VOLUME, i)) }, 60)
      } else {
        const call = stub.pushBatch(VOLUME)
        call.on('data', (a: Ack[]) => { volumeAcks.push(...a); if (volumeAcks.length === 16) { call.end(); resolve() } })
        call.on('error', reject)
        call.write(Array.from({ length: 8 }, (_v, i) => frame(VOLUME, i + 1)))
        setTimeout(() => call.write(Array.from({ length: 8 }, (_v, i) => frame(VOLUME, i + 9))), 60)
      }
    })
    await done
    const entries = await log.read(VOLUME, 0, 100)
    const order = entries.map(e => FrameCodec.decode(e.frame).header!.txId!.deviceSeq)
    const inOrder = Array.from({ length: 16 }, (_v, i) => i + 1)
    t.same(order, inOrder, `${kind}: the log holds the frames in the order sent`)
    t.same(volumeAcks.map(a => a.seq), inOrder, `${kind}: acked with those seqs`)
  }
})
