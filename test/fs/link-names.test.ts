// LinkNames on a real directory: the other names of a hard-linked file, kept
// right as names are made, moved and removed, and none for a single name.
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { LinkNames } from '../../src/fs/link-names.js'

t.test('names of a linked file follow links, renames, unlinks and a detach', async t => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'deltafs-link-names-'))
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  const real = (p: string): string => path.join(dir, p)
  const names = new LinkNames(real)
  let epoch = 0
  const others = async (p: string): Promise<string[]> => (await names.othersOf(p, epoch)).sort()

  await fsp.mkdir(real('/d/e'), { recursive: true })
  await fsp.writeFile(real('/a.txt'), 'a')
  await fsp.writeFile(real('/single.txt'), 's')
  t.same(await others('/a.txt'), [], 'one name: no others')

  await fsp.link(real('/a.txt'), real('/d/e/b.txt'))
  names.forget() // a local link, as CaptureVfs reports it
  t.same(await others('/a.txt'), ['/d/e/b.txt'], 'a link made here is found')
  t.same(await others('/d/e/b.txt'), ['/a.txt'], 'from either name')

  // Made by a remote apply: a new epoch, not forget.
  await fsp.link(real('/a.txt'), real('/d/c.txt'))
  epoch++
  t.same(await others('/a.txt'), ['/d/c.txt', '/d/e/b.txt'], 'a third name, linked by a remote apply, is found')

  // A rename keeps the link count: the cached name fails its check.
  await fsp.rename(real('/d/e'), real('/d/f'))
  t.same(await others('/a.txt'), ['/d/c.txt', '/d/f/b.txt'], 'a directory renamed above a name: found under its new path')

  await fsp.unlink(real('/d/c.txt'))
  t.same(await others('/a.txt'), ['/d/f/b.txt'], 'an unlinked name is gone')

  await fsp.copyFile(real('/d/f/b.txt'), real('/tmp-copy'))
  await fsp.rename(real('/tmp-copy'), real('/d/f/b.txt'))
  epoch++
  t.same(await others('/a.txt'), [], 'a name given its own file (detached) is no longer one of them')
  t.same(await others('/d/f/b.txt'), [], 'nor are the others its')

  // Outside the tree (a record kept by link) counts in nlink but is no name.
  await fsp.link(real('/a.txt'), path.join(os.tmpdir(), path.basename(dir) + '-kept'))
  t.teardown(() => fsp.rm(path.join(os.tmpdir(), path.basename(dir) + '-kept'), { force: true }))
  t.same(await others('/a.txt'), [], 'a link outside the volume is not a name')
  t.same(await others('/single.txt'), [], 'a file never linked: none')
})
