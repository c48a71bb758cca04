// `perf record -e cpu-clock -g` of whole processes (every thread, user and
// kernel), to complement node --cpu-prof, which only sees the JS main
// thread. JS frames get names from the perf map node writes with
// --perf-basic-prof-only-functions. The summary classifies each sample's
// thread (main / FUSE / libuv pool / LevelDB background / V8 workers) and its
// area (first frame from the leaf that matches a known area).
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import readline from 'node:readline'
import { sleep } from './common.js'

export function havePerf (): boolean {
  return (process.env.PATH ?? '').split(':').some(d => { try { fs.accessSync(path.join(d, 'perf'), fs.constants.X_OK); return true } catch { return false } })
}

interface Frame { sym: string; dso: string }

export interface PerfSummary {
  /** CPU seconds per process (by pid) and in all. */
  perPid: Record<number, number>
  total: number
  /** pid → thread role → { user, kernel } seconds. */
  threads: Record<number, Record<string, { user: number; kernel: number; tids: Set<number> }>>
  /** pid → area → { user, kernel, main } seconds (main: of the total, on the main thread). */
  areas: Record<number, Record<string, { user: number; kernel: number; main: number }>>
  /** pid → leaf symbol → seconds. */
  symbols: Record<number, Array<{ sym: string; dso: string; secs: number }>>
  /** phase name → pid → area → seconds, for the phases asked for (CLOCK_MONOTONIC µs windows). */
  phases: Record<string, Record<number, Record<string, number>>>
}

const ROLE_RULES: Array<[RegExp, string]> = [
  [/fuse_(session_loop|loop|do_work|ll_process|session_receive_buf|session_process|kern_chan_receive|chan_recv)|fuse_loop_mt/, 'FUSE thread (libfuse loop)'],
  [/leveldb::.*(BackgroundCall|BGWork|BackgroundThread|BackgroundCompaction)|PosixEnv::Background/, 'LevelDB background thread (compaction)'],
  [/uv__fs_work|uv__queue_work|uvimpl::Work::DoThreadPoolWork|napi_async|^worker$|uv__work/, 'libuv pool (fs, LevelDB get/put/batch/iterator)'],
  [/WorkerThread|WorkerThreadsTaskRunner|PlatformWorker|ConcurrentMarking|ScavengerCollector::JobTask|Sweeper::SweeperJob|ParallelMarking|JobTask/, 'V8 platform workers (concurrent GC, compiler)'],
]

const JS_URL_AREAS: Array<[RegExp, string]> = [
  [/zstd-codec|wasm/, 'codec/zstd (zstd-codec)'],
  [/protobufjs/, 'protobuf encode/decode (protobufjs)'],
  [/@grpc\//, 'gRPC (grpc-js)'],
  [/node:internal\/http2|node:http2/, 'gRPC (node http2)'],
  [/node_modules\/(classic-level|abstract-level|level|level-transcoder|module-error)\//, 'journal/LevelDB (JS side)'],
  [/\/src\/journal\//, 'journal/LevelDB (JS side)'],
  [/\/src\/storage-node\/level-/, 'journal/LevelDB (JS side)'],
  [/\/src\/storage-node\//, 'storage node (src/storage-node)'],
  [/\/src\/capture\//, 'capture/diff (src/capture)'],
  [/\/src\/codec\//, 'codec (src/codec)'],
  [/\/src\/sync\//, 'sync client/applier (src/sync)'],
  [/\/src\/fs\//, 'FUSE ops + passthrough (src/fs, JS)'],
  [/fuse-native/, 'FUSE ops + passthrough (src/fs, JS)'],
  [/pino|sonic-boom/, 'logging (pino)'],
  [/\/src\//, 'other src/'],
]

function areaOfStack (frames: Frame[]): string | undefined {
  for (const f of frames) {
    const s = f.sym
    if (/v8::internal::(Heap|Scavenge|MarkCompact|Sweeper|ConcurrentMarking|MinorMarkCompact|MinorMS|IncrementalMarking|GCTracer|Evacuat|MarkingVisitor|MarkingBarrier|MemoryAllocator|PagedSpace|SemiSpace|LocalHeap::|GlobalHandles::|ArrayBufferSweeper)/.test(s) || /ArrayBufferSweeper|Heap::Collect/.test(s)) return 'GC (V8)'
    if (/leveldb::|snappy::/.test(s) || /classic-level/.test(f.dso)) return 'LevelDB native (C++)'
    if (/libfuse|fuse-native|fuse\.node/.test(f.dso)) return 'FUSE (libfuse, fuse-native native)'
    if (s.startsWith('JS:') || s.startsWith('LazyCompile:') || s.startsWith('Function:')) {
      for (const [re, area] of JS_URL_AREAS) if (re.test(s)) return area
    }
    if (/^uv__fs_|uv__fs_work/.test(s)) return 'fs syscalls (libuv pool)'
    if (/node::fs::/.test(s)) return 'node::fs bindings (fs.read/fs.write request dispatch, sync fs calls)'
    if (/node::http2|nghttp2/.test(s)) return 'gRPC (node http2)'
    if (/node::crypto|^EVP_|^aesni_|^gcm_/.test(s)) return 'crypto'
  }
  return undefined
}

/** For samples with no user-space area: the syscall (or fault) the kernel stack shows. */
function kernelArea (frames: Frame[]): string | undefined {
  for (const f of frames) {
    if (f.dso !== '[kernel.kallsyms]') break
    const m = /^__(?:x64|ia32)_sys_(\w+)|^__do_sys_(\w+)|^ksys_(\w+)/.exec(f.sym)
    if (m) return `kernel: ${m[1] ?? m[2] ?? m[3]}()`
    if (/exc_page_fault/.test(f.sym)) return 'kernel: page faults'
    if (/sysvec_|irqentry_exit|common_interrupt|asm_sysvec/.test(f.sym)) return 'kernel: interrupts, preemption'
  }
  return undefined
}

/** Starts `perf record` on pids; stop() ends it with SIGINT (bounded) so that it writes the file. */
export function startPerf (pids: number[], file: string, logFile: string, hz = 499): { pid: number; stop (): Promise<void> } {
  const fd = fs.openSync(logFile, 'a')
  // -k CLOCK_MONOTONIC: sample times on the clock process.hrtime and V8's profiler use.
  const child = spawn('perf', ['record', '-k', 'CLOCK_MONOTONIC', '-e', 'cpu-clock', '-F', String(hz), '-g', '-p', pids.join(','), '-o', file], { stdio: ['ignore', fd, fd] })
  fs.closeSync(fd)
  if (child.pid === undefined) throw new Error('could not start perf')
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
  return {
    pid: child.pid,
    async stop () {
      if (child.exitCode !== null || child.signalCode !== null) return
      process.kill(child.pid!, 'SIGINT')
      const done = await Promise.race([exited.then(() => true), sleep(60_000).then(() => false)])
      if (!done) { try { process.kill(child.pid!, 'SIGKILL') } catch { /* gone */ } await exited }
    },
  }
}

/** Reads `perf script` of a perf.data (streamed, bounded by timeoutMs). */
export async function summarizePerf (file: string, phases: Record<string, [number, number]> = {}, timeoutMs = 600_000): Promise<PerfSummary> {
  const child = spawn('perf', ['script', '-i', file, '-F', 'pid,tid,time,period,ip,sym,dso'], { stdio: ['ignore', 'pipe', 'ignore'] })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const rl = readline.createInterface({ input: child.stdout })
  const samples: Array<{ pid: number; tid: number; us: number; secs: number; frames: Frame[] }> = []
  let cur: { pid: number; tid: number; us: number; secs: number; frames: Frame[] } | undefined
  for await (const line of rl) {
    if (line.length === 0) { if (cur) samples.push(cur); cur = undefined; continue }
    if (line.startsWith('\t')) {
      const m = /^\s*[0-9a-f]+\s+(.*)\s+\((.*)\)\s*$/.exec(line)
      if (cur && m) cur.frames.push({ sym: m[1]!.replace(/\+0x[0-9a-f]+$/, ''), dso: m[2]! })
      continue
    }
    const m = /^\s*(\d+)\/(\d+)\s+(\d+\.\d+):\s+(\d+)/.exec(line)
    if (m) cur = { pid: Number(m[1]), tid: Number(m[2]), us: Number(m[3]) * 1e6, secs: Number(m[4]) / 1e9, frames: [] }
  }
  if (cur) samples.push(cur)
  clearTimeout(timer)
  await new Promise(resolve => child.once('close', resolve))

  // Thread roles: each sample votes for the first role its stack shows.
  const votes = new Map<number, Map<string, number>>()
  for (const s of samples) {
    let role: string | undefined
    if (s.tid === s.pid) role = 'main thread (JS)'
    else {
      outer: for (const f of s.frames) {
        // fuse-native's addon is node.napi.node; libfuse runs the loop on its own thread.
        if (/libfuse|fuse-native|node\.napi\.node/.test(f.dso)) { role = 'FUSE thread (libfuse loop)'; break }
        for (const [re, r] of ROLE_RULES) if (re.test(f.sym)) { role = r; break outer }
      }
    }
    if (!role) continue
    const v = votes.get(s.tid) ?? new Map<string, number>()
    v.set(role, (v.get(role) ?? 0) + 1)
    votes.set(s.tid, v)
  }
  const roleOf = (tid: number): string => {
    const v = votes.get(tid)
    if (!v) return 'other threads (unclassified)'
    return [...v.entries()].sort((a, b) => b[1] - a[1])[0]![0]
  }

  const out: PerfSummary = { perPid: {}, total: 0, threads: {}, areas: {}, symbols: {}, phases: {} }
  const symMap: Record<number, Map<string, { sym: string; dso: string; secs: number }>> = {}
  for (const s of samples) {
    const kernel = s.frames[0]?.dso === '[kernel.kallsyms]'
    const role = roleOf(s.tid)
    out.perPid[s.pid] = (out.perPid[s.pid] ?? 0) + s.secs
    out.total += s.secs
    const th = (out.threads[s.pid] ??= {})
    const t = (th[role] ??= { user: 0, kernel: 0, tids: new Set() })
    t.tids.add(s.tid)
    if (kernel) t.kernel += s.secs; else t.user += s.secs
    const area = areaOfStack(s.frames) ?? (kernel ? kernelArea(s.frames) : undefined) ?? `${role}: other${kernel ? ' (kernel)' : ' (V8 runtime/builtins, node internals, libc)'}`
    const ar = (out.areas[s.pid] ??= {})
    const a = (ar[area] ??= { user: 0, kernel: 0, main: 0 })
    if (kernel) a.kernel += s.secs; else a.user += s.secs
    if (s.tid === s.pid) a.main += s.secs
    for (const [phase, [lo, hi]] of Object.entries(phases)) {
      if (s.us < lo || s.us > hi) continue
      const ph = ((out.phases[phase] ??= {})[s.pid] ??= {})
      ph[area] = (ph[area] ?? 0) + s.secs
    }
    const leaf = s.frames[0] ?? { sym: '[unknown]', dso: '[unknown]' }
    const key = `${leaf.sym}|${leaf.dso}`
    const sm = (symMap[s.pid] ??= new Map())
    const e = sm.get(key) ?? { sym: leaf.sym, dso: path.basename(leaf.dso), secs: 0 }
    e.secs += s.secs
    sm.set(key, e)
  }
  for (const [pid, m] of Object.entries(symMap)) out.symbols[Number(pid)] = [...m.values()].sort((a, b) => b.secs - a.secs)
  return out
}
