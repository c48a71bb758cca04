// changedRuns: which bytes of a write become Write ops. Exact offsets and
// lengths, block boundaries (4 KiB, aligned to file offsets), the tail past
// the old EOF, and a randomized comparison against a byte-by-byte reference.
import t from 'tap'
import { BLOCK_SIZE, changedRuns, type ChangedRun } from '../../src/capture/block-diff.js'

const KiB = 1024

/** Deterministic bytes, so a failure reproduces. */
function pattern (len: number, seed = 1): Buffer {
  const b = Buffer.alloc(len)
  let x = seed >>> 0 || 1
  for (let i = 0; i < len; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    b[i] = x & 0xff
  }
  return b
}

/** Runs as plain [offset, length] pairs, easy to compare and print. */
function spans (runs: ChangedRun[]): Array<[number, number]> {
  return runs.map(r => [r.offset, r.data.length])
}

/** Writing the runs over the old bytes must give exactly the new bytes. */
function replay (pos: number, next: Buffer, old: Buffer, oldLen: number, runs: ChangedRun[]): Buffer {
  const file = Buffer.alloc(next.length)
  old.copy(file, 0, 0, Math.min(oldLen, next.length))
  for (const r of runs) Buffer.from(r.data).copy(file, r.offset - pos)
  return file
}

/** Byte-by-byte reference of the documented rule. */
function reference (pos: number, next: Buffer, old: Buffer, oldLen: number): Array<[number, number]> {
  const out: Array<[number, number]> = []
  const end = pos + next.length
  for (let bs = pos; bs < end;) {
    const be = Math.min(end, (Math.floor(bs / BLOCK_SIZE) + 1) * BLOCK_SIZE)
    let first = -1
    let last = -1
    for (let o = bs; o < be; o++) {
      const i = o - pos
      if (i >= oldLen || next[i] !== old[i]) { if (first < 0) first = o; last = o }
    }
    if (first >= 0) {
      const prev = out[out.length - 1]
      if (prev && prev[0] + prev[1] === first) prev[1] = last + 1 - prev[0]
      else out.push([first, last + 1 - first])
    }
    bs = be
  }
  return out
}

t.equal(BLOCK_SIZE, 4096, 'blocks are 4 KiB')

t.test('identical bytes give no runs', async t => {
  const old = pattern(128 * KiB)
  t.same(changedRuns(0, Buffer.from(old), old, old.length), [], '128 KiB rewrite of the same bytes at 0')
  t.same(changedRuns(1 << 20, Buffer.from(old), old, old.length), [], 'same at 1 MiB')
  t.same(changedRuns(777, Buffer.from(old), old, old.length), [], 'same at an unaligned offset')
})

t.test('a 1-byte change in the middle of a 128 KiB write', async t => {
  const pos = 1 << 20
  const old = pattern(128 * KiB, 7)
  const next = Buffer.from(old)
  const at = 64 * KiB + 1234
  next[at] = (next[at]! ^ 0x5a) & 0xff
  const runs = changedRuns(pos, next, old, old.length)
  t.same(spans(runs), [[pos + at, 1]], 'one run of 1 byte at the changed file offset')
  t.equal(runs[0]?.data[0], next[at], 'the run carries the new byte')
  t.ok(replay(pos, next, old, old.length, runs).equals(next), 'replaying the run over the old bytes gives the new bytes')
})

t.test('changes inside one block become one run from first to last changed byte', async t => {
  const old = pattern(8 * KiB, 3)
  const next = Buffer.from(old)
  next[10] = (next[10]! + 1) & 0xff
  next[20] = (next[20]! + 1) & 0xff
  const runs = changedRuns(0, next, old, old.length)
  t.same(spans(runs), [[10, 11]], 'bytes 10..20 in one run, unchanged bytes between included')
  t.ok(Buffer.from(runs[0]!.data).equals(next.subarray(10, 21)), 'run data is the new bytes 10..20')
})

t.test('changes in two distant blocks give two runs', async t => {
  const old = pattern(128 * KiB, 5)
  const next = Buffer.from(old)
  next[100] = (next[100]! + 1) & 0xff
  next[100_000] = (next[100_000]! + 1) & 0xff
  const runs = changedRuns(0, next, old, old.length)
  t.same(spans(runs), [[100, 1], [100_000, 1]], 'two 1-byte runs')
  t.ok(replay(0, next, old, old.length, runs).equals(next), 'replay gives the new bytes')
})

t.test('runs in adjacent blocks merge only when they touch', async t => {
  const old = pattern(16 * KiB, 9)

  const a = Buffer.from(old)
  a[4095] = (a[4095]! + 1) & 0xff
  a[4096] = (a[4096]! + 1) & 0xff
  t.same(spans(changedRuns(0, a, old, old.length)), [[4095, 2]], 'last byte of block 0 + first byte of block 1: one run')

  const b = Buffer.from(old)
  for (let i = 4090; i <= 4100; i++) b[i] = (b[i]! + 1) & 0xff
  t.same(spans(changedRuns(0, b, old, old.length)), [[4090, 11]], 'a run straddling the boundary stays one run')

  const c = Buffer.from(old)
  for (let i = 4 * KiB - 1; i < 12 * KiB + 1; i++) c[i] = (c[i]! + 1) & 0xff
  t.same(spans(changedRuns(0, c, old, old.length)), [[4095, 8194]], 'a run across three boundaries stays one run')

  const d = Buffer.from(old)
  d[4094] = (d[4094]! + 1) & 0xff
  d[4096] = (d[4096]! + 1) & 0xff
  t.same(spans(changedRuns(0, d, old, old.length)), [[4094, 1], [4096, 1]], 'a gap of one unchanged byte at the boundary keeps two runs')

  const e = Buffer.from(old)
  e[4095] = (e[4095]! + 1) & 0xff
  e[8192] = (e[8192]! + 1) & 0xff
  t.same(spans(changedRuns(0, e, old, old.length)), [[4095, 1], [8192, 1]], 'changes separated by an unchanged block: two runs')
})

t.test('a write past the old EOF includes the whole tail', async t => {
  const next = pattern(10_000, 11)

  // The caller's old buffer holds garbage past oldLen: here it even equals
  // the new bytes, and the tail must still be shipped.
  const sameGarbage = Buffer.from(next)
  t.same(spans(changedRuns(0, next, sameGarbage, 5000)), [[5000, 5000]], 'identical prefix, tail 5000..9999 is one run')

  const old = Buffer.from(next)
  old[100] = (old[100]! + 1) & 0xff
  const runs = changedRuns(0, next, old, 5000)
  t.same(spans(runs), [[100, 1], [5000, 5000]], 'a change before the EOF and the tail')
  t.ok(replay(0, next, old, 5000, runs).equals(next), 'replay gives the new bytes')

  t.same(spans(changedRuns(8192, next, Buffer.alloc(next.length), 0)), [[8192, 10_000]], 'writing into an empty range: everything, one run')
  t.same(spans(changedRuns(300, next, Buffer.from(next), 0)), [[300, 10_000]], 'oldLen 0 at an unaligned offset: everything, one run')

  const short = Buffer.from(next)
  t.same(spans(changedRuns(0, next, short, next.length - 1)), [[9999, 1]], 'only the last byte is past the EOF')
  t.same(spans(changedRuns(0, next, short, 4096)), [[4096, 10_000 - 4096]], 'EOF exactly on a block boundary')
})

t.test('unaligned write positions use file-aligned blocks', async t => {
  const old = pattern(200, 13)
  const pos = 4000 // the write covers [4000, 4200): blocks [4000,4096) and [4096,4200)

  const a = Buffer.from(old)
  a[1] = (a[1]! + 1) & 0xff // file offset 4001
  a[150] = (a[150]! + 1) & 0xff // file offset 4150
  t.same(spans(changedRuns(pos, a, old, old.length)), [[4001, 1], [4150, 1]], 'one run per file block')

  const b = Buffer.from(old)
  b[95] = (b[95]! + 1) & 0xff // file offset 4095
  b[96] = (b[96]! + 1) & 0xff // file offset 4096
  t.same(spans(changedRuns(pos, b, old, old.length)), [[4095, 2]], 'changes touching across the file block boundary merge')

  const c = Buffer.from(old)
  c[10] = (c[10]! + 1) & 0xff // file offset 4010
  c[90] = (c[90]! + 1) & 0xff // file offset 4090: same file block as 4010
  t.same(spans(changedRuns(pos, c, old, old.length)), [[4010, 81]], 'two changes in one file block: one run')

  const small = pattern(100, 17)
  const d = Buffer.from(small)
  d[0] = (d[0]! + 1) & 0xff
  d[99] = (d[99]! + 1) & 0xff
  t.same(spans(changedRuns(10, d, small, small.length)), [[10, 100]], 'first and last byte of a small write: one run')

  const two = Buffer.from([1, 2])
  t.same(spans(changedRuns(4095, two, Buffer.from([9, 9]), 2)), [[4095, 2]], 'a 2-byte write straddling a boundary')
})

t.test('a zero-length write gives no runs', async t => {
  t.same(changedRuns(0, Buffer.alloc(0), Buffer.alloc(0), 0), [], 'at 0, empty file')
  t.same(changedRuns(12345, Buffer.alloc(0), Buffer.alloc(0), 0), [], 'at an unaligned offset past EOF')
  t.same(changedRuns(4096, Buffer.alloc(0), Buffer.alloc(16), 16), [], 'with old bytes around')
})

t.test('randomized writes agree with a byte-by-byte reference', async t => {
  let seed = 12345
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed % n
  }
  const mismatches: string[] = []
  let replayFailures = 0
  for (let k = 0; k < 300; k++) {
    const pos = rnd(3) === 0 ? rnd(8) * BLOCK_SIZE : rnd(40_000)
    const len = rnd(5) === 0 ? rnd(10) : rnd(20_000)
    const oldLen = rnd(3) === 0 ? len : rnd(len + 1)
    const old = pattern(len, k + 1)
    const next = Buffer.from(old)
    const changes = rnd(6)
    for (let c = 0; c < changes && len > 0; c++) {
      const at = rnd(len)
      const span = rnd(4) === 0 ? rnd(6000) : 1 + rnd(3)
      for (let i = at; i < Math.min(len, at + span); i++) next[i] = (next[i]! + 1 + rnd(254)) & 0xff
    }
    const runs = changedRuns(pos, next, old, oldLen)
    const got = spans(runs)
    const want = reference(pos, next, old, oldLen)
    if (JSON.stringify(got) !== JSON.stringify(want)) mismatches.push(`pos=${pos} len=${len} oldLen=${oldLen}: got ${JSON.stringify(got)} want ${JSON.stringify(want)}`)
    if (!replay(pos, next, old, oldLen, runs).equals(next)) replayFailures++
  }
  t.same(mismatches.slice(0, 3), [], '300 random writes give the reference runs')
  t.equal(replayFailures, 0, 'replaying the runs always reproduces the written bytes')
})
