// Runs file operations as uid/gid 65534 (nobody) and reports each one's
// errno code or "OK". The child starts as root, enters `cwd`, then drops its
// ids, and names files relative to cwd: on some machines "/" itself is not
// searchable by other users, which would make every absolute path EACCES.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

export type NobodyOp = 'read' | 'append' | 'create' | 'readdir' | 'chmod' | 'unlink' | 'mkdir'

const script = `
const fs = require('fs')
process.setgroups([]); process.setgid(65534); process.setuid(65534)
const out = []
for (const [op, p] of JSON.parse(process.argv[1])) {
  try {
    if (op === 'read') fs.readFileSync(p)
    else if (op === 'append') fs.appendFileSync(p, 'x')
    else if (op === 'create') fs.writeFileSync(p, '', { flag: 'wx' })
    else if (op === 'readdir') fs.readdirSync(p)
    else if (op === 'chmod') fs.chmodSync(p, 0o777)
    else if (op === 'unlink') fs.unlinkSync(p)
    else if (op === 'mkdir') fs.mkdirSync(p)
    out.push('OK')
  } catch (err) { out.push(err.code || String(err)) }
}
console.log(JSON.stringify(out))
`

export async function asNobody (cwd: string, steps: Array<[NobodyOp, string]>): Promise<string[]> {
  const { stdout } = await run(process.execPath, ['-e', script, JSON.stringify(steps)], { cwd, timeout: 30_000 })
  return JSON.parse(stdout) as string[]
}
