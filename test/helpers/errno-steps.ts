// A fixed sequence of file operations whose outcomes (an errno code or
// "OK") are printed as JSON, run in the current directory: the errno
// comparison test runs it on a plain directory and on a mount and compares.
// Usage: node errno-steps.js root OUTSIDE_DIR  |  node errno-steps.js nobody
// The nobody phase drops to uid/gid 65534 first and uses the files the root
// phase left. Every path is relative: "/" may not be searchable by nobody.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import { getAttribute, setAttribute } from 'fs-xattr'

const { O_CREAT, O_EXCL, O_WRONLY, O_RDONLY, O_NOFOLLOW, O_DIRECTORY, O_NONBLOCK } = fs.constants

type Step = [name: string, run: () => unknown]

function rootSteps (outside: string): Step[] {
  return [
    ['open a missing file', () => fs.openSync('missing', 'r')],
    ['create in a missing directory', () => fs.writeFileSync('nodir/f', '')],
    ['mkdir', () => fs.mkdirSync('d')],
    ['mkdir again', () => fs.mkdirSync('d')],
    ['mkdir d/sub', () => fs.mkdirSync('d/sub')],
    ['write d/sub/x', () => fs.writeFileSync('d/sub/x', 'x')],
    ['write f', () => fs.writeFileSync('f', 'data\n')],
    ['O_CREAT|O_EXCL of an existing file', () => fs.openSync('f', O_CREAT | O_EXCL | O_WRONLY)],
    ['rmdir a non-empty directory', () => fs.rmdirSync('d')],
    ['mkdir e', () => fs.mkdirSync('e')],
    ['rename a directory over a non-empty one', () => fs.renameSync('e', 'd')],
    ['open a directory for writing', () => fs.openSync('d', 'r+')],
    ['open a directory with O_CREAT|O_TRUNC', () => fs.openSync('d', 'w')],
    ['unlink a directory', () => fs.unlinkSync('d')],
    ['truncate a directory', () => fs.truncateSync('d', 0)],
    ['rename a file over a directory', () => fs.renameSync('f', 'd')],
    ['rename a directory over a file', () => fs.renameSync('e', 'f')],
    ['mkdir under a file', () => fs.mkdirSync('f/x')],
    ['open under a file', () => fs.openSync('f/x', 'r')],
    ['rmdir a file', () => fs.rmdirSync('f')],
    ['readdir a file', () => fs.readdirSync('f')],
    ['O_DIRECTORY on a file', () => fs.openSync('f', O_RDONLY | O_DIRECTORY)],
    ['255-byte name', () => fs.writeFileSync('n'.repeat(255), '')],
    ['256-byte name', () => fs.writeFileSync('n'.repeat(256), '')],
    ['255-byte unicode name', () => fs.writeFileSync('日'.repeat(85), '')],
    ['258-byte unicode name', () => fs.mkdirSync('日'.repeat(86))],
    ['lstat of a 256-byte name', () => fs.lstatSync('m'.repeat(256))],
    ['symlink loop', () => { fs.symlinkSync('loop-b', 'loop-a'); fs.symlinkSync('loop-a', 'loop-b') }],
    ['open a symlink loop', () => fs.openSync('loop-a', 'r')],
    ['stat a symlink loop', () => fs.statSync('loop-a')],
    ['symlink to f', () => fs.symlinkSync('f', 'to-f')],
    ['open a symlink with O_NOFOLLOW', () => fs.openSync('to-f', O_RDONLY | O_NOFOLLOW)],
    ['open a dangling symlink', () => { fs.symlinkSync('nowhere', 'dangling'); fs.openSync('dangling', 'r') }],
    ['symlink over an existing name', () => fs.symlinkSync('f', 'd/sub/x')],
    ['symlink with a target of 4096 bytes', () => fs.symlinkSync('t'.repeat(4096), 'long-target')],
    ['readlink of a file', () => fs.readlinkSync('f')],
    ['rename a directory into its own subdirectory', () => fs.renameSync('d', 'd/sub/inner')],
    ['rename to another filesystem', () => fs.renameSync('f', `${outside}/moved`)],
    ['link to another filesystem', () => fs.linkSync('f', `${outside}/linked`)],
    ['link a directory', () => fs.linkSync('d', 'd-link')],
    ['link over an existing name', () => fs.linkSync('f', 'd/sub/x')],
    ['link', () => fs.linkSync('f', 'f-link')],
    ['write on a read-only descriptor', () => { const fd = fs.openSync('f', 'r'); try { fs.writeSync(fd, 'x') } finally { fs.closeSync(fd) } }],
    ['read on a write-only descriptor', () => { const fd = fs.openSync('f', 'a'); try { fs.readSync(fd, Buffer.alloc(1)) } finally { fs.closeSync(fd) } }],
    ['rmdir of "."', () => fs.rmdirSync('d/.')],
    ['rename a file onto itself', () => fs.renameSync('f', 'f')],
    ['rename a hard link onto its twin', () => fs.renameSync('f-link', 'f')],
    ['unlink a missing file', () => fs.unlinkSync('missing')],
    ['rmdir a missing directory', () => fs.rmdirSync('missing')],
    ['rename a missing file', () => fs.renameSync('missing', 'other')],
    ['chmod a missing file', () => fs.chmodSync('missing', 0o600)],
    ['utimes of a missing file', () => fs.utimesSync('missing', 1, 1)],
    ['mkfifo', () => execFileSync('mkfifo', ['-m', '644', 'fifo'])],
    ['open a FIFO for writing without a reader', () => fs.openSync('fifo', O_WRONLY | O_NONBLOCK)],
    ['user xattr on a FIFO', () => setAttribute('fifo', 'user.x', 'v')],
    ['rename an empty directory over an empty one', () => { fs.mkdirSync('g'); fs.mkdirSync('h'); fs.renameSync('g', 'h') }],
    ['files for the nobody phase', () => {
      fs.writeFileSync('secret', 'secret\n', { mode: 0o600 })
      fs.writeFileSync('public', 'public\n', { mode: 0o644 })
      fs.mkdirSync('private', { mode: 0o700 })
      fs.writeFileSync('private/inside', '')
      fs.mkdirSync('sticky')
      fs.chmodSync('sticky', 0o1777) // not subject to the umask, unlike mkdir's mode
      fs.writeFileSync('sticky/roots', '')
      fs.chmodSync('sticky/roots', 0o666)
    }],
  ]
}

function nobodySteps (): Step[] {
  return [
    ['read a 0600 root file', () => fs.readFileSync('secret')],
    ['read a 0644 root file', () => fs.readFileSync('public')],
    ['append to a 0644 root file', () => fs.appendFileSync('public', 'x')],
    ['create in a 0755 root directory', () => fs.writeFileSync('mine', '')],
    ['readdir a 0700 root directory', () => fs.readdirSync('private')],
    ['stat inside a 0700 root directory', () => fs.statSync('private/inside')],
    ['chmod a root file', () => fs.chmodSync('public', 0o666)],
    ['chown a root file', () => fs.chownSync('public', 65534, 65534)],
    ['unlink in a 0755 root directory', () => fs.unlinkSync('public')],
    ['create in a sticky directory', () => fs.writeFileSync('sticky/mine', '')],
    ['write another user\'s 0666 file in a sticky directory', () => fs.appendFileSync('sticky/roots', 'x')],
    ['unlink another user\'s file in a sticky directory', () => fs.unlinkSync('sticky/roots')],
    ['rename another user\'s file in a sticky directory', () => fs.renameSync('sticky/roots', 'sticky/moved')],
    ['set a user xattr on a 0644 root file', () => setAttribute('public', 'user.x', 'v')],
    ['get a user xattr of a 0600 root file', () => getAttribute('secret', 'user.x')],
  ]
}

async function main (): Promise<void> {
  const [phase, outside] = process.argv.slice(2)
  let steps: Step[]
  if (phase === 'nobody') {
    process.setgroups!([])
    process.setgid!(65534)
    process.setuid!(65534)
    steps = nobodySteps()
  } else {
    steps = rootSteps(outside!)
  }
  const out: Array<[string, string]> = []
  for (const [name, run] of steps) {
    try {
      await run()
      out.push([name, 'OK'])
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { status?: number }
      out.push([name, e.code ?? (e.status !== undefined ? `exit ${e.status}` : String(err))])
    }
  }
  process.stdout.write(JSON.stringify(out) + '\n')
}

await main()
