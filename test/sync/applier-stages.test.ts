// A file sent whole in parts (a transaction too large for one frame) shows on
// a receiver as the old file until its last part, then as the new one: never
// emptied or half written. A restart between parts goes on where it was, and
// any other change of the file that comes between its parts puts it in place
// as it is first, which is what the parts so far would have made of it.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import t, { type Test } from 'tap'
import type { Op, Transaction } from '../../src/codec/wire.js'
import { Applier, type ApplyResult } from '../../src/sync/applier.js'
import { PartStages } from '../../src/sync/part-stages.js'
import { tempDir } from '../helpers/processes.js'

interface Setup { root: string; stagesDir: string; applier: Applier; replaced: string[]; read: (p: string) => Promise<string | undefined> }

async function setup (t: Test, reuse?: { root: string; stagesDir: string }): Promise<Setup> {
  let root = reuse?.root
  let stagesDir = reuse?.stagesDir
  if (!root || !stagesDir) {
    const dir = tempDir()
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
    root = path.join(dir, 'files')
    stagesDir = path.join(dir, 'staging')
    await fsp.mkdir(root)
  }
  const stages = new PartStages(stagesDir)
  await stages.open()
  const replaced: string[] = []
  let n = 0
  const applier = new Applier(root, {
    deviceId: 'me',
    tempPath: () => path.join(stagesDir!, '..', `tmp-${n++}`),
    onRefresh: async () => {},
    onReplaced: async p => { replaced.push(p) },
    stages,
  })
  const r = root
  return { root, stagesDir, applier, replaced, read: p => fsp.readFile(path.join(r, p), 'utf8').catch(() => undefined) }
}

/** The parts of one transaction of `device`, numbered as LevelJournal.closeTx numbers them. */
function parts (p: string, device: string, firstSeq: number, opsOfParts: Op[][]): Transaction[] {
  return opsOfParts.map((ops, i) => ({
    txId: { deviceId: device, deviceSeq: firstSeq + i }, volume: 'v', fileId: 'f', baseVersion: 0, path: p, ops, mtimeNs: 1_700_000_000_000_000_000n,
    part: i + 1, moreParts: i < opsOfParts.length - 1,
  }))
}

function tx (p: string, device: string, deviceSeq: number, ops: Op[]): Transaction {
  return { txId: { deviceId: device, deviceSeq }, volume: 'v', fileId: 'f', baseVersion: 0, path: p, ops, mtimeNs: 0n }
}

const write = (offset: number, text: string): Op => ({ write: { offset, data: Buffer.from(text) } })

/** A file sent whole: truncated to 0, "AAAA" "BBBB" "CCCC" in three parts, its mode last. */
const WHOLE: Op[][] = [[{ truncate: { size: 0 } }, write(0, 'AAAA')], [write(4, 'BBBB')], [write(8, 'CCCC'), { setAttr: { hasMode: true, mode: 0o600 } }]]

/** A receiver whose /f held "old" when part 1 of WHOLE (from device "other") was applied, as seq 101. */
async function withPart1 (t: Test): Promise<{ s: Setup; p1: Transaction; p2: Transaction; p3: Transaction }> {
  const s = await setup(t)
  await fsp.writeFile(path.join(s.root, 'f'), 'old')
  const [p1, p2, p3] = parts('/f', 'other', 10, WHOLE)
  await s.applier.apply(p1!, undefined, 101)
  return { s, p1: p1!, p2: p2!, p3: p3! }
}

/** A receiver with directory /d, and the two parts of a new file /d/f (from device "other"), part 1 applied as seq 50. */
async function withNewFileStaged (t: Test): Promise<{ s: Setup; last: Transaction }> {
  const s = await setup(t)
  await fsp.mkdir(path.join(s.root, 'd'))
  const [first, last] = parts('/d/f', 'other', 10, [[{ create: { mode: 0o644 } }, write(0, 'one-')], [write(4, 'two')]])
  await s.applier.apply(first!, undefined, 50)
  return { s, last: last! }
}

t.test('a file sent whole in parts shows old until its last part, then new', async t => {
  const s = await setup(t)
  await fsp.writeFile(path.join(s.root, 'f'), 'the old content of f')
  const [p1, p2, p3] = parts('/f', 'other', 10, WHOLE)
  const r1 = await s.applier.apply(p1!, undefined, 101)
  t.equal(r1.staged, true, 'part 1 staged')
  t.equal(await s.read('f'), 'the old content of f', 'after part 1: the old file')
  const r2 = await s.applier.apply(p2!, undefined, 102)
  t.equal(r2.staged, true, 'part 2 staged')
  t.equal(await s.read('f'), 'the old content of f', 'after part 2: still the old file')
  t.ok(s.applier.continuesStage(p3!), 'the last part continues the stage (the conflict check hears the file is whole)')
  const r3 = await s.applier.apply(p3!, undefined, 103)
  t.equal(r3.staged, undefined, 'the last part is applied')
  t.equal(await s.read('f'), 'AAAABBBBCCCC', 'after the last part: the new file')
  t.equal((await fsp.stat(path.join(s.root, 'f'))).mode & 0o777, 0o600, 'with the attributes of the last part')
  t.equal(r3.facts.size, 12, 'the record gets the new file\'s facts')
  t.same(s.replaced, ['/f'], 'descriptors open on the old file are told to follow')
  t.same(await fsp.readdir(s.stagesDir), [], 'nothing left in the staging area')
})

t.test('a new file sent in parts appears only whole', async t => {
  const s = await setup(t)
  const ps = parts('/new.bin', 'other', 1, [[{ create: { mode: 0o640 } }, write(0, 'one-')], [write(4, 'two-')], [write(8, 'three')]])
  await s.applier.apply(ps[0]!, undefined, 1)
  await s.applier.apply(ps[1]!, undefined, 2)
  t.equal(await s.read('new.bin'), undefined, 'not there before its last part')
  await s.applier.apply(ps[2]!, undefined, 3)
  t.equal(await s.read('new.bin'), 'one-two-three', 'whole after it')
  t.equal((await fsp.stat(path.join(s.root, 'new.bin'))).mode & 0o777, 0o640, 'with the Create\'s mode')
})

t.test('a restart between parts goes on with the next part; a part applied again changes nothing', async t => {
  const first = await setup(t)
  await fsp.writeFile(path.join(first.root, 'f'), 'old')
  const [p1, p2, p3] = parts('/f', 'other', 10, WHOLE)
  await first.applier.apply(p1!, undefined, 101)
  await first.applier.apply(p2!, undefined, 102)
  const again = await setup(t, first)
  // The cursor of part 2 may not have been recorded before the crash: it comes again.
  t.equal((await again.applier.apply(p2!, undefined, 102)).staged, true, 'part 2 again: still staged')
  await again.applier.apply(p3!, undefined, 103)
  t.equal(await again.read('f'), 'AAAABBBBCCCC', 'the file is whole')
  const third = await setup(t, first)
  await third.applier.apply(p3!, undefined, 103)
  t.equal(await third.read('f'), 'AAAABBBBCCCC', 'the last part again after it went in place: the same file')
})

t.test('part 1 again starts its stage over: it does not put the first try in place', async t => {
  const { s, p1, p2, p3 } = await withPart1(t)
  const r = await s.applier.apply(p1, undefined, 101)
  t.equal(r.flushed, undefined, 'nothing put in place')
  t.equal(await s.read('f'), 'old', 'the old file still')
  await s.applier.apply(p2, undefined, 102)
  await s.applier.apply(p3, undefined, 103)
  t.equal(await s.read('f'), 'AAAABBBBCCCC', 'whole')
})

t.test('another change between the parts puts the stage in place first, as the parts so far would have left it', async t => {
  const { s, p2, p3 } = await withPart1(t)
  const between: ApplyResult = await s.applier.apply(tx('/f', 'third', 5, [{ setAttr: { hasMode: true, mode: 0o604 } }]), undefined, 102)
  t.same(between.flushed?.map(f => [f.path, f.seq, f.facts.size]), [['/f', 101, 4]], 'the stage went in place, with the seq of its last part')
  t.equal(await s.read('f'), 'AAAA', 'part 1 in place')
  t.equal((await fsp.stat(path.join(s.root, 'f'))).mode & 0o777, 0o604, 'then the change between')
  t.notOk(s.applier.continuesStage(p2), 'the next part has no stage to continue')
  t.equal((await s.applier.apply(p2, undefined, 103)).staged, undefined, 'it applies in place')
  await s.applier.apply(p3, undefined, 104)
  t.equal(await s.read('f'), 'AAAABBBBCCCC', 'the same file as parts applied in place one by one')
})

t.test('a rename of the staged file\'s directory puts it in place and moves it', async t => {
  const { s, last } = await withNewFileStaged(t)
  const r = await s.applier.apply(tx('/d', 'third', 1, [{ rename: { to: '/e' } }]), undefined, 51)
  t.same(r.flushed?.map(f => f.path), ['/d/f'], 'put in place before the rename')
  t.equal(await s.read('e/f'), 'one-', 'and moved with its directory')
  // Its author's journal moved the pending part with the rename too.
  await s.applier.apply({ ...last, path: '/e/f' }, undefined, 52)
  t.equal(await s.read('e/f'), 'one-two', 'the last part lands at the new name')
})

t.test('parts that do not start the file over apply in place', async t => {
  const s = await setup(t)
  await fsp.writeFile(path.join(s.root, 'f'), 'xxxxxxxx')
  const ps = parts('/f', 'other', 10, [[write(0, 'ab')], [write(4, 'cd')]])
  t.equal((await s.applier.apply(ps[0]!, undefined, 1)).staged, undefined, 'a delta of the old bytes is not staged')
  t.equal(await s.read('f'), 'abxxxxxx', 'applied at once')
  await s.applier.apply(ps[1]!, undefined, 2)
  t.equal(await s.read('f'), 'abxxcdxx', 'and so is the next part')
})

t.test('parts of another device do not continue a stage', async t => {
  const { s } = await withPart1(t)
  const stranger = parts('/f', 'stranger', 11, [[write(9, 'zz')], [write(0, 'Q')]])[1]!
  t.notOk(s.applier.continuesStage(stranger), 'not a continuation')
  const r = await s.applier.apply(stranger, undefined, 2)
  t.same(r.flushed?.map(f => f.path), ['/f'], 'the stage went in place first')
  t.equal(await s.read('f'), 'QAAA', 'and the stranger\'s part applied on it')
})

t.test('a staged file whose directory went away is dropped, not left behind', async t => {
  const { s, last } = await withNewFileStaged(t)
  await fsp.rmdir(path.join(s.root, 'd'))
  await s.applier.apply(last, undefined, 51).then(() => t.fail('applied'), err => t.equal(err.code, 'APPLY', 'the last part fails plainly'))
  t.same(await fsp.readdir(s.stagesDir), [], 'the stage is gone')
})

t.test('a stage keeps the attributes of the file a truncation would have kept', async t => {
  const s = await setup(t)
  const real = path.join(s.root, 'f')
  await fsp.writeFile(real, 'old', { mode: 0o640 })
  await fsp.chmod(real, 0o640)
  const [p1, p2] = parts('/f', 'other', 10, [[{ truncate: { size: 0 } }, write(0, 'new')], [write(3, '!')]])
  await s.applier.apply(p1!, undefined, 1)
  await s.applier.apply(p2!, undefined, 2)
  t.equal(await s.read('f'), 'new!', 'new content')
  t.equal((await fsp.stat(real)).mode & 0o777, 0o640, 'the old mode kept')
})
