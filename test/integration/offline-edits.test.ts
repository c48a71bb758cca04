// Issue 4, scenario 3: mounts keep editing while the storage node is down.
// When it comes back, every tree converges and nothing is lost: of two
// different edits of one file, one keeps the name on every mount and the
// other becomes exactly one conflict copy (named after the device that lost);
// an edit raced by a delete survives; identical edits make no conflict copy;
// edits of different files both land.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import t, { type Test } from 'tap'
import { Cluster } from '../helpers/cluster.js'
import { type MountHandle, sleep, startMount, waitFor } from '../helpers/processes.js'
import { snapshot } from '../helpers/tree.js'
import type { TcpProxy } from '../helpers/tcp-proxy.js'
import { type Tree, allConflictCopies, conflictCopiesOf, settle, settleOrFail } from '../helpers/settle.js'

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex')

async function writeSynced (file: string, data: Buffer | string): Promise<void> {
  const fh = await fsp.open(file, 'w', 0o644)
  try { await fh.writeFile(data); await fh.sync() } finally { await fh.close() }
}

async function patchSynced (file: string, data: Buffer, offset: number): Promise<Buffer> {
  const fh = await fsp.open(file, 'r+')
  try { await fh.write(data, 0, data.length, offset); await fh.sync() } finally { await fh.close() }
  return fsp.readFile(file)
}

async function appendSynced (file: string, data: string): Promise<void> {
  const fh = await fsp.open(file, 'a')
  try { await fh.writeFile(data); await fh.sync() } finally { await fh.close() }
}

async function deviceOf (m: MountHandle): Promise<string> {
  return String((await m.status()).deviceId)
}

/** Who holds which content: a readable dump of a tree for failure messages. */
function describe (tree: Tree, known: Record<string, string>): string {
  const names = Object.fromEntries(Object.entries(known).map(([label, h]) => [h, label]))
  return Object.entries(tree).map(([p, e]) => `  ${p}: ${e.type}${e.sha256 ? ` ${names[e.sha256] ?? e.sha256.slice(0, 12)}` : ''}`).join('\n')
}

/**
 * Two mounts, each reaching the node through its own proxy (cut() takes one
 * offline), and paths inside them; b() follows mount 1 across restarts.
 */
async function twoBehindProxies (t: Test): Promise<{ c: Cluster; A: MountHandle; pa: TcpProxy; pb: TcpProxy; a: (f: string) => string; b: (f: string) => string }> {
  const { c, proxies } = await Cluster.startBehindProxies(t, 2)
  const A = c.mounts[0]!
  const [pa, pb] = proxies as [TcpProxy, TcpProxy]
  return { c, A, pa, pb, a: f => path.join(A.mountpoint, f), b: f => path.join(c.mounts[1]!.mountpoint, f) }
}

/**
 * Restarts mount i with the fault point armed, lets it reach the node
 * through its proxy, waits for it to die there, and starts it again clean.
 */
async function reconnectDyingAt (c: Cluster, i: number, proxy: TcpProxy, faultPoint: string): Promise<void> {
  const old = c.mounts[i]!
  await old.stop()
  const armed = await startMount('vol', old.mountpoint, old.dataDir, proxy.address, [], { DELTAFS_FAULTS: faultPoint })
  c.mounts[i] = armed
  proxy.heal()
  await waitFor(`mount ${i} to die at ${faultPoint}`, () => armed.child.exitCode !== null || armed.child.signalCode !== null, 20_000)
  await armed.kill() // dead already: this unmounts what it left
  c.mounts[i] = await startMount('vol', old.mountpoint, old.dataDir, proxy.address)
}

async function stopNodeAndWait (c: Cluster): Promise<void> {
  await c.node!.stop()
  for (const m of c.mounts) await waitFor(`${m.mountpoint} to notice the node is gone`, async () => (await m.status()).connected === false, 15_000)
}

async function conflictsListed (mounts: MountHandle[]): Promise<unknown[]> {
  const all: unknown[] = []
  for (const m of mounts) {
    const list = (await m.status() as Record<string, unknown>).conflicts
    if (Array.isArray(list)) all.push(...list)
  }
  return all
}

/**
 * Checks a file edited concurrently by several devices: the name holds one
 * of the versions and each other version is exactly one conflict copy named
 * after the device that wrote it.
 */
function checkRace (t: Test, tree: Tree, rel: string, versions: Array<{ device: string; label: string; hash: string }>, known: Record<string, string>): void {
  const at = tree[rel]?.sha256
  const winner = versions.find(v => v.hash === at)
  t.ok(winner, `${rel} holds one of the concurrent versions (${winner?.label ?? 'none'})`, { tree: describe(tree, known) })
  const copies = conflictCopiesOf(tree, rel)
  const losers = versions.filter(v => v !== winner)
  t.equal(copies.length, losers.length, `${rel} has ${losers.length} conflict cop${losers.length === 1 ? 'y' : 'ies'}: ${copies.map(c => c.path).join(', ') || 'none'}`)
  for (const v of losers) {
    const mine = copies.filter(c => tree[c.path]!.sha256 === v.hash)
    t.equal(mine.length, 1, `${v.label} is kept in exactly one conflict copy of ${rel}`)
    if (mine[0]) t.equal(mine[0].device, v.device, `that copy is named after the device that wrote it (${v.label})`)
  }
}

t.test('offline edits on two mounts: conflicts keep both versions', async t => {
  const c = await Cluster.start(t, 2)
  const [A, B] = c.mounts as [MountHandle, MountHandle]
  t.teardown(() => { if (!t.passing()) t.comment(c.logs()) })
  const a = (f: string) => path.join(A.mountpoint, f)
  const b = (f: string) => path.join(B.mountpoint, f)
  const devA = await deviceOf(A)
  const devB = await deviceOf(B)
  t.not(devA, devB, `the mounts have distinct device ids (${devA}, ${devB})`)

  const inplaceBase = Buffer.alloc(64 * 1024)
  for (let i = 0; i < inplaceBase.length; i++) inplaceBase[i] = (i * 31 + 7) & 0xff
  await writeSynced(a('a-only.txt'), 'base of a-only\n')
  await writeSynced(a('b-only.txt'), 'base of b-only\n')
  await writeSynced(a('same.txt'), 'base of same\n'.repeat(20))
  await writeSynced(a('inplace.bin'), inplaceBase)
  await writeSynced(a('del.txt'), 'base of del\n')
  await writeSynced(a('ident.txt'), 'base of ident\n')
  await settle([A, B])

  await stopNodeAndWait(c)
  const v = {
    aOnly: 'A edited a-only while offline\n',
    bOnly: 'B edited b-only while offline\n',
    sameA: 'A rewrote same while offline\n',
    sameB: 'B rewrote same while offline, and B wrote more\n'.repeat(3),
    delB: 'base of del\nB appended to del while A deleted it\n',
    ident: 'both wrote exactly this\n',
  }
  await writeSynced(a('a-only.txt'), v.aOnly)
  await writeSynced(b('b-only.txt'), v.bOnly)
  await writeSynced(a('same.txt'), v.sameA)
  await writeSynced(b('same.txt'), v.sameB)
  const inplaceA = await patchSynced(a('inplace.bin'), Buffer.alloc(100, 0x41), 1000)
  const inplaceB = await patchSynced(b('inplace.bin'), Buffer.alloc(100, 0x42), 40_000)
  await fsp.unlink(a('del.txt'))
  await appendSynced(b('del.txt'), 'B appended to del while A deleted it\n')
  t.equal(await fsp.readFile(b('del.txt'), 'utf8'), v.delB, 'B holds its edit of del.txt')
  await writeSynced(a('ident.txt'), v.ident)
  await writeSynced(b('ident.txt'), v.ident)

  await c.startNode()
  const tree = await settleOrFail(t, [A, B])
  if (!tree) return
  const known: Record<string, string> = {
    "A's a-only": sha(v.aOnly), "B's b-only": sha(v.bOnly), "A's same": sha(v.sameA), "B's same": sha(v.sameB),
    "A's inplace": sha(inplaceA), "B's inplace": sha(inplaceB), "B's del": sha(v.delB), ident: sha(v.ident),
  }
  t.comment(`final tree:\n${describe(tree, known)}`)

  t.equal(tree['a-only.txt']?.sha256, sha(v.aOnly), "A's edit of a-only.txt is on every mount")
  t.equal(tree['b-only.txt']?.sha256, sha(v.bOnly), "B's edit of b-only.txt is on every mount")
  t.same(conflictCopiesOf(tree, 'a-only.txt').concat(conflictCopiesOf(tree, 'b-only.txt')), [], 'edits of different files make no conflict copy')

  checkRace(t, tree, 'same.txt', [{ device: devA, label: "A's same", hash: sha(v.sameA) }, { device: devB, label: "B's same", hash: sha(v.sameB) }], known)
  checkRace(t, tree, 'inplace.bin', [{ device: devA, label: "A's inplace", hash: sha(inplaceA) }, { device: devB, label: "B's inplace", hash: sha(inplaceB) }], known)

  const delCopies = conflictCopiesOf(tree, 'del.txt')
  if (tree['del.txt']) {
    t.equal(tree['del.txt'].sha256, sha(v.delB), "the edit won over the delete: del.txt holds B's edit")
    t.equal(delCopies.length, 0, 'and no conflict copy of del.txt was needed')
  } else {
    t.equal(delCopies.length, 1, 'the delete won: one conflict copy of del.txt keeps the edit')
    t.equal(delCopies[0] && tree[delCopies[0].path]!.sha256, sha(v.delB), "that copy holds B's edit")
    t.equal(delCopies[0]?.device, devB, 'and is named after B')
  }

  t.equal(tree['ident.txt']?.sha256, sha(v.ident), 'the identical edit is on every mount')
  t.same(conflictCopiesOf(tree, 'ident.txt'), [], 'identical concurrent edits make no conflict copy')

  const copies = allConflictCopies(tree)
  t.equal(copies.length, 2 + (tree['del.txt'] ? 0 : 1), `no other conflict copies (${copies.join(', ')})`)
  const listed = JSON.stringify(await conflictsListed([A, B]))
  for (const p of copies) t.ok(listed.includes(path.posix.basename(p)), `deltafs status lists the conflict ${p}: ${listed}`)
  for (const m of [A, B]) t.ok(fs.existsSync(path.join(m.mountpoint, 'same.txt')), `${m.mountpoint} serves same.txt`)
})

t.test('offline edits on three mounts: one winner, every other version kept', async t => {
  const c = await Cluster.start(t, 3)
  const [A, B, C] = c.mounts as [MountHandle, MountHandle, MountHandle]
  t.teardown(() => { if (!t.passing()) t.comment(c.logs()) })
  const at = (m: MountHandle, f: string) => path.join(m.mountpoint, f)
  const dev = await Promise.all([A, B, C].map(deviceOf))

  await fsp.mkdir(at(A, 'docs'))
  await writeSynced(at(A, 'docs/three.md'), '# base\n')
  await writeSynced(at(A, 'ident3.txt'), 'base\n')
  await writeSynced(at(A, 'gone.txt'), 'base of gone\n')
  await settle([A, B, C])

  await stopNodeAndWait(c)
  const three = ['# A\nA wrote this\n', '# B\nB wrote this, longer\n'.repeat(2), '# C\n']
  for (const [i, m] of [A, B, C].entries()) await writeSynced(at(m, 'docs/three.md'), three[i]!)
  const fresh = ['A created new.txt\n', 'B created new.txt, differently\n']
  await writeSynced(at(A, 'docs/new.txt'), fresh[0]!)
  await writeSynced(at(B, 'docs/new.txt'), fresh[1]!)
  for (const m of [A, B, C]) await writeSynced(at(m, 'ident3.txt'), 'all three wrote this\n')
  await appendSynced(at(A, 'gone.txt'), 'A appended\n')
  await appendSynced(at(B, 'gone.txt'), 'B appended\n')
  await fsp.unlink(at(C, 'gone.txt'))

  await c.startNode()
  const tree = await settleOrFail(t, [A, B, C])
  if (!tree) return
  const known: Record<string, string> = {
    "A's three": sha(three[0]!), "B's three": sha(three[1]!), "C's three": sha(three[2]!),
    "A's new": sha(fresh[0]!), "B's new": sha(fresh[1]!), ident: sha('all three wrote this\n'),
    "A's gone": sha('base of gone\nA appended\n'), "B's gone": sha('base of gone\nB appended\n'),
  }
  t.comment(`final tree:\n${describe(tree, known)}`)

  checkRace(t, tree, 'docs/three.md', three.map((s, i) => ({ device: dev[i]!, label: `${'ABC'[i]!}'s three`, hash: sha(s) })), known)
  checkRace(t, tree, 'docs/new.txt', fresh.map((s, i) => ({ device: dev[i]!, label: `${'AB'[i]!}'s new`, hash: sha(s) })), known)
  t.equal(tree['ident3.txt']?.sha256, sha('all three wrote this\n'), 'the identical edit is on every mount')
  t.same(conflictCopiesOf(tree, 'ident3.txt'), [], 'three identical edits make no conflict copy')

  const goneHolders = [tree['gone.txt'], ...conflictCopiesOf(tree, 'gone.txt').map(cc => tree[cc.path])].map(e => e?.sha256)
  for (const label of ["A's gone", "B's gone"]) {
    t.equal(goneHolders.filter(h => h === known[label]).length, 1, `${label} edit survived C's delete exactly once`)
  }
  t.equal(conflictCopiesOf(tree, 'gone.txt').length, tree['gone.txt'] ? 1 : 2, 'gone.txt has no extra conflict copies')
})

t.test('offline rename of a file another mount edits: the edit is not lost', async t => {
  const c = await Cluster.start(t, 2)
  const [A, B] = c.mounts as [MountHandle, MountHandle]
  t.teardown(() => { if (!t.passing()) t.comment(c.logs()) })
  const a = (f: string) => path.join(A.mountpoint, f)
  const b = (f: string) => path.join(B.mountpoint, f)
  const base = Buffer.alloc(16 * 1024, 0x2e)
  await writeSynced(a('moved.bin'), base)
  await writeSynced(a('renamed-over.txt'), 'base of renamed-over\n')
  await writeSynced(a('src.txt'), 'src content\n')
  await settle([A, B])

  await stopNodeAndWait(c)
  // A moves a file away while B edits it in place.
  await fsp.rename(a('moved.bin'), a('moved-away.bin'))
  const edited = await patchSynced(b('moved.bin'), Buffer.from('B was here'), 5000)
  // A renames another file over one that B edits.
  await fsp.rename(a('src.txt'), a('renamed-over.txt'))
  await writeSynced(b('renamed-over.txt'), 'B rewrote renamed-over\n')

  await c.startNode()
  const tree = await settleOrFail(t, [A, B])
  if (!tree) return
  const known: Record<string, string> = { base: sha(base), "B's edit": sha(edited), src: sha('src content\n'), "B's rewrite": sha('B rewrote renamed-over\n') }
  const hashes = Object.values(tree).map(e => e.sha256)
  t.comment(`final tree:\n${describe(tree, known)}`)
  t.ok(hashes.includes(sha(edited)), "B's in-place edit of the file A moved away is on every mount", { tree: describe(tree, known) })
  t.ok(hashes.includes(sha('B rewrote renamed-over\n')), "B's rewrite of the file A renamed another over is on every mount", { tree: describe(tree, known) })
  t.ok(hashes.includes(sha('src content\n')), "the content A renamed over it is on every mount", { tree: describe(tree, known) })
})

t.test('offline create or edit raced by a create-then-rename on another mount', async t => {
  const c = await Cluster.start(t, 2)
  const [A, B] = c.mounts as [MountHandle, MountHandle]
  t.teardown(() => { if (!t.passing()) t.comment(c.logs()) })
  const a = (f: string) => path.join(A.mountpoint, f)
  const b = (f: string) => path.join(B.mountpoint, f)
  await writeSynced(a('edited.txt'), 'base of edited\n')
  await settle([A, B])

  await stopNodeAndWait(c)
  // Both create the same name; B then moves its file on.
  await writeSynced(a('born.txt'), 'A created born\n')
  await writeSynced(b('born.txt'), 'B created born\n')
  await fsp.rename(b('born.txt'), b('born-moved.txt'))
  // A edits a file that B renames and then edits under its new name.
  await appendSynced(a('edited.txt'), 'A appended\n')
  await fsp.rename(b('edited.txt'), b('edited-moved.txt'))
  await appendSynced(b('edited-moved.txt'), 'B appended after moving it\n')

  await c.startNode()
  const tree = await settleOrFail(t, [A, B])
  if (!tree) return
  const known: Record<string, string> = {
    "A's born": sha('A created born\n'), "B's born": sha('B created born\n'),
    "A's edit": sha('base of edited\nA appended\n'), "B's edit": sha('base of edited\nB appended after moving it\n'),
  }
  const hashes = Object.values(tree).map(e => e.sha256)
  t.comment(`final tree:\n${describe(tree, known)}`)
  for (const [label, h] of Object.entries(known)) t.ok(hashes.includes(h), `${label} is on every mount`, { tree: describe(tree, known) })
})

t.test('a conflict with a file re-created elsewhere takes the winner whole at once (no mix of both versions)', async t => {
  // The winner's transaction starts with Create after the name was deleted
  // (its base is the delete, not 0): it carries the whole file. Asking its
  // author for the file instead left the loser serving the winner's bytes
  // over the tail of its own longer version until the answer came, and
  // local changes made on that mix meanwhile went out as changes of a file
  // nobody else had.
  const { c, A, pa, pb, a, b } = await twoBehindProxies(t)
  const B = c.mounts[1]!
  await writeSynced(a('reborn.txt'), 'the first life of reborn\n'.repeat(50))
  await settle([A, B])
  await fsp.unlink(a('reborn.txt'))
  await settle([A, B])

  pa.cut()
  const mine = 'A made reborn again, longer than B\n'.repeat(100)
  const theirs = 'B made reborn again\n'.repeat(20)
  await writeSynced(a('reborn.txt'), mine)
  await writeSynced(b('reborn.txt'), theirs)
  await waitFor("B's new file to reach the node", async () => {
    const s = await B.status()
    return Number(s.pendingTx) === 0 && Number(s.heldRewrites) === 0
  })
  // B stays away, so nothing B would send later can mend A's copy.
  pb.cut()
  pa.heal()
  await waitFor('A to lose the conflict and push its copy', async () => {
    const s = await A.status()
    return s.connected === true && Number(s.conflictsLost) === 1 && Number(s.pendingTx) === 0
  }, 20_000)
  await sleep(300)
  const tree = await snapshot(A.mountpoint)
  const copies = conflictCopiesOf(tree, 'reborn.txt')
  t.equal(copies.length, 1, 'A kept its version as one conflict copy')
  t.equal(copies[0] && tree[copies[0].path]?.sha256, sha(mine), "the copy holds A's version")
  t.equal(tree['reborn.txt']?.sha256, sha(theirs), "reborn.txt on A holds B's version exactly", { size: tree['reborn.txt']?.size, expected: theirs.length })

  pb.heal()
  const final = await settleOrFail(t, [A, B])
  if (!final) return
  t.equal(final['reborn.txt']?.sha256, sha(theirs), "reborn.txt holds B's version on every mount")
})

t.test('a remote rename onto an edited file, the loser killed before the apply was recorded: one copy, the edits that followed the rename kept', async t => {
  // B edits both ends of a rename A makes meanwhile. Applying it, B keeps its
  // version of the target as a conflict copy and lets its edit of the source
  // follow the file to its new name; then B dies before the apply is
  // recorded, and applies the rename again after its restart. That second
  // pass found the followed edit pending on the target and took it for a
  // second conflict of the same change: the copy (same name, since the same
  // change) was overwritten with the followed file, sent as a Create that
  // does not truncate, and the edit dropped. The copy then differed between
  // mounts, and B's edit of the source was nowhere but in it.
  const { c, A, pb, a, b } = await twoBehindProxies(t)
  await writeSynced(a('onto.txt'), 'the target, long before anything happened\n'.repeat(40))
  await writeSynced(a('moving.txt'), 'the source\n'.repeat(20))
  await settle(c.mounts)

  pb.cut()
  const bOnto = 'B rewrote the target, longer than the source will ever be\n'.repeat(60)
  await writeSynced(b('onto.txt'), bOnto)
  const bMoving = await patchSynced(b('moving.txt'), Buffer.from('B was here'), 30)
  await fsp.rename(a('moving.txt'), a('onto.txt'))
  await waitFor("A's rename to reach the node", async () => Number((await A.status()).pendingTx) === 0)

  // B comes back armed to die right after its first remote apply (the rename).
  await reconnectDyingAt(c, 1, pb, 'apply.after-data')

  const tree = await settleOrFail(t, c.mounts)
  if (!tree) return
  const known: Record<string, string> = { "B's target": sha(bOnto), "B's source edit": sha(bMoving), "A's source": sha('the source\n'.repeat(20)) }
  t.comment(`final tree:\n${describe(tree, known)}`)
  t.equal(tree['onto.txt']?.sha256, sha(bMoving), "onto.txt holds the moved file with B's edit, which followed it")
  const copies = conflictCopiesOf(tree, 'onto.txt')
  t.equal(copies.length, 1, 'one conflict copy of onto.txt')
  t.equal(copies[0] && tree[copies[0].path]?.sha256, sha(bOnto), "it holds B's version of the target", { tree: describe(tree, known) })
})

t.test('the loser killed right after dropping its losing change still gets the winner whole', async t => {
  // B's in-place edit loses to A's. B keeps its version as a copy, drops its
  // edit and asks A for the whole file, since A's change is a delta of a
  // version B no longer has once its copy is taken. Killed between the drop
  // and that request, B applied A's change again after its restart, on top
  // of its own version (no pending change left: no conflict), and nothing
  // ever replaced that mix.
  const { c, A, pb, a, b } = await twoBehindProxies(t)
  await writeSynced(a('edited.txt'), 'a line both will edit somewhere\n'.repeat(100))
  await settle(c.mounts)

  pb.cut()
  const mine = await patchSynced(b('edited.txt'), Buffer.from('B edited the end'), 3000)
  const theirs = await patchSynced(a('edited.txt'), Buffer.from('A edited the start'), 10)
  await waitFor("A's edit to reach the node", async () => Number((await A.status()).pendingTx) === 0)

  await reconnectDyingAt(c, 1, pb, 'conflict.after-drop')

  const tree = await settleOrFail(t, c.mounts)
  if (!tree) return
  const known: Record<string, string> = { "A's edit": sha(theirs), "B's edit": sha(mine) }
  t.equal(tree['edited.txt']?.sha256, sha(theirs), "edited.txt holds A's version on every mount", { tree: describe(tree, known) })
  const copies = conflictCopiesOf(tree, 'edited.txt')
  t.equal(copies.length, 1, 'one conflict copy')
  t.equal(copies[0] && tree[copies[0].path]?.sha256, sha(mine), "it holds B's version", { tree: describe(tree, known) })
})

/**
 * A hard link made on A while it is away, raced by B: both mounts start
 * with `files`; A runs `onA` offline, B runs `onB`, which the node orders
 * first; then A comes back. Resolves with the converged trees of A and B.
 */
async function offlineLinkRace (t: Test, files: Record<string, string>, onA: (a: (f: string) => string) => Promise<void>, onB: (b: (f: string) => string) => Promise<unknown>): Promise<Array<[string, Tree]> | undefined> {
  const { c, A, pa, a, b } = await twoBehindProxies(t)
  const B = c.mounts[1]!
  for (const [name, content] of Object.entries(files)) await writeSynced(a(name), content)
  await settle([A, B])
  pa.cut()
  await onA(a)
  await onB(b)
  await waitFor("B's change to reach the node", async () => {
    const s = await B.status()
    return Number(s.pendingTx) === 0 && Number(s.heldRewrites) === 0
  })
  pa.heal()
  if (!await settleOrFail(t, [A, B])) return undefined
  return [['A', await snapshot(A.mountpoint)], ['B', await snapshot(B.mountpoint)]]
}

/** On each mount: x.txt keeps its content, and B's version of y.txt is somewhere. */
function checkBothKept (t: Test, trees: Array<[string, Tree]>, x: string, y: string | Buffer, what: string): void {
  for (const [name, tree] of trees) {
    t.equal(tree['x.txt']?.sha256, sha(x), `x.txt keeps its content on ${name}`)
    const holders = Object.entries(tree).filter(([, e]) => e.sha256 === sha(y)).map(([p]) => p)
    t.ok(holders.length >= 1, `${what} is kept on ${name} (${holders.join(', ')})`)
  }
}

t.test('an offline hard link raced by a new file at its name on another mount: neither content is lost', async t => {
  // A links x.txt to y.txt while away; B meanwhile creates y.txt, which the
  // node orders first. Applied on A as it was, B's Create truncated y.txt in
  // place: the inode A's x.txt shares, so A's x.txt took B's bytes.
  const x = 'x.txt, the file A links\n'.repeat(40)
  const y = 'B made y.txt while A was away\n'.repeat(10)
  const trees = await offlineLinkRace(t, { 'x.txt': x },
    a => fsp.link(a('x.txt'), a('y.txt')),
    b => writeSynced(b('y.txt'), y))
  if (trees) checkBothKept(t, trees, x, y, "B's y.txt")
})

t.test('an offline delete and hard link over a file another mount edits: neither content is lost', async t => {
  // A deletes y.txt and links x.txt there while away; B edits y.txt in
  // place, which the node orders first. A loses the conflict over y.txt:
  // whatever it does with y.txt must not reach x.txt through the link.
  const x = 'x.txt, the file A links\n'.repeat(40)
  let y: Buffer = Buffer.alloc(0)
  const trees = await offlineLinkRace(t, { 'x.txt': x, 'y.txt': 'y.txt as both had it\n'.repeat(30) },
    async a => { await fsp.unlink(a('y.txt')); await fsp.link(a('x.txt'), a('y.txt')) },
    async b => { y = await patchSynced(b('y.txt'), Buffer.from('B EDITED THIS'), 40) })
  if (trees) checkBothKept(t, trees, x, y, "B's edit of y.txt")
})

t.test('an offline hard link of a file another mount deletes: the linked name is kept everywhere', async t => {
  // A links x.txt to y.txt while away; B deletes x.txt, which the node
  // orders first. The link then reaches B with nothing to link from.
  const x = 'x.txt, the file A links and B deletes\n'.repeat(40)
  const trees = await offlineLinkRace(t, { 'x.txt': x },
    a => fsp.link(a('x.txt'), a('y.txt')),
    b => fsp.unlink(b('x.txt')))
  for (const [name, tree] of trees ?? []) {
    t.equal(tree['y.txt']?.sha256, sha(x), `y.txt holds the linked content on ${name}`)
    t.equal(tree['x.txt'], undefined, `x.txt is gone on ${name}`)
  }
})

t.test('two names of one file edited on two mounts while one is away: each edit is kept whole, and the mounts agree', async t => {
  // x.txt and y.txt are one file on both mounts. A writes through x.txt
  // while away; B writes the same bytes through y.txt, which the node
  // orders first. Journaled under the name written alone, the two edits
  // were not a conflict (two names): each mount applied the other's over
  // its own, so A ended with B's bytes and B with A's, and A's edit was
  // nowhere on A.
  const { c, A, pa, a, b } = await twoBehindProxies(t)
  const B = c.mounts[1]!
  await writeSynced(a('x.txt'), 'x.txt and y.txt are one file\n'.repeat(40))
  await fsp.link(a('x.txt'), a('y.txt'))
  await settle([A, B])
  t.equal(fs.statSync(b('y.txt')).ino, fs.statSync(b('x.txt')).ino, 'B has the two names as one file')
  pa.cut()
  const mine = await patchSynced(a('x.txt'), Buffer.from('A WROTE THROUGH x.txt'), 100)
  const theirs = await patchSynced(b('y.txt'), Buffer.from('B WROTE THROUGH y.txt'), 100)
  await waitFor("B's edit to reach the node", async () => Number((await B.status()).pendingTx) === 0)
  pa.heal()
  const tree = await settleOrFail(t, [A, B])
  if (!tree) return
  const known: Record<string, string> = { "A's edit": sha(mine), "B's edit": sha(theirs) }
  t.equal(tree['x.txt']?.sha256, sha(theirs), "x.txt holds B's edit, the first, on every mount", { tree: describe(tree, known) })
  t.equal(tree['y.txt']?.sha256, sha(theirs), "y.txt holds B's edit on every mount", { tree: describe(tree, known) })
  t.ok(allConflictCopies(tree).some(p => tree[p]?.sha256 === sha(mine)), "A's edit is kept whole as a conflict copy", { tree: describe(tree, known) })
})

t.test('a linked file edited while away, and one of its names replaced on another mount: the other name keeps the edit everywhere', async t => {
  // x.txt and y.txt are one file on both mounts. A writes through x.txt
  // while away; B saves a new x.txt over the old one (write a temp file,
  // rename it over), which the node orders first. A loses x.txt, keeping
  // its version as a conflict copy; y.txt is still A's edited file on A,
  // and A's edit of it must reach B too (B's save never touched y.txt).
  // Both also edit z.txt, A first: A's edit of z.txt, refused, holds back
  // the rest of A's outbox until A has applied B's changes, so that A
  // meets B's save with its edit of y.txt still unsent.
  const { c, A, pa, a, b } = await twoBehindProxies(t)
  const B = c.mounts[1]!
  await writeSynced(a('x.txt'), 'x.txt and y.txt are one file\n'.repeat(40))
  await fsp.link(a('x.txt'), a('y.txt'))
  await writeSynced(a('z.txt'), 'z.txt, edited on both\n'.repeat(40))
  await settle([A, B])
  pa.cut()
  await patchSynced(b('z.txt'), Buffer.from('B EDITED z.txt'), 10)
  await patchSynced(a('z.txt'), Buffer.from('A EDITED z.txt'), 10)
  const mine = await patchSynced(a('x.txt'), Buffer.from('A WROTE THROUGH x.txt'), 100)
  const saved = 'B saved a new x.txt over the old one\n'.repeat(5)
  await writeSynced(b('x.txt.tmp'), saved)
  await fsp.rename(b('x.txt.tmp'), b('x.txt'))
  await waitFor("B's save to reach the node", async () => {
    const s = await B.status()
    return Number(s.pendingTx) === 0 && Number(s.heldRewrites) === 0
  })
  pa.heal()
  const tree = await settleOrFail(t, [A, B], 20_000)
  if (!tree) return
  const known: Record<string, string> = { "A's edit": sha(mine), "B's save": sha(saved) }
  t.equal(tree['x.txt']?.sha256, sha(saved), "x.txt is B's save on every mount", { tree: describe(tree, known) })
  t.equal(tree['y.txt']?.sha256, sha(mine), "y.txt has A's edit on every mount", { tree: describe(tree, known) })
})

t.test('an offline delete and hard link over a name another mount deletes, then a write through the link: the link is kept everywhere', async t => {
  // A deletes b.txt, links y.txt there and writes through y.txt while
  // away; B deletes b.txt too, which the node orders first. B's delete
  // meets A's changes of b.txt as a conflict (a delete against a write):
  // A keeps its version as a copy, and the link, which the node takes
  // after B's delete, must stay on A as it is made on B.
  const y = 'y.txt, which A links to b.txt\n'.repeat(30)
  let edited: Buffer = Buffer.alloc(0)
  const trees = await offlineLinkRace(t, { 'y.txt': y, 'b.txt': 'the old b.txt\n'.repeat(20) },
    async a => { await fsp.unlink(a('b.txt')); await fsp.link(a('y.txt'), a('b.txt')); edited = await patchSynced(a('y.txt'), Buffer.from('A WROTE THROUGH y.txt'), 30) },
    b => fsp.unlink(b('b.txt')))
  for (const [name, tree] of trees ?? []) {
    t.equal(tree['b.txt']?.sha256, sha(edited), `b.txt is the linked file, with A's write, on ${name}`)
    t.equal(tree['y.txt']?.sha256, sha(edited), `y.txt has A's write on ${name}`)
  }
})

t.test('an offline delete of a name another mount links a file to: the name is gone everywhere', async t => {
  // A deletes c.txt while away; B deletes it too and links x.txt there,
  // which the node orders first. A's delete, ordered after B's link,
  // removes the link on the others; A must not make it.
  const x = 'x.txt, which B links to c.txt\n'.repeat(30)
  const trees = await offlineLinkRace(t, { 'x.txt': x, 'c.txt': 'the old c.txt\n'.repeat(20) },
    a => fsp.unlink(a('c.txt')),
    async b => { await fsp.unlink(b('c.txt')); await fsp.link(b('x.txt'), b('c.txt')) })
  for (const [name, tree] of trees ?? []) {
    t.equal(tree['c.txt'], undefined, `c.txt is gone on ${name}`)
    t.equal(tree['x.txt']?.sha256, sha(x), `x.txt keeps its content on ${name}`)
  }
})

t.test('an offline delete or rename of a file another mount renames over a name: the old file at that name is gone everywhere', async t => {
  // While A is away it deletes x.txt and renames y.txt to z.txt; B renames
  // x.txt over c.txt and y.txt over d.txt, which the node orders first. A's
  // changes follow B's renames (to c.txt and d.txt) on the others; on A the
  // old c.txt and d.txt must go too, as B's renames put them out of the tree.
  const y = 'y.txt, which A renames to z.txt\n'.repeat(25)
  const trees = await offlineLinkRace(t, { 'x.txt': 'x.txt, which A deletes\n'.repeat(25), 'y.txt': y, 'c.txt': 'the old c.txt\n'.repeat(20), 'd.txt': 'the old d.txt\n'.repeat(20) },
    async a => { await fsp.unlink(a('x.txt')); await fsp.rename(a('y.txt'), a('z.txt')) },
    async b => { await fsp.rename(b('x.txt'), b('c.txt')); await fsp.rename(b('y.txt'), b('d.txt')) })
  for (const [name, tree] of trees ?? []) {
    t.same(Object.keys(tree).sort(), ['z.txt'], `only z.txt is left on ${name}`)
    t.equal(tree['z.txt']?.sha256, sha(y), `z.txt has y.txt's content on ${name}`)
  }
})

t.test('an offline delete of a file another mount edits and then renames over a name: the edit comes back at that name everywhere', async t => {
  // B deletes x.txt while away; A appends to it and renames it over c.txt.
  // B's delete loses to A's edit (the file comes back, sent whole), but A's
  // rename reaches B before that, with x.txt not there: B must not keep its
  // old c.txt, which the rename put out of the tree everywhere else. Here
  // B's request for x.txt whole is still unsent when the rename arrives, so
  // it follows the rename and asks for c.txt; where it went out first (seed
  // 714660), the rename asks for c.txt itself (applier-posix test).
  const { c, A, pb, a, b } = await twoBehindProxies(t)
  t.teardown(() => { if (!t.passing()) t.comment(c.logs()) })
  const B = c.mounts[1]!
  const x = 'x.txt, which B deletes\n'.repeat(30)
  await writeSynced(a('x.txt'), x)
  await writeSynced(a('c.txt'), 'the old c.txt\n'.repeat(20))
  await settle([A, B])
  pb.cut()
  await fsp.unlink(b('x.txt'))
  await appendSynced(a('x.txt'), 'and A appends\n')
  await fsp.rename(a('x.txt'), a('c.txt'))
  await waitFor("A's changes to reach the node", async () => Number((await A.status()).pendingTx) === 0)
  pb.heal()
  const tree = await settleOrFail(t, [A, B])
  if (!tree) return
  t.equal(tree['c.txt']?.sha256, sha(x + 'and A appends\n'), "c.txt is A's edited x.txt", { tree: Object.keys(tree) })
  t.equal(tree['x.txt'], undefined, 'x.txt is gone')
})
