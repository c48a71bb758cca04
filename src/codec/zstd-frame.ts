// Reads a zstd payload's structure without decompressing it, so a payload
// that would expand past what its header declares (a zstd bomb) is refused
// before any memory is committed: exactly one frame, with a content size.
import { DeltafsError } from '../util/errors.js'

const MAGIC = 0xFD2FB528

function bad (why: string): DeltafsError {
  return new DeltafsError('BAD_FRAME', `zstd payload refused: ${why}`)
}

/** Returns the frame's declared content size after checking it is one well-formed frame. */
export function zstdContentSize (data: Uint8Array): number {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  if (b.length < 6 || b.readUInt32LE(0) !== MAGIC) throw bad('not a zstd frame')
  const fhd = b[4]!
  const fcsFlag = fhd >> 6
  const singleSegment = (fhd >> 5) & 1
  const checksum = (fhd >> 2) & 1
  const dictFlag = fhd & 3
  if ((fhd >> 3) & 1) throw bad('reserved bit set')
  let pos = 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][dictFlag]!
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag]!
  if (fcsBytes === 0) throw bad('no content size in the frame header')
  if (pos + fcsBytes > b.length) throw bad('truncated frame header')
  let size: number
  switch (fcsBytes) {
    case 1: size = b[pos]!; break
    case 2: size = b.readUInt16LE(pos) + 256; break
    case 4: size = b.readUInt32LE(pos); break
    default: size = Number(b.readBigUInt64LE(pos))
  }
  pos += fcsBytes
  for (;;) {
    if (pos + 3 > b.length) throw bad('truncated block header')
    const header = b[pos]! | (b[pos + 1]! << 8) | (b[pos + 2]! << 16)
    pos += 3
    const last = header & 1
    const type = (header >> 1) & 3
    const blockSize = header >>> 3
    if (type === 3) throw bad('reserved block type')
    pos += type === 1 ? 1 : blockSize // RLE blocks store one byte
    if (pos > b.length) throw bad('truncated block')
    if (last) break
  }
  if (checksum) pos += 4
  if (pos !== b.length) throw bad('bytes after the frame (only one frame is allowed)')
  return size
}
