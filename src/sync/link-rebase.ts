// This mount's unsent hard links, replayed over a remote change that the
// node ordered before them. A link is journaled as "link from to `to`" and
// made here at once, but the others make it only when they reach it in the
// volume's order: after every remote change sequenced before it, and then
// as link(2) does it (nothing if `to` is taken, the file `from` names then).
// A remote change of either name applied here on top of the link would act
// on a different tree than the one it meets on the others: a deletion of
// `to` would take the link away here and leave it there, a file renamed over
// `from` would leave `to` on the old file here and give it the new one there.
// So for the remote change the link is undone (the name set aside, not
// deleted: nothing is lost if the change fails) and then made again as the
// others will make it. The name set aside is written down first, so a
// mount killed in between puts it back when it starts (recover).
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import type { Stats } from 'node:fs'
import path from 'node:path'
import { resolveInside } from '../fs/safe-path.js'
import { sameFile } from '../util/same-file.js'
import { logger } from '../util/log.js'
import type { PendingTx } from '../journal/journal.js'

const log = logger('sync')

export interface PendingLink {
  from: string; to: string
  /** The device seq of the transaction that made it: the changes journaled after it went through the link. */
  deviceSeq?: number
}

/** What LinkRebase reads of this mount's outbox. */
export interface PendingLinks {
  /** The hard links of transactions not yet acked, oldest first. */
  list: () => Promise<PendingLink[]>
  /** Where names are set aside: on the backing filesystem, outside the visible tree, kept across restarts. */
  asideDir: string
  /** The outbox after a device seq (Journal.readOutbox). */
  outbox?: (after: number, limit: number) => Promise<PendingTx[]>
}

interface SetAside { link: PendingLink; tmp: string; note: string }

async function lstatOrNull (p: string): Promise<Stats | undefined> {
  return await fsp.lstat(p).catch(() => undefined)
}

export class LinkRebase {
  private n = 0
  private readonly dir: string

  constructor (private readonly root: string, private readonly links: PendingLinks) {
    this.dir = links.asideDir
  }

  /**
   * Puts back what a mount killed during a remote change left aside: where
   * the name is still free, the link as it was (the change is applied again,
   * since its apply was not recorded, or it was and left the name free).
   */
  static async recover (dir: string, root: string): Promise<number> {
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 })
    let restored = 0
    for (const name of (await fsp.readdir(dir)).filter(n => n.endsWith('.json'))) {
      const note = path.join(dir, name)
      const tmp = note.slice(0, -'.json'.length)
      // A note cut short by the kill was written before its rename: nothing left the tree.
      const to = await fsp.readFile(note, 'utf8').then(text => (JSON.parse(text) as { to?: unknown }).to).catch(() => undefined)
      const kept = typeof to === 'string' ? await lstatOrNull(tmp) : undefined
      if (kept && typeof to === 'string') {
        const real = await resolveInside(root, to)
        if (await lstatOrNull(real)) await fsp.rm(tmp, { force: true })
        else { await fsp.rename(tmp, real); restored++ }
      }
      await fsp.rm(note, { force: true })
    }
    // Without a note a file never left the tree (the note comes first).
    for (const name of await fsp.readdir(dir)) await fsp.rm(path.join(dir, name), { force: true })
    return restored
  }

  /** Runs apply, a remote change of `paths`, with the pending links that name any of them undone, and makes them again after. */
  async around<T> (paths: string[], apply: () => Promise<T>): Promise<T> {
    const touched = new Set(paths)
    const links = (await this.links.list()).filter(l => touched.has(l.from) || touched.has(l.to))
    if (links.length === 0) return await apply()
    const aside: SetAside[] = []
    try {
      for (const link of links) {
        const made = await this.setAside(link)
        if (made) aside.push(made)
      }
      return await apply()
    } finally {
      for (const a of aside.reverse()) await this.makeAgain(a)
    }
  }

  /** Moves `to` out of the tree while it is still the link (the file `from` names here); a name that is something else by now is left alone. */
  private async setAside (link: PendingLink): Promise<SetAside | undefined> {
    const to = await resolveInside(this.root, link.to)
    const from = await resolveInside(this.root, link.from)
    const [t, f] = await Promise.all([lstatOrNull(to), lstatOrNull(from)])
    if (!t?.isFile() || !f || !sameFile(t, f)) return undefined
    if (this.n === 0) await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 })
    const tmp = path.join(this.dir, `${process.pid}-${++this.n}`)
    const note = `${tmp}.json`
    await fsp.writeFile(note, JSON.stringify({ to: link.to }))
    await fsp.rename(to, tmp)
    return { link, tmp, note }
  }

  /** What link(from, to) makes of the tree as the remote change left it, as every other mount will do it. */
  private async makeAgain (aside: SetAside): Promise<void> {
    if (await this.restore(aside)) await this.writeAgain(aside.link)
    await fsp.rm(aside.note, { force: true })
  }

  /**
   * The writes and truncations this mount made through the link's name
   * after the link, made again: the others apply them to what the remote
   * change and the link leave there, not to the file they were made on
   * here. (Writes and truncations in order are idempotent, so those already
   * in the file change nothing.)
   */
  private async writeAgain (link: PendingLink): Promise<void> {
    const read = this.links.outbox
    if (!read || link.deviceSeq === undefined) return
    const real = await resolveInside(this.root, link.to)
    let fh: fsp.FileHandle | undefined
    try {
      for (let after = link.deviceSeq; ;) {
        const page = await read(after, 64)
        if (page.length === 0) break
        for (const { deviceSeq, tx } of page) {
          after = deviceSeq
          if (tx.path !== link.to) continue
          for (const op of tx.ops) {
            // Anything else changes which file the name is: what follows is not through the link.
            if (!('write' in op && op.write) && !('truncate' in op && op.truncate) && !('setAttr' in op && op.setAttr)) return
            fh ??= await fsp.open(real, fs.constants.O_WRONLY | fs.constants.O_NOFOLLOW)
            if ('write' in op && op.write) await fh.write(op.write.data, 0, op.write.data.length, op.write.offset)
            else if ('truncate' in op && op.truncate) await fh.truncate(op.truncate.size)
          }
        }
      }
    } finally {
      await fh?.close()
    }
  }

  /** Whether the name ends as a name of the file the link's source names. */
  private async restore ({ link, tmp }: SetAside): Promise<boolean> {
    const to = await resolveInside(this.root, link.to)
    const from = await resolveInside(this.root, link.from)
    const [t, f, kept] = await Promise.all([lstatOrNull(to), lstatOrNull(from), lstatOrNull(tmp)])
    if (!kept) return false
    if (t) {
      // Taken by the remote change: the link finds the name taken there too.
      await fsp.rm(tmp, { force: true })
      return false
    } else if (f?.isFile() && sameFile(f, kept)) {
      await fsp.rename(tmp, to)
    } else if (f?.isFile()) {
      // Another file at `from` now: the others link that one.
      await fsp.link(from, to)
      await fsp.rm(tmp, { force: true })
      log.info({ from: link.from, to: link.to }, 'a hard link made here and not yet sent now names the file a remote change put at its source, as it will on the other mounts')
    } else if (kept.nlink > 1) {
      // No source left: the others ask for `to` whole (Applier.checkBaseExists),
      // so it must be a file of its own here, not a name of one moved elsewhere.
      await fsp.copyFile(tmp, to, fs.constants.COPYFILE_FICLONE)
      await fsp.chmod(to, kept.mode & 0o7777)
      await fsp.utimes(to, kept.atime, kept.mtime)
      await fsp.rm(tmp, { force: true })
      return false
    } else {
      await fsp.rename(tmp, to)
      return false
    }
    return true
  }
}
