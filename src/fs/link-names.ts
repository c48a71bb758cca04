// LinkNames: the other names, in the volume, of a hard-linked file.
//
// Changes are journaled by name, but a write (or truncate, chmod, xattr)
// through one name changes the file under all of them. Where another mount
// has those names as different files, even for a moment (a link not applied
// there yet, or undone by a race), it would apply the change to one name
// only, and the mounts would end different. So CaptureVfs journals the
// change under every name (the others apply it once per name, which changes
// nothing more where the names are one file there too), and each name's
// record and conflict check stay its own. The Applier asks the same of the
// names here, to keep a remote change to the names its author changed.
//
// Nearly every file has one name: that is remembered per path, so a run of
// writes costs one lstat, until a namespace change here (forget) or a
// remote apply (a new epoch) could have linked it. A linked file's names
// are cached per inode and checked by lstat on each use; the tree is walked
// again only when a cached name is gone or the link count changed since the
// last walk. Names outside the tree (a record
// kept by link, a name set aside) count in nlink but are never found, so the
// count alone cannot say a walk is needed.
import type { BigIntStats } from 'node:fs'
import fsp from 'node:fs/promises'
import { isFuseHidden } from './fuse-hidden.js'
import { sameFile } from '../util/same-file.js'

const MAX_SINGLE = 4096

interface Known { names: Set<string>; nlink: bigint }

export class LinkNames {
  private readonly byIno = new Map<bigint, Known>()
  /** Paths found with one name, since the epoch below began. */
  private readonly single = new Set<string>()
  private epoch = -1

  /** real: the backing path of a volume path ('/' is the volume's root). */
  constructor (private readonly real: (p: string) => string) {}

  /**
   * The names of the file at p other than p (none when it has one name, or
   * is not a regular file). epoch: changes whenever names may have changed
   * other than through forget (the count of remote applies).
   */
  async othersOf (p: string, epoch: number): Promise<string[]> {
    if (epoch !== this.epoch) { this.single.clear(); this.epoch = epoch }
    if (this.single.has(p)) return []
    const st = await this.lstat(p)
    if (!st?.isFile() || st.nlink < 2n || isFuseHidden(p)) {
      if (this.single.size >= MAX_SINGLE) this.single.clear()
      this.single.add(p)
      return []
    }
    const known = this.byIno.get(st.ino)
    if (known && known.nlink === st.nlink) {
      const still = await this.check(known.names, st)
      if (still.length === known.names.size) return this.without(still, p, st)
    }
    const names = await this.walk(st)
    if (this.byIno.size >= MAX_SINGLE) this.byIno.clear()
    this.byIno.set(st.ino, { names: new Set(names), nlink: st.nlink })
    return this.without(names, p, st)
  }

  /** A local change of the namespace (a link, unlink, rename): any path may have another name now. */
  forget (): void {
    this.single.clear()
  }

  private without (names: string[], p: string, st: BigIntStats): string[] {
    // p itself may be new to the cache (a name made since the walk by a rename of another).
    if (!names.includes(p)) this.byIno.set(st.ino, { names: new Set([...names, p]), nlink: st.nlink })
    return names.filter(n => n !== p)
  }

  private async check (names: Set<string>, st: BigIntStats): Promise<string[]> {
    const out: string[] = []
    for (const n of names) {
      const s = await this.lstat(n)
      if (s && sameFile(s, st)) out.push(n)
    }
    return out
  }

  /** Every name of the file st under root, by a walk of the whole tree. */
  private async walk (st: BigIntStats): Promise<string[]> {
    const found: string[] = []
    const visit = async (rel: string): Promise<void> => {
      let entries
      try {
        entries = await fsp.readdir(this.real(rel || '/'), { withFileTypes: true })
      } catch {
        return // removed meanwhile, or unreadable: its names are not found
      }
      for (const e of entries) {
        const volPath = `${rel}/${e.name}`
        if (e.isDirectory()) await visit(volPath)
        else if (e.isFile() && !isFuseHidden(volPath)) {
          const s = await this.lstat(volPath)
          if (s && sameFile(s, st)) found.push(volPath)
        }
      }
    }
    await visit('')
    return found
  }

  private lstat (p: string): Promise<BigIntStats | undefined> {
    return fsp.lstat(this.real(p), { bigint: true }).catch(() => undefined)
  }
}
