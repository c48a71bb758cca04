// Append-only segment files for the data of large captured writes. Kept out
// of LevelDB, the bytes are written to disk once instead of going through its
// log, a memtable flush and compactions, and never sit in its memtable.
//
// A segment is deleted when no journaled op refers to it any more and it is
// not the one being appended to. The journal tells the store which segments
// its ops refer to (at open) and when a reference goes (release); it also
// makes the reference's deletion durable before a segment goes (collect).
// The storage node keeps its large frames here too; it never releases one.
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { DeltafsError } from '../util/errors.js'
import { readAt, writeAt } from '../util/fd-io.js'

const fdatasync = promisify(fs.fdatasync)
const fsync = promisify(fs.fsync)
const open = promisify(fs.open)
const close = promisify(fs.close)

/** Where an op's data lies. */
export interface PayloadRef { segment: number; offset: number; length: number }

export const SEGMENT_BYTES = 64 << 20
/** Segments opened for reading only, kept for the next read of the same segment (the pusher reads them in order). */
const READERS = 8

interface Handle { id: number; fd: number; users: number; removed?: boolean }

export function segmentName (id: number): string {
  return id.toString(16).padStart(16, '0') + '.seg'
}

function segmentId (name: string): number | undefined {
  return /^[0-9a-f]{16}\.seg$/.test(name) ? parseInt(name.slice(0, 16), 16) : undefined
}

export class PayloadStore {
  private readonly counts = new Map<number, number>()
  /** Segments that may hold bytes not yet forced to disk: written since the last sync. */
  private readonly dirty = new Set<number>()
  /** A segment was created since the last sync: its directory entry must be forced too. */
  private dirDirty = false
  private active: (Handle & { size: number }) | undefined
  /** Write handles of segments no longer active, still in use by a write or a read. */
  private readonly writers = new Map<number, Handle>()
  private readonly readers = new Map<number, Handle & { ready: Promise<number> }>()
  private readonly idle = new Set<number>()
  /** Places reserved whose bytes are still being written, or failed to be. */
  private readonly unwritten = new Set<PayloadRef>()
  private nextId = 1
  private syncChain: Promise<unknown> = Promise.resolve()

  constructor (readonly dir: string, private readonly segmentBytes = SEGMENT_BYTES) {}

  /**
   * referenced: how many journaled ops refer to each segment. A segment file
   * nothing refers to holds only bytes of ops that never got journaled (a
   * crash between the write and the put) or were acked: it goes.
   */
  async open (referenced: Map<number, number>): Promise<void> {
    await fs.promises.mkdir(this.dir, { recursive: true })
    let max = 0
    for (const [id, n] of referenced) { this.counts.set(id, n); max = Math.max(max, id) }
    for (const name of await fs.promises.readdir(this.dir)) {
      const id = segmentId(name)
      if (id === undefined) continue
      max = Math.max(max, id)
      if (!referenced.has(id)) await fs.promises.rm(path.join(this.dir, name), { force: true })
    }
    // Appends go to a new segment: the tail of the last one may hold the bytes of a write cut short.
    this.nextId = max + 1
  }

  /** The size of every segment file on disk, by id (before open: what a crash left). */
  async sizes (): Promise<Map<number, number>> {
    const out = new Map<number, number>()
    const names = await fs.promises.readdir(this.dir).catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return [] as string[]; throw err })
    for (const name of names) {
      const id = segmentId(name)
      if (id !== undefined) out.set(id, (await fs.promises.stat(path.join(this.dir, name))).size)
    }
    return out
  }

  /** Segments referred to, with their reference counts (for tests and status). */
  references (): Map<number, number> { return new Map(this.counts) }

  /** Writes data to the active segment; resolved once the OS has the bytes (they survive a process crash). */
  async append (data: Uint8Array): Promise<PayloadRef> {
    const { ref, written } = this.begin(data)
    try {
      await written
    } catch (err) {
      this.release([ref.segment])
      throw err
    }
    return ref
  }

  /**
   * Reserves data's place now and starts writing it, so that the caller can
   * journal the reference while the bytes are on their way (the reference's
   * CRC tells a place that never got them). The reference counts from here;
   * if the write fails, the caller releases it.
   */
  begin (data: Uint8Array): { ref: PayloadRef; written: Promise<void> } {
    const seg = this.activeFor(data.length)
    const ref = { segment: seg.id, offset: seg.size, length: data.length }
    // Reserved before the write so that writes in flight never overlap, and
    // counted so the segment cannot go while the reference is being journaled.
    seg.size += data.length
    this.counts.set(seg.id, (this.counts.get(seg.id) ?? 0) + 1)
    seg.users++
    this.unwritten.add(ref)
    return { ref, written: this.write(seg, data, ref) }
  }

  private async write (seg: Handle, data: Uint8Array, ref: PayloadRef): Promise<void> {
    try {
      for (let done = 0; done < data.length;) done += await writeAt(seg.fd, data, done, data.length - done, ref.offset + done)
      this.dirty.add(seg.id) // after the write: a sync that started before it must not clear it
      this.unwritten.delete(ref)
    } catch (err) {
      // Left in unwritten: the watermark never passes a place whose bytes
      // are missing, in case its reference could not be taken back either.
      throw new DeltafsError('JOURNAL', `cannot write payload segment ${segmentName(seg.id)}: ${(err as Error).message}`, { cause: err })
    } finally {
      this.done(seg)
    }
  }

  /**
   * Where the bytes that a sync starting now is sure to force begin to be
   * missing: the first place still being written, or the end of the active
   * segment. Every reference before it is durable once that sync is done.
   */
  watermark (): PayloadRef {
    let low: PayloadRef = { segment: this.active?.id ?? this.nextId, offset: this.active?.size ?? 0, length: 0 }
    for (const r of this.unwritten) if (r.segment < low.segment || (r.segment === low.segment && r.offset < low.offset)) low = r
    return { segment: low.segment, offset: low.offset, length: 0 }
  }

  private activeFor (length: number): Handle & { size: number } {
    if (this.active && (this.active.size === 0 || this.active.size + length <= this.segmentBytes)) return this.active
    const old = this.active
    const id = this.nextId++
    // Synchronous: appends reserve their place without awaiting, once per segment.
    const fd = fs.openSync(path.join(this.dir, segmentName(id)), 'wx+')
    this.active = { id, fd, users: 0, size: 0 }
    this.dirDirty = true
    if (old) {
      this.writers.set(old.id, old)
      if ((this.counts.get(old.id) ?? 0) === 0) this.idle.add(old.id)
      this.done(old, false)
    }
    return this.active
  }

  /**
   * Closes a write handle nothing uses any more, once it is no longer
   * active; a sync opens the file again if it still has to be forced (so a
   * long backlog of segments holds no descriptors).
   */
  private done (h: Handle, used = true): void {
    if (used) h.users--
    if (h === this.active || h.users > 0 || this.writers.get(h.id) !== h) return
    this.writers.delete(h.id)
    fs.close(h.fd, () => undefined)
  }

  async read (ref: PayloadRef): Promise<Buffer> {
    const { fd, h } = await this.pin(ref.segment)
    try {
      const buf = Buffer.allocUnsafe(ref.length)
      let done = 0
      while (done < ref.length) {
        const n = await readAt(fd, buf, done, ref.length - done, ref.offset + done)
        if (n === 0) throw new DeltafsError('JOURNAL', `payload segment ${segmentName(ref.segment)} ends before ${ref.offset + ref.length}`)
        done += n
      }
      return buf
    } finally {
      this.unpin(h)
    }
  }

  private async pin (id: number): Promise<{ fd: number; h: Handle }> {
    const w = this.active?.id === id ? this.active : this.writers.get(id)
    if (w) { w.users++; return { fd: w.fd, h: w } }
    let r = this.readers.get(id)
    if (!r) {
      const ready = open(path.join(this.dir, segmentName(id)), 'r')
      r = { id, fd: -1, users: 0, ready }
      this.readers.set(id, r)
      const entry = r
      ready.then(fd => { entry.fd = fd }, () => { if (this.readers.get(id) === entry) this.readers.delete(id) })
    }
    r.users++
    try {
      return { fd: await r.ready, h: r }
    } catch (err) {
      r.users--
      throw new DeltafsError('JOURNAL', `cannot read payload segment ${segmentName(id)}: ${(err as Error).message}`, { cause: err })
    }
  }

  private unpin (h: Handle): void {
    if (this.readers.get(h.id) !== h) return this.done(h)
    h.users--
    if (h.users > 0) return
    if (h.removed || this.readers.size > READERS) {
      this.readers.delete(h.id)
      fs.close(h.fd, () => undefined)
    }
  }

  /** Ops referring to these segments went (one entry per op); returns how many segments became deletable. */
  release (segments: number[]): number {
    for (const id of segments) {
      const n = (this.counts.get(id) ?? 0) - 1
      if (n > 0) { this.counts.set(id, n); continue }
      this.counts.delete(id)
      if (this.active?.id !== id) this.idle.add(id)
    }
    return this.idle.size
  }

  /** Segments nothing refers to and nothing will append to. */
  deletable (): number[] { return [...this.idle] }

  /** Deletes segments that are still unreferenced. Call once the deletion of their references is durable. */
  async remove (segments: number[]): Promise<void> {
    for (const id of segments) {
      this.idle.delete(id)
      if (this.active?.id === id || (this.counts.get(id) ?? 0) > 0) continue
      this.dirty.delete(id)
      const r = this.readers.get(id)
      if (r) { r.removed = true; if (r.users === 0) { this.readers.delete(id); r.ready.then(fd => fs.close(fd, () => undefined), () => undefined) } }
      await fs.promises.rm(path.join(this.dir, segmentName(id)), { force: true })
    }
  }

  /**
   * Forces every byte appended so far to disk (the caller then makes its
   * references durable), and resolves with the watermark it made durable:
   * writes still in flight when it started may not be.
   */
  sync (): Promise<PayloadRef> {
    const run = this.syncChain.then(() => this.syncNow())
    this.syncChain = run.catch(() => undefined)
    return run
  }

  private async syncNow (): Promise<PayloadRef> {
    const mark = this.watermark()
    const ids = [...this.dirty]
    const dirDirty = this.dirDirty
    this.dirty.clear()
    this.dirDirty = false
    try {
      await Promise.all(ids.map(async id => {
        try {
          const h = this.active?.id === id ? this.active : this.writers.get(id)
          if (h) {
            h.users++
            try { await fdatasync(h.fd) } finally { this.done(h) }
            return
          }
          // Closed since: forcing the file through another descriptor forces the same pages.
          const fd = await open(path.join(this.dir, segmentName(id)), 'r').catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return undefined; throw err })
          if (fd === undefined) return // removed meanwhile: nothing refers to it
          try { await fdatasync(fd) } finally { await close(fd) }
        } catch (err) {
          this.dirty.add(id)
          throw err
        }
      }))
      if (dirDirty) {
        const fd = await open(this.dir, 'r')
        try { await fsync(fd) } finally { await close(fd) }
      }
    } catch (err) {
      if (dirDirty) this.dirDirty = true
      throw new DeltafsError('JOURNAL', `cannot sync payload segments: ${(err as Error).message}`, { cause: err })
    }
    return mark
  }

  async close (): Promise<void> {
    await this.syncChain
    const handles: Handle[] = [...this.writers.values(), ...(this.active ? [this.active] : [])]
    this.writers.clear()
    this.active = undefined
    for (const h of handles) await close(h.fd).catch(() => undefined)
    for (const r of this.readers.values()) await r.ready.then(fd => close(fd)).catch(() => undefined)
    this.readers.clear()
  }
}
