// Part 4, codec: the two zstd implementations behind src/codec/zstd.ts,
// zstd-codec (emscripten, the stack's named package) and zstd-napi (native,
// an optional dependency, what a mount uses when it is installed), each as
// loadZstd gives it. Levels 1 and 3, 64 KiB text-like and random blocks:
// MB/s compress and decompress, and ratio.
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { type Compressor, type ZstdImplementation, loadZstd, zstdImplementation } from '../src/codec/zstd.js'
import { type BenchOptions, KiB, MiB, Report, nowMs, num, prng, summarize } from './lib/common.js'

interface Impl {
  name: string
  compress (raw: Uint8Array, level: number): Uint8Array
  decompress (data: Uint8Array, rawSize: number): Uint8Array
}

const BLOCK = 64 * KiB
const BLOCKS = 32
const REPEATS = 3

function textBlocks (n: number): Buffer[] {
  const rnd = prng(7)
  const words = ['the', 'file', 'sync', 'delta', 'block', 'journal', 'storage', 'node', 'mount', 'write', 'read', 'transaction',
    'function', 'return', 'const', 'await', 'import', 'export', 'interface', 'string', 'number', 'buffer', 'offset', 'length',
    'if', 'else', 'for', 'while', 'of', 'in', 'to', 'and', 'a', 'is', 'it', 'that', 'this', 'with', 'on', 'as', 'be']
  const out: Buffer[] = []
  for (let b = 0; b < n; b++) {
    let s = ''
    while (s.length < BLOCK) {
      let line = ' '.repeat(2 * Math.floor(rnd() * 4))
      const len = 3 + Math.floor(rnd() * 10)
      for (let i = 0; i < len; i++) line += words[Math.floor(Math.pow(rnd(), 2) * words.length)]! + (rnd() < 0.1 ? '(' + Math.floor(rnd() * 1000) + ')' : '') + ' '
      s += line.trimEnd() + (rnd() < 0.2 ? ';' : '') + '\n'
    }
    out.push(Buffer.from(s.slice(0, BLOCK), 'latin1'))
  }
  return out
}

/** An implementation as deltafs uses it (src/codec/zstd.ts loadZstd), one Compressor per level. */
async function impl (which: ZstdImplementation, version: string): Promise<Impl> {
  const byLevel = new Map<number, Compressor>()
  for (const level of [1, 3]) byLevel.set(level, await loadZstd(level, which))
  return {
    name: `${which} ${version}`,
    compress: (raw, level) => byLevel.get(level)!.compress(raw),
    decompress: (data, rawSize) => byLevel.get(1)!.decompress(data, rawSize),
  }
}

function versionOf (pkg: string): string {
  try {
    return (createRequire(import.meta.url)(`${pkg}/package.json`) as { version: string }).version
  } catch {
    return '?'
  }
}

/** Runs fn over the blocks repeatedly for about `seconds`; MB/s of `bytesPerPass`. */
function measure (seconds: number, bytesPerPass: number, fn: () => void): number {
  // Warm-up (JIT tiers, emscripten heap growth): a quarter of the time, at least one pass.
  const w0 = nowMs()
  do fn(); while (nowMs() - w0 < seconds * 250)
  const t0 = nowMs()
  let passes = 0
  do { fn(); passes++ } while (nowMs() - t0 < seconds * 1000)
  return bytesPerPass * passes / MiB / ((nowMs() - t0) / 1000)
}

export async function codec (opts: BenchOptions, report: Report): Promise<void> {
  report.heading('codec: zstd-codec (emscripten) vs native zstd-napi')
  const data: Record<string, Buffer[]> = {
    'text-like': textBlocks(BLOCKS),
    random: Array.from({ length: BLOCKS }, () => randomBytes(BLOCK)),
  }
  const impls: Impl[] = [await impl('zstd-codec', `${versionOf('zstd-codec')} (emscripten)`)]
  try {
    impls.push(await impl('zstd-napi', `${versionOf('zstd-napi')} (native)`))
  } catch (err) {
    report.line(`Native binding: not measured — ${(err as Error).message}.`)
  }
  report.line(`In use by a mount on this machine: **${zstdImplementation()}** (src/codec/zstd.ts; DELTAFS_ZSTD overrides).`)
  report.line(`Blocks: ${BLOCKS} × 64 KiB each of text-like (generated source-like lines) and random data; each figure is the median of ${REPEATS} measurements of ~${num(opts.codecSeconds / REPEATS)} s (after a warm-up) over all blocks, one block per call (one-shot API of each library). MB/s are of uncompressed bytes.`)

  const rows: string[][] = []
  const figures: Record<string, number> = {}
  for (const [kind, blocks] of Object.entries(data)) {
    const raw = blocks.reduce((s, b) => s + b.length, 0)
    for (const level of [1, 3]) {
      for (const impl of impls) {
        const packed = blocks.map(b => impl.compress(b, level))
        const out = packed.reduce((s, p) => s + p.length, 0)
        packed.forEach((p, i) => { if (!Buffer.from(impl.decompress(p, blocks[i]!.length)).equals(blocks[i]!)) throw new Error(`${impl.name}: round trip failed`) })
        const c: number[] = []
        const d: number[] = []
        for (let r = 0; r < REPEATS; r++) {
          c.push(measure(opts.codecSeconds / REPEATS, raw, () => { for (const b of blocks) impl.compress(b, level) }))
          d.push(measure(opts.codecSeconds / REPEATS, raw, () => { packed.forEach((p, i) => impl.decompress(p, blocks[i]!.length)) }))
        }
        const cm = summarize(c)!.median
        const dm = summarize(d)!.median
        figures[`${impl.name}|${kind}|${level}|c`] = cm
        figures[`${impl.name}|${kind}|${level}|d`] = dm
        rows.push([impl.name, kind, String(level), `**${num(cm)}**`, `**${num(dm)}**`, (raw / out).toFixed(3)])
        report.progress(`${impl.name} ${kind} level ${level}: compress ${num(cm)} MB/s, decompress ${num(dm)} MB/s, ratio ${(raw / out).toFixed(3)}`)
      }
    }
  }
  report.table(['library', 'data', 'level', 'compress MB/s', 'decompress MB/s', 'ratio (raw/compressed)'], rows)
  if (impls.length === 2) {
    const [e, n] = impls as [Impl, Impl]
    const rr: string[][] = []
    for (const kind of Object.keys(data)) {
      for (const level of [1, 3]) {
        rr.push([kind, String(level),
          `${(figures[`${n.name}|${kind}|${level}|c`]! / figures[`${e.name}|${kind}|${level}|c`]!).toFixed(2)}×`,
          `${(figures[`${n.name}|${kind}|${level}|d`]! / figures[`${e.name}|${kind}|${level}|d`]!).toFixed(2)}×`])
      }
    }
    report.line('Native / emscripten speed ratio:')
    report.table(['data', 'level', 'compress', 'decompress'], rr)
  }
}
