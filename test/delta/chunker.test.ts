// Content-defined chunking: sizes stay in bounds, and cuts depend on content
// only, so an insert disturbs the chunks next to it and no others.
import crypto from 'node:crypto'
import t from 'tap'
import { chunkParams, cutPoint } from '../../src/delta/chunker.js'
import { PieceBuilder } from '../../src/delta/pieces.js'
import { DeltafsError } from '../../src/util/errors.js'

function cuts (data: Buffer, avg = 8192): number[] {
  const p = chunkParams(avg)
  const ends: number[] = []
  for (let pos = 0; pos < data.length;) {
    pos = cutPoint(data, pos, data.length, p)
    ends.push(pos)
  }
  return ends
}

t.test('chunk sizes stay within min and max, around avg', async t => {
  const data = crypto.randomBytes(8 << 20)
  const ends = cuts(data)
  const sizes = ends.map((end, i) => end - (ends[i - 1] ?? 0))
  const p = chunkParams()
  t.ok(sizes.slice(0, -1).every(s => s >= p.min && s <= p.max), 'every chunk but the last within [min, max]')
  const mean = data.length / sizes.length
  t.ok(mean > p.avg * 0.75 && mean < p.avg * 1.5, `mean size ${mean.toFixed(0)} near ${p.avg}`)
})

t.test('an insert moves only the cuts next to it', async t => {
  const data = crypto.randomBytes(4 << 20)
  const at = 1 << 20
  const edited = Buffer.concat([data.subarray(0, at), crypto.randomBytes(100), data.subarray(at)])
  const before = new Set(cuts(data))
  const after = cuts(edited).map(end => end >= at ? end - 100 : end)
  const kept = after.filter(end => before.has(end)).length
  t.ok(kept >= before.size - 3, `${kept} of ${before.size} cuts kept`)
})

t.test('chunk sizes must be a power of two in range', async t => {
  for (const avg of [0, 100, 1000, 3 << 20, 2.5]) t.throws(() => chunkParams(avg), DeltafsError, String(avg))
  t.equal(chunkParams(1024).min, 256)
})

t.test('PieceBuilder merges contiguous copies and packs inserts', async t => {
  const b = new PieceBuilder(10)
  b.copy(0, 5)
  b.copy(5, 5)
  b.copy(20, 1)
  b.insert(Buffer.from('abcdefg'))
  b.insert(Buffer.from('hijklmnopqrstuvwxyz'))
  b.copy(0, 0)
  b.copy(21, 2)
  const pieces = b.finish()
  t.same(pieces.map(p => 'copy' in p ? p.copy : Buffer.from(p.insert.data).toString()), [
    { offset: 0, length: 10 }, { offset: 20, length: 1 }, 'abcdefghij', 'klmnopqrst', 'uvwxyz', { offset: 21, length: 2 },
  ])
})
