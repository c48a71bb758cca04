// Runs the tap suite on the compiled tests and ends with the plain line
// "N passed, N failed" that CI reads. Extra arguments select test files.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

function findTests (dir) {
  if (!fs.existsSync(dir)) return []
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap(e => {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) return findTests(p)
    return e.name.endsWith('.test.js') ? [p] : []
  }).sort()
}

const files = process.argv.slice(2).length > 0 ? process.argv.slice(2) : findTests('dist/test')
if (files.length === 0) {
  console.error('no test files found under dist/test (did the build run?)')
  console.log('0 passed, 1 failed')
  process.exit(1)
}

// Its own process group, so that a stopped run (CI timeout, Ctrl-C) ends
// tap, the test files and the mounts and nodes they started, not just this
// script: a killed runner used to leave them running and mounted.
const child = spawn('npx', ['tap', '-R', 'tap', '--disable-coverage', '--jobs=1', '--timeout=600', ...files], {
  stdio: ['ignore', 'pipe', 'inherit'], detached: true,
})
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    try { process.kill(-child.pid, 'SIGTERM') } catch {}
    setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL') } catch {} process.exit(130) }, 5000).unref()
  })
}
let tail = ''
child.stdout.on('data', chunk => {
  process.stdout.write(chunk)
  tail = (tail + chunk.toString()).slice(-4096)
})
child.on('close', code => {
  const m = /# \{ ([^}]*) \}/.exec(tail)
  const counts = Object.fromEntries((m?.[1] ?? '').split(',').map(kv => kv.trim().split(': ')).filter(kv => kv.length === 2).map(([k, v]) => [k, Number(v)]))
  const passed = counts.pass ?? 0
  let failed = counts.fail ?? 0
  if (code !== 0 && failed === 0) failed = 1 // the runner itself failed (a crash, a timeout)
  const skipped = (counts.skip ?? 0) + (counts.todo ?? 0)
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`)
  process.exit(code ?? 1)
})
