// Issue 3 with startup reconciliation: FIFOs and user.* attributes of
// entries created in the backing directory while unmounted are sent like
// the rest; a ".fuse_hidden" file a stopped daemon left behind (an unlinked
// file that was still open) is removed, never sent.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { getAttribute, setAttribute } from 'fs-xattr'
import { Cluster } from '../helpers/cluster.js'
import { startMount } from '../helpers/processes.js'
import { settled } from '../helpers/sync-barrier.js'

const run = promisify(execFile)

t.test('FIFOs, xattrs and hidden leftovers found at startup', async t => {
  const c = await Cluster.start(t, 2)
  let A = c.mounts[0]!
  const B = c.mounts[1]!
  await fsp.writeFile(path.join(A.mountpoint, 'before.txt'), 'so A has a record\n')
  await settled(c, A)

  await A.stop()
  const files = path.join(A.dataDir, 'vol', 'files')
  await run('mkfifo', ['-m', '600', path.join(files, 'pipe')])
  fs.writeFileSync(path.join(files, 'tagged.txt'), 'tagged offline\n')
  await setAttribute(path.join(files, 'tagged.txt'), 'user.origin', 'offline')
  fs.mkdirSync(path.join(files, 'tagged-dir'))
  await setAttribute(path.join(files, 'tagged-dir'), 'user.kind', 'dir')
  const hidden = path.join(files, '.fuse_hidden0000000a00000001')
  fs.writeFileSync(hidden, 'unlinked but open when the daemon stopped\n')

  A = await startMount('vol', A.mountpoint, A.dataDir, c.node!.address)
  c.mounts[0] = A
  await settled(c, A)
  t.notOk(fs.existsSync(hidden), 'A removed the hidden leftover from its backing directory')
  const st = await fsp.lstat(path.join(B.mountpoint, 'pipe'))
  t.ok(st.isFIFO(), 'B has the FIFO created offline')
  t.equal(st.mode & 0o7777, 0o600, 'with its mode')
  t.equal(String(await getAttribute(path.join(B.mountpoint, 'tagged.txt'), 'user.origin')), 'offline', 'B has the new file\'s attribute')
  t.equal(String(await getAttribute(path.join(B.mountpoint, 'tagged-dir'), 'user.kind')), 'dir', 'B has the new directory\'s attribute')
  t.notOk(fs.readdirSync(path.join(B.dataDir, 'vol', 'files')).some(n => n.startsWith('.fuse_hidden')), 'no hidden file reached B')
})
