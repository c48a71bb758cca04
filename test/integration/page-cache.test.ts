// Close-to-open coherence of the kernel's page cache on one mount. Each name
// of a hard-linked file is its own kernel inode with its own cached pages
// (libfuse 2's high-level API numbers nodes by path), so a write through one
// name leaves the other name's pages stale. On open the kernel must drop
// them. With auto_cache it kept them whenever mtime and size looked
// unchanged, and fuse-native passes mtime in whole milliseconds: a write
// within the same millisecond as the previous one went unseen (the
// exerciser's "read through A disagrees with the model" failures, found at
// seeds 674263515 and 345424931: both a read of a name after a write through
// another name of the same file).
import { randomBytes, randomInt } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { Cluster } from '../helpers/cluster.js'

t.test('a write through one name of a hard-linked file is seen by the next open of the other', async t => {
  const c = await Cluster.start(t, 1)
  const dir = c.mounts[0]!.mountpoint
  const a = path.join(dir, 'a')
  const b = path.join(dir, 'b')
  // One page: open, read, write and close take well under a millisecond
  // each here, so writes that share a millisecond of mtime come often (about
  // 1 in 700 iterations before the fix).
  const expected = randomBytes(4096)
  fs.writeFileSync(a, expected)
  fs.linkSync(a, b)
  const limitMs = 15_000
  const started = Date.now()
  let iterations = 0
  let stale: string | undefined
  while (iterations < 5000 && Date.now() - started < limitMs) {
    iterations++
    fs.readFileSync(b) // caches b's pages
    const off = randomInt(0, 4000)
    const patch = randomBytes(64)
    const fd = fs.openSync(a, 'r+')
    try { fs.writeSync(fd, patch, 0, patch.length, off) } finally { fs.closeSync(fd) }
    patch.copy(expected, off)
    const got = fs.readFileSync(b)
    if (!got.equals(expected)) {
      let at = 0
      while (got[at] === expected[at]) at++
      stale = `iteration ${iterations}: read of b differs from byte ${at} (the write through a was at ${off})`
      break
    }
  }
  t.equal(stale, undefined, `every read through b saw the write through a (${iterations} iterations in ${Date.now() - started} ms)`)
  // A pass must have had the chance to fail.
  if (stale === undefined) t.ok(iterations >= 500, `enough iterations ran to meet the race (${iterations})`)
})
