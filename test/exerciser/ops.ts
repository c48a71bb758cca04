// The exerciser's operations: plain data (so a run can be replayed, cut
// down and printed), a seeded generator, and deterministic file content.

export type Op =
  /** open(O_CREAT|O_EXCL|O_WRONLY, 0644), close. */
  | { k: 'create'; f: string }
  /** open(O_WRONLY), pwrite len bytes at off, fsync when sync, close. */
  | { k: 'write'; f: string; off: number; len: number; s: number; sync?: boolean }
  /** Write len bytes `gap` bytes past EOF: extends the file with a hole. */
  | { k: 'hole'; f: string; gap: number; len: number; s: number }
  /** open(O_CREAT|O_TRUNC|O_WRONLY), write len bytes, close: a save by truncation. */
  | { k: 'rewrite'; f: string; len: number; s: number }
  /** An atomic save: write a temp file, fsync, rename it over f. */
  | { k: 'save'; f: string; len: number; s: number }
  | { k: 'truncate'; f: string; size: number }
  | { k: 'rename'; f: string; to: string }
  | { k: 'link'; f: string; to: string }
  | { k: 'unlink'; f: string }
  | { k: 'chmod'; f: string; mode: number }
  /** pread len bytes at off; len -1 reads the whole file. Compared with the model. */
  | { k: 'read'; f: string; off: number; len: number }
  /**
   * Descriptors kept open across other ops (renames, unlinks, saves over
   * the file): open(O_RDWR) into a slot, then pwrite, pread, ftruncate and
   * close on the slot. The file they reach is the inode, wherever its names went.
   */
  | { k: 'open'; f: string; slot: number }
  | { k: 'fwrite'; slot: number; off: number; len: number; s: number }
  | { k: 'fread'; slot: number; off: number; len: number }
  | { k: 'ftruncate'; slot: number; size: number }
  | { k: 'close'; slot: number }
  /**
   * Closes every slot: at checkpoints, since a file truncated while open
   * stays a held rewrite (not yet sent) until its last close.
   */
  | { k: 'closeall' }

export const TEMP_NAME = '.save-tmp'
export const SUBDIR = 'd'
export const NAMES: readonly string[] = [
  ...Array.from({ length: 14 }, (_, i) => `f${i}`),
  ...Array.from({ length: 6 }, (_, i) => `${SUBDIR}/g${i}`),
]
const MAX_SIZE = 384 * 1024

/** sfc32: small, fast, seedable. */
export class Rng {
  private a: number; private b: number; private c: number; private d: number
  constructor (seed: number) {
    this.a = 0x9e3779b9; this.b = 0x243f6a88; this.c = 0xb7e15162; this.d = seed >>> 0
    for (let i = 0; i < 15; i++) this.next()
  }

  next (): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return (t >>> 0) / 4294967296
  }

  int (lo: number, hi: number): number { return lo + Math.floor(this.next() * (hi - lo + 1)) }
  pick<T> (xs: readonly T[]): T { return xs[Math.floor(this.next() * xs.length)]! }
  chance (p: number): boolean { return this.next() < p }
}

function mix32 (x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d)
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b)
  return (x ^ (x >>> 16)) >>> 0
}

/**
 * The bytes of stream s at absolute offsets [off, off+len): the same stream
 * written twice over the same range changes nothing, which exercises
 * capture's unchanged-block path.
 */
export function content (s: number, off: number, len: number): Buffer {
  const out = Buffer.allocUnsafe(len)
  const seed = mix32(s + 0x51ed27)
  let word = -1
  let w = 0
  for (let i = 0; i < len; i++) {
    const at = off + i
    const wi = Math.floor(at / 4)
    if (wi !== word) { word = wi; w = mix32(seed ^ mix32(wi)) }
    out[i] = (w >>> ((at & 3) * 8)) & 0xff
  }
  return out
}

export const SLOTS = 3

/** What the generator needs to know of the current state. */
export interface View {
  size (f: string): number | undefined
  /** Size of the file open in a slot; undefined when the slot is closed. */
  slotSize (slot: number): number | undefined
  /** How many names f's file has (0 when f does not exist). */
  names (f: string): number
  /** Whether f's file is open in a slot. */
  isOpen (f: string): boolean
}

function length (r: Rng): number {
  const p = r.next()
  if (p < 0.6) return r.int(1, 512)
  if (p < 0.9) return r.int(513, 16 * 1024)
  return r.int(16 * 1024, 200 * 1024)
}

/** One random operation, biased towards files that exist. */
export function generate (r: Rng, view: View): Op {
  const existing = NAMES.filter(n => view.size(n) !== undefined)
  const anyName = (): string => r.pick(NAMES)
  const name = (): string => existing.length > 0 && r.chance(0.85) ? r.pick(existing) : anyName()
  const stream = (): number => r.chance(0.3) ? r.int(0, 3) : r.int(0, 1 << 30)
  if (r.chance(0.12)) return generateFd(r, view, name, stream)
  const p = r.int(0, 99)
  if (p < 28) {
    const f = name()
    const size = view.size(f) ?? 0
    const q = r.next()
    const off = q < 0.7 ? r.int(0, size) : q < 0.9 ? size + r.int(0, 8192) : r.int(0, MAX_SIZE)
    const len = Math.max(1, Math.min(length(r), MAX_SIZE - off))
    return { k: 'write', f, off: Math.min(off, MAX_SIZE - 1), len, s: stream(), ...(r.chance(0.04) ? { sync: true } : {}) }
  }
  if (p < 48) {
    const f = name()
    const size = view.size(f) ?? 0
    return r.chance(0.3) ? { k: 'read', f, off: 0, len: -1 } : { k: 'read', f, off: r.int(0, size + 100), len: r.int(1, 70_000) }
  }
  if (p < 53) {
    const f = name()
    const gap = r.chance(0.5) ? r.int(1, 4096) : r.int(4097, 100_000)
    return (view.size(f) ?? 0) + gap > MAX_SIZE ? { k: 'truncate', f, size: r.int(0, 4096) } : { k: 'hole', f, gap, len: r.int(1, 5000), s: stream() }
  }
  if (p < 61) {
    const f = name()
    const size = view.size(f) ?? 0
    const q = r.next()
    return { k: 'truncate', f, size: q < 0.15 ? 0 : q < 0.6 ? r.int(0, size) : Math.min(MAX_SIZE, size + r.int(1, 20_000)) }
  }
  if (p < 67) return { k: 'rewrite', f: name(), len: r.chance(0.1) ? 0 : length(r), s: stream() }
  if (p < 71) return { k: 'save', f: name(), len: length(r), s: stream() }
  if (p < 76) return { k: 'create', f: anyName() }
  if (p < 84) return { k: 'rename', f: name(), to: r.chance(0.5) ? name() : anyName() }
  if (p < 88) {
    const f = name()
    return view.isOpen(f) ? { k: 'read', f, off: 0, len: -1 } : { k: 'link', f, to: anyName() }
  }
  if (p < 94) return { k: 'unlink', f: name() }
  return { k: 'chmod', f: name(), mode: r.pick([0o600, 0o644, 0o640, 0o755]) }
}

function generateFd (r: Rng, view: View, name: () => string, stream: () => number): Op {
  const slot = r.int(0, SLOTS - 1)
  const size = view.slotSize(slot)
  if (size === undefined) {
    // A known FUSE limit, not tested: libfuse 2's high-level API gives each
    // name of a hard-linked file its own kernel inode and page cache, so a
    // descriptor open through one name can read stale cached pages after the
    // file changed through another (close-to-open holds: the mount drops a
    // file's cached pages at every open). Descriptors
    // are opened on files with one name only, and those get no new links.
    const f = name()
    return view.names(f) > 1 ? { k: 'read', f, off: 0, len: -1 } : { k: 'open', f, slot }
  }
  const p = r.int(0, 99)
  if (p < 40) {
    const off = r.chance(0.8) ? r.int(0, size) : size + r.int(1, 20_000)
    return { k: 'fwrite', slot, off: Math.min(off, MAX_SIZE - 1), len: Math.max(1, Math.min(length(r), MAX_SIZE - off)), s: stream() }
  }
  if (p < 70) return { k: 'fread', slot, off: r.int(0, size + 10), len: r.int(1, 70_000) }
  if (p < 80) return { k: 'ftruncate', slot, size: r.chance(0.2) ? 0 : r.int(0, Math.min(MAX_SIZE, size + 10_000)) }
  return { k: 'close', slot }
}

export function formatOp (op: Op): string {
  switch (op.k) {
    case 'write': return `write ${op.f} off=${op.off} len=${op.len} s=${op.s}${op.sync ? ' +fsync' : ''}`
    case 'hole': return `hole ${op.f} gap=${op.gap} len=${op.len} s=${op.s}`
    case 'rewrite': return `rewrite ${op.f} len=${op.len} s=${op.s}`
    case 'save': return `save ${op.f} len=${op.len} s=${op.s}`
    case 'truncate': return `truncate ${op.f} size=${op.size}`
    case 'rename': return `rename ${op.f} -> ${op.to}`
    case 'link': return `link ${op.f} -> ${op.to}`
    case 'chmod': return `chmod ${op.f} ${op.mode.toString(8)}`
    case 'read': return `read ${op.f} off=${op.off} len=${op.len}`
    case 'open': return `open ${op.f} as fd${op.slot}`
    case 'fwrite': return `fwrite fd${op.slot} off=${op.off} len=${op.len} s=${op.s}`
    case 'fread': return `fread fd${op.slot} off=${op.off} len=${op.len}`
    case 'ftruncate': return `ftruncate fd${op.slot} size=${op.size}`
    case 'close': return `close fd${op.slot}`
    case 'closeall': return 'close all fds'
    default: return `${op.k} ${op.f}`
  }
}
