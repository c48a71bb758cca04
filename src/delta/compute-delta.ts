// A copy/insert delta of a new file against its base (the record of the
// previous version), for the Rebuild op. Both files are read once, in order,
// to hash them and their content-defined chunks; chunks of the new file found
// in the base become copies. Only then are the literal runs read again, and
// trimmed byte by byte against the base around them, so an edited line costs
// about its own bytes rather than whole chunks.
import fsp, { type FileHandle } from 'node:fs/promises'
import type { Piece } from '../codec/wire.js'
import { DeltafsError } from '../util/errors.js'
import { chunkParams } from './chunker.js'
import { matchChunks, type Segment } from './match.js'
import { DEFAULT_MAX_INSERT, PieceBuilder } from './pieces.js'
import { readFully } from './read-fully.js'
import { scanFile } from './scan-file.js'
import { scanFileOnThread } from './scan-thread.js'

export interface DeltaOptions {
  /** Average chunk size, a power of two from 256 to 1 MiB; default 8 KiB. */
  avgChunkSize?: number
  /** Largest Insert piece; default 1 MiB. */
  maxInsertSize?: number
  /**
   * Scan the two files on two worker threads. 'auto' (the default) does so
   * when they are large enough to pay for starting the threads.
   */
  threads?: boolean | 'auto'
}

export interface DeltaStats {
  bytesReadBase: number
  bytesReadNew: number
  literalBytes: number
  copiedBytes: number
}

export interface Delta {
  pieces: Piece[]
  resultSize: number
  resultSha256: Buffer
  baseSha256: Buffer
  stats: DeltaStats
}

/** Below this many bytes in both files, starting threads (~50 ms) costs more than it saves. */
const THREADS_MIN_BYTES = 48 << 20

export async function computeDelta (basePath: string, newPath: string, opts: DeltaOptions = {}): Promise<Delta> {
  const params = chunkParams(opts.avgChunkSize)
  const maxInsert = opts.maxInsertSize ?? DEFAULT_MAX_INSERT
  if (!Number.isSafeInteger(maxInsert) || maxInsert < 1) {
    throw new DeltafsError('BAD_ARGUMENT', `maxInsertSize must be a positive integer, got ${maxInsert}`)
  }
  const [baseBefore, newBefore] = await Promise.all([fileIdentity(basePath), fileIdentity(newPath)])
  const threads = opts.threads ?? 'auto'
  const useThreads = threads === 'auto' ? baseBefore.size + newBefore.size >= THREADS_MIN_BYTES : threads
  const scan = useThreads ? scanFileOnThread : scanFile
  const [base, next] = await Promise.all([scan(basePath, params), scan(newPath, params)])
  const segments = matchChunks(base, next)

  const [baseFh, newFh] = await Promise.all([fsp.open(basePath, 'r'), fsp.open(newPath, 'r')])
  try {
    const reader = new RangeReader(baseFh, newFh)
    const pieces = await buildPieces(segments, reader, base.size, maxInsert)
    // The pieces mix bytes read in two passes: if the file changed in between,
    // its SHA-256 would not describe them, and the receiver would refuse them.
    const [baseAfter, newAfter] = await Promise.all([fileIdentity(basePath), fileIdentity(newPath)])
    for (const [path, before, after, scanned] of [
      [basePath, baseBefore, baseAfter, base.size], [newPath, newBefore, newAfter, next.size],
    ] as const) {
      if (before.key !== after.key || before.size !== scanned) {
        throw new DeltafsError('APPLY', `${path} changed while its delta was being computed`)
      }
    }
    const stats: DeltaStats = {
      bytesReadBase: base.size + reader.baseBytes,
      bytesReadNew: next.size + reader.newBytes,
      literalBytes: 0,
      copiedBytes: 0,
    }
    for (const piece of pieces) {
      if ('copy' in piece) stats.copiedBytes += piece.copy.length
      else stats.literalBytes += piece.insert.data.length
    }
    return { pieces, resultSize: next.size, resultSha256: next.sha256, baseSha256: base.sha256, stats }
  } finally {
    await Promise.all([baseFh.close(), newFh.close()])
  }
}

async function buildPieces (segments: Segment[], reader: RangeReader, baseSize: number, maxInsert: number): Promise<Piece[]> {
  const out = new PieceBuilder(maxInsert)
  for (let s = 0; s < segments.length; s++) {
    const seg = segments[s]!
    if (seg.kind === 'copy') {
      out.copy(seg.baseOffset, seg.length)
      continue
    }
    const prev = segments[s - 1]
    const next = segments[s + 1]
    // Where the base would go on if the edit had left these bytes alone: after
    // the copy before, and up to the copy after. Segments alternate, so the
    // neighbours are copies; at either end of the file, the ends of the base.
    const before = prev?.kind === 'copy' ? prev.baseOffset + prev.length : 0
    const after = next?.kind === 'copy' ? next.baseOffset : baseSize
    let start = seg.newOffset
    let end = seg.newOffset + seg.length
    const head = await reader.commonPrefix(start, before, Math.min(end - start, baseSize - before))
    out.copy(before, head)
    start += head
    const tail = await reader.commonSuffix(end, after, Math.min(end - start, after))
    end -= tail
    for (let pos = start; pos < end; pos += maxInsert) {
      out.insert(await reader.readNew(pos, Math.min(maxInsert, end - pos)))
    }
    if (tail > 0) {
      if (next?.kind === 'copy') {
        next.baseOffset -= tail
        next.length += tail
      } else {
        out.copy(baseSize - tail, tail)
      }
    }
  }
  return out.finish()
}

// An edit usually ends within a few bytes of a chunk edge: start small, grow
// for the rare long match (a chunk cut short by the end of the file).
const FIRST_STEP = 4096
const MAX_STEP = 256 << 10

/** Random reads of both files, counted, for the second pass. */
class RangeReader {
  baseBytes = 0
  newBytes = 0
  private readonly scratchBase = Buffer.allocUnsafe(MAX_STEP)
  private readonly scratchNew = Buffer.allocUnsafe(MAX_STEP)

  constructor (private readonly baseFh: FileHandle, private readonly newFh: FileHandle) {}

  /** Bytes of the new file at [pos, pos + length), which must all exist. */
  async readNew (pos: number, length: number): Promise<Buffer> {
    // Not from the pool: the buffer becomes an Insert and may live long.
    const buf = Buffer.allocUnsafeSlow(length)
    const n = await readFully(this.newFh, buf, pos)
    this.newBytes += n
    if (n < length) throw new DeltafsError('APPLY', 'new file shrank while its delta was being computed')
    return buf
  }

  /** How many bytes from newPos on equal the base from basePos on, up to limit. */
  async commonPrefix (newPos: number, basePos: number, limit: number): Promise<number> {
    let matched = 0
    for (let step = FIRST_STEP; matched < limit; step = Math.min(step * 2, MAX_STEP)) {
      const n = Math.min(step, limit - matched)
      const [a, b] = await this.readBoth(newPos + matched, basePos + matched, n)
      let i = 0
      while (i < a.length && i < b.length && a[i] === b[i]) i++
      matched += i
      if (i < n) break
    }
    return matched
  }

  /** How many bytes before newEnd equal the bytes before baseEnd, up to limit. */
  async commonSuffix (newEnd: number, baseEnd: number, limit: number): Promise<number> {
    let matched = 0
    for (let step = FIRST_STEP; matched < limit; step = Math.min(step * 2, MAX_STEP)) {
      const n = Math.min(step, limit - matched)
      const [a, b] = await this.readBoth(newEnd - matched - n, baseEnd - matched - n, n)
      if (a.length < n || b.length < n) break
      let i = n
      while (i > 0 && a[i - 1] === b[i - 1]) i--
      matched += n - i
      if (i > 0) break
    }
    return matched
  }

  private async readBoth (newPos: number, basePos: number, n: number): Promise<[Buffer, Buffer]> {
    const a = this.scratchNew.subarray(0, n)
    const b = this.scratchBase.subarray(0, n)
    const [na, nb] = await Promise.all([readFully(this.newFh, a, newPos), readFully(this.baseFh, b, basePos)])
    this.newBytes += na
    this.baseBytes += nb
    return [a.subarray(0, na), b.subarray(0, nb)]
  }
}

async function fileIdentity (path: string): Promise<{ size: number; key: string }> {
  const st = await fsp.stat(path, { bigint: true })
  return { size: Number(st.size), key: `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}` }
}
