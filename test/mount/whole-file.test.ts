// A file sent whole (an answer to another mount's Refresh, a conflict copy,
// a change found by startup reconciliation) is one transaction on the wire:
// its first op (Truncate to 0 or Create), its content and its attributes
// apply together on the others, and win or lose a conflict together. Only a
// file larger than one outbox entry goes in parts, each a frame of its own,
// the first one starting it over.
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import type { Op, Transaction } from '../../src/codec/wire.js'
import { LevelJournal } from '../../src/journal/level-journal.js'
import { TxRecorder } from '../../src/capture/tx-recorder.js'
import { newCaptureStats } from '../../src/capture/capture-stats.js'
import { answerRefresh, journalNewFile, journalWholeFile, reconcile } from '../../src/mount/reconcile.js'
import { logger } from '../../src/util/log.js'
import { crashLeaving, withBoot } from '../helpers/journal-crash.js'

/** Per outbox entry, as the mount opens its journal (fits zstd-codec's heap). */
const ENTRY_BYTES = 3 << 20

const REC_OPTS = { quietMs: 200, maxTxBytes: 1 << 20, freshGraceMs: 100, maxHeldFreshBytes: 128 << 20 }

/** A temp dir with the backing files' directory made, and where the journal goes; removed at teardown. */
async function dirs (t: Test): Promise<{ files: string; jdir: string }> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'deltafs-whole-'))
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  const files = path.join(dir, 'files')
  await fsp.mkdir(files)
  return { files, jdir: path.join(dir, 'journal') }
}

async function setup (t: Test): Promise<{ files: string; journal: LevelJournal; rec: TxRecorder }> {
  const { files, jdir } = await dirs(t)
  const journal = new LevelJournal(jdir, 'docs', ENTRY_BYTES)
  await journal.open()
  t.teardown(() => journal.close())
  const rec = new TxRecorder(journal, p => path.join(files, p), newCaptureStats(), REC_OPTS)
  return { files, journal, rec }
}

async function outbox (journal: LevelJournal): Promise<Transaction[]> {
  return (await journal.readOutbox(0, 1000)).map(p => p.tx)
}

const kinds = (ops: Op[]): string[] => ops.map(op => Object.keys(op).find(k => (op as Record<string, unknown>)[k] != null) ?? '?')

/** What a receiver has after applying txs to a file holding `old`. */
function replay (txs: Transaction[], old: Buffer): Buffer {
  let file = Buffer.from(old)
  for (const tx of txs) {
    for (const op of tx.ops) {
      if ('truncate' in op && op.truncate) file = Buffer.concat([file, Buffer.alloc(op.truncate.size)]).subarray(0, op.truncate.size)
      if ('write' in op && op.write) {
        const end = op.write.offset + op.write.data.length
        if (end > file.length) file = Buffer.concat([file, Buffer.alloc(end - file.length)])
        Buffer.from(op.write.data).copy(file, op.write.offset)
      }
    }
  }
  return file
}

function content (size: number, seed: number): Buffer {
  const b = Buffer.alloc(size)
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed * 7 + (i >> 9)) & 0xff
  return b
}

t.test('a whole-file answer is one transaction: truncate, content, attributes', async t => {
  const { files, journal, rec } = await setup(t)
  const data = content(900_000, 1)
  await fsp.writeFile(path.join(files, 'a.bin'), data)
  await fsp.chmod(path.join(files, 'a.bin'), 0o640)
  await answerRefresh(rec, path.join(files, 'a.bin'), '/a.bin')
  const txs = await outbox(journal)
  t.equal(txs.length, 1, 'one transaction')
  const ops = txs[0]!.ops
  t.equal(kinds(ops)[0], 'truncate', 'it starts the file over')
  t.equal(kinds(ops).at(-1), 'setAttr', 'and ends with its attributes')
  t.ok(kinds(ops).slice(1, -1).every(k => k === 'write'), 'its content in between')
  t.ok(replay(txs, content(2_000_000, 9)).equals(data), 'applied alone, it leaves exactly the file')
  const attrs = ops.at(-1) as { setAttr: { mode: number } }
  t.equal(attrs.setAttr.mode, 0o640, 'with its mode')
})

t.test('an empty file sent whole is still one transaction', async t => {
  const { files, journal, rec } = await setup(t)
  await fsp.writeFile(path.join(files, 'e.txt'), '')
  await journalWholeFile(rec, path.join(files, 'e.txt'), '/e.txt')
  const txs = await outbox(journal)
  t.same(txs.map(tx => kinds(tx.ops)), [['truncate', 'setAttr']])
})

t.test('a conflict copy is one transaction: create, content, attributes', async t => {
  const { files, journal, rec } = await setup(t)
  const data = content(300_000, 2)
  await fsp.writeFile(path.join(files, 'c.txt'), data)
  await journalNewFile(rec, path.join(files, 'c.txt'), '/c.txt')
  const txs = await outbox(journal)
  t.equal(txs.length, 1, 'one transaction')
  t.equal(kinds(txs[0]!.ops)[0], 'create')
  t.equal(kinds(txs[0]!.ops).at(-1), 'setAttr')
  t.ok(replay(txs, Buffer.alloc(0)).equals(data), 'it carries the whole content')
})

t.test('a file larger than one entry goes in frame-sized parts, in order, the first starting it over', async t => {
  const { files, journal, rec } = await setup(t)
  const data = content(7_500_000, 3)
  await fsp.writeFile(path.join(files, 'big.bin'), data)
  await journalWholeFile(rec, path.join(files, 'big.bin'), '/big.bin')
  const pending = await journal.readOutbox(0, 1000)
  t.equal(pending.length, 3, '7.5 MB in entries of at most 3 MiB: three parts')
  t.ok(pending.every(p => p.bytes <= ENTRY_BYTES), 'each fits an entry')
  t.equal(kinds(pending[0]!.tx.ops)[0], 'truncate', 'the first part starts the file over')
  t.equal(kinds(pending.at(-1)!.tx.ops).at(-1), 'setAttr', 'the last sets its attributes')
  t.ok(replay(pending.map(p => p.tx), content(9_000_000, 8)).equals(data), 'together they leave exactly the file')
  t.same(pending.map(p => [p.tx.part, p.tx.moreParts]), [[1, true], [2, true], [3, false]], 'numbered, all but the last saying more follow')
  t.same(pending.map(p => p.tx.txId.deviceSeq - p.deviceSeq), [0, 0, 0], 'on consecutive device seqs')
  t.same(pending.map(p => p.tx.txId.deviceSeq - p.tx.part!), Array(3).fill(pending[0]!.tx.txId.deviceSeq - 1), 'so a receiver can tell the parts of one transaction')
})

t.test('a transaction that fits one entry is not numbered', async t => {
  const { files, journal, rec } = await setup(t)
  await fsp.writeFile(path.join(files, 'small.bin'), content(100_000, 4))
  await journalWholeFile(rec, path.join(files, 'small.bin'), '/small.bin')
  const [only, ...rest] = await outbox(journal)
  t.equal(rest.length, 0, 'one transaction')
  t.equal(only?.part, undefined, 'no part number')
  t.equal(only?.moreParts, undefined, 'nothing follows')
})

t.test('writes captured but not yet closed go ahead of the answer, not inside it', async t => {
  const { files, journal, rec } = await setup(t)
  await fsp.writeFile(path.join(files, 'w.txt'), 'hello world')
  await rec.write('/w.txt', [{ offset: 0, data: Buffer.from('HELLO') }])
  await fsp.writeFile(path.join(files, 'w.txt'), 'HELLO world')
  await answerRefresh(rec, path.join(files, 'w.txt'), '/w.txt')
  const txs = await outbox(journal)
  t.same(txs.map(tx => kinds(tx.ops)), [['write'], ['truncate', 'write', 'setAttr']], 'the open transaction closed first')
  t.equal(replay(txs, Buffer.from('old')).toString(), 'HELLO world')
})

t.test('a file whose journaled writes a power loss took is sent whole at startup, ahead of nothing it must follow', async t => {
  const { files, jdir } = await dirs(t)
  const old = content(100_000, 1)
  const now = Buffer.from(old)
  await withBoot('boot-1', async () => {
    const journal = new LevelJournal(jdir, 'docs', ENTRY_BYTES)
    await journal.open()
    await journal.appendTx('/f', [{ write: { offset: 0, data: Buffer.from('head') } }], { mtimeNs: 1n, size: 100_000 })
    Buffer.from('head').copy(now, 0)
    const open = journal.beginTx('/f')
    const tail = content(50_000, 2)
    await journal.appendOps(open, 0, [{ write: { offset: 50_000, data: tail } }])
    tail.copy(now, 50_000)
    await fsp.writeFile(path.join(files, 'f'), now)
    await journal.close()
  })
  // The reference survived, the bytes it names did not, and neither did any sync.
  await crashLeaving(jdir, [[0, 50_000]])
  await withBoot('boot-2', async () => {
    const journal = new LevelJournal(jdir, 'docs', ENTRY_BYTES)
    await journal.open()
    t.teardown(() => journal.close())
    t.same(journal.resends(), ['/f'], 'the file is to be resent')
    const rec = new TxRecorder(journal, p => path.join(files, p), newCaptureStats(), REC_OPTS)
    const result = await reconcile(journal, rec, files, logger('test'))
    t.equal(result.changed, 1, 'reconciliation sent it, although a change of it is still pending')
    const txs = await outbox(journal)
    t.same(txs.map(tx => kinds(tx.ops)[0]), ['write', 'truncate'], 'the pending change, then the whole file')
    t.ok(replay(txs, old).equals(now), 'the others end with what the disk has')
    t.same(journal.resends(), [], 'and it is not sent again')
  })
})

// A conflict copy is on disk in full before it is journaled: a crash halfway
// through journaling it must not leave the others with its first part (the
// convergence harness saw an empty copy on B and C, and 5657 bytes on A).
t.test('a file sent whole that a crash cut short is sent whole again, not as the part journaled', async t => {
  const { files, jdir } = await dirs(t)
  const data = content(300_000, 3)
  await fsp.writeFile(path.join(files, 'copy.bin'), data)
  {
    const journal = new LevelJournal(jdir, 'docs', ENTRY_BYTES)
    await journal.open()
    const rec = new TxRecorder(journal, p => path.join(files, p), newCaptureStats(), REC_OPTS)
    let firstIn!: () => void
    const firstJournaled = new Promise<void>(resolve => { firstIn = resolve })
    async function * cutShort (): AsyncIterable<Op[]> {
      yield [{ create: { mode: 0o644 } }, { write: { offset: 0, data: data.subarray(0, 100_000) } }]
      firstIn()
      await new Promise(() => {}) // the process dies here
    }
    void rec.recordWhole('/copy.bin', cutShort())
    await firstJournaled
    await journal.close() // what a crash leaves: the head and two ops, never closed
  }
  const journal = new LevelJournal(jdir, 'docs', ENTRY_BYTES)
  await journal.open()
  t.teardown(() => journal.close())
  t.same(await outbox(journal), [], 'the part journaled is not sent')
  t.same(journal.resends(), ['/copy.bin'], 'the file is to be sent whole again')
  const rec = new TxRecorder(journal, p => path.join(files, p), newCaptureStats(), REC_OPTS)
  const result = await reconcile(journal, rec, files, logger('test'))
  t.equal(result.changed, 1, 'reconciliation sent it')
  const txs = await outbox(journal)
  t.equal(txs.length, 1, 'in one transaction')
  t.equal(kinds(txs[0]!.ops)[0], 'create', 'as a new file: the others never had it')
  t.ok(replay(txs, Buffer.alloc(0)).equals(data), 'the others end with the whole file')
  t.same(journal.resends(), [], 'and it is not sent again')
})

/** The file at `a` linked to `b`, both journaled and acked: each name has the file's record. */
async function linkedAndAcked (files: string, journal: LevelJournal, a: string, b: string): Promise<(p: string, ops: Op[]) => Promise<void>> {
  const journalAcked = async (p: string, ops: Op[]): Promise<void> => {
    const st = await fsp.stat(path.join(files, p), { bigint: true })
    await journal.appendTx(p, ops, { mtimeNs: st.mtimeNs, size: Number(st.size) })
    for (const pending of await journal.readOutbox(0, 10)) await journal.ack(pending, pending.deviceSeq)
  }
  await fsp.writeFile(path.join(files, a), 'v1')
  await journalAcked(a, [{ create: { mode: 0o644 } }, { write: { offset: 0, data: Buffer.from('v1') } }])
  await fsp.link(path.join(files, a), path.join(files, b))
  await journalAcked(a, [{ link: { to: b } }])
  return journalAcked
}

// A write through one name of a hard-linked file is journaled under that name
// alone. At the next start the other names' records are behind: sending them
// whole made the others replace their link with a file of its own while this
// mount kept the link (convergence harness with hard links, seed 922608).
t.test('names of one hard-linked file at startup: behind their records after a write through another name, and linked while unmounted', async t => {
  const { files, journal, rec } = await setup(t)
  const real = (p: string): string => path.join(files, p)
  const journalAcked = await linkedAndAcked(files, journal, '/x', '/y')
  await fsp.writeFile(real('x'), 'v2, longer')
  await journalAcked('/x', [{ truncate: { size: 0 } }, { write: { offset: 0, data: Buffer.from('v2, longer') } }])
  await fsp.link(real('x'), real('z'))
  const result = await reconcile(journal, rec, files, logger('test'))
  t.same(result, { created: 1, changed: 0, removed: 0 }, 'only the name made while unmounted is new')
  const txs = await outbox(journal)
  t.same(txs.map(tx => [tx.path, kinds(tx.ops)]), [['/x', ['link']]], 'it goes as a link from a name whose record is current, not as a new file')
  t.equal((txs[0]!.ops[0] as { link: { to: string } }).link.to, '/z')
})

t.test('names of one hard-linked file changed while unmounted: the first goes whole, the others as links to it', async t => {
  const { files, journal, rec } = await setup(t)
  const real = (p: string): string => path.join(files, p)
  await linkedAndAcked(files, journal, '/a', '/b')
  await fsp.writeFile(real('b'), 'changed while unmounted')
  const result = await reconcile(journal, rec, files, logger('test'))
  t.same(result, { created: 0, changed: 2, removed: 0 })
  const txs = await outbox(journal)
  t.same(txs.map(tx => [tx.path, kinds(tx.ops)[0]]), [['/a', 'truncate'], ['/b', 'unlink'], ['/a', 'link']], 'a whole, then b made a link to it again')
  t.equal(replay(txs.slice(0, 1), Buffer.from('v1')).toString(), 'changed while unmounted')
  t.equal((await fsp.stat(real('a'))).ino, (await fsp.stat(real('b'))).ino, 'still one file here')
})

t.test('a hard-linked name sent whole or as new becomes a file of its own here first, as it does on the others', async t => {
  const { files, rec } = await setup(t)
  const real = (p: string): string => path.join(files, p)
  await fsp.writeFile(real('x'), 'shared')
  await fsp.link(real('x'), real('y'))
  await fsp.link(real('x'), real('z'))
  let n = 0
  const tempPath = (): string => path.join(files, '..', `tmp${++n}`)
  await answerRefresh(rec, real('y'), '/y', tempPath)
  await journalNewFile(rec, real('z'), '/z', tempPath)
  const [x, y, z] = await Promise.all(['x', 'y', 'z'].map(p => fsp.stat(real(p))))
  t.not(y!.ino, x!.ino, 'y, sent whole, is a file of its own')
  t.not(z!.ino, x!.ino, 'z, sent as new, too')
  t.equal(x!.nlink, 1, 'x is alone')
  t.same(await Promise.all(['x', 'y', 'z'].map(p => fsp.readFile(real(p), 'utf8'))), ['shared', 'shared', 'shared'], 'all with the content')
})

t.test('names of one hard-linked file at startup, one of them with a write still on its way: the others are not sent', async t => {
  const { files, journal, rec } = await setup(t)
  const real = (p: string): string => path.join(files, p)
  await linkedAndAcked(files, journal, '/x', '/y')
  // A write through x, journaled, and the mount killed before its ack.
  await fsp.writeFile(real('x'), 'v2, longer')
  const st = await fsp.stat(real('x'), { bigint: true })
  await journal.appendTx('/x', [{ truncate: { size: 0 } }, { write: { offset: 0, data: Buffer.from('v2, longer') } }], { mtimeNs: st.mtimeNs, size: Number(st.size) })
  const result = await reconcile(journal, rec, files, logger('test'))
  t.same(result, { created: 0, changed: 0, removed: 0 }, 'nothing changed unseen')
  t.same((await outbox(journal)).map(tx => [tx.path, kinds(tx.ops)[0]]), [['/x', 'truncate']], 'only the write on its way')
})
