// The records area: the previous version of a file being rewritten, kept in
// O(1) (a hard link inside the same filesystem) so that the new
// content can be sent as a delta against it. Records are dropped as soon as
// the delta is journaled, or when they exceed the age or space budget, in
// which case the rewrite is sent as plain writes.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'

export interface RecordBudget {
  /** Total bytes of kept records. */
  maxBytes: number
  /** How long a record may wait for its rewrite to finish. */
  maxAgeMs: number
}

export const DEFAULT_RECORD_BUDGET: RecordBudget = { maxBytes: 4 * 2 ** 30, maxAgeMs: 10 * 60_000 }

export interface KeptRecord { file: string; size: number; keptAt: number; baseVersion: number }

export class RecordStore {
  private readonly kept = new Set<KeptRecord>()
  private n = 0

  constructor (readonly dir: string, private readonly budget: RecordBudget, private readonly onEvict: (r: KeptRecord) => void) {}

  /** Empties the area: records left by a crash belong to rewrites that were journaled as plain writes. */
  async open (): Promise<void> {
    await fsp.rm(this.dir, { recursive: true, force: true })
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 })
  }

  /** Links the file, which is about to be replaced: the old content survives the replacement. */
  async keepByLink (real: string, baseVersion: number): Promise<KeptRecord> {
    const file = this.nextName()
    const size = (await fsp.lstat(real)).size
    await fsp.link(real, file)
    return this.add({ file, size, keptAt: Date.now(), baseVersion })
  }

  /** Whether the record is still kept (not dropped or evicted). */
  holds (r: KeptRecord): boolean { return this.kept.has(r) }

  /** A path for a temporary file on the same filesystem as the records. */
  tempPath (): string { return this.nextName() + '.tmp' }

  async drop (r: KeptRecord): Promise<void> {
    if (!this.kept.delete(r)) return
    await fsp.rm(r.file, { force: true })
  }

  /** Evicts records over the budget, oldest first. */
  enforce (): void {
    const now = Date.now()
    let total = 0
    for (const r of this.kept) total += r.size
    for (const r of [...this.kept].sort((a, b) => a.keptAt - b.keptAt)) {
      if (total <= this.budget.maxBytes && now - r.keptAt <= this.budget.maxAgeMs) break
      total -= r.size
      this.kept.delete(r)
      fs.rmSync(r.file, { force: true })
      this.onEvict(r)
    }
  }

  private add (r: KeptRecord): KeptRecord {
    this.kept.add(r)
    this.enforce()
    return r
  }

  private nextName (): string {
    return path.join(this.dir, `${process.pid}-${Date.now()}-${this.n++}`)
  }
}
