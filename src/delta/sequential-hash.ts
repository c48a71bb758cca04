// The SHA-256 of a whole file, taken from bytes that were read for other
// reasons whenever they come in order, so that a file usually costs one read.
// Bytes before the hashed prefix are ignored; a gap after it is read here.
import crypto from 'node:crypto'
import { DeltafsError } from '../util/errors.js'
import type { SourceFile } from './source-file.js'

export class SequentialHash {
  /** Bytes [0, hashed) of the file are in the hash. */
  private hashed = 0
  private readonly hash = crypto.createHash('sha256')
  private scratch: Buffer | undefined

  constructor (private readonly file: SourceFile) {}

  /** Offers data, the bytes of the file at [pos, pos + data.length). */
  async saw (pos: number, data: Uint8Array): Promise<void> {
    if (pos > this.hashed) await this.readTo(pos)
    const end = pos + data.length
    if (end > this.hashed) {
      this.hash.update(data.subarray(this.hashed - pos))
      this.hashed = end
    }
  }

  /** Hashes what is left up to the file's size and returns the digest. */
  async digest (): Promise<Buffer> {
    await this.readTo(this.file.size)
    return this.hash.digest()
  }

  private async readTo (pos: number): Promise<void> {
    this.scratch ??= Buffer.allocUnsafe(1 << 20)
    while (this.hashed < pos) {
      const chunk = this.scratch.subarray(0, Math.min(this.scratch.length, pos - this.hashed))
      const n = await this.file.read(chunk, this.hashed)
      if (n < chunk.length) {
        throw new DeltafsError('APPLY', `${this.file.path} ended at ${this.hashed + n} bytes, expected ${this.file.size}: it changed while being read`)
      }
      this.hash.update(chunk)
      this.hashed += n
    }
  }
}
