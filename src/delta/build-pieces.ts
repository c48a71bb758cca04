// Turns segments into pieces. Chunk matching only knows whole chunks, so each
// literal run is first trimmed byte by byte: its head is compared with the
// base right after the copy before it, its tail with the base right before the
// copy after it, and what agrees becomes part of those copies. An edited line
// then costs about its own bytes instead of the chunks around it.
import type { Piece } from '../codec/wire.js'
import { DeltafsError } from '../util/errors.js'
import { endOfLastDifference, firstDifference } from './anchors.js'
import type { Segment } from './match.js'
import { PieceBuilder } from './pieces.js'
import type { SourceFile } from './source-file.js'

/** Segments cover the new file in order, with no two literals adjacent. */
export async function buildPieces (segments: Segment[], base: SourceFile, next: SourceFile, maxInsert: number): Promise<Piece[]> {
  const out = new PieceBuilder(maxInsert)
  const trim = new Trimmer(base, next)
  for (let s = 0; s < segments.length; s++) {
    const seg = segments[s]!
    if (seg.kind === 'copy') {
      out.copy(seg.baseOffset, seg.length)
      continue
    }
    const prev = segments[s - 1]
    const following = segments[s + 1]
    // Where the base would go on if these bytes were unchanged: after the copy
    // before and up to the copy after; at either end of the file, the ends of
    // the base.
    const before = prev?.kind === 'copy' ? prev.baseOffset + prev.length : 0
    const after = following?.kind === 'copy' ? following.baseOffset : base.size
    let start = seg.newOffset
    let end = seg.newOffset + seg.length
    const head = await trim.commonPrefix(start, before, Math.min(end - start, base.size - before))
    out.copy(before, head)
    start += head
    const tail = await trim.commonSuffix(end, after, Math.min(end - start, after))
    end -= tail
    for (let pos = start; pos < end; pos += maxInsert) {
      out.insert(await trim.readNew(pos, Math.min(maxInsert, end - pos)))
    }
    if (tail === 0) continue
    if (following?.kind === 'copy') {
      following.baseOffset -= tail
      following.length += tail
    } else {
      out.copy(base.size - tail, tail)
    }
  }
  return out.finish()
}

// An edit usually ends within a few bytes of a chunk edge: start small, grow
// for the rare long agreement (a chunk cut short by the end of the file).
const FIRST_STEP = 4096
const MAX_STEP = 256 << 10

class Trimmer {
  private readonly scratchBase = Buffer.allocUnsafe(MAX_STEP)
  private readonly scratchNew = Buffer.allocUnsafe(MAX_STEP)

  constructor (private readonly base: SourceFile, private readonly next: SourceFile) {}

  /** Bytes of the new file at [pos, pos + length), for an Insert. */
  async readNew (pos: number, length: number): Promise<Buffer> {
    // Not from the shared pool: the buffer outlives this call as an Insert.
    const buf = Buffer.allocUnsafeSlow(length)
    if (await this.next.read(buf, pos) < length) {
      throw new DeltafsError('APPLY', `${this.next.path} shrank while its delta was being computed`)
    }
    return buf
  }

  /** How many bytes from newPos on equal the base from basePos on, up to limit. */
  async commonPrefix (newPos: number, basePos: number, limit: number): Promise<number> {
    let agreed = 0
    for (let step = FIRST_STEP; agreed < limit; step = Math.min(step * 2, MAX_STEP)) {
      const [a, b] = await this.readBoth(newPos + agreed, basePos + agreed, Math.min(step, limit - agreed))
      const n = Math.min(a.length, b.length)
      const at = firstDifference(a.subarray(0, n), b.subarray(0, n))
      agreed += at
      if (at < a.length || at < b.length || n === 0) break
    }
    return agreed
  }

  /** How many bytes before newEnd equal the bytes before baseEnd, up to limit. */
  async commonSuffix (newEnd: number, baseEnd: number, limit: number): Promise<number> {
    let agreed = 0
    for (let step = FIRST_STEP; agreed < limit; step = Math.min(step * 2, MAX_STEP)) {
      const n = Math.min(step, limit - agreed)
      const [a, b] = await this.readBoth(newEnd - agreed - n, baseEnd - agreed - n, n)
      if (a.length < n || b.length < n) break
      const end = endOfLastDifference(a, b)
      agreed += n - end
      if (end > 0) break
    }
    return agreed
  }

  private async readBoth (newPos: number, basePos: number, n: number): Promise<[Buffer, Buffer]> {
    const a = this.scratchNew.subarray(0, n)
    const b = this.scratchBase.subarray(0, n)
    const [na, nb] = await Promise.all([this.next.read(a, newPos), this.base.read(b, basePos)])
    return [a.subarray(0, na), b.subarray(0, nb)]
  }
}
