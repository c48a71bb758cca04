// Issue 4, scenario 4: a seeded convergence harness. Three mounts take random
// file operations (write, overwrite in place, append, truncate, rename,
// unlink, create, and hard link when asked (see LINKS), on ten paths in
// three directories, each change fsynced)
// while the harness cuts single mounts off the network, stops or SIGKILLs and
// restarts mounts, and stops or SIGKILLs and restarts the storage node. The
// operations come from this process, one at a time, against the mount points
// of running mounts only (the mounts are separate processes). A final burst
// writes the same paths on every mount while all are cut off. Then everything
// reconnects and, once quiet:
//  (a) the three trees are byte-identical (conflict copies included);
//  (b) no fsynced write was silently dropped, by this rule: after an op on
//      mount m that produces content X at path p (write, create, overwrite,
//      append; every write carries a unique tag, so X is unique), the harness
//      reads p back from m. If it reads X, m's view had not changed under it
//      and (m, p, X) is recorded; if not, m learned of another change during
//      the op and nothing is recorded. A record is dropped when any later op
//      (in issue order, on any mount, including m) touches p as its path,
//      rename source or rename target, since that op may legitimately
//      replace X. Every record left must have X somewhere in every mount's
//      final tree: at p, as a conflict copy, or wherever a rename carried it
//      (checked even when (a) failed, to show who lost what). Ops issued
//      earlier on other mounts that m had not seen yet (offline, cut off) do
//      not drop the record: under "first writer wins, nobody loses" X
//      survives them. But a rename p -> q issued earlier on another mount
//      that m had not applied yet carries X along (a change follows a
//      remotely renamed file to its new name, whichever the node ordered
//      first), so the record also watches q (and on through later such
//      renames of q) and is dropped by later ops on those names too.
//      A hard link makes two names one file: an op on either changes both,
//      so from then on an op on one counts as touching every name ever
//      linked with it (more than the truth, which only drops more records).
//      In the final burst, a mount's write through one name of a file
//      replaces its own earlier burst write through another.
//      Truncations are not recorded (their result is not
//      unique) but do drop records. The final burst's writes are concurrent
//      by construction, so they drop only older records, not each other's.
// Reproduce with DELTAFS_CONVERGENCE_SEED; DELTAFS_CONVERGENCE_STEPS sets the
// length (the default keeps a CI run well under two minutes; a soak uses
// thousands).
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { Cluster } from '../helpers/cluster.js'
import { type MountHandle, sleep, startMount } from '../helpers/processes.js'
import { type Rand, pick, prng, seedFrom } from '../helpers/prng.js'
import { allConflictCopies, settle } from '../helpers/settle.js'
import { snapshot } from '../helpers/tree.js'

const seed = seedFrom('DELTAFS_CONVERGENCE_SEED')
const STEPS = Number(process.env.DELTAFS_CONVERGENCE_STEPS ?? 150)
const PATHS = ['f0.txt', 'f1.bin', 'd0/a.txt', 'd0/b.txt', 'd0/c.bin', 'd1/a.txt', 'd1/b.txt', 'd1/c.bin', 'd1/e/x.txt', 'd1/e/y.txt']
const DIRS = ['d0', 'd1', 'd1/e']

// Hard links only with DELTAFS_CONVERGENCE_LINKS=1 (and in `npm run soak`).
// Files are identified by path on the wire, so which names share a file is
// not replicated as such, and a link racing other changes of the same names
// can leave mounts with different links for a while. What keeps them equal
// in content: a change of a linked file goes under each of its names, with
// the list of them and the seq its author had seen (Transaction.also_at and
// also_base), and a receiver keeps it to those names; unsent links are
// replayed over remote changes (LinkRebase). The races found so far are
// fixed, each with a test (applier-posix, link-rebase, whole-file,
// offline-edits). Runs of 300 steps with links when this was written: 22
// of 22 passed; 3 of 12 had failed before changes went under every name.
const LINKS = process.env.DELTAFS_CONVERGENCE_LINKS === '1'

t.comment(`seed ${seed}, ${STEPS} steps${LINKS ? ', hard links' : ''} (DELTAFS_CONVERGENCE_SEED=${seed} DELTAFS_CONVERGENCE_STEPS=${STEPS}${LINKS ? ' DELTAFS_CONVERGENCE_LINKS=1' : ''} to reproduce)`)

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

async function readOrNull (file: string): Promise<Buffer | null> {
  try { return await fsp.readFile(file) } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
}

/**
 * Unique, mostly small, sometimes large content; repetitive so deltas have
 * something to match. Now and then larger than one frame (3 MiB of ops), so
 * that it goes in parts, which receivers stage (Applier.stagePlan) while the
 * others' changes race them.
 */
function content (rand: Rand, tag: string): Buffer {
  const r = rand()
  const size = r < 0.04 ? 3_200_000 + Math.floor(rand() * 1_300_000) : r < 0.14 ? Math.floor(rand() * 200_000) : Math.floor(rand() * 8000)
  const line = `${tag} ${'abcdefghijklmnopqrstuvwxyz'.slice(0, 1 + Math.floor(rand() * 26))}\n`
  return Buffer.from(`${tag}\n${line.repeat(Math.ceil(size / line.length))}`.slice(0, Math.max(size, tag.length + 1)))
}

type OpName = 'write' | 'overwrite' | 'append' | 'truncate' | 'rename' | 'unlink' | 'create' | 'link'
const OPS: OpName[] = ['write', 'write', 'overwrite', 'overwrite', 'append', 'append', 'truncate', 'rename', 'unlink', 'create', ...(LINKS ? ['link' as const] : [])]
/** Ops that take a second path. */
const TWO_PATHS = new Set<OpName>(['rename', 'link'])

interface WriteRecord {
  mount: number; path: string; step: number; op: OpName; hash: string; size: number
  /** Where X may be when later ops come: path, and where earlier renames on other mounts may carry it. */
  places: string[]
}

interface Outcome { touched: string[]; expected?: Buffer; error?: string }

/** Runs one op on mount point mp; returns the paths it touched and the content it should have left at path. */
async function runOp (mp: string, op: OpName, p: string, q: string, rand: Rand, tag: string): Promise<Outcome> {
  const file = path.join(mp, p)
  const sync = async (fh: fsp.FileHandle) => { try { await fh.sync() } finally { await fh.close() } }
  try {
    switch (op) {
      case 'write': {
        const data = content(rand, tag)
        const fh = await fsp.open(file, 'w', 0o644)
        await fh.writeFile(data).catch(async err => { await fh.close(); throw err })
        await sync(fh)
        return { touched: [p], expected: data }
      }
      case 'create': {
        const data = content(rand, tag)
        const fh = await fsp.open(file, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o644)
        await fh.writeFile(data).catch(async err => { await fh.close(); throw err })
        await sync(fh)
        return { touched: [p], expected: data }
      }
      case 'overwrite':
      case 'append': {
        const pre = await readOrNull(file)
        if (pre === null) return { touched: [], error: 'ENOENT' }
        const data = Buffer.from(`<${tag}>`)
        const off = op === 'append' ? pre.length : Math.floor(rand() * (pre.length + 1))
        const fh = await fsp.open(file, 'r+')
        try { await fh.write(data, 0, data.length, off) } catch (err) { await fh.close(); throw err }
        await sync(fh)
        const expected = Buffer.alloc(Math.max(pre.length, off + data.length))
        pre.copy(expected)
        data.copy(expected, off)
        return { touched: [p], expected }
      }
      case 'truncate': {
        const st = await fsp.stat(file)
        const size = rand() < 0.8 ? Math.floor(rand() * (st.size + 1)) : st.size + Math.floor(rand() * 5000)
        const fh = await fsp.open(file, 'r+')
        try { await fh.truncate(size) } catch (err) { await fh.close(); throw err }
        await sync(fh)
        return { touched: [p] }
      }
      case 'rename': {
        await fsp.rename(file, path.join(mp, q))
        const fh = await fsp.open(path.join(mp, q), 'r').catch(() => undefined)
        if (fh) await sync(fh).catch(() => undefined)
        return { touched: [p, q] }
      }
      case 'unlink':
        await fsp.unlink(file)
        return { touched: [p] }
      case 'link': {
        await fsp.link(file, path.join(mp, q))
        const fh = await fsp.open(path.join(mp, q), 'r').catch(() => undefined)
        if (fh) await sync(fh).catch(() => undefined)
        return { touched: [p, q] }
      }
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err)
    // The op may have changed something before it failed: count it as touching.
    return { touched: TWO_PATHS.has(op) ? [p, q] : [p], error: code }
  }
}

/**
 * Files whose content read through a mount differs from the mount's backing
 * file: the kernel kept pages that a remote apply replaced (cache coherence),
 * as opposed to the backing files themselves differing.
 */
async function staleViews (mounts: MountHandle[]): Promise<string[]> {
  const out: string[] = []
  for (const m of mounts) {
    const backing = path.join(m.dataDir, 'vol', 'files')
    for (const [p, e] of Object.entries(await snapshot(backing))) {
      if (e.type !== 'file') continue
      const viaMount = await readOrNull(path.join(m.mountpoint, p)).catch(err => Buffer.from(String(err)))
      const h = viaMount === null ? 'missing' : sha(viaMount)
      if (h !== e.sha256) out.push(`${m.mountpoint}: ${p} reads ${h.slice(0, 12)} through the mount but ${e.sha256!.slice(0, 12)} in its backing file`)
    }
  }
  return out
}

t.test('random ops, disconnects and restarts converge and lose nothing', async t => {
  const { c, proxies } = await Cluster.startBehindProxies(t, 3)
  const started = Date.now()
  const rand = prng(seed)
  const names = ['A', 'B', 'C']
  const running = [true, true, true]
  const downUntil = [0, 0, 0]
  const cutUntil = [0, 0, 0]
  let nodeUp = true
  let nodeDownUntil = 0
  const events: string[] = []
  const records = new Map<string, WriteRecord>() // by `${mount} ${path}`
  const renames: Array<{ mount: number; from: string; to: string }> = [] // in issue order
  /** Per name, every name it was ever one file with (hard links, and renames, which carry links along). */
  const linked = new Map<string, Set<string>>(PATHS.map(p => [p, new Set([p])]))
  const join = (p: string, q: string) => {
    const all = new Set([...linked.get(p)!, ...linked.get(q)!])
    for (const x of all) linked.set(x, all)
  }
  /** Records a burst write replaced on its own mount (a name linked there to one written before). */
  const superseded = new Set<string>()
  /**
   * Burst writes that read back something else: the cut stops the network,
   * not the applying of changes the mount had received just before it, so
   * one of those can still land on the path. By the rule above, nothing is
   * recorded then.
   */
  const racedBurst = new Set<string>()
  const dropRecords = (touched: string[], onlyMount?: number) => {
    const paths = touched.flatMap(p => [...linked.get(p) ?? [p]])
    for (const [k, rec] of records) {
      if (onlyMount !== undefined && rec.mount !== onlyMount) continue
      if (rec.places.some(x => paths.includes(x))) {
        records.delete(k)
        if (onlyMount !== undefined) superseded.add(k)
      }
    }
  }
  /** p, and the names that earlier renames by other mounts (perhaps not yet applied on mount) may move it to. */
  const placesOf = (mount: number, p: string): string[] => {
    const places = [p]
    for (const r of renames) if (r.mount !== mount && places.includes(r.from) && !places.includes(r.to)) places.push(r.to)
    return places
  }
  const errors = new Map<string, number>()
  const unexpected: string[] = []
  let raced = 0
  let ops = 0
  const opLog: string[] = []

  for (const d of DIRS) await fsp.mkdir(path.join(c.mounts[0]!.mountpoint, d), { recursive: true })
  await settle(c.mounts)

  const event = (step: number, what: string) => { events.push(`step ${step}: ${what}`) }
  const startMountAgain = async (i: number, step: number) => {
    const old = c.mounts[i]!
    c.mounts[i] = await startMount('vol', old.mountpoint, old.dataDir, proxies[i]!.address)
    running[i] = true
    event(step, `${names[i]!} restarted`)
  }
  const startNodeAgain = async (step: number) => {
    await c.startNode()
    nodeUp = true
    event(step, 'node restarted')
  }

  const doOp = async (step: number, i: number, op: OpName, p: string, q: string, tag: string, invalidate = true) => {
    const mp = c.mounts[i]!.mountpoint
    const t0 = Date.now()
    const out = await runOp(mp, op, p, q, rand, tag)
    ops++
    opLog.push(`step ${step} ${new Date(t0).toISOString()} ${names[i]!} ${op} ${p}${TWO_PATHS.has(op) ? ` -> ${q}` : ''} ${tag}${out.error ? ` failed ${out.error}` : ''}${out.expected ? ` -> ${out.expected.length} bytes ${sha(out.expected).slice(0, 12)}` : ''}`)
    // Even a failed link may have linked (a remote change raced it): one file from now on.
    if (op === 'link' || (op === 'rename' && !out.error)) join(p, q)
    // A burst write is concurrent with the other mounts' but comes after its own mount's.
    dropRecords(out.touched, invalidate ? undefined : i)
    if (op === 'rename' && !out.error) renames.push({ mount: i, from: p, to: q })
    if (out.error) {
      errors.set(`${op} ${out.error}`, (errors.get(`${op} ${out.error}`) ?? 0) + 1)
      // Files come and go under concurrent ops, directories never do: a write
      // or create that finds no directory is a bug.
      const expected = op === 'write' || op === 'create' ? ['EEXIST'] : ['ENOENT', 'EEXIST']
      if (!expected.includes(out.error)) unexpected.push(`step ${step}: ${names[i]!} ${op} ${p}${TWO_PATHS.has(op) ? ` -> ${q}` : ''}: ${out.error}`)
      return
    }
    if (!out.expected) return
    const back = await readOrNull(path.join(mp, p))
    if (back !== null && back.equals(out.expected)) {
      opLog[opLog.length - 1] += ' (recorded)'
      records.set(`${i} ${p}`, { mount: i, path: p, step, op, hash: sha(out.expected), size: out.expected.length, places: placesOf(i, p) })
    } else {
      raced++
      if (!invalidate) racedBurst.add(`${i} ${p}`)
      opLog[opLog.length - 1] += ` (raced: read back ${back === null ? 'nothing' : `${back.length} bytes ${sha(back).slice(0, 12)}`})`
    }
  }

  for (let step = 0; step < STEPS; step++) {
    // Bring back what is due.
    for (let i = 0; i < 3; i++) {
      if (!running[i] && step >= downUntil[i]!) await startMountAgain(i, step)
      if (proxies[i]!.isCut && step >= cutUntil[i]!) { proxies[i]!.heal(); event(step, `${names[i]!} reconnected`) }
    }
    if (!nodeUp && step >= nodeDownUntil) await startNodeAgain(step)

    const r = rand()
    if (r < 0.04) {
      const i = Math.floor(rand() * 3)
      if (!proxies[i]!.isCut) {
        proxies[i]!.cut()
        cutUntil[i] = step + 1 + Math.floor(rand() * 25)
        event(step, `${names[i]!} cut off until step ${cutUntil[i]!}`)
      }
    } else if (r < 0.07) {
      const i = Math.floor(rand() * 3)
      if (running[i] && running.filter(Boolean).length > 1) {
        const kill = rand() < 0.4
        if (kill) await c.mounts[i]!.kill()
        else await c.mounts[i]!.stop()
        running[i] = false
        downUntil[i] = step + Math.floor(rand() * 10)
        event(step, `${names[i]!} ${kill ? 'SIGKILLed' : 'stopped'}, down until step ${downUntil[i]!}`)
        if (downUntil[i] === step) await startMountAgain(i, step)
      }
    } else if (r < 0.09 && nodeUp) {
      const kill = rand() < 0.5
      if (kill) await c.node!.kill()
      else await c.node!.stop()
      nodeUp = false
      nodeDownUntil = step + Math.floor(rand() * 15)
      event(step, `node ${kill ? 'SIGKILLed' : 'stopped'}, down until step ${nodeDownUntil}`)
    }

    const live = [0, 1, 2].filter(i => running[i])
    const i = pick(rand, live)
    const op = pick(rand, OPS)
    const p = pick(rand, PATHS)
    const q = pick(rand, PATHS.filter(x => x !== p))
    await doOp(step, i, op, p, q, `${names[i]!}${step}-${Math.floor(rand() * 1e9).toString(36)}`)
    if (rand() < 0.3) await sleep(rand() * 40)
  }

  // Every mount up and cut off, then the same paths written everywhere: concurrent for sure.
  for (let i = 0; i < 3; i++) if (!running[i]) await startMountAgain(i, STEPS)
  if (!nodeUp) await startNodeAgain(STEPS)
  for (const proxy of proxies) proxy.cut()
  const burst = [PATHS[0]!, PATHS[3]!, PATHS[8]!]
  // Later than everything before, but concurrent with each other: they drop older records only.
  dropRecords(burst)
  for (const p of burst) for (let i = 0; i < 3; i++) await doOp(STEPS, i, 'write', p, p, `${names[i]!}burst-${Math.floor(rand() * 1e9).toString(36)}`, false)
  for (const proxy of proxies) proxy.heal()
  event(STEPS, 'final burst written on cut-off mounts; all reconnected')
  const busy = Date.now() - started

  let converged = true
  try {
    await settle(c.mounts, 45_000)
  } catch (err) {
    converged = false
    t.fail(`(a) the trees did not converge: ${(err as Error).message}`, { events, stale: await staleViews(c.mounts), ops: opLog })
  }
  const trees = await Promise.all(c.mounts.map(m => snapshot(m.mountpoint)))
  if (converged) {
    t.pass(`(a) the three trees are byte-identical: ${Object.keys(trees[0]!).length} entries, ${allConflictCopies(trees[0]!).length} conflict copies`)
  }
  t.comment(`${ops} ops in ${busy} ms, then ${converged ? 'converged' : 'gave up'} after ${Date.now() - started - busy} ms; ${records.size} writes to check, ${raced} raced a remote change, errors ${JSON.stringify(Object.fromEntries(errors))}`)
  t.comment(`events:\n${events.join('\n')}`)

  // Checked on every mount, so that a failure to converge still shows who lost what.
  const lost: string[] = []
  for (const rec of records.values()) {
    const missing = trees.map((tr, k) => Object.values(tr).some(e => e.sha256 === rec.hash) ? '' : names[k]!).filter(Boolean)
    if (missing.length > 0) lost.push(`${names[rec.mount]!}'s ${rec.op} of ${rec.path} at step ${rec.step} (${rec.size} bytes, sha256 ${rec.hash.slice(0, 12)}) is missing on ${missing.join(', ')}`)
  }
  t.same(lost, [], `(b) each of the ${records.size} last fsynced writes is on every mount`, { events, ops: opLog })
  t.ok(burst.every(p => [0, 1, 2].every(i => records.has(`${i} ${p}`) || superseded.has(`${i} ${p}`) || racedBurst.has(`${i} ${p}`))),
    `the final burst left three concurrent writes per path to check (but those its own mount wrote over through a hard link, and ${racedBurst.size} that raced a change received before the cut)`)
  t.same(unexpected, [], 'no op failed other than by a concurrent create or delete (writes and creates never ENOENT)')
  for (const [i, m] of c.mounts.entries()) {
    const s = await m.status()
    t.comment(`${names[i]!}: txRefused ${String(s.txRefused)}, conflictsLost ${String(s.conflictsLost)}, healsRequested ${String(s.healsRequested)}`)
  }
})
