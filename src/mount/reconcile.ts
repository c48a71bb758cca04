// Startup reconciliation: changes made to the backing directory while no
// daemon was watching (an edit while unmounted, a crash between data and
// record) are found by comparing each entry with its record, and journaled
// like any other change, so they reach the other mounts instead of being
// silently overwritten or ignored. Paths that pending transactions touch are
// left alone: those changes are already on their way. So are the paths of a
// remote apply a crash interrupted: it is done again.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import type { BigIntStats } from 'node:fs'
import type { Op } from '../codec/wire.js'
import path from 'node:path'
import type { FileRecord, Journal } from '../journal/journal.js'
import type { TxRecorder } from '../capture/tx-recorder.js'
import type { Logger } from '../util/log.js'
import { eachPendingOp } from './recovery.js'
import { isFuseHidden } from '../fs/fuse-hidden.js'
import { isUserXattr, getXattr, listXattr } from '../fs/xattr.js'
import { nsToNumber } from '../util/times.js'
import { detachName } from '../fs/detach.js'

const CHUNK = 128 << 10

export interface ReconcileResult { created: number; changed: number; removed: number }

async function pendingPaths (journal: Journal): Promise<Set<string>> {
  const paths = new Set<string>()
  await eachPendingOp(journal, async (op, subject) => {
    paths.add(subject)
    if ('rename' in op && op.rename) paths.add(op.rename.to)
    if ('link' in op && op.link) paths.add(op.link.to)
  })
  return paths
}

/** The file's content as Writes, a chunk at a time: memory stays flat whatever its size. */
async function * contentOps (real: string): AsyncGenerator<Op[]> {
  const fh = await fsp.open(real, 'r')
  try {
    for (let off = 0; ;) {
      const buf = Buffer.allocUnsafe(CHUNK)
      const { bytesRead } = await fh.read(buf, 0, CHUNK, off)
      if (bytesRead === 0) break
      yield [{ write: { offset: off, data: buf.subarray(0, bytesRead) } }]
      off += bytesRead
    }
  } finally {
    await fh.close()
  }
}

function attrsOp (st: BigIntStats): Op {
  return { setAttr: { hasMode: true, mode: Number(st.mode) & 0o7777, hasMtime: true, mtimeNs: st.mtimeNs, hasAtime: true, atimeNs: st.atimeNs } }
}

/** The user.* attributes of a new entry. Changes to attributes alone are not detected. */
async function xattrOps (real: string): Promise<Op[]> {
  const ops: Op[] = []
  for (const name of (await listXattr(real)).filter(isUserXattr).sort()) ops.push({ setXattr: { name, value: await getXattr(real, name) } })
  return ops
}

/** first, then the file's content, then what else follows it (its attributes). */
async function * wholeFileOps (first: Op, real: string, after: () => Promise<Op[]>): AsyncGenerator<Op[]> {
  yield [first]
  yield * contentOps(real)
  const rest = await after()
  if (rest.length > 0) yield rest
}

/**
 * A file sent whole or as new is its author's file at that name alone: the
 * others put it in place of whatever they have there, hard links included
 * (Applier.unlinkIfLinked, and a Create). A name linked here to others is
 * made a file of its own first, as it will be there; otherwise a later write
 * through another name would change it here only.
 */
async function ownFile (real: string, tempPath?: () => string): Promise<void> {
  if (!tempPath) return
  const st = await fsp.lstat(real).catch(() => undefined)
  if (st?.isFile() && st.nlink > 1) await detachName(real, tempPath())
}

/**
 * Journals a file as it is now, replacing whatever the others have: content,
 * mode, times, in one transaction (TxRecorder.recordWhole says why).
 */
export async function journalWholeFile (rec: TxRecorder, real: string, volPath: string, tempPath?: () => string): Promise<void> {
  await ownFile(real, tempPath)
  const st = await fsp.lstat(real, { bigint: true })
  await rec.recordWhole(volPath, wholeFileOps({ truncate: { size: 0 } }, real, async () => [attrsOp(st)]))
}

/**
 * Another mount asked for this file whole (its copy did not fit a delta, or
 * it lost a conflict). Only a regular file has a whole content to send; a
 * file deleted or renamed away here is answered with its deletion, since the
 * asker still holds a version this mount no longer has.
 */
export async function answerRefresh (rec: TxRecorder, real: string, volPath: string, tempPath?: () => string): Promise<void> {
  const st = await fsp.lstat(real).catch((err: NodeJS.ErrnoException) => err.code === 'ENOENT' ? null : undefined)
  if (st?.isFile()) {
    await journalWholeFile(rec, real, volPath, tempPath)
  } else if (st === null) {
    await rec.closeAll([volPath])
    await rec.record(volPath, { unlink: {} })
  }
}

/** A file found without a record: created, its content, its user.* attributes. */
function journalFound (rec: TxRecorder, real: string, volPath: string, mode: number): Promise<void> {
  return rec.recordWhole(volPath, wholeFileOps({ create: { mode } }, real, () => xattrOps(real)))
}

/** Journals the file at volPath as a new file, in one transaction: created, its content, mode, times and user.* attributes. */
export async function journalNewFile (rec: TxRecorder, real: string, volPath: string, tempPath?: () => string): Promise<void> {
  await ownFile(real, tempPath)
  const st = await fsp.lstat(real, { bigint: true })
  await rec.closeAll()
  const mode = Number(st.mode) & 0o7777
  await rec.recordWhole(volPath, wholeFileOps({ create: { mode } }, real, async () => [attrsOp(st), ...await xattrOps(real)]))
}

interface LinkedName { volPath: string; real: string; st: BigIntStats; known: FileRecord | undefined | 'pending' }

function matches (st: BigIntStats, known: FileRecord | 'pending'): boolean {
  return known !== 'pending' && Number(st.size) === known.size && nsToNumber(st.mtimeNs) === known.mtimeNs
}

/**
 * Names of one file. A write through one of them is journaled under that
 * name alone, so the records of the others fall behind although nothing
 * changed unseen: where one name has changes on their way (pending, or a
 * remote apply to redo) or still matches its record, the file is as
 * journaled, and a name without a record (linked while unmounted) goes as
 * a link from it. Where none matches, the file changed while unmounted: the
 * first name goes whole and the others as links to it, so the others end
 * with one file under these names, as here.
 */
async function reconcileLinked (rec: TxRecorder, linked: LinkedName[], result: ReconcileResult): Promise<void> {
  const files = new Map<bigint, LinkedName[]>()
  for (const n of linked) files.set(n.st.ino, [...(files.get(n.st.ino) ?? []), n])
  for (const names of files.values()) {
    const current = names.find(n => n.known === 'pending') ?? names.find(n => n.known !== undefined && matches(n.st, n.known))
    const lead = current ?? names[0]!
    if (!current) {
      // (No name is pending here: a pending one is current.)
      if (lead.known === undefined || lead.known === 'pending') {
        result.created++
        await journalFound(rec, lead.real, lead.volPath, Number(lead.st.mode) & 0o7777)
      } else {
        result.changed++
        await journalWholeFile(rec, lead.real, lead.volPath)
      }
    }
    for (const n of names) {
      if (n === lead || n.known === 'pending' || (current && n.known !== undefined)) continue
      if (n.known === undefined) result.created++
      else { result.changed++; await rec.record(n.volPath, { unlink: {} }) }
      await rec.record(lead.volPath, { link: { to: n.volPath } })
    }
  }
}

export async function reconcile (journal: Journal, rec: TxRecorder, filesDir: string, log: Logger): Promise<ReconcileResult> {
  const pending = await pendingPaths(journal)
  // A remote transaction a crash interrupted changed these paths partly or
  // wholly, without their records: it is applied again once connected, and
  // what it left is no local change to send.
  const applying = journal.applying()
  const leftAlone = (p: string): boolean => pending.has(p) || applying.some(a => p === a || p.startsWith(a + '/'))
  const resending = new Set(journal.resends())
  const result: ReconcileResult = { created: 0, changed: 0, removed: 0 }
  const seen = new Set<string>()
  const linked: LinkedName[] = []

  async function walk (rel: string): Promise<void> {
    for (const name of (await fsp.readdir(path.join(filesDir, rel))).sort()) {
      const volPath = `${rel}/${name}`
      const real = path.join(filesDir, volPath)
      if (isFuseHidden(volPath)) {
        // An unlinked file kept for descriptors that a stopped daemon no longer serves.
        await fsp.rm(real, { force: true })
        continue
      }
      const st = await fsp.lstat(real, { bigint: true })
      seen.add(volPath)
      // Files to resend are sent whole below.
      const known = leftAlone(volPath) || resending.has(volPath) ? 'pending' : await journal.record(volPath)
      const mode = Number(st.mode) & 0o7777
      if (st.isFile() && st.nlink > 1n) {
        linked.push({ volPath, real, st, known })
        continue
      }
      if (known === undefined) {
        result.created++
        if (st.isDirectory()) await rec.record(volPath, { mkdir: { mode } })
        else if (st.isSymbolicLink()) await rec.record(volPath, { symlink: { target: await fsp.readlink(real) } })
        else if (st.isFile()) await journalFound(rec, real, volPath, mode)
        else if (st.isFIFO()) await rec.record(volPath, { mknod: { mode: fs.constants.S_IFIFO | mode } })
        if (st.isDirectory()) for (const op of await xattrOps(real)) await rec.record(volPath, op)
      } else if (known !== 'pending' && st.isFile() && !matches(st, known)) {
        result.changed++
        await journalWholeFile(rec, real, volPath)
      }
      if (st.isDirectory()) await walk(volPath)
    }
  }
  await walk('')
  await reconcileLinked(rec, linked, result)

  // Gone while unmounted: deepest first, so directories are empty when removed.
  const gone: Array<[string, boolean]> = []
  for await (const [volPath, record] of journal.records()) {
    if (!seen.has(volPath) && !leftAlone(volPath)) gone.push([volPath, record.kind === 'dir'])
  }
  gone.sort((a, b) => b[0].split('/').length - a[0].split('/').length)
  for (const [volPath, isDir] of gone) {
    result.removed++
    await rec.record(volPath, isDir ? { rmdir: {} } : { unlink: {} })
  }
  // Journaled changes of these were lost (a power loss): whatever is pending
  // on them, only the whole file brings the others to what the disk has.
  // A file the others may never have had (a conflict copy whose sending a
  // crash cut short) goes as a new one: a Truncate would find nothing there.
  const resends = journal.resends()
  for (const volPath of resends) {
    const real = path.join(filesDir, volPath)
    const st = await fsp.lstat(real).catch(() => undefined)
    if (!st?.isFile() || isFuseHidden(volPath)) continue
    result.changed++
    if (!pending.has(volPath) && await journal.record(volPath) === undefined) await journalNewFile(rec, real, volPath)
    else await journalWholeFile(rec, real, volPath)
  }
  if (resends.length > 0) await journal.resent(resends)
  if (result.created + result.changed + result.removed > 0) log.info(result, 'journaled changes made to the backing directory while unmounted')
  return result
}
