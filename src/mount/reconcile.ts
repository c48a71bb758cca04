// Startup reconciliation: changes made to the backing directory while no
// daemon was watching (an edit while unmounted, a crash between data and
// record) are found by comparing each entry with its record, and journaled
// like any other change, so they reach the other mounts instead of being
// silently overwritten or ignored. Paths that pending transactions touch are
// left alone: those changes are already on their way.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import type { Journal } from '../journal/journal.js'
import type { TxRecorder } from '../capture/tx-recorder.js'
import type { Logger } from '../util/log.js'
import { eachPendingOp } from './recovery.js'
import { isFuseHidden } from '../fs/fuse-hidden.js'
import { isUserXattr, getXattr, listXattr } from '../fs/xattr.js'
import { nsToNumber } from '../util/times.js'

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

/** Journals a regular file's whole content as the change. */
async function journalContent (rec: TxRecorder, real: string, volPath: string): Promise<void> {
  const fh = await fsp.open(real, 'r')
  try {
    const buf = Buffer.allocUnsafe(CHUNK)
    for (let off = 0; ;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, off)
      if (bytesRead === 0) break
      await rec.write(volPath, [{ offset: off, data: Buffer.from(buf.subarray(0, bytesRead)) }])
      off += bytesRead
    }
  } finally {
    await fh.close()
  }
  await rec.close(volPath)
}

/** Journals a file as it is now, replacing whatever the others have: content, mode, times. */
export async function journalWholeFile (rec: TxRecorder, real: string, volPath: string): Promise<void> {
  const st = await fsp.lstat(real, { bigint: true })
  await rec.record(volPath, { truncate: { size: 0 } })
  await journalContent(rec, real, volPath)
  await rec.record(volPath, { setAttr: { hasMode: true, mode: Number(st.mode) & 0o7777, hasMtime: true, mtimeNs: st.mtimeNs, hasAtime: true, atimeNs: st.atimeNs } })
}

/**
 * Another mount asked for this file whole (its copy did not fit a delta, or
 * it lost a conflict). Only a regular file has a whole content to send; a
 * file deleted or renamed away here is answered with its deletion, since the
 * asker still holds a version this mount no longer has.
 */
export async function answerRefresh (rec: TxRecorder, real: string, volPath: string): Promise<void> {
  const st = await fsp.lstat(real).catch((err: NodeJS.ErrnoException) => err.code === 'ENOENT' ? null : undefined)
  if (st?.isFile()) {
    await journalWholeFile(rec, real, volPath)
  } else if (st === null) {
    await rec.closeAll([volPath])
    await rec.record(volPath, { unlink: {} })
  }
}

/** Journals the file at volPath as a new file: created, its content, mode and times. */
export async function journalNewFile (rec: TxRecorder, real: string, volPath: string): Promise<void> {
  const st = await fsp.lstat(real, { bigint: true })
  await rec.closeAll()
  await rec.record(volPath, { create: { mode: Number(st.mode) & 0o7777 } })
  await journalContent(rec, real, volPath)
  await rec.record(volPath, { setAttr: { hasMode: true, mode: Number(st.mode) & 0o7777, hasMtime: true, mtimeNs: st.mtimeNs, hasAtime: true, atimeNs: st.atimeNs } })
  await journalXattrs(rec, real, volPath)
}

/** The user.* attributes of a new entry. Changes to attributes alone are not detected. */
async function journalXattrs (rec: TxRecorder, real: string, volPath: string): Promise<void> {
  for (const name of (await listXattr(real)).filter(isUserXattr).sort()) {
    await rec.record(volPath, { setXattr: { name, value: await getXattr(real, name) } })
  }
}

export async function reconcile (journal: Journal, rec: TxRecorder, filesDir: string, log: Logger): Promise<ReconcileResult> {
  const pending = await pendingPaths(journal)
  const result: ReconcileResult = { created: 0, changed: 0, removed: 0 }
  const seen = new Set<string>()

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
      const known = pending.has(volPath) ? 'pending' : await journal.record(volPath)
      const mode = Number(st.mode) & 0o7777
      if (known === undefined) {
        result.created++
        if (st.isDirectory()) await rec.record(volPath, { mkdir: { mode } })
        else if (st.isSymbolicLink()) await rec.record(volPath, { symlink: { target: await fsp.readlink(real) } })
        else if (st.isFile()) {
          await rec.record(volPath, { create: { mode } })
          await journalContent(rec, real, volPath)
        } else if (st.isFIFO()) await rec.record(volPath, { mknod: { mode: fs.constants.S_IFIFO | mode } })
        if (st.isFile() || st.isDirectory()) await journalXattrs(rec, real, volPath)
      } else if (known !== 'pending' && st.isFile() && (Number(st.size) !== known.size || nsToNumber(st.mtimeNs) !== known.mtimeNs)) {
        result.changed++
        await journalWholeFile(rec, real, volPath)
      }
      if (st.isDirectory()) await walk(volPath)
    }
  }
  await walk('')

  // Gone while unmounted: deepest first, so directories are empty when removed.
  const gone: Array<[string, boolean]> = []
  for await (const [volPath, record] of journal.records()) {
    if (!seen.has(volPath) && !pending.has(volPath)) gone.push([volPath, record.kind === 'dir'])
  }
  gone.sort((a, b) => b[0].split('/').length - a[0].split('/').length)
  for (const [volPath, isDir] of gone) {
    result.removed++
    await rec.record(volPath, isDir ? { rmdir: {} } : { unlink: {} })
  }
  if (result.created + result.changed + result.removed > 0) log.info(result, 'journaled changes made to the backing directory while unmounted')
  return result
}
