// Part 6, memory: resident memory of the mount daemon and the storage node
// (a) while a large file streams through a mount (sequential 1 MiB writes of
// incompressible data into one file, from a separate writer process, then
// until the mount has nothing left to push: pendingTx 0 and no held
// rewrite), and (b) while many small files are created through a mount (a
// separate process). Each phase gets a
// fresh storage node and mount, so the kernel's VmHWM of each process is the
// peak of that phase. /proc/<pid>/status (VmRSS, VmHWM) is sampled every
// 100 ms; the mount's status counters and the free disk space every second.
// Not in `all`: at the defaults (10 GiB, 100,000 files) it takes about 10–15
// minutes on 2 cores.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {
  type BenchOptions, GiB, MiB, Report, fmtBytes, num, percentile, runCmd, sleep,
} from './lib/common.js'
import {
  Cleanup, type MountHandle, type NodeHandle, type Status, procCpuSeconds, procMem, settled, spawnLogged, startMount, startNode,
} from './lib/procs.js'

/** The DESIGN §9 memory target for the mount daemon. */
const MOUNT_TARGET = 200 * MiB
/** Abort a phase when free space on the benchmark's filesystem falls below this. */
const MIN_FREE = 3 * GiB
/** Abort a phase when either daemon's RSS passes this (the machine is shared; an O(file size) daemon must not take it down). */
const MAX_RSS = Math.min(8 * GiB, os.totalmem() / 3)
const workerJs = new URL('./worker.js', import.meta.url).pathname

export function freeBytes (dir: string): number {
  const s = fs.statfsSync(dir)
  return s.bavail * s.bsize
}

/**
 * Disk a stream of `size` bytes needs: the backing file, the storage node's
 * log (LevelDB log + tables, so about 2× while it compacts), the mount's
 * journal until it is acked and compacted, and room to spare.
 */
export function streamDiskNeed (size: number): number { return 3 * size + 4 * GiB }

interface Sample { t: number; mountRss: number; nodeRss: number; mountAnon: number; nodeAnon: number; mountFile: number; nodeFile: number }
interface Tick { t: number; status?: Status; free: number }

interface Sampler {
  samples: Sample[]
  ticks: Tick[]
  peak: { mount: number; node: number; mountAnon: number; nodeAnon: number; mountFile: number; nodeFile: number }
  stop (): Promise<void>
  /** Set when free space fell below MIN_FREE or a daemon's RSS passed MAX_RSS: why. */
  stopped (): string | undefined
}

function startSampler (mount: MountHandle, node: NodeHandle, dir: string, onLimit: (why: string) => void): Sampler {
  const samples: Sample[] = []
  const ticks: Tick[] = []
  const peak = { mount: 0, node: 0, mountAnon: 0, nodeAnon: 0, mountFile: 0, nodeFile: 0 }
  let stopped = false
  let why: string | undefined
  const limit = (reason: string): void => { if (why === undefined) { why = reason; onLimit(reason) } }
  const t0 = Date.now()
  const rssLoop = (async () => {
    while (!stopped) {
      try {
        const mm = procMem(mount.pid)
        const nm = procMem(node.pid)
        peak.mount = Math.max(peak.mount, mm.rss)
        peak.node = Math.max(peak.node, nm.rss)
        peak.mountAnon = Math.max(peak.mountAnon, mm.anon)
        peak.nodeAnon = Math.max(peak.nodeAnon, nm.anon)
        peak.mountFile = Math.max(peak.mountFile, mm.file)
        peak.nodeFile = Math.max(peak.nodeFile, nm.file)
        samples.push({ t: Date.now() - t0, mountRss: mm.rss, nodeRss: nm.rss, mountAnon: mm.anon, nodeAnon: nm.anon, mountFile: mm.file, nodeFile: nm.file })
        // Anonymous memory only: mapped files are page cache the kernel can take back.
        if (Math.max(mm.anon, nm.anon) > MAX_RSS) limit(`${mm.anon > nm.anon ? 'mount daemon' : 'storage node'} anonymous RSS passed ${fmtBytes(MAX_RSS)}`)
      } catch { /* a process ended; the phase will notice */ }
      await sleep(100)
    }
  })()
  const statusLoop = (async () => {
    while (!stopped) {
      const free = freeBytes(dir)
      let status: Status | undefined
      try { status = await mount.status() } catch { /* busy or gone */ }
      ticks.push({ t: Date.now() - t0, status, free })
      if (free < MIN_FREE) limit(`free space fell below ${fmtBytes(MIN_FREE)}`)
      for (let i = 0; i < 10 && !stopped; i++) await sleep(100)
    }
  })()
  return {
    samples,
    ticks,
    peak,
    stopped: () => why,
    async stop () { stopped = true; await Promise.all([rssLoop, statusLoop]) },
  }
}

async function duBytes (dir: string): Promise<number> {
  if (!fs.existsSync(dir)) return 0
  const r = await runCmd('du', ['-sb', dir], { timeoutMs: 120_000, allowFail: true })
  return Number(r.stdout.split('\t')[0] ?? NaN)
}

const mib = (b: number): string => num(b / MiB)

interface PhaseResult {
  label: string
  /** Median and 99th percentile of the 100 ms VmRSS samples, and when (s into the phase) each peak was sampled. */
  dist: { mount: [number, number, number]; node: [number, number, number] }
  secs: number
  workSecs: number
  drainSecs: number
  idle: { mount: number; node: number }
  peak: Sampler['peak']
  hwm: { mount: number; node: number }
  final: { mount: number; node: number; mountAnon: number; nodeAnon: number }
  cpu: { mount: number; node: number }
  status: Status
  disk: Record<string, number>
  timeline: string[][]
  /** Mean mount RSS over the first and the last tenth of the work (bytes). */
  growth: [number, number]
  load: [number[], number[]]
}

/** RSS and the mount's counters at 0, 10, …, 100 % of the phase's time. */
function timeline (s: Sampler, workMs: number): string[][] {
  const rows: string[][] = []
  if (s.samples.length === 0) return rows
  const end = s.samples[s.samples.length - 1]!.t
  for (let k = 0; k <= 10; k++) {
    const at = (end * k) / 10
    const sample = s.samples.reduce((best, x) => Math.abs(x.t - at) < Math.abs(best.t - at) ? x : best)
    const tick = s.ticks.length > 0 ? s.ticks.reduce((best, x) => Math.abs(x.t - at) < Math.abs(best.t - at) ? x : best) : undefined
    const st = tick?.status
    rows.push([
      `${num(sample.t / 1000)} s${sample.t <= workMs ? '' : ' (draining)'}`,
      `${mib(sample.mountRss)} (${mib(sample.mountAnon)})`, `${mib(sample.nodeRss)} (${mib(sample.nodeAnon)})`,
      st ? fmtBytes(Number(st.bytesWritten ?? NaN)) : 'n/a',
      st ? `${String(st.pendingTx)}${Number(st.heldRewrites ?? 0) > 0 ? ` (+${String(st.heldRewrites)} held)` : ''}` : 'n/a',
      st ? fmtBytes(Number(st.pendingBytes ?? NaN)) : 'n/a',
      tick ? fmtBytes(tick.free) : 'n/a',
    ])
  }
  return rows
}

async function phase (
  label: string, dir: string, volume: string, report: Report,
  work: (mount: MountHandle, abort: { signal: () => void; onAbort: (fn: () => void) => void }) => Promise<void>,
  drainTimeoutMs: number,
): Promise<PhaseResult> {
  const cleanup = new Cleanup()
  try {
    const node = await startNode(cleanup, path.join(dir, 'node'))
    const mount = await startMount(cleanup, volume, path.join(dir, 'mnt'), path.join(dir, 'data'), node.address)
    await sleep(1000)
    const idle = { mount: procMem(mount.pid).rss, node: procMem(node.pid).rss }
    const cpu0 = { mount: procCpuSeconds(mount.pid), node: procCpuSeconds(node.pid) }
    const load0 = os.loadavg()
    let abortFns: Array<() => void> = []
    const sampler = startSampler(mount, node, dir, why => {
      report.progress(`${why}: stopping the I/O process`)
      for (const fn of abortFns) fn()
    })
    const t0 = Date.now()
    let workMs = 0
    let drainMs = 0
    const stoppedError = (): Error | undefined => {
      const why = sampler.stopped()
      return why === undefined ? undefined : new Error(`${label}: ${why}, stopped after ${num((Date.now() - t0) / 1000)} s (peak RSS sampled: mount daemon ${mib(sampler.peak.mount)} MiB, storage node ${mib(sampler.peak.node)} MiB)`)
    }
    try {
      try {
        await work(mount, { signal: () => { for (const fn of abortFns) fn() }, onAbort: fn => { abortFns.push(fn) } })
      } catch (err) { throw stoppedError() ?? err }
      workMs = Date.now() - t0
      // Until nothing is left to push, bounded, and stopped early by the RSS and disk limits.
      const d0 = Date.now()
      for (;;) {
        const stopped = stoppedError()
        if (stopped) throw stopped
        let done = false
        try { done = settled(await mount.status()) } catch { /* busy: ask again */ }
        if (done) break
        if (Date.now() - d0 > drainTimeoutMs) throw new Error(`${label}: outbox of ${mount.mountpoint} did not drain (pendingTx 0, heldRewrites 0) within ${drainTimeoutMs / 1000} s`)
        await sleep(50)
      }
      drainMs = Date.now() - d0
      await sleep(2000) // then "final" RSS: what stays resident once the stream is acked
    } finally {
      abortFns = []
      await sampler.stop()
    }
    const load1 = os.loadavg()
    const fm = procMem(mount.pid)
    const fn = procMem(node.pid)
    const final = { mount: fm.rss, node: fn.rss, mountAnon: fm.anon, nodeAnon: fn.anon }
    const hwm = { mount: procMem(mount.pid).hwm, node: procMem(node.pid).hwm }
    const cpu = { mount: procCpuSeconds(mount.pid) - cpu0.mount, node: procCpuSeconds(node.pid) - cpu0.node }
    const status = await mount.status()
    const disk = {
      backing: await duBytes(mount.backing),
      journal: await duBytes(path.join(mount.dataDir, volume, 'journal')),
      node: await duBytes(node.dataDir),
    }
    return {
      label, dist: distribution(sampler), secs: (workMs + drainMs) / 1000, workSecs: workMs / 1000, drainSecs: drainMs / 1000,
      idle, peak: { ...sampler.peak }, hwm, final, cpu, status, disk, timeline: timeline(sampler, workMs), growth: growth(sampler, workMs), load: [load0, load1],
    }
  } finally {
    await cleanup.run()
  }
}

function phaseTables (report: Report, r: PhaseResult): void {
  report.table(['process', 'idle RSS after mount (MiB)', 'VmRSS samples p50 / p99 (MiB)', 'peak VmRSS sample (MiB), at', 'VmHWM at the end (MiB)', 'peak RssAnon / RssFile (MiB)', 'final RSS (of it anon), 2 s after drain (MiB)', 'CPU s'], [
    ['mount daemon', mib(r.idle.mount), `${mib(r.dist.mount[0])} / ${mib(r.dist.mount[1])}`, `**${mib(r.peak.mount)}**, ${num(r.dist.mount[2])} s`, `**${mib(r.hwm.mount)}**`, `${mib(r.peak.mountAnon)} / ${mib(r.peak.mountFile)}`, `${mib(r.final.mount)} (${mib(r.final.mountAnon)})`, num(r.cpu.mount)],
    ['storage node', mib(r.idle.node), `${mib(r.dist.node[0])} / ${mib(r.dist.node[1])}`, `**${mib(r.peak.node)}**, ${num(r.dist.node[2])} s`, `**${mib(r.hwm.node)}**`, `${mib(r.peak.nodeAnon)} / ${mib(r.peak.nodeFile)}`, `${mib(r.final.node)} (${mib(r.final.nodeAnon)})`, num(r.cpu.node)],
  ])
  report.line('RssAnon is heap, malloc and V8 memory; RssFile is mapped files (LevelDB maps its table files for reads), page cache that counts in VmRSS but that the kernel can take back.')
  report.line(`Time: ${num(r.workSecs)} s for the writer process, then ${num(r.drainSecs)} s until pendingTx and heldRewrites were 0 (${num(r.secs)} s in all). ` +
    `Load average (1/5/15 min) at the start ${r.load[0].map(x => x.toFixed(2)).join(' / ')}, at the end ${r.load[1].map(x => x.toFixed(2)).join(' / ')}. ` +
    `Disk at the end (du -sb): backing dir ${fmtBytes(r.disk.backing!)}, mount journal ${fmtBytes(r.disk.journal!)}, storage node data ${fmtBytes(r.disk.node!)}. ` +
    `Mount counters: bytesWritten ${fmtBytes(Number(r.status.bytesWritten))}, bytesPushed ${fmtBytes(Number(r.status.bytesPushed))}, framesPushed ${String(r.status.framesPushed)}.`)
  report.line(`Mount daemon RSS, mean over the first tenth of the ${r.label === 'stream' ? 'writing' : 'creating'} time: ${mib(r.growth[0])} MiB; over the last tenth: ${mib(r.growth[1])} MiB.`)
  report.line(`Over time (nearest 100 ms RSS sample and 1 s status sample to each tenth of the phase):`)
  report.table(['t', 'mount RSS (anon) MiB', 'node RSS (anon) MiB', 'bytesWritten', 'pendingTx', 'pendingBytes', 'free disk'], r.timeline)
}

export async function memory (opts: BenchOptions, report: Report, base: string): Promise<void> {
  const dir = path.join(base, 'memory')
  fs.mkdirSync(dir, { recursive: true })
  report.heading('memory: RSS of the mount daemon and the storage node under a large stream and many small files')
  const free = freeBytes(dir)
  let size = opts.streamSize
  let sizeNote = ''
  if (streamDiskNeed(size) > free) {
    const fits = Math.floor((free - 4 * GiB) / 3 / GiB) * GiB
    if (fits < GiB) throw new Error(`only ${fmtBytes(free)} free under ${dir}: not even a 1 GiB stream fits (needs ${fmtBytes(streamDiskNeed(GiB))})`)
    sizeNote = ` **--stream-size ${fmtBytes(opts.streamSize)} does not fit** (${fmtBytes(free)} free, about ${fmtBytes(streamDiskNeed(opts.streamSize))} needed: 3× the stream + 4 GiB); streaming ${fmtBytes(fits)} instead, the largest whole GiB that fits.`
    size = fits
  }
  report.line(`Filesystem of ${dir}: ${fmtBytes(free)} free at the start (a stream needs about 3× its size + 4 GiB: the backing file, the storage node's LevelDB log and tables, the mount's journal until acked; a phase stops if free space falls below ${fmtBytes(MIN_FREE)}).${sizeNote}`)
  report.line('Each phase starts its own `deltafs serve` and `deltafs mount` (so VmHWM, the kernel\'s peak RSS of a process, is that phase\'s peak); /proc/PID/status is sampled every 100 ms for VmRSS, the mount\'s status (control socket) and free space every second. The I/O runs in a separate process (`dist/bench/worker.js`).')

  let stream: PhaseResult | undefined
  let failures = 0
  if (size > 0) try {
    report.progress(`(a) streaming ${fmtBytes(size)} through a mount in 1 MiB writes`)
    const writeTimeout = Math.max(300_000, size / (8 * MiB) * 1000)
    stream = await phase('stream', path.join(dir, 'stream'), 'mem', report, async (mount, abort) => {
      const logFile = path.join(dir, 'stream-writer.log')
      const w = spawnLogged(process.execPath, [workerJs, 'seqwrite', JSON.stringify({ file: path.join(mount.mountpoint, 'stream.bin'), size, block: MiB })], logFile)
      abort.onAbort(() => { void w.stop(2000) })
      const code = await Promise.race([w.exited, sleep(writeTimeout).then(() => 'timeout' as const)]).finally(async () => { await w.stop(2000) })
      if (code === 'timeout') throw new Error(`writer did not finish ${fmtBytes(size)} within ${writeTimeout / 1000} s`)
      if (code !== 0) throw new Error(`writer exited with ${String(code)}: ${w.log().slice(-2000)}`)
    }, Math.max(300_000, size / (16 * MiB) * 1000))
    report.line(`**(a) ${fmtBytes(size)} streamed through the mount**, one file, sequential 1 MiB writes of incompressible data, fsync at the end, from a separate process: ${num(size / MiB / stream.workSecs)} MB/s for the writer.`)
    phaseTables(report, stream)
  } catch (err) {
    failures++
    report.line(`**(a) ${fmtBytes(size)} stream FAILED:** ${(err as Error).message.split('\n')[0]}`)
  } finally {
    if (!opts.keep) fs.rmSync(path.join(dir, 'stream'), { recursive: true, force: true }) // frees the disk before (b)
  }

  report.progress(`(b) creating ${opts.smallFiles} files of 100 B through a mount`)
  const count = opts.smallFiles
  try {
    const small = await phase('small', path.join(dir, 'small'), 'mem', report, async (mount, abort) => {
      const logFile = path.join(dir, 'creates.log')
      const w = spawnLogged(process.execPath, [workerJs, 'creates', JSON.stringify({ dir: path.join(mount.mountpoint, 'many'), count, fileBytes: 100 })], logFile)
      abort.onAbort(() => { void w.stop(2000) })
      const timeout = Math.max(300_000, count * 20)
      const code = await Promise.race([w.exited, sleep(timeout).then(() => 'timeout' as const)]).finally(async () => { await w.stop(2000) })
      if (code === 'timeout') throw new Error(`creating ${count} files did not finish within ${timeout / 1000} s`)
      if (code !== 0) throw new Error(`creates exited with ${String(code)}: ${w.log().slice(-2000)}`)
    }, 600_000)
    report.line(`**(b) ${count} files of 100 B created through the mount** (one directory; open O_CREAT|O_EXCL, write, close each) from a separate process: ${num(count / small.workSecs)} files/s for the creating process.`)
    phaseTables(report, small)
  } catch (err) {
    failures++
    report.line(`**(b) ${count} small files FAILED:** ${(err as Error).message.split('\n')[0]}`)
  } finally {
    if (!opts.keep) fs.rmSync(path.join(dir, 'small'), { recursive: true, force: true })
  }

  if (stream) {
    const full = size >= 10 * GiB
    const meets = stream.hwm.mount <= MOUNT_TARGET
    report.line(`Target (DESIGN §9): mount daemon ≤ 200 MiB RSS while 10 GiB stream through it → peak ${mib(stream.hwm.mount)} MiB (VmHWM; peak anonymous ${mib(stream.peak.mountAnon)} MiB, peak mapped files ${mib(stream.peak.mountFile)} MiB) ` +
      `while ${fmtBytes(size)} streamed: ${meets ? 'meets it' : `**MISSES it** (${(stream.hwm.mount / MOUNT_TARGET).toFixed(2)}× the target)`}` +
      `${full ? '' : ` — at ${fmtBytes(size)}, not the full 10 GiB`}. `)
  } else if (size > 0) {
    report.line(`Target (DESIGN §9): mount daemon ≤ 200 MiB RSS while 10 GiB stream through it → not measured: the stream phase failed (above).`)
  }
  if (failures > 0) throw new Error(`${failures} memory phase(s) failed (see above)`)
}

function distribution (s: Sampler): PhaseResult['dist'] {
  const of = (get: (x: Sample) => number): [number, number, number] => {
    const xs = s.samples.map(get)
    if (xs.length === 0) return [NaN, NaN, NaN]
    const peakAt = s.samples.reduce((best, x) => get(x) > get(best) ? x : best).t / 1000
    return [percentile(xs, 50), percentile(xs, 99), peakAt]
  }
  return { mount: of(x => x.mountRss), node: of(x => x.nodeRss) }
}

/** Mean mount RSS over the first and the last tenth of the work (bytes). */
function growth (s: Sampler, workMs: number): [number, number] {
  const mean = (xs: Sample[]): number => xs.length === 0 ? NaN : xs.reduce((a, x) => a + x.mountRss, 0) / xs.length
  return [mean(s.samples.filter(x => x.t <= workMs / 10)), mean(s.samples.filter(x => x.t >= workMs * 0.9 && x.t <= workMs))]
}
