// Paths that arrive from the wire are hostile until checked: they must be
// absolute volume paths without "..", NUL or empty segments, and must not
// reach outside the backing directory through a symlinked parent.
import fsp from 'node:fs/promises'
import path from 'node:path'
import { DeltafsError } from '../util/errors.js'

const MAX_PATH = 4096
const MAX_NAME = 255

/** Checks the syntax of a volume path; returns it unchanged. */
export function checkVolumePath (p: unknown): string {
  if (typeof p !== 'string' || p.length === 0 || p.length > MAX_PATH) throw new DeltafsError('BAD_PATH', `bad path ${JSON.stringify(p)}`)
  if (!p.startsWith('/')) throw new DeltafsError('BAD_PATH', `path ${JSON.stringify(p)} is not absolute in the volume`)
  if (p.includes('\0')) throw new DeltafsError('BAD_PATH', 'path contains a NUL byte')
  if (p === '/') throw new DeltafsError('BAD_PATH', 'the volume root cannot be changed')
  for (const seg of p.slice(1).split('/')) {
    if (seg === '' || seg === '.' || seg === '..') throw new DeltafsError('BAD_PATH', `path ${JSON.stringify(p)} has an empty, "." or ".." segment`)
    if (Buffer.byteLength(seg) > MAX_NAME) throw new DeltafsError('BAD_PATH', `a name in ${JSON.stringify(p)} is longer than ${MAX_NAME} bytes`)
  }
  return p
}

/**
 * The backing path of a checked volume path, after making sure its parent
 * directory resolves inside root (a symlinked parent could point anywhere).
 * The last component itself is never followed by the callers.
 */
export async function resolveInside (root: string, volPath: string): Promise<string> {
  checkVolumePath(volPath)
  const real = path.join(root, volPath)
  const parent = path.dirname(real)
  let resolvedParent: string
  try {
    resolvedParent = await fsp.realpath(parent)
  } catch {
    return real // parent missing: the op itself reports ENOENT
  }
  const rootReal = await fsp.realpath(root)
  if (resolvedParent !== rootReal && !resolvedParent.startsWith(rootReal + path.sep)) {
    throw new DeltafsError('BAD_PATH', `path ${JSON.stringify(volPath)} leaves the volume through a symlink`)
  }
  return real
}
