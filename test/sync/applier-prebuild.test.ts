// A Rebuild built ahead of its apply (outside the exclusive section): used
// when the file is still the one it was built from, never when the file
// changed since (a local write, a chmod), and removed when not used.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import t, { type Test } from 'tap'
import type { Op, Transaction } from '../../src/codec/wire.js'
import { Applier } from '../../src/sync/applier.js'
import { rebuildAgainst } from '../../src/capture/rewrite-delta.js'
import { tempDir } from '../helpers/processes.js'

let seq = 0
function tx (p: string, ops: Op[]): Transaction {
  return { txId: { deviceId: 'dev', deviceSeq: ++seq }, volume: 'v', fileId: '', baseVersion: 0, path: p, ops, mtimeNs: 0n }
}

function content (size: number, seed: number): Buffer {
  const b = Buffer.alloc(size)
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed * 7 + (i >> 9)) & 0xff
  return b
}

/** A root with /f holding v1, an applier whose temp files go to tmp/, and the Rebuild op from v1 to v2. */
async function setup (t: Test): Promise<{ root: string; tmpDir: string; applier: Applier; v1: Buffer; v2: Buffer; op: Op }> {
  const dir = tempDir()
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const root = path.join(dir, 'files')
  const tmpDir = path.join(dir, 'tmp')
  await fsp.mkdir(root)
  await fsp.mkdir(tmpDir)
  let n = 0
  const applier = new Applier(root, { deviceId: 'me', tempPath: () => path.join(tmpDir, `${++n}.tmp`), onRefresh: async () => undefined })
  const v1 = content(300_000, 1)
  const v2 = Buffer.concat([v1.subarray(0, 100_000), Buffer.from('an edit in the middle'), v1.subarray(100_000)])
  await fsp.writeFile(path.join(root, 'f'), v1)
  await fsp.writeFile(path.join(dir, 'v2'), v2)
  const { op } = await rebuildAgainst(path.join(root, 'f'), path.join(dir, 'v2'), 1)
  return { root, tmpDir, applier, v1, v2, op }
}

t.test('a Rebuild built ahead is what the apply puts in place, when the file did not change', async t => {
  const { root, tmpDir, applier, v2, op } = await setup(t)
  const change = tx('/f', [op])
  const prebuilt = await applier.prebuild(change)
  t.ok(prebuilt, 'built ahead')
  t.ok((await fsp.readFile(prebuilt!.tmp)).equals(v2), 'the new content, in a temp file')
  t.ok((await fsp.readFile(path.join(root, 'f'))).length === 300_000, 'the file itself untouched until the apply')
  const tmpInode = (await fsp.stat(prebuilt!.tmp)).ino
  await applier.apply(change, prebuilt)
  t.equal((await fsp.stat(path.join(root, 'f'))).ino, tmpInode, 'the apply renamed the prebuilt file into place instead of building again')
  t.ok((await fsp.readFile(path.join(root, 'f'))).equals(v2), 'with the new content')
  await applier.discard(prebuilt)
  t.same(await fsp.readdir(tmpDir), [], 'nothing left behind')
})

t.test('a file changed after the build is never replaced by what was built from its old bytes', async t => {
  const { root, tmpDir, applier, op } = await setup(t)
  const change = tx('/f', [op])
  const prebuilt = await applier.prebuild(change)
  t.ok(prebuilt, 'built ahead')
  // A write through the mount lands between the build and the apply.
  const fh = await fsp.open(path.join(root, 'f'), 'r+')
  await fh.write(Buffer.from('local'), 0, 5, 50)
  await fh.close()
  await t.rejects(applier.apply(change, prebuilt), { code: 'BASE_MISMATCH' }, 'the apply builds again, from the file as it is now, and finds it is not the base')
  t.equal((await fsp.readFile(path.join(root, 'f'))).subarray(50, 55).toString(), 'local', 'the local write is still there')
  await applier.discard(prebuilt)
  t.same(await fsp.readdir(tmpDir), [], 'the unused build removed')
})

t.test('a chmod alone since the build (ctime moved) also makes the apply build again', async t => {
  const { root, applier, v2, op } = await setup(t)
  const change = tx('/f', [op])
  const prebuilt = await applier.prebuild(change)
  await new Promise(resolve => setTimeout(resolve, 20))
  await fsp.chmod(path.join(root, 'f'), 0o600)
  const tmpInode = (await fsp.stat(prebuilt!.tmp)).ino
  await applier.apply(change, prebuilt)
  t.not((await fsp.stat(path.join(root, 'f'))).ino, tmpInode, 'built again')
  t.ok((await fsp.readFile(path.join(root, 'f'))).equals(v2), 'with the same result')
  t.equal((await fsp.stat(path.join(root, 'f'))).mode & 0o777, 0o600, 'and the mode the file had')
  await applier.discard(prebuilt)
})

t.test('nothing is built ahead for a base that does not match, or a transaction without a leading Rebuild', async t => {
  const { root, tmpDir, applier, op } = await setup(t)
  await fsp.writeFile(path.join(root, 'f'), 'not the base')
  t.equal(await applier.prebuild(tx('/f', [op])), undefined, 'a base mismatch is left for the apply to report')
  t.equal(await applier.prebuild(tx('/f', [{ write: { offset: 0, data: Buffer.from('x') } }])), undefined, 'plain writes: nothing to build')
  t.same(await fsp.readdir(tmpDir), [], 'no temp file left')
})
