// Journal: the mount's write-ahead log of captured transactions, its outbox
// to the storage node, and its record of what has been applied from others.
import type { Op, Transaction } from '../codec/wire.js'
import type { FileFacts } from './records.js'

export type EntryKind = 'file' | 'dir' | 'symlink' | 'other'

/**
 * What this mount knows of a path: the volume seq that last changed it. A
 * deleted or renamed-away path has none (a file made there later is based
 * on 0, a new file to the node); gone marks the tombstones that earlier
 * versions kept, which still read as the deletion's version.
 */
export interface FileRecord {
  version: number; size: number; mtimeNs: number; kind?: EntryKind; gone?: true
  /** The device whose change set version (Transaction.alsoBase needs it); absent in older records. */
  by?: string
}

/**
 * A closed transaction waiting for its ack, ready to be framed. subject is
 * the path it leaves content at; checked says the node checks it for
 * conflicts (DESIGN §6), with tx.baseVersion the subject's record version.
 */
export interface PendingTx {
  deviceSeq: number; tx: Transaction; bytes: number; subject: string; checked: boolean
  /** A rename's source when it differs from the subject; tx.sourceBaseVersion is its record version. */
  source?: string
}

/** A conflict this mount saw: the losing version of `path` was kept as `copy`. */
export interface ConflictEntry { path: string; copy: string; device: string; winner: string; seq: number; at: string }

export interface AppliedUpdate {
  seq: number
  /** The applied transaction: records under a path it renames, and pending transactions on it, follow it. */
  tx?: Transaction
  /** Records to set (value) or drop (null: the path went away) in the same batch as the cursor. */
  records: Map<string, FileRecord | null>
}

export type CounterName = 'txClosed' | 'txAcked' | 'txApplied' | 'bytesApplied' | 'txDropped'

export interface Journal {
  /** Opens (creating if needed) and recovers transactions left open by a crash; idempotent. */
  open (): Promise<void>
  /** Closes the store; idempotent. */
  close (): Promise<void>
  /** This mount's device id. */
  readonly deviceId: string
  /**
   * A fresh id for a transaction about to be captured. whole: it sends a
   * file that is on disk already (a conflict copy, a heal answer, a file
   * reconciled at startup), so a crash that leaves it half journaled must
   * not close it as it is: the file is sent whole again instead (resends).
   */
  beginTx (path: string, opts?: { whole?: boolean }): number
  /** Appends ops to an open transaction, durable against a process crash once resolved. */
  appendOps (openId: number, firstIndex: number, ops: Op[]): Promise<number>
  /** Drops an open transaction and its ops: it was replaced by a smaller one. */
  discardTx (openId: number, opCount: number): Promise<void>
  /** Closes a transaction so that it can be pushed, split into frame-sized parts; returns the last device seq. */
  closeTx (openId: number, opCount: number, facts: FileFacts, alsoAt?: string[]): Promise<number>
  /** Journals a complete transaction in one batch; returns its device seq and the op bytes. */
  appendTx (path: string, ops: Op[], facts: FileFacts, alsoAt?: string[]): Promise<{ deviceSeq: number; bytes: number }>
  /** Makes everything journaled so far survive power loss. */
  sync (): Promise<void>
  /** Closed transactions with deviceSeq > after, oldest first; at least one, then no more than maxBytes of ops. */
  readOutbox (after: number, limit: number, maxBytes?: number): Promise<PendingTx[]>
  /** Drops an acked transaction and stamps its file with the volume seq. */
  ack (pending: PendingTx, seq: number): Promise<void>
  /** ack of each, in order, in as few LevelDB writes as their renames allow. */
  ackMany (acks: Array<{ pending: PendingTx; seq: number }>): Promise<void>
  /** The last volume seq applied from the node. */
  applied (): number
  /**
   * Notes the paths a remote transaction is about to change, before any of
   * its effects (its conflict settling included) reach the files. They stay
   * noted until recordApplied: a crash in between leaves the files half
   * changed, and startup reconciliation must not take that for local changes.
   */
  beginApply (seq: number, paths: string[]): Promise<void>
  /** The paths of an apply that a crash interrupted (or that is under way): they and everything under them. */
  applying (): string[]
  /** The seq of the apply a crash interrupted, found at open (0 if none): applied again, it may find its work done. */
  interruptedApply (): number
  /**
   * Moves the applied cursor and updates file records in one batch. Pending
   * transactions on a path the transaction renames follow it to its new name
   * in the same batch; returns how many did.
   */
  recordApplied (update: AppliedUpdate, bytes: number): Promise<number>
  /**
   * Files whose journaled changes were lost with a power loss (their
   * transactions dropped at open): they must be sent whole, as the disk has them.
   */
  resends (): string[]
  /** Those files were journaled whole. */
  resent (paths: string[]): Promise<void>
  /** Moves the applied cursor past this mount's own transactions (nothing to apply, nothing counted). */
  passOwn (seq: number): Promise<void>
  /** The record of a file, if any. */
  record (path: string): Promise<FileRecord | undefined>
  /** The version a change of path is based on: its record's (or an old tombstone's), or 0. */
  version (path: string): Promise<number>
  /** Every record, in path order. */
  records (): AsyncIterable<[string, FileRecord]>
  /** Persisted counters. */
  counters (): Record<CounterName, number>
  /** Transactions and data bytes not yet acked. */
  pending (): { tx: number; bytes: number }
  /** Device seqs of the conflict-checked transactions not yet acked whose subject is path. */
  pendingOn (path: string): number[]
  /** Those transactions, oldest first, as journaled (pendingOn's, read from the outbox). */
  pendingTxOn (path: string): Promise<PendingTx[]>
  /** Whether a transaction is still waiting for its ack. */
  isPending (deviceSeq: number): Promise<boolean>
  /** Whether a transaction not yet acked hard-links a file to path (a link the other mounts do not have yet). */
  pendingLinkTo (path: string): Promise<boolean>
  /** Whether a transaction not yet acked hard-links path to another name. */
  pendingLinkFrom (path: string): Promise<boolean>
  /** Whether the last transaction not yet acked that names path takes the name away: deletes it, or renames it to another. */
  pendingRemoval (path: string): Promise<boolean>
  /** The hard links of transactions not yet acked, oldest first, as journaled: from the transaction's path to the link's. */
  pendingLinks (): Promise<Array<{ from: string; to: string; deviceSeq: number }>>
  /** Removes transactions that lost a conflict (their content was kept as a copy); returns them. */
  dropPending (deviceSeqs: number[]): Promise<PendingTx[]>
  /** Remembers a conflict, for `deltafs status`. */
  addConflict (entry: ConflictEntry): Promise<void>
  /** Every conflict remembered, oldest first. */
  conflicts (): Promise<ConflictEntry[]>
  /** Called after each closeTx, so the pusher can wake. */
  onClosed (listener: () => void): void
}
