// Issue 2, scenario 5: bad input gets a clear message and a non-zero exit,
// never a stack trace; an unreachable node does not stop a mount.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import t, { type Test } from 'tap'
import { Cluster } from '../helpers/cluster.js'
import { freePort, runToEnd, startMount, tempDir, waitFor } from '../helpers/processes.js'

function noStack (t: Test, out: string): void {
  t.notMatch(out, /\n\s+at .+:\d+:\d+/, 'no stack trace')
}

t.test('mount point that does not exist', async t => {
  const dir = tempDir()
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const r = await runToEnd(['mount', 'vol', path.join(dir, 'missing'), '--node', '127.0.0.1:7070', '--data', path.join(dir, 'data')])
  t.equal(r.code, 2, 'exit code 2')
  t.match(r.out, /mount point .*missing does not exist/, r.out.trim())
  noStack(t, r.out)
})

t.test('mount point that is not empty', async t => {
  const dir = tempDir()
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  await fsp.mkdir(path.join(dir, 'mnt'))
  await fsp.writeFile(path.join(dir, 'mnt', 'precious.txt'), 'keep me')
  const r = await runToEnd(['mount', 'vol', path.join(dir, 'mnt'), '--node', '127.0.0.1:7070', '--data', path.join(dir, 'data')])
  t.equal(r.code, 2, 'exit code 2')
  t.match(r.out, /is not empty/, r.out.trim())
  t.equal(await fsp.readFile(path.join(dir, 'mnt', 'precious.txt'), 'utf8'), 'keep me', 'the existing file is untouched')
  noStack(t, r.out)
})

t.test('bad volume name', async t => {
  const dir = tempDir()
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  await fsp.mkdir(path.join(dir, 'mnt'))
  const r = await runToEnd(['mount', '../etc', path.join(dir, 'mnt'), '--node', '127.0.0.1:7070', '--data', path.join(dir, 'data')])
  t.equal(r.code, 2, 'exit code 2')
  t.match(r.out, /volume name/, r.out.trim())
  noStack(t, r.out)
})

t.test('bad --listen addresses', async t => {
  const dir = tempDir()
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  for (const listen of ['nonsense', '127.0.0.1:99999', 'host:port']) {
    const r = await runToEnd(['serve', '--data', dir, '--listen', listen])
    t.not(r.code, 0, `${listen}: non-zero exit`)
    t.match(r.out, /is not HOST:PORT/, `${listen}: ${r.out.trim().split('\n')[0] ?? ''}`)
    noStack(t, r.out)
  }
  const c = await Cluster.start(t, 0)
  const r = await runToEnd(['serve', '--data', path.join(dir, 'second'), '--listen', c.node!.address])
  t.equal(r.code, 2, 'address in use: exit code 2')
  t.match(r.out, /cannot listen on 127\.0\.0\.1:\d+/, r.out.trim().split('\n').pop() ?? '')
  noStack(t, r.out)
})

t.test('a mount starts while the node is unreachable and syncs once it comes up', async t => {
  const port = await freePort()
  const c = new Cluster()
  t.teardown(() => c.destroy())
  const A = await startMount('vol', path.join(c.dir, 'mnt-a'), path.join(c.dir, 'data-a'), `127.0.0.1:${port}`)
  c.mounts.push(A)
  await fsp.writeFile(path.join(A.mountpoint, 'offline.txt'), 'written while the node was down\n')
  t.equal(await fsp.readFile(path.join(A.mountpoint, 'offline.txt'), 'utf8'), 'written while the node was down\n', 'the mount works offline')
  // A new file is held briefly after its close (it may be a temp file about to replace another).
  const s = await waitFor('the new file to reach the outbox', async () => {
    const st = await A.status()
    return st.heldRewrites === 0 ? st : undefined
  }, 5000)
  t.equal(s.connected, false, 'status says not connected')
  t.equal(s.pendingTx, 1, 'the new file (create and write) waits in the outbox')
  t.ok(await waitFor('the offline warning', () => /storage node unreachable: working offline/.test(A.log()), 5000), 'the log says it works offline')

  await c.startNode(port)
  const B = await c.addMount('b')
  await waitFor('B to receive the offline file', async () =>
    (await fsp.readFile(path.join(B.mountpoint, 'offline.txt'), 'utf8').catch(() => '')) === 'written while the node was down\n', 10_000)
  t.equal((await A.status()).pendingTx, 0, 'the outbox drained')
})
