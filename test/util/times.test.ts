// Times: exact ns through setTimes (the ns-time addon), the microsecond
// fallback through fs.utimes, and the splits FUSE and timespecs need.
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { nsFromJson, nsToNumber, splitMs, splitNs, utimesSecondsOf } from '../../src/util/times.js'
import { nsExactTimes, setTimes } from '../../src/util/set-times.js'
import { tempDir } from '../helpers/processes.js'

function times (n: number): bigint[] {
  const out: bigint[] = []
  for (let i = 0; i < n; i++) {
    // Exact microseconds, milliseconds and arbitrary nanoseconds, today and in 1990.
    const base = i % 2 ? 1_795_445_623_000_000_000n : 631_152_000_000_000_000n
    out.push(base + BigInt(i * 7_777_777_777) + BigInt([0, 1000 * i, 999_999, 123_456_789][i % 4]!))
  }
  return out
}

t.test('bigint ns times land on their microsecond through fs.utimes, and the number form decodes to it', async t => {
  const dir = tempDir()
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const f = path.join(dir, 'f')
  fs.writeFileSync(f, 'x')
  let wrongOf = 0
  let wrongNumber = 0
  for (const ns of times(2000)) {
    const o = utimesSecondsOf(ns)
    fs.utimesSync(f, o, o)
    if (fs.statSync(f, { bigint: true }).mtimeNs !== ns / 1000n * 1000n) wrongOf++
    if (BigInt(Math.floor(nsToNumber(ns) / 1000)) !== ns / 1000n) wrongNumber++
  }
  t.equal(wrongOf, 0, 'bigint ns times land on their microsecond')
  t.equal(wrongNumber, 0, 'the number form floors back to the microsecond')
  t.equal(nsToNumber(0n), 0, 'zero stays zero')
})

t.test('setTimes sets times to the nanosecond, and leaves an omitted one alone', async t => {
  t.ok(nsExactTimes, 'the ns-time addon is built (npm install builds native/ns-time)')
  const dir = tempDir()
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const f = path.join(dir, 'f')
  fs.writeFileSync(f, 'x')
  let wrong = 0
  const all = times(500)
  all.forEach((ns, i) => {
    const a = all[(i + 1) % all.length]!
    setTimes(f, a, ns)
    const st = fs.statSync(f, { bigint: true })
    if (st.mtimeNs !== ns || st.atimeNs !== a) wrong++
  })
  t.equal(wrong, 0, 'atime and mtime exact to the ns')
  setTimes(f, 981_173_106_123_456_789n, 981_173_106_987_654_321n)
  setTimes(f, 'omit', 1_000_000_000_000_000_001n)
  let st = fs.statSync(f, { bigint: true })
  t.same([st.atimeNs, st.mtimeNs], [981_173_106_123_456_789n, 1_000_000_000_000_000_001n], 'omit keeps atime')
  setTimes(f, 5n, 'omit')
  st = fs.statSync(f, { bigint: true })
  t.same([st.atimeNs, st.mtimeNs], [5n, 1_000_000_000_000_000_001n], 'omit keeps mtime')
  const before = BigInt(Date.now() - 1000) * 1_000_000n
  setTimes(f, 'now', 'omit')
  st = fs.statSync(f, { bigint: true })
  t.ok(st.atimeNs > before && st.mtimeNs === 1_000_000_000_000_000_001n, 'now sets the clock time')
  setTimes(f, -1_500_000_000n, 'omit')
  t.equal(fs.statSync(f, { bigint: true }).atimeNs, -1_500_000_000n, 'a time before 1970')
  const s = path.join(dir, 's')
  fs.symlinkSync('f', s)
  setTimes(s, 7n, 8n)
  t.same([fs.lstatSync(s, { bigint: true }).mtimeNs, fs.statSync(f, { bigint: true }).mtimeNs], [8n, 1_000_000_000_000_000_001n], 'a symlink gets its own times')
  t.throws(() => setTimes(path.join(dir, 'missing'), 1n, 1n), { code: 'ENOENT' }, 'errors carry the code, as fs errors do')
})

t.test('splits floor, also before 1970', async t => {
  t.same(splitNs(1_234_567_890_123n), { sec: 1234n, nsec: 567_890_123 })
  t.same(splitNs(-1n), { sec: -1n, nsec: 999_999_999 })
  t.same(splitMs(1_234_567_890_123n), { ms: 1_234_567, subMs: 890_123 })
  t.same(splitMs(-1n), { ms: -1, subMs: 999_999 })
  t.equal(nsFromJson('1700000000123456789'), 1_700_000_000_123_456_789n, 'journal strings are exact')
  t.equal(nsFromJson(1_700_000_000_123_456_000), 1_700_000_000_123_456_000n, 'numbers from older journals still read')
  t.equal(nsFromJson(undefined), 0n)
})
