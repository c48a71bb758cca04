// Issue 3: tar, cp -a, rsync -a and editor-style saves in a mount give the
// same tree as on a local disk, and the other mount ends up identical.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { Cluster } from '../helpers/cluster.js'
import { type MountHandle, repoRoot, tempDir } from '../helpers/processes.js'
import { assertConverges, mustRun } from '../helpers/programs.js'
import { diffTrees, snapshot } from '../helpers/tree.js'

// Times: fuse-native 2.2.6 passed whole milliseconds, handed utimens the
// atime twice, and libfuse 2.9 dropped single-time updates (touch -m, GNU
// tar's futimens with atime UTIME_OMIT) unless flag_utime_omit_ok is set;
// scripts/fix-fuse-native.mjs patches all three at install, so mtimes are
// compared with the source for every program here (to the ns in
// timestamps.test.ts).

/** Stamps past, distinct, whole-second times (atime = mtime) on every non-symlink under root, deepest first. */
function stampTimes (root: string): void {
  const all = fs.readdirSync(root, { recursive: true, encoding: 'utf8' }).sort().reverse()
  all.push('')
  all.forEach((rel, n) => {
    const abs = path.join(root, rel)
    if (fs.lstatSync(abs).isSymbolicLink()) return
    const when = new Date(Date.UTC(2020, 0, 1) + n * 86_401_000)
    fs.utimesSync(abs, when, when)
  })
}

/** A source tree with varied modes, symlinks (one dangling) and empty directories. */
function makeSourceTree (root: string): void {
  const files: Array<[string, string | Buffer, number]> = [
    ['README', 'read me\n', 0o644],
    ['bin/run', '#!/bin/sh\nexit 0\n', 0o755],
    ['bin/private', 'secret\n', 0o700],
    ['etc/conf', 'a=1\n', 0o600],
    ['etc/ro', 'read only\n', 0o444],
    ['etc/group-rw', 'x'.repeat(5000), 0o664],
    ['data/big.bin', Buffer.alloc(3 << 20, 7), 0o640],
    ['data/empty', '', 0o644],
    ['data/deep/er/est/leaf', 'leaf\n', 0o604],
  ]
  for (const [rel, data, mode] of files) {
    fs.mkdirSync(path.join(root, path.dirname(rel)), { recursive: true })
    fs.writeFileSync(path.join(root, rel), data)
    fs.chmodSync(path.join(root, rel), mode)
  }
  fs.mkdirSync(path.join(root, 'empty-dir/nested-empty'), { recursive: true })
  fs.mkdirSync(path.join(root, 'private-dir'), { mode: 0o700 })
  fs.writeFileSync(path.join(root, 'private-dir/inside'), 'in\n')
  fs.linkSync(path.join(root, 'README'), path.join(root, 'bin/README.hardlink'))
  fs.symlinkSync('../README', path.join(root, 'bin/readme-link'))
  fs.symlinkSync('data/deep', path.join(root, 'dir-link'))
  fs.symlinkSync('does/not/exist', path.join(root, 'dangling'))
  fs.chmodSync(path.join(root, 'empty-dir'), 0o750)
  fs.chmodSync(path.join(root, 'etc'), 0o711)
  stampTimes(root)
}
t.test('real programs in a mount', async t => {
  t.setTimeout(5 * 60_000)
  const c = await Cluster.start(t, 2)
  const [A, B] = c.mounts as [MountHandle, MountHandle]
  t.teardown(() => { if (!t.passing()) t.comment(c.logs()) })
  const scratch = tempDir('deltafs-programs-')
  t.teardown(() => fs.rmSync(scratch, { recursive: true, force: true }))
  const a = (p: string): string => path.join(A.mountpoint, p)
  const b = (p: string): string => path.join(B.mountpoint, p)

  t.test('tar x of a real source tree', async t => {
    const pkg = path.join(repoRoot, 'node_modules', '@grpc', 'grpc-js')
    const tarball = path.join(scratch, 'grpc-js.tar')
    await mustRun(t, 'tar c of the source (outside the mount)', 'tar', ['cf', tarball, '-C', path.dirname(pkg), path.basename(pkg)])
    await fsp.mkdir(a('untar'))
    await mustRun(t, 'tar x into A', 'tar', ['xf', tarball, '-C', a('untar')])
    await mustRun(t, 'diff -r source vs A is clean', 'diff', ['-r', '--no-dereference', pkg, a('untar/grpc-js')])
    await assertConverges(t, 'B holds what A holds (modes, file mtimes)', a('untar'), b('untar'), { mtimes: 'files' })
    await mustRun(t, 'diff -r source vs B is clean', 'diff', ['-r', '--no-dereference', pkg, b('untar/grpc-js')])
  })

  const src = path.join(scratch, 'src')
  makeSourceTree(src)
  // Directory times too: cp -a and rsync set them after filling a directory.
  const want = await snapshot(src, { mtimes: 'all' })

  t.test('cp -a', async t => {
    stampTimes(src) // reading the source for `want` moved its atimes
    await mustRun(t, 'cp -a into A', 'cp', ['-a', src, a('cp')])
    t.equal(diffTrees(want, await snapshot(a('cp'), { mtimes: 'all' }), 20), null, 'A holds the source: content, modes, symlinks, empty dirs, mtimes')
    await assertConverges(t, 'B holds the same, mtimes included', want, b('cp'), { mtimes: 'all' })
    for (const [side, at] of [['A', a], ['B', b]] as const) {
      const [x, y] = await Promise.all([fsp.stat(at('cp/README')), fsp.stat(at('cp/bin/README.hardlink'))])
      t.ok(x.ino === y.ino && x.nlink === 2, `${side}: cp -a kept the hard link (one inode, ${x.nlink} links)`)
    }
  })

  t.test('rsync -a', async t => {
    await mustRun(t, 'rsync -a into A', 'rsync', ['-a', `${src}/`, a('rsync')])
    t.equal(diffTrees(await snapshot(src, { mtimes: 'all' }), await snapshot(a('rsync'), { mtimes: 'all' }), 20), null, 'A holds the source: content, modes, symlinks, empty dirs, mtimes')
    await assertConverges(t, 'B holds what A holds, mtimes included', a('rsync'), b('rsync'), { mtimes: 'all' })
    stampTimes(src)
    await mustRun(t, 'rsync -aU (atimes too) into A', 'rsync', ['-aU', `${src}/`, a('rsync-atimes')])
    t.equal(diffTrees(await snapshot(src, { mtimes: 'all' }), await snapshot(a('rsync-atimes'), { mtimes: 'all' }), 20), null, 'with -U, A holds the source mtimes too')
    await assertConverges(t, 'B holds what A holds, mtimes included', a('rsync-atimes'), b('rsync-atimes'), { mtimes: 'all' })
  })

  t.test('editor-style saves', async t => {
    await fsp.mkdir(a('edit'))
    const target = a('edit/notes.txt')
    const check = async (what: string): Promise<void> => {
      await assertConverges(t, `B identical after ${what}`, a('edit'), b('edit'), { mtimes: 'files' }, 30_000)
    }
    const lines = (n: number, tag: string): string => Array.from({ length: n }, (_, i) => `line ${i} ${tag}\n`).join('')
    await fsp.writeFile(target, lines(2000, 'v0'), { mode: 0o640 })
    await check('the first write')
    // Atomic saves: temp file, fsync, chmod like the original, rename over it.
    const sizes = [2000, 2500, 300, 0, 4000]
    for (const [i, n] of sizes.entries()) {
      const tmp = a(`edit/.notes.txt.tmp${i}`)
      const fh = await fsp.open(tmp, 'wx', 0o600)
      await fh.writeFile(lines(n, `save ${i}`))
      await fh.sync()
      await fh.chmod(0o640)
      await fh.close()
      await fsp.rename(tmp, target)
      await check(`atomic save ${i} (${n} lines)`)
    }
    // Truncate and rewrite in place, shorter and then longer.
    for (const [i, n] of [1000, 3000].entries()) {
      const fh = await fsp.open(target, 'w')
      await fh.writeFile(lines(n, `rewrite ${i}`))
      await fh.close()
      await check(`truncate + rewrite ${i}`)
    }
    // vim without backupcopy: the original moves to a backup, a new file is written, the backup goes.
    await fsp.rename(target, a('edit/notes.txt~'))
    await fsp.writeFile(target, lines(1500, 'vim'), { mode: 0o640 })
    await fsp.unlink(a('edit/notes.txt~'))
    await check('a vim-style save')
    t.equal(await fsp.readFile(b('edit/notes.txt'), 'utf8'), lines(1500, 'vim'), 'B reads the last save')
    t.same((await fsp.readdir(b('edit'))).sort(), ['notes.txt'], 'no temp or backup file is left on B')
  })

  t.test('utimes and single-time touch through the mount', async t => {
    const f = a('times')
    await fsp.writeFile(f, 'x')
    const atime = new Date(Date.UTC(2021, 5, 1))
    const mtime = new Date(Date.UTC(2019, 5, 1))
    await fsp.utimes(f, atime, mtime)
    const st = await fsp.stat(f)
    t.same([st.atimeMs, st.mtimeMs], [atime.getTime(), mtime.getTime()], 'utimes(atime, mtime) sets each (fuse-native fixed at install)')
    await mustRun(t, 'touch -m -d', 'touch', ['-m', '-d', '2018-01-01T00:00:00Z', f])
    const st2 = await fsp.stat(f)
    t.same([st2.atimeMs, st2.mtimeMs], [atime.getTime(), Date.UTC(2018, 0, 1)], 'touch -m sets mtime and keeps atime')
    await mustRun(t, 'touch -d', 'touch', ['-d', '2017-01-01T00:00:00.25Z', f])
    t.equal((await fsp.stat(f)).mtimeMs, Date.UTC(2017, 0, 1) + 250, 'setting both times to one value works')
    await assertConverges(t, 'B holds that mtime', { times: { type: 'file', mode: 0o644, size: 1, sha256: '2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881', mtimeMs: Date.UTC(2017, 0, 1) + 250 } }, B.mountpoint, { mtimes: 'files', exclude: r => r !== 'times' })
  })
})
