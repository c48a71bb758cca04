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
