// Builds a native addon with node-gyp at install time. npm tells lifecycle
// scripts where its own node-gyp is; outside npm, npx fetches one. A failed
// build leaves no half-built directory behind and says what the fallback is.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

export const say = msg => process.stderr.write(`[deltafs setup] ${msg}\n`)

/** Returns whether dir was built; on failure warns with `fallback` and returns false. */
export function gypRebuild (dir, what, fallback) {
  const gyp = process.env.npm_config_node_gyp
  const [cmd, args] = gyp ? [process.execPath, [gyp, 'rebuild']] : ['npx', ['--yes', 'node-gyp', 'rebuild']]
  say(`building ${what} (node-gyp)`)
  try {
    execFileSync(cmd, args, { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] })
    return true
  } catch (err) {
    fs.rmSync(path.join(dir, 'build'), { recursive: true, force: true })
    say(`building ${what} failed (${err.message}); ${fallback}`)
    return false
  }
}
