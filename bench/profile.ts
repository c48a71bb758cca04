// Part 7, profile: CPU profiles of the sequential-write path. The storage
// node and the mount daemon run under `node --cpu-prof` while a separate
// process writes --size (default 1 GiB) into one file through the mount in
// 1 MiB writes (fsync at the end); SIGTERM makes both exit cleanly and write
// their .cpuprofile. The profiles are summarised over the window from the
// start of the write until the mount had nothing left to push (pendingTx 0,
// no held rewrite): self time by function and by area. --cpu-prof samples only the JS main thread, so the
// CPU time of every thread (libuv pool: LevelDB and fs; LevelDB's compaction
// thread; the FUSE thread; V8's GC helpers) comes from /proc/PID/task.
// bindfs (plain and with big_writes) runs the same write once first, as the
// reference for the DESIGN §9 target (≥ 0.8× bindfs). Not in `all`.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { type BenchOptions, MiB, Report, dropCaches, fmtBytes, fmtSummary, num, summarize, waitFor } from './lib/common.js'
import { Cleanup, drain, forceUnmount, procCpuSeconds, runWorker, startBindfs, startMount, startNode, threadCpuSeconds } from './lib/procs.js'
import { monotonicUs, summarizeProfile, type ProfileSummary } from './lib/cpuprofile.js'
import { type PerfSummary, havePerf, startPerf, summarizePerf } from './lib/perf.js'
import { BIG_WRITES, ensureBindfs } from './throughput.js'

function threadDelta (a: Record<string, number>, b: Record<string, number>): Array<[string, number]> {
  return Object.entries(b).map(([k, v]) => [k, v - (a[k] ?? 0)] as [string, number]).filter(([, v]) => v > 0.005).sort((x, y) => y[1] - x[1])
}

function newestProfile (dir: string): string | undefined {
  if (!fs.existsSync(dir)) return undefined
  const files = fs.readdirSync(dir).filter(f => f.endsWith('.cpuprofile')).map(f => path.join(dir, f))
  return files.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0]
}

const pct = (x: number, of: number): string => of > 0 ? `${(100 * x / of).toFixed(1)} %` : 'n/a'

function profileTables (report: Report, who: string, s: ProfileSummary, top: number): void {
  const busy = s.totalMs - (s.areas.find(a => a.area === 'idle')?.ms ?? 0)
  report.line(`**${who}, JS main thread** (--cpu-prof samples in the window${s.fellBack ? ': the window did not overlap the profile, ALL samples used' : ''}): ${num(s.totalMs / 1000)} s sampled, ${num(busy / 1000)} s not idle.`)
  report.table(['area (self time; native/internal frames count for their nearest known caller)', 's', '% of window', '% of non-idle'],
    s.areas.map(a => [a.area, num(a.ms / 1000), pct(a.ms, s.totalMs), a.area === 'idle' ? '—' : pct(a.ms, busy)]))
  report.table(['#', `top ${top} functions by self time`, 'where', 'area', 's', '% of non-idle'],
    s.functions.filter(f => f.area !== 'idle').slice(0, top).map((f, i) => [String(i + 1), `\`${f.name}\``, f.where, f.area, num(f.ms / 1000), pct(f.ms, busy)]))
}

export async function profile (opts: BenchOptions, report: Report, base: string): Promise<void> {
  const size = opts.size
  const dir = path.join(base, 'profile')
  const profDir = opts.profDir ?? path.join(os.tmpdir(), `deltafs-profiles-${new Date().toISOString().replace(/[:.]/g, '-')}`)
  fs.mkdirSync(dir, { recursive: true })
  report.heading(`Profiles (seq write): ${fmtBytes(size)} in 1 MiB writes through a mount, mount daemon and storage node under node --cpu-prof`)
  const writeTimeout = Math.max(180_000, size / (2 * MiB) * 1000)

  // Reference: the same write through bindfs, once each.
  const ref: Record<string, number> = {}
  const refText: Record<string, string> = {}
  {
    const cleanup = new Cleanup()
    try {
      await ensureBindfs(report)
      for (const [name, o] of [['bindfs', []], ['bindfs-bw', BIG_WRITES]] as Array<[string, string[]]>) {
        const b = await startBindfs(cleanup, path.join(dir, `${name}-src`), path.join(dir, `${name}-mnt`), o, path.join(dir, `${name}.log`))
        const rates: number[] = []
        for (let run = 0; run < opts.runs; run++) {
          await dropCaches()
          const w = await runWorker('seqwrite', { file: path.join(b.mountpoint, 'seq.bin'), size, block: MiB }, writeTimeout)
          rates.push(size / MiB / (w.ms / 1000))
          fs.rmSync(path.join(b.mountpoint, 'seq.bin'))
        }
        ref[name] = summarize(rates)!.median
        refText[name] = fmtSummary(summarize(rates))
        report.progress(`${name}: ${refText[name]!.replace(/\*\*/g, '')} MB/s`)
      }
    } finally {
      await cleanup.run()
    }
  }

  const cleanup = new Cleanup()
  let perfSummary: PerfSummary | undefined
  let mountProf: string | undefined
  let nodeProf: string | undefined
  const usePerf = opts.perf && havePerf()
  const perfFile = path.join(profDir, 'perf.data')
  let perfPids: { mount: number; node: number } | undefined
  let result: { ms: number; drainMs: number; window: [number, number]; writeEnd: number; cpu: Record<'mount' | 'node', number>; threads: Record<'mount' | 'node', Array<[string, number]>>; load: [number[], number[]] } | undefined
  try {
    const nodeDir = path.join(profDir, 'node')
    const mountDir = path.join(profDir, 'mount')
    // --perf-basic-prof-only-functions: node writes /tmp/perf-PID.map so perf can name JS frames.
    const extra = usePerf ? ['--perf-basic-prof-only-functions'] : []
    const node = await startNode(cleanup, path.join(dir, 'node'), ['--cpu-prof', `--cpu-prof-dir=${nodeDir}`, ...extra])
    const mount = await startMount(cleanup, 'prof', path.join(dir, 'mnt'), path.join(dir, 'data'), node.address, ['--cpu-prof', `--cpu-prof-dir=${mountDir}`, ...extra])
    // The perf maps move next to perf.data (copy them back to /tmp to run perf report/script on it again).
    for (const pid of [node.pid, mount.pid]) {
      cleanup.add(`perf map of ${pid}`, () => {
        const map = `/tmp/perf-${pid}.map`
        if (!fs.existsSync(map)) return
        if (usePerf && fs.existsSync(profDir)) fs.copyFileSync(map, path.join(profDir, path.basename(map)))
        fs.rmSync(map, { force: true })
      })
    }
    await dropCaches()
    let perf: ReturnType<typeof startPerf> | undefined
    if (usePerf) {
      fs.mkdirSync(profDir, { recursive: true })
      fs.rmSync(perfFile, { force: true })
      perf = startPerf([mount.pid, node.pid], perfFile, path.join(profDir, 'perf-record.log'))
      cleanup.add(`perf record pid ${perf.pid}`, () => perf!.stop())
      perfPids = { mount: mount.pid, node: node.pid }
      await waitFor('perf record to start', () => fs.existsSync(perfFile), 10_000, 50).catch(() => undefined)
    }
    const load0 = os.loadavg()
    const th0 = { mount: threadCpuSeconds(mount.pid), node: threadCpuSeconds(node.pid) }
    const cpu0 = { mount: procCpuSeconds(mount.pid), node: procCpuSeconds(node.pid) }
    const t0 = monotonicUs()
    report.progress(`writing ${fmtBytes(size)} through the profiled mount`)
    const w = await runWorker('seqwrite', { file: path.join(mount.mountpoint, 'seq.bin'), size, block: MiB }, writeTimeout)
    const writeEnd = monotonicUs()
    const drainMs = await drain(mount, Math.max(120_000, size / (2 * MiB) * 1000))
    const t1 = monotonicUs()
    await perf?.stop()
    const cpu = { mount: procCpuSeconds(mount.pid) - cpu0.mount, node: procCpuSeconds(node.pid) - cpu0.node }
    const threads = { mount: threadDelta(th0.mount, threadCpuSeconds(mount.pid)), node: threadDelta(th0.node, threadCpuSeconds(node.pid)) }
    result = { ms: w.ms, drainMs, window: [t0, t1], writeEnd, cpu, threads, load: [load0, os.loadavg()] }
    report.progress(`deltafs: ${num(size / MiB / (w.ms / 1000))} MB/s; stopping both daemons (SIGTERM) so that they write their profiles`)
    // SIGTERM: the daemon unmounts, closes and exits; node writes the profile at exit.
    await mount.stop(120_000)
    forceUnmount(mount.mountpoint)
    await node.stop(120_000)
    mountProf = await waitFor('the mount daemon\'s .cpuprofile', () => newestProfile(mountDir), 10_000, 100).catch(() => undefined)
    nodeProf = await waitFor('the storage node\'s .cpuprofile', () => newestProfile(nodeDir), 10_000, 100).catch(() => undefined)
    // perf script needs the perf maps, which cleanup removes.
    if (perfPids && fs.existsSync(perfFile)) {
      report.progress('reading perf.data')
      perfSummary = await summarizePerf(perfFile, { write: [result.window[0], result.writeEnd], push: [result.writeEnd, result.window[1]] })
    }
  } finally {
    await cleanup.run()
  }
  if (!result) return

  const mbps = size / MiB / (result.ms / 1000)
  report.line(`Write: ${num(mbps)} MB/s through deltafs (${num(result.ms / 1000)} s for ${fmtBytes(size)}, profilers on), outbox drained ${num(result.drainMs / 1000)} s later. ` +
    `Same write, same run (${opts.runs} runs each, min / **median** / max): bindfs ${refText.bindfs} MB/s, bindfs with big_writes ${refText['bindfs-bw']} MB/s → deltafs is ${(mbps / ref.bindfs!).toFixed(2)}× bindfs, ${(mbps / ref['bindfs-bw']!).toFixed(2)}× bindfs-bw. ` +
    `Load average (1/5/15 min) before ${result.load[0].map(x => x.toFixed(2)).join(' / ')}, after ${result.load[1].map(x => x.toFixed(2)).join(' / ')}.`)
  report.line(`Profiles kept in \`${profDir}\` (open in Chrome DevTools → Performance, or speedscope).`)
  const windowS = (result.window[1] - result.window[0]) / 1e6
  report.line(`CPU seconds per thread over the window (${num(windowS)} s: write + drain), from /proc/PID/task/*/stat; same-named threads summed:`)
  const rows: string[][] = []
  for (const who of ['mount', 'node'] as const) {
    for (const [name, secs] of result.threads[who]) rows.push([who === 'mount' ? 'mount daemon' : 'storage node', name, num(secs), pct(secs, windowS)])
    rows.push([who === 'mount' ? 'mount daemon' : 'storage node', '**all threads**', `**${num(result.cpu[who]!)}**`, pct(result.cpu[who]!, windowS)])
  }
  report.table(['process', 'thread', 'CPU s', '% of one core over the window'], rows)

  const summaries: Record<string, ProfileSummary | undefined> = {}
  for (const [who, file] of [['mount daemon', mountProf], ['storage node', nodeProf]] as const) {
    if (!file) { report.line(`**${who}: no .cpuprofile was written** (did it exit on SIGTERM?).`); continue }
    const s = summarizeProfile(file, result.window)
    summaries[who] = s
    profileTables(report, who, s, 25)
  }

  if (perfSummary && perfPids) {
    report.line(`**perf record -e cpu-clock -F 499 -g, all threads of both processes** over the same window (user and kernel; JS frames named from node's perf map). ` +
      'Thread roles are inferred from the stacks; an area is the first frame from the leaf that belongs to one (kernel time counts for the user-space caller that made the syscall or fault, when the stack shows it).')
    for (const [who, pid] of [['mount daemon', perfPids.mount], ['storage node', perfPids.node]] as const) {
      const total = perfSummary.perPid[pid] ?? 0
      const th = Object.entries(perfSummary.threads[pid] ?? {}).sort((a, b) => (b[1].user + b[1].kernel) - (a[1].user + a[1].kernel))
      report.table([`${who}: thread`, 'threads', 'user s', 'kernel s', 'total s', '% of process'],
        th.map(([role, t]) => [role, String(t.tids.size), num(t.user), num(t.kernel), `**${num(t.user + t.kernel)}**`, pct(t.user + t.kernel, total)]))
      const ar = Object.entries(perfSummary.areas[pid] ?? {}).sort((a, b) => (b[1].user + b[1].kernel) - (a[1].user + a[1].kernel))
      // Areas under 0.5 % of the process go into one row.
      const big = ar.filter(([, a]) => a.user + a.kernel >= 0.005 * total)
      const rest = ar.filter(([, a]) => a.user + a.kernel < 0.005 * total).reduce((acc, [, a]) => ({ user: acc.user + a.user, kernel: acc.kernel + a.kernel, main: acc.main + a.main }), { user: 0, kernel: 0, main: 0 })
      const rows = big.map(([area, a]) => [area, num(a.user), num(a.kernel), `**${num(a.user + a.kernel)}**`, pct(a.user + a.kernel, total), num(a.main)])
      if (rest.user + rest.kernel > 0) rows.push(['everything under 0.5 % each', num(rest.user), num(rest.kernel), num(rest.user + rest.kernel), pct(rest.user + rest.kernel, total), num(rest.main)])
      report.table([`${who}: area (all threads)`, 'user s', 'kernel s', 'total s', '% of process', 'of which main thread s'], rows)
      report.table(['#', `${who}: top 15 leaf symbols (all threads)`, 'dso', 's', '% of process'],
        (perfSummary.symbols[pid] ?? []).slice(0, 15).map((x, i) => [String(i + 1), `\`${x.sym.slice(0, 90).replace(/\|/g, '\\|')}\``, x.dso, num(x.secs), pct(x.secs, total)]))
    }
  } else if (opts.perf) {
    report.line('perf record: not run (perf not installed).')
  }

  // When the mount pushes after the write (held new files), the two phases differ: split them.
  const pushS = (result.window[1] - result.writeEnd) / 1e6
  if (pushS >= 0.5) {
    const writeS = (result.writeEnd - result.window[0]) / 1e6
    report.line(`**By phase**: the write (${num(writeS)} s, until the writer's fsync and close returned) and the push after it (${num(pushS)} s, until nothing was left to push). Seconds in each phase; JS thread from --cpu-prof (wall-clock samples), all threads from perf (CPU time).`)
    const mp = mountProf ? { write: summarizeProfile(mountProf, [result.window[0], result.writeEnd]), push: summarizeProfile(mountProf, [result.writeEnd, result.window[1]]) } : undefined
    if (mp) {
      const areas = [...new Set([...mp.write.areas, ...mp.push.areas].map(a => a.area))]
      const get = (x: ProfileSummary, a: string): number => (x.areas.find(y => y.area === a)?.ms ?? 0) / 1000
      report.table(['mount daemon JS thread (--cpu-prof)', 'write phase s', 'push phase s'],
        areas.map(a => [a, num(get(mp.write, a)), num(get(mp.push, a))]).filter(r => Number(r[1]) + Number(r[2]) >= 0.05 || r[0] === 'idle'))
    }
    if (perfSummary && perfPids) {
      const rows: string[][] = []
      const ph = perfSummary.phases
      const pick = (phase: string, pid: number): Record<string, number> => ph[phase]?.[pid] ?? {}
      const areas = new Map<string, number>()
      for (const phase of ['write', 'push']) for (const pid of [perfPids.mount, perfPids.node]) for (const [a, v] of Object.entries(pick(phase, pid))) areas.set(a, (areas.get(a) ?? 0) + v)
      const sorted = [...areas.entries()].sort((a, b) => b[1] - a[1])
      const shown = sorted.filter(([, v]) => v >= 0.01 * perfSummary!.total)
      for (const [a] of shown) rows.push([a, num(pick('write', perfPids.mount)[a] ?? 0), num(pick('push', perfPids.mount)[a] ?? 0), num(pick('write', perfPids.node)[a] ?? 0), num(pick('push', perfPids.node)[a] ?? 0)])
      const sum = (phase: string, pid: number): number => Object.values(pick(phase, pid)).reduce((x, y) => x + y, 0)
      const shownSet = new Set(shown.map(([a]) => a))
      const restOf = (phase: string, pid: number): number => Object.entries(pick(phase, pid)).filter(([a]) => !shownSet.has(a)).reduce((x, [, y]) => x + y, 0)
      rows.push(['everything under 1 % each', num(restOf('write', perfPids.mount)), num(restOf('push', perfPids.mount)), num(restOf('write', perfPids.node)), num(restOf('push', perfPids.node))])
      rows.push(['**all (CPU s)**', `**${num(sum('write', perfPids.mount))}**`, `**${num(sum('push', perfPids.mount))}**`, `**${num(sum('write', perfPids.node))}**`, `**${num(sum('push', perfPids.node))}**`])
      report.table(['area, all threads (perf)', 'mount: write s', 'mount: push s', 'node: write s', 'node: push s'], rows)
    }
  }

  // What the target asks of the write path.
  const m = summaries['mount daemon']
  if (ref.bindfs) {
    const target = 0.8 * ref.bindfs
    const budget = size / MiB / target
    const requests = size / (128 * 1024)
    const busy = m ? (m.totalMs - (m.areas.find(a => a.area === 'idle')?.ms ?? 0)) / 1000 : NaN
    const mainCpu = perfSummary && perfPids ? Object.entries(perfSummary.threads[perfPids.mount] ?? {}).filter(([r]) => r.startsWith('main')).reduce((a, [, t]) => a + t.user + t.kernel, 0) : NaN
    const both = result.cpu.mount + result.cpu.node
    report.line(`Budget: 0.8× bindfs (median) = ${num(target)} MB/s, i.e. ${num(budget)} s for ${fmtBytes(size)}: ${num(budget / requests * 1e6)} µs per 128 KiB FUSE write request (max_write=131072; the kernel sends the requests of one write(2) one after another), ` +
      `against ${num(result.ms / requests * 1000)} µs per request in this run. ` +
      `The mount daemon's JS thread was not idle for ${num(busy)} s of the ${num(windowS)} s (--cpu-prof: wall-clock samples, so this includes time the thread was runnable but waiting for a core) and used ${num(mainCpu)} CPU s (perf); ` +
      `the whole daemon used ${num(result.cpu.mount)} CPU s and the storage node ${num(result.cpu.node)} CPU s (/proc) → ${num(both)} CPU s per ${fmtBytes(size)}, ${(both / budget).toFixed(1)} cores' worth at the target rate, on a machine with ${os.cpus().length} cores that the writer and the kernel share. ` +
      (perfSummary && perfPids && pushS >= 0.5
        ? `During the write phase alone (perf): mount ${num(Object.values(perfSummary.phases.write?.[perfPids.mount] ?? {}).reduce((x, y) => x + y, 0))} CPU s, node ${num(Object.values(perfSummary.phases.write?.[perfPids.node] ?? {}).reduce((x, y) => x + y, 0))} CPU s; the push after it is deferred work that a sustained stream must also absorb. `
        : '') +
      `To reach the target the two daemons together need to spend about ${(both / (budget * 1.5)).toFixed(1)}× less CPU (leaving ≤ 1.5 of the 2 cores to them) and the mount's per-request path must fit in ${num(budget / requests * 1e6)} µs.`)
  }
}
