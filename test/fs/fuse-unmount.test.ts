// Unmounting is bounded: fuse-native waits for fusermount without a limit,
// and a fusermount that never returned (seen once, in a CI run) held the
// daemon's shutdown, and the test around it, for ever. A stand-in
// fusermount that hangs must make the unmount fail within its limit, and
// leave the process free to end.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { FuseSession, inodesFit32Bits } from '../../src/fs/fuse-session.js'
import { fuseOps } from '../../src/fs/fuse-ops.js'
import { Passthrough } from '../../src/fs/passthrough.js'
import { logger } from '../../src/util/log.js'
import { forceUnmount, tempDir } from '../helpers/processes.js'

t.test('an unmount whose fusermount hangs fails within its limit', async t => {
  const dir = tempDir('deltafs-unmount-')
  const back = path.join(dir, 'back')
  const mnt = path.join(dir, 'mnt')
  const bin = path.join(dir, 'bin')
  for (const d of [back, mnt, bin]) fs.mkdirSync(d)
  fs.writeFileSync(path.join(bin, 'fusermount'), '#!/bin/sh\nexec sleep 120\n', { mode: 0o755 })
  const session = new FuseSession(mnt, fuseOps(new Passthrough(back), logger('test')), { fsname: 'unmount-test', attrTimeout: 0, useIno: await inodesFit32Bits(back) })
  await session.open()
  const path0 = process.env.PATH
  t.teardown(() => {
    process.env.PATH = path0
    forceUnmount(mnt)
    fs.rmSync(dir, { recursive: true, force: true })
  })
  // Asynchronous: this process serves the mount.
  await fsp.writeFile(path.join(mnt, 'f'), 'through the mount')
  process.env.PATH = `${bin}:${path0}`
  const started = Date.now()
  const outcome = await Promise.race([
    session.close().then(() => 'unmounted', (err: Error) => err.message),
    new Promise<string>(resolve => setTimeout(() => resolve('still waiting after 40 s'), 40_000).unref()),
  ])
  process.env.PATH = path0
  t.match(outcome, /did not return within/, `the unmount failed plainly (${outcome})`)
  t.ok(Date.now() - started < 30_000, `within its limit (${Date.now() - started} ms)`)
})
