// Part 1, throughput: the same I/O through a deltafs mount (storage node +
// one mount, capture on), through bindfs (a C FUSE passthrough) and on the
// raw backing directory, all on the filesystem of os.tmpdir(). Every I/O job
// runs in its own process (dist/bench/worker.js, git, tar), never inside a
// mount daemon.
import fs from 'node:fs'
import path from 'node:path'
import {
  type BenchOptions, MiB, Report, dropCaches, dropCachesState, fmtBytes, fmtSummary, num, ratio, repoRoot,
  runCmd, sleep, summarize, type Summary,
} from './lib/common.js'
import { Cleanup, type MountHandle, drain, procCpuSeconds, procIo, procRss, runWorker, startBindfs, startFuseFloor, startMount, startNode } from './lib/procs.js'

interface Target {
  name: string
  /** Where the I/O happens. */
  dir: string
  /** Waits until the target is quiet (deltafs: outbox empty); ms waited. */
  settle (timeoutMs: number): Promise<number>
  pid?: number
  /** deltafs: the mount daemon and the storage node, for CPU and disk-write accounting. */
  daemons?: Array<{ name: string; pid: number }>
}

export const ALL_TESTS = ['seq', 'rand', 'create', 'git', 'tar']
export const ALL_TARGETS = ['raw', 'bindfs', 'bindfs-bw', 'fuse-native', 'fuse-native-cached', 'deltafs', 'deltafs-attr0']
/** Not run by default: deltafs with the kernel's attribute cache off, to show what `--attr-cache` buys. */
export const DEFAULT_TARGETS = ALL_TARGETS.filter(t => t !== 'deltafs-attr0')
/** Options deltafs mounts with (src/fs/fuse-session.ts), given to the second bindfs so the comparison is like for like. */
export const BIG_WRITES = ['big_writes', 'max_write=131072', 'max_read=131072']

function which (cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some(d => { try { fs.accessSync(path.join(d, cmd), fs.constants.X_OK); return true } catch { return false } })
}

export async function ensureBindfs (report: Report): Promise<void> {
  if (which('bindfs')) return
  report.progress('bindfs is missing: apt-get install -y bindfs')
  await runCmd('apt-get', ['install', '-y', 'bindfs'], { timeoutMs: 300_000, env: { DEBIAN_FRONTEND: 'noninteractive' } })
}

/** A tree of about n small files from node_modules, as a git repository and a tarball. */
async function makeTree (base: string, n: number): Promise<{ repo: string; tarball: string; files: number; bytes: number }> {
  const tree = path.join(base, 'tree-src')
  const nm = path.join(repoRoot, 'node_modules')
  let files = 0
  let bytes = 0
  const walk = (rel: string): void => {
    if (files >= n) return
    let entries: fs.Dirent[]
    try { entries = fs.readdirSync(path.join(nm, rel), { withFileTypes: true }) } catch { return }
    entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
    for (const e of entries) {
      if (files >= n) return
      const r = path.join(rel, e.name)
      if (e.isDirectory()) {
        if (e.name !== '.bin' && e.name !== '.git') walk(r)
      } else if (e.isFile()) {
        const src = path.join(nm, r)
        const size = fs.statSync(src).size
        if (size > 256 * 1024) continue
        fs.mkdirSync(path.join(tree, rel), { recursive: true })
        fs.copyFileSync(src, path.join(tree, r))
        files++
        bytes += size
      }
    }
  }
  walk('')
  const git = (args: string[]): Promise<unknown> => runCmd('git', ['-c', 'user.name=bench', '-c', 'user.email=bench@localhost', '-c', 'init.defaultBranch=main', ...args], { cwd: tree, timeoutMs: 120_000 })
  await git(['init', '-q'])
  await git(['add', '-A'])
  await git(['commit', '-q', '-m', 'bench tree'])
  const tarball = path.join(base, 'tree.tar')
  await runCmd('tar', ['cf', tarball, '--exclude=.git', '-C', tree, '.'], { timeoutMs: 120_000 })
  return { repo: tree, tarball, files, bytes }
}

/** Polls the RSS of a process while fn runs; returns fn's result and the peak. */
async function withRssPeak<T> (pid: number | undefined, fn: () => Promise<T>): Promise<[T, number]> {
  let peak = 0
  let stop = false
  const sampler = (async () => {
    while (!stop && pid !== undefined) {
      try { peak = Math.max(peak, procRss(pid)) } catch { break }
      await sleep(100)
    }
  })()
  try {
    return [await fn(), peak]
  } finally {
    stop = true
    await sampler
  }
}

type Samples = Record<string, number[]>
function push (s: Samples, key: string, v: number): void { (s[key] ??= []).push(v) }

export async function throughput (opts: BenchOptions, report: Report, base: string): Promise<void> {
  const cleanup = new Cleanup()
  const tests = opts.tests
  const targetNames = opts.targets
  report.heading('throughput: deltafs mount vs bindfs vs raw directory')
  try {
    if (targetNames.some(t => t.startsWith('bindfs'))) await ensureBindfs(report)
    const dir = path.join(base, 'throughput')
    fs.mkdirSync(dir, { recursive: true })

    const targets: Target[] = []
    let dfs: MountHandle | undefined
    for (const name of targetNames) {
      if (name === 'raw') {
        const d = path.join(dir, 'raw')
        fs.mkdirSync(d, { recursive: true })
        targets.push({ name, dir: d, settle: async () => 0 })
      } else if (name === 'bindfs' || name === 'bindfs-bw') {
        const b = await startBindfs(cleanup, path.join(dir, `${name}-src`), path.join(dir, `${name}-mnt`), name === 'bindfs' ? [] : BIG_WRITES, path.join(dir, `${name}.log`))
        targets.push({ name, dir: b.mountpoint, settle: async () => 0, pid: b.pid })
      } else if (name === 'fuse-native' || name === 'fuse-native-cached') {
        const f = await startFuseFloor(cleanup, path.join(dir, `${name}-src`), path.join(dir, `${name}-mnt`), path.join(dir, `${name}.log`), name === 'fuse-native-cached')
        targets.push({ name, dir: f.mountpoint, settle: async () => 0, pid: f.pid })
      } else if (name === 'deltafs' || name === 'deltafs-attr0') {
        const node = await startNode(cleanup, path.join(dir, `${name}-node`))
        const m = await startMount(cleanup, 'bench', path.join(dir, `${name}-mnt`), path.join(dir, `${name}-data`), node.address, [], name === 'deltafs' ? [] : ['--attr-cache', '0'])
        if (name === 'deltafs') dfs = m
        targets.push({ name, dir: m.mountpoint, settle: (timeoutMs) => drain(m, timeoutMs), pid: m.pid, daemons: [{ name: 'mount', pid: m.pid }, { name: 'node', pid: node.pid }] })
      } else {
        throw new Error(`unknown target "${name}" (targets: ${ALL_TARGETS.join(', ')})`)
      }
    }
    report.line(`Targets: ${targets.map(t => `\`${t.name}\``).join(', ')} — all under \`${dir}\` (same filesystem). ` +
      '`raw` = the directory itself; `bindfs` = `bindfs -f SRC MNT` (Debian bindfs 1.14.7 on libfuse2, single-threaded, no big_writes: 4 KiB writes); ' +
      `\`bindfs-bw\` = bindfs with \`-o ${BIG_WRITES.join(',')}\` (the options deltafs mounts with); ` +
      '`fuse-native` = the fuse-native session and passthrough of a deltafs mount with nothing captured (`dist/bench/fuse-floor.js`): the binding\'s floor; ' +
      '`fuse-native-cached` = that floor with names found and missing cached for 1 s (`entry_timeout=1,negative_timeout=1`, libfuse\'s defaults, which bindfs has), where deltafs caches neither: what close-to-open coherence costs; ' +
      '`deltafs` = `deltafs serve` + `deltafs mount` (capture on), each its own process. I/O runs in separate processes (`dist/bench/worker.js`, `git`, `tar`).')
    report.line(`Runs: ${opts.runs}; figures are min / **median** / max when runs > 1. Target order rotates every run.`)

    const order = (run: number): Target[] => targets.map((_t, i) => targets[(i + run) % targets.length]!)
    const results: Record<string, Samples> = Object.fromEntries(targets.map(t => [t.name, {}]))
    const drainTimeout = (bytes: number): number => Math.max(60_000, bytes / (2 * MiB) * 1000)

    if (tests.includes('seq')) {
      const size = opts.size
      report.progress(`sequential ${fmtBytes(size)} write + read, 1 MiB blocks`)
      for (let run = 0; run < opts.runs; run++) {
        for (const t of order(run)) {
          const file = path.join(t.dir, `seq-${run}.bin`)
          await dropCaches()
          const before = (t.daemons ?? []).map(d => ({ ...d, io: procIo(d.pid), cpu: procCpuSeconds(d.pid) }))
          const [w, peak] = await withRssPeak(t.pid, () => runWorker('seqwrite', { file, size, block: MiB }, Math.max(120_000, size / (2 * MiB) * 1000)))
          push(results[t.name]!, 'seqWrite', size / MiB / (w.ms / 1000))
          if (t.pid !== undefined) push(results[t.name]!, 'rssPeak', peak / MiB)
          const drained = await t.settle(drainTimeout(size))
          if (t.name === 'deltafs') push(results[t.name]!, 'seqDrain', drained / 1000)
          for (const d of before) {
            // Disk writes (write_bytes) per byte the application wrote, and CPU seconds, from the start of the write until the outbox drained.
            push(results[t.name]!, `${d.name}WriteAmp`, (procIo(d.pid).writeBytes - d.io.writeBytes) / size)
            push(results[t.name]!, `${d.name}Cpu`, procCpuSeconds(d.pid) - d.cpu)
          }
          await dropCaches()
          const r = await runWorker('seqread', { file, block: MiB }, Math.max(120_000, size / (2 * MiB) * 1000))
          if (r.bytes !== size) throw new Error(`${t.name}: read ${r.bytes} bytes back, wrote ${size}`)
          push(results[t.name]!, 'seqRead', size / MiB / (r.ms / 1000))
          fs.rmSync(file)
          await t.settle(60_000)
          report.progress(`run ${run + 1} ${t.name}: write ${num(size / MiB / (w.ms / 1000))} MB/s, read ${num(size / MiB / (r.ms / 1000))} MB/s${t.name === 'deltafs' ? `, outbox drained ${num(drained / 1000)} s after the write` : ''}`)
        }
      }
    }

    if (tests.includes('rand')) {
      report.progress(`random 4 KiB writes: ${opts.randOps} pwrite's in a ${fmtBytes(opts.randFile)} file, then fsync`)
      for (const t of targets) {
        await runWorker('seqwrite', { file: path.join(t.dir, 'rand.bin'), size: opts.randFile, block: MiB }, Math.max(120_000, opts.randFile / MiB * 2000))
        await t.settle(drainTimeout(opts.randFile))
      }
      for (let run = 0; run < opts.runs; run++) {
        for (const t of order(run)) {
          await runCmd('sync', [], { timeoutMs: 120_000 })
          const r = await runWorker('randwrite', { file: path.join(t.dir, 'rand.bin'), fileSize: opts.randFile, count: opts.randOps, block: 4096, seed: run + 1 }, 600_000)
          push(results[t.name]!, 'randOps', opts.randOps / (r.ms / 1000))
          const drained = await t.settle(drainTimeout(opts.randOps * 4096 * 4))
          if (t.name === 'deltafs') push(results[t.name]!, 'randDrain', drained / 1000)
          report.progress(`run ${run + 1} ${t.name}: ${num(opts.randOps / (r.ms / 1000))} writes/s (${num(r.ms)} ms, of which fsync ${num(r.ms - (r.writesMs ?? 0))} ms)`)
        }
      }
    }

    if (tests.includes('create')) {
      report.progress(`creates: ${opts.files} files of 100 bytes (open O_CREAT|O_EXCL, write, close)`)
      for (let run = 0; run < opts.runs; run++) {
        for (const t of order(run)) {
          await runCmd('sync', [], { timeoutMs: 120_000 })
          const r = await runWorker('creates', { dir: path.join(t.dir, `creates-${run}`), count: opts.files, fileBytes: 100 }, 600_000)
          push(results[t.name]!, 'creates', opts.files / (r.ms / 1000))
          const drained = await t.settle(120_000)
          if (t.name === 'deltafs') push(results[t.name]!, 'createDrain', drained / 1000)
          report.progress(`run ${run + 1} ${t.name}: ${num(opts.files / (r.ms / 1000))} files/s`)
        }
      }
    }

    let tree: Awaited<ReturnType<typeof makeTree>> | undefined
    if (tests.includes('git') || tests.includes('tar')) {
      tree = await makeTree(dir, opts.treeFiles)
      report.progress(`tree: ${tree.files} files, ${fmtBytes(tree.bytes)} from node_modules; git repo ${tree.repo}, tarball ${fmtBytes(fs.statSync(tree.tarball).size)}`)
    }
    for (const kind of ['git', 'tar'] as const) {
      if (!tests.includes(kind) || !tree) continue
      for (let run = 0; run < opts.runs; run++) {
        for (const t of order(run)) {
          await runCmd('sync', [], { timeoutMs: 120_000 })
          const dest = path.join(t.dir, `${kind}-${run}`)
          let ms: number
          if (kind === 'git') {
            ms = (await runCmd('git', ['clone', '-q', '--no-hardlinks', tree.repo, dest], { timeoutMs: 600_000 })).ms
          } else {
            fs.mkdirSync(dest)
            ms = (await runCmd('tar', ['xf', tree.tarball, '-C', dest], { timeoutMs: 600_000 })).ms
          }
          push(results[t.name]!, kind, ms / 1000)
          const drained = await t.settle(300_000)
          if (t.name === 'deltafs') push(results[t.name]!, `${kind}Drain`, drained / 1000)
          report.progress(`run ${run + 1} ${t.name}: ${kind === 'git' ? 'git clone' : 'tar x'} ${num(ms / 1000)} s${t.name === 'deltafs' ? `, outbox drained ${num(drained / 1000)} s later` : ''}`)
        }
      }
    }

    // Tables.
    const names = targets.map(t => t.name)
    const S = (target: string, key: string): Summary | undefined => summarize(results[target]?.[key] ?? [])
    const med = (target: string, key: string): number | undefined => S(target, key)?.median
    const metrics: Array<{ key: string; label: string; higherBetter: boolean; target?: string; test: string }> = [
      { key: 'seqWrite', label: `seq write ${fmtBytes(opts.size)}, 1 MiB blocks + fsync (MB/s)`, higherBetter: true, target: '≥ 0.8× bindfs', test: 'seq' },
      { key: 'seqRead', label: `seq read ${fmtBytes(opts.size)}, 1 MiB blocks, cold cache (MB/s)`, higherBetter: true, target: '≥ 0.8× bindfs', test: 'seq' },
      { key: 'randOps', label: `4 KiB random pwrite, ${opts.randOps} in ${fmtBytes(opts.randFile)} + fsync (writes/s)`, higherBetter: true, test: 'rand' },
      { key: 'creates', label: `create ${opts.files} files of 100 B (files/s)`, higherBetter: true, test: 'create' },
      { key: 'git', label: `git clone --no-hardlinks, ${tree?.files ?? opts.treeFiles} files (s)`, higherBetter: false, target: '≤ 2× bindfs', test: 'git' },
      { key: 'tar', label: `tar x, ${tree?.files ?? opts.treeFiles} files (s)`, higherBetter: false, target: '≤ 2× bindfs', test: 'tar' },
    ].filter(m => tests.includes(m.test))
    report.line('')
    report.line(`Page cache before each sequential read and write: ${dropCachesState()}.`)
    report.table(['test', ...names], metrics.map(m => [m.label, ...names.map(n => fmtSummary(S(n, m.key)))]))

    if (names.includes('deltafs')) {
      const cols = ['test']
      const pairs: Array<[string, string]> = []
      for (const b of ['bindfs', 'bindfs-bw', 'fuse-native', 'raw', 'deltafs-attr0']) if (names.includes(b)) { cols.push(`deltafs / ${b}`); pairs.push(['deltafs', b]) }
      // How much of deltafs's gap to bindfs is the binding's own.
      for (const f of ['fuse-native', 'fuse-native-cached']) if (names.includes(f) && names.includes('bindfs')) { cols.push(`${f} / bindfs`); pairs.push([f, 'bindfs']) }
      cols.push('target (DESIGN §9)')
      report.line('Ratios of medians (for MB/s, writes/s, files/s higher is better; for seconds lower is better):')
      report.table(cols, metrics.map(m => [m.label, ...pairs.map(([a, b]) => ratio(med(a, m.key), med(b, m.key))), m.target ?? '—']))
      const extra: string[][] = []
      const d = (key: string, label: string): void => { const s = S('deltafs', key); if (s) extra.push([label, fmtSummary(s)]) }
      d('seqDrain', 'outbox drained after the sequential write (s)')
      d('randDrain', 'outbox drained after the random writes (s)')
      d('createDrain', 'outbox drained after the creates (s)')
      d('gitDrain', 'outbox drained after git clone (s)')
      d('tarDrain', 'outbox drained after tar x (s)')
      d('rssPeak', 'mount daemon peak RSS during the sequential write (MiB)')
      d('mountWriteAmp', 'mount daemon disk writes (write_bytes) per byte written, seq write until drained')
      d('nodeWriteAmp', 'storage node disk writes (write_bytes) per byte written, seq write until drained')
      d('mountCpu', 'mount daemon CPU seconds, seq write until drained')
      d('nodeCpu', 'storage node CPU seconds, seq write until drained')
      if (extra.length > 0) {
        report.line('deltafs only (time from the end of the command until `pendingTx` and `heldRewrites` are 0, i.e. everything is acked by the storage node):')
        report.table(['figure', 'min / median / max'], extra)
      }
    }
  } finally {
    await cleanup.run()
  }
}
