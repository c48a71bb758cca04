// Runs after `npm install`/`npm ci`. fuse-native 2.2.6 hands its utimens
// callback the access time in both time arguments (fuse-native.c passes
// `l->atime` where the modification time belongs), so every utimes(2) through
// a mount set mtime = atime: `cp -p`, `rsync -a` and `touch -d` lost their
// mtimes. No fixed release exists, so this corrects that one argument in the
// installed C source and builds the addon from it; node-gyp-build then loads
// build/Release ahead of the shipped prebuilds. Any other source than the
// known one is left alone, with a warning.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'

const say = msg => process.stderr.write(`[deltafs setup] ${msg}\n`)
const require = createRequire(import.meta.url)

let dir
try {
  dir = path.dirname(require.resolve('fuse-native/package.json'))
} catch {
  say('fuse-native is not installed: nothing to fix')
  process.exit(0)
}
const source = path.join(dir, 'fuse-native.c')
const wrong = 'FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)'
const right = 'FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)'
const text = fs.readFileSync(source, 'utf8')
const built = fs.existsSync(path.join(dir, 'build', 'Release', 'fuse.node'))

if (text.includes(right) && built) process.exit(0) // fixed and built before
if (!text.includes(wrong) && !text.includes(right)) {
  say(`fuse-native's utimens is not the known 2.2.6 source: left as it is (${source})`)
  process.exit(0)
}
if (text.includes(wrong)) fs.writeFileSync(source, text.replace(wrong, right))

// npm tells lifecycle scripts where its own node-gyp is.
const gyp = process.env.npm_config_node_gyp
const [cmd, args] = gyp ? [process.execPath, [gyp, 'rebuild']] : ['npx', ['--yes', 'node-gyp', 'rebuild']]
say('building fuse-native with its utimens mtime fix (node-gyp)')
try {
  execFileSync(cmd, args, { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] })
} catch (err) {
  // The shipped prebuild still works, with mtime = atime on utimes.
  fs.rmSync(path.join(dir, 'build'), { recursive: true, force: true })
  say(`building fuse-native failed (${err.message}); using its prebuild, whose utimes sets mtime = atime`)
}
