// Runs after `npm install`/`npm ci`: builds native/ns-time, the small addon
// that sets file times to the nanosecond (utimensat). Without it (no
// compiler) deltafs still works and sets times to the microsecond through
// fs.utimes: see src/util/set-times.ts.
import { gypRebuild } from './lib/gyp-rebuild.mjs'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const dir = fileURLToPath(new URL('../native/ns-time/', import.meta.url))
const addon = path.join(dir, 'build', 'Release', 'ns_time.node')
const source = path.join(dir, 'ns_time.c')

if (fs.existsSync(addon) && fs.statSync(addon).mtimeMs >= fs.statSync(source).mtimeMs) process.exit(0) // built before

gypRebuild(dir, 'native/ns-time', 'file times will be set to the microsecond only')
