// Counters of the capture path, reported by `deltafs status`.
export interface CaptureStats {
  /** Bytes applications wrote through the mount. */
  bytesWritten: number
  /** Bytes of those writes that changed the file and became Write ops. */
  bytesCaptured: number
  /** Encoded op bytes put into the journal. */
  bytesJournaled: number
}

export function newCaptureStats (): CaptureStats {
  return { bytesWritten: 0, bytesCaptured: 0, bytesJournaled: 0 }
}
