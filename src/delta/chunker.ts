// Content-defined chunking with a gear hash, in the FastCDC style. A cut
// depends only on the few dozen bytes before it, so an insert or a delete moves
// the cuts next to the edit and nowhere else: the unchanged runs of a rewritten
// file fall into the same chunks as in the base, wherever they now sit.

import { DeltafsError } from '../util/errors.js'

export interface ChunkParams {
  /** No cut is looked for before this many bytes: the hash is not even rolled there. */
  min: number
  /** Where the cut test switches from the hard mask to the easy one. */
  avg: number
  /** A chunk is cut here whatever its content. */
  max: number
  maskHard: number
  maskEasy: number
}

/**
 * Parameters for chunks of about `avg` bytes (a power of two). Sizes cluster
 * around avg because the test is two bits harder before it and two bits easier
 * after it (FastCDC's normalized chunking).
 */
export function chunkParams (avg = 8192): ChunkParams {
  if (!Number.isInteger(avg) || avg < 256 || avg > (1 << 20) || (avg & (avg - 1)) !== 0) {
    throw new DeltafsError('BAD_ARGUMENT', `average chunk size must be a power of two from 256 to 1048576, got ${avg}`)
  }
  const bits = Math.log2(avg)
  return { min: avg / 4, avg, max: avg * 8, maskHard: highBits(bits + 2), maskEasy: highBits(bits - 2) }
}

// With h = (h << 1) + G[byte], bit k of h depends on the last k + 1 bytes, so
// only the high bits see a window wide enough to be content-defined.
function highBits (n: number): number {
  return (0xffffffff << (32 - n)) | 0
}

// Both files of a delta may be chunked on different threads, and a base index
// may one day be kept: the table must be the same in every process, hence a
// fixed seed rather than random bytes. Int32 values keep V8 on small-integer
// arithmetic in the hot loop.
const GEAR = ((): Int32Array => {
  const table = new Int32Array(256)
  let state = 0x9e3779b9
  for (let i = 0; i < 256; i++) {
    // splitmix32
    state = (state + 0x9e3779b9) | 0
    let z = state
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
    table[i] = z ^ (z >>> 16)
  }
  return table
})()

/**
 * End (exclusive) of the chunk that starts at `start`. The caller guarantees
 * that `end - start >= p.max` unless `end` is the end of the file.
 */
export function cutPoint (buf: Uint8Array, start: number, end: number, p: ChunkParams): number {
  const available = end - start
  if (available <= p.min) return end
  const limit = start + Math.min(available, p.max)
  const normal = Math.min(start + p.avg, limit)
  const gear = GEAR
  const hard = p.maskHard
  const easy = p.maskEasy
  let h = 0
  let i = start + p.min
  for (; i < normal; i++) {
    h = ((h << 1) + gear[buf[i]!]!) | 0
    if ((h & hard) === 0) return i + 1
  }
  for (; i < limit; i++) {
    h = ((h << 1) + gear[buf[i]!]!) | 0
    if ((h & easy) === 0) return i + 1
  }
  return limit
}
