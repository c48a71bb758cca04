// VolumeLog: the storage node's durable, ordered, de-duplicated log of one
// volume's transactions. Sequence numbers start at 1 and have no gaps.

export interface AppendRequest {
  volume: string
  deviceId: string
  deviceSeq: number
  /** The encoded Frame, stored and forwarded as is. */
  frame: Uint8Array
  /**
   * Conflict check (DESIGN §6): when set, the append is refused if another
   * device changed this file after baseVersion.
   */
  fileId?: string
  baseVersion?: number
  /** A rename's source file, checked and versioned like fileId; no file is left there. */
  sourceFileId?: string
  sourceBaseVersion?: number
  /** The transaction leaves no file at fileId's path. */
  removes?: boolean
  /**
   * Shared by the appends of one ordered stream (one Push stream). Once one
   * of them is refused as a conflict, the later ones are deferred, not
   * stored: they may depend on the refused one (an edit after a create).
   */
  order?: { refused: boolean }
}

export interface AppendResult {
  seq: number
  /** True when this transaction id was already in the log; seq is the original one. */
  duplicate: boolean
  /** Set when refused by the conflict check: seq is then the other device's later change. */
  conflict?: { deviceId: string }
  /** Set when not stored because an earlier append of the same order was refused; seq is 0. */
  deferred?: true
}

export interface LogEntry { seq: number; deviceId: string; frame: Uint8Array }

export interface VolumeLog {
  /** Opens the backing store; idempotent. */
  open (): Promise<void>
  /** Flushes and closes; idempotent. */
  close (): Promise<void>
  /**
   * Appends durably (resolves only once on disk), returns the earlier seq of
   * a retry, or refuses a conflicting change without storing it.
   */
  append (req: AppendRequest): Promise<AppendResult>
  /** Up to `limit` entries with seq > afterSeq, in order, stopping once maxBytes of frames are read (at least one entry). */
  read (volume: string, afterSeq: number, limit: number, maxBytes?: number): Promise<LogEntry[]>
  /** The last assigned sequence number of the volume, 0 when empty. */
  head (volume: string): Promise<number>
  /**
   * The volume's key check value. A non-empty proposal is stored when the
   * volume has none yet and an empty log; the stored value is returned.
   */
  keyCheck (volume: string, proposed: Uint8Array): Promise<Uint8Array>
}
