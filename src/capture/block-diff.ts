// Which bytes of a write actually change the file. Blocks are 4 KiB aligned
// to file offsets; inside a changed block only the run from its first to its
// last differing byte is kept, and runs that touch are merged.

export const BLOCK_SIZE = 4096

export interface ChangedRun { offset: number; data: Buffer }

/**
 * @param pos   file offset of the write
 * @param next  the bytes being written
 * @param old   the bytes currently at [pos, pos + oldLen); past oldLen the file ends
 */
export function changedRuns (pos: number, next: Buffer, old: Buffer, oldLen: number): ChangedRun[] {
  const runs: ChangedRun[] = []
  const end = pos + next.length
  let blockStart = pos
  while (blockStart < end) {
    const blockEnd = Math.min(end, (Math.floor(blockStart / BLOCK_SIZE) + 1) * BLOCK_SIZE)
    let first = -1
    let last = -1
    // Most blocks of an in-place rewrite are unchanged: a native compare skips them.
    const bs = blockStart - pos
    const be = blockEnd - pos
    if (be <= oldLen && next.compare(old, bs, be, bs, be) === 0) { blockStart = blockEnd; continue }
    for (let o = blockStart; o < blockEnd; o++) {
      const i = o - pos
      if (i >= oldLen || next[i] !== old[i]) {
        if (first < 0) first = i
        last = i
        // Past the old end every byte is new: no need to look at each one.
        if (i >= oldLen) { last = blockEnd - pos - 1; break }
      }
    }
    if (first >= 0) {
      const prev = runs[runs.length - 1]
      if (prev && prev.offset + prev.data.length === pos + first) {
        prev.data = next.subarray(prev.offset - pos, last + 1)
      } else {
        runs.push({ offset: pos + first, data: next.subarray(first, last + 1) })
      }
    }
    blockStart = blockEnd
  }
  return runs
}
