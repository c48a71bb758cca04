// Issue 3: git works in a mount as on a local disk, and what it writes
// (loose objects, packs, index, refs, lock-file renames) replicates byte for
// byte: the other mount holds a repository git fsck finds clean.
import fsp from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { Cluster } from '../helpers/cluster.js'
import type { MountHandle } from '../helpers/processes.js'
import { assertConverges, mustRun } from '../helpers/programs.js'

const FILES = Number(process.env.DELTAFS_GIT_FILES ?? 300)

const gitEnv = {
  GIT_AUTHOR_NAME: 'Test', GIT_AUTHOR_EMAIL: 'test@example.invalid', GIT_COMMITTER_NAME: 'Test', GIT_COMMITTER_EMAIL: 'test@example.invalid',
  GIT_AUTHOR_DATE: '2026-01-02T03:04:05Z', GIT_COMMITTER_DATE: '2026-01-02T03:04:05Z',
  // No user or system config: the test sees the same git everywhere.
  GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', HOME: '/nonexistent', GIT_TERMINAL_PROMPT: '0',
}
const cfg = ['-c', 'user.name=Test', '-c', 'user.email=test@example.invalid', '-c', 'safe.directory=*', '-c', 'init.defaultBranch=main', '-c', 'gc.auto=0', '-c', 'core.fsync=all']

t.test('git init, commit, branch, merge, gc and fsck in A; B holds a clean copy', async t => {
  t.setTimeout(5 * 60_000)
  const c = await Cluster.start(t, 2)
  const [A, B] = c.mounts as [MountHandle, MountHandle]
  t.teardown(() => { if (!t.passing()) t.comment(c.logs()) })
  const repoA = path.join(A.mountpoint, 'repo')
  const repoB = path.join(B.mountpoint, 'repo')
  const git = (what: string, args: string[], cwd = repoA) => mustRun(t, what, 'git', [...cfg, ...args], { cwd, env: gitEnv })

  await fsp.mkdir(repoA)
  await git('git init', ['init', '-q'])
  for (let i = 0; i < FILES; i++) {
    const dir = path.join(repoA, `src/mod${i % 17}`)
    await fsp.mkdir(dir, { recursive: true })
    await fsp.writeFile(path.join(dir, `file${i}.txt`), `file ${i}\n${'some content line\n'.repeat(i % 50)}`)
  }
  await fsp.mkdir(path.join(repoA, 'old'))
  for (let j = 0; j < 10; j++) await fsp.writeFile(path.join(repoA, `old/d${j}.txt`), `old ${j}\n`)
  await fsp.writeFile(path.join(repoA, 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 })
  await git('git add of the generated files', ['add', '-A'])
  await git('first commit', ['commit', '-q', '-m', 'first'])

  await git('branch', ['checkout', '-q', '-b', 'feature'])
  for (let i = 0; i < FILES; i += 10) await fsp.appendFile(path.join(repoA, `src/mod${i % 17}/file${i}.txt`), 'feature line\n')
  await fsp.writeFile(path.join(repoA, 'FEATURE.md'), 'a feature\n')
  await git('commit on feature', ['commit', '-q', '-a', '-m', 'feature work'])
  await git('add new file on feature', ['add', 'FEATURE.md'])
  await git('second commit on feature', ['commit', '-q', '-m', 'feature doc'])

  await git('checkout main', ['checkout', '-q', 'main'])
  for (let i = 5; i < FILES; i += 10) await fsp.appendFile(path.join(repoA, `src/mod${i % 17}/file${i}.txt`), 'main line\n')
  await fsp.rm(path.join(repoA, 'old'), { recursive: true })
  await git('commit on main', ['commit', '-q', '-a', '-m', 'main work'])
  await git('merge (a real merge commit)', ['merge', '--no-ff', '-q', '-m', 'merge feature', 'feature'])
  const parents = await git('rev-list of the merge', ['rev-list', '--parents', '-n', '1', 'HEAD'])
  t.equal(parents.stdout.trim().split(' ').length, 3, 'HEAD is a merge commit with two parents')

  await git('git gc', ['gc', '-q', '--prune=now'])
  await git('git fsck --full on A', ['fsck', '--full', '--strict'])
  const status = await git('git status on A', ['status', '--porcelain'])
  t.equal(status.stdout, '', 'A\'s work tree is clean')

  // .git/index holds ctimes/inodes, but its bytes must still match. Times
  // are left to the tar/cp/rsync tests: git does not need B's to match.
  await assertConverges(t, 'B holds the same repository as A, byte for byte', repoA, repoB, {}, 90_000)
  await git('git fsck --full on B', ['fsck', '--full', '--strict'], repoB)
  const logA = await git('log on A', ['log', '--format=%H %P %s'])
  const logB = await git('log on B', ['log', '--format=%H %P %s'], repoB)
  t.equal(logB.stdout, logA.stdout, 'B has the same history')
  const statusB = await git('git status on B', ['status', '--porcelain'], repoB)
  t.equal(statusB.stdout, '', 'B\'s work tree is clean against its index')
  // git status on B may refresh B's index (other inodes): that write comes back to A.
  await assertConverges(t, 'A and B still agree after git ran on B', repoB, repoA, {}, 60_000)
  await git('git fsck --full on A again', ['fsck', '--full', '--strict'])
})
