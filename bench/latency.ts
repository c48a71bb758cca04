// Part 2, latency: a storage node and two mounts A and B (each its own
// process). For each change the harness writes a file through A (open with
// O_TRUNC, write, close) and then polls B's mount every ~1 ms until B reads
// exactly the new content. Propagation = from A's close returning until that
// read on B.
import { randomFillSync } from 'node:crypto'
import fsp from 'node:fs/promises'
import path from 'node:path'
import {
  type BenchOptions, KiB, MiB, Report, nowMs, num, percentile, prng, sleep, waitFor,
} from './lib/common.js'
import { Cleanup, procCpuSeconds, startMount, startNode } from './lib/procs.js'

const FILES = 100
const PER_CHANGE_TIMEOUT_MS = 10_000
const TOTAL_BUDGET_MS = 15 * 60_000

export async function latency (opts: BenchOptions, report: Report, base: string): Promise<void> {
  const cleanup = new Cleanup()
  report.heading('latency: write+close on mount A until mount B reads the new content')
  try {
    const dir = path.join(base, 'latency')
    const node = await startNode(cleanup, path.join(dir, 'node'))
    const A = await startMount(cleanup, 'lat', path.join(dir, 'mnt-a'), path.join(dir, 'data-a'), node.address)
    const B = await startMount(cleanup, 'lat', path.join(dir, 'mnt-b'), path.join(dir, 'data-b'), node.address)
    const a = (p: string): string => path.join(A.mountpoint, p)
    const b = (p: string): string => path.join(B.mountpoint, p)
    await fsp.mkdir(a('lat'))
    await waitFor('directory to reach B', () => fsp.stat(b('lat')).then(s => s.isDirectory()), 10_000, 5)

    const rnd = prng(20260101)
    const pool = randomFillSync(Buffer.allocUnsafe(2 * MiB))
    const samples: Array<{ size: number; ms: number; writeMs: number; create: boolean; polls: number }> = []
    let timeouts = 0
    const cpu0 = { node: procCpuSeconds(node.pid), a: procCpuSeconds(A.pid), b: procCpuSeconds(B.pid) }
    const started = Date.now()
    for (let i = 0; i < opts.changes; i++) {
      if (Date.now() - started > TOTAL_BUDGET_MS) { report.line(`Stopped after ${i} changes: the ${TOTAL_BUDGET_MS / 60_000} min budget ran out.`); break }
      const size = Math.round(100 * Math.pow(MiB / 100, rnd()))
      const off = Math.floor(rnd() * (pool.length - size))
      const content = Buffer.from(pool.subarray(off, off + size))
      content.write(`#${i}#`, 0, 'latin1')
      const name = `lat/f${i % FILES}.bin`
      const w0 = nowMs()
      await fsp.writeFile(a(name), content)
      const t0 = nowMs()
      let polls = 0
      let ok = false
      while (nowMs() - t0 < PER_CHANGE_TIMEOUT_MS) {
        polls++
        try {
          const st = await fsp.stat(b(name))
          if (st.size === size && (await fsp.readFile(b(name))).equals(content)) { ok = true; break }
        } catch { /* not there yet */ }
        await sleep(1)
      }
      const ms = nowMs() - t0
      if (!ok) timeouts++
      else samples.push({ size, ms, writeMs: t0 - w0, create: i < FILES, polls })
      if ((i + 1) % 100 === 0) report.progress(`${i + 1}/${opts.changes} changes, last ${num(ms)} ms`)
    }
    const elapsed = (Date.now() - started) / 1000
    const cpu = { node: procCpuSeconds(node.pid) - cpu0.node, a: procCpuSeconds(A.pid) - cpu0.a, b: procCpuSeconds(B.pid) - cpu0.b }

    const row = (label: string, xs: number[]): string[] => [label, String(xs.length), num(percentile(xs, 50)), num(percentile(xs, 99)), num(xs.length ? Math.max(...xs) : NaN)]
    const all = samples.map(s => s.ms)
    report.line(`${samples.length} changes propagated, ${timeouts} not within ${PER_CHANGE_TIMEOUT_MS / 1000} s; ${FILES} files (the first ${FILES} changes create them, later ones overwrite with O_TRUNC); sizes 100 B to 1 MiB, log-uniform. Total ${num(elapsed)} s. B polled with stat + read every ~1 ms.`)
    report.table(['propagation (ms)', 'n', 'p50', 'p99', 'max'], [
      row('**all changes**', all),
      row('size ≤ 4 KiB', samples.filter(s => s.size <= 4 * KiB).map(s => s.ms)),
      row('4 KiB < size ≤ 64 KiB', samples.filter(s => s.size > 4 * KiB && s.size <= 64 * KiB).map(s => s.ms)),
      row('64 KiB < size ≤ 1 MiB', samples.filter(s => s.size > 64 * KiB).map(s => s.ms)),
      row('creates', samples.filter(s => s.create).map(s => s.ms)),
      row('overwrites (O_TRUNC)', samples.filter(s => !s.create).map(s => s.ms)),
      row('write+close on A itself', samples.map(s => s.writeMs)),
    ])
    const p50 = percentile(all, 50)
    const p99 = percentile(all, 99)
    report.line(`Target (DESIGN §9): p50 ≤ 50 ms, p99 ≤ 250 ms → p50 ${num(p50)} ms ${p50 <= 50 ? 'meets it' : 'MISSES it'}, p99 ${num(p99)} ms ${p99 <= 250 ? 'meets it' : 'MISSES it'}.`)
    report.line(`CPU used during the run: storage node ${num(cpu.node)} s, mount A ${num(cpu.a)} s, mount B ${num(cpu.b)} s (of ${num(elapsed)} s wall, 2 cores shared with the harness).`)
    const sA = await A.status()
    const sB = await B.status()
    report.line(`Counters: A bytesWritten ${String(sA.bytesWritten)}, bytesPushed ${String(sA.bytesPushed)}, framesPushed ${String(sA.framesPushed)}; B txApplied ${String(sB.txApplied)}, bytesReceived ${String(sB.bytesReceived)}, txRefused ${String(sB.txRefused)}.`)
    if (timeouts > 0) report.line(`**${timeouts} changes did not reach B within ${PER_CHANGE_TIMEOUT_MS / 1000} s.**`)
  } finally {
    await cleanup.run()
  }
}
