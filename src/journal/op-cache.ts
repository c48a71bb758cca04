// Recently journaled large ops, as the exact bytes written to LevelDB, kept
// until their transaction is acked: the pusher reads a transaction back
// moments after it was journaled, and reading megabytes of writes back out
// of LevelDB (a copy each, then garbage) was a large share of the mount's
// CPU in sequential writes. A mirror only: an entry is added after its put
// committed and removed before its key is rewritten or deleted, so a hit
// always equals what LevelDB holds, and a miss just reads LevelDB.

/** Smaller values stay out: they cost little to read, and a small Buffer can pin a shared 8 KiB pool slab. */
const MIN_BYTES = 4096

export class OpCache {
  private readonly values = new Map<string, Uint8Array>()
  private bytes = 0

  constructor (private readonly maxBytes: number) {}

  /** A put of key committed. Over the budget, it is simply not kept. */
  keep (key: string, value: Uint8Array): void {
    if (value.length < MIN_BYTES || this.bytes + value.length > this.maxBytes) return
    this.forget(key)
    this.values.set(key, value)
    this.bytes += value.length
  }

  get (key: string): Uint8Array | undefined { return this.values.get(key) }

  /** key is about to be rewritten or deleted. */
  forget (key: string): void {
    const v = this.values.get(key)
    if (v === undefined) return
    this.values.delete(key)
    this.bytes -= v.length
  }

  get size (): number { return this.bytes }
}
