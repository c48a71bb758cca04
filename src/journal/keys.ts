// Key schema of a mount's journal (one LevelDB per mount, values in parentheses):
//
//   m!device                      (utf8)   this mount's device id, made once
//   m!devseq                      (u64 BE) last device seq handed to a closed transaction
//   m!applied                     (u64 BE) last volume seq applied from the node (the cursor)
//   m!sync                        (16 B)   written with sync:true to make the log durable on fsync: the
//                                          payload watermark (segment u64 BE, offset u64 BE) before which
//                                          every referenced byte was forced to disk first (empty: none)
//   m!boot                        (utf8)   the boot the journal was last opened in (Linux boot_id)
//   m!resend                      (json)   {paths} of files to send whole: journaled changes of theirs were lost
//   m!applying                    (json)   {seq, paths} of the remote transaction being applied; deleted
//                                          with the cursor move that records it
//   c!<counter>                   (u64 BE) persisted counters (txAcked, txApplied, ...)
//   h!<open id: 16 hex>           (json)   head of a transaction: path, opened while capturing
//   o!<open id: 16 hex>!<i: 8 hex>(Op)     its ops, written ahead of the backing-file write; either
//                                          the Op encoding, or for a write of 16 KiB or more, 0x01 then a
//                                          reference to its data in payload/<segment: 16 hex>.seg and its
//                                          CRC-32 (0x00: the same without the CRC; op-record.ts)
//   t!<device seq: 16 hex>        (json)   closed transaction waiting for its ack (the outbox)
//   r!<volume path>               (json)   file record: version (volume seq), size, mtime
//   x!<copy path, or path@seq>    (json)   a conflict seen here (ConflictEntry); path@seq when no copy was made
//
// A transaction is captured under an open id and becomes pushable only when
// closed: t! then names the open id. Fixed-width hex makes iteration order
// equal to numeric order, so the outbox drains in close order. On ack the
// t!, h! and o! keys of the transaction go in one batch; a payload segment
// goes once no o! key refers to it (payload-store.ts).

export function hex (n: number, width = 16): string {
  return n.toString(16).padStart(width, '0')
}

export const keys = {
  device: 'm!device',
  deviceSeq: 'm!devseq',
  applied: 'm!applied',
  syncMarker: 'm!sync',
  applying: 'm!applying',
  boot: 'm!boot',
  resend: 'm!resend',
  counter: (name: string) => `c!${name}`,
  counterPrefix: 'c!',
  head: (openId: number) => `h!${hex(openId)}`,
  headPrefix: 'h!',
  op: (openId: number, i: number) => `o!${hex(openId)}!${hex(i, 8)}`,
  opPrefix: (openId: number) => `o!${hex(openId)}!`,
  outbox: (deviceSeq: number) => `t!${hex(deviceSeq)}`,
  outboxPrefix: 't!',
  record: (path: string) => `r!${path}`,
  conflict: (entry: { copy: string; path: string; seq: number }) => `x!${entry.copy || `${entry.path}@${entry.seq}`}`,
}

export function u64 (n: number): Buffer {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(n))
  return b
}

export function readU64 (b: Uint8Array | undefined): number {
  if (b === undefined) return 0
  return Number(Buffer.from(b.buffer, b.byteOffset, b.byteLength).readBigUInt64BE(0))
}
