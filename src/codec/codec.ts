// Codec: a Transaction in, a Frame out, and back. Protobuf, then zstd when it
// pays, then AES-256-GCM when the volume has a key. The header carries only
// what the storage node needs: ids, versions, sizes, never names.
import { type Frame, FrameCodec, type FrameHeader, PayloadCodec, type Transaction, TransactionCodec, encodePlainFrame, removesSubject } from './wire.js'
import type { Compressor } from './zstd.js'
import { zstdContentSize } from './zstd-frame.js'
import { decryptPayload, encryptPayload } from './aead.js'
import { DeltafsError } from '../util/errors.js'

/** Frames larger than this are refused before anything is decoded. */
export const MAX_FRAME_BYTES = 32 << 20
/** A payload may not claim to be larger than a frame may be. */
export const MAX_RAW_BYTES = MAX_FRAME_BYTES
/**
 * zstd-codec runs in a small emscripten heap (it aborts at about 5.5 MiB), so
 * only payloads up to this size are compressed, and a zstd payload may not
 * declare more. Transactions are capped well below it.
 */
export const MAX_ZSTD_RAW_BYTES = 4 << 20

const SAMPLE_BYTES = 16 << 10

export interface Codec {
  /** Encodes and compresses a transaction into a frame. */
  seal (tx: Transaction): Frame
  /** The bytes of seal(tx)'s frame, as a Push stream carries them. */
  sealBytes (tx: Transaction): Uint8Array
  /** Checks, decompresses and decodes a frame; throws DeltafsError on anything malformed. */
  open (frame: Frame): Transaction
}

export class TxCodec implements Codec {
  /** @param key the volume key; without one, payloads travel unencrypted. */
  constructor (private readonly zstd: Compressor, private readonly key?: Buffer) {}

  seal (tx: Transaction): Frame {
    const raw = TransactionCodec.encode(tx)
    let payload = raw
    let codec = PayloadCodec.NONE
    // Small or incompressible payloads go raw: zstd would only add bytes.
    if (raw.length >= 64 && raw.length <= MAX_ZSTD_RAW_BYTES && this.worthCompressing(raw)) {
      const packed = this.zstd.compress(raw)
      if (packed.length < raw.length) { payload = packed; codec = PayloadCodec.ZSTD }
    }
    const header = this.header(tx, codec, raw.length)
    if (this.key) payload = encryptPayload(this.key, header, payload)
    return { header, payload }
  }

  sealBytes (tx: Transaction): Uint8Array {
    // Only a payload that travels as it is encodes in place: zstd and AES
    // both need the encoded transaction first.
    if (this.key === undefined && this.incompressible(tx)) return encodePlainFrame(tx, rawSize => this.header(tx, PayloadCodec.NONE, rawSize))
    return FrameCodec.encode(this.seal(tx))
  }

  private header (tx: Transaction, codec: PayloadCodec, rawSize: number): FrameHeader {
    return {
      volume: tx.volume, txId: tx.txId, fileId: tx.fileId, baseVersion: tx.baseVersion,
      codec, encrypted: this.key !== undefined, rawSize,
      ...(tx.sourceFileId ? { sourceFileId: tx.sourceFileId, sourceBaseVersion: tx.sourceBaseVersion ?? 0 } : {}),
      removes: tx.fileId !== '' && removesSubject(tx.ops),
    }
  }

  /**
   * Whether a transaction is large and its bulk does not compress, judged
   * before it is encoded by a sample of its largest data (as seal judges the
   * encoded bytes). Small transactions say no: seal decides those.
   */
  private incompressible (tx: Transaction): boolean {
    const data = largestData(tx)
    if (data === undefined || data.length <= 2 * SAMPLE_BYTES) return false
    const mid = data.length >> 1
    const sample = data.subarray(mid - SAMPLE_BYTES / 2, mid + SAMPLE_BYTES / 2)
    return this.zstd.compress(sample).length >= sample.length * 0.9
  }

  /**
   * Large payloads are tried on a sample first: compressing megabytes of
   * already-compressed or random data only to throw the result away was a
   * tenth of the write path's CPU.
   */
  private worthCompressing (raw: Uint8Array): boolean {
    if (raw.length <= 2 * SAMPLE_BYTES) return true
    const mid = raw.length >> 1
    const sample = raw.subarray(mid - SAMPLE_BYTES / 2, mid + SAMPLE_BYTES / 2)
    return this.zstd.compress(sample).length < sample.length * 0.9
  }

  open (frame: Frame): Transaction {
    const h = frame.header
    if (h == null) throw new DeltafsError('BAD_FRAME', 'frame has no header')
    if (h.txId == null || typeof h.txId.deviceId !== 'string') throw new DeltafsError('BAD_FRAME', 'frame has no transaction id')
    if (h.rawSize > MAX_RAW_BYTES) throw new DeltafsError('BAD_FRAME', `frame claims ${h.rawSize} raw bytes, limit ${MAX_RAW_BYTES}`)
    if (h.encrypted && !this.key) throw new DeltafsError('KEY', 'the volume is encrypted: mount it with its key (--key-file or DELTAFS_PASSPHRASE)')
    if (!h.encrypted && this.key) throw new DeltafsError('KEY', 'received an unencrypted transaction on a mount that has a volume key')
    if (h.codec !== PayloadCodec.NONE && h.codec !== PayloadCodec.ZSTD) throw new DeltafsError('UNSUPPORTED_CODEC', `unknown payload codec ${String(h.codec)}`)
    const payload = this.key ? decryptPayload(this.key, h, frame.payload) : frame.payload
    let raw: Uint8Array
    switch (h.codec) {
      case PayloadCodec.NONE:
        raw = payload
        if (raw.length !== h.rawSize) throw new DeltafsError('BAD_FRAME', `payload is ${raw.length} bytes, header says ${h.rawSize}`)
        break
      case PayloadCodec.ZSTD: {
        const declared = zstdContentSize(payload)
        if (declared > MAX_ZSTD_RAW_BYTES) throw new DeltafsError('BAD_FRAME', `zstd payload declares ${declared} bytes, limit ${MAX_ZSTD_RAW_BYTES}`)
        if (declared !== h.rawSize) throw new DeltafsError('BAD_FRAME', `zstd payload declares ${declared} bytes, header says ${h.rawSize}`)
        raw = this.zstd.decompress(payload, h.rawSize)
        break
      }
      default:
        throw new DeltafsError('UNSUPPORTED_CODEC', `unknown payload codec ${String(h.codec)}`)
    }
    const tx = TransactionCodec.decode(raw)
    if (tx.volume !== h.volume || tx.txId?.deviceId !== h.txId?.deviceId || tx.txId?.deviceSeq !== h.txId?.deviceSeq) {
      throw new DeltafsError('BAD_FRAME', 'payload does not match its frame header')
    }
    return tx
  }
}


/** The largest run of bytes a transaction carries: write data, a rebuild's inserted data, an attribute value. */
function largestData (tx: Transaction): Uint8Array | undefined {
  let best: Uint8Array | undefined
  const see = (d: Uint8Array | undefined): void => { if (d && (!best || d.length > best.length)) best = d }
  for (const op of tx.ops) {
    if ('write' in op && op.write) see(op.write.data)
    else if ('rebuild' in op && op.rebuild) for (const p of op.rebuild.pieces) { if ('insert' in p && p.insert) see(p.insert.data) }
    else if ('setXattr' in op && op.setXattr) see(op.setXattr.value)
  }
  return best
}
