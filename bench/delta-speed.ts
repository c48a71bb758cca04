// How fast the delta engine turns a whole-file rewrite into a Rebuild, and how
// small the Rebuild is, for a generated text file (100 MiB unless given in MiB
// as the first argument) and typical edits of it. Files are in the page
// cache, as they are right after a save.
//   node dist/bench/delta-speed.js [MiB] [runs]
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { applyDelta, computeDelta, type Delta, deltaWireSize } from '../src/delta/delta-engine.js'
import { lineAt, moveHeadToEnd, prng, spliceFile, writeTextFile } from '../test/delta/fixtures.js'

const MiB = 1 << 20
const sizeMiB = Number(process.argv[2] ?? 100)
const runs = Number(process.argv[3] ?? 3)

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deltafs-bench-'))
try {
  const size = sizeMiB * MiB
  const base = path.join(dir, 'base.txt')
  const next = path.join(dir, 'new.txt')
  const scratch = path.join(dir, 'scratch.txt')
  await writeTextFile(base, size, 7)
  const random = prng(99)
  const letters = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => 97 + Math.floor(random() * 26)))
  const edited = Buffer.from('this line was edited\n')
  const replaceLine = async (from: string, to: string, near: number): Promise<void> => {
    const line = await lineAt(from, near)
    await spliceFile(from, to, line.offset, line.length, edited)
  }
  const cases: Array<[string, () => Promise<void>]> = [
    ['identical', () => spliceFile(base, next, 0, 0, Buffer.alloc(0))],
    ['one line changed', () => replaceLine(base, next, size / 2)],
    ['4 KiB insert at start', () => spliceFile(base, next, 0, 0, letters(4096))],
    ['1 MiB append', () => spliceFile(base, next, size, 0, letters(MiB))],
    // Neither prefix nor suffix reach past 10%: the chunked path does the rest.
    ['lines at 10% and 90%', async () => { await replaceLine(base, scratch, size * 0.1); await replaceLine(scratch, next, size * 0.9) }],
    ['1 MiB moved to the end', () => moveHeadToEnd(base, scratch, next, size, MiB)],
  ]
  console.log(`delta of a ${sizeMiB} MiB text file, ${os.cpus().length} CPUs, node ${process.version}, best of ${runs} runs, files in the page cache`)
  for (const [name, make] of cases) {
    await make()
    const newSize = fs.statSync(next).size
    let best = Infinity
    let delta: Delta | undefined
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now()
      delta = await computeDelta(base, next)
      best = Math.min(best, performance.now() - t0)
    }
    const d = delta!
    const out = path.join(dir, 'out.txt')
    let applyMs = Infinity
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now()
      await applyDelta(base, d, out, { sync: false })
      applyMs = Math.min(applyMs, performance.now() - t0)
    }
    const rate = (ms: number): string => `${(newSize / 1e6 / (ms / 1000)).toFixed(0).padStart(5)} MB/s`
    console.log(`${name.padEnd(24)} delta ${best.toFixed(0).padStart(5)} ms ${rate(best)} | apply ${applyMs.toFixed(0).padStart(4)} ms ${rate(applyMs)} | ` +
      `wire ${deltaWireSize(d.pieces)} B, ${d.pieces.length} pieces, literal ${d.stats.literalBytes} B | ` +
      `read base ${mib(d.stats.bytesReadBase)} new ${mib(d.stats.bytesReadNew)} MiB`)
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}

function mib (n: number): string {
  return (n / MiB).toFixed(1)
}
