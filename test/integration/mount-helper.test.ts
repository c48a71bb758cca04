// `mount -t deltafs` goes through bin/mount.deltafs: it returns once the
// volume is mounted, and an external unmount stops the daemon.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { Cluster } from '../helpers/cluster.js'
import { forceUnmount, repoRoot, waitFor } from '../helpers/processes.js'

const run = promisify(execFile)
const helper = path.join(repoRoot, 'bin', 'mount.deltafs')

function mounted (dir: string): boolean {
  return fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').some(l => l.split(' ')[1] === dir)
}

t.test('mount.deltafs mounts in the background; umount stops the daemon', async t => {
  const c = await Cluster.start(t, 1)
  const target = path.join(c.dir, 'helper-mnt')
  fs.mkdirSync(target)
  t.teardown(() => forceUnmount(target))
  const { stderr } = await run(helper, [`${c.node!.address}/vol`, target, '-o', `rw,data=${path.join(c.dir, 'helper-data')},attr_cache=0`], { timeout: 30_000 })
  t.equal(stderr, '', 'no complaint')
  t.ok(mounted(target), 'the helper returned with the volume mounted')
  await fsp.writeFile(path.join(target, 'via-helper.txt'), 'mount -t deltafs\n')
  const B = c.mounts[0]!
  t.equal(await waitFor('B to receive it', () => fsp.readFile(path.join(B.mountpoint, 'via-helper.txt'), 'utf8').catch(() => ''), 10_000), 'mount -t deltafs\n', 'changes made through the helper mount replicate')
  const pids = async (): Promise<string> => (await run('pgrep', ['-f', `mount vol ${target}`]).catch(() => ({ stdout: '' }))).stdout.trim()
  t.not(await pids(), '', 'the daemon runs detached')
  const cmdline = (await run('pgrep', ['-af', `mount vol ${target}`])).stdout
  t.match(cmdline, /--attr-cache 0/, 'attr_cache=0 reaches the daemon as --attr-cache 0')
  await run('umount', [target])
  await waitFor('the daemon to stop after umount', async () => (await pids()) === '', 10_000)
  t.notOk(mounted(target), 'nothing is left mounted')

  const bad = await run(helper, ['nonsense', target]).then(() => ({ code: 0, stderr: '' }), (e: { code: number; stderr: string }) => e)
  t.equal(bad.code, 1, 'a bad source exits 1')
  t.match(bad.stderr, /is not HOST:PORT\/VOLUME/, 'with a clear message')
})
