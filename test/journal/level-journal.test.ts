// LevelJournal on a real LevelDB in a temp dir: device id, outbox order and
// device seqs, acks and file records, crash recovery of open transactions,
// the applied cursor and counters across reopen.
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { type Op, OpCodec, type Transaction } from '../../src/codec/wire.js'
import { LevelJournal } from '../../src/journal/level-journal.js'

async function tempDir (t: Test): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'deltafs-journal-'))
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  return dir
}

/** Opens a journal on dir; closed at teardown (close is idempotent). */
async function openJournal (t: Test, dir: string): Promise<LevelJournal> {
  const j = new LevelJournal(path.join(dir, 'journal'), 'docs')
  await j.open()
  t.teardown(() => j.close())
  return j
}

function write (offset: number, text: string): Op {
  return { write: { offset, data: Buffer.from(text) } }
}

function encodedBytes (ops: Op[]): number {
  return ops.reduce((n, op) => n + OpCodec.encode(op).length, 0)
}

/** Journals one closed transaction; returns its device seq. */
async function journalTx (j: LevelJournal, p: string, ops: Op[], mtimeNs = 1000n, size = 10): Promise<number> {
  const id = j.beginTx(p)
  await j.appendOps(id, 0, ops)
  return j.closeTx(id, ops.length, { mtimeNs, size })
}

t.test('the device id is made once and stays across reopen', async t => {
  const dir = await tempDir(t)
  const j1 = await openJournal(t, dir)
  const id = j1.deviceId
  t.match(id, /^d[0-9a-f]{16}$/, 'device id is "d" and 16 hex digits')
  await j1.open()
  t.equal(j1.deviceId, id, 'a second open() is a no-op')
  await j1.close()
  await j1.close()
  t.pass('close() twice is fine')
  const j2 = await openJournal(t, dir)
  t.equal(j2.deviceId, id, 'same device id after reopen')
  const other = await openJournal(t, await tempDir(t))
  t.not(other.deviceId, id, 'another journal gets another device id')
})

t.test('closed transactions come out of the outbox in order, with their ops', async t => {
  const dir = await tempDir(t)
  const j = await openJournal(t, dir)
  let closedEvents = 0
  j.onClosed(() => { closedEvents++ })

  const aOps = [write(0, 'first'), write(4096, 'second'), write(10, 'third')]
  const a = j.beginTx('/a.txt')
  const b1 = await j.appendOps(a, 0, aOps.slice(0, 2))
  const b2 = await j.appendOps(a, 2, aOps.slice(2))
  t.equal(b1 + b2, encodedBytes(aOps), 'appendOps returns the encoded bytes it journaled')
  t.equal(j.pending().tx, 0, 'an open transaction is not pending yet')
  t.same(await j.readOutbox(0, 10), [], 'an open transaction is not in the outbox')
  t.equal(await j.closeTx(a, 3, { mtimeNs: 111n, size: 4106 }), 1, 'first close gets device seq 1')
  t.equal(await journalTx(j, '/dir', [{ mkdir: { mode: 0o755 } }]), 2, 'second gets 2')
  t.equal(await journalTx(j, '/a.txt', [{ truncate: { size: 5 } }], 333n, 5), 3, 'third gets 3')
  t.equal(closedEvents, 3, 'onClosed fired once per close')

  const out = await j.readOutbox(0, 10)
  t.same(out.map(p => p.deviceSeq), [1, 2, 3], 'device seqs 1, 2, 3 in order')
  t.same(out.map(p => p.tx.txId), [1, 2, 3].map(deviceSeq => ({ deviceId: j.deviceId, deviceSeq })), 'tx ids are device id + device seq')
  t.same(out.map(p => p.tx.path), ['/a.txt', '/dir', '/a.txt'], 'paths')
  t.same(out[0]?.tx.ops, aOps, 'ops of the first transaction, in order, across two appendOps calls')
  t.same(out[1]?.tx.ops, [{ mkdir: { mode: 0o755 } }], 'ops of the second')
  t.same(out[2]?.tx.ops, [{ truncate: { size: 5 } }], 'ops of the third')
  t.same(out.map(p => [p.tx.volume, p.tx.baseVersion, p.tx.mtimeNs]), [['docs', 0, 111n], ['docs', 0, 1000n], ['docs', 0, 333n]], 'volume, base version 0 (no record yet), mtime')
  t.same(out.map(p => p.bytes), [encodedBytes(aOps), encodedBytes([{ mkdir: { mode: 0o755 } }]), encodedBytes([{ truncate: { size: 5 } }])], 'bytes per transaction')
  t.same(j.pending(), { tx: 3, bytes: out.reduce((n, p) => n + p.bytes, 0) }, 'pending() counts all three')

  t.same((await j.readOutbox(1, 10)).map(p => p.deviceSeq), [2, 3], 'readOutbox(after 1)')
  t.same((await j.readOutbox(0, 2)).map(p => p.deviceSeq), [1, 2], 'readOutbox(limit 2)')
  t.same((await j.readOutbox(3, 10)).map(p => p.deviceSeq), [], 'nothing after the last')
  t.equal(j.counters().txClosed, 3, 'txClosed counter')
})

t.test('ack drops a transaction and stamps its file record', async t => {
  const dir = await tempDir(t)
  const j = await openJournal(t, dir)
  await journalTx(j, '/a.txt', [write(0, 'hello')], 5_000n, 5)
  await journalTx(j, '/a.txt', [write(5, ' world')], 6_000n, 11)
  const [first, second] = await j.readOutbox(0, 10)
  if (!first || !second) throw new Error('fixture: two pending transactions')
  t.equal(await j.record('/a.txt'), undefined, 'no record before the first ack')

  await j.ack(first, 10)
  t.same(await j.record('/a.txt'), { version: 10, size: 5, mtimeNs: 5_000, by: j.deviceId }, 'record has the volume seq, size and mtime of the close')
  t.same((await j.readOutbox(0, 10)).map(p => p.deviceSeq), [2], 'only the second is left')
  t.same(j.pending(), { tx: 1, bytes: second.bytes }, 'pending() went down by one transaction and its bytes')
  t.equal((await j.readOutbox(0, 10))[0]?.tx.baseVersion, 0, 'its own ack at 10 says nothing of other devices\' changes before 10: the base stays at what was applied (0)')
  await j.recordApplied({ seq: 12, records: new Map() }, 0)
  t.equal((await j.readOutbox(0, 10))[0]?.tx.baseVersion, 10, 'once changes up to 12 are applied, the next transaction of the file is based on version 10')

  await j.ack(second, 11)
  t.same(j.pending(), { tx: 0, bytes: 0 }, 'pending() is back to 0')
  t.same(await j.readOutbox(0, 10), [], 'the outbox is empty')
  t.same(await j.record('/a.txt'), { version: 11, size: 11, mtimeNs: 6_000, by: j.deviceId }, 'record follows the last ack')
  t.equal(j.counters().txAcked, 2, 'txAcked counter')

  await j.ack(first, 99)
  await j.ack({ ...second, deviceSeq: 12345 }, 100)
  t.same(j.pending(), { tx: 0, bytes: 0 }, 'acking again or acking an unknown tx changes nothing in pending()')
  t.equal(j.counters().txAcked, 2, '... nor in the counters')
  t.same(await j.record('/a.txt'), { version: 11, size: 11, mtimeNs: 6_000, by: j.deviceId }, '... nor in the record')
})

t.test('an ack landing while readOutbox reads an entry: the entry is left out, not an error', async t => {
  // Found by the convergence harness: a conflict check read a pending entry
  // while the pusher's ack deleted it, and the remote transaction was skipped.
  const dir = await tempDir(t)
  const j = await openJournal(t, dir)
  await journalTx(j, '/a.txt', [write(0, 'one')])
  await journalTx(j, '/a.txt', [write(3, 'two')])
  const [first] = await j.readOutbox(0, 1)
  if (!first) throw new Error('fixture: a pending transaction')
  // The iterator has handed out the entry; the ack runs before its ops are read.
  const db = (j as unknown as { db: { getMany: (keys: string[]) => Promise<unknown[]> } }).db
  const getMany = db.getMany.bind(db)
  let raced = false
  db.getMany = async (k: string[]) => {
    if (!raced) { raced = true; await j.ack(first, 7) }
    return getMany(k)
  }
  const read = await j.readOutbox(0, 10)
  t.ok(raced, 'the ack ran between the iterator and the read of the ops')
  t.same(read.map(p => p.deviceSeq), [2], 'only the entry still pending comes out')
  db.getMany = getMany
})

t.test('ack moves or drops the record on rename and unlink', async t => {
  const dir = await tempDir(t)
  const j = await openJournal(t, dir)
  await journalTx(j, '/old', [write(0, 'x')], 1000n, 1)
  await journalTx(j, '/old', [{ rename: { to: '/new' } }], 2n, -1)
  await journalTx(j, '/new', [{ unlink: {} }], 3n, -1)
  const [w, r, u] = await j.readOutbox(0, 10)
  await j.ack(w!, 1)
  t.same(await j.record('/old'), { version: 1, size: 1, mtimeNs: 1000, by: j.deviceId }, 'record of /old')
  await j.ack(r!, 2)
  t.equal(await j.record('/old'), undefined, 'rename drops the record of the source')
  t.equal((await j.record('/new'))?.version, 2, 'and gives the target one at the rename version')
  await j.ack(u!, 3)
  t.equal(await j.record('/new'), undefined, 'unlink drops the record')
})

t.test('a transaction left open by a crash is recovered as a closed one', async t => {
  const dir = await tempDir(t)
  const j1 = await openJournal(t, dir)
  await journalTx(j1, '/done.txt', [write(0, 'closed before the crash')])
  const ops = [write(0, 'one'), write(100, 'two'), write(8192, 'three')]
  const open = j1.beginTx('/crash.txt')
  await j1.appendOps(open, 0, ops.slice(0, 2))
  await j1.appendOps(open, 2, ops.slice(2))
  const notJournaled = j1.beginTx('/nothing.txt') // begun, no op appended: nothing to recover
  t.ok(notJournaled > open, 'fixture: a second open id')
  await j1.close() // the process dies without closeTx

  const j2 = await openJournal(t, dir)
  const out = await j2.readOutbox(0, 10)
  t.same(out.map(p => [p.deviceSeq, p.tx.path]), [[1, '/done.txt'], [2, '/crash.txt']], 'the open transaction is in the outbox as device seq 2')
  t.same(out[1]?.tx.ops, ops, 'with all its journaled ops, in order')
  t.equal(out[1]?.tx.mtimeNs, 0n, 'recovered with mtime 0 (unknown)')
  t.same(j2.pending(), { tx: 2, bytes: out[0]!.bytes + encodedBytes(ops) }, 'pending() counts it with its bytes')
  t.equal(j2.counters().txClosed, 2, 'recovery counts as a close')

  // New work after recovery must not reuse the recovered transaction's open id.
  const next = [write(0, 'after recovery')]
  t.equal(await journalTx(j2, '/later.txt', next), 3, 'the next close gets device seq 3')
  const again = await j2.readOutbox(0, 10)
  t.same(again.map(p => p.tx.ops), [[write(0, 'closed before the crash')], ops, next], 'every transaction keeps its own ops')
  await j2.close()

  const j3 = await openJournal(t, dir)
  t.same((await j3.readOutbox(0, 10)).map(p => p.deviceSeq), [1, 2, 3], 'a clean reopen recovers nothing twice')
  t.equal(j3.counters().txClosed, 3, 'txClosed survives reopen')
  t.same(j3.pending(), j2.pending(), 'pending() is the same after reopen')
})

t.test('the applied cursor, records and counters survive reopen', async t => {
  const dir = await tempDir(t)
  const j1 = await openJournal(t, dir)
  t.equal(j1.applied(), 0, 'a new journal has applied nothing')
  await j1.recordApplied({ seq: 5, records: new Map([['/r', { version: 5, size: 3, mtimeNs: 77 }], ['/gone', { version: 5, size: 1, mtimeNs: 1 }]]) }, 3)
  await j1.recordApplied({ seq: 17, records: new Map([['/gone', null]]) }, 40)
  t.equal(j1.applied(), 17, 'applied() moved to 17')
  t.same(await j1.record('/r'), { version: 5, size: 3, mtimeNs: 77 }, 'record set in the batch')
  t.equal(await j1.record('/gone'), undefined, 'record dropped in the batch')
  t.match(j1.counters(), { txApplied: 2, bytesApplied: 43 }, 'applied counters')
  await journalTx(j1, '/x', [write(0, 'x')])
  const [p] = await j1.readOutbox(0, 1)
  await j1.ack(p!, 18)
  await journalTx(j1, '/y', [write(0, 'y')])
  const counters = j1.counters()
  t.same(counters, { txClosed: 2, txAcked: 1, txApplied: 2, bytesApplied: 43, txDropped: 0 }, 'all counters before reopen')
  await j1.close()

  const j2 = await openJournal(t, dir)
  t.equal(j2.applied(), 17, 'applied() survives reopen')
  t.same(await j2.record('/r'), { version: 5, size: 3, mtimeNs: 77 }, 'records survive reopen')
  t.same(j2.counters(), counters, 'counters survive reopen')
  t.same(j2.pending(), { tx: 1, bytes: encodedBytes([write(0, 'y')]) }, 'pending() is rebuilt from the outbox')
  t.equal(await journalTx(j2, '/z', [write(0, 'z')]), 3, 'device seqs continue after reopen')
})

t.test('appendOps and closeTx on a transaction that is not open', async t => {
  const j = await openJournal(t, await tempDir(t))
  await t.rejects(j.appendOps(424242, 0, [write(0, 'x')]), { name: 'DeltafsError', code: 'JOURNAL' }, 'appendOps: JOURNAL')
  const id = j.beginTx('/f')
  await j.appendOps(id, 0, [write(0, 'x')])
  await j.closeTx(id, 1, { mtimeNs: 0n, size: 1 })
  await t.rejects(j.closeTx(id, 1, { mtimeNs: 0n, size: 1 }), { name: 'DeltafsError', code: 'JOURNAL' }, 'closing twice: JOURNAL')
  t.equal(j.pending().tx, 1, 'the failed close added nothing')
})

t.test('close() then open() on the same instance', async t => {
  const j = await openJournal(t, await tempDir(t))
  await journalTx(j, '/a', [write(0, 'a')])
  await journalTx(j, '/b', [write(0, 'b')])
  const before = j.pending()
  await j.close()
  await j.open()
  t.same((await j.readOutbox(0, 10)).map(p => p.deviceSeq), [1, 2], 'the outbox is intact')
  t.same(j.pending(), before, 'pending() is not counted twice')
})

t.test('pending transactions by subject, dropped when they lose a conflict', async t => {
  const dir = await tempDir(t)
  const j = await openJournal(t, dir)
  const s1 = await journalTx(j, '/a', [write(0, 'a1')])
  const { deviceSeq: s2 } = await j.appendTx('/a.tmp', [{ rename: { to: '/b' } }], { mtimeNs: 1n, size: 2, kind: 'file' })
  const { deviceSeq: s3 } = await j.appendTx('/d', [{ mkdir: { mode: 0o755 } }], { mtimeNs: 1n, size: 0, kind: 'dir' })
  const s4 = await journalTx(j, '/a', [write(2, 'a2')])
  t.same(j.pendingOn('/a'), [s1, s4], 'writes to /a')
  t.same(j.pendingOn('/b'), [s2], 'a rename counts for its target')
  t.same(j.pendingOn('/d'), [], 'directories are not conflict-checked')
  t.same((await j.pendingTxOn('/b')).map(p => [p.deviceSeq, p.source, p.tx.ops.length]), [[s2, '/a.tmp', 1]], 'pendingTxOn reads them as journaled')
  const [p1] = await j.readOutbox(0, 1)
  t.same([p1?.subject, p1?.checked], ['/a', true], 'readOutbox gives subject and checked')
  const dropped = await j.dropPending([s1, s4])
  t.same(dropped.map(d => d.deviceSeq), [s1, s4], 'both dropped, with their transactions')
  t.same(j.pendingOn('/a'), [], 'nothing pending on /a')
  t.notOk(await j.isPending(s1), 'gone from the outbox')
  t.same((await j.readOutbox(0, 10)).map(p => p.deviceSeq), [s2, s3], 'the others stay, in order')
  t.same(j.pending().tx, 2, 'pending count follows')
  t.same(await j.dropPending([s1]), [], 'dropping again does nothing')
  await j.addConflict({ path: '/a', copy: '/a (conflict x 20261123T000000Z)', device: 'x', winner: 'y', seq: 9, at: '2026-11-23T00:00:00.000Z' })
  await j.close()
  const again = await openJournal(t, dir)
  t.same(again.pendingOn('/b'), [s2], 'the index is rebuilt on open')
  t.equal(again.counters().txDropped, 2, 'dropped transactions are counted')
  t.same((await again.conflicts()).map(c => c.copy), ['/a (conflict x 20261123T000000Z)'], 'conflicts survive reopen')
})

/** A remote transaction renaming from to to, as applied from the node. */
function remoteRename (from: string, to: string): Transaction {
  return { txId: { deviceId: 'other', deviceSeq: 1 }, volume: 'docs', fileId: '', baseVersion: 0, path: from, ops: [{ rename: { to } }], mtimeNs: 0n }
}

t.test('a remote rename moves pending transactions along, in the batch that records its apply', async t => {
  const dir = await tempDir(t)
  const j = await openJournal(t, dir)
  const s1 = await journalTx(j, '/d/f', [write(0, 'f')])
  const { deviceSeq: s2 } = await j.appendTx('/d/g', [{ rename: { to: '/d/h' } }], { mtimeNs: 1n, size: 1, kind: 'file' })
  const s3 = await journalTx(j, '/dx', [write(0, 'not under /d')])
  await j.beginApply(7, ['/d', '/e'])
  t.same(j.applying(), ['/d', '/e'], 'the apply under way is noted')
  t.same((await j.readOutbox(0, 10)).map(p => p.tx.path), ['/d/f', '/d/g', '/dx'], 'nothing moves before the apply is recorded')
  t.equal(await j.recordApplied({ seq: 7, tx: remoteRename('/d', '/e'), records: new Map() }, 0), 2, 'two transactions under /d')
  const out = await j.readOutbox(0, 10)
  t.same(out.map(p => [p.deviceSeq, p.tx.path, p.subject]), [[s1, '/e/f', '/e/f'], [s2, '/e/g', '/e/h'], [s3, '/dx', '/dx']], 'paths and subjects moved, a sibling prefix not')
  t.same(out[1]?.tx.ops, [{ rename: { to: '/e/h' } }], 'rename targets under the moved path follow too')
  t.same([j.pendingOn('/d/f'), j.pendingOn('/e/f')], [[], [s1]], 'the index follows')
  t.same(j.applying(), [], 'the apply is no longer under way')
  t.equal(await j.recordApplied({ seq: 8, tx: remoteRename('/nothing', '/here'), records: new Map() }, 0), 0, 'a rename of nothing pending moves nothing')
  await j.ack(out[0]!, 9)
  t.same([j.pendingOn('/e/f'), j.pendingOn('/d/f')], [[], []], 'an ack after the move takes the moved entry out of the index')
  t.notOk(await j.isPending(s1), 'and out of the outbox')
  t.same((await j.readOutbox(0, 10)).map(p => [p.deviceSeq, p.tx.path]), [[s2, '/e/g'], [s3, '/dx']], 'the others stay, moved')
})

t.test('a request for a file whole that a remote rename moved on its way is asked again under the new name', async t => {
  const j = await openJournal(t, await tempDir(t))
  const facts = { mtimeNs: 1n, size: 4, kind: 'file' as const }
  await j.appendTx('/b', [{ refresh: { deviceId: 'author' } }], facts)
  await j.appendTx('/x', [{ refresh: { deviceId: 'author' } }], facts)
  const sent = await j.readOutbox(0, 10) // as the pusher sent them
  await j.recordApplied({ seq: 5, tx: remoteRename('/b', '/c'), records: new Map() }, 0)
  await j.ackMany(sent.map((pending, i) => ({ pending, seq: 6 + i })))
  const left = await j.readOutbox(0, 10)
  t.same(left.map(p => [p.tx.path, p.tx.ops]), [['/c', [{ refresh: { deviceId: 'author' } }]]], 'asked again under /c, once; /x, not moved, is done')
  t.equal(await j.record('/b'), undefined, 'the old name gets no record')
})

t.test('a request for a file whole taken after a remote rename not applied here yet is asked again under the new name', async t => {
  const j = await openJournal(t, await tempDir(t))
  const facts = { mtimeNs: 1n, size: 4, kind: 'file' as const }
  await j.appendTx('/b', [{ refresh: { deviceId: 'author' } }], facts)
  await j.appendTx('/x', [{ refresh: { deviceId: 'author' } }], facts)
  const sent = await j.readOutbox(0, 10)
  // The node took them at 10 and 11, after renames at 5 and 12 this mount applies later.
  await j.ackMany(sent.map((pending, i) => ({ pending, seq: 10 + i })))
  t.same(await j.readOutbox(0, 10), [], 'both acked')
  t.equal(await j.recordApplied({ seq: 5, tx: remoteRename('/b', '/c'), records: new Map() }, 0), 1, 'the rename before it moves one')
  t.same((await j.readOutbox(0, 10)).map(p => [p.tx.path, p.tx.ops]), [['/c', [{ refresh: { deviceId: 'author' } }]]], 'asked again under /c')
  await j.recordApplied({ seq: 12, tx: remoteRename('/x', '/y'), records: new Map() }, 0)
  t.same((await j.readOutbox(0, 10)).map(p => p.tx.path), ['/c'], 'a rename after a request leaves it: it was answered before')
})

t.test('an apply a crash interrupted is still noted after a reopen, until it is recorded', async t => {
  const dir = await tempDir(t)
  const j = await openJournal(t, dir)
  const s1 = await journalTx(j, '/a', [write(0, 'local change of the source')])
  await j.beginApply(3, ['/a', '/b'])
  await j.close()
  const again = await openJournal(t, dir)
  t.same(again.applying(), ['/a', '/b'], 'the paths of the interrupted apply')
  t.equal(again.interruptedApply(), 3, 'and its seq')
  t.same(again.pendingOn('/a'), [s1], 'and the pending change still where it was: the rename is applied again, then it follows')
  await again.recordApplied({ seq: 3, tx: remoteRename('/a', '/b'), records: new Map() }, 0)
  t.same([again.pendingOn('/a'), again.pendingOn('/b')], [[], [s1]])
  await again.close()
  const third = await openJournal(t, dir)
  t.same(third.applying(), [], 'gone once recorded')
  t.equal(third.interruptedApply(), 0, 'its seq too')
  t.equal(third.applied(), 3)
})

t.test('large writes read back the same from memory and, after a reopen, from LevelDB', async t => {
  const dir = await tempDir(t)
  const big = (fill: number, n: number): Op => ({ write: { offset: fill * n, data: Buffer.alloc(n, fill) } })
  const ops = [big(1, 64 << 10), write(0, 'small'), big(2, 8 << 10)]
  const j = new LevelJournal(path.join(dir, 'journal'), 'docs')
  await j.open()
  const id = j.beginTx('/big')
  await j.appendOps(id, 0, ops.slice(0, 2))
  await j.appendOps(id, 2, ops.slice(2))
  await j.closeTx(id, ops.length, { mtimeNs: 1n, size: 1 })
  const appended = await j.appendTx('/big2', [big(3, 16 << 10)], { mtimeNs: 2n, size: 2 })
  const before = await j.readOutbox(0, 10)
  t.same(before.map(p => p.tx.ops), [ops, [big(3, 16 << 10)]], 'large and small ops, in order, with their bytes')
  await j.ack(before[1]!, 5)
  t.same((await j.readOutbox(0, 10)).map(p => p.deviceSeq), [before[0]!.deviceSeq], 'the acked one is gone')
  t.equal(appended.deviceSeq, before[1]!.deviceSeq)
  await j.close()

  const again = await openJournal(t, dir)
  const after = await again.readOutbox(0, 10)
  t.same(after.map(p => p.tx.ops), [ops], 'the same ops from LevelDB after a reopen')
  await again.ack(after[0]!, 6)
  t.same(await again.readOutbox(0, 10), [], 'empty after the ack')
})

t.test('appendTx and closeTx started together commit their device seqs in order, and a reopen never reuses one', async t => {
  const dir = await tempDir(t)
  const j = new LevelJournal(path.join(dir, 'journal'), 'docs')
  await j.open()
  const id = j.beginTx('/b')
  await j.appendOps(id, 0, [write(0, 'x')])
  // appendTx encodes its ops asynchronously; a closeTx started in that gap
  // used to take the next seq and commit before it (found by review).
  const appended = j.appendTx('/a', [{ unlink: {} }], { mtimeNs: 0n, size: -1 })
  await Promise.resolve()
  const closed = j.closeTx(id, 1, { mtimeNs: 0n, size: 1 })
  const seqs = [await closed, (await appended).deviceSeq]
  t.same([...seqs].sort((x, y) => x - y), [1, 2], 'both got a seq')
  t.same((await j.readOutbox(0, 10)).map(p => p.deviceSeq), [1, 2], 'both are in the outbox')
  await j.close()
  const k = new LevelJournal(path.join(dir, 'journal'), 'docs')
  await k.open()
  t.teardown(() => k.close())
  const next = await k.appendTx('/c', [{ unlink: {} }], { mtimeNs: 0n, size: -1 })
  t.equal(next.deviceSeq, 3, 'after a reopen the next seq is new')
  t.same((await k.readOutbox(0, 10)).map(p => [p.deviceSeq, p.tx.path]), [[1, seqs[0] === 1 ? '/b' : '/a'], [2, seqs[0] === 1 ? '/a' : '/b'], [3, '/c']], 'no entry was overwritten')
})

t.test('an append that failed is left out of its transaction, and the outbox goes on', async t => {
  const dir = await tempDir(t)
  const j = await openJournal(t, dir)
  const id = j.beginTx('/f')
  await j.appendOps(id, 0, [write(0, 'aa')])
  // The second append fails as a full disk would make it fail.
  const inner = j as unknown as { writeBatch: (...args: unknown[]) => Promise<void> }
  const real = inner.writeBatch
  inner.writeBatch = async () => { inner.writeBatch = real; throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }) }
  await t.rejects(j.appendOps(id, 1, [write(2, 'bb')]), /no space/)
  await j.appendOps(id, 2, [write(4, 'cc')])
  await j.closeTx(id, 3, { mtimeNs: 1n, size: 6 })
  const out = await j.readOutbox(0, 10)
  t.same(out.flatMap(p => p.tx.ops.map(op => 'write' in op && op.write ? Buffer.from(op.write.data).toString() : '?')), ['aa', 'cc'], 'the ops that were journaled go out, the failed one does not')
  await j.ack(out[0]!, 1)
  await j.ack(out[1]!, 2)
  t.equal(j.pending().tx, 0, 'and they are acked')
})

t.test('more pending transactions than the outbox cache holds: read in order, from memory and from LevelDB', async t => {
  const dir = await tempDir(t)
  const j = await openJournal(t, dir)
  const n = 1100 // more than ENTRY_CACHE in level-journal.ts
  const seqs: number[] = []
  for (let i = 0; i < n; i++) seqs.push((await j.appendTx(`/f${i}`, [{ mkdir: { mode: 0o755 } }], { mtimeNs: 1n, size: 0, kind: 'dir' })).deviceSeq)
  const all = await j.readOutbox(0, 2 * n)
  t.same(all.map(p => p.deviceSeq), seqs, 'every one, in order')
  t.same(all.map(p => p.tx.path), seqs.map((_, i) => `/f${i}`), 'each with its own entry')
  const tail = await j.readOutbox(seqs[n - 10]!, 100)
  t.same(tail.map(p => p.deviceSeq), seqs.slice(n - 9), 'the newest ones after a seq')
  const page = await j.readOutbox(seqs[5]!, 3)
  t.same(page.map(p => p.deviceSeq), seqs.slice(6, 9), 'a page of old ones')
  await j.ack(all[n - 1]!, 1)
  await j.ack(all[0]!, 2)
  t.same([await j.isPending(seqs[0]!), await j.isPending(seqs[n - 1]!), await j.isPending(seqs[n - 2]!)], [false, false, true], 'acked ones are gone, old and new')
  const left = await j.readOutbox(0, 2 * n)
  t.same(left.map(p => p.deviceSeq), seqs.slice(1, n - 1), 'the rest, in order')
  t.same(j.pending().tx, n - 2)
  const dropped = await j.dropPending([seqs[n - 2]!, seqs[1]!])
  t.same(dropped.map(d => d.deviceSeq), [seqs[1], seqs[n - 2]], 'drops read from either')
  t.same((await j.readOutbox(seqs[n - 5]!, 10)).map(p => p.deviceSeq), seqs.slice(n - 4, n - 2), 'dropped ones are gone')
})

t.test('the applied cursor moved past own transactions: in memory at once, in LevelDB now and then and at close', async t => {
  const dir = await tempDir(t)
  const j = await openJournal(t, dir)
  const db = (j as unknown as { db: { get: (k: string) => Promise<Uint8Array | undefined> } }).db
  const stored = async (): Promise<number> => { const v = await db.get('m!applied'); return v === undefined ? 0 : Number(Buffer.from(v).readBigUInt64BE(0)) }
  await j.passOwn(3)
  t.equal(j.applied(), 3, 'the cursor moved')
  t.equal(await stored(), 0, 'not written yet')
  await j.passOwn(2)
  t.equal(j.applied(), 3, 'never back')
  await j.passOwn(3 + 1024)
  t.equal(await stored(), 3 + 1024, 'written once far enough ahead')
  await j.recordApplied({ seq: 2000, records: new Map() }, 0)
  t.equal(await stored(), 2000, 'an apply writes it')
  await j.passOwn(2001)
  await j.close()
  const again = await openJournal(t, dir)
  t.equal(again.applied(), 2001, 'and close')
})

t.test('acks recorded together: in order, a renamed directory taking the records the acks before it made', async t => {
  const dir = await tempDir(t)
  const j = await openJournal(t, dir)
  await journalTx(j, '/d/f', [write(0, 'f')], 1000n, 1)
  await journalTx(j, '/d/f', [write(1, 'g')], 2000n, 2)
  await j.appendTx('/d', [{ rename: { to: '/e' } }], { mtimeNs: 3n, size: 0, kind: 'dir' })
  await journalTx(j, '/e/f', [write(2, 'h')], 4000n, 3)
  const [w1, w2, r, w3] = await j.readOutbox(0, 10)
  await j.ackMany([{ pending: w1!, seq: 5 }, { pending: w2!, seq: 6 }, { pending: w1!, seq: 5 }, { pending: r!, seq: 7 }, { pending: w3!, seq: 8 }])
  t.equal(await j.record('/d/f'), undefined, 'nothing left under the old name')
  t.same(await j.record('/e/f'), { version: 8, size: 3, mtimeNs: 4000, by: j.deviceId }, 'the file\'s record moved with its directory, then the last ack stamped it')
  t.same(j.pending(), { tx: 0, bytes: 0 }, 'all four acked')
  t.equal(j.counters().txAcked, 4, 'each counted once')
  t.same(await j.readOutbox(0, 10), [], 'the outbox is empty')
  await j.close()
  const again = await openJournal(t, dir)
  t.equal(again.counters().txAcked, 4, 'the count survives reopen')
  t.same(await again.readOutbox(0, 10), [], 'and the outbox stays empty')
})

t.test('transactions closed together are committed together, in order', async t => {
  const dir = await tempDir(t)
  const j = await openJournal(t, dir)
  const ids: number[] = []
  for (let i = 0; i < 10; i++) {
    const id = j.beginTx(`/f${i}`)
    await j.appendOps(id, 0, [write(0, `file ${i}`)])
    ids.push(id)
  }
  const db = (j as unknown as { db: { batch: () => unknown } }).db
  const batch = db.batch.bind(db)
  let writes = 0
  db.batch = () => { writes++; return batch() }
  const seqs = await Promise.all(ids.map(id => j.closeTx(id, 1, { mtimeNs: 1n, size: 6 })))
  db.batch = batch
  t.same(seqs, seqs.slice().sort((a, b) => a - b), 'seqs in close order')
  t.ok(writes <= 2, `${writes} LevelDB writes for 10 closes`)
  t.same((await j.readOutbox(0, 20)).map(p => [p.deviceSeq, p.tx.path]), seqs.map((s, i) => [s, `/f${i}`]), 'all in the outbox, in order')
  await j.close()
  const again = await openJournal(t, dir)
  t.same((await again.readOutbox(0, 20)).map(p => p.deviceSeq), seqs, 'and after a reopen')
})

t.test('an unsent removal of a name is found from its last transaction naming it, until it is acked', async t => {
  const j = await openJournal(t, await tempDir(t))
  const facts = { mtimeNs: 1n, size: 1, kind: 'file' as const }
  await j.appendTx('/a', [write(0, 'a')], facts)
  t.equal(await j.pendingRemoval('/a'), false, 'a write keeps the name')
  await j.appendTx('/a', [{ unlink: {} }], facts)
  t.equal(await j.pendingRemoval('/a'), true, 'deleted')
  await j.appendTx('/a', [{ create: { mode: 0o644 } }], facts)
  t.equal(await j.pendingRemoval('/a'), false, 'made again after')
  await j.appendTx('/a', [{ rename: { to: '/b' } }], facts)
  t.equal(await j.pendingRemoval('/a'), true, 'renamed away')
  t.equal(await j.pendingRemoval('/b'), false, 'not the name it was renamed onto')
  t.equal(await j.pendingRemoval('/c'), false, 'nor a name no transaction names')
  for (const p of await j.readOutbox(0, 10)) await j.ack(p, p.deviceSeq)
  t.equal(await j.pendingRemoval('/a'), false, 'acked: the others have it')
})

t.test('an unsent hard link is found from either of its names, until it is acked', async t => {
  const j = await openJournal(t, await tempDir(t))
  await j.appendTx('/x', [write(0, 'x')], { mtimeNs: 1n, size: 1 })
  await j.appendTx('/x', [{ link: { to: '/y' } }], { mtimeNs: 1n, size: 1 })
  t.equal(await j.pendingLinkFrom('/x'), true, 'from its source')
  t.equal(await j.pendingLinkTo('/y'), true, 'to its new name')
  t.equal(await j.pendingLinkFrom('/y'), false, 'not from its new name')
  t.equal(await j.pendingLinkTo('/x'), false, 'nor to its source')
  t.same(await j.pendingLinks(), [{ from: '/x', to: '/y', deviceSeq: 2 }], 'listed once, with the transaction that made it')
  for (const p of await j.readOutbox(0, 10)) await j.ack(p, p.deviceSeq)
  t.equal(await j.pendingLinkFrom('/x'), false, 'acked: the others have it')
  t.same(await j.pendingLinks(), [], 'none listed')
  // Without its own record, the next start would take the new name for a new file and send it as one.
  const [x, y] = [await j.record('/x'), await j.record('/y')]
  t.same([y?.size, y?.mtimeNs], [x?.size, x?.mtimeNs], 'the new name has the facts of the file it names')
  t.same([x?.version, y?.version], [1, 2], "the source's record stays its last content change's; the new name's is the link's")
})

// The storage node checks a change against its base (DESIGN §6). A file this
// mount has no record of is new here: based on everything applied, so that a
// name changed elsewhere after that (news to this mount) is a conflict at
// the node, as the mount judges it when the news arrives.
t.test('a change of a file with no record is based on the applied cursor; one with a record on that record', async t => {
  const j = await openJournal(t, await tempDir(t))
  await j.recordApplied({ seq: 4, records: new Map([['/known', { version: 3, size: 1, mtimeNs: 1 }]]) }, 0)
  await j.recordApplied({ seq: 9, records: new Map() }, 0)
  await journalTx(j, '/new', [{ create: { mode: 0o644 } }, write(0, 'x')])
  await journalTx(j, '/known', [write(0, 'y')])
  await j.appendTx('/known', [{ rename: { to: '/elsewhere' } }], { mtimeNs: 1n, size: 1 })
  const out = await j.readOutbox(0, 10)
  t.same(out.map(p => [p.tx.path, p.tx.baseVersion]), [['/new', 9], ['/known', 3], ['/known', 9]], 'a new file on 9 (all applied), a known one on its record, a rename on its target (new there)')
  t.equal(out[2]!.tx.sourceBaseVersion, 3, 'a rename\'s source on its record')
})
