// Issue 3: the same sequence of operations, run by a separate process on a
// plain directory and on a mount, ends the same way step by step: the
// same errno (ENOENT, EEXIST, ENOTEMPTY, EISDIR, ENOTDIR, EACCES, EPERM,
// ENAMETOOLONG, EXDEV, ELOOP, EINVAL, EBADF, ENXIO...) or success. The
// other mount then holds the same tree.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { Cluster } from '../helpers/cluster.js'
import type { MountHandle } from '../helpers/processes.js'
import { tempDir } from '../helpers/processes.js'
import { settled } from '../helpers/sync-barrier.js'
import { diffTrees, snapshot } from '../helpers/tree.js'

const run = promisify(execFile)
const script = fileURLToPath(new URL('../helpers/errno-steps.js', import.meta.url))

type Outcomes = Array<[string, string]>

async function steps (cwd: string, args: string[]): Promise<Outcomes> {
  const { stdout } = await run(process.execPath, [script, ...args], { cwd, timeout: 60_000 })
  return JSON.parse(stdout) as Outcomes
}

/** A directory on another filesystem than `of`, for EXDEV; undefined if there is none. */
function otherFilesystemDir (of: string): string | undefined {
  for (const base of ['/dev/shm', '/run', os.tmpdir()]) {
    try {
      if (fs.statSync(base).dev === fs.statSync(of).dev) continue
      return fs.mkdtempSync(path.join(base, 'deltafs-exdev-'))
    } catch { /* not usable */ }
  }
  return undefined
}

function compare (t: Test, plain: Outcomes, mount: Outcomes, what: string): void {
  t.same(mount.map(s => s[0]), plain.map(s => s[0]), `${what}: the same steps ran`)
  for (let i = 0; i < plain.length; i++) {
    const [name, expected] = plain[i]!
    t.equal(mount[i]?.[1], expected, `${what}: ${name} -> ${expected}`)
  }
}

t.test('errno outcomes on the mount match a plain directory', async t => {
  const c = await Cluster.start(t, 2, 'vol', ['--allow-other'])
  const [A, B] = c.mounts as [MountHandle, MountHandle]
  const plain = tempDir('deltafs-plain-')
  fs.chmodSync(plain, 0o755) // as the mount's root: nobody may look, not write
  const outsideMount = tempDir('deltafs-outside-')
  const outsidePlain = otherFilesystemDir(plain)
  t.teardown(() => {
    for (const d of [plain, outsideMount, outsidePlain]) if (d) fs.rmSync(d, { recursive: true, force: true })
  })

  const plainRoot = await steps(plain, ['root', outsidePlain ?? outsideMount])
  const mountRoot = await steps(A.mountpoint, ['root', outsideMount])
  if (!outsidePlain) {
    // Only one filesystem besides FUSE: the plain run's cross-filesystem steps succeed there.
    t.comment('no second filesystem for the plain directory: EXDEV is checked on the mount only')
    for (const s of plainRoot) if (/another filesystem/.test(s[0])) s[1] = 'EXDEV'
  }
  compare(t, plainRoot, mountRoot, 'root')
  const covered = new Set(plainRoot.map(s => s[1]))
  for (const code of ['ENOENT', 'EEXIST', 'ENOTEMPTY', 'EISDIR', 'ENOTDIR', 'ENAMETOOLONG', 'EXDEV', 'ELOOP', 'EINVAL', 'EBADF', 'ENXIO', 'EPERM']) {
    t.ok(covered.has(code), `the sequence covers ${code}`)
  }

  const mountNobody = await steps(A.mountpoint, ['nobody'])
  compare(t, await steps(plain, ['nobody']), mountNobody, 'nobody')
  t.ok(mountNobody.some(s => s[1] === 'EACCES'), 'the sequence covers EACCES')

  await settled(c, A)
  const diff = diffTrees(await snapshot(A.mountpoint), await snapshot(B.mountpoint))
  t.equal(diff, null, 'B holds the same tree as A after the sequence')
})
