// Typed access to the deltafs.v1 protobuf schema. The .proto file is the
// truth; these interfaces mirror it so that no untyped object leaves here.
import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs'
import { DeltafsError } from '../util/errors.js'

export interface TxId { deviceId: string; deviceSeq: number }

export interface SetAttrOp {
  hasMode?: boolean; mode?: number
  hasMtime?: boolean; mtimeNs?: bigint
  hasAtime?: boolean; atimeNs?: bigint
  hasUid?: boolean; uid?: number
  hasGid?: boolean; gid?: number
}

export type Piece = { copy: { offset: number; length: number } } | { insert: { data: Uint8Array } }

export interface RebuildOp {
  baseVersion: number
  pieces: Piece[]
  resultSize: number
  resultSha256: Uint8Array
  baseSha256: Uint8Array
}

export type Op =
  | { create: { mode: number } }
  | { write: { offset: number; data: Uint8Array } }
  | { truncate: { size: number } }
  | { unlink: Record<string, never> }
  | { mkdir: { mode: number } }
  | { rmdir: Record<string, never> }
  | { rename: { to: string } }
  | { symlink: { target: string } }
  | { setAttr: SetAttrOp }
  | { link: { to: string } }
  | { rebuild: RebuildOp }
  | { refresh: { deviceId: string } }
  | { setXattr: { name: string; value: Uint8Array } }
  | { removeXattr: { name: string } }
  | { mknod: { mode: number } }

export interface Transaction {
  txId: TxId
  volume: string
  fileId: string
  baseVersion: number
  path: string
  ops: Op[]
  mtimeNs: bigint
  sourceFileId?: string
  sourceBaseVersion?: number
  /** Of a transaction split into parts (LevelJournal.closeTx): this part's number from 1, and whether parts follow. */
  part?: number
  moreParts?: boolean
  /** The file's other names on its author, under which the same change is journaled too (hard links). */
  alsoAt?: string[]
  /** The volume seq the author had applied when it journaled the change (with alsoAt). */
  alsoBase?: number
}

export enum PayloadCodec { UNSPECIFIED = 0, NONE = 1, ZSTD = 2 }

export interface FrameHeader {
  volume: string
  txId: TxId
  fileId: string
  baseVersion: number
  codec: PayloadCodec
  encrypted: boolean
  rawSize: number
  sourceFileId?: string
  sourceBaseVersion?: number
  /** The transaction deletes the file at fileId's path (removesSubject). */
  removes?: boolean
}

export interface Frame { header: FrameHeader; payload: Uint8Array }

export enum AckStatus { UNSPECIFIED = 0, OK = 1, DUPLICATE = 2, REJECTED = 3, CONFLICT = 4, DEFERRED = 5 }

export interface Ack { txId: TxId; seq: number; status: AckStatus; error: string; winnerDevice?: string }
export interface SubscribeRequest { volume: string; fromSeq: number; deviceId: string }
export interface Delivery { seq: number; frame: Frame }
export interface VolumeInfoRequest { volume: string }
export interface HelloRequest { volume: string; deviceId: string; keyCheck: Uint8Array }
export interface HelloReply { headSeq: number; keyCheck: Uint8Array; readOnly: boolean }
export interface VolumeInfo { volume: string; headSeq: number }

const protoPath = fileURLToPath(new URL('../../../proto/deltafs/v1/deltafs.proto', import.meta.url))
const root = protobuf.loadSync(protoPath)

const toObjectOptions: protobuf.IConversionOptions = {
  longs: Number, enums: Number, bytes: Buffer as unknown as protobuf.IConversionOptions['bytes'], defaults: true, oneofs: false,
}

/** A typed encoder/decoder pair for one message type of the schema. */
export interface MessageCodec<T> {
  encode(value: T): Uint8Array
  /** Throws DeltafsError('BAD_MESSAGE') on malformed input instead of a protobufjs error. */
  decode(bytes: Uint8Array): T
}

/**
 * Times (int64 fields named *_ns) decode as bigint, exact to the nanosecond;
 * other 64-bit fields (seqs, offsets, sizes) stay numbers, far below 2^53.
 */
function isTimeField (f: protobuf.Field): boolean { return f.type === 'int64' && f.name.endsWith('Ns') }

const hasTimes = new Map<protobuf.Type, boolean>()
function carriesTimes (type: protobuf.Type): boolean {
  let known = hasTimes.get(type)
  if (known === undefined) {
    hasTimes.set(type, false) // recursive messages
    known = type.fieldsArray.some(f => {
      const sub = f.resolve().resolvedType
      return isTimeField(f) || (sub instanceof protobuf.Type && carriesTimes(sub))
    })
    hasTimes.set(type, known)
  }
  return known
}

type Plain = Record<string, unknown>
function exactTimes (type: protobuf.Type, msg: Plain, obj: Plain): void {
  for (const f of type.fieldsArray) {
    const v = msg[f.name]
    if (isTimeField(f)) {
      obj[f.name] = typeof v === 'number' ? BigInt(v) : v == null ? 0n : (v as { toBigInt (): bigint }).toBigInt()
    } else if (v != null && f.resolvedType instanceof protobuf.Type && carriesTimes(f.resolvedType)) {
      const sub = f.resolvedType
      if (f.repeated) (v as Plain[]).forEach((m, i) => exactTimes(sub, m, (obj[f.name] as Plain[])[i]!))
      else exactTimes(sub, v as Plain, obj[f.name] as Plain)
    }
  }
}

function messageCodec<T> (name: string): MessageCodec<T> {
  const type = root.lookupType(`deltafs.v1.${name}`)
  const times = carriesTimes(type)
  return {
    encode (value: T): Uint8Array {
      return type.encode(type.fromObject(value as Record<string, unknown>)).finish()
    },
    decode (bytes: Uint8Array): T {
      try {
        const msg = type.decode(bytes)
        const obj = type.toObject(msg, toObjectOptions)
        if (times) exactTimes(type, msg as unknown as Plain, obj)
        return obj as T
      } catch (err) {
        throw new DeltafsError('BAD_MESSAGE', `malformed ${name}: ${(err as Error).message}`, { cause: err })
      }
    },
  }
}

export const OpCodec = messageCodec<Op>('Op')
export const TransactionCodec = messageCodec<Transaction>('Transaction')
export const FrameCodec = messageCodec<Frame>('Frame')
export const AckCodec = messageCodec<Ack>('Ack')
export const SubscribeRequestCodec = messageCodec<SubscribeRequest>('SubscribeRequest')
export const DeliveryCodec = messageCodec<Delivery>('Delivery')
export const VolumeInfoRequestCodec = messageCodec<VolumeInfoRequest>('VolumeInfoRequest')
export const VolumeInfoCodec = messageCodec<VolumeInfo>('VolumeInfo')
export const HelloRequestCodec = messageCodec<HelloRequest>('HelloRequest')
export const HelloReplyCodec = messageCodec<HelloReply>('HelloReply')

const ackType = root.lookupType('deltafs.v1.Ack')

/**
 * Ack bytes without AckCodec.encode's fromObject pass (the storage node
 * encodes one Ack per transaction, all built by itself with the right types).
 * The same message as AckCodec.encode: fields at their default are written
 * explicitly, which decodes the same.
 */
export function encodeAck (ack: Ack): Uint8Array {
  return ackType.encode(ack as unknown as protobuf.Message).finish()
}

const ackBatchType = root.lookupType('deltafs.v1.AckBatch')

/** AckBatch bytes, encoded as encodeAck encodes each Ack. */
export function encodeAckBatch (acks: Ack[]): Uint8Array {
  return ackBatchType.encode({ acks } as unknown as protobuf.Message).finish()
}
export const AckBatchCodec = messageCodec<{ acks: Ack[] }>('AckBatch')

/** FrameBatch field 1 (frames), length-delimited: (1 << 3) | 2. */
const BATCH_FRAME_TAG = 10

/** FrameBatch bytes around already-encoded frames. */
export function encodeFrameBatch (frames: Uint8Array[]): Uint8Array {
  const w = protobuf.Writer.create()
  for (const f of frames) w.uint32(BATCH_FRAME_TAG).bytes(f)
  return w.finish()
}

/**
 * The frames of a FrameBatch, as views of its bytes (not copies); throws
 * DeltafsError('BAD_MESSAGE') on malformed input.
 */
export function decodeFrameBatch (bytes: Uint8Array): Buffer[] {
  try {
    const r = protobuf.Reader.create(bytes)
    const frames: Buffer[] = []
    while (r.pos < r.len) {
      const tag = r.uint32()
      if (tag === BATCH_FRAME_TAG) {
        const len = r.uint32()
        if (r.pos + len > r.len) throw new RangeError(`frame of ${len} bytes runs past the end of the batch`)
        frames.push(Buffer.from(bytes.buffer, bytes.byteOffset + r.pos, len))
        r.pos += len
      } else r.skipType(tag & 7)
    }
    return frames
  } catch (err) {
    throw new DeltafsError('BAD_MESSAGE', `malformed FrameBatch: ${(err as Error).message}`, { cause: err })
  }
}

const frameHeaderType = root.lookupType('deltafs.v1.FrameHeader')
const transactionType = root.lookupType('deltafs.v1.Transaction')
/** Frame field 1 (header), length-delimited: (1 << 3) | 2. */
const FRAME_HEADER_TAG = 10
/** Frame field 2 (payload), length-delimited: (2 << 3) | 2. */
const FRAME_PAYLOAD_TAG = 18

/**
 * The bytes of a Frame whose payload is the transaction's own encoding
 * (codec NONE, not encrypted), encoded straight into the frame: its data is
 * copied once instead of twice (into the encoded transaction, then into the
 * frame), which on the write path was most of the pusher's CPU and GC.
 * The payload field comes first so that the header, which carries the
 * payload's size, can follow it; protobuf readers take fields in any order.
 */
export function encodePlainFrame (tx: Transaction, header: (rawSize: number) => FrameHeader): Uint8Array {
  const w = protobuf.Writer.create()
  w.uint32(FRAME_PAYLOAD_TAG).fork()
  const start = w.len
  transactionType.encode(transactionType.fromObject(tx as unknown as Record<string, unknown>), w)
  const rawSize = w.len - start
  w.ldelim()
  w.uint32(FRAME_HEADER_TAG).fork()
  frameHeaderType.encode(frameHeaderType.fromObject(header(rawSize) as unknown as Record<string, unknown>), w)
  w.ldelim()
  return w.finish()
}

/**
 * The header of an encoded Frame, leaving its payload undecoded and
 * uncopied: the storage node needs only the header and stores the bytes as
 * they came. Undefined when the frame has no header; throws
 * DeltafsError('BAD_MESSAGE') on malformed input, as FrameCodec.decode does.
 */
export function decodeFrameHeader (bytes: Uint8Array): FrameHeader | undefined {
  try {
    const r = protobuf.Reader.create(bytes)
    let header: protobuf.Message | undefined
    while (r.pos < r.len) {
      const tag = r.uint32()
      if (tag === FRAME_HEADER_TAG) header = frameHeaderType.decode(r, r.uint32())
      else r.skipType(tag & 7)
    }
    return header === undefined ? undefined : frameHeaderType.toObject(header, toObjectOptions) as FrameHeader
  } catch (err) {
    throw new DeltafsError('BAD_MESSAGE', `malformed Frame: ${(err as Error).message}`, { cause: err })
  }
}

/** Whether ops leave nothing at the path they end on (after their renames): an unlink or rmdir there. */
export function removesSubject (ops: Op[]): boolean {
  let gone = false
  for (const op of ops) {
    if ('rename' in op && op.rename) gone = false
    else if (('unlink' in op && op.unlink) || ('rmdir' in op && op.rmdir)) gone = true
    else if (opKind(op) !== 'setAttr') gone = false
  }
  return gone
}

/** The kind of an op, i.e. the name of the oneof member that is set. */
export function opKind (op: Op): keyof UnionKeys<Op> {
  return Object.keys(op).find(k => (op as Record<string, unknown>)[k] != null) as keyof UnionKeys<Op>
}
type UnionKeys<T> = T extends unknown ? { [K in keyof T]: true } : never

/**
 * Delivery bytes built around already-encoded frame bytes, so the node can
 * forward what it stored without decoding it (field 1: seq, field 2: frame).
 */
export function encodeDelivery (seq: number, frameBytes?: Uint8Array): Uint8Array {
  const w = protobuf.Writer.create().uint32(8).uint64(seq)
  return (frameBytes ? w.uint32(18).bytes(frameBytes) : w).finish()
}
