// LevelJournal with large writes in payload segments: they round-trip
// through the outbox with the bytes counted as inline, acks and drops delete
// the segments nothing refers to, a reopen counts the references again, an
// ack racing readOutbox leaves the entry out, and writes that returned
// survive a SIGKILL of the process that made them.
import { spawn } from 'node:child_process'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { type Op, OpCodec } from '../../src/codec/wire.js'
import { LevelJournal } from '../../src/journal/level-journal.js'
import { segmentName } from '../../src/journal/payload-store.js'
import { Level } from 'level'
import { crashLeaving, withBoot } from '../helpers/journal-crash.js'

/** Small segments, so that a few ops spread over several of them. */
const SEGMENT = 200_000

async function tempDir (t: Test): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'deltafs-journal-payload-'))
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  return dir
}

async function openJournal (t: Test, dir: string): Promise<LevelJournal> {
  const j = new LevelJournal(path.join(dir, 'journal'), 'docs', 1 << 20, SEGMENT)
  await j.open()
  t.teardown(() => j.close())
  return j
}

/** Bytes that differ per seed and per position, so a misplaced read shows. */
function bytes (seed: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = (seed * 31 + i * 7 + (i >> 8)) & 0xff
  return b
}

function big (seed: number, n = 100_000): Op {
  return { write: { offset: seed * n, data: bytes(seed, n) } }
}

function small (offset: number, text: string): Op {
  return { write: { offset, data: Buffer.from(text) } }
}

async function journalTx (j: LevelJournal, p: string, ops: Op[]): Promise<number> {
  const id = j.beginTx(p)
  await j.appendOps(id, 0, ops)
  return j.closeTx(id, ops.length, { mtimeNs: 1n, size: 1 })
}

/** Segment deletions run after the ack (or drop) returned: waits for those started so far. */
async function collected (j: LevelJournal): Promise<void> {
  await (j as unknown as { collecting: Promise<void> }).collecting
}

async function segments (dir: string): Promise<number[]> {
  const names = await fsp.readdir(path.join(dir, 'journal', 'payload')).catch(() => [])
  return names.filter(n => n.endsWith('.seg')).map(n => parseInt(n, 16)).sort((a, b) => a - b)
}

t.test('large writes go to segments and come out of the outbox whole, small ones stay inline', async t => {
  const dir = await tempDir(t)
  const j = await openJournal(t, dir)
  const ops = [big(1), small(0, 'tiny'), big(2, 16 << 10), small(5, 'x'.repeat((16 << 10) - 1))]
  await journalTx(j, '/a', ops)
  t.same(await segments(dir), [1], 'one segment')
  const { size } = await fsp.stat(path.join(dir, 'journal', 'payload', segmentName(1)))
  t.equal(size, 100_000 + (16 << 10), 'holding the data of the two writes of 16 KiB or more, not the smaller ones')
  const [p] = await j.readOutbox(0, 10)
  t.same(p?.tx.ops, ops, 'every op, in order, with its bytes')
  const inline = ops.reduce((n, op) => n + OpCodec.encode(op).length, 0)
  t.equal(p?.bytes, inline, 'bytes counted as the inline encoding')
  t.same(j.pending(), { tx: 1, bytes: inline })
})

t.test('acks and drops delete the segments nothing refers to any more', async t => {
  const dir = await tempDir(t)
  const j = await openJournal(t, dir)
  // 100 KB writes in 200 KB segments: two per segment.
  await journalTx(j, '/a', [big(1), big(2)])
  await journalTx(j, '/b', [big(3)])
  await journalTx(j, '/c', [big(4), big(5)])
  await journalTx(j, '/d', [big(6)])
  t.same(await segments(dir), [1, 2, 3], 'a: 1; b: 2; c: 2 and 3; d: 3')
  const pending = await j.readOutbox(0, 10)
  await j.ack(pending[1]!, 11)
  await collected(j)
  t.same(await segments(dir), [1, 2, 3], 'segment 2 is still referred to by c')
  await j.ack(pending[0]!, 12)
  await collected(j)
  t.same(await segments(dir), [2, 3], 'segment 1 went with the ack of a')
  t.same((await j.dropPending([pending[2]!.deviceSeq])).map(p => p.deviceSeq), [pending[2]!.deviceSeq])
  await collected(j)
  t.same(await segments(dir), [3], 'segment 2 went with the drop of c')
  await j.ack(pending[3]!, 13)
  await collected(j)
  t.same(await segments(dir), [3], 'the active segment stays')
  await journalTx(j, '/e', [big(7), big(8)])
  await collected(j)
  t.same(await segments(dir), [4], 'segment 3 went once appends moved past it')
  t.same((await j.readOutbox(0, 10)).map(p => p.tx.ops), [[big(7), big(8)]])
})

t.test('a discarded transaction releases its segments', async t => {
  const dir = await tempDir(t)
  const j = await openJournal(t, dir)
  const id = j.beginTx('/held')
  await j.appendOps(id, 0, [big(1), big(2), big(3)])
  await journalTx(j, '/next', [big(4)])
  t.same(await segments(dir), [1, 2])
  await j.discardTx(id, 3)
  await collected(j)
  t.same(await segments(dir), [2], 'segment 1 went; 2 is active')
  t.same((await j.readOutbox(0, 10)).map(p => p.tx.ops), [[big(4)]])
})

t.test('a reopen counts the references again: segments go when their last op is acked, orphans at once', async t => {
  const dir = await tempDir(t)
  const first = new LevelJournal(path.join(dir, 'journal'), 'docs', 1 << 20, SEGMENT)
  await first.open()
  await journalTx(first, '/a', [big(1), big(2)])
  await journalTx(first, '/b', [big(3)])
  const open = first.beginTx('/open')
  await first.appendOps(open, 0, [big(4), small(0, 'left open by a crash')])
  await first.close()
  await fsp.writeFile(path.join(dir, 'journal', 'payload', segmentName(9)), 'bytes of an op never journaled')
  const j = await openJournal(t, dir)
  t.same(await segments(dir), [1, 2], 'the orphan segment 9 went at open')
  const pending = await j.readOutbox(0, 10)
  t.same(pending.map(p => p.tx.ops), [[big(1), big(2)], [big(3)], [big(4), small(0, 'left open by a crash')]], 'all ops after the reopen, the open transaction recovered')
  await j.ack(pending[1]!, 5)
  await collected(j)
  t.same(await segments(dir), [1, 2], 'segment 2 still holds the recovered transaction')
  await j.ack(pending[0]!, 6)
  await collected(j)
  t.same(await segments(dir), [2], 'segment 1 went with its last reference; no segment is active after a reopen')
  await j.ack(pending[2]!, 7)
  await collected(j)
  t.same(await segments(dir), [], 'and segment 2 with the last one')
  t.same(j.pending(), { tx: 0, bytes: 0 })
})

t.test('an ack that deletes the segment while readOutbox reads the entry: the entry is left out, not an error', async t => {
  const dir = await tempDir(t)
  const j = await openJournal(t, dir)
  await journalTx(j, '/a', [big(1), big(2)])
  await journalTx(j, '/a', [big(3), big(4)])
  const [first] = await j.readOutbox(0, 1)
  if (!first) throw new Error('fixture: a pending transaction')
  // The op values (references) are read; the ack then takes the entry and its segment before the data is read.
  const db = (j as unknown as { db: { getMany: (keys: string[]) => Promise<unknown[]> } }).db
  const getMany = db.getMany.bind(db)
  let raced = false
  db.getMany = async (k: string[]) => {
    const values = await getMany(k)
    if (!raced) { raced = true; await j.ack(first, 7); await collected(j) }
    return values
  }
  const read = await j.readOutbox(0, 10)
  db.getMany = getMany
  t.ok(raced, 'the ack ran between the read of the references and the read of the data')
  t.same(await segments(dir), [2], 'the ack deleted segment 1')
  t.same(read.map(p => p.deviceSeq), [2], 'only the entry still pending comes out')
})

t.test('a pending entry whose segment is gone is an error, not silently skipped', async t => {
  const dir = await tempDir(t)
  const j = await openJournal(t, dir)
  await journalTx(j, '/a', [big(1), big(2)])
  await journalTx(j, '/a', [big(3), big(4)])
  await fsp.rm(path.join(dir, 'journal', 'payload', segmentName(1)))
  await t.rejects(j.readOutbox(0, 10), { code: 'JOURNAL' })
})

t.test('after a crash that lost segment bytes, a reopen drops the transactions that refer to them and keeps the rest', async t => {
  const dir = await tempDir(t)
  const j = await openJournal(t, dir)
  await journalTx(j, '/a', [small(0, 'before')])
  await journalTx(j, '/b', [big(1)])
  await journalTx(j, '/c', [small(0, 'after')])
  const open = j.beginTx('/d')
  await j.appendOps(open, 0, [big(2)])
  await j.close()
  // What a power loss can leave: LevelDB kept the references, the segment
  // did not keep the bytes (here: the tail of the only segment, both ops).
  const seg = path.join(dir, 'journal', 'payload', segmentName(1))
  await fsp.truncate(seg, 1000)
  const k = await openJournal(t, dir)
  const out = await k.readOutbox(0, 10)
  t.same(out.map(p => p.tx.path), ['/a', '/c'], 'the transactions with lost bytes are gone, the others are still there')
  t.equal(k.pending().tx, 2, 'the pending count agrees')
  const next = await journalTx(k, '/e', [big(3)])
  t.same((await k.readOutbox(0, 10)).map(p => [p.deviceSeq, p.tx.path]), [[1, '/a'], [3, '/c'], [next, '/e']], 'new transactions journal and read normally')
  t.ok(next > 3, 'with a new seq')
})

t.test('sync forces the payload segments, then LevelDB: fsync through the mount makes the data durable', async t => {
  // Which segments a store sync forces is payload-store.test's; here, that the journal's sync does one, first.
  const dir = await tempDir(t)
  const j = await openJournal(t, dir)
  const order: string[] = []
  const inner = j as unknown as { db: { put: (k: string, v: Uint8Array, o?: { sync?: boolean }) => Promise<void> }; payload: { sync: () => Promise<unknown> } }
  const put = inner.db.put.bind(inner.db)
  inner.db.put = async (k, v, o) => { if (o?.sync) order.push('leveldb'); return put(k, v, o) }
  const payloadSync = inner.payload.sync.bind(inner.payload)
  inner.payload.sync = async () => { const mark = await payloadSync(); order.push('segments'); return mark }
  await journalTx(j, '/a', [big(1), big(2), big(3)])
  await j.sync()
  t.same(order, ['segments', 'leveldb'], 'the segments are forced before the LevelDB log')
})

/**
 * Runs `body` in a child process with `j`, a LevelJournal on dir's journal
 * made with the constructor arguments after the volume (and big() and
 * bytes()), then kills it with SIGKILL: what it journaled is left as a
 * crash leaves it. Resolves with the child's signal.
 */
async function journalThenKill (t: Test, dir: string, journalArgs: string, body: string): Promise<string | null> {
  const journalModule = fileURLToPath(new URL('../../src/journal/level-journal.js', import.meta.url))
  const child = spawn(process.execPath, ['--input-type=module', '-e', `
    const { LevelJournal } = await import(${JSON.stringify(journalModule)})
    ${bytes.toString()}
    const big = ${big.toString()}
    const j = new LevelJournal(${JSON.stringify(path.join(dir, 'journal'))}, 'docs', ${journalArgs})
    await j.open()
    ${body}
    process.stdout.write('journaled\\n')
    setInterval(() => {}, 1000)
  `], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => { if (chunk.toString().includes('journaled')) resolve() })
    child.on('exit', code => reject(new Error(`child exited (${code}) before journaling`)))
  })
  child.kill('SIGKILL')
  await new Promise(resolve => child.once('exit', resolve))
  return child.signalCode
}

t.test('writes that returned survive a SIGKILL of the process, with their bytes', async t => {
  const dir = await tempDir(t)
  // The child journals closed transactions and one still open.
  const signal = await journalThenKill(t, dir, `1 << 20, ${SEGMENT}`, `
    for (let tx = 0; tx < 4; tx++) {
      const id = j.beginTx('/f' + tx)
      await j.appendOps(id, 0, [big(tx * 3 + 1), big(tx * 3 + 2)])
      await j.appendOps(id, 2, [big(tx * 3 + 3, 20000)])
      if (tx < 3) await j.closeTx(id, 3, { mtimeNs: 1n, size: 1 })
    }
  `)
  t.equal(signal, 'SIGKILL', 'killed, not closed')

  const j = await openJournal(t, dir)
  const pending = await j.readOutbox(0, 10)
  t.same(pending.map(p => p.tx.path), ['/f0', '/f1', '/f2', '/f3'], 'the three closed transactions and the open one, recovered')
  for (const [tx, p] of pending.entries()) {
    t.same(p.tx.ops, [big(tx * 3 + 1), big(tx * 3 + 2), big(tx * 3 + 3, 20000)], `every byte of ${p.tx.path}`)
  }
})

t.test('a reference journaled beside bytes that never landed (a process crash mid-write) costs that write alone', async t => {
  const dir = await tempDir(t)
  await withBoot('boot-1', async () => {
    const j = await openJournal(t, dir)
    await journalTx(j, '/closed', [small(0, 'kept')])
    const open = j.beginTx('/f')
    // Three writes of one transaction: 1 and 2 in segment 1, 3 in segment 2.
    await j.appendOps(open, 0, [big(1, 60_000), big(2, 60_000), big(3, 100_000)])
    await j.close()
    // The second write's bytes were still on their way when the process died: a hole (zeros) inside the segment.
    await crashLeaving(path.join(dir, 'journal'), [[60_000, 60_000]])
    const k = await openJournal(t, dir)
    const out = await k.readOutbox(0, 10)
    t.same(out.map(p => p.tx.path), ['/closed', '/f', '/f'], 'the open transaction is recovered around the gap, in two parts')
    t.same(out.slice(1).flatMap(p => p.tx.ops), [big(1, 60_000), big(3, 100_000)], 'with every write that landed, byte for byte, and without the lost one')
    t.same(k.resends(), [], 'nothing to resend: the backing file never got the lost write either')
  })
})

t.test('after a reboot, a transaction with a lost write goes whole and its file is to be resent', async t => {
  const dir = await tempDir(t)
  await withBoot('boot-1', async () => {
    const j = await openJournal(t, dir)
    await journalTx(j, '/closed', [small(0, 'kept')])
    const open = j.beginTx('/f')
    await j.appendOps(open, 0, [big(1, 60_000), big(2, 60_000)])
    await j.close()
  })
  await crashLeaving(path.join(dir, 'journal'), [[60_000, 60_000]])
  await withBoot('boot-2', async () => {
    const k = await openJournal(t, dir)
    t.same((await k.readOutbox(0, 10)).map(p => p.tx.path), ['/closed'], 'the transaction with the lost write is gone whole')
    t.same(k.resends(), ['/f'], 'its file is to be sent whole')
    await k.resent(['/f'])
    t.same(k.resends(), [], 'until it was')
    await k.close()
    const again = await openJournal(t, dir)
    t.same(again.resends(), [], 'and that is durable')
  })
})

t.test('bytes made durable by a sync are not read again at the next open', async t => {
  const dir = await tempDir(t)
  const j = await openJournal(t, dir)
  const open = j.beginTx('/f')
  await j.appendOps(open, 0, [big(1, 60_000), big(2, 60_000)])
  await j.sync()
  await j.close()
  const k = new LevelJournal(path.join(dir, 'journal'), 'docs', 1 << 20, SEGMENT)
  const reads: number[] = []
  const payload = (k as unknown as { payload: { read: (ref: { offset: number }) => Promise<Buffer> } }).payload
  const read = payload.read.bind(payload)
  payload.read = async ref => { reads.push(ref.offset); return read(ref) }
  await k.open()
  t.teardown(() => k.close())
  t.same(reads, [], 'open checked no CRC: the watermark covers both writes')
  t.same((await k.readOutbox(0, 10)).flatMap(p => p.tx.ops), [big(1, 60_000), big(2, 60_000)], 'and both are there')
})

t.test('a long stream with no fsync is synced in the background: an open after SIGKILL reads back only its tail', async t => {
  const dir = await tempDir(t)
  // A background payload sync every 100,000 bytes; each write waits a little, so each sync finishes before the next starts.
  await journalThenKill(t, dir, `1 << 20, ${SEGMENT}, 100000`, `
    const id = j.beginTx('/stream')
    for (let i = 0; i < 6; i++) {
      await j.appendOps(id, i, [big(i + 1, 60000)])
      await new Promise(resolve => setTimeout(resolve, 150))
    }
  `)

  const k = new LevelJournal(path.join(dir, 'journal'), 'docs', 1 << 20, SEGMENT)
  const reads: number[] = []
  const payload = (k as unknown as { payload: { read: (ref: { offset: number }) => Promise<Buffer> } }).payload
  const read = payload.read.bind(payload)
  payload.read = async ref => { reads.push(ref.offset); return read(ref) }
  await withBoot('boot-same', () => k.open())
  t.teardown(() => k.close())
  t.ok(reads.length <= 2, `open read back ${reads.length} of the 6 writes (the ones after the last background sync)`)
  t.same((await k.readOutbox(0, 10)).flatMap(p => p.tx.ops), [1, 2, 3, 4, 5, 6].map(i => big(i, 60_000)), 'and all six are recovered')
})

t.test('a payload write that fails after its reference was journaled takes the reference back', async t => {
  const dir = await tempDir(t)
  const j = await openJournal(t, dir)
  const payload = (j as unknown as { payload: { begin: (data: Uint8Array) => { ref: unknown; written: Promise<void> } } }).payload
  const begin = payload.begin.bind(payload)
  payload.begin = data => {
    const started = begin(data)
    return { ref: started.ref, written: started.written.then(() => { throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }) }) }
  }
  const open = j.beginTx('/f')
  await j.appendOps(open, 0, [small(0, 'first')])
  await t.rejects(j.appendOps(open, 1, [big(1)]), /ENOSPC/, 'the append fails')
  payload.begin = begin
  await j.appendOps(open, 2, [small(10, 'third')])
  await j.closeTx(open, 3, { mtimeNs: 1n, size: 1 })
  t.same((await j.readOutbox(0, 10)).flatMap(p => p.tx.ops), [small(0, 'first'), small(10, 'third')], 'the transaction goes without the failed write')
  const db = (j as unknown as { db: Level<string, Uint8Array> }).db
  t.same(await db.keys({ gte: 'o!', lt: 'o"' }).all(), [`o!${(open).toString(16).padStart(16, '0')}!00000000`, `o!${(open).toString(16).padStart(16, '0')}!00000002`], 'no op key refers to the bytes that never landed')
})

t.test('writes whose data lies back to back in a segment are read back with one read, each with its own bytes', async t => {
  const dir = await tempDir(t)
  const j = new LevelJournal(path.join(dir, 'journal'), 'docs', 1 << 20, 1 << 20)
  await j.open()
  t.teardown(() => j.close())
  const a = j.beginTx('/a')
  const b = j.beginTx('/b')
  // /a's first two writes are adjacent; /b's write lands between /a's second and third.
  await j.appendOps(a, 0, [big(1, 40_000), big(2, 40_000)])
  await j.appendOps(b, 0, [big(7, 30_000)])
  await j.appendOps(a, 2, [small(0, 'inline'), big(3, 40_000)])
  await j.closeTx(a, 4, { mtimeNs: 1n, size: 1 })
  await j.closeTx(b, 1, { mtimeNs: 1n, size: 1 })
  const payload = (j as unknown as { payload: { read: (ref: { offset: number; length: number }) => Promise<Buffer> } }).payload
  const read = payload.read.bind(payload)
  const reads: Array<[number, number]> = []
  payload.read = async ref => { reads.push([ref.offset, ref.length]); return read(ref) }
  const out = await j.readOutbox(0, 10)
  t.same(out.map(p => p.tx.ops), [[big(1, 40_000), big(2, 40_000), small(0, 'inline'), big(3, 40_000)], [big(7, 30_000)]], 'every op with its own bytes, in order')
  t.same(reads, [[0, 80_000], [110_000, 40_000], [80_000, 30_000]], 'the adjacent pair in one read, the others apart')
})
