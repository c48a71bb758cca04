// Files for the delta engine's tests and benchmark: large, reproducible text
// written and edited in 1 MiB steps, so that a 100 MiB case never sits in
// memory whole.
import fsp from 'node:fs/promises'
import { prng } from '../helpers/prng.js'

const STEP = 1 << 20
const WORDS = ('lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore ' +
  'et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip ex ea ' +
  'commodo consequat duis aute irure in reprehenderit voluptate velit esse cillum fugiat nulla pariatur').split(' ')

/** A seeded generator: the same seed gives the same file. */
export { prng }

/** Numbered lines of 3 to 14 words: text like source code or logs, no two lines alike. */
export async function writeTextFile (path: string, size: number, seed = 1): Promise<void> {
  const random = prng(seed)
  const fh = await fsp.open(path, 'w')
  try {
    let line = 0
    let pending = ''
    for (let written = 0; written < size;) {
      while (pending.length < STEP) {
        const words: string[] = []
        for (let n = 3 + Math.floor(random() * 12); n > 0; n--) words.push(WORDS[Math.floor(random() * WORDS.length)]!)
        pending += `${String(line++).padStart(8, '0')} ${words.join(' ')}\n`
      }
      const block = Buffer.from(pending.slice(0, Math.min(STEP, size - written)), 'latin1')
      pending = pending.slice(block.length)
      await fh.write(block, 0, block.length, written)
      written += block.length
    }
  } finally {
    await fh.close()
  }
}

/** Seeded bytes with no structure at all. */
export async function writeRandomFile (path: string, size: number, seed = 1): Promise<void> {
  const random = prng(seed)
  const fh = await fsp.open(path, 'w')
  try {
    const block = Buffer.alloc(STEP)
    for (let written = 0; written < size; written += STEP) {
      const n = Math.min(STEP, size - written)
      for (let i = 0; i < n; i += 4) block.writeUInt32LE(Math.floor(random() * 4294967296), i)
      await fh.write(block, 0, n, written)
    }
  } finally {
    await fh.close()
  }
}

/**
 * Writes to `to` the file `from` with `remove` bytes at `at` replaced by
 * `insert` (remove may be Infinity: a truncation).
 */
export async function spliceFile (from: string, to: string, at: number, remove: number, insert: Uint8Array): Promise<void> {
  const src = await fsp.open(from, 'r')
  const dst = await fsp.open(to, 'w')
  try {
    const size = (await src.stat()).size
    let out = 0
    const copy = async (start: number, end: number): Promise<void> => {
      const buf = Buffer.allocUnsafe(STEP)
      for (let pos = start; pos < end;) {
        const { bytesRead } = await src.read(buf, 0, Math.min(STEP, end - pos), pos)
        if (bytesRead === 0) break
        await dst.write(buf, 0, bytesRead, out)
        pos += bytesRead
        out += bytesRead
      }
    }
    await copy(0, Math.min(at, size))
    if (insert.length > 0) await dst.write(insert, 0, insert.length, out)
    out += insert.length
    await copy(Math.min(at + remove, size), size)
  } finally {
    await Promise.all([src.close(), dst.close()])
  }
}

/** Offset of the first line that starts after `near`, and its length with the newline. */
export async function lineAt (path: string, near: number): Promise<{ offset: number; length: number }> {
  const pos = Math.floor(near)
  const fh = await fsp.open(path, 'r')
  try {
    const buf = Buffer.alloc(64 << 10)
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos)
    const text = buf.subarray(0, bytesRead)
    const start = text.indexOf(10) + 1
    const end = text.indexOf(10, start) + 1
    if (start === 0 || end === 0) throw new Error(`no whole line within 64 KiB of ${pos} in ${path}`)
    return { offset: pos + start, length: end - start }
  } finally {
    await fh.close()
  }
}

/** True when the two files hold the same bytes; compared 1 MiB at a time. */
export async function sameContent (a: string, b: string): Promise<boolean> {
  const [fa, fb] = await Promise.all([fsp.open(a, 'r'), fsp.open(b, 'r')])
  try {
    const [sa, sb] = await Promise.all([fa.stat(), fb.stat()])
    if (sa.size !== sb.size) return false
    const ba = Buffer.alloc(STEP)
    const bb = Buffer.alloc(STEP)
    for (let pos = 0; pos < sa.size; pos += STEP) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, STEP, pos), fb.read(bb, 0, STEP, pos)])
      if (ra.bytesRead !== rb.bytesRead || !ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false
    }
    return true
  } finally {
    await Promise.all([fa.close(), fb.close()])
  }
}

/** next = base with its first `length` bytes moved to the end (baseSize long); scratch is a work file. */
export async function moveHeadToEnd (base: string, scratch: string, next: string, baseSize: number, length: number): Promise<void> {
  const head = Buffer.alloc(length)
  const fh = await fsp.open(base, 'r')
  try { await fh.read(head, 0, length, 0) } finally { await fh.close() }
  await spliceFile(base, scratch, 0, length, Buffer.alloc(0))
  await spliceFile(scratch, next, baseSize - length, 0, head)
}
