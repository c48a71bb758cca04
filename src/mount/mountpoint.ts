// Checks a mount point before FUSE takes it: it must be an existing, empty
// directory. A dead FUSE mount left by a killed daemon is cleaned up.
import { execFile } from 'node:child_process'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import { DeltafsError, isErrno } from '../util/errors.js'
import type { Logger } from '../util/log.js'

export async function isMounted (dir: string): Promise<boolean> {
  const mounts = await fsp.readFile('/proc/self/mounts', 'utf8').catch(() => '')
  // /proc/mounts escapes spaces and the like as octal.
  return mounts.split('\n').some(line => line.split(' ')[1]?.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) === dir)
}

export async function prepareMountpoint (mountpoint: string, log: Logger): Promise<string> {
  const dir = path.resolve(mountpoint)
  let st
  try {
    st = await fsp.stat(dir)
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new DeltafsError('MOUNTPOINT', `mount point ${dir} does not exist`)
    if (isErrno(err, 'ENOTCONN')) {
      log.warn({ mountpoint: dir }, 'found a dead FUSE mount at the mount point; unmounting it')
      await promisify(execFile)('fusermount', ['-uz', dir]).catch(() => undefined)
      return prepareMountpoint(mountpoint, log)
    }
    throw new DeltafsError('MOUNTPOINT', `cannot use mount point ${dir}: ${(err as Error).message}`, { cause: err })
  }
  if (!st.isDirectory()) throw new DeltafsError('MOUNTPOINT', `mount point ${dir} is not a directory`)
  if (await isMounted(dir)) throw new DeltafsError('MOUNTPOINT', `mount point ${dir} is already a mount`)
  const entries = await fsp.readdir(dir)
  if (entries.length > 0) throw new DeltafsError('MOUNTPOINT', `mount point ${dir} is not empty (${entries.length} entries)`)
  return dir
}
