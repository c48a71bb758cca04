// How a transaction changes the file records: the record follows the file
// through renames and is dropped where it went away from. No tombstone is
// kept: a file made there later is based on the mount's applied cursor,
// which the node takes as a new file where a deletion at or before it was
// the last change (FrameHeader.removes).
import { type Op, removesSubject, type Transaction } from '../codec/wire.js'
import type { FileRecord } from './journal.js'
import { nsToNumber } from '../util/times.js'

import type { EntryKind } from './journal.js'

/** What a transaction left: mtimeNs exact (it is sent); the record keeps its number form. */
export interface FileFacts { size: number; mtimeNs: bigint; kind?: EntryKind }

export function kindOf (st: { isFile (): boolean; isDirectory (): boolean; isSymbolicLink (): boolean }): EntryKind {
  return st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other'
}

/** Whether op changes a file's content or attributes, not which names it has. */
export function isOfFile (op: Op): boolean {
  return ('write' in op && op.write !== undefined) || ('truncate' in op && op.truncate !== undefined) ||
    ('setAttr' in op && op.setAttr !== undefined) || ('setXattr' in op && op.setXattr !== undefined) || ('removeXattr' in op && op.removeXattr !== undefined)
}

/** Whether ops only ask for a file whole (Refresh): they change nothing, and their answer comes later. */
export function isRefreshOnly (ops: Op[]): boolean {
  return ops.length > 0 && ops.every(op => 'refresh' in op && op.refresh !== undefined)
}

/** Every path a transaction names: its own, and where its renames and links lead. */
export function pathsOf (tx: Transaction): string[] {
  const paths = new Set([tx.path])
  for (const op of tx.ops) {
    if ('rename' in op && op.rename) paths.add(op.rename.to)
    if ('link' in op && op.link) paths.add(op.link.to)
  }
  return [...paths]
}

/** The renames a transaction makes, in order, so child records can follow their directory. */
export function renamesOf (tx: Transaction): Array<[string, string]> {
  const out: Array<[string, string]> = []
  let subject = tx.path
  for (const op of tx.ops) {
    if ('rename' in op && op.rename) { out.push([subject, op.rename.to]); subject = op.rename.to }
  }
  return out
}

export function recordChanges (tx: Transaction, seq: number, facts: FileFacts): Map<string, FileRecord | null> {
  const changes = new Map<string, FileRecord | null>()
  let subject = tx.path
  for (const op of tx.ops) {
    if ('rename' in op && op.rename) {
      changes.set(subject, null)
      subject = op.rename.to
    }
  }
  // The same test the node is told (FrameHeader.removes): the two must agree.
  const removed = removesSubject(tx.ops)
  const by = tx.txId.deviceId
  // A link leaves its source's content as it was: its record (the last
  // change of that content, and whose: Applier.onlyAuthorsNames) stays.
  const linksOnly = tx.ops.length > 0 && tx.ops.every(op => 'link' in op && op.link)
  if (!linksOnly) changes.set(subject, removed ? null : recordOf(seq, facts, by))
  // A link's new name is the same file: without a record of its own, the
  // next start would find it unknown and send it as a new file, which the
  // others put in place of their link while this mount kept its own.
  if (!removed) for (const op of tx.ops) if ('link' in op && op.link) changes.set(op.link.to, recordOf(seq, facts, by))
  return changes
}

/** The record of a file as a change at seq left it. */
export function recordOf (seq: number, facts: FileFacts, by?: string): FileRecord {
  return { version: seq, size: facts.size, mtimeNs: nsToNumber(facts.mtimeNs), ...(facts.kind ? { kind: facts.kind } : {}), ...(by ? { by } : {}) }
}

/** Where renames, in order, move path (itself or a directory above it). */
export function movedPath (path: string, renames: Array<[string, string]>): string {
  let at = path
  for (const [from, to] of renames) {
    if (at === from) at = to
    else if (at.startsWith(from + '/')) at = to + at.slice(from.length)
  }
  return at
}

