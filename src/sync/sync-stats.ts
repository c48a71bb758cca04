// Counters of the sync client, reported by `deltafs status`.
export interface SyncStats {
  connected: boolean
  /** The node granted read access only: nothing is pushed. */
  readOnly: boolean
  /** Frame bytes put on the wire by Push, retries included. */
  bytesPushed: number
  framesPushed: number
  /** Highest volume seq the node gave one of our transactions. */
  lastPushedSeq: number
  /** Delivery bytes received by Subscribe. */
  bytesReceived: number
  /** Transactions refused as malformed or unsafe and skipped. */
  txRefused: number
  lastError: string
  /** Rebuilds whose base did not match here, healed by asking for the whole file. */
  healsRequested: number
  /** Conflicts this mount lost: its version was kept as a conflict copy. */
  conflicts: number
}

export function newSyncStats (): SyncStats {
  return { connected: false, readOnly: false, bytesPushed: 0, framesPushed: 0, lastPushedSeq: 0, bytesReceived: 0, txRefused: 0, lastError: '', healsRequested: 0, conflicts: 0 }
}
