// Groups captured ops into transactions. Writes to a path accumulate in its
// open transaction; it closes on flush/fsync/release, after a quiet window,
// or when it grows past a size cap. Any other op first closes every open
// transaction, so the outbox order is a valid replay order for the volume.
import fsp from 'node:fs/promises'
import type { Op } from '../codec/wire.js'
import type { Journal } from '../journal/journal.js'
import type { CaptureStats } from './capture-stats.js'
import type { ChangedRun } from './block-diff.js'
import { logger } from '../util/log.js'
import { type FileFacts, kindOf } from '../journal/records.js'

const log = logger('capture')

export interface TxRecorderOptions {
  /** Close a transaction after this long without writes. */
  quietMs: number
  /** Close a transaction once its journaled ops reach this many bytes. */
  maxTxBytes: number
}

interface OpenTx { openId: number; opCount: number; bytes: number; chain: Promise<unknown>; timer?: NodeJS.Timeout }

export class TxRecorder {
  private readonly open = new Map<string, OpenTx>()

  constructor (
    private readonly journal: Journal,
    private readonly realPath: (path: string) => string,
    private readonly stats: CaptureStats,
    private readonly opts: TxRecorderOptions,
  ) {}

  /** Journals the changed runs of a write; resolves once they are in the journal. */
  async write (path: string, runs: ChangedRun[]): Promise<void> {
    let tx = this.open.get(path)
    if (!tx) {
      tx = { openId: this.journal.beginTx(path), opCount: 0, bytes: 0, chain: Promise.resolve() }
      this.open.set(path, tx)
    }
    const ops: Op[] = runs.map(r => ({ write: { offset: r.offset, data: r.data } }))
    const first = tx.opCount
    tx.opCount += ops.length
    const openId = tx.openId
    // Appends of one transaction are chained so that close never overtakes them.
    const appended = tx.chain.then(() => this.journal.appendOps(openId, first, ops))
    tx.chain = appended.catch(() => undefined)
    const bytes = await appended
    this.stats.bytesJournaled += bytes
    tx.bytes += bytes
    if (this.open.get(path) !== tx) return
    if (tx.bytes >= this.opts.maxTxBytes) {
      await this.close(path)
    } else {
      clearTimeout(tx.timer)
      tx.timer = setTimeout(() => { this.close(path).catch(err => log.error({ err, path }, 'closing a quiet transaction failed')) }, this.opts.quietMs)
    }
  }

  /** Journals a single-op transaction. Callers close open transactions first (closeAll). */
  async record (path: string, op: Op): Promise<void> {
    const { bytes } = await this.journal.appendTx(path, [op], await this.facts(path))
    this.stats.bytesJournaled += bytes
  }

  /** Size and mtime of the backing file now, for its record; zeros when it is gone. */
  private async facts (path: string): Promise<FileFacts> {
    try {
      const st = await fsp.lstat(this.realPath(path), { bigint: true })
      return { mtimeNs: Number(st.mtimeNs), size: Number(st.size), kind: kindOf(st) }
    } catch {
      return { mtimeNs: 0, size: -1 }
    }
  }

  /** Closes the open transaction of a path, if any. */
  async close (path: string): Promise<void> {
    const tx = this.open.get(path)
    if (!tx) return
    this.open.delete(path)
    clearTimeout(tx.timer)
    await tx.chain
    await this.journal.closeTx(tx.openId, tx.opCount, await this.facts(path))
  }

  async closeAll (): Promise<void> {
    await Promise.all([...this.open.keys()].map(p => this.close(p)))
  }

  sync (): Promise<void> { return this.journal.sync() }
}
