// What counts as a conflict (DESIGN §6), as pure functions over transactions:
// which transactions the node checks, the path they leave content at, the
// name of a conflict copy, and whether a remote change leaves a file exactly
// as the local pending change left it (then it is no conflict at all).
import { createHash, createHmac } from 'node:crypto'
import fsp from 'node:fs/promises'
import path from 'node:path'
import type { Op, Transaction } from '../codec/wire.js'
import type { EntryKind } from '../journal/journal.js'

/** The path a transaction's later ops act on: its path, moved by each Rename. */
export function subjectOf (txPath: string, ops: Op[]): string {
  let subject = txPath
  for (const op of ops) if ('rename' in op && op.rename) subject = op.rename.to
  return subject
}

const CONTENT_OPS = new Set(['create', 'write', 'truncate', 'rebuild', 'unlink', 'rename'])
const UNCHECKED_OPS = new Set(['mkdir', 'rmdir', 'symlink', 'link', 'refresh', 'mknod'])

/**
 * Whether the node checks a transaction for conflicts: it changes a regular
 * file's content or existence. Attribute-only changes (chmod, utimes) and
 * directories merge by order instead: a conflict copy for a chmod would be
 * noise, and a directory has no content to keep a copy of.
 */
export function isConflictChecked (ops: Op[], kind: EntryKind | undefined): boolean {
  if (kind !== undefined && kind !== 'file') return false
  let content = false
  for (const op of ops) {
    const k = Object.keys(op).find(key => (op as Record<string, unknown>)[key] != null) ?? ''
    if (UNCHECKED_OPS.has(k)) return false
    if (CONTENT_OPS.has(k)) content = true
  }
  return content
}

/**
 * File ids: a keyed hash of the path, so the node can check conflicts per
 * file without learning names. With a volume key the hash key derives from
 * it; without one the payloads are plaintext anyway.
 */
export class FileIds {
  private readonly key: Buffer
  constructor (volume: string, volumeKey?: Buffer) {
    this.key = volumeKey
      ? createHmac('sha256', volumeKey).update('deltafs-file-id').digest()
      : createHash('sha256').update(`deltafs-file-id:${volume}`).digest()
  }

  of (volPath: string): string {
    return createHmac('sha256', this.key).update(volPath).digest('base64url').slice(0, 22)
  }
}

function stamp (at: Date): string {
  return at.toISOString().replace(/\.\d+Z$/, 'Z').replace(/[-:]/g, '')
}

const MAX_NAME_BYTES = 255

/** `dir/name (conflict <device> <UTC time>).ext`, with `-n` added when that exists already. */
export function conflictCopyName (volPath: string, device: string, at: Date, taken: (p: string) => boolean = () => false): string {
  const dir = path.posix.dirname(volPath)
  const base = path.posix.basename(volPath)
  const ext = path.posix.extname(base)
  let stem = base.slice(0, base.length - ext.length)
  for (let n = 1; ; n++) {
    const tag = ` (conflict ${device} ${stamp(at)}${n > 1 ? `-${n}` : ''})`
    // Long names lose the end of their stem, never the tag or the extension.
    while (Buffer.byteLength(stem + tag + ext) > MAX_NAME_BYTES && stem.length > 0) stem = stem.slice(0, -1)
    const candidate = path.posix.join(dir, stem + tag + ext)
    if (!taken(candidate)) return candidate
  }
}

const COPY_NAME = / \(conflict [A-Za-z0-9._-]+ \d{8}T\d{6}Z(?:-\d+)?\)[^/]*$/

export function isConflictCopyName (volPath: string): boolean {
  return COPY_NAME.test(path.posix.basename(volPath))
}

interface Range { start: number; end: number }

function covered (r: Range, by: Range[]): boolean {
  let at = r.start
  for (const b of [...by].sort((x, y) => x.start - y.start)) {
    if (b.start > at) break
    at = Math.max(at, b.end)
    if (at >= r.end) return true
  }
  return at >= r.end
}

async function sha256Of (file: string): Promise<Buffer> {
  const h = createHash('sha256')
  const fh = await fsp.open(file, 'r')
  try {
    for await (const chunk of fh.createReadStream()) h.update(chunk as Buffer)
  } finally { await fh.close().catch(() => undefined) }
  return h.digest()
}

/**
 * Whether applying a remote transaction to the local file `real` would leave
 * it exactly as it is, given the local pending ops on it: two devices that
 * reached the same content concurrently have no conflict. Sound, not
 * complete: when in doubt it answers false (a conflict copy, never a loss).
 */
export async function sameResult (remote: Transaction, real: string, localOps: Op[]): Promise<boolean> {
  if (remote.ops.some(op => 'rename' in op && op.rename)) return false
  let st
  try { st = await fsp.lstat(real) } catch { st = undefined }
  if (remote.ops.some(op => 'unlink' in op && op.unlink)) {
    // Deleted on both sides. A local rename or link that took the file
    // elsewhere is not a deletion: its content lives on under another name,
    // which the others can only get through the conflict path (sent whole).
    return st === undefined && remote.ops.every(op => !('write' in op) && !('create' in op) && !('truncate' in op)) &&
      localOps.every(op => !('rename' in op && op.rename) && !('link' in op && op.link))
  }
  if (!st?.isFile()) return false
  const rebuild = remote.ops.find(op => 'rebuild' in op && op.rebuild)
  if (rebuild && 'rebuild' in rebuild) {
    return rebuild.rebuild.resultSize === st.size && Buffer.from(rebuild.rebuild.resultSha256).equals(await sha256Of(real))
  }
  // Replay the remote ops against the local bytes: every byte it writes must
  // already be there, and its size must be the local size.
  const writes: Range[] = []
  let fromEmpty = false
  let size: number | undefined
  const fh = await fsp.open(real, 'r')
  try {
    for (const op of remote.ops) {
      if ('create' in op && op.create) {
        if (remote.baseVersion === 0 && writes.length === 0) { fromEmpty = true; size = 0 }
      } else if ('truncate' in op && op.truncate) {
        size = op.truncate.size
        if (size === 0) { fromEmpty = true; writes.length = 0 }
        for (const w of writes) w.end = Math.min(w.end, size)
      } else if ('write' in op && op.write) {
        const { offset, data } = op.write
        const here = Buffer.alloc(data.length)
        const { bytesRead } = await fh.read(here, 0, data.length, offset)
        if (bytesRead !== data.length || !here.equals(Buffer.from(data.buffer, data.byteOffset, data.byteLength))) return false
        writes.push({ start: offset, end: offset + data.length })
        if (size !== undefined) size = Math.max(size, offset + data.length)
      }
    }
  } finally { await fh.close() }
  if (fromEmpty) {
    // The remote content is exactly its writes: they must cover the local file.
    return size === st.size && covered({ start: 0, end: st.size }, writes)
  }
  // An in-place change: the local pending writes must lie where the remote
  // wrote the same bytes, and neither side may have changed the size.
  if (size !== undefined && size !== st.size) return false
  for (const op of localOps) {
    if ('write' in op && op.write) {
      if (!covered({ start: op.write.offset, end: op.write.offset + op.write.data.length }, writes)) return false
    } else if (!('setAttr' in op)) {
      return false
    }
  }
  return true
}
