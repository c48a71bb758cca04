// Runs after `npm install`/`npm ci`: builds native/ns-time, the small addon
// that sets file times to the nanosecond (utimensat). Without it (no
// compiler) deltafs still works and sets times to the microsecond through
// fs.utimes: see src/util/set-times.ts.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const say = msg => process.stderr.write(`[deltafs setup] ${msg}\n`)
const dir = fileURLToPath(new URL('../native/ns-time/', import.meta.url))
const addon = path.join(dir, 'build', 'Release', 'ns_time.node')
const source = path.join(dir, 'ns_time.c')

if (fs.existsSync(addon) && fs.statSync(addon).mtimeMs >= fs.statSync(source).mtimeMs) process.exit(0) // built before

const gyp = process.env.npm_config_node_gyp
const [cmd, args] = gyp ? [process.execPath, [gyp, 'rebuild']] : ['npx', ['--yes', 'node-gyp', 'rebuild']]
say('building native/ns-time (node-gyp)')
try {
  execFileSync(cmd, args, { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] })
} catch (err) {
  fs.rmSync(path.join(dir, 'build'), { recursive: true, force: true })
  say(`building native/ns-time failed (${err.message}); file times will be set to the microsecond only`)
}
