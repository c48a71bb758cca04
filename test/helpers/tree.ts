// A recursive description of a directory tree for byte-exact comparisons:
// type, permission bits, size and content hash, or symlink target; mtimes
// (whole milliseconds; timestamps.test.ts compares them to the ns) when asked for.
import { createHash } from 'node:crypto'
import fsp from 'node:fs/promises'
import path from 'node:path'

export interface Entry { type: 'file' | 'dir' | 'symlink' | 'other'; mode: number; size?: number; sha256?: string; target?: string; mtimeMs?: number }

export interface SnapshotOptions {
  /** Record mtimes of files ('files') or of files and directories ('all'). Symlink times are never compared. */
  mtimes?: 'files' | 'all'
  /** Relative paths (and everything under them) to leave out. */
  exclude?: (rel: string) => boolean
}

export async function snapshot (root: string, opts: SnapshotOptions = {}): Promise<Record<string, Entry>> {
  const out: Record<string, Entry> = {}
  async function walk (rel: string): Promise<void> {
    const names = (await fsp.readdir(path.join(root, rel))).sort()
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name
      if (opts.exclude?.(r)) continue
      const abs = path.join(root, r)
      const st = await fsp.lstat(abs)
      const mode = st.mode & 0o7777
      const mtimeMs = Math.floor(st.mtimeMs)
      if (st.isSymbolicLink()) out[r] = { type: 'symlink', mode: 0, target: await fsp.readlink(abs) }
      else if (st.isDirectory()) {
        out[r] = opts.mtimes === 'all' ? { type: 'dir', mode, mtimeMs } : { type: 'dir', mode }
        await walk(r)
      } else if (st.isFile()) {
        const sha256 = createHash('sha256').update(await fsp.readFile(abs)).digest('hex')
        out[r] = opts.mtimes ? { type: 'file', mode, size: st.size, sha256, mtimeMs } : { type: 'file', mode, size: st.size, sha256 }
      } else out[r] = { type: 'other', mode }
    }
  }
  await walk('')
  return out
}

/** Null when equal; otherwise a short description of the first differences. */
export function diffTrees (a: Record<string, Entry>, b: Record<string, Entry>, max = 5): string | null {
  const diffs: string[] = []
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = JSON.stringify(a[k])
    const y = JSON.stringify(b[k])
    if (x !== y) diffs.push(`${k}: ${x ?? 'missing'} != ${y ?? 'missing'}`)
    if (diffs.length >= max) break
  }
  return diffs.length ? diffs.join('\n') : null
}
