// The volume key: 32 bytes from a key file, or derived from a passphrase with
// scrypt. Mounts of one volume prove they hold the same key through a key
// check value (an HMAC), which reveals nothing about the key itself.
import { createHmac, scryptSync } from 'node:crypto'
import fs from 'node:fs'
import { DeltafsError } from '../util/errors.js'

export const KEY_BYTES = 32

/** Accepts 32 raw bytes, 64 hex characters or base64 of 32 bytes. */
export function readKeyFile (file: string): Buffer {
  let raw: Buffer
  try {
    raw = fs.readFileSync(file)
  } catch (err) {
    throw new DeltafsError('KEY', `cannot read key file ${file}: ${(err as Error).message}`, { cause: err })
  }
  if (raw.length === KEY_BYTES) return raw
  const text = raw.toString('utf8').trim()
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex')
  const b64 = Buffer.from(text, 'base64')
  if (b64.length === KEY_BYTES && /^[A-Za-z0-9+/_-]+=*$/.test(text)) return b64
  throw new DeltafsError('KEY', `key file ${file} must hold 32 bytes, 64 hex characters or base64 of 32 bytes`)
}

/** scrypt with the volume name as salt, so one passphrase gives each volume its own key. */
export function keyFromPassphrase (passphrase: string, volume: string): Buffer {
  if (passphrase.length < 8) throw new DeltafsError('KEY', 'the passphrase must be at least 8 characters')
  return scryptSync(passphrase.normalize('NFC'), `deltafs:${volume}`, KEY_BYTES, { N: 1 << 15, r: 8, p: 1, maxmem: 64 << 20 })
}

export function keyCheck (key: Buffer, volume: string): Buffer {
  return createHmac('sha256', key).update(`deltafs-key-check:${volume}`).digest()
}
