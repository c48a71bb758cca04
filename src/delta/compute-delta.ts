// A copy/insert delta of a new file against its base (the record of the
// previous version), for the Rebuild op. Everything is streamed: memory grows
// with the chunk index of the base and the literal bytes, never with the files.
//
//  1. Anchors: a common prefix and a common suffix found by comparing the
//     files block by block, which also hashes both. For the usual save (one
//     place edited, or nothing, or an append) this is the whole delta.
//  2. If what lies between is large, it is chunked (content-defined) and
//     looked up in an index of the whole base's chunks, which finds moved
//     and duplicated content.
//  3. Literal runs are trimmed against the base around them and read.
import type { Piece } from '../codec/wire.js'
import { DeltafsError } from '../util/errors.js'
import { findAnchors } from './anchors.js'
import { buildPieces } from './build-pieces.js'
import { chunkParams, type ChunkParams } from './chunker.js'
import { appendSegment, matchChunks, type Segment } from './match.js'
import { DEFAULT_MAX_INSERT } from './pieces.js'
import { scanChunks } from './scan-chunks.js'
import { SequentialHash } from './sequential-hash.js'
import { SourceFile } from './source-file.js'

export interface DeltaOptions {
  /** Average chunk size, a power of two from 256 to 1 MiB; default 8 KiB. */
  avgChunkSize?: number
  /** Largest Insert piece; default 1 MiB. */
  maxInsertSize?: number
  /**
   * The changed run between the common prefix and suffix is sent as is when
   * it is at most this many bytes; default 64 KiB, the wire budget of an
   * edited line. Larger runs are looked for in the base by chunks, see
   * CHUNKED_SEARCH_MIN_SHARE.
   */
  directMax?: number
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

/**
 * The chunked search reads and hashes the whole base (about 2 ns a byte) to
 * save at most the changed run on the wire: below this share of the base (an
 * append to a large log, say) it costs more than it can save.
 */
const CHUNKED_SEARCH_MIN_SHARE = 1 / 64

export async function computeDelta (basePath: string, newPath: string, opts: DeltaOptions = {}): Promise<Delta> {
  const params = chunkParams(opts.avgChunkSize)
  const maxInsert = opts.maxInsertSize ?? DEFAULT_MAX_INSERT
  const directMax = opts.directMax ?? 64 << 10
  for (const [name, value, least] of [['maxInsertSize', maxInsert, 1], ['directMax', directMax, 0]] as const) {
    if (!Number.isSafeInteger(value) || value < least) throw new DeltafsError('BAD_ARGUMENT', `${name} must be an integer >= ${least}, got ${value}`)
  }
  const base = await SourceFile.open(basePath)
  try {
    const next = await SourceFile.open(newPath)
    try {
      return await deltaOf(base, next, params, maxInsert, directMax)
    } finally {
      await next.close()
    }
  } finally {
    await base.close()
  }
}

async function deltaOf (base: SourceFile, next: SourceFile, params: ChunkParams, maxInsert: number, directMax: number): Promise<Delta> {
  const baseSide = { file: base, hash: new SequentialHash(base) }
  const nextSide = { file: next, hash: new SequentialHash(next) }
  const { prefix, suffixStart } = await findAnchors(baseSide, nextSide)

  const segments: Segment[] = []
  appendSegment(segments, { kind: 'copy', baseOffset: 0, length: prefix })
  const changed = suffixStart - prefix
  if (changed > directMax && changed >= base.size * CHUNKED_SEARCH_MIN_SHARE) {
    const baseChunks = await scanChunks(base, 0, base.size, params)
    const newChunks = await scanChunks(next, prefix, suffixStart, params)
    for (const seg of matchChunks(baseChunks, newChunks)) appendSegment(segments, seg)
  } else {
    appendSegment(segments, { kind: 'literal', newOffset: prefix, length: changed })
  }
  const shift = next.size - base.size
  appendSegment(segments, { kind: 'copy', baseOffset: suffixStart - shift, length: next.size - suffixStart })
  const pieces = await buildPieces(segments, base, next, maxInsert)

  const resultSha256 = await nextSide.hash.digest()
  const baseSha256 = await baseSide.hash.digest()
  // The pieces mix bytes from several reads: if a file changed in between,
  // its SHA-256 would not describe them and the receiver would refuse them.
  for (const file of [base, next]) {
    if (!await file.unchanged()) throw new DeltafsError('APPLY', `${file.path} changed while its delta was being computed`)
  }
  const stats: DeltaStats = { bytesReadBase: base.bytesRead, bytesReadNew: next.bytesRead, literalBytes: 0, copiedBytes: 0 }
  for (const piece of pieces) {
    if ('copy' in piece) stats.copiedBytes += piece.copy.length
    else stats.literalBytes += piece.insert.data.length
  }
  return { pieces, resultSize: next.size, resultSha256, baseSha256, stats }
}
