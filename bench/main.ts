// deltafs benchmark harness.
//
//   node dist/bench/main.js throughput|latency|ingest|codec|wire|memory|profile|delta|all [options]
//   npm run bench -- <part> [options]
//
// Each part prints its figures, with ratios against baselines measured in the
// same run, and appends a Markdown section to bench/RESULTS.md (machine, date,
// commit, parameters). `all` runs the first five parts; memory (10 GiB stream +
// 100,000 files: about 10–15 minutes on 2 cores) and profile are only run when
// named. Every process it starts is stopped by PID and every
// mount unmounted at the end, also on failure.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { type BenchOptions, GiB, MiB, Report, fmtBytes, parseSize, repoRoot } from './lib/common.js'
import { ALL_TARGETS, ALL_TESTS, DEFAULT_TARGETS, throughput } from './throughput.js'
import { latency } from './latency.js'
import { ingest } from './ingest.js'
import { codec } from './codec.js'
import { wire } from './wire.js'
import { memory } from './memory.js'
import { profile } from './profile.js'
import { delta } from './delta.js'
import { runAllCleanups } from './lib/procs.js'

const PARTS = ['throughput', 'latency', 'ingest', 'codec', 'wire', 'memory', 'profile', 'delta'] as const
type Part = typeof PARTS[number]
/** What `all` runs: memory and profile take long or leave profiles behind, so only when named. */
const ALL_PARTS: Part[] = ['throughput', 'latency', 'ingest', 'codec', 'wire']

const USAGE = `usage: node dist/bench/main.js <part>... [options]
parts: ${PARTS.join(' | ')} | all (= ${ALL_PARTS.join(' ')})
options:
  --size N          big-file size for throughput (seq), wire, profile and delta case 5 (default 1G; e.g. 64M)
  --runs N          runs per throughput measurement, per ingest configuration and per bindfs reference in profile, min/median/max (default 3)
  --changes N       latency: number of changes (default 1000)
  --files N         throughput: files for the create test (default 5000)
  --rand-ops N      throughput: 4 KiB random pwrite's (default 20000)
  --rand-file N     throughput: file size for random writes (default 256M)
  --tree-files N    throughput: files in the git/tar tree (default 2000)
  --tests LIST      throughput: comma list of ${ALL_TESTS.join(',')} (default all)
  --targets LIST    throughput: comma list of ${ALL_TARGETS.join(',')} (default ${DEFAULT_TARGETS.join(',')}; deltafs-attr0 = deltafs with --attr-cache 0)
  --ingest-tx N     ingest: transactions per run (default 20000; env DELTAFS_BENCH_NODE_ARGS: node options for the storage node)
  --ingest-seconds N ingest: time cap per run (default 10)
  --ingest-sizes L  ingest: comma list of transaction data sizes (default 1K,64K)
  --ingest-pushers L ingest: comma list of pusher counts (default 1,4,16)
  --fanout-tx N     ingest: transactions for fan-out latency (default 1000)
  --codec-seconds N codec: seconds per measurement (default 1)
  --stream-size N   memory: bytes streamed through a mount (default 10G; shrunk to fit the free disk)
  --small-files N   memory: files of 100 B created through a mount (default 100000)
  --prof-dir DIR    profile: where the .cpuprofile files are kept (default a new deltafs-profiles-* in the temp dir)
  --no-perf         profile: skip the perf record of all threads (default: on when perf is installed)
  --no-record       do not append to bench/RESULTS.md
  --results FILE    append to FILE instead of bench/RESULTS.md
  --keep            keep the temp directory
`

function parseArgs (argv: string[]): { parts: Part[]; opts: BenchOptions; argsText: string; resultsFile: string } {
  const opts: BenchOptions = {
    size: GiB, runs: 3, changes: 1000, files: 5000, randOps: 20_000, randFile: 256 * MiB, treeFiles: 2000,
    ingestTx: 20_000, ingestSeconds: 10, ingestSizes: [1024, 64 * 1024], ingestPushers: [1, 4, 16], fanoutTx: 1000, tests: [...ALL_TESTS], targets: [...DEFAULT_TARGETS],
    codecSeconds: 1, record: true, keep: false,
    streamSize: 10 * GiB, smallFiles: 100_000, perf: true,
  }
  const parts: Part[] = []
  let resultsFile = path.join(repoRoot, 'bench', 'RESULTS.md')
  const positiveInt = (flag: string, v: string | undefined): number => {
    const n = Number(v)
    if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} needs a positive integer, got "${v ?? ''}"`)
    return n
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined]
    const value = (): string => {
      if (inline !== undefined) return inline
      const v = argv[++i]
      if (v === undefined) throw new Error(`${flag} needs a value`)
      return v
    }
    switch (flag) {
      case '--size': opts.size = parseSize(value()); break
      case '--runs': opts.runs = positiveInt(flag, value()); break
      case '--changes': opts.changes = positiveInt(flag, value()); break
      case '--files': opts.files = positiveInt(flag, value()); break
      case '--rand-ops': opts.randOps = positiveInt(flag, value()); break
      case '--rand-file': opts.randFile = parseSize(value()); break
      case '--tree-files': opts.treeFiles = positiveInt(flag, value()); break
      case '--tests': opts.tests = value().split(',').filter(Boolean); break
      case '--targets': opts.targets = value().split(',').filter(Boolean); break
      case '--ingest-tx': opts.ingestTx = positiveInt(flag, value()); break
      case '--ingest-seconds': opts.ingestSeconds = positiveInt(flag, value()); break
      case '--ingest-sizes': opts.ingestSizes = value().split(',').filter(Boolean).map(parseSize); break
      case '--ingest-pushers': opts.ingestPushers = value().split(',').filter(Boolean).map(v => positiveInt(flag, v)); break
      case '--fanout-tx': opts.fanoutTx = positiveInt(flag, value()); break
      case '--codec-seconds': opts.codecSeconds = Number(value()); break
      case '--stream-size': opts.streamSize = parseSize(value()); break
      case '--small-files': opts.smallFiles = positiveInt(flag, value()); break
      case '--prof-dir': opts.profDir = path.resolve(value()); break
      case '--no-perf': opts.perf = false; break
      case '--no-record': opts.record = false; break
      case '--results': resultsFile = path.resolve(value()); break
      case '--keep': opts.keep = true; break
      case '-h': case '--help': process.stdout.write(USAGE); process.exit(0); break
      default:
        if (a === 'all') parts.push(...ALL_PARTS)
        else if ((PARTS as readonly string[]).includes(a)) parts.push(a as Part)
        else throw new Error(`unknown argument "${a}"`)
    }
  }
  for (const t of opts.tests) if (!ALL_TESTS.includes(t)) throw new Error(`unknown throughput test "${t}" (${ALL_TESTS.join(', ')})`)
  for (const t of opts.targets) if (!ALL_TARGETS.includes(t)) throw new Error(`unknown throughput target "${t}" (${ALL_TARGETS.join(', ')})`)
  if (parts.length === 0) throw new Error('name at least one part')
  return { parts: [...new Set(parts)], opts, argsText: argv.join(' '), resultsFile }
}

function gitCommit (): string {
  // For a build outside the repository (e.g. a snapshot of HEAD in /tmp), the caller says what it is.
  if (process.env.DELTAFS_BENCH_COMMIT) return process.env.DELTAFS_BENCH_COMMIT
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8', timeout: 10_000 }).trim()
    let dirty = false
    try { execFileSync('git', ['diff', '--quiet', 'HEAD', '--', 'src'], { cwd: repoRoot, timeout: 10_000 }) } catch { dirty = true }
    return dirty ? `${head} (src/ has uncommitted changes)` : head
  } catch { return 'unknown' }
}

function machine (): string[] {
  const cpu = os.cpus()
  return [
    `- machine: ${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${(os.totalmem() / GiB).toFixed(1)} GiB memory, kernel ${os.release()}, node ${process.version}`,
    `- temp filesystem: ${os.tmpdir()}`,
    `- date: ${new Date().toISOString()}`,
    `- load average at the start (1/5/15 min): ${os.loadavg().map(x => x.toFixed(2)).join(' / ')}`,
    `- commit: ${gitCommit()}`,
  ]
}

function describe (parts: Part[], o: BenchOptions): string[] {
  const out: string[] = []
  for (const p of parts) {
    if (p === 'throughput') out.push(`- throughput: tests ${o.tests.join(',')}, targets ${o.targets.join(',')}, --size ${fmtBytes(o.size)}, --runs ${o.runs}, --files ${o.files}, --rand-ops ${o.randOps}, --rand-file ${fmtBytes(o.randFile)}, --tree-files ${o.treeFiles}`)
    if (p === 'latency') out.push(`- latency: --changes ${o.changes}, sizes 100 B to 1 MiB (log-uniform)`)
    if (p === 'ingest') out.push(`- ingest: --ingest-tx ${o.ingestTx} per run, --ingest-seconds ${o.ingestSeconds}, --ingest-sizes ${o.ingestSizes.map(fmtBytes).join(',')}, --ingest-pushers ${o.ingestPushers.join(',')}, --runs ${o.runs}, --fanout-tx ${o.fanoutTx}${process.env.DELTAFS_BENCH_NODE_ARGS ? `, DELTAFS_BENCH_NODE_ARGS=${process.env.DELTAFS_BENCH_NODE_ARGS}` : ''}`)
    if (p === 'codec') out.push(`- codec: --codec-seconds ${o.codecSeconds}, 64 KiB blocks, both implementations from node_modules`)
    if (p === 'wire') out.push(`- wire: --size ${fmtBytes(o.size)}`)
    if (p === 'memory') out.push(`- memory: --stream-size ${fmtBytes(o.streamSize)}, --small-files ${o.smallFiles}`)
    if (p === 'delta') out.push(`- delta: --size ${fmtBytes(o.size)} (case 5), --runs ${o.runs}, text ${process.env.DELTAFS_BENCH_DELTA_TEXT ?? '100M'} (DELTAFS_BENCH_DELTA_TEXT)`)
    if (p === 'profile') out.push(`- profile: --size ${fmtBytes(o.size)}, 1 MiB writes, bindfs reference --runs ${o.runs}${o.profDir ? `, --prof-dir ${o.profDir}` : ''}${o.perf ? '' : ', --no-perf'}`)
  }
  return out
}

async function main (): Promise<number> {
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  const { parts, opts, argsText, resultsFile } = parsed
  const report = new Report()
  const header = [`## ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC — \`${argsText}\``, '', ...machine(), ...describe(parts, opts)]
  process.stdout.write(header.join('\n').replace(/`/g, '') + '\n')
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'deltafs-bench-'))
  let failures = 0
  // Ctrl-C / SIGTERM: stop what the running part started (by PID), unmount, then exit.
  let interrupted = false
  const onSignal = (signal: string): void => {
    if (interrupted) process.exit(130)
    interrupted = true
    process.stderr.write(`\n${signal}: stopping the benchmark's processes and unmounting (again to force)\n`)
    void runAllCleanups().finally(() => {
      if (!opts.keep) fs.rmSync(base, { recursive: true, force: true })
      process.exit(130)
    })
  }
  process.on('SIGINT', () => onSignal('SIGINT'))
  process.on('SIGTERM', () => onSignal('SIGTERM'))
  const t0 = Date.now()
  for (const part of parts) {
    const started = Date.now()
    try {
      if (part === 'throughput') await throughput(opts, report, base)
      if (part === 'latency') await latency(opts, report, base)
      if (part === 'ingest') await ingest(opts, report, base)
      if (part === 'codec') await codec(opts, report)
      if (part === 'wire') await wire(opts, report, base)
      if (part === 'memory') await memory(opts, report, base)
      if (part === 'profile') await profile(opts, report, base)
      if (part === 'delta') await delta(opts, report, base)
      report.line(`\n_${part} took ${((Date.now() - started) / 1000).toFixed(0)} s._`)
    } catch (err) {
      failures++
      report.line(`\n**${part} FAILED:** ${(err as Error).message.split('\n').slice(0, 5).join(' ')}`)
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
    }
    if (interrupted) break
  }
  report.line(`_Load average at the end (1/5/15 min): ${os.loadavg().map(x => x.toFixed(2)).join(' / ')}._`)
  process.stdout.write(`\ntotal ${((Date.now() - t0) / 1000).toFixed(0)} s\n`)
  if (opts.keep) process.stdout.write(`kept ${base}\n`)
  else fs.rmSync(base, { recursive: true, force: true })
  if (opts.record) {
    const file = resultsFile
    if (!fs.existsSync(file)) fs.writeFileSync(file, '# deltafs benchmark results\n\nAppended by `node dist/bench/main.js` (see bench/main.ts for the parts and options). Newest last.\n')
    fs.appendFileSync(file, '\n' + [...header, '', ...report.md].join('\n').replace(/\n{3,}/g, '\n\n').trimEnd() + '\n')
    process.stdout.write(`appended to ${file}\n`)
  }
  return failures > 0 ? 1 : 0
}

main().then(code => process.exit(code), err => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
