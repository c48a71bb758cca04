// The I/O side of a benchmark, run as its own process (never inside a mount
// daemon or the harness): `node dist/bench/worker.js OP JSON-ARGS`. It times
// the work itself and prints one JSON line: { ms, bytes, ops }.
import { randomFillSync } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { prng } from './lib/common.js'

const MiB = 1 << 20

interface Args {
  file?: string
  dir?: string
  size?: number
  block?: number
  count?: number
  fileSize?: number
  seed?: number
  offset?: number
  fileBytes?: number
  fsync?: boolean
}

function now (): number { return Number(process.hrtime.bigint()) / 1e6 }

/** Incompressible bytes, varied per block so no two blocks are equal. */
const pool = randomFillSync(Buffer.allocUnsafe(4 * MiB))
function blockAt (i: number, block: number): Buffer {
  const off = (i * 4099 * 16) % (pool.length - block)
  return pool.subarray(off, off + block)
}

function seqwrite (a: Args): object {
  const size = a.size!
  const block = a.block ?? MiB
  const t0 = now()
  const fd = fs.openSync(a.file!, 'w')
  let done = 0
  for (let i = 0; done < size; i++) {
    const n = Math.min(block, size - done)
    const buf = blockAt(i, block)
    let w = 0
    while (w < n) w += fs.writeSync(fd, buf, w, n - w, done + w)
    done += n
  }
  if (a.fsync !== false) fs.fsyncSync(fd)
  fs.closeSync(fd)
  return { ms: now() - t0, bytes: done }
}

function seqread (a: Args): object {
  const block = a.block ?? MiB
  const buf = Buffer.allocUnsafe(block)
  const t0 = now()
  const fd = fs.openSync(a.file!, 'r')
  let total = 0
  for (;;) {
    const n = fs.readSync(fd, buf, 0, block, total)
    if (n <= 0) break
    total += n
  }
  fs.closeSync(fd)
  return { ms: now() - t0, bytes: total }
}

function randwrite (a: Args): object {
  const block = a.block ?? 4096
  const count = a.count!
  const blocks = Math.floor(a.fileSize! / block)
  const rnd = prng(a.seed ?? 1)
  const offsets = Array.from({ length: count }, () => Math.floor(rnd() * blocks) * block)
  const t0 = now()
  const fd = fs.openSync(a.file!, 'r+')
  for (let i = 0; i < count; i++) {
    const buf = blockAt(i + 7, block)
    let w = 0
    while (w < block) w += fs.writeSync(fd, buf, w, block - w, offsets[i]! + w)
  }
  const tWrites = now() - t0
  fs.fsyncSync(fd)
  fs.closeSync(fd)
  return { ms: now() - t0, writesMs: tWrites, ops: count, bytes: count * block }
}

function creates (a: Args): object {
  const count = a.count!
  const data = pool.subarray(0, a.fileBytes ?? 100)
  const t0 = now()
  fs.mkdirSync(a.dir!, { recursive: true })
  for (let i = 0; i < count; i++) {
    const fd = fs.openSync(path.join(a.dir!, `f${i}.txt`), 'wx')
    fs.writeSync(fd, data)
    fs.closeSync(fd)
  }
  return { ms: now() - t0, ops: count, bytes: count * data.length }
}

/** Changes one byte in place (read it, write its complement), no truncate. */
function poke (a: Args): object {
  const t0 = now()
  const fd = fs.openSync(a.file!, 'r+')
  const b = Buffer.alloc(1)
  fs.readSync(fd, b, 0, 1, a.offset!)
  b[0] = (b[0]! ^ 0xff) & 0xff
  fs.writeSync(fd, b, 0, 1, a.offset!)
  fs.closeSync(fd)
  return { ms: now() - t0, bytes: 1, value: b[0] }
}

const ops: Record<string, (a: Args) => object> = { seqwrite, seqread, randwrite, creates, poke }

const [op, json] = process.argv.slice(2)
const fn = op ? ops[op] : undefined
if (!fn) {
  process.stderr.write(`usage: worker.js ${Object.keys(ops).join('|')} JSON-ARGS\n`)
  process.exit(2)
}
try {
  process.stdout.write(JSON.stringify(fn(JSON.parse(json ?? '{}') as Args)) + '\n')
} catch (err) {
  process.stderr.write(`worker ${op}: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
}
