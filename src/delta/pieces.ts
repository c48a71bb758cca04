// The Piece list of a Rebuild, built in result order. Normalizing here keeps
// the list short whatever order the matcher finds things in: copies that
// continue each other in the base become one, and literal bytes are packed
// into Inserts of at most maxInsert bytes so no single message field grows
// with the file.
import type { Piece } from '../codec/wire.js'

export const DEFAULT_MAX_INSERT = 1 << 20

export class PieceBuilder {
  private readonly pieces: Piece[] = []
  private parts: Uint8Array[] = []
  private partBytes = 0

  constructor (private readonly maxInsert = DEFAULT_MAX_INSERT) {}

  copy (offset: number, length: number): void {
    if (length === 0) return
    this.flushInsert()
    const last = this.pieces[this.pieces.length - 1]
    if (last && 'copy' in last && last.copy.offset + last.copy.length === offset) {
      last.copy.length += length
    } else {
      this.pieces.push({ copy: { offset, length } })
    }
  }

  /** Takes `data` as is (no copy): the caller must not reuse its memory. */
  insert (data: Uint8Array): void {
    let from = 0
    while (from < data.length) {
      const take = Math.min(data.length - from, this.maxInsert - this.partBytes)
      this.parts.push(data.subarray(from, from + take))
      this.partBytes += take
      from += take
      if (this.partBytes === this.maxInsert) this.flushInsert()
    }
  }

  finish (): Piece[] {
    this.flushInsert()
    return this.pieces
  }

  private flushInsert (): void {
    if (this.partBytes === 0) return
    const data = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partBytes)
    this.pieces.push({ insert: { data } })
    this.parts = []
    this.partBytes = 0
  }
}

/**
 * Bytes the pieces take in an encoded Rebuild message (field 2, repeated
 * Piece), exactly as protobuf encodes them; zstd may shrink the Inserts.
 */
export function deltaWireSize (pieces: readonly Piece[]): number {
  let total = 0
  for (const piece of pieces) {
    let body: number
    if ('copy' in piece && piece.copy) {
      // Copy { offset = 1; length = 2 }: zero values are not written.
      const { offset, length } = piece.copy
      const copy = (offset > 0 ? 1 + varintSize(offset) : 0) + (length > 0 ? 1 + varintSize(length) : 0)
      body = field(copy)
    } else {
      // Insert { data = 1 }
      const n = (piece as { insert: { data: Uint8Array } }).insert.data.length
      body = field(n > 0 ? field(n) : 0)
    }
    total += field(body)
  }
  return total
}

/** A length-delimited field: tag, length, body. */
function field (bodyBytes: number): number {
  return 1 + varintSize(bodyBytes) + bodyBytes
}

function varintSize (n: number): number {
  let size = 1
  while (n >= 128) { n = Math.floor(n / 128); size++ }
  return size
}
