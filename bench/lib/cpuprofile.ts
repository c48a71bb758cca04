// Reads a V8 .cpuprofile (node --cpu-prof) and sums self time by function and
// by area, over a time window. Only the JS main thread is sampled: work on
// the libuv pool (LevelDB, fs), LevelDB's compaction thread, the FUSE thread
// and V8's GC helper threads shows up as "(idle)"/"(program)" here and is
// accounted per thread from /proc instead (see threadCpuSeconds).
import fs from 'node:fs'

interface CallFrame { functionName: string; url: string; lineNumber: number; columnNumber: number; scriptId: string }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface CpuProfile { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] }

export interface ProfileSummary {
  /** Sampled wall time in the window (ms), and the window actually used (µs, V8 monotonic clock). */
  totalMs: number
  windowUs: [number, number]
  /** True when the requested window did not overlap the profile and all samples were used. */
  fellBack: boolean
  /** Self time per function (ms), sorted, and per area (ms), sorted. */
  functions: Array<{ name: string; where: string; area: string; ms: number }>
  areas: Array<{ area: string; ms: number }>
}

/** Areas, checked in order against a frame's URL (first match wins). */
const URL_AREAS: Array<[RegExp, string]> = [
  [/node_modules\/zstd-codec\/|^wasm:\/\//, 'codec/zstd (zstd-codec, emscripten)'],
  [/node_modules\/(@protobufjs|protobufjs)\//, 'protobuf encode/decode (protobufjs)'],
  [/node_modules\/@grpc\//, 'gRPC (grpc-js)'],
  [/node:internal\/http2|node:http2/, 'gRPC (node http2)'],
  [/node_modules\/(classic-level|abstract-level|level|level-transcoder|module-error|maybe-combine-errors|napi-macros|node-gyp-build|level-supports)\//, 'journal/LevelDB (level JS)'],
  [/\/src\/journal\//, 'journal/LevelDB (src/journal)'],
  [/\/src\/storage-node\/level-/, 'volume log/LevelDB (src/storage-node/level-*)'],
  [/\/src\/storage-node\//, 'storage node (src/storage-node)'],
  [/\/src\/capture\//, 'capture/diff (src/capture)'],
  [/\/src\/codec\//, 'codec (src/codec: framing, seal/open)'],
  [/\/src\/sync\//, 'sync client/applier (src/sync)'],
  [/\/src\/rpc\//, 'rpc (src/rpc)'],
  [/\/src\/fs\//, 'FUSE ops + passthrough (src/fs)'],
  [/node_modules\/fuse-native\//, 'fuse-native binding'],
  [/\/src\/mount\//, 'mount (src/mount)'],
  [/node_modules\/(pino|pino-std-serializers|sonic-boom|thread-stream|on-exit-leak-free|quick-format-unescaped|fast-redact|safe-stable-stringify|atomic-sleep|real-require)\//, 'logging (pino)'],
  [/\/src\//, 'other src/'],
]

const SPECIAL: Record<string, string> = {
  '(idle)': 'idle',
  '(garbage collector)': 'GC (main thread)',
  '(program)': '(program): V8/native, not attributed',
  '(root)': '(program): V8/native, not attributed',
}

function areaOfUrl (url: string): string | undefined {
  for (const [re, area] of URL_AREAS) if (re.test(url)) return area
  return undefined
}

/**
 * Self time per area: a frame in node internals or native code (empty URL)
 * counts for the nearest caller that belongs to a known area (so
 * Buffer.compare called from src/capture counts as capture, fs.writeSync
 * called from the journal as journal); with no such caller it is
 * "node internals (event loop, fs, buffers, streams)".
 */
export function summarizeProfile (file: string, window?: [number, number]): ProfileSummary {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile
  const byId = new Map<number, ProfileNode>()
  const parent = new Map<number, number>()
  for (const n of prof.nodes) byId.set(n.id, n)
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id)

  const areaCache = new Map<number, string>()
  const areaOf = (id: number): string => {
    const hit = areaCache.get(id)
    if (hit !== undefined) return hit
    const cf = byId.get(id)!.callFrame
    let area = SPECIAL[cf.functionName] !== undefined && cf.url === '' ? SPECIAL[cf.functionName]! : undefined
    if (area === undefined) {
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const a = areaOfUrl(byId.get(cur)!.callFrame.url)
        if (a !== undefined) { area = a; break }
      }
    }
    area ??= 'node internals (event loop, fs, buffers, streams)'
    areaCache.set(id, area)
    return area
  }

  // Sample i lasts until sample i+1 (timeDeltas[i+1]); the last one gets the mean.
  const ts: number[] = []
  let t = prof.startTime
  for (const d of prof.timeDeltas) { t += d; ts.push(t) }
  let lo = prof.startTime
  let hi = prof.endTime
  let fellBack = false
  if (window) {
    if (window[1] <= prof.startTime || window[0] >= prof.endTime) fellBack = true
    else { lo = Math.max(lo, window[0]); hi = Math.min(hi, window[1]) }
  }
  const meanDelta = prof.samples.length > 0 ? (prof.endTime - prof.startTime) / prof.samples.length : 0
  const selfUs = new Map<number, number>()
  let total = 0
  for (let i = 0; i < prof.samples.length; i++) {
    if (ts[i]! < lo || ts[i]! > hi) continue
    const dur = i + 1 < ts.length ? ts[i + 1]! - ts[i]! : meanDelta
    selfUs.set(prof.samples[i]!, (selfUs.get(prof.samples[i]!) ?? 0) + dur)
    total += dur
  }

  const fnMap = new Map<string, { name: string; where: string; area: string; ms: number }>()
  const areaMap = new Map<string, number>()
  for (const [id, us] of selfUs) {
    const cf = byId.get(id)!.callFrame
    const area = areaOf(id)
    const short = cf.url.replace(/^file:\/\/.*?\/(node_modules|dist)\//, '$1/').replace(/^file:\/\//, '')
    const where = cf.url === '' ? '(native)' : `${short}:${cf.lineNumber + 1}`
    const name = cf.functionName || '(anonymous)'
    const key = `${name}@${where}`
    const e = fnMap.get(key) ?? { name, where, area, ms: 0 }
    e.ms += us / 1000
    fnMap.set(key, e)
    areaMap.set(area, (areaMap.get(area) ?? 0) + us / 1000)
  }
  return {
    totalMs: total / 1000,
    windowUs: [lo, hi],
    fellBack,
    functions: [...fnMap.values()].sort((a, b) => b.ms - a.ms),
    areas: [...areaMap.entries()].map(([area, ms]) => ({ area, ms })).sort((a, b) => b.ms - a.ms),
  }
}

/** CLOCK_MONOTONIC in µs, the clock V8's profiler timestamps use on Linux. */
export function monotonicUs (): number { return Number(process.hrtime.bigint() / 1000n) }
