// Codec: a Transaction in, a Frame out, and back. Protobuf, then zstd when it
// pays; the header carries only what the storage node needs.
import { type Frame, PayloadCodec, type Transaction, TransactionCodec } from './wire.js'
import type { Compressor } from './zstd.js'
import { DeltafsError } from '../util/errors.js'

/** Frames larger than this are refused before anything is decoded. */
export const MAX_FRAME_BYTES = 32 << 20
/** A payload may not claim to expand beyond this. */
export const MAX_RAW_BYTES = 32 << 20

export interface Codec {
  /** Encodes and compresses a transaction into a frame. */
  seal (tx: Transaction): Frame
  /** Checks, decompresses and decodes a frame; throws DeltafsError on anything malformed. */
  open (frame: Frame): Transaction
}

export class ZstdCodec implements Codec {
  constructor (private readonly zstd: Compressor) {}

  seal (tx: Transaction): Frame {
    const raw = TransactionCodec.encode(tx)
    let payload = raw
    let codec = PayloadCodec.NONE
    // Small or incompressible payloads go raw: zstd would only add bytes.
    if (raw.length >= 64) {
      const packed = this.zstd.compress(raw)
      if (packed.length < raw.length) { payload = packed; codec = PayloadCodec.ZSTD }
    }
    return {
      header: {
        volume: tx.volume, txId: tx.txId, fileId: tx.fileId, baseVersion: tx.baseVersion,
        codec, encrypted: false, rawSize: raw.length,
      },
      payload,
    }
  }

  open (frame: Frame): Transaction {
    const h = frame.header
    if (h == null) throw new DeltafsError('BAD_FRAME', 'frame has no header')
    if (h.rawSize > MAX_RAW_BYTES) throw new DeltafsError('BAD_FRAME', `frame claims ${h.rawSize} raw bytes, limit ${MAX_RAW_BYTES}`)
    if (h.encrypted) throw new DeltafsError('BAD_FRAME', 'frame is encrypted and this mount has no volume key')
    let raw: Uint8Array
    switch (h.codec) {
      case PayloadCodec.NONE:
        raw = frame.payload
        if (raw.length !== h.rawSize) throw new DeltafsError('BAD_FRAME', `payload is ${raw.length} bytes, header says ${h.rawSize}`)
        break
      case PayloadCodec.ZSTD:
        raw = this.zstd.decompress(frame.payload, h.rawSize)
        break
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

