// Issue 5: whole-file rewrites and atomic saves travel as deltas against the
// previous version, kept as a record. Bytes pushed come from A's status.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { Cluster } from '../helpers/cluster.js'
import { type MountHandle, waitFor } from '../helpers/processes.js'

const MiB = 1 << 20
const SIZE = Number(process.env.DELTAFS_REWRITE_MIB ?? 100) * MiB

function text (bytes: number, seed = 0): Buffer {
  const lines: string[] = []
  let n = 0
  for (let i = 0; n < bytes; i++) {
    const line = `line ${String(i).padStart(8, '0')} of a long text file, seed ${seed}, value ${(i * 2654435761) % 1000003}\n`
    lines.push(line)
    n += line.length
  }
  return Buffer.from(lines.join('')).subarray(0, bytes)
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

async function fileSha (file: string): Promise<string> {
  const h = createHash('sha256')
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 4 * MiB })) h.update(chunk as Buffer)
  return h.digest('hex')
}

async function writeChunked (fh: fsp.FileHandle, data: Buffer): Promise<void> {
  for (let off = 0; off < data.length; off += MiB) await fh.write(data, off, Math.min(MiB, data.length - off), off)
}

/** An editor's atomic save: write a temp file, fsync it, rename it over the target. */
async function atomicSave (target: string, tmpName: string, data: Buffer): Promise<void> {
  const tmp = path.join(path.dirname(target), tmpName)
  const fh = await fsp.open(tmp, 'w')
  await writeChunked(fh, data)
  await fh.sync()
  await fh.close()
  await fsp.rename(tmp, target)
}

async function pushed (m: MountHandle): Promise<number> {
  await waitFor('held rewrites to end and the outbox to drain', async () => {
    const s = await m.status()
    return s.heldRewrites === 0 && s.pendingTx === 0
  }, 60_000)
  return Number((await m.status()).bytesPushed)
}

function readChars (pid: number): number {
  return Number(/rchar: (\d+)/.exec(fs.readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1] ?? NaN)
}

t.test('rewrites cost deltas, not files', async t => {
  t.setTimeout(10 * 60_000)
  const c = await Cluster.start(t, 2)
  const [A, B] = c.mounts as [MountHandle, MountHandle]
  t.teardown(() => { if (!t.passing()) t.comment(c.logs()) })
  const onA = path.join(A.mountpoint, 'big.txt')
  const onB = path.join(B.mountpoint, 'big.txt')
  const converge = async (expected: Buffer, what: string): Promise<void> => {
    const want = sha(expected)
    await waitFor(`B to hold ${what}`, async () => (await fileSha(onB).catch(() => '')) === want, 60_000, 200)
    t.pass(`B is byte-identical after ${what}`)
  }

  let content = text(SIZE)
  await fsp.writeFile(onA, content)
  await converge(content, 'the first copy')

  // 1. One line changed, saved through a temp file + fsync + rename.
  let before = await pushed(A)
  const lineAt = content.indexOf('line 00500000')
  const edited = Buffer.from(content)
  edited.write('LINE', lineAt >= 0 ? lineAt : SIZE >> 1)
  await atomicSave(onA, '.big.txt.swp', edited)
  content = edited
  let cost = (await pushed(A)) - before
  t.ok(cost < 64 * 1024, `one line changed, temp + fsync + rename of ${SIZE / MiB} MiB: ${cost} bytes pushed (limit 65536)`)
  await converge(content, 'the atomic save')
  t.notOk(fs.existsSync(path.join(B.mountpoint, '.big.txt.swp')), 'the temp file never reached B')

  // 2. Truncated and rewritten identically.
  before = await pushed(A)
  const same = await fsp.open(onA, 'w')
  await writeChunked(same, content)
  await same.close()
  cost = (await pushed(A)) - before
  t.ok(cost < 4096, `identical truncate + rewrite: ${cost} bytes pushed (limit 4096)`)
  await converge(content, 'the identical rewrite')

  // 3. A 4 KiB insert at the start.
  before = await pushed(A)
  content = Buffer.concat([text(4096, 7), content])
  const ins = await fsp.open(onA, 'w')
  await writeChunked(ins, content)
  await ins.close()
  cost = (await pushed(A)) - before
  t.ok(cost < 64 * 1024, `4 KiB inserted at the start: ${cost} bytes pushed (limit 65536)`)
  await converge(content, 'the insert at the start')

  // 4. A 1 MiB append reads nothing of the old part.
  before = await pushed(A)
  const readBefore = readChars(A.child.pid!)
  const tail = text(MiB, 9)
  await fsp.appendFile(onA, tail)
  content = Buffer.concat([content, tail])
  cost = (await pushed(A)) - before
  const read = readChars(A.child.pid!) - readBefore
  t.ok(cost > 0 && cost <= 1.1 * MiB, `1 MiB append: ${cost} bytes pushed (compressed; limit 1.1 MiB)`)
  t.ok(read < 16 * MiB, `the mount daemon read ${read} bytes for it, not the ${SIZE / MiB} MiB before it`)
  await converge(content, 'the append')

  // 5. B's copy is corrupted behind its back: the next delta does not fit it.
  const backingB = path.join(B.dataDir, 'vol', 'files', 'big.txt')
  const fd = fs.openSync(backingB, 'r+')
  fs.writeSync(fd, Buffer.from('CORRUPT'), 0, 7, 1000)
  fs.closeSync(fd)
  const healsBefore = Number((await B.status()).healsRequested)
  const fixed = Buffer.from(content)
  fixed.write('EDIT', content.length >> 1)
  await atomicSave(onA, '.big.txt.new', fixed)
  content = fixed
  await converge(content, 'healing the corrupted base')
  t.ok(Number((await B.status()).healsRequested) > healsBefore, 'B detected that its base did not match and asked for the whole file')
  t.match(B.log(), /does not match the delta's base/, 'and said so in its log')
})

t.test('a record over the budget is dropped and the rewrite goes as plain writes', async t => {
  const c = new Cluster()
  t.teardown(() => c.destroy())
  c.mountArgs = ['--record-budget-mib', '1']
  await c.startNode()
  const A = await c.addMount()
  const B = await c.addMount()
  const file = path.join(A.mountpoint, 'four.txt')
  const content = text(4 * MiB, 3)
  await fsp.writeFile(file, content)
  const before = await pushed(A)
  await fsp.writeFile(file, content) // identical rewrite, but its 4 MiB record exceeds the 1 MiB budget
  const cost = (await pushed(A)) - before
  t.ok(cost > 64 * 1024, `without a record the rewrite is sent as writes: ${cost} bytes pushed`)
  t.same(fs.readdirSync(path.join(A.dataDir, 'vol', 'records')), [], 'no record is left behind')
  const want = sha(content)
  await waitFor('B to match', async () => (await fileSha(path.join(B.mountpoint, 'four.txt')).catch(() => '')) === want, 20_000)
  t.pass('B is byte-identical')
})
