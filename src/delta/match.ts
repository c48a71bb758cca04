// Lines the chunks of the new file up against the chunks of the base: each new
// chunk whose SHA-256 is also a base chunk becomes a copy, the rest literal.
// SHA-256 is the identity itself, so a match never needs a second check.
import { type ChunkScan, DIGEST_BYTES } from './scan-chunks.js'

export interface CopySegment { kind: 'copy'; baseOffset: number; length: number }
export interface LiteralSegment { kind: 'literal'; newOffset: number; length: number }
/** Segments cover the new file in order; two literals are never adjacent. */
export type Segment = CopySegment | LiteralSegment

export function matchChunks (base: ChunkScan, next: ChunkScan): Segment[] {
  const baseDigests = base.digests
  const nextDigests = next.digests
  const baseStarts = new Float64Array(base.count + 1)
  baseStarts[0] = base.start
  const index = new Map<string, number>()
  for (let i = 0; i < base.count; i++) {
    baseStarts[i + 1] = baseStarts[i]! + base.lengths[i]!
    const key = digestKey(baseDigests, i)
    if (!index.has(key)) index.set(key, i)
  }

  const segments: Segment[] = []
  let newOffset = next.start
  let lastBase = -1
  for (let i = 0; i < next.count; i++) {
    const length = next.lengths[i]!
    // Prefer the base chunk right after the last one used: repeated content
    // (zeros, boilerplate) then still turns into one long copy.
    const j = lastBase >= 0 && lastBase + 1 < base.count && sameDigest(baseDigests, lastBase + 1, nextDigests, i)
      ? lastBase + 1
      : index.get(digestKey(nextDigests, i)) ?? -1
    appendSegment(segments, j >= 0 ? { kind: 'copy', baseOffset: baseStarts[j]!, length } : { kind: 'literal', newOffset, length })
    lastBase = j
    newOffset += length
  }
  return segments
}

/** Appends seg to segments, which cover the new file in order, merging it into the last one when they continue each other. */
export function appendSegment (segments: Segment[], seg: Segment): void {
  if (seg.length === 0) return
  const last = segments[segments.length - 1]
  if (last?.kind === 'copy' && seg.kind === 'copy' && last.baseOffset + last.length === seg.baseOffset) last.length += seg.length
  else if (last?.kind === 'literal' && seg.kind === 'literal') last.length += seg.length
  else segments.push(seg)
}

function digestKey (digests: Buffer, i: number): string {
  return digests.toString('latin1', i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES)
}

function sameDigest (a: Buffer, i: number, b: Buffer, j: number): boolean {
  return a.compare(b, j * DIGEST_BYTES, (j + 1) * DIGEST_BYTES, i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES) === 0
}
