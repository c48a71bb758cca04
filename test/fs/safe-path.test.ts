// Paths from the wire: syntax checks and symlink escapes (DESIGN §7).
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { checkVolumePath, resolveInside } from '../../src/fs/safe-path.js'
import { DeltafsError } from '../../src/util/errors.js'

function badPath (t: Test, p: unknown, why: string): void {
  let err: unknown
  try { checkVolumePath(p) } catch (e) { err = e }
  t.ok(err instanceof DeltafsError && err.code === 'BAD_PATH', `${why}: BAD_PATH`, { found: err ?? 'accepted' })
}

t.test('checkVolumePath rejects', async t => {
  badPath(t, '/..', '".." at the root')
  badPath(t, '/a/../b', '".." in the middle')
  badPath(t, '/a/..', '".." at the end')
  badPath(t, '/./a', '"." segment')
  badPath(t, '/a/.', '"." at the end')
  badPath(t, '/a//b', 'an empty segment')
  badPath(t, '/a/', 'a trailing slash')
  badPath(t, '//a', 'a double leading slash')
  badPath(t, 'a/b', 'a relative path')
  badPath(t, '../etc/passwd', 'a relative escape')
  badPath(t, '', 'the empty string')
  badPath(t, '/a\0b', 'a NUL byte')
  badPath(t, '/a/b\0', 'a trailing NUL byte')
  badPath(t, '/', 'the root')
  badPath(t, '/' + 'x'.repeat(256), 'a name of 256 bytes')
  badPath(t, '/ok/' + 'é'.repeat(128), 'a name of 128 characters but 256 UTF-8 bytes')
  badPath(t, '/' + 'a/'.repeat(2100) + 'b', 'a path longer than 4096')
  badPath(t, undefined, 'undefined')
  badPath(t, 42, 'a number')
})

t.test('checkVolumePath accepts', async t => {
  for (const p of ['/a', '/a/b/c.txt', '/.hidden', '/..dots', '/a/...', '/name with spaces', '/ünïcödé/文件', '/' + 'x'.repeat(255), '/' + 'é'.repeat(127)]) {
    t.equal(checkVolumePath(p), p, `${p.length > 40 ? p.slice(0, 20) + '…' : p} is returned unchanged`)
  }
})

async function tree (t: Test): Promise<{ base: string; root: string; outside: string }> {
  const base = await fsp.realpath(await fsp.mkdtemp(path.join(os.tmpdir(), 'deltafs-safe-path-')))
  t.teardown(() => fsp.rm(base, { recursive: true, force: true }))
  const root = path.join(base, 'root')
  const outside = path.join(base, 'outside')
  await fsp.mkdir(path.join(root, 'a', 'b'), { recursive: true })
  await fsp.mkdir(outside)
  // A sibling whose name starts with the root's name: a prefix check must not accept it.
  await fsp.mkdir(path.join(base, 'root-evil'))
  return { base, root, outside }
}

async function refusedInside (root: string, p: string): Promise<unknown> {
  try {
    await resolveInside(root, p)
    return 'accepted'
  } catch (err) {
    return err instanceof DeltafsError ? err.code : err
  }
}

t.test('resolveInside refuses a parent that leaves the root through a symlink', async t => {
  const { base, root, outside } = await tree(t)
  await fsp.symlink(outside, path.join(root, 'out'))
  await fsp.symlink('../../outside', path.join(root, 'a', 'rel-out'))
  await fsp.symlink(path.join(base, 'root-evil'), path.join(root, 'evil'))
  await fsp.symlink('/', path.join(root, 'slash'))
  t.equal(await refusedInside(root, '/out/file'), 'BAD_PATH', 'parent is an absolute symlink to a dir outside')
  t.equal(await refusedInside(root, '/a/rel-out/file'), 'BAD_PATH', 'parent is a relative symlink to a dir outside')
  t.equal(await refusedInside(root, '/evil/file'), 'BAD_PATH', 'parent is a sibling dir whose name starts with the root name')
  t.equal(await refusedInside(root, '/slash/etc'), 'BAD_PATH', 'parent is a symlink to /')
  t.equal(await refusedInside(root, '/a/../../outside/x'), 'BAD_PATH', '".." is refused before any lookup')
})

t.test('resolveInside accepts paths that stay inside', async t => {
  const { root } = await tree(t)
  await fsp.symlink('a/b', path.join(root, 'inlink'))
  await fsp.symlink('/etc/passwd', path.join(root, 'a', 'leaf-link'))
  t.equal(await resolveInside(root, '/top.txt'), path.join(root, 'top.txt'), 'a file at the root')
  t.equal(await resolveInside(root, '/a/b/c.txt'), path.join(root, 'a', 'b', 'c.txt'), 'a nested path')
  t.equal(await resolveInside(root, '/a/b'), path.join(root, 'a', 'b'), 'an existing directory')
  t.equal(await resolveInside(root, '/inlink/file'), path.join(root, 'inlink', 'file'), 'a parent symlink that stays inside')
  t.equal(await resolveInside(root, '/a/leaf-link'), path.join(root, 'a', 'leaf-link'), 'the last component is not followed, even when it is a symlink out')
  t.equal(await resolveInside(root, '/missing/dir/file'), path.join(root, 'missing', 'dir', 'file'), 'a missing parent is left for the op to report')
})

t.test('resolveInside works when the root itself is reached through a symlink', async t => {
  const { base, root } = await tree(t)
  const alias = path.join(base, 'alias')
  await fsp.symlink(root, alias)
  t.equal(await resolveInside(alias, '/a/b/c'), path.join(alias, 'a', 'b', 'c'), 'a nested path under a symlinked root')
  t.equal(await resolveInside(alias, '/x'), path.join(alias, 'x'), 'a file at a symlinked root')
})
