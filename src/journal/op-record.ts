// The value of an op key (o!) in the journal: either the Op's own encoding
// (inline) or, for a write large enough, a reference to its data in a payload
// segment plus the rest of the op.
//
// A reference starts with a 0x00 byte, which no Op encoding does: an encoded
// protobuf message starts with the tag of its first field, and a tag holds a
// field number of at least 1 (an Op with no field set encodes to no bytes).
//
// The bytes 0x01-0x07 cannot start one either (field number 0), so 0x01
// marks a reference that also carries the CRC-32 of its data.
//
// Reference layout: 0x00 or 0x01, segment (u64 BE), offset in it (u64 BE),
// length (u32 BE), for 0x01 the CRC-32 of the data (u32 BE), then the Op
// encoded with empty write data. The CRC lets the journal put a reference
// while its bytes are still being written, and tell after a crash or a power
// loss a reference whose bytes never reached the segment (a hole reads as
// zeros, so the segment's size alone cannot tell).
import zlib from 'node:zlib'
import { type Op, OpCodec } from '../codec/wire.js'
import type { PayloadRef } from './payload-store.js'
import { DeltafsError } from '../util/errors.js'

/** Smaller writes stay inline: a segment write and read costs more than it saves on them. */
export const MIN_PAYLOAD_BYTES = 16 << 10

const REF = 0x00
const REF_CRC = 0x01
const HEADER = 1 + 8 + 8 + 4
const HEADER_CRC = HEADER + 4

/** A payload reference as journaled: crc is absent in references written before it existed. */
export interface StoredRef extends PayloadRef { crc?: number }

export function crcOf (data: Uint8Array): number {
  return zlib.crc32(data)
}

/** The data of op if it is to go to a payload segment. */
export function payloadOf (op: Op): Uint8Array | undefined {
  return 'write' in op && op.write && op.write.data.length >= MIN_PAYLOAD_BYTES ? op.write.data : undefined
}

export function isRef (value: Uint8Array): boolean {
  return value.length > 0 && (value[0] === REF || value[0] === REF_CRC)
}

function headerOf (value: Uint8Array): number {
  return value[0] === REF_CRC ? HEADER_CRC : HEADER
}

/** The reference of op to its data at ref, whose CRC-32 is crc. */
export function encodeRef (op: Op, ref: PayloadRef, crc: number): Uint8Array {
  if (!('write' in op && op.write)) throw new DeltafsError('JOURNAL', 'only write ops keep their data in payload segments')
  const meta = OpCodec.encode({ write: { offset: op.write.offset, data: new Uint8Array(0) } })
  const out = Buffer.allocUnsafe(HEADER_CRC + meta.length)
  out[0] = REF_CRC
  out.writeBigUInt64BE(BigInt(ref.segment), 1)
  out.writeBigUInt64BE(BigInt(ref.offset), 9)
  out.writeUInt32BE(ref.length, 17)
  out.writeUInt32BE(crc, HEADER)
  out.set(meta, HEADER_CRC)
  return out
}

export function decodeRef (value: Uint8Array): StoredRef {
  if (!isRef(value) || value.length < headerOf(value)) throw new DeltafsError('JOURNAL', 'not a payload reference')
  const b = Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  const ref: StoredRef = { segment: Number(b.readBigUInt64BE(1)), offset: Number(b.readBigUInt64BE(9)), length: b.readUInt32BE(17) }
  if (value[0] === REF_CRC) ref.crc = b.readUInt32BE(HEADER)
  return ref
}

/** The op of a reference, given its data. */
export function resolveRef (value: Uint8Array, data: Uint8Array): Op {
  const op = OpCodec.decode(value.subarray(headerOf(value)))
  if (!('write' in op && op.write)) throw new DeltafsError('JOURNAL', 'payload reference of an op that is not a write')
  op.write.data = data
  return op
}

function varintBytes (n: number): number {
  let bytes = 1
  while (n >= 0x80) { n = Math.floor(n / 0x80); bytes++ }
  return bytes
}

/**
 * The bytes the op takes inline (its encoding), for either form: outbox
 * entries are split and counted by op bytes, whichever way they are stored.
 */
export function opBytes (value: Uint8Array): number {
  if (!isRef(value)) return value.length
  const { length } = decodeRef(value)
  const offset = (resolveRef(value, new Uint8Array(0)) as { write: { offset: number } }).write.offset
  return writeBytes(offset, length)
}

/** Length of the encoding of a Write op (proto3: fields at their default are left out). */
export function writeBytes (offset: number, length: number): number {
  const inner = (offset > 0 ? 1 + varintBytes(offset) : 0) + (length > 0 ? 1 + varintBytes(length) + length : 0)
  return 1 + varintBytes(inner) + inner
}
