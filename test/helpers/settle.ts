// Waiting for a cluster to go quiet, and reading the conflict copies it made.
import path from 'node:path'
import { type Entry, diffTrees, snapshot } from './tree.js'
import { type MountHandle, sleep, waitFor } from './processes.js'
import type { Test } from 'tap'

export type Tree = Record<string, Entry>

/**
 * Resolves with the common tree once every mount is connected, has nothing
 * left to push or hold, and all trees are byte-identical twice in a row a
 * moment apart (a conflict's Refresh can land after the outboxes drained).
 * Throws with the last difference seen.
 */
export async function settle (mounts: MountHandle[], timeoutMs = 60_000): Promise<Tree> {
  let last = 'nothing compared yet'
  let previous: string | undefined
  try {
    return await waitFor('the mounts to converge', async () => {
      for (const m of mounts) {
        const s = await m.status()
        if (s.connected !== true || Number(s.pendingTx) !== 0 || Number(s.heldRewrites ?? 0) !== 0) {
          last = `${m.mountpoint}: connected ${String(s.connected)}, pendingTx ${String(s.pendingTx)}, heldRewrites ${String(s.heldRewrites)}`
          previous = undefined
          return undefined
        }
      }
      const trees = await Promise.all(mounts.map(m => snapshot(m.mountpoint)))
      for (let i = 1; i < trees.length; i++) {
        const d = diffTrees(trees[0]!, trees[i]!)
        if (d !== null) {
          last = `${mounts[0]!.mountpoint} vs ${mounts[i]!.mountpoint}:\n${d}`
          previous = undefined
          return undefined
        }
      }
      const key = JSON.stringify(trees[0])
      if (previous !== key) {
        previous = key
        last = 'identical once; checking again'
        await sleep(400)
        return undefined
      }
      return trees[0]
    }, timeoutMs, 200)
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${last}`)
  }
}

export interface ConflictCopy { path: string; device: string; time: string }

/** The conflict copies of relPath in a tree: `stem (conflict <device> <UTC time>).ext` beside it. */
export function conflictCopiesOf (tree: Tree, relPath: string): ConflictCopy[] {
  const dir = path.posix.dirname(relPath)
  const ext = path.posix.extname(relPath)
  const stem = path.posix.basename(relPath, ext)
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  const re = new RegExp(`^${esc(stem)} \\(conflict (\\S+) (\\d{8}T\\d{6}Z)(?:-\\d+)?\\)${esc(ext)}$`)
  const out: ConflictCopy[] = []
  for (const [p, e] of Object.entries(tree)) {
    if (e.type !== 'file' || path.posix.dirname(p) !== dir) continue
    const m = re.exec(path.posix.basename(p))
    if (m) out.push({ path: p, device: m[1]!, time: m[2]! })
  }
  return out
}

/** Every file whose name marks it as a conflict copy. */
export function allConflictCopies (tree: Tree): string[] {
  return Object.keys(tree).filter(p => tree[p]!.type === 'file' && / \(conflict \S+ \d{8}T\d{6}Z(?:-\d+)?\)/.test(path.posix.basename(p)))
}

/** settle(), failing the test (and returning undefined) when the mounts do not converge. */
export async function settleOrFail (t: Test, mounts: MountHandle[], timeoutMs = 40_000): Promise<Tree | undefined> {
  try {
    return await settle(mounts, timeoutMs)
  } catch (err) {
    t.fail((err as Error).message)
    return undefined
  }
}
