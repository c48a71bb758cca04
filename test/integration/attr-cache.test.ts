// What the kernel's attribute cache (--attr-cache, default 1 s) may and may
// not hide on a mount that receives remote changes. Names are never cached
// (entry_timeout=0, negative_timeout=0), so once a remote change is applied
// every path-based call sees it at once: stat, open and read, a name that
// appeared, a name that went away. Only calls on a file that was already
// open (fstat) may go on seeing the old attributes, for at most the cache
// time. A mount with --attr-cache 0 shows the old way, where even those are
// fresh.
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { Cluster } from '../helpers/cluster.js'
import { type MountHandle, runToEnd, sleep } from '../helpers/processes.js'
import { settled } from '../helpers/sync-barrier.js'

for (const cache of ['1', '0']) {
  t.test(`--attr-cache ${cache}: a path sees a remote change as soon as it is applied`, async t => {
    const c = await Cluster.start(t, 2, 'vol', ['--attr-cache', cache])
    t.comment(`node ${c.node!.address}`)
    const [a, b] = c.mounts as [MountHandle, MountHandle]
    const fa = path.join(a.mountpoint, 'f.txt')
    const fb = path.join(b.mountpoint, 'f.txt')
    const ga = path.join(a.mountpoint, 'g.txt')
    const gb = path.join(b.mountpoint, 'g.txt')
    fs.writeFileSync(fa, 'first')
    await settled(c, a)
    // B looks at both names, so the kernel holds f's attributes and a
    // negative entry for g, if it keeps them at all.
    t.equal(fs.statSync(fb).size, 5)
    t.throws(() => fs.statSync(gb), { code: 'ENOENT' })
    const fd = fs.openSync(fb, 'r')
    // Closed once only: a second close would shut whatever took the number
    // meanwhile (it was a gRPC socket of the next test's cluster).
    let open = true
    const closeFd = (): void => { if (open) { open = false; fs.closeSync(fd) } }
    t.teardown(closeFd)
    t.equal(fs.fstatSync(fd).size, 5)

    const second = 'second, and longer than the first'
    fs.writeFileSync(fa, second)
    fs.writeFileSync(ga, 'new name')
    await settled(c, a)
    const seenAt = Date.now()
    t.equal(fs.statSync(fb).size, second.length, 'stat of the path has the new size at once')
    t.equal(fs.readFileSync(fb, 'utf8'), second, 'a new open reads the new content whole')
    t.equal(fs.readFileSync(gb, 'utf8'), 'new name', 'a name that was missing is found at once')

    // The open file: fresh within the cache time (plus scheduling slack).
    const limitMs = Number(cache) * 1000 + 500
    let size = fs.fstatSync(fd).size
    while (size !== second.length && Date.now() - seenAt < limitMs) {
      await sleep(20)
      size = fs.fstatSync(fd).size
    }
    t.equal(size, second.length, `fstat of the open file has the new size within ${limitMs} ms`)
    if (cache === '0') t.ok(Date.now() - seenAt < 200, 'with no cache, fstat was fresh at once')
    closeFd()

    fs.unlinkSync(ga)
    await settled(c, a)
    t.throws(() => fs.statSync(gb), { code: 'ENOENT' }, 'a name removed remotely is gone at once')
  })
}

t.test('--attr-cache rejects a value that is not a number of seconds', async t => {
  for (const bad of ['-1', 'soon', '99999']) {
    const r = await runToEnd(['mount', 'vol', '/nonexistent-mountpoint', '--node', '127.0.0.1:1', '--attr-cache', bad])
    t.equal(r.code, 2, `--attr-cache ${bad} exits with status 2`)
    t.match(r.out, /attr-cache.*seconds from 0 to 3600/, `--attr-cache ${bad} says what is allowed`)
  }
})
