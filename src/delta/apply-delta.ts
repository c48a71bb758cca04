// Rebuilds a file from its base and a delta, into a temp file the caller
// renames into place. The delta came off the wire: every number in it is
// checked before a byte is written, and both digests after, so a wrong base,
// a base that changed underneath, or a forged delta ends in an error and never
// in a wrong file.
import crypto from 'node:crypto'
import fs from 'node:fs'
import fsp, { type FileHandle } from 'node:fs/promises'
import type { Piece } from '../codec/wire.js'
import { DeltafsError } from '../util/errors.js'
import { SequentialHash } from './sequential-hash.js'
import { fileId, SourceFile } from './source-file.js'

export interface RebuildInput {
  pieces: Piece[]
  resultSize: number
  resultSha256: Uint8Array
  baseSha256: Uint8Array
}

export interface ApplyOptions {
  /** fdatasync the result before returning, so a rename after it is durable; default true. */
  sync?: boolean
  /** Largest result accepted; default 2^52, where doubles stop being exact. */
  maxResultSize?: number
}

const SHA256_BYTES = 32
const BUFFER_BYTES = 1 << 20
const { O_WRONLY, O_CREAT, O_TRUNC, O_NOFOLLOW } = fs.constants

/**
 * Writes the result of `rebuild` applied to basePath into outPath. A bad or
 * mismatched delta throws DeltafsError('APPLY'); once outPath has been
 * opened, any failure removes it.
 */
export async function applyDelta (basePath: string, rebuild: RebuildInput, outPath: string, opts: ApplyOptions = {}): Promise<void> {
  const base = await SourceFile.open(basePath)
  let out: FileHandle | undefined
  let done = false
  try {
    checkRebuild(rebuild, base.size, opts.maxResultSize ?? 2 ** 52)
    // Opening the output truncates it: it must not be the base under another name.
    const existing = await fsp.lstat(outPath, { bigint: true }).catch(() => undefined)
    if (existing && fileId(existing) === base.id) {
      throw new DeltafsError('BAD_ARGUMENT', `output ${outPath} is the base file itself`)
    }
    out = await fsp.open(outPath, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW)
    const result = new ResultWriter(out)
    // Copies usually read the base in order, so verifying it costs no extra read.
    const baseHash = new SequentialHash(base)
    for (const piece of rebuild.pieces) {
      if ('copy' in piece && piece.copy) {
        await copyFromBase(base, piece.copy.offset, piece.copy.length, result, baseHash)
      } else if ('insert' in piece && piece.insert) {
        await result.write(piece.insert.data)
      }
    }
    await result.flush()
    const baseDigest = await baseHash.digest()
    if (!baseDigest.equals(rebuild.baseSha256)) {
      throw new DeltafsError('APPLY', `base ${basePath} is not the version the delta was made against ` +
        `(SHA-256 ${hex(baseDigest)}, delta expects ${hex(rebuild.baseSha256)})`)
    }
    const resultDigest = result.digest()
    if (result.bytes !== rebuild.resultSize || !resultDigest.equals(rebuild.resultSha256)) {
      throw new DeltafsError('APPLY', `rebuilt file does not match the delta: ${result.bytes} bytes with SHA-256 ` +
        `${hex(resultDigest)}, expected ${rebuild.resultSize} bytes with ${hex(rebuild.resultSha256)}`)
    }
    if (opts.sync ?? true) await out.datasync()
    done = true
  } finally {
    await base.close()
    await out?.close()
    if (!done && out) await fsp.rm(outPath, { force: true })
  }
}

async function copyFromBase (base: SourceFile, offset: number, length: number, result: ResultWriter, baseHash: SequentialHash): Promise<void> {
  const end = offset + length
  for (let pos = offset; pos < end;) {
    const room = await result.room()
    const into = room.subarray(0, Math.min(room.length, end - pos))
    const n = await base.read(into, pos)
    if (n < into.length) throw new DeltafsError('APPLY', `base ${base.path} ended at ${pos + n} while copying [${offset}, ${end}): it changed during the apply`)
    await baseHash.saw(pos, into)
    result.commit(n)
    pos += n
  }
}

/** The output, buffered, with its length and SHA-256 kept as it is written. */
class ResultWriter {
  bytes = 0
  private readonly buf = Buffer.allocUnsafe(BUFFER_BYTES)
  private fill = 0
  private readonly hash = crypto.createHash('sha256')

  constructor (private readonly fh: FileHandle) {}

  /** Free space at the end of the buffer (never empty); fill it, then commit. */
  async room (): Promise<Buffer> {
    if (this.fill === this.buf.length) await this.flush()
    return this.buf.subarray(this.fill)
  }

  commit (n: number): void {
    this.fill += n
  }

  async write (data: Uint8Array): Promise<void> {
    for (let from = 0; from < data.length;) {
      const room = await this.room()
      const n = Math.min(room.length, data.length - from)
      room.set(data.subarray(from, from + n))
      this.commit(n)
      from += n
    }
  }

  async flush (): Promise<void> {
    if (this.fill === 0) return
    const data = this.buf.subarray(0, this.fill)
    this.hash.update(data)
    for (let done = 0; done < data.length;) {
      const { bytesWritten } = await this.fh.write(data, done, data.length - done, this.bytes + done)
      done += bytesWritten
    }
    this.bytes += this.fill
    this.fill = 0
  }

  digest (): Buffer {
    return this.hash.digest()
  }
}

/** Everything a hostile delta could get wrong, checked against the base it names. */
export function checkRebuild (rebuild: RebuildInput, baseSize: number, maxResultSize: number): void {
  const fail = (why: string): never => { throw new DeltafsError('APPLY', `bad delta: ${why}`) }
  const r = rebuild as Partial<Record<keyof RebuildInput, unknown>>
  if (!isDigest(r.resultSha256)) fail('result SHA-256 must be 32 bytes')
  if (!isDigest(r.baseSha256)) fail('base SHA-256 must be 32 bytes')
  const resultSize = r.resultSize
  if (!isCount(resultSize) || resultSize > maxResultSize) fail(`result size ${String(resultSize)} is not an integer from 0 to ${maxResultSize}`)
  if (!Array.isArray(r.pieces)) fail('pieces must be a list')
  const size = resultSize as number
  let total = 0
  ;(r.pieces as unknown[]).forEach((value, i) => {
    const piece = (value ?? {}) as { copy?: { offset?: unknown; length?: unknown } | null; insert?: { data?: unknown } | null }
    const { copy, insert } = piece
    if ((copy == null) === (insert == null)) fail(`piece ${i} must be exactly one of copy and insert`)
    let length: number
    if (copy != null) {
      const { offset, length: copyLength } = copy
      if (!isCount(offset) || !isCount(copyLength) || copyLength === 0) fail(`piece ${i} copies ${String(copyLength)} bytes at ${String(offset)}`)
      const [o, n] = [offset as number, copyLength as number]
      if (o + n > baseSize) fail(`piece ${i} copies [${o}, ${o + n}) but the base has ${baseSize} bytes`)
      length = n
    } else {
      const data = insert!.data
      if (!(data instanceof Uint8Array) || data.length === 0) fail(`piece ${i} inserts no bytes`)
      length = (data as Uint8Array).length
    }
    total += length
    if (total > size) fail(`pieces add up to more than the result size ${size}`)
  })
  if (total !== size) fail(`pieces add up to ${total} bytes, result size is ${size}`)
}

function isDigest (value: unknown): value is Uint8Array {
  return value instanceof Uint8Array && value.length === SHA256_BYTES
}

function isCount (value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0
}

function hex (digest: Uint8Array): string {
  return Buffer.from(digest).toString('hex').slice(0, 16) + '…'
}
