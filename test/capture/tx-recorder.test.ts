// TxRecorder's ordering promises: what one op journals is in the outbox
// before any later op that depends on it, whichever process makes them.
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import type { Op, Transaction } from '../../src/codec/wire.js'
import { LevelJournal } from '../../src/journal/level-journal.js'
import { TxRecorder } from '../../src/capture/tx-recorder.js'
import { newCaptureStats } from '../../src/capture/capture-stats.js'

async function setup (t: Test): Promise<{ files: string; journal: LevelJournal; rec: TxRecorder }> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'deltafs-recorder-'))
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  const files = path.join(dir, 'files')
  await fsp.mkdir(path.join(files, 'd'), { recursive: true })
  const journal = new LevelJournal(path.join(dir, 'journal'), 'docs', 3 << 20)
  await journal.open()
  t.teardown(() => journal.close())
  const rec = new TxRecorder(journal, p => path.join(files, p), newCaptureStats(), { quietMs: 200, maxTxBytes: 1 << 20, freshGraceMs: 100, maxHeldFreshBytes: 128 << 20 })
  return { files, journal, rec }
}

const kinds = (ops: Op[]): string[] => ops.map(op => Object.keys(op).find(k => (op as Record<string, unknown>)[k] != null) ?? '?')

async function outbox (journal: LevelJournal): Promise<Array<[string, string[]]>> {
  return (await journal.readOutbox(0, 1000)).map(({ tx }: { tx: Transaction }) => [tx.path, kinds(tx.ops)])
}

// rsync's generator sets a directory's times while its receiver has just
// created a temp file in it: the held Create must be in the outbox, whole,
// before the directory's change, or the others get the temp file's later
// changes for a file they never heard of.
t.test('a held new file ended by an op on its parent while its Create is being journaled', async t => {
  const { files, journal, rec } = await setup(t)
  await fsp.writeFile(path.join(files, 'd/.tmp'), '')
  const started = rec.startRewrite('/d/.tmp', { create: { mode: 0o600 } }, { fresh: true })
  // No await in between: the parent's op arrives while the Create's append is in flight.
  await rec.closeAll(['/d'])
  await rec.record('/d', { setAttr: { hasMode: true, mode: 0o755 } })
  await started
  t.same(await outbox(journal), [['/d/.tmp', ['create']], ['/d', ['setAttr']]], 'the Create, then the directory\'s change')
})

t.test('writes made while a held Create is being journaled stay in its transaction, after it', async t => {
  const { files, journal, rec } = await setup(t)
  await fsp.writeFile(path.join(files, 'd/new'), 'abc')
  const started = rec.startRewrite('/d/new', { create: { mode: 0o644 } }, { fresh: true })
  const wrote = rec.write('/d/new', [{ offset: 0, data: Buffer.from('abc') }])
  await Promise.all([started, wrote])
  await rec.closeEverything()
  t.same(await outbox(journal), [['/d/new', ['create', 'write']]], 'one transaction: Create, then the write')
})

/** Counts the journal's appendOps calls from now on. */
function countAppends (journal: LevelJournal): { n: number } {
  const count = { n: 0 }
  const orig = journal.appendOps.bind(journal)
  journal.appendOps = async (...args) => { count.n++; return orig(...args) }
  return count
}

const chunk = (i: number, n = 100): Buffer => Buffer.alloc(n, 97 + (i % 26))
const writeOf = (op: Op): { offset: number; data: Uint8Array } | undefined => 'write' in op ? op.write : undefined

/** A held new file at /d/new (empty on disk) with `writes` writes of 100 B captured; appends counted from before its Create. */
async function heldNewFile (t: Test, writes: number, size = 0): Promise<{ journal: LevelJournal; rec: TxRecorder; appends: { n: number } }> {
  const { files, journal, rec } = await setup(t)
  await fsp.writeFile(path.join(files, 'd/new'), 'x'.repeat(size))
  const appends = countAppends(journal)
  await rec.startRewrite('/d/new', { create: { mode: 0o644 } }, { fresh: true })
  for (let i = 0; i < writes; i++) await rec.write('/d/new', [{ offset: i * 100, data: chunk(i) }])
  return { journal, rec, appends }
}

/** The journal as the next start finds it (a crash: nothing is closed first). */
async function reopened (t: Test, journal: LevelJournal): Promise<LevelJournal> {
  await journal.close()
  const again = new LevelJournal(journal.dir, 'docs', 3 << 20)
  await again.open()
  t.teardown(() => again.close())
  return again
}

t.test('a new file\'s writes and attribute changes reach the journal in one append, at its end', async t => {
  const { journal, rec, appends } = await heldNewFile(t, 10)
  t.ok(await rec.amendHeld('/d/new', { setAttr: { hasMode: true, mode: 0o600 } }), 'the attribute change joined the held rewrite')
  t.equal(appends.n, 1, 'before its end, only the Create was appended')
  await rec.closeEverything()
  t.equal(appends.n, 2, 'its end appended the rest at once')
  const [pending] = await journal.readOutbox(0, 10)
  t.same(kinds(pending!.tx.ops), ['create', ...Array(10).fill('write'), 'setAttr'], 'one transaction, in the order they were made')
  t.same(Buffer.concat(pending!.tx.ops.slice(1, 11).map(op => Buffer.from(writeOf(op)!.data))), Buffer.concat(Array.from({ length: 10 }, (_, i) => chunk(i))), 'with every byte written')
})

t.test('a large new file is appended a megabyte at a time, not held in memory whole', async t => {
  const { files, journal, rec } = await setup(t)
  await fsp.writeFile(path.join(files, 'd/big'), '')
  const appends = countAppends(journal)
  await rec.startRewrite('/d/big', { create: { mode: 0o644 } }, { fresh: true })
  const n = 40
  for (let i = 0; i < n; i++) await rec.write('/d/big', [{ offset: i * 65536, data: chunk(i, 65536) }])
  // 2.5 MiB of writes: appended twice on the way, and the rest at the end.
  t.equal(appends.n, 3, 'the Create, then one append per megabyte written')
  await rec.closeEverything()
  const ops = (await journal.readOutbox(0, 10)).flatMap(p => p.tx.ops)
  t.equal(ops.filter(writeOf).length, n, 'every write is journaled')
  t.same(ops.filter(writeOf).map(op => writeOf(op)!.offset), Array.from({ length: n }, (_, i) => i * 65536), 'in order')
})

t.test('a crash before a new file\'s end leaves it to be sent whole from the disk, not cut short', async t => {
  const { journal } = await heldNewFile(t, 3, 300)
  // What a crash leaves: the journal as it is, the rewrite never ended.
  const again = await reopened(t, journal)
  t.same(await again.readOutbox(0, 10), [], 'no transaction of it is sent as the journal had it')
  t.same(again.resends(), ['/d/new'], 'the file is to be sent whole')
})

t.test('a new file whose ops cannot be journaled is never closed without them', async t => {
  const { journal, rec } = await heldNewFile(t, 2, 200)
  const orig = journal.appendOps.bind(journal)
  journal.appendOps = async () => { throw new Error('disk full') }
  await t.rejects(rec.finish('/d/new'), /disk full/, 'its end fails')
  journal.appendOps = orig
  t.same(await journal.readOutbox(0, 10), [], 'nothing of it went to the outbox: a Create with only some of its writes would leave the others a wrong file')
  t.same((await reopened(t, journal)).resends(), ['/d/new'], 'the next start sends it whole')
})

t.test('an fsync of a new file appends what it held in memory, and the file stays held', async t => {
  const { journal, rec, appends } = await heldNewFile(t, 3)
  await rec.flush('/d/new')
  t.equal(appends.n, 2, 'the Create, then the three writes in one append')
  t.ok(rec.isHeld('/d/new'), 'still held: its end sends it')
  t.same(await journal.readOutbox(0, 10), [], 'nothing in the outbox yet')
  await rec.write('/d/new', [{ offset: 300, data: chunk(3) }])
  await rec.closeEverything()
  const [pending] = await journal.readOutbox(0, 10)
  t.same(kinds(pending!.tx.ops), ['create', 'write', 'write', 'write', 'write'], 'one transaction with every write')
})
