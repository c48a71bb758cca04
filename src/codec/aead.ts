// AES-256-GCM for frame payloads. Each payload gets a fresh random 96-bit
// nonce; the frame header is authenticated as associated data, so a node (or
// anyone on the path) cannot move a payload to another transaction.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import type { FrameHeader } from './wire.js'
import { DeltafsError } from '../util/errors.js'

const NONCE = 12
const TAG = 16

function aad (h: FrameHeader): Buffer {
  return Buffer.from(`deltafs/v1\0${h.volume}\0${h.txId.deviceId}\0${h.txId.deviceSeq}\0${h.codec}\0${h.rawSize}`)
}

export function encryptPayload (key: Buffer, header: FrameHeader, plain: Uint8Array): Uint8Array {
  const nonce = randomBytes(NONCE)
  const cipher = createCipheriv('aes-256-gcm', key, nonce)
  cipher.setAAD(aad(header))
  const body = Buffer.concat([cipher.update(plain), cipher.final()])
  return Buffer.concat([nonce, body, cipher.getAuthTag()])
}

export function decryptPayload (key: Buffer, header: FrameHeader, sealed: Uint8Array): Uint8Array {
  if (sealed.length < NONCE + TAG) throw new DeltafsError('BAD_FRAME', 'encrypted payload is too short')
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength)
  const decipher = createDecipheriv('aes-256-gcm', key, buf.subarray(0, NONCE))
  decipher.setAAD(aad(header))
  decipher.setAuthTag(buf.subarray(buf.length - TAG))
  try {
    return Buffer.concat([decipher.update(buf.subarray(NONCE, buf.length - TAG)), decipher.final()])
  } catch (err) {
    throw new DeltafsError('KEY', 'cannot decrypt a transaction: the volume key does not match the one it was written with', { cause: err })
  }
}
