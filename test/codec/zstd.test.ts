// The two zstd implementations behind src/codec/zstd.ts: both write standard
// frames that the other reads, both refuse a frame whose size disagrees with
// its header, and the native one is what a mount uses once installed.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { type ZstdImplementation, loadZstd, zstdImplementation } from '../../src/codec/zstd.js'

const IMPLS: ZstdImplementation[] = ['zstd-napi', 'zstd-codec']
const text = Buffer.from('the journal keeps every delta of every file until the storage node acks it\n'.repeat(900))
const random = randomBytes(64 * 1024)

t.test('zstd-napi is installed and is what loadZstd gives by default', async t => {
  const saved = process.env.DELTAFS_ZSTD
  delete process.env.DELTAFS_ZSTD
  t.teardown(() => { if (saved !== undefined) process.env.DELTAFS_ZSTD = saved })
  t.equal(zstdImplementation(), 'zstd-napi', 'the native binding loaded (npm ci builds it; without it the mount falls back to zstd-codec, slower)')
})

t.test('DELTAFS_ZSTD picks the implementation, and a wrong value is a clear error', async t => {
  const saved = process.env.DELTAFS_ZSTD
  t.teardown(() => { if (saved === undefined) delete process.env.DELTAFS_ZSTD; else process.env.DELTAFS_ZSTD = saved })
  process.env.DELTAFS_ZSTD = 'zstd-codec'
  t.equal(zstdImplementation(), 'zstd-codec')
  process.env.DELTAFS_ZSTD = 'gzip'
  t.throws(() => zstdImplementation(), /DELTAFS_ZSTD must be one of zstd-napi, zstd-codec, not "gzip"/)
})

for (const level of [1, 3]) {
  t.test(`level ${level}: each implementation reads the other's frames`, async t => {
    for (const from of IMPLS) {
      for (const to of IMPLS) {
        const a = await loadZstd(level, from)
        const b = await loadZstd(level, to)
        for (const [name, raw] of [['text', text], ['random', random]] as const) {
          const frame = a.compress(raw)
          t.same(Buffer.from(b.decompress(frame, raw.length)), raw, `${name}: ${from} -> ${to}`)
        }
      }
    }
  })
}

t.test('a frame whose content disagrees with the size its header gives is refused', async t => {
  for (const impl of IMPLS) {
    const z = await loadZstd(1, impl)
    const frame = z.compress(text)
    t.throws(() => z.decompress(frame, 100), { code: 'BAD_FRAME' }, `${impl}: more than promised`)
    t.throws(() => z.decompress(frame, text.length + 1), { code: 'BAD_FRAME' }, `${impl}: less than promised`)
    t.throws(() => z.decompress(Buffer.from('not a zstd frame'), 16), { code: 'BAD_FRAME' }, `${impl}: not a frame`)
    t.throws(() => z.decompress(frame.subarray(0, frame.length - 3), text.length), { code: 'BAD_FRAME' }, `${impl}: cut short`)
  }
})

t.test('the native implementation compresses text as well as the emscripten one', async t => {
  const native = (await loadZstd(3, 'zstd-napi')).compress(text).length
  const wasm = (await loadZstd(3, 'zstd-codec')).compress(text).length
  t.ok(native <= wasm * 1.05, `zstd-napi ${native} B, zstd-codec ${wasm} B`)
})
