// The pure parts of conflict handling: which transactions are checked, the
// conflict copy's name, and when a concurrent remote change is no conflict.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import type { Op, Transaction } from '../../src/codec/wire.js'
import { FileIds, conflictCopyName, isConflictChecked, isConflictCopyName, sameResult, subjectOf } from '../../src/sync/conflict-policy.js'

const w = (offset: number, text: string): Op => ({ write: { offset, data: Buffer.from(text) } })
const tx = (ops: Op[], baseVersion = 3): Transaction => ({ txId: { deviceId: 'dB', deviceSeq: 1 }, volume: 'v', fileId: 'x', baseVersion, path: '/f', ops, mtimeNs: 0n })

t.test('which transactions are conflict-checked', async t => {
  t.ok(isConflictChecked([w(0, 'a')], 'file'), 'writes to a file')
  t.ok(isConflictChecked([{ unlink: {} }], undefined), 'an unlink')
  t.ok(isConflictChecked([{ rename: { to: '/g' } }], 'file'), 'a file renamed over a name')
  t.notOk(isConflictChecked([{ rename: { to: '/g' } }], 'dir'), 'not a directory rename')
  t.notOk(isConflictChecked([{ setAttr: { hasMode: true, mode: 0o600 } }], 'file'), 'not a chmod alone')
  t.notOk(isConflictChecked([{ mkdir: { mode: 0o755 } }], 'dir'), 'not a mkdir')
  t.notOk(isConflictChecked([{ refresh: { deviceId: 'd' } }], 'file'), 'not a refresh request')
  t.equal(subjectOf('/a.tmp', [w(0, 'x'), { rename: { to: '/a' } }]), '/a', 'the subject follows renames')
})

t.test('conflict copy names', async t => {
  const at = new Date('2026-11-23T15:04:05.678Z')
  t.equal(conflictCopyName('/docs/report.txt', 'd01', at), '/docs/report (conflict d01 20261123T150405Z).txt')
  t.equal(conflictCopyName('/.bashrc', 'd01', at), '/.bashrc (conflict d01 20261123T150405Z)', 'a dot file has no extension')
  t.equal(conflictCopyName('/a.tar.gz', 'd01', at), '/a.tar (conflict d01 20261123T150405Z).gz')
  const taken = new Set(['/n (conflict d01 20261123T150405Z)'])
  t.equal(conflictCopyName('/n', 'd01', at, p => taken.has(p)), '/n (conflict d01 20261123T150405Z-2)', 'a taken name gets a number')
  const long = conflictCopyName('/' + 'é'.repeat(120) + '.txt', 'd01', at)
  t.ok(Buffer.byteLength(path.posix.basename(long)) <= 255, 'a long name is shortened to 255 bytes')
  t.ok(long.endsWith('(conflict d01 20261123T150405Z).txt'), 'keeping the tag and the extension')
  t.ok(isConflictCopyName('/docs/report (conflict d01 20261123T150405Z).txt'))
  t.notOk(isConflictCopyName('/docs/report (conflict).txt'))
})

t.test('file ids are keyed hashes of paths', async t => {
  const plain = new FileIds('vol')
  t.equal(plain.of('/a'), new FileIds('vol').of('/a'), 'stable')
  t.not(plain.of('/a'), plain.of('/b'), 'per path')
  t.not(plain.of('/a'), new FileIds('other').of('/a'), 'per volume')
  t.not(plain.of('/a'), new FileIds('vol', Buffer.alloc(32, 1)).of('/a'), 'keyed by the volume key when there is one')
  t.match(plain.of('/a'), /^[A-Za-z0-9_-]{22}$/, 'what the node accepts')
})

t.test('sameResult: identical concurrent content is no conflict', async t => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deltafs-same-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'f')
  fs.writeFileSync(file, 'hello world')
  t.ok(await sameResult(tx([{ truncate: { size: 0 } }, w(0, 'hello '), w(6, 'world')]), file, [w(0, 'hello world')]), 'a whole rewrite to the same bytes')
  t.notOk(await sameResult(tx([{ truncate: { size: 0 } }, w(0, 'hello')]), file, []), 'a rewrite to a prefix: sizes differ')
  t.notOk(await sameResult(tx([{ truncate: { size: 0 } }, w(0, 'hello wOrld')]), file, []), 'one byte differs')
  t.ok(await sameResult(tx([{ create: { mode: 0o644 } }, w(0, 'hello world')], 0), file, [{ create: { mode: 0o644 } }, w(0, 'hello world')]), 'both created the same new file')
  t.ok(await sameResult(tx([w(6, 'world')]), file, [w(6, 'wor')]), 'in place: the local change lies inside the same remote change')
  t.notOk(await sameResult(tx([w(6, 'world')]), file, [w(0, 'he')]), 'in place: a local change the remote does not have')
  t.notOk(await sameResult(tx([w(6, 'world')]), file, [{ truncate: { size: 11 } }]), 'in place with a local truncate: not provable')
  const sha = createHash('sha256').update('hello world').digest()
  t.ok(await sameResult(tx([{ rebuild: { baseVersion: 1, pieces: [], resultSize: 11, resultSha256: sha, baseSha256: Buffer.alloc(32) } }]), file, []), 'a Rebuild with the same result hash')
  t.notOk(await sameResult(tx([{ rebuild: { baseVersion: 1, pieces: [], resultSize: 11, resultSha256: Buffer.alloc(32), baseSha256: Buffer.alloc(32) } }]), file, []), 'a Rebuild with another result')
  t.notOk(await sameResult(tx([{ unlink: {} }]), file, [w(0, 'x')]), 'deleted there, still here')
  t.ok(await sameResult(tx([{ unlink: {} }]), path.join(dir, 'gone'), [{ unlink: {} }]), 'deleted on both sides')
  t.notOk(await sameResult(tx([{ unlink: {} }]), path.join(dir, 'gone'), [w(0, 'x'), { rename: { to: '/g' } }]), 'deleted there, edited and renamed away here: the content lives on')
  t.notOk(await sameResult(tx([{ unlink: {} }]), path.join(dir, 'gone'), [{ link: { to: '/g' } }, { unlink: {} }]), 'deleted there, kept under a second name here')
  t.notOk(await sameResult(tx([{ rename: { to: '/f' } }]), file, []), 'a rename cannot be compared')
})
