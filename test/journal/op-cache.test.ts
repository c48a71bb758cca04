// OpCache: keeps large values within its budget, forgets on demand, and
// leaves small values to LevelDB.
import t from 'tap'
import { OpCache } from '../../src/journal/op-cache.js'

t.test('keeps large values up to its budget and forgets them', async t => {
  const c = new OpCache(20_000)
  const a = new Uint8Array(8192).fill(1)
  const b = new Uint8Array(8192).fill(2)
  const d = new Uint8Array(8192).fill(3)
  c.keep('a', a)
  c.keep('b', b)
  c.keep('d', d) // over the budget: not kept
  t.equal(c.get('a'), a)
  t.equal(c.get('b'), b)
  t.equal(c.get('d'), undefined)
  t.equal(c.size, 16384)
  c.forget('a')
  t.equal(c.get('a'), undefined)
  t.equal(c.size, 8192)
  c.keep('b', d) // a key put again holds its new value, counted once
  t.equal(c.get('b'), d)
  t.equal(c.size, 8192)
  c.forget('missing')
  t.equal(c.size, 8192)
})

t.test('small values are not kept', async t => {
  const c = new OpCache(1 << 20)
  c.keep('s', new Uint8Array(100))
  t.equal(c.get('s'), undefined)
  t.equal(c.size, 0)
})
