// mkfifo(3) for a backing path. Node has no mkfifo/mknod binding and the npm
// ones are unmaintained, so this runs coreutils' mkfifo: FIFOs are created
// rarely, and a process spawn is an acceptable cost for them.
import { execFile } from 'node:child_process'

const ERRORS: Array<[RegExp, string]> = [
  [/File exists/, 'EEXIST'], [/No such file/, 'ENOENT'], [/Permission denied/, 'EACCES'],
  [/Not a directory/, 'ENOTDIR'], [/File name too long/, 'ENAMETOOLONG'], [/No space/, 'ENOSPC'],
  [/Read-only file system/, 'EROFS'], [/Operation not permitted/, 'EPERM'],
]

/** Creates a FIFO with exactly these permission bits (-m is not subject to the umask). */
export function mkfifo (real: string, mode: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('mkfifo', ['-m', (mode & 0o7777).toString(8), '--', real], { env: { ...process.env, LC_ALL: 'C' } }, (err, _out, stderr) => {
      if (!err) return resolve()
      const code = ERRORS.find(([re]) => re.test(stderr))?.[1]
      reject(Object.assign(new Error(`mkfifo ${real}: ${stderr.trim() || err.message}`), code ? { code } : {}))
    })
  })
}
