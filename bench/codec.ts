// Part 4, codec: zstd-codec (emscripten; what deltafs uses through
// src/codec/zstd.ts loadZstd) against the native zstd-napi binding when it
// can be installed outside the repository (default /tmp/zstd-bench, imported
// by absolute path, never added to package.json). Levels 1 and 3, 64 KiB
// text-like and random blocks: MB/s compress and decompress, and ratio.
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import zc from 'zstd-codec'
import { loadZstd } from '../src/codec/zstd.js'
import { type BenchOptions, KiB, MiB, Report, nowMs, num, prng, runCmd, summarize } from './lib/common.js'

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

async function zstdCodecImpl (): Promise<Impl> {
  const simple = await new Promise<{ compress (d: Uint8Array, l?: number): Uint8Array | null; decompress (d: Uint8Array): Uint8Array | null }>(resolve => {
    zc.ZstdCodec.run(binding => resolve(new binding.Simple()))
  })
  return {
    name: 'zstd-codec 0.1.5 (emscripten)',
    compress: (raw, level) => simple.compress(raw, level)!,
    decompress: data => simple.decompress(data)!,
  }
}

interface ZstdNapi {
  compress (data: Uint8Array, params?: { compressionLevel?: number }): Buffer
  decompress (data: Uint8Array): Buffer
}

async function nativeImpl (opts: BenchOptions, report: Report): Promise<Impl | string> {
  const dir = opts.nativeDir
  const pkg = path.join(dir, 'node_modules', 'zstd-napi', 'package.json')
  if (!fs.existsSync(pkg)) {
    if (opts.noInstall) return `zstd-napi not found in ${dir} (--no-install given)`
    report.progress(`installing zstd-napi into ${dir} (outside the repository): npm install --prefix ${dir} zstd-napi`)
    fs.mkdirSync(dir, { recursive: true })
    if (!fs.existsSync(path.join(dir, 'package.json'))) fs.writeFileSync(path.join(dir, 'package.json'), '{"name":"zstd-bench","private":true}\n')
    const r = await runCmd('npm', ['install', '--prefix', dir, '--no-audit', '--no-fund', 'zstd-napi'], { timeoutMs: 300_000, allowFail: true })
    if (r.code !== 0) return `npm install zstd-napi failed: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`
  }
  try {
    const req = createRequire(path.join(dir, 'package.json'))
    const z = req(path.join(dir, 'node_modules', 'zstd-napi')) as ZstdNapi
    const version = (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { version: string }).version
    return {
      name: `zstd-napi ${version} (native)`,
      compress: (raw, level) => z.compress(raw, { compressionLevel: level }),
      decompress: data => z.decompress(data),
    }
  } catch (err) {
    return `zstd-napi does not load: ${(err as Error).message.split('\n')[0]}`
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
  const impls: Impl[] = [await zstdCodecImpl()]
  const native = await nativeImpl(opts, report)
  if (typeof native === 'string') report.line(`Native binding: not measured — ${native}.`)
  else impls.push(native)

  // deltafs's own entry point: loadZstd(level) as src/codec/codec.ts uses it.
  const l1 = await loadZstd(1)
  const l3 = await loadZstd(3)
  const sample = data['text-like']![0]!
  const viaLoad1 = l1.compress(sample).length
  const viaLoad3 = l3.compress(sample).length
  const direct3 = impls[0]!.compress(sample, 3).length
  report.line(`Blocks: ${BLOCKS} × 64 KiB each of text-like (generated source-like lines) and random data; each figure is the median of ${REPEATS} measurements of ~${num(opts.codecSeconds / REPEATS)} s (after a warm-up) over all blocks, one block per call (one-shot API of each library). MB/s are of uncompressed bytes.`)
  report.line(`deltafs path check: \`loadZstd(1)\` compresses the first text block to ${viaLoad1} B; \`loadZstd(3)\` to ${viaLoad3} B; zstd-codec level 3 directly to ${direct3} B${viaLoad3 === viaLoad1 && direct3 !== viaLoad1 ? ' → **loadZstd ignores its level after the first call** (it caches the first Compressor)' : ''}.`)

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
