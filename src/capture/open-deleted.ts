// Files that another device deleted while this mount had them open for
// writing. On a local disk such a file lives on for its descriptors and its
// later writes die with it; on a synced volume the deletion came from
// elsewhere, and DESIGN §6 keeps an edit that races a delete. So the file is
// moved out of the tree instead of unlinked (its descriptors keep the inode),
// and the first write through any of them brings it back as a conflict copy,
// journaled as a new file, under which that write and every later one are
// captured. Closed without a write, it is simply gone, as the delete said.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { conflictCopyName } from '../sync/conflict-policy.js'
import { logger } from '../util/log.js'

const log = logger('capture')

export interface OpenDeletedSupport {
  /** The backing path of a volume path. */
  real (volPath: string): string
  /** A new path outside the tree, on the backing filesystem, swept when the mount starts. */
  aside (): string
  deviceId: string
  /** Journals the file now at volPath as a new file. */
  journalNewFile (volPath: string): Promise<void>
  /** The copy is made: for `deltafs status` and the conflict count. */
  kept (entry: { path: string; copy: string; winner: string; seq: number }): Promise<void>
  now?: () => Date
}

interface Deleted {
  /** Its volume path before the delete. */
  name: string
  /** Where it waits outside the tree until written. */
  aside: string
  by: { deviceId: string; seq: number }
  handles: Set<number>
  /** Its conflict copy, once linked into the tree. */
  copy?: string
  /** The copy is journaled as a new file. */
  journaled?: true
  /** The copy being made: concurrent first writes wait for the same one. */
  making?: Promise<Copy>
}

/** A copy made, and the handles that follow it from then on: no longer this class's. */
export interface Copy { copy: string; handles: number[] }

export class OpenDeleted {
  private readonly byHandle = new Map<number, Deleted>()

  constructor (private readonly support: OpenDeletedSupport) {}

  /** Moves the file at name out of the tree for these handles; the caller's unlink then finds nothing. */
  async adopt (name: string, handles: Iterable<number>, by: { deviceId: string; seq: number }): Promise<void> {
    const aside = this.support.aside()
    try {
      await fsp.rename(this.support.real(name), aside)
    } catch (err) {
      // Gone already: the delete that follows has nothing to do either.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      throw err
    }
    // Read after the rename: a handle released meanwhile is not among them,
    // and with none left the file goes as the delete said.
    const d: Deleted = { name, aside, by, handles: new Set(handles) }
    if (d.handles.size === 0) { await fsp.rm(aside, { force: true }); return }
    for (const fh of d.handles) this.byHandle.set(fh, d)
    log.info({ path: name, device: by.deviceId, seq: by.seq, handles: d.handles.size }, 'deleted by another device while open here for writing: kept for its descriptors until they write or close')
  }

  /** Whether fh is open on a deleted file whose copy is not made yet. */
  has (fh: number): boolean { return this.byHandle.has(fh) }

  /**
   * Makes the copy (the caller is about to write through fh). From then on
   * its handles are the caller's to follow, as handles of the copy.
   */
  copyFor (fh: number): Promise<Copy> {
    const d = this.byHandle.get(fh)
    if (!d) return Promise.reject(new Error(`handle ${fh} is not open on a deleted file`))
    // A failed attempt is not kept: the next write tries again.
    d.making ??= this.makeCopy(d).catch((err: unknown) => { d.making = undefined; throw err })
    return d.making
  }

  // Each step is remembered as done: an attempt that failed after the link
  // goes on from there, since the aside name is gone once the copy has it.
  private async makeCopy (d: Deleted): Promise<Copy> {
    const { real, deviceId } = this.support
    if (d.copy === undefined) {
      const at = (this.support.now ?? (() => new Date()))()
      const taken = (p: string): boolean => fs.existsSync(real(p))
      let name = conflictCopyName(d.name, deviceId, at, taken)
      // Its directory may have gone with it: the copy then goes to the top.
      if (!await isDir(path.dirname(real(name)))) name = conflictCopyName('/' + path.posix.basename(d.name), deviceId, at, taken)
      // A link, not a rename: it never replaces a file that appeared at that name meanwhile.
      await fsp.link(d.aside, real(name))
      d.copy = name
    }
    const copy = d.copy
    await fsp.rm(d.aside, { force: true })
    if (!d.journaled) {
      await this.support.journalNewFile(copy)
      d.journaled = true
    }
    await this.support.kept({ path: d.name, copy, winner: d.by.deviceId, seq: d.by.seq })
    log.warn({ path: d.name, copy, device: d.by.deviceId, seq: d.by.seq },
      `conflict: ${d.name} was deleted on device ${d.by.deviceId} (seq ${d.by.seq}) while open here, and written to after that; the deletion stands and what was written is kept as ${path.posix.basename(copy)}`)
    // Only now: a write through another handle meanwhile waits for this copy.
    for (const fh of d.handles) this.byHandle.delete(fh)
    // Read when the caller takes them: a handle released meanwhile is not among them.
    return { copy, get handles () { return [...d.handles] } }
  }

  /** fh is closed. Returns the copy it was following, if one was made; the last handle of an unwritten file removes it. */
  async release (fh: number): Promise<string | undefined> {
    const d = this.byHandle.get(fh)
    if (!d) return undefined
    this.byHandle.delete(fh)
    d.handles.delete(fh)
    if (d.making) await d.making.catch(() => undefined)
    if (d.copy === undefined && d.handles.size === 0) await fsp.rm(d.aside, { force: true })
    return d.copy
  }
}

async function isDir (p: string): Promise<boolean> {
  return (await fsp.stat(p).catch(() => undefined))?.isDirectory() === true
}
