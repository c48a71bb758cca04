// A file the delta engine reads, with the bytes read counted (the engine's
// cost is reported in them) and reads that only come up short at the end.
import type { BigIntStats } from 'node:fs'
import fsp, { type FileHandle } from 'node:fs/promises'

export class SourceFile {
  bytesRead = 0

  private constructor (
    private readonly fh: FileHandle,
    readonly path: string,
    readonly size: number,
    /** Device and inode: which file this is, whatever its name. */
    readonly id: string,
    private readonly stamp: string,
  ) {}

  static async open (path: string): Promise<SourceFile> {
    const fh = await fsp.open(path, 'r')
    try {
      const st = await fh.stat({ bigint: true })
      return new SourceFile(fh, path, Number(st.size), fileId(st), stampOf(st))
    } catch (err) {
      await fh.close()
      throw err
    }
  }

  /** Fills buf from pos; returns fewer than buf.length bytes only at the end of the file. */
  async read (buf: Uint8Array, pos: number): Promise<number> {
    let done = 0
    // One read may return less than asked even before the end.
    while (done < buf.length) {
      const { bytesRead } = await this.fh.read(buf, done, buf.length - done, pos + done)
      if (bytesRead === 0) break
      done += bytesRead
    }
    this.bytesRead += done
    return done
  }

  /** True while the file's size and times are those it had when opened. */
  async unchanged (): Promise<boolean> {
    return stampOf(await this.fh.stat({ bigint: true })) === this.stamp
  }

  async close (): Promise<void> {
    await this.fh.close()
  }
}

export function fileId (st: BigIntStats): string {
  return `${st.dev}:${st.ino}`
}

function stampOf (st: BigIntStats): string {
  return `${st.size}:${st.mtimeNs}:${st.ctimeNs}`
}

/**
 * Reads [from, to) of a file in order, one block ahead: the next read runs
 * while the caller works on the current block. A block stays valid until the
 * call to next() after the one that returned it.
 */
export class BlockReader {
  private readonly buffers: [Buffer, Buffer]
  private turn = 0
  private pos: number
  private pending: Promise<Buffer>

  constructor (private readonly file: SourceFile, from: number, private readonly to: number, blockSize = 1 << 20) {
    const size = Math.max(0, Math.min(blockSize, to - from))
    this.buffers = [Buffer.allocUnsafeSlow(size), Buffer.allocUnsafeSlow(size)]
    this.pos = from
    this.pending = this.readAhead()
  }

  /** The next block, empty at `to` or at the end of the file. */
  async next (): Promise<Buffer> {
    const block = await this.pending
    this.pending = block.length > 0 ? this.readAhead() : Promise.resolve(block)
    return block
  }

  // A caller may stop before the end: the read left in flight must not become
  // an unhandled rejection (closing the file waits for it).
  private readAhead (): Promise<Buffer> {
    const read = this.read()
    read.catch(() => {})
    return read
  }

  private async read (): Promise<Buffer> {
    const buf = this.buffers[this.turn]!
    this.turn = 1 - this.turn
    const want = Math.max(0, Math.min(buf.length, this.to - this.pos))
    const n = await this.file.read(buf.subarray(0, want), this.pos)
    this.pos += n
    return buf.subarray(0, n)
  }
}
