// Sets a file's times to the nanosecond, or leaves one as it is, with
// utimensat(2) through native/ns-time (built at install). fs.utimes cannot:
// it takes seconds as a double and has no "omit". Without the addon (no
// compiler at install) times are set to the microsecond, which still
// replicates what FUSE and the other mounts can show, short of the ns.
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import { type TimeSet, splitNs, utimesSecondsOf } from './times.js'

interface NsTimeAddon {
  setTimes (path: string, atimeSec: bigint, atimeNsec: number, mtimeSec: bigint, mtimeNsec: number, nofollow: boolean): number
  UTIME_NOW: number
  UTIME_OMIT: number
}

function loadAddon (): NsTimeAddon | undefined {
  try {
    // From dist/src/util/ to the repository's native/.
    return createRequire(import.meta.url)('../../../native/ns-time/build/Release/ns_time.node') as NsTimeAddon
  } catch {
    return undefined
  }
}
const addon = loadAddon()

/** Whether times are set to the nanosecond (the addon is there). */
export const nsExactTimes = addon !== undefined

const codeOf = new Map<number, string>()
for (const [code, n] of Object.entries(os.constants.errno)) if (!codeOf.has(n)) codeOf.set(n, code)

/** utimensat on path; follow=false sets a symlink's own times. Throws as fs calls do (code ENOENT, ...). */
export function setTimes (path: string, atime: TimeSet, mtime: TimeSet, follow = false): void {
  if (atime === 'omit' && mtime === 'omit') return
  if (addon) {
    const a = timespec(atime, addon)
    const m = timespec(mtime, addon)
    const errno = addon.setTimes(path, a.sec, a.nsec, m.sec, m.nsec, !follow)
    if (errno !== 0) {
      const code = codeOf.get(errno) ?? 'EIO'
      throw Object.assign(new Error(`${code}: utimensat '${path}'`), { code, errno: -errno, syscall: 'utimensat', path })
    }
    return
  }
  const needsStat = atime === 'omit' || mtime === 'omit'
  const st = needsStat ? (follow ? fs.statSync(path, { bigint: true }) : fs.lstatSync(path, { bigint: true })) : undefined
  const now = BigInt(Date.now()) * 1_000_000n
  const pick = (t: TimeSet, current: bigint | undefined): number =>
    utimesSecondsOf(t === 'omit' ? current! : t === 'now' ? now : t)
  const set = follow ? fs.utimesSync : fs.lutimesSync
  set(path, pick(atime, st?.atimeNs), pick(mtime, st?.mtimeNs))
}

function timespec (t: TimeSet, a: NsTimeAddon): { sec: bigint; nsec: number } {
  if (t === 'now') return { sec: 0n, nsec: a.UTIME_NOW }
  if (t === 'omit') return { sec: 0n, nsec: a.UTIME_OMIT }
  return splitNs(t)
}
