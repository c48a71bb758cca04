// Most saves change one place: the new file is the base with one run of bytes
// replaced. Comparing the two files block by block finds that run at memcmp
// speed, long before chunking could: first at the same offsets up to the
// first difference (the common prefix), then at the shift the change of size
// implies, up to the last difference (the common suffix). These two passes
// are also where both files are read in order and their SHA-256 taken.
import type { SequentialHash } from './sequential-hash.js'
import { BlockReader, type SourceFile } from './source-file.js'

export interface Anchors {
  /** new[0, prefix) equals base[0, prefix). */
  prefix: number
  /** new[suffixStart, end) equals base[suffixStart - shift, end), shift = new size - base size; prefix <= suffixStart. */
  suffixStart: number
}

export interface Side { file: SourceFile; hash: SequentialHash }

export async function findAnchors (base: Side, next: Side): Promise<Anchors> {
  let prefix = Math.min(base.file.size, next.file.size)
  await compareBlocks(base, next, 0, prefix, 0, (pos, a, b) => {
    const at = firstDifference(a, b)
    if (at === a.length) return true
    prefix = pos + at
    return false
  })
  const shift = next.file.size - base.file.size
  let suffixStart = Math.max(prefix, shift)
  await compareBlocks(base, next, suffixStart, next.file.size, shift, (pos, a, b) => {
    const end = endOfLastDifference(a, b)
    if (end > 0) suffixStart = pos + end
    return true
  })
  return { prefix, suffixStart }
}

/**
 * Walks new[from, to) and base[from - shift, to - shift) together in blocks,
 * feeding both hashes, while visit returns true. A file that ends early (it
 * changed underneath) ends the walk; the caller's final checks catch it.
 */
async function compareBlocks (
  base: Side, next: Side, from: number, to: number, shift: number,
  visit: (pos: number, a: Buffer, b: Buffer) => boolean,
): Promise<void> {
  const newBlocks = new BlockReader(next.file, from, to)
  const baseBlocks = new BlockReader(base.file, from - shift, to - shift)
  for (let pos = from; pos < to;) {
    const [a, b] = await Promise.all([newBlocks.next(), baseBlocks.next()])
    const n = Math.min(a.length, b.length)
    if (n === 0) return
    await next.hash.saw(pos, a)
    await base.hash.saw(pos - shift, b)
    if (!visit(pos, a.subarray(0, n), b.subarray(0, n))) return
    pos += n
  }
}

// Both searches halve the range with native compares, which stop at the first
// differing byte, and finish with a short byte loop.

/** Index of the first byte where a and b (of equal length) differ; a.length if none. */
export function firstDifference (a: Uint8Array, b: Uint8Array): number {
  const x = toBuffer(a)
  let lo = 0
  let hi = a.length
  // a and b agree on [0, lo); a difference, if any, is before hi.
  while (hi - lo > 64) {
    const mid = (lo + hi) >>> 1
    if (x.compare(b, lo, mid, lo, mid) === 0) lo = mid
    else hi = mid
  }
  while (lo < hi && a[lo] === b[lo]) lo++
  return lo
}

/** One past the last byte where a and b (of equal length) differ; 0 if none. */
export function endOfLastDifference (a: Uint8Array, b: Uint8Array): number {
  const x = toBuffer(a)
  let lo = 0
  let hi = a.length
  // a and b agree on [hi, length); a difference, if any, is at or after lo.
  while (hi - lo > 64) {
    const mid = (lo + hi) >>> 1
    if (x.compare(b, mid, hi, mid, hi) === 0) hi = mid
    else lo = mid
  }
  while (hi > lo && a[hi - 1] === b[hi - 1]) hi--
  return hi
}

function toBuffer (a: Uint8Array): Buffer {
  return Buffer.isBuffer(a) ? a : Buffer.from(a.buffer, a.byteOffset, a.byteLength)
}
