// A hard link made here and not yet sent, and a remote change of one of its
// names that the node ordered first: this mount must end as the others do,
// who apply the remote change and then the link. Each case runs both sides
// on real directories through Applier and compares names, contents and which
// names share a file.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import t, { type Test } from 'tap'
import type { Op, Transaction } from '../../src/codec/wire.js'
import { Applier, BaseMismatch } from '../../src/sync/applier.js'
import { LinkRebase, type PendingLink, type PendingLinks } from '../../src/sync/link-rebase.js'
import type { PendingTx } from '../../src/journal/journal.js'
import { detachName } from '../../src/fs/detach.js'
import { tempDir } from '../helpers/processes.js'

let seq = 0
function tx (p: string, ops: Op[]): Transaction {
  return { txId: { deviceId: 'other', deviceSeq: ++seq }, volume: 'v', fileId: '', baseVersion: 0, path: p, ops, mtimeNs: 0n }
}
const write = (data: string): Op => ({ write: { offset: 0, data: Buffer.from(data) } })

/** Names, contents, and the groups of names that are one file. */
async function tree (root: string): Promise<{ files: Record<string, string>; linked: string[][] }> {
  const files: Record<string, string> = {}
  const byIno = new Map<number, string[]>()
  for (const name of (await fsp.readdir(root)).sort()) {
    const st = await fsp.lstat(path.join(root, name))
    files[name] = await fsp.readFile(path.join(root, name), 'utf8')
    byIno.set(st.ino, [...(byIno.get(st.ino) ?? []), name])
  }
  return { files, linked: [...byIno.values()].filter(g => g.length > 1) }
}

interface Side { root: string; applier: Applier }

function side (t: Test, pending?: PendingLinks['list'], outbox?: PendingLinks['outbox']): Side {
  const root = tempDir()
  const temps = tempDir()
  t.teardown(() => { fs.rmSync(root, { recursive: true, force: true }); fs.rmSync(temps, { recursive: true, force: true }) })
  let n = 0
  const tempPath = (): string => path.join(temps, `t${++n}`)
  const asideDir = path.join(temps, 'aside')
  return { root, applier: new Applier(root, { deviceId: 'here', tempPath, onRefresh: async () => {}, ...(pending ? { pendingLinks: { list: pending, asideDir, outbox } } : {}) }) }
}

/**
 * Starts both sides with files {x: 'old', w: 'new'}; here links x to y
 * (unsent) and then writes `later` through y (unsent too, journaled under
 * both names, as CaptureVfs does), then both apply the remote change, and
 * the others the link and the writes.
 */
async function race (t: Test, remote: Transaction[], later: Op[] = []): Promise<void> {
  const pending: PendingLink[] = [{ from: '/x', to: '/y', deviceSeq: 1 }]
  const own = (deviceSeq: number, p: string, ops: Op[], alsoAt: string[] = []): PendingTx => ({ deviceSeq, tx: { ...tx(p, ops), txId: { deviceId: 'here', deviceSeq }, alsoAt }, bytes: 0, subject: p, checked: true })
  const outbox = [own(1, '/x', [{ link: { to: '/y' } }]), ...(later.length > 0 ? [own(2, '/y', later, ['/x']), own(3, '/x', later, ['/y'])] : [])]
  const here = side(t, async () => pending, async after => outbox.filter(p => p.deviceSeq > after))
  const there = side(t)
  for (const s of [here, there]) {
    await fsp.writeFile(path.join(s.root, 'x'), 'old')
    await fsp.writeFile(path.join(s.root, 'w'), 'new')
  }
  await fsp.link(path.join(here.root, 'x'), path.join(here.root, 'y'))
  await applyOps(path.join(here.root, 'y'), later)
  for (const r of remote) {
    for (const s of [here, there]) await s.applier.apply(r).catch(err => { if (!(err instanceof BaseMismatch)) throw err })
  }
  try {
    for (const p of outbox) await there.applier.apply(p.tx)
  } catch (err) {
    // The others ask this mount for the file at the link's name, whole.
    if (!(err instanceof BaseMismatch)) throw err
    // (Gone here too: it answers with nothing.)
    await fsp.copyFile(path.join(here.root, 'y'), path.join(there.root, 'y')).catch(e => { if (e.code !== 'ENOENT') throw e })
  }
  t.same(await tree(here.root), await tree(there.root), 'this mount ends as the others do')
}

async function applyOps (file: string, ops: Op[]): Promise<void> {
  if (ops.length === 0) return
  const fh = await fsp.open(file, 'r+')
  try {
    for (const op of ops) {
      if ('write' in op && op.write) await fh.write(op.write.data, 0, op.write.data.length, op.write.offset)
      if ('truncate' in op && op.truncate) await fh.truncate(op.truncate.size)
    }
  } finally { await fh.close() }
}

// Each: the remote change (both sides apply it), and the writes this mount
// made through the link's name after the link (the others apply them last).
// The last three come from the convergence harness with hard links, seed
// 577030: a write through the link's new name, made here on the old file,
// reached the others after the remote change that replaced the file's
// content, so there it landed on the new content.
const RACES: Array<[string, Transaction[], Op[]?]> = [
  ['a remote deletion of the link\'s name, ordered before the link', [tx('/y', [{ unlink: {} }])]],
  ['a remote file renamed over the link\'s source', [tx('/w', [{ rename: { to: '/x' } }])]],
  ['a remote file made at the link\'s source, over the old one', [tx('/x', [{ create: { mode: 0o644 } }, write('made')])]],
  ['the link\'s source deleted remotely', [tx('/x', [{ unlink: {} }])]],
  ['the link\'s source renamed away remotely', [tx('/x', [{ rename: { to: '/z' } }])]],
  ['a remote file made at the link\'s name', [tx('/y', [{ create: { mode: 0o644 } }, write('theirs')])]],
  ['a remote write into the link\'s source, in place', [tx('/x', [{ write: { offset: 1, data: Buffer.from('!') } }])]],
  ['a remote rename of the link\'s name, then a deletion of its source', [tx('/x', [{ rename: { to: '/y' } }]), tx('/y', [{ unlink: {} }])]],
  ['a write through the link\'s name after the link, and a remote change of the source\'s content ordered first', [tx('/x', [{ truncate: { size: 0 } }, write('the remote content'), { setAttr: { hasMode: true, mode: 0o644 } }])], [{ write: { offset: 4, data: Buffer.from('MINE') } }]],
  ['a write through the link\'s name after the link, and a remote file renamed over its source', [tx('/w', [{ rename: { to: '/x' } }])], [{ truncate: { size: 2 } }, { write: { offset: 1, data: Buffer.from('+') } }]],
  ['a write through the link\'s name after the link, and a remote deletion of that name', [tx('/y', [{ unlink: {} }])], [{ write: { offset: 0, data: Buffer.from('O') } }]],
]

for (const [name, remote, later] of RACES) {
  t.test(name, async t => {
    await race(t, remote, later)
    t.end()
  })
}

// A request for the link's source whole, addressed here and ordered before
// the link: the answer is journaled after the link, so the others link
// first and then take the source whole, which replaces it (a file of its
// own there). Here the answer gives the source a file of its own too
// (detach), and the link must not be made again over it.
t.test('a remote request for the link\'s source whole, answered here after the link', async t => {
  const temps = tempDir()
  t.teardown(() => fs.rmSync(temps, { recursive: true, force: true }))
  let n = 0
  const tempPath = (): string => path.join(temps, `t${++n}`)
  const answers: Transaction[] = []
  const pending: PendingLink[] = [{ from: '/x', to: '/y', deviceSeq: 1 }]
  const hereRoot = tempDir()
  const thereRoot = tempDir()
  t.teardown(() => { fs.rmSync(hereRoot, { recursive: true, force: true }); fs.rmSync(thereRoot, { recursive: true, force: true }) })
  const here = new Applier(hereRoot, {
    deviceId: 'here',
    tempPath,
    // As the mount answers (answerRefresh): the name detached from its other names, then sent whole.
    onRefresh: async p => {
      await detachName(path.join(hereRoot, p), tempPath())
      const content = await fsp.readFile(path.join(hereRoot, p))
      answers.push({ ...tx(p, [{ truncate: { size: 0 } }, { write: { offset: 0, data: content } }]), txId: { deviceId: 'here', deviceSeq: 2 } })
    },
    pendingLinks: { list: async () => pending, asideDir: path.join(temps, 'aside') },
  })
  const there = new Applier(thereRoot, { deviceId: 'there', tempPath, onRefresh: async () => {} })
  for (const root of [hereRoot, thereRoot]) await fsp.writeFile(path.join(root, 'x'), 'old')
  await fsp.link(path.join(hereRoot, 'x'), path.join(hereRoot, 'y'))
  const request = tx('/x', [{ refresh: { deviceId: 'here' } }])
  await here.apply(request)
  t.equal(answers.length, 1, 'the request was answered here')
  await there.apply(request)
  await there.apply({ ...tx('/x', [{ link: { to: '/y' } }]), txId: { deviceId: 'here', deviceSeq: 1 } })
  for (const a of answers) await there.apply(a)
  t.same(await tree(hereRoot), await tree(thereRoot), 'this mount ends as the others do')
})

t.test('a mount killed with a name set aside puts it back when it starts, where the name is still free', async t => {
  const root = tempDir()
  const dir = tempDir()
  t.teardown(() => { fs.rmSync(root, { recursive: true, force: true }); fs.rmSync(dir, { recursive: true, force: true }) })
  await fsp.writeFile(path.join(root, 'x'), 'old')
  await fsp.link(path.join(root, 'x'), path.join(dir, '1'))
  await fsp.writeFile(path.join(dir, '1.json'), JSON.stringify({ to: '/y' }))
  await fsp.writeFile(path.join(root, 'z'), 'theirs')
  await fsp.writeFile(path.join(dir, '2'), 'old')
  await fsp.writeFile(path.join(dir, '2.json'), JSON.stringify({ to: '/z' }))
  await fsp.writeFile(path.join(dir, '3'), 'set aside, not written down: never left the tree')
  await fsp.writeFile(path.join(dir, '4'), 'its note cut short by the kill')
  await fsp.writeFile(path.join(dir, '4.json'), '{"to": "/w')
  t.equal(await LinkRebase.recover(dir, root), 1, 'one name put back')
  t.same(await tree(root), { files: { x: 'old', y: 'old', z: 'theirs' }, linked: [['x', 'y']] }, 'the free name is the link again; the taken one keeps what the change put there')
  t.same(await fsp.readdir(dir), [], 'nothing left aside')
  t.end()
})
