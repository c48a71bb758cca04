// A fuse-native session with the mount options deltafs needs. fuse-native
// has no switch for big_writes/max_write and drops zero timeouts, so the
// option string is built here.
import type { FuseOps } from 'fuse-native'
import { statfs } from 'node:fs/promises'
import { promisify } from 'node:util'
import { FixedFuse } from './fuse-native-fixes.js'
import type { FuseShortcuts } from './vfs.js'

export interface FuseSessionOptions {
  fsname: string
  /** Seconds the kernel may cache attributes. */
  attrTimeout: number
  /**
   * Seconds the kernel may cache names found and names missing. A mount
   * keeps both at 0 (the default): see open(). Only the bench's floor sets
   * them, to measure what that coherence costs.
   */
  entryTimeout?: number
  negativeTimeout?: number
  /**
   * Lets users other than the daemon's use the mount (the kernel checks
   * modes: default_permissions). Needs root or user_allow_other in
   * /etc/fuse.conf. fuse-native does not tell who made a request, so files
   * they create belong to the daemon's user.
   */
  allowOther?: boolean
  /**
   * Report the backing files' inode numbers. Without it libfuse numbers
   * each path on its own, so hard links look like different files (cp -a,
   * rsync -H, tar and du copy or count them twice). fuse-native passes
   * st_ino in 32 bits, so this is only safe where inode numbers fit in 32
   * bits: truncated ones could make different files look like links.
   */
  useIno: boolean
  /** What the FUSE threads may answer without the Vfs. */
  shortcuts?: FuseShortcuts
}

class DeltafsFuse extends FixedFuse {
  constructor (mnt: string, ops: FuseOps, private readonly extra: string[]) {
    super(mnt, ops, { timeout: 30_000 })
  }

  protected override _fuseOptions (): string {
    return '-o' + this.extra.join(',')
  }
}

export class FuseSession {
  private fuse: DeltafsFuse | undefined
  /** The requests answered on FUSE threads (FuseShortcuts). */
  shortcutsTaken: string[] = []

  constructor (readonly mountpoint: string, private readonly ops: FuseOps, private readonly opts: FuseSessionOptions) {}

  async open (): Promise<void> {
    if (this.fuse) return
    const t = this.opts.attrTimeout
    const fuse = new DeltafsFuse(this.mountpoint, this.ops, [
      // libfuse2 caps writes at 4 KiB without big_writes.
      'big_writes', 'max_write=131072', 'max_read=131072',
      // Close-to-open coherence: every path use is looked up afresh (which
      // also refreshes the attributes), and a file's cached pages are
      // dropped at every open. Not auto_cache, which keeps them
      // when mtime and size look unchanged: fuse-native passes times in whole
      // milliseconds, so a change within the millisecond of the previous one
      // at the same size went unseen, and each name of a hard-linked file
      // has its own kernel inode and pages, which a write through another
      // name leaves stale (test/integration/page-cache.test.ts).
      `attr_timeout=${t}`, `entry_timeout=${this.opts.entryTimeout ?? 0}`, `negative_timeout=${this.opts.negativeTimeout ?? 0}`,
      // The kernel checks modes, as a local filesystem does.
      'default_permissions',
      ...(this.opts.useIno ? ['use_ino'] : []),
      ...(this.opts.allowOther ? ['allow_other'] : []),
      `fsname=${this.opts.fsname.replace(/[,\\]/g, '_')}`, 'subtype=deltafs',
    ])
    await promisify(fuse.mount.bind(fuse))()
    this.fuse = fuse
    this.shortcutsTaken = this.opts.shortcuts ? fuse.takeShortcuts(this.opts.shortcuts) : []
  }

  async close (): Promise<void> {
    const fuse = this.fuse
    if (!fuse) return
    this.fuse = undefined
    await promisify(fuse.unmount.bind(fuse))()
  }
}

/** ext2/3/4 inode numbers are 32-bit: the only backing filesystems where use_ino is exact. */
const EXT_SUPER_MAGIC = 0xef53

/** Whether the filesystem holding dir has inode numbers that fuse-native can pass whole. */
export async function inodesFit32Bits (dir: string): Promise<boolean> {
  return (await statfs(dir)).type === EXT_SUPER_MAGIC
}
