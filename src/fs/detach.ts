// One name of a hard-linked file given a file of its own, with the same
// content, mode and times, in one rename: the other names keep the old file.
import fs from 'node:fs'
import fsp from 'node:fs/promises'

/** Detaches real from the file's other names; tmp is a free path on the same filesystem. */
export async function detachName (real: string, tmp: string): Promise<void> {
  const st = await fsp.lstat(real)
  try {
    await fsp.copyFile(real, tmp, fs.constants.COPYFILE_FICLONE)
    await fsp.chmod(tmp, st.mode & 0o7777)
    await fsp.utimes(tmp, st.atime, st.mtime)
    await fsp.rename(tmp, real)
  } catch (err) {
    await fsp.rm(tmp, { force: true })
    throw err
  }
}
