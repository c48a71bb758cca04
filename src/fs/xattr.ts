// Extended attributes of backing files. Node has no xattr API; fs-xattr
// binds the path calls, which follow symlinks, so each call names the file
// through an O_PATH|O_NOFOLLOW descriptor (/proc/self/fd/N): the entry at
// the path is the one acted on, never what a symlink (swapped in meanwhile)
// points to.
import fs from 'node:fs'
import { promisify } from 'node:util'
import { getAttribute, listAttributes, removeAttribute, setAttribute } from 'fs-xattr'
import { isErrno } from '../util/errors.js'

/** Linux O_PATH: a descriptor that names a file without opening it for I/O. */
const O_PATH = 0o10000000
export const XATTR_CREATE = 1
export const XATTR_REPLACE = 2
/** Linux limits (include/uapi/linux/limits.h). */
export const XATTR_NAME_MAX = 255
export const XATTR_SIZE_MAX = 65536

const openP = promisify(fs.open)
const closeP = promisify(fs.close)

/**
 * Only the user namespace is stored and replicated: security.*, trusted.*
 * and system.* (ACLs) have meaning only on the machine that set them.
 */
export function isUserXattr (name: unknown): name is string {
  return typeof name === 'string' && name.startsWith('user.') && name.length > 5 &&
    Buffer.byteLength(name) <= XATTR_NAME_MAX && !name.includes('\0')
}

function errnoError (code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code })
}

async function onEntry<T> (real: string, fn: (p: string) => Promise<T>): Promise<T> {
  const fd = await openP(real, O_PATH | fs.constants.O_NOFOLLOW)
  try { return await fn(`/proc/self/fd/${fd}`) } finally { await closeP(fd) }
}

export function getXattr (real: string, name: string): Promise<Buffer> {
  return onEntry(real, p => getAttribute(p, name))
}

export function listXattr (real: string): Promise<string[]> {
  return onEntry(real, p => listAttributes(p))
}

/** setxattr(2) with its XATTR_CREATE / XATTR_REPLACE flags (fs-xattr has none: checked first). */
export function setXattr (real: string, name: string, value: Uint8Array, flags = 0): Promise<void> {
  return onEntry(real, async p => {
    if (flags & (XATTR_CREATE | XATTR_REPLACE)) {
      const has = await getAttribute(p, name).then(() => true, err => { if (isErrno(err, 'ENODATA')) return false; throw err })
      if (has && (flags & XATTR_CREATE)) throw errnoError('EEXIST', `attribute ${name} exists`)
      if (!has && (flags & XATTR_REPLACE)) throw errnoError('ENODATA', `no attribute ${name}`)
    }
    await setAttribute(p, name, Buffer.from(value.buffer, value.byteOffset, value.byteLength))
  })
}

export function removeXattr (real: string, name: string): Promise<void> {
  return onEntry(real, p => removeAttribute(p, name))
}
