// Key schema of the embedded LevelDB volume log (values in parentheses):
//
//   v!<volume>!head                        (uint64 BE)  last assigned seq
//   v!<volume>!keycheck                    (bytes)       HMAC proving mounts share the volume key
//   v!<volume>!s!<seq: 16 hex>             (Entry)       device id + frame bytes, or where they are
//   v!<volume>!t!<device>!<devseq: 16 hex> (uint64 BE)  seq given to that tx id
//   v!<volume>!f!<file id>                 (json)        last change of a file: {s, d} seq and device,
//                                                        {o, od} the last change by any other device
//
// Entry, one of:
//   [idLen][deviceId][frame]                       a frame below SEGMENT_MIN_FRAME, inline
//   [0xff][idLen][deviceId][segment][offset][length] (three uint64 BE)
//                                                  a larger frame, in segment file <segment: 16 hex>.seg
//                                                  of the directory `<LevelDB dir>-segments`
// Device ids are 1..64 bytes (util/names.ts), so 0xff never starts an inline entry.
// Segment files are append-only and never deleted: no entry is ever removed.
//
// Fixed-width hex keeps iteration order equal to sequence order. Volume and
// device names are validated to [A-Za-z0-9._-] so '!' never appears in them.

export function hex16 (n: number): string {
  return n.toString(16).padStart(16, '0')
}

export const keys = {
  head: (volume: string) => `v!${volume}!head`,
  keyCheck: (volume: string) => `v!${volume}!keycheck`,
  entry: (volume: string, seq: number) => `v!${volume}!s!${hex16(seq)}`,
  entryPrefix: (volume: string) => `v!${volume}!s!`,
  file: (volume: string, fileId: string) => `v!${volume}!f!${fileId}`,
  txId: (volume: string, deviceId: string, deviceSeq: number) => `v!${volume}!t!${deviceId}!${hex16(deviceSeq)}`,
  txIdPrefix: (volume: string, deviceId: string) => `v!${volume}!t!${deviceId}!`,
}
