// PayloadStore on a temp dir: append and read back, rotation to a new
// segment, deletion once unreferenced (never the active segment), orphan
// segments deleted at open, and sync forcing every segment written since the
// last sync (counted through a mocked fdatasync).
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { PayloadStore, segmentName } from '../../src/journal/payload-store.js'

async function tempDir (t: Test): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'deltafs-payload-'))
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  return dir
}

function bytes (seed: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = (seed * 31 + i * 7 + (i >> 8)) & 0xff
  return b
}

async function segments (dir: string): Promise<string[]> {
  return (await fsp.readdir(dir)).filter(n => n.endsWith('.seg')).sort()
}

async function openStore (t: Test, dir: string, segmentBytes: number, referenced = new Map<number, number>()): Promise<PayloadStore> {
  const s = new PayloadStore(dir, segmentBytes)
  await s.open(referenced)
  t.teardown(() => s.close())
  return s
}

t.test('appends read back, concurrent appends do not overlap, and a full segment rotates', async t => {
  const dir = path.join(await tempDir(t), 'payload')
  const s = await openStore(t, dir, 100_000)
  t.same(await segments(dir), [], 'no segment before the first append')
  const data = [bytes(1, 40_000), bytes(2, 40_000), bytes(3, 40_000), bytes(4, 150_000)]
  const refs = await Promise.all(data.map(d => s.append(d)))
  t.same(refs.map(r => [r.segment, r.offset, r.length]), [[1, 0, 40_000], [1, 40_000, 40_000], [2, 0, 40_000], [3, 0, 150_000]],
    'in call order; a segment rotates when the next append would pass its size; a larger append gets a segment of its own')
  for (const [i, ref] of refs.entries()) t.same(await s.read(ref), data[i], `append ${i} reads back`)
  t.same(await segments(dir), [1, 2, 3].map(segmentName))
  t.same([...s.references()], [[1, 2], [2, 1], [3, 1]], 'one reference per append')
  const next = await s.append(bytes(5, 10))
  t.equal(next.segment, 4, 'the segment holding an append larger than a segment is not appended to')
})

t.test('a segment goes once unreferenced and not active; reads of a gone segment fail', async t => {
  const dir = path.join(await tempDir(t), 'payload')
  const s = await openStore(t, dir, 50_000)
  const a = await s.append(bytes(1, 30_000))
  const b = await s.append(bytes(2, 30_000))
  t.equal(a.segment, 1)
  t.equal(b.segment, 2)
  t.equal(s.release([b.segment]), 0, 'the active segment is never deletable')
  t.same(s.deletable(), [])
  t.same(await s.read(a), bytes(1, 30_000), 'read through a handle cached by the store')
  t.equal(s.release([a.segment]), 1, 'segment 1 lost its last reference')
  t.same(s.deletable(), [1])
  await s.remove(s.deletable())
  t.same(await segments(dir), [segmentName(2)], 'segment 1 deleted, the active one kept')
  await t.rejects(s.read(a), { code: 'JOURNAL' }, 'its data is gone')
  const c = await s.append(bytes(3, 30_000))
  t.equal(c.segment, 3, 'rotated away from segment 2')
  t.same(s.deletable(), [2], 'segment 2, unreferenced, became deletable when it stopped being active')
  await s.remove([2])
  t.same(await segments(dir), [segmentName(3)])
  await s.append(bytes(4, 10))
  await s.remove([3])
  t.same(await segments(dir), [segmentName(3)], 'remove never deletes the active segment')
})

t.test('at open, segments nothing refers to are deleted and appends go to a new segment', async t => {
  const dir = path.join(await tempDir(t), 'payload')
  const first = new PayloadStore(dir, 50_000)
  await first.open(new Map())
  const refs = [await first.append(bytes(1, 30_000)), await first.append(bytes(2, 30_000)), await first.append(bytes(3, 30_000))]
  await first.close()
  fs.writeFileSync(path.join(dir, 'not-a-segment'), 'kept')
  const s = await openStore(t, dir, 50_000, new Map([[2, 1]]))
  t.same((await fsp.readdir(dir)).sort(), ['0000000000000002.seg', 'not-a-segment'], 'orphans 1 and 3 deleted, other files left alone')
  t.same(await s.read(refs[1]!), bytes(2, 30_000), 'the referenced one reads back')
  const next = await s.append(bytes(4, 10))
  t.equal(next.segment, 4, 'a new segment after the highest one seen')
  t.same([...s.references()], [[2, 1], [4, 1]])
  t.equal(s.release([2]), 1, 'a segment referenced at open goes once released')
})

t.test('sync forces each segment written since the last sync, the active one and rotated ones', async t => {
  const synced: number[] = []
  const fdatasync = (fd: number, cb: (err: NodeJS.ErrnoException | null) => void): void => { synced.push(fs.fstatSync(fd).ino); fs.fdatasync(fd, cb) }
  // Writes can be held, to end one after a sync has begun and ended.
  let gate: Promise<void> = Promise.resolve()
  const write = (...args: unknown[]): void => { void gate.then(() => (fs.write as (...a: unknown[]) => void)(...args)) }
  const { PayloadStore: Mocked } = await t.mockImport<typeof import('../../src/journal/payload-store.js')>('../../src/journal/payload-store.js', {
    'node:fs': { ...fs, default: { ...fs, fdatasync, write }, fdatasync, write },
  })
  const dir = path.join(await tempDir(t), 'payload')
  const s = new Mocked(dir, 50_000)
  await s.open(new Map())
  t.teardown(() => s.close())
  const ino = (id: number): number => fs.statSync(path.join(dir, segmentName(id))).ino
  await s.sync()
  t.same(synced, [], 'nothing written, nothing forced')
  await s.append(bytes(1, 30_000))
  await s.append(bytes(2, 30_000))
  await s.sync()
  t.same(synced.sort(), [ino(1), ino(2)].sort(), 'the rotated segment (closed, reopened to be forced) and the active one')
  synced.length = 0
  await s.sync()
  t.same(synced, [], 'a second sync has nothing to force')
  let open!: () => void
  gate = new Promise(resolve => { open = resolve })
  const late = s.append(bytes(3, 100))
  await s.sync()
  t.same(synced, [], 'a write still in flight has not returned: not forced')
  open()
  await late
  await s.sync()
  t.same(synced, [ino(2)], 'a write that ended after a sync is forced by the next one')
})

t.test('the watermark stops at the first write in flight, and for good at one that failed', async t => {
  const dir = await tempDir(t)
  const s = await openStore(t, dir, 1 << 20)
  const a = await s.append(bytes(1, 1000))
  t.same(s.watermark(), { segment: a.segment, offset: 1000, length: 0 }, 'nothing in flight: the end of the active segment')
  const b = s.begin(bytes(2, 1000))
  const c = s.begin(bytes(3, 1000))
  t.equal(s.watermark().offset, 1000, 'two in flight: at the first of them')
  await Promise.all([b.written, c.written])
  t.equal((await s.sync()).offset, 3000, 'both landed: a sync vouches for all of them')
  // A write that fails (here: its descriptor closed under it).
  const active = (s as unknown as { active: { fd: number } }).active
  fs.closeSync(active.fd)
  const d = s.begin(bytes(4, 1000))
  await t.rejects(d.written, { code: 'JOURNAL' }, 'the write fails')
  active.fd = fs.openSync(path.join(dir, segmentName(a.segment)), 'r+')
  await s.append(bytes(5, 1000))
  t.equal(s.watermark().offset, 3000, 'later writes landed, but the watermark stays where bytes are missing')
})
