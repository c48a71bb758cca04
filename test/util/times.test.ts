// Times survive the number form and utimes exactly, to the microsecond.
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { msToNumberNs, nsToNumber, utimesSeconds, utimesSecondsOf } from '../../src/util/times.js'
import { tempDir } from '../helpers/processes.js'

t.test('ns and ms times round-trip through numbers and utimes', async t => {
  const dir = tempDir()
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const f = path.join(dir, 'f')
  fs.writeFileSync(f, 'x')
  let wrongNs = 0
  let wrongMs = 0
  let wrongOf = 0
  for (let i = 0; i < 2000; i++) {
    // Exact microseconds, milliseconds and arbitrary nanoseconds, today and in 1990.
    const base = i % 2 ? 1_795_445_623_000_000_000n : 631_152_000_000_000_000n
    const ns = base + BigInt(i * 7_777_777_777) + BigInt([0, 1000 * i, 999_999, 123_456_789][i % 4]!)
    const s = utimesSeconds(nsToNumber(ns))
    fs.utimesSync(f, s, s)
    if (fs.statSync(f, { bigint: true }).mtimeNs !== ns / 1000n * 1000n) wrongNs++
    const ms = 1_483_228_800_000 + i * 86_400_123
    const m = utimesSeconds(msToNumberNs(ms))
    fs.utimesSync(f, m, m)
    if (fs.statSync(f, { bigint: true }).mtimeNs !== BigInt(ms) * 1_000_000n) wrongMs++
    const o = utimesSecondsOf(ns)
    fs.utimesSync(f, o, o)
    if (fs.statSync(f, { bigint: true }).mtimeNs !== ns / 1000n * 1000n) wrongOf++
  }
  t.equal(wrongNs, 0, 'ns times land on their microsecond')
  t.equal(wrongMs, 0, 'ms times land on their millisecond')
  t.equal(wrongOf, 0, 'bigint ns times land on their microsecond')
  t.equal(nsToNumber(0n), 0, 'zero stays zero')
  t.equal(utimesSeconds(Number.NaN), 0, 'a hostile NaN becomes the epoch, not an exception')
})
