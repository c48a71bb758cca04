// How fast the delta engine turns a whole-file rewrite into a Rebuild, and how
// small the Rebuild is: a generated text file (100 MiB unless given in MiB as
// the first argument) against an identical copy, one changed line, and a
// 4 KiB insert at the start. Files are in the page cache, as after a save.
//   node dist/bench/delta-speed.js [MiB] [runs]
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { applyDelta, computeDelta, deltaWireSize, type DeltaOptions } from '../src/delta/delta-engine.js'
import { lineAt, prng, spliceFile, writeTextFile } from '../test/delta/fixtures.js'

const MiB = 1 << 20
const sizeMiB = Number(process.argv[2] ?? 100)
const runs = Number(process.argv[3] ?? 3)

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deltafs-bench-'))
try {
  const base = path.join(dir, 'base.txt')
  await writeTextFile(base, sizeMiB * MiB, 7)
  const middle = await lineAt(base, sizeMiB * MiB / 2)
  const random = prng(99)
  const insert = Buffer.from(Array.from({ length: 4096 }, () => 97 + Math.floor(random() * 26)))
  const cases: Array<[string, number, number, Uint8Array]> = [
    ['identical', 0, 0, Buffer.alloc(0)],
    ['one line changed', middle.offset, middle.length, Buffer.from('this line was edited in the middle of the file\n')],
    ['4 KiB insert at start', 0, 0, insert],
  ]
  const variants: Array<[string, DeltaOptions]> = [['2 threads', { threads: true }], ['1 thread', { threads: false }]]
  console.log(`delta of a ${sizeMiB} MiB text file, ${os.cpus().length} CPUs, node ${process.version}, best of ${runs}`)
  for (const [name, at, remove, data] of cases) {
    const next = path.join(dir, 'new.txt')
    await spliceFile(base, next, at, remove, data)
    const newSize = fs.statSync(next).size
    for (const [variant, opts] of variants) {
      let best = Infinity
      let delta: Awaited<ReturnType<typeof computeDelta>> | undefined
      for (let r = 0; r < runs; r++) {
        const t0 = performance.now()
        delta = await computeDelta(base, next, opts)
        best = Math.min(best, performance.now() - t0)
      }
      const d = delta!
      const mbs = newSize / 1e6 / (best / 1000)
      console.log(`${name.padEnd(22)} ${variant.padEnd(9)} ${best.toFixed(0).padStart(5)} ms ${mbs.toFixed(0).padStart(5)} MB/s  ` +
        `wire ${deltaWireSize(d.pieces)} B in ${d.pieces.length} pieces, literal ${d.stats.literalBytes} B, ` +
        `read base ${d.stats.bytesReadBase} new ${d.stats.bytesReadNew}`)
    }
    const delta = await computeDelta(base, next)
    const out = path.join(dir, 'out.txt')
    const t0 = performance.now()
    await applyDelta(base, delta, out, { sync: false })
    const ms = performance.now() - t0
    console.log(`${name.padEnd(22)} apply     ${ms.toFixed(0).padStart(5)} ms ${(newSize / 1e6 / (ms / 1000)).toFixed(0).padStart(5)} MB/s`)
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}
