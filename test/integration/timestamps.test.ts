// Issue 3: file times are nanosecond timestamps, and they replicate. What a
// program sets or sees on mount A (utimensat, touch, tar x, cp -a, rsync -a)
// is what A's backing file holds and what mount B shows after the sync, to
// the nanosecond; setting one time (touch -m, tar's futimens with UTIME_OMIT)
// leaves the other alone.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { Cluster } from '../helpers/cluster.js'
import { type MountHandle, tempDir } from '../helpers/processes.js'
import { settled } from '../helpers/sync-barrier.js'

const run = promisify(execFile)

const FUTIMENS_OMIT_ATIME = `import ctypes, os, sys
class TS(ctypes.Structure): _fields_ = [('sec', ctypes.c_long), ('nsec', ctypes.c_long)]
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(sys.argv[1], os.O_WRONLY)
ts = (TS * 2)(TS(0, (1 << 30) - 2), TS(int(sys.argv[2]), int(sys.argv[3])))
r = libc.futimens(fd, ts)
os.close(fd)
sys.exit(0 if r == 0 else ctypes.get_errno())`

/** atime and mtime in ns as the kernel reports them, symlinks not followed. */
function times (p: string): [bigint, bigint] {
  const st = fs.lstatSync(p, { bigint: true })
  return [st.atimeNs, st.mtimeNs]
}

/** utimensat(2) with both times in ns (Node's utimes takes float seconds: no ns). */
async function utimensNs (p: string, atimeNs: bigint, mtimeNs: bigint): Promise<void> {
  await run('python3', ['-c', 'import os, sys; os.utime(sys.argv[1], ns=(int(sys.argv[2]), int(sys.argv[3])), follow_symlinks=False)', p, String(atimeNs), String(mtimeNs)])
}

/** mtime (ns, as a decimal string) of every entry under root but symlinks, by relative path. */
function mtimes (root: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const rel of fs.readdirSync(root, { recursive: true, encoding: 'utf8' }).sort()) {
    const st = fs.lstatSync(path.join(root, rel), { bigint: true })
    if (!st.isSymbolicLink()) out[rel] = String(st.mtimeNs)
  }
  return out
}

/** Files and directories with distinct past times that are not whole microseconds, deepest first. */
function makeTree (root: string): void {
  fs.mkdirSync(path.join(root, 'd/e'), { recursive: true })
  fs.writeFileSync(path.join(root, 'a.txt'), 'alpha\n')
  fs.writeFileSync(path.join(root, 'd/b.bin'), Buffer.alloc(70_000, 3))
  fs.writeFileSync(path.join(root, 'd/e/c.txt'), 'gamma\n')
  fs.symlinkSync('a.txt', path.join(root, 'link'))
}

async function stampTree (root: string): Promise<void> {
  const rels = fs.readdirSync(root, { recursive: true, encoding: 'utf8' }).sort().reverse()
  let n = 0n
  for (const rel of [...rels, '']) {
    const abs = path.join(root, rel)
    if (fs.lstatSync(abs).isSymbolicLink()) continue
    const base = 1_262_304_000_000_000_000n + n++ * 86_401_000_000_123n // 2010 on, a day and a bit apart
    await utimensNs(abs, base + 111_111_111n, base + 987_654_321n)
  }
}

t.test('nanosecond times through the mount, replicated', async t => {
  const c = await Cluster.start(t, 2)
  const [A, B] = c.mounts as [MountHandle, MountHandle]
  const a = (p: string): string => path.join(A.mountpoint, p)
  const b = (p: string): string => path.join(B.mountpoint, p)
  const backingA = (p: string): string => path.join(A.dataDir, 'vol/files', p)
  const backingB = (p: string): string => path.join(B.dataDir, 'vol/files', p)
  t.teardown(() => { if (t.passing() === false) t.comment(c.logs()) })

  /** The same times on A, A's backing file, B and B's backing file. */
  async function sameEverywhere (t: Test, p: string, want: [bigint, bigint] | undefined, what: string): Promise<void> {
    const onA = times(a(p))
    if (want) t.same(onA.map(String), want.map(String), `${what}: A shows them to the ns`)
    t.same(times(backingA(p)).map(String), onA.map(String), `${what}: A's backing file holds what A shows`)
    await settled(c, A)
    t.same(times(b(p)).map(String), onA.map(String), `${what}: B shows A's atime and mtime to the ns`)
    t.same(times(backingB(p)).map(String), onA.map(String), `${what}: B's backing file too`)
  }

  t.test('utimensat with ns', async t => {
    await fsp.writeFile(a('ns.txt'), 'ns\n')
    await utimensNs(a('ns.txt'), 1_600_000_000_123_456_789n, 981_173_106_987_654_321n)
    await sameEverywhere(t, 'ns.txt', [1_600_000_000_123_456_789n, 981_173_106_987_654_321n], 'utimensat')
    await fsp.mkdir(a('ns-dir'))
    await utimensNs(a('ns-dir'), 1_500_000_000_000_000_001n, 1_400_000_000_999_999_999n)
    await sameEverywhere(t, 'ns-dir', [1_500_000_000_000_000_001n, 1_400_000_000_999_999_999n], 'a directory')
    await fsp.symlink('ns.txt', a('ns-link'))
    await utimensNs(a('ns-link'), 1_300_000_000_000_000_007n, 1_200_000_000_000_000_009n)
    await sameEverywhere(t, 'ns-link', [1_300_000_000_000_000_007n, 1_200_000_000_000_000_009n], 'a symlink\'s own times')
    await fsp.writeFile(a('old.txt'), 'old\n')
    await utimensNs(a('old.txt'), -1_500_000_000n, -86_400_000_000_000_123n)
    await sameEverywhere(t, 'old.txt', [-1_500_000_000n, -86_400_000_000_000_123n], 'times before 1970')
  })

  t.test('touch -d with ns, as the issue asks', async t => {
    await fsp.writeFile(a('touched.txt'), 'touch\n')
    await run('touch', ['-d', '2001-02-03 04:05:06.123456789 UTC', a('touched.txt')])
    const { stdout } = await run('stat', ['-c', '%y', a('touched.txt')], { env: { ...process.env, TZ: 'UTC' } })
    t.equal(stdout.trim(), '2001-02-03 04:05:06.123456789 +0000', 'stat -c %y on A')
    const when = 981_173_106_123_456_789n
    await sameEverywhere(t, 'touched.txt', [when, when], 'touch -d')
  })

  t.test('single-time updates: touch -m, touch -a, futimens with UTIME_OMIT', async t => {
    await fsp.writeFile(a('one.txt'), 'one\n')
    await utimensNs(a('one.txt'), 1_111_111_111_111_111_111n, 1_222_222_222_222_222_222n)
    await run('touch', ['-m', '-d', '2018-01-01 00:00:00.000000042 UTC', a('one.txt')])
    await sameEverywhere(t, 'one.txt', [1_111_111_111_111_111_111n, 1_514_764_800_000_000_042n], 'touch -m keeps atime')
    await run('touch', ['-a', '-d', '2017-01-01 00:00:00.5 UTC', a('one.txt')])
    await sameEverywhere(t, 'one.txt', [1_483_228_800_500_000_000n, 1_514_764_800_000_000_042n], 'touch -a keeps mtime')
    // GNU tar's way: futimens on the open file, atime UTIME_OMIT (Python's os.utime cannot omit one).
    await run('python3', ['-c', FUTIMENS_OMIT_ATIME, a('one.txt'), '1000000000', '3'])
    await sameEverywhere(t, 'one.txt', [1_483_228_800_500_000_000n, 1_000_000_000_000_000_003n], 'futimens with UTIME_OMIT for atime')
    const before = BigInt(Date.now() - 5000) * 1_000_000n
    await run('touch', [a('one.txt')])
    const [at, mt] = times(a('one.txt'))
    t.ok(at > before && mt > before, 'plain touch sets both to now')
    await sameEverywhere(t, 'one.txt', undefined, 'plain touch')
  })

  t.test('written files: the mtime the write gave A is B\'s', async t => {
    await fsp.writeFile(a('written.bin'), Buffer.alloc(300_000, 9))
    await fsp.appendFile(a('written.bin'), 'tail')
    const mt = times(backingA('written.bin'))[1]
    t.equal(times(a('written.bin'))[1], mt, 'A shows the backing file\'s mtime to the ns')
    await settled(c, A)
    t.equal(times(b('written.bin'))[1], mt, 'B shows the mtime of A\'s backing file to the ns')
    t.equal(times(backingB('written.bin'))[1], mt, 'B\'s backing file holds it')
  })

  t.test('tar x, cp -a and rsync -a keep ns mtimes', async t => {
    const dir = tempDir()
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
    const src = path.join(dir, 'src')
    makeTree(src)
    await stampTree(src)
    const want = mtimes(src)
    t.ok(Object.values(want).every(ns => BigInt(ns) % 1000n !== 0n), 'fixture: source mtimes are not whole microseconds')
    // pax headers carry mtimes to the ns; the default format has whole seconds.
    const tarball = path.join(dir, 'src.tar')
    await run('tar', ['--format=posix', '-cf', tarball, '-C', src, '.'])
    const local = path.join(dir, 'local')
    fs.mkdirSync(local)
    fs.mkdirSync(path.join(dir, 'rsync-local'))
    await run('tar', ['-xf', tarball, '-C', local])
    await run('rsync', ['-a', `${src}/`, path.join(dir, 'rsync-local')])
    const rsyncLocal = mtimes(path.join(dir, 'rsync-local'))

    await fsp.mkdir(a('tar'))
    await run('tar', ['-xf', tarball, '-C', a('tar')])
    await run('cp', ['-a', src, a('cp')])
    await run('rsync', ['-a', `${src}/`, a('rsync')])
    t.same(mtimes(local), want, 'control: tar x on a local disk keeps the ns mtimes')
    t.same(mtimes(a('tar')), want, 'tar x on A: the archive\'s ns mtimes, files and directories')
    t.same(mtimes(a('cp')), want, 'cp -a on A: the source\'s ns mtimes')
    t.same(mtimes(a('rsync')), rsyncLocal, 'rsync -a on A: the mtimes rsync gives on a local disk')
    t.same(mtimes(backingA('tar')), want, 'A\'s backing files hold them')
    await settled(c, A)
    t.same(mtimes(b('tar')), want, 'B: tar x result to the ns')
    t.same(mtimes(b('cp')), want, 'B: cp -a result to the ns')
    t.same(mtimes(b('rsync')), rsyncLocal, 'B: rsync -a result')
  })
})
