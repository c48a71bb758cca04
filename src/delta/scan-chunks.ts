// One streaming pass over a range of a file: the SHA-256 of each of its
// content-defined chunks. Memory is the read blocks, one window and the chunk
// list (36 bytes a chunk), whatever the size of the range.
import crypto from 'node:crypto'
import { type ChunkParams, cutPoint } from './chunker.js'
import { BlockReader, type SourceFile } from './source-file.js'

export const DIGEST_BYTES = 32

export interface ChunkScan {
  /** File offset of the first chunk. */
  start: number
  /** Chunk lengths in file order: chunk i starts where chunk i - 1 ends. */
  lengths: Uint32Array
  /** SHA-256 of chunk i at [32 i, 32 i + 32). */
  digests: Buffer
  count: number
}

export async function scanChunks (file: SourceFile, start: number, end: number, params: ChunkParams): Promise<ChunkScan> {
  const chunks = new ChunkList()
  const reader = new BlockReader(file, start, end)
  // Cuts are made only with max bytes of lookahead (or at the end), so the
  // window keeps the unchunked tail of one block in front of the next, and no
  // chunk is ever split across two buffers.
  const window = Buffer.allocUnsafeSlow(params.max + (1 << 20))
  let filled = 0
  for (;;) {
    const block = await reader.next()
    const last = block.length === 0
    block.copy(window, filled)
    filled += block.length
    let p = 0
    while (filled - p >= params.max || (last && p < filled)) {
      const cut = cutPoint(window, p, filled, params)
      chunks.push(cut - p, crypto.hash('sha256', window.subarray(p, cut), 'buffer'))
      p = cut
    }
    if (last) break
    window.copy(window, 0, p, filled)
    filled -= p
  }
  return { start, ...chunks.finish() }
}

/** Growable arrays of chunk lengths and digests. */
class ChunkList {
  private lengths = new Uint32Array(1024)
  private digests = Buffer.allocUnsafeSlow(1024 * DIGEST_BYTES)
  private count = 0

  push (length: number, digest: Uint8Array): void {
    if (this.count === this.lengths.length) {
      const lengths = new Uint32Array(this.count * 2)
      lengths.set(this.lengths)
      this.lengths = lengths
      const digests = Buffer.allocUnsafeSlow(this.count * 2 * DIGEST_BYTES)
      this.digests.copy(digests)
      this.digests = digests
    }
    this.lengths[this.count] = length
    this.digests.set(digest, this.count * DIGEST_BYTES)
    this.count++
  }

  finish (): Omit<ChunkScan, 'start'> {
    return { lengths: this.lengths, digests: this.digests, count: this.count }
  }
}
