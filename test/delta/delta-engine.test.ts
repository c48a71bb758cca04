// The delta engine on real files: every delta must rebuild the new file
// exactly, and stay within the size an edit of that kind deserves.
import crypto from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs'
import t, { type Test } from 'tap'
import { OpCodec, type Piece } from '../../src/codec/wire.js'
import { applyDelta, computeDelta, type Delta, type DeltaOptions, deltaWireSize, type RebuildInput } from '../../src/delta/delta-engine.js'
import { DeltafsError } from '../../src/util/errors.js'
import { lineAt, moveHeadToEnd, prng, sameContent, spliceFile, writeRandomFile, writeTextFile } from './fixtures.js'

const KiB = 1024
const MiB = 1024 * KiB

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deltafs-delta-'))
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
const file = (name: string): string => path.join(dir, name)

// One 16 MiB text file is the base of most cases.
const base = file('base.txt')
const BASE_SIZE = 16 * MiB
await writeTextFile(base, BASE_SIZE, 42)

async function sha256Of (p: string): Promise<Buffer> {
  const hash = crypto.createHash('sha256')
  for await (const chunk of fs.createReadStream(p)) hash.update(chunk as Buffer)
  return hash.digest()
}

/** Computes the delta of next against from, checks its form and that it rebuilds next exactly. */
async function roundTrip (t: Test, from: string, next: string, opts?: DeltaOptions): Promise<Delta> {
  const delta = await computeDelta(from, next, opts)
  const size = (await fsp.stat(next)).size
  t.equal(delta.resultSize, size, 'result size is the new size')
  t.same(delta.resultSha256, await sha256Of(next), 'result SHA-256 is that of the new file')
  t.same(delta.baseSha256, await sha256Of(from), 'base SHA-256 is that of the base')
  checkNormalized(t, delta.pieces, opts?.maxInsertSize ?? MiB)
  t.equal(delta.stats.copiedBytes + delta.stats.literalBytes, size, 'copies and inserts add up to the result')
  const out = file('out.tmp')
  await applyDelta(from, delta, out)
  t.ok(await sameContent(out, next), 'applyDelta rebuilds the new file')
  await fsp.rm(out)
  return delta
}

function checkNormalized (t: Test, pieces: Piece[], maxInsert: number): void {
  let problems = 0
  pieces.forEach((piece, i) => {
    const prev = pieces[i - 1]
    if ('insert' in piece) {
      if (piece.insert.data.length > maxInsert) problems++
      if (prev && 'insert' in prev && prev.insert.data.length + piece.insert.data.length <= maxInsert) problems++
    } else {
      if (piece.copy.length === 0) problems++
      if (prev && 'copy' in prev && prev.copy.offset + prev.copy.length === piece.copy.offset) problems++
    }
  })
  t.equal(problems, 0, 'contiguous copies merged, inserts merged and capped, nothing empty')
}

const inserts = (d: Delta): number => d.pieces.filter(p => 'insert' in p).length

t.test('identical file: one copy', async t => {
  const next = file('identical.txt')
  await fsp.copyFile(base, next)
  const d = await roundTrip(t, base, next)
  t.same(d.pieces, [{ copy: { offset: 0, length: BASE_SIZE } }])
  t.equal(d.stats.literalBytes, 0)
  t.ok(d.stats.bytesReadBase <= BASE_SIZE + 2 * MiB && d.stats.bytesReadNew <= BASE_SIZE + 2 * MiB, 'each file read about once')
})

t.test('one line changed in the middle', async t => {
  const next = file('line.txt')
  const line = await lineAt(base, BASE_SIZE / 2)
  const edited = Buffer.from('this line was edited, and is now a little longer than it was before\n')
  await spliceFile(base, next, line.offset, line.length, edited)
  const d = await roundTrip(t, base, next)
  t.ok(d.stats.literalBytes <= edited.length, `only the edited bytes are literal (${d.stats.literalBytes})`)
  t.ok(deltaWireSize(d.pieces) < 64 * KiB, `under 64 KiB on the wire (${deltaWireSize(d.pieces)} B)`)
  t.equal(d.pieces.length, 3, 'copy, insert, copy')
})

t.test('4 KiB inserted at the start', async t => {
  const next = file('prepend.txt')
  await spliceFile(base, next, 0, 0, crypto.randomBytes(4 * KiB))
  const d = await roundTrip(t, base, next)
  t.ok(d.stats.literalBytes <= 4 * KiB, `at most the inserted bytes are literal (${d.stats.literalBytes})`)
  t.ok(d.stats.copiedBytes >= BASE_SIZE, 'the whole base is copied')
})

t.test('1 MiB appended', async t => {
  const next = file('append.txt')
  await spliceFile(base, next, BASE_SIZE, 0, crypto.randomBytes(MiB))
  const d = await roundTrip(t, base, next)
  t.equal(d.stats.literalBytes, MiB, 'the appended bytes are the literal')
  t.same(d.pieces[0], { copy: { offset: 0, length: BASE_SIZE } }, 'the base is one copy')
})

t.test('truncated to a third', async t => {
  const next = file('truncated.txt')
  await spliceFile(base, next, 5 * MiB + 17, Infinity, Buffer.alloc(0))
  const d = await roundTrip(t, base, next)
  t.same(d.pieces, [{ copy: { offset: 0, length: 5 * MiB + 17 } }])
})

t.test('empty base: all inserts, capped', async t => {
  const empty = file('empty')
  await fsp.writeFile(empty, '')
  const next = file('small.txt')
  await writeTextFile(next, 3.5 * MiB, 5)
  const d = await roundTrip(t, empty, next)
  t.equal(d.stats.literalBytes, 3.5 * MiB)
  t.same(d.pieces.map(p => 'insert' in p ? p.insert.data.length : -1), [MiB, MiB, MiB, MiB / 2], 'inserts of at most 1 MiB')
})

t.test('empty new file: no pieces', async t => {
  const empty = file('empty-new')
  await fsp.writeFile(empty, '')
  const d = await roundTrip(t, base, empty)
  t.same(d.pieces, [])
  t.equal(d.resultSize, 0)
})

t.test('both files empty', async t => {
  const empty = file('empty-both')
  await fsp.writeFile(empty, '')
  const d = await roundTrip(t, empty, empty)
  t.same(d.pieces, [])
})

t.test('unrelated random content: all literal', async t => {
  const next = file('random.bin')
  await writeRandomFile(next, 4 * MiB + 3, 9)
  const d = await roundTrip(t, base, next)
  t.equal(d.stats.literalBytes, 4 * MiB + 3)
  t.equal(inserts(d), 5)
})

t.test('lines changed at 10% and 90%: the chunked search keeps the middle as copies', async t => {
  const half = file('edit-10.txt')
  const next = file('edit-10-90.txt')
  const edited = Buffer.from('edited\n')
  const first = await lineAt(base, BASE_SIZE * 0.1)
  await spliceFile(base, half, first.offset, first.length, edited)
  const second = await lineAt(half, BASE_SIZE * 0.9)
  await spliceFile(half, next, second.offset, second.length, edited)
  const d = await roundTrip(t, base, next)
  t.ok(d.stats.literalBytes <= 2 * edited.length, `only the edited bytes are literal (${d.stats.literalBytes})`)
  t.ok(inserts(d) <= 2, 'one insert per edit')
})

t.test('a block moved from the start to the end is found in the base', async t => {
  const cut = file('moved-cut.txt')
  const next = file('moved.txt')
  await moveHeadToEnd(base, cut, next, BASE_SIZE, MiB)
  const d = await roundTrip(t, base, next)
  t.equal(d.stats.literalBytes, 0, 'nothing literal')
  t.equal(d.pieces.length, 2, 'two copies')
})

t.test('repeated content stays one long copy', async t => {
  // 4 MiB of zeros: every chunk is the same, so the matcher must keep to the
  // chunk after the last one it used rather than the first of its kind.
  const zeros = file('zeros')
  await fsp.writeFile(zeros, Buffer.alloc(4 * MiB))
  const wrapped = file('zeros-wrapped')
  await fsp.writeFile(wrapped, Buffer.concat([Buffer.from('header\n'), Buffer.alloc(4 * MiB), Buffer.from('trailer')]))
  const d = await roundTrip(t, zeros, wrapped)
  t.ok(d.pieces.length <= 5, `few pieces (${d.pieces.length})`)
  t.ok(d.pieces.some(p => 'copy' in p && p.copy.length >= 3 * MiB), 'one copy of most of the base')
  t.ok(d.stats.literalBytes <= 14 + 128 * KiB, `little literal (${d.stats.literalBytes})`)
})

t.test('small chunks and small inserts', async t => {
  const next = file('small-chunks.txt')
  await writeTextFile(next, 2 * MiB, 77)
  await roundTrip(t, base, next, { avgChunkSize: 1024, maxInsertSize: 100 * KiB })
})

t.test('random edits of a small file round-trip', async t => {
  const random = prng(2024)
  const pick = (n: number): number => Math.floor(random() * n)
  const from = file('fuzz-base.txt')
  await writeTextFile(from, 512 * KiB, 11)
  const original = await fsp.readFile(from)
  const next = file('fuzz-next.txt')
  let bad = 0
  for (let round = 0; round < 40; round++) {
    let data = original
    for (let edits = 1 + pick(4); edits > 0; edits--) {
      const at = pick(data.length + 1)
      const len = pick(random() < 0.5 ? 64 : 64 * KiB)
      const kind = pick(4)
      if (kind === 0) data = Buffer.concat([data.subarray(0, at), crypto.randomBytes(len), data.subarray(at)])
      else if (kind === 1) data = Buffer.concat([data.subarray(0, at), data.subarray(at + len)])
      else if (kind === 2) data = Buffer.concat([data.subarray(0, at), crypto.randomBytes(len), data.subarray(at + len)])
      else data = Buffer.concat([data.subarray(len), data.subarray(0, len)])
    }
    await fsp.writeFile(next, data)
    const opts: DeltaOptions = { avgChunkSize: [256, 1024, 8192][pick(3)], directMax: [0, 64 * KiB][pick(2)], maxInsertSize: [1000, MiB][pick(2)] }
    const d = await computeDelta(from, next, opts)
    const out = file('fuzz.out')
    await applyDelta(from, d, out, { sync: false })
    if (!(await fsp.readFile(out)).equals(data)) bad++
  }
  t.equal(bad, 0, 'all 40 rebuilt exactly')
})

t.test('applyDelta refuses a base that is not the one the delta was made against', async t => {
  const from = file('corruptible.txt')
  await fsp.copyFile(base, from)
  const next = file('corrupt-next.txt')
  await spliceFile(base, next, 1000, 10, Buffer.from('changed'))
  const d = await computeDelta(from, next)
  // Same size, one byte flipped where no copy reads it... and where one does.
  for (const at of [1003, 7 * MiB]) {
    await fsp.copyFile(base, from)
    const fh = await fsp.open(from, 'r+')
    const b = Buffer.alloc(1)
    await fh.read(b, 0, 1, at)
    b[0] = b[0]! ^ 0xff
    await fh.write(b, 0, 1, at)
    await fh.close()
    const out = file('corrupt.out')
    await t.rejects(applyDelta(from, d, out), { name: 'DeltafsError', code: 'APPLY', message: /is not the version the delta was made against/ }, `byte ${at} flipped`)
    t.notOk(fs.existsSync(out), 'the temp file is removed')
  }
})

t.test('applyDelta refuses a result that does not match its digest', async t => {
  const next = file('digest-next.txt')
  await spliceFile(base, next, 10, 0, Buffer.from('x'))
  const d = await computeDelta(base, next)
  const wrong = { ...d, resultSha256: crypto.randomBytes(32) }
  await t.rejects(applyDelta(base, wrong, file('digest.out')), { code: 'APPLY', message: /rebuilt file does not match the delta/ })
})

t.test('applyDelta refuses hostile deltas before writing anything', async t => {
  const baseSha256 = await sha256Of(base)
  const ok: RebuildInput = { pieces: [{ copy: { offset: 0, length: 10 } }], resultSize: 10, resultSha256: Buffer.alloc(32), baseSha256 }
  const cases: Array<[string, Partial<RebuildInput> & Record<string, unknown>, RegExp]> = [
    ['copy past the end of the base', { pieces: [{ copy: { offset: BASE_SIZE - 5, length: 10 } }] }, /copies \[\d+, \d+\) but the base has/],
    ['copy starting past the end', { pieces: [{ copy: { offset: BASE_SIZE + 1, length: 1 } }], resultSize: 1 }, /but the base has/],
    ['negative offset', { pieces: [{ copy: { offset: -1, length: 10 } }] }, /copies 10 bytes at -1/],
    ['fractional length', { pieces: [{ copy: { offset: 0, length: 9.5 } }] }, /copies 9.5 bytes/],
    ['huge length', { pieces: [{ copy: { offset: 0, length: 2 ** 60 } }] }, /copies/],
    ['empty copy', { pieces: [{ copy: { offset: 0, length: 0 } }, { copy: { offset: 0, length: 10 } }] }, /copies 0 bytes/],
    ['empty insert', { pieces: [{ insert: { data: Buffer.alloc(0) } }, { copy: { offset: 0, length: 10 } }] }, /inserts no bytes/],
    ['insert that is not bytes', { pieces: [{ insert: { data: 'abc' } } as unknown as Piece] }, /inserts no bytes/],
    ['piece with neither', { pieces: [{} as Piece] }, /exactly one of copy and insert/],
    ['piece with both', { pieces: [{ copy: { offset: 0, length: 10 }, insert: { data: Buffer.alloc(1) } } as unknown as Piece] }, /exactly one of/],
    ['pieces short of the size', { resultSize: 11 }, /add up to 10 bytes, result size is 11/],
    ['pieces past the size', { resultSize: 9 }, /more than the result size 9/],
    ['negative size', { resultSize: -1 }, /result size -1/],
    ['size too large', { resultSize: 2 ** 53 }, /result size/],
    ['short result digest', { resultSha256: Buffer.alloc(31) }, /result SHA-256 must be 32 bytes/],
    ['missing base digest', { baseSha256: undefined }, /base SHA-256 must be 32 bytes/],
    ['pieces not a list', { pieces: null as unknown as Piece[] }, /pieces must be a list/],
  ]
  const out = file('hostile.out')
  for (const [name, change, message] of cases) {
    const rebuild = { ...ok, ...change } as RebuildInput
    await t.rejects(applyDelta(base, rebuild, out), { name: 'DeltafsError', code: 'APPLY', message }, name)
    t.notOk(fs.existsSync(out), `${name}: nothing written`)
  }
  await t.rejects(applyDelta(base, ok, out, { maxResultSize: 9 }), { code: 'APPLY', message: /result size 10/ }, 'maxResultSize is enforced')
  // The untouched template is valid but for its made-up result digest.
  await t.rejects(applyDelta(base, ok, out), { code: 'APPLY', message: /rebuilt file does not match/ })
})

t.test('applyDelta will not write over its own base', async t => {
  const from = file('self.txt')
  await fsp.copyFile(base, from)
  const alias = file('self-link.txt')
  await fsp.link(from, alias)
  const next = file('self-next.txt')
  await spliceFile(base, next, 5, 0, Buffer.from('x'))
  const d = await computeDelta(from, next)
  for (const out of [from, alias]) {
    await t.rejects(applyDelta(from, d, out), { code: 'BAD_ARGUMENT', message: /is the base file itself/ })
  }
  t.ok(await sameContent(from, base), 'the base is intact')
})

t.test('a delta survives the wire: encode, decode, apply', async t => {
  const next = file('wire.txt')
  const line = await lineAt(base, 3 * MiB)
  await spliceFile(base, next, line.offset, line.length, Buffer.from('over the wire\n'))
  const d = await computeDelta(base, next)
  const op = OpCodec.decode(OpCodec.encode({ rebuild: { baseVersion: 3, ...d } }))
  t.ok('rebuild' in op && op.rebuild, 'decodes as a Rebuild')
  const rebuild = (op as { rebuild: RebuildInput }).rebuild
  const out = file('wire.out')
  await applyDelta(base, rebuild, out)
  t.ok(await sameContent(out, next), 'the decoded delta rebuilds the new file')
})

t.test('deltaWireSize is the encoded size of the pieces', async t => {
  const protoPath = fileURLToPath(new URL('../../../proto/deltafs/v1/deltafs.proto', import.meta.url))
  const Rebuild = protobuf.loadSync(protoPath).lookupType('deltafs.v1.Rebuild')
  const samples: Piece[][] = [
    [],
    [{ copy: { offset: 0, length: 1 } }],
    [{ copy: { offset: 300, length: 2 ** 40 } }, { insert: { data: Buffer.alloc(200) } }, { copy: { offset: 5, length: 127 } }],
    [{ insert: { data: Buffer.alloc(MiB) } }, { copy: { offset: 2 ** 33, length: 128 } }],
  ]
  for (const pieces of samples) {
    const encoded = Rebuild.encode(Rebuild.fromObject({ pieces })).finish()
    t.equal(deltaWireSize(pieces), encoded.length, `${pieces.length} pieces`)
  }
})

t.test('computeDelta reports missing files and bad options', async t => {
  await t.rejects(computeDelta(file('missing'), base), { code: 'ENOENT' })
  await t.rejects(computeDelta(base, file('missing')), { code: 'ENOENT' })
  await t.rejects(computeDelta(base, base, { avgChunkSize: 1000 }), DeltafsError)
  await t.rejects(computeDelta(base, base, { maxInsertSize: 0 }), { code: 'BAD_ARGUMENT' })
})
