// Whether two lstat results are one file: two hard links of it, or one name
// seen twice. rename(2) between two such names does nothing (POSIX).
import type { BigIntStats, Stats } from 'node:fs'

export function sameFile (a: Stats | BigIntStats, b: Stats | BigIntStats): boolean {
  return a.ino === b.ino && a.dev === b.dev
}
