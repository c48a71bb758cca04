// Small helpers shared by the benchmark parts: options, statistics,
// formatting, bounded waits, child commands with timeouts, and a report that
// prints as it goes and collects Markdown for bench/RESULTS.md.
import { type ChildProcess, spawn } from 'node:child_process'
import fs from 'node:fs'
import { fileURLToPath } from 'node:url'

/** dist/bench/lib/common.js → the repository root. */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url))

export const KiB = 1024
export const MiB = 1024 * KiB
export const GiB = 1024 * MiB

export interface BenchOptions {
  /** Big-file size for throughput (sequential) and wire. */
  size: number
  runs: number
  /** latency: number of changes. */
  changes: number
  /** throughput: files for the create test. */
  files: number
  /** throughput: pwrite count and file size for the random-write test. */
  randOps: number
  randFile: number
  /** throughput: files in the tree cloned/untarred. */
  treeFiles: number
  /** ingest: transactions per configuration and seconds per configuration. */
  ingestTx: number
  ingestSeconds: number
  /** ingest: transaction data sizes and pusher counts to run (all combinations). */
  ingestSizes: number[]
  ingestPushers: number[]
  /** ingest: fan-out transactions. */
  fanoutTx: number
  /** throughput: which tests and which targets. */
  tests: string[]
  targets: string[]
  /** codec: seconds per measurement. */
  codecSeconds: number
  /** memory: bytes streamed through a mount, and small files created through one. */
  streamSize: number
  smallFiles: number
  /** profile: where the .cpuprofile files go (kept); default a new dir under os.tmpdir(). */
  profDir?: string
  /** profile: also `perf record` both daemons (all threads) when perf is installed. */
  perf: boolean
  /** Append to bench/RESULTS.md. */
  record: boolean
  /** Keep the temp dir (for debugging). */
  keep: boolean
}

export function parseSize (s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)?$/i.exec(s.trim())
  if (!m) throw new Error(`bad size "${s}" (examples: 64M, 1G, 512K, 4096)`)
  const mult = { '': 1, k: KiB, m: MiB, g: GiB, t: 1024 * GiB }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't']
  return Math.round(Number(m[1]) * mult)
}

export function fmtBytes (n: number): string {
  const units: Array<[number, string]> = [[GiB, 'GiB'], [MiB, 'MiB'], [KiB, 'KiB']]
  for (const [u, name] of units) {
    if (Math.abs(n) >= u) return `${Number.isInteger(n / u) ? n / u : (n / u).toFixed(2)} ${name}`
  }
  return `${n} B`
}

/** Three significant digits, no exponent. */
export function num (x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return 'n/a'
  if (x === 0) return '0'
  const a = Math.abs(x)
  if (a >= 1000) return Math.round(x).toString()
  if (a >= 100) return x.toFixed(0)
  if (a >= 10) return x.toFixed(1)
  if (a >= 1) return x.toFixed(2)
  return x.toPrecision(3)
}

export function ratio (a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return 'n/a'
  return `${(a / b).toFixed(2)}×`
}

export interface Summary { min: number; median: number; max: number; n: number }

export function summarize (xs: number[]): Summary | undefined {
  if (xs.length === 0) return undefined
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
  return { min: s[0]!, median, max: s[s.length - 1]!, n: s.length }
}

/** Nearest-rank percentile of an unsorted sample, p in (0, 100]. */
export function percentile (xs: number[], p: number): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)))
  return s[rank - 1]!
}

export function fmtSummary (s: Summary | undefined, digits = num): string {
  if (!s) return 'n/a'
  if (s.n === 1) return digits(s.median)
  return `${digits(s.min)} / **${digits(s.median)}** / ${digits(s.max)}`
}

export function nowMs (): number { return Number(process.hrtime.bigint()) / 1e6 }

export async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

/** Polls fn until it returns a truthy value; throws after timeoutMs. */
export async function waitFor<T> (what: string, fn: () => T | Promise<T>, timeoutMs: number, everyMs = 20): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  let lastErr: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v) return v as NonNullable<T>
    } catch (err) { lastErr = err }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`)
    await sleep(everyMs)
  }
}

/** Rejects after ms with a message naming what was awaited. */
export async function withTimeout<T> (what: string, p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
    })])
  } finally { clearTimeout(timer) }
}

const running = new Set<ChildProcess>()

/** SIGKILLs, by PID, every command runCmd started that is still running (on SIGINT/SIGTERM). */
export function killRunningCommands (): void {
  for (const child of running) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try { process.kill(child.pid, 'SIGKILL') } catch { /* gone */ }
    }
  }
}

export interface CmdResult { code: number | null; signal: string | null; stdout: string; stderr: string; ms: number }

/**
 * Runs a command with a hard timeout (SIGKILL by PID when it expires) and
 * returns its output and wall time. Throws when it fails unless allowFail.
 */
export async function runCmd (cmd: string, args: string[], opts: { timeoutMs: number; cwd?: string; allowFail?: boolean; env?: NodeJS.ProcessEnv }): Promise<CmdResult> {
  const t0 = nowMs()
  const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c })
  child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr = (stderr + c).slice(-20_000) })
  let timedOut = false
  const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL') }, opts.timeoutMs)
  running.add(child)
  child.once('exit', () => running.delete(child))
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (c, s) => resolve([c, s]))
  }).finally(() => clearTimeout(timer))
  const ms = nowMs() - t0
  const res = { code, signal, stdout, stderr, ms }
  if (timedOut) throw new Error(`${cmd} ${args.join(' ')}: killed after ${opts.timeoutMs} ms timeout`)
  if (!opts.allowFail && code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${code ?? signal}: ${stderr.trim().slice(-2000)}`)
  return res
}

/** Deterministic PRNG (mulberry32) so every target gets the same offsets and sizes. */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

let dropState: 'unknown' | 'ok' | string = 'unknown'

/** sync, then drop the page cache if permitted. Returns true when dropped. */
export async function dropCaches (): Promise<boolean> {
  await runCmd('sync', [], { timeoutMs: 120_000, allowFail: true })
  if (dropState !== 'unknown' && dropState !== 'ok') return false
  try {
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3\n')
    dropState = 'ok'
    return true
  } catch (err) {
    dropState = `not permitted (${(err as NodeJS.ErrnoException).code ?? String(err)})`
    return false
  }
}

export function dropCachesState (): string {
  return dropState === 'ok' ? 'dropped (echo 3 > /proc/sys/vm/drop_caches, after sync)' : dropState === 'unknown' ? 'not tried' : dropState
}

/** Prints as it goes and keeps Markdown for RESULTS.md. */
export class Report {
  readonly md: string[] = []

  /** One blank line between Markdown blocks, never two. */
  private blank (): void {
    if (this.md.length > 0 && this.md[this.md.length - 1] !== '') this.md.push('')
  }

  heading (text: string): void {
    process.stdout.write(`\n=== ${text} ===\n`)
    this.blank()
    this.md.push(`### ${text}`, '')
  }

  /** A paragraph. */
  line (text: string): void {
    process.stdout.write(text.replace(/\*\*/g, '') + '\n')
    if (text.trim() === '') { this.blank(); return }
    this.md.push(text.trim(), '')
  }

  /** A note printed to the console only. */
  progress (text: string): void {
    process.stdout.write(`  … ${text}\n`)
  }

  table (headers: string[], rows: string[][]): void {
    const plain = (s: string): string => s.replace(/\*\*/g, '')
    const widths = headers.map((h, i) => Math.max(plain(h).length, ...rows.map(r => plain(r[i] ?? '').length)))
    const fmt = (cells: string[]): string => cells.map((c, i) => plain(c).padEnd(widths[i]!)).join('  ')
    process.stdout.write(fmt(headers) + '\n' + widths.map(w => '-'.repeat(w)).join('  ') + '\n')
    for (const r of rows) process.stdout.write(fmt(r) + '\n')
    this.blank()
    this.md.push(`| ${headers.join(' | ')} |`, `|${headers.map(() => '---').join('|')}|`)
    for (const r of rows) this.md.push(`| ${r.join(' | ')} |`)
    this.md.push('')
  }
}
