// A conformance suite for VolumeLog backends (DESIGN §10): every backend, the
// embedded LevelDB one and NATS JetStream, must pass it unchanged.
//
//   volumeLogConformance(t, async t => {
//     const store = <a fresh, empty backing store, removed at t.teardown>
//     return () => new MyVolumeLog(store)   // a new, unopened log over that same store
//   })
//
// The suite opens and closes every log it makes.
import type { Test } from 'tap'
import type { AppendResult, LogEntry, VolumeLog } from '../../src/storage-node/volume-log.js'

/** Makes a fresh, empty store and returns a maker of (unopened) logs over it. */
export type VolumeLogStore = (t: Test) => Promise<() => VolumeLog>

function frame (text: string): Uint8Array {
  return Buffer.from(text)
}

function text (e: LogEntry | undefined): string | undefined {
  return e === undefined ? undefined : Buffer.from(e.frame).toString()
}

/** Opens a log over the store; closed at teardown. */
async function opened (t: Test, make: () => VolumeLog): Promise<VolumeLog> {
  const log = make()
  await log.open()
  t.teardown(() => log.close())
  return log
}

function range (from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i)
}

export function volumeLogConformance (t: Test, store: VolumeLogStore): void {
  t.test('an empty volume', async t => {
    const log = await opened(t, await store(t))
    t.equal(await log.head('docs'), 0, 'head of an unknown volume is 0')
    t.same(await log.read('docs', 0, 100), [], 'read of an unknown volume is empty')
  })

  t.test('seqs start at 1 and have no gaps', async t => {
    const log = await opened(t, await store(t))
    const results: AppendResult[] = []
    for (let i = 1; i <= 5; i++) results.push(await log.append({ volume: 'docs', deviceId: 'devA', deviceSeq: i, frame: frame(`A${i}`) }))
    t.same(results, range(1, 5).map(seq => ({ seq, duplicate: false })), 'seqs 1..5, none duplicate')
    t.equal(await log.head('docs'), 5, 'head is 5')
    const entries = await log.read('docs', 0, 100)
    t.same(entries.map(e => [e.seq, e.deviceId, text(e)]), range(1, 5).map(i => [i, 'devA', `A${i}`]), 'read gives seq, device and frame bytes of each')
  })

  t.test('a retried transaction id keeps its first seq', async t => {
    const log = await opened(t, await store(t))
    t.same(await log.append({ volume: 'docs', deviceId: 'devA', deviceSeq: 1, frame: frame('original') }), { seq: 1, duplicate: false }, 'first append: seq 1')
    t.same(await log.append({ volume: 'docs', deviceId: 'devB', deviceSeq: 1, frame: frame('other device') }), { seq: 2, duplicate: false }, 'same device seq from another device is not a duplicate')
    t.same(await log.append({ volume: 'docs', deviceId: 'devA', deviceSeq: 1, frame: frame('retry') }), { seq: 1, duplicate: true }, 'the retry: seq 1, duplicate')
    t.same(await log.append({ volume: 'docs', deviceId: 'devA', deviceSeq: 2, frame: frame('next') }), { seq: 3, duplicate: false }, 'the next transaction gets seq 3: the duplicate used no seq')
    t.equal(await log.head('docs'), 3, 'head is 3')
    t.same((await log.read('docs', 0, 10)).map(text), ['original', 'other device', 'next'], 'the log keeps the first frame, stored once')
  })

  t.test('duplicates inside one group-commit batch', async t => {
    const log = await opened(t, await store(t))
    const ids: Array<[string, number]> = [['devA', 1], ['devA', 2], ['devA', 1], ['devB', 1], ['devA', 2], ['devA', 1], ['devB', 1]]
    // Not awaited one by one: they arrive together.
    const results = await Promise.all(ids.map(([deviceId, deviceSeq], i) => log.append({ volume: 'docs', deviceId, deviceSeq, frame: frame(`${deviceId}:${deviceSeq}#${i}`) })))
    const byId = new Map<string, AppendResult[]>()
    ids.forEach(([d, s], i) => byId.set(`${d}:${s}`, [...(byId.get(`${d}:${s}`) ?? []), results[i]!]))
    for (const [id, rs] of byId) {
      t.equal(rs.filter(r => !r.duplicate).length, 1, `${id}: exactly one append is not a duplicate`)
      t.equal(new Set(rs.map(r => r.seq)).size, 1, `${id}: every append of it got the same seq`)
    }
    t.same(results.filter(r => !r.duplicate).map(r => r.seq).sort((a, b) => a - b), [1, 2, 3], 'three distinct transactions: seqs 1, 2, 3')
    t.equal(await log.head('docs'), 3, 'head is 3')
    const entries = await log.read('docs', 0, 10)
    t.equal(entries.length, 3, 'three entries stored')
    t.same(entries.map(e => text(e)?.split('#')[0]).sort(), ['devA:1', 'devA:2', 'devB:1'], 'one entry per transaction id')
    for (const e of entries) {
      const id = text(e)!.split('#')[0]!
      t.equal(byId.get(id)?.[0]?.seq, e.seq, `${id} is stored at the seq its appends got`)
    }
  })

  t.test('volumes are independent', async t => {
    const log = await opened(t, await store(t))
    const appends: Array<Promise<AppendResult>> = []
    for (let i = 1; i <= 20; i++) {
      appends.push(log.append({ volume: i % 2 ? 'odd' : 'even', deviceId: 'devA', deviceSeq: i, frame: frame(`${i}`) }))
    }
    appends.push(log.append({ volume: 'odd.copy', deviceId: 'devA', deviceSeq: 1, frame: frame('same tx id, other volume') }))
    const results = await Promise.all(appends)
    t.same(results.slice(0, 20).filter((_, i) => i % 2 === 0).map(r => r.seq), range(1, 10), 'volume "odd": seqs 1..10')
    t.same(results.slice(0, 20).filter((_, i) => i % 2 === 1).map(r => r.seq), range(1, 10), 'volume "even": seqs 1..10')
    t.same(results[20], { seq: 1, duplicate: false }, 'a transaction id is unique per volume only: devA:1 is new in "odd.copy"')
    t.same([await log.head('odd'), await log.head('even'), await log.head('odd.copy')], [10, 10, 1], 'heads')
    t.same((await log.read('odd', 0, 100)).map(text), range(1, 10).map(i => `${2 * i - 1}`), '"odd" holds only its frames')
    t.same((await log.read('even', 0, 100)).map(text), range(1, 10).map(i => `${2 * i}`), '"even" holds only its frames')
    t.same((await log.read('odd.copy', 0, 100)).map(text), ['same tx id, other volume'], '"odd.copy" holds only its frame')
  })

  t.test('read(after, limit)', async t => {
    const log = await opened(t, await store(t))
    for (let i = 1; i <= 10; i++) await log.append({ volume: 'docs', deviceId: 'devA', deviceSeq: i, frame: frame(`f${i}`) })
    const seqs = async (after: number, limit: number): Promise<number[]> => (await log.read('docs', after, limit)).map(e => e.seq)
    t.same(await seqs(0, 3), [1, 2, 3], 'after 0, limit 3')
    t.same(await seqs(3, 3), [4, 5, 6], 'after 3, limit 3')
    t.same(await seqs(8, 100), [9, 10], 'after 8, limit 100: the rest')
    t.same(await seqs(10, 5), [], 'after the head: nothing')
    t.same(await seqs(50, 5), [], 'far after the head: nothing')
    t.same(await seqs(0, 0), [], 'limit 0: nothing')
    t.same(await seqs(0, 10), range(1, 10), 'exactly all')
    t.same((await log.read('docs', 6, 1)).map(text), ['f7'], 'the frame of seq 7')
  })

  t.test('the log survives close and reopen', async t => {
    const make = await store(t)
    const first = make()
    await first.open()
    await first.open()
    for (let i = 1; i <= 3; i++) await first.append({ volume: 'docs', deviceId: 'devA', deviceSeq: i, frame: frame(`f${i}`) })
    await first.close()
    await first.close()
    t.pass('open() and close() are idempotent')
    await t.rejects(first.append({ volume: 'docs', deviceId: 'devA', deviceSeq: 4, frame: frame('late') }), { code: 'CLOSED' }, 'append after close is refused with CLOSED')

    const second = await opened(t, make)
    t.equal(await second.head('docs'), 3, 'head is 3 after reopen')
    t.same(await second.append({ volume: 'docs', deviceId: 'devA', deviceSeq: 2, frame: frame('retry after restart') }), { seq: 2, duplicate: true }, 'de-duplication survives reopen')
    t.same(await second.append({ volume: 'docs', deviceId: 'devA', deviceSeq: 4, frame: frame('f4') }), { seq: 4, duplicate: false }, 'the next append continues at 4')
    t.same((await second.read('docs', 0, 10)).map(text), ['f1', 'f2', 'f3', 'f4'], 'all frames are there')
  })

  t.test('close() waits for appends in flight', async t => {
    const make = await store(t)
    const log = make()
    await log.open()
    const pending = range(1, 100).map(i => log.append({ volume: 'docs', deviceId: 'devA', deviceSeq: i, frame: frame(`f${i}`) }))
    const closed = log.close()
    const results = await Promise.all(pending)
    await closed
    t.same(results.map(r => r.seq).sort((a, b) => a - b), range(1, 100), 'every append in flight resolved with its seq')
    const again = await opened(t, make)
    t.equal(await again.head('docs'), 100, 'and all 100 are on disk')
  })

  t.test('2000 concurrent appends', async t => {
    const log = await opened(t, await store(t))
    const n = 2000
    const results = await Promise.all(range(1, n).map(i =>
      log.append({ volume: 'docs', deviceId: `dev${i % 7}`, deviceSeq: i, frame: frame(`tx${i}`) })))
    t.equal(results.filter(r => r.duplicate).length, 0, 'none is a duplicate')
    t.same(results.map(r => r.seq).sort((a, b) => a - b), range(1, n), 'distinct seqs 1..2000')
    t.equal(await log.head('docs'), n, 'head is 2000')
    const entries = await log.read('docs', 0, n + 10)
    t.equal(entries.length, n, 'read gives 2000 entries')
    const wrong = entries.filter(e => {
      const i = Number(text(e)!.slice(2))
      return results[i - 1]?.seq !== e.seq || e.deviceId !== `dev${i % 7}`
    })
    t.equal(wrong.length, 0, 'each frame is stored at the seq its append resolved with, with its device')
  })

  t.test('the key check value', async t => {
    const make = await store(t)
    const log = await opened(t, make)
    const a = Buffer.alloc(32, 0xaa)
    const b = Buffer.alloc(32, 0xbb)
    const empty = new Uint8Array(0)
    const hex = (v: Uint8Array): string => Buffer.from(v).toString('hex')
    t.equal(hex(await log.keyCheck('docs', empty)), '', 'an empty proposal on a new volume stores nothing')
    t.equal(hex(await log.keyCheck('docs', a)), hex(a), 'the first non-empty proposal on an empty volume is stored')
    t.equal(hex(await log.keyCheck('docs', b)), hex(a), 'a later, different proposal gets the stored value')
    t.equal(hex(await log.keyCheck('docs', empty)), hex(a), 'an empty proposal gets the stored value')

    await log.append({ volume: 'plain', deviceId: 'devA', deviceSeq: 1, frame: frame('unencrypted') })
    t.equal(hex(await log.keyCheck('plain', a)), '', 'a volume that already has transactions and no key check gets none')
    t.equal(hex(await log.keyCheck('plain', b)), '', '... and keeps having none')

    const [x, y] = await Promise.all([log.keyCheck('race', a), log.keyCheck('race', b)])
    t.equal(hex(x!), hex(y!), 'two first proposals at once: both get the same value')
    t.ok(hex(x!) === hex(a) || hex(x!) === hex(b), 'and it is one of the two')
    await log.close()

    const again = await opened(t, make)
    t.equal(hex(await again.keyCheck('docs', b)), hex(a), 'the stored value survives reopen')
    t.equal(hex(await again.keyCheck('race', empty)), hex(x!), 'so does the race winner')
  })

  t.test('conflict check per file: first writer wins (DESIGN §6)', async t => {
    const make = await store(t)
    const log = await opened(t, make)
    const put = (deviceId: string, deviceSeq: number, fileId: string | undefined, baseVersion: number) =>
      log.append({ volume: 'docs', deviceId, deviceSeq, frame: frame(`${deviceId}${deviceSeq}`), ...(fileId ? { fileId, baseVersion } : {}) })
    t.same(await put('devA', 1, 'f1', 0), { seq: 1, duplicate: false }, 'A creates f1')
    t.same(await put('devA', 2, 'f1', 0), { seq: 2, duplicate: false }, 'A again on its stale base: its own change is no conflict')
    t.same(await put('devB', 1, 'f1', 2), { seq: 3, duplicate: false }, 'B on base 2 (has seen A) is accepted')
    t.same(await put('devA', 3, 'f1', 2), { seq: 3, duplicate: false, conflict: { deviceId: 'devB' } }, 'A on base 2 after B changed it: conflict naming B and its seq')
    t.same(await put('devA', 4, 'f2', 0), { seq: 4, duplicate: false }, 'another file is independent')
    t.same(await put('devC', 1, undefined, 0), { seq: 5, duplicate: false }, 'a transaction without a file id is never checked')
    t.same(await put('devB', 2, 'f1', 3), { seq: 6, duplicate: false }, 'B on its own latest change')
    t.same(await put('devB', 3, 'f1', 1), { seq: 2, duplicate: false, conflict: { deviceId: 'devA' } }, 'B on base 1 missed A\'s change at 2')
    t.same(await put('devA', 5, 'f1', 6), { seq: 7, duplicate: false }, 'A on base 6 has seen everything')
    t.same(await put('devB', 4, 'f1', 6), { seq: 7, duplicate: false, conflict: { deviceId: 'devA' } }, 'B on base 6 missed A at 7')
    t.same(await put('devA', 3, 'f1', 2), { seq: 6, duplicate: false, conflict: { deviceId: 'devB' } }, 'a refused id was not stored: its retry is checked again')
    t.same(await put('devA', 2, 'f1', 0), { seq: 2, duplicate: true }, 'a stored id stays a duplicate, whatever its base')
    t.equal(await log.head('docs'), 7, 'refused transactions use no seq')
    await log.close()
    const again = await opened(t, make)
    t.same(await again.append({ volume: 'docs', deviceId: 'devC', deviceSeq: 2, frame: frame('c2'), fileId: 'f1', baseVersion: 6 }), { seq: 7, duplicate: false, conflict: { deviceId: 'devA' } }, 'file states survive reopen')
  })

  // A mount bases a file it has no record of (mounts keep no tombstones) on
  // its applied cursor: the seq of everything it has applied.
  t.test('a file made where the last change deleted one is new once the maker has applied the deletion, a conflict before', async t => {
    const make = await store(t)
    const log = await opened(t, make)
    const put = (deviceId: string, deviceSeq: number, fileId: string, baseVersion: number, more: { removes?: boolean; sourceFileId?: string; sourceBaseVersion?: number } = {}) =>
      log.append({ volume: 'docs', deviceId, deviceSeq, frame: frame(`${deviceId}${deviceSeq}`), fileId, baseVersion, ...more })
    t.same(await put('devA', 1, 'f1', 0), { seq: 1, duplicate: false }, 'A creates f1')
    t.same(await put('devA', 2, 'f1', 1, { removes: true }), { seq: 2, duplicate: false }, 'A deletes it')
    t.same(await put('devC', 1, 'f1', 1), { seq: 2, duplicate: false, conflict: { deviceId: 'devA' } }, 'C, which had f1 at 1, edits it: the deletion came first')
    t.same(await put('devD', 1, 'f1', 1), { seq: 2, duplicate: false, conflict: { deviceId: 'devA' } }, 'D makes a new f1 having applied up to 1: the deletion is news to it, a conflict')
    t.same(await put('devE', 1, 'f1', 0), { seq: 2, duplicate: false, conflict: { deviceId: 'devA' } }, 'so does E, which has applied nothing yet: it will apply A\'s file and take it as the first')
    t.same(await put('devB', 1, 'f1', 2), { seq: 3, duplicate: false }, 'B makes a new f1 having applied the deletion: accepted')
    t.same(await put('devB', 2, 'f1', 2), { seq: 4, duplicate: false }, 'B\'s next change, sent before the first was acked (still no record), is no conflict with the deletion')
    t.same(await put('devA', 3, 'f1', 2), { seq: 4, duplicate: false, conflict: { deviceId: 'devB' } }, 'A makes its own f1 from nothing after B did: conflict naming B')
    t.same(await put('devA', 4, 'f1', 4), { seq: 5, duplicate: false }, 'A, having seen B\'s file, changes it')

    // Without the flag (an unlink no node was told about) a deletion is an ordinary change.
    t.same(await put('devA', 5, 'f2', 5), { seq: 6, duplicate: false }, 'A creates f2')
    t.same(await put('devA', 6, 'f2', 6), { seq: 7, duplicate: false }, 'A changes it without the deletion flag')
    t.same(await put('devB', 3, 'f2', 6), { seq: 7, duplicate: false, conflict: { deviceId: 'devA' } }, 'then a file from nothing from B, which had not applied that change, is a conflict, as before')

    // A rename leaves no file at its source.
    t.same(await put('devA', 7, 'f3', 7), { seq: 8, duplicate: false }, 'A creates f3')
    t.same(await put('devA', 8, 'f4', 8, { sourceFileId: 'f3', sourceBaseVersion: 8 }), { seq: 9, duplicate: false }, 'A renames f3 to f4')
    t.same(await put('devB', 4, 'f3', 8), { seq: 9, duplicate: false, conflict: { deviceId: 'devA' } }, 'B makes a new file at f3\'s old name before it applied the rename: conflict')
    t.same(await put('devB', 5, 'f3', 9), { seq: 10, duplicate: false }, 'and having applied it: accepted')
    await log.close()
    const again = await opened(t, make)
    t.same(await again.append({ volume: 'docs', deviceId: 'devC', deviceSeq: 2, frame: frame('c2'), fileId: 'f3', baseVersion: 9 }), { seq: 10, duplicate: false, conflict: { deviceId: 'devB' } }, 'after a reopen, a file from nothing where B made one is a conflict')
  })

  t.test('after a conflict, the rest of its stream is deferred, not stored out of order', async t => {
    const log = await opened(t, await store(t))
    const put = (deviceId: string, deviceSeq: number, fileId: string | undefined, baseVersion: number, order?: { refused: boolean }) =>
      log.append({ volume: 'docs', deviceId, deviceSeq, frame: frame(`${deviceId}${deviceSeq}`), ...(fileId ? { fileId, baseVersion } : {}), ...(order ? { order } : {}) })
    t.same(await put('devA', 1, 'f1', 0), { seq: 1, duplicate: false })
    const stream = { refused: false }
    // Sent together, as a pipelined Push stream does: they share a group commit.
    const results = await Promise.all([
      put('devB', 1, 'f1', 0, stream),
      put('devB', 2, undefined, 0, stream),
      put('devB', 3, 'f2', 0, stream),
    ])
    t.same(results[0], { seq: 1, duplicate: false, conflict: { deviceId: 'devA' } }, 'B missed A: conflict')
    t.same(results[1], { seq: 0, duplicate: false, deferred: true }, 'an unchecked change after it is deferred')
    t.same(results[2], { seq: 0, duplicate: false, deferred: true }, 'so is a change of another file')
    t.same(await put('devB', 4, 'f3', 0, stream), { seq: 0, duplicate: false, deferred: true }, 'and anything later in that stream')
    t.equal(await log.head('docs'), 1, 'nothing of it was stored')
    const next = { refused: false }
    t.same(await put('devB', 2, undefined, 0, next), { seq: 2, duplicate: false }, 'a new stream (after the conflict is settled) stores them')
    t.same(await put('devB', 3, 'f2', 0, next), { seq: 3, duplicate: false })
  })
}
