// Runs exerciser ops on a real directory with synchronous fs calls on
// descriptors (the child process that drives a mount), and describes a
// directory the way the model does.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { content, type Op, SUBDIR, TEMP_NAME } from './ops.js'
import type { Expected, Outcome } from './model.js'

function writeAll (fd: number, buf: Buffer, pos: number): void {
  let done = 0
  while (done < buf.length) done += fs.writeSync(fd, buf, done, buf.length - done, pos + done)
}

function readRange (fd: number, off: number, len: number): Buffer {
  const buf = Buffer.alloc(len)
  let done = 0
  for (;;) {
    const n = fs.readSync(fd, buf, done, len - done, off + done)
    if (n === 0) break
    done += n
    if (done === len) break
  }
  return buf.subarray(0, done)
}

function withFd<T> (file: string, flags: number | string, mode: number | undefined, fn: (fd: number) => T): T {
  const fd = fs.openSync(file, flags, mode)
  try { return fn(fd) } finally { fs.closeSync(fd) }
}

const { O_WRONLY } = fs.constants

/** Descriptors kept open across ops, by slot. */
export class Slots {
  private readonly fds: Array<number | undefined> = []

  run (op: Extract<Op, { slot: number }>): Outcome {
    const fd = this.fds[op.slot]
    if (fd === undefined) return { err: 'EBADF' } // never a syscall on a stale number
    switch (op.k) {
      case 'fwrite': writeAll(fd, content(op.s, op.off, op.len), op.off); return {}
      case 'fread': return { data: readRange(fd, op.off, op.len) }
      case 'ftruncate': fs.ftruncateSync(fd, op.size); return {}
      case 'close': this.fds[op.slot] = undefined; fs.closeSync(fd); return {}
      default: throw new Error(`not a descriptor op: ${op.k}`)
    }
  }

  open (slot: number, file: string): void {
    const fd = fs.openSync(file, 'r+')
    const old = this.fds[slot]
    this.fds[slot] = fd
    if (old !== undefined) fs.closeSync(old)
  }

  closeAll (): void {
    for (const [i, fd] of this.fds.entries()) if (fd !== undefined) { this.fds[i] = undefined; fs.closeSync(fd) }
  }
}

export function runOp (root: string, op: Op, slots: Slots): Outcome {
  try {
    if (op.k === 'closeall') { slots.closeAll(); return {} }
    if (!('f' in op)) return slots.run(op)
    const p = path.join(root, op.f)
    switch (op.k) {
      case 'open': slots.open(op.slot, p); return {}
      default: return runPathOp(root, p, op)
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return { err: code }
    throw err
  }
}

function runPathOp (root: string, p: string, op: Exclude<Extract<Op, { f: string }>, { k: 'open' }>): Outcome {
  {
    switch (op.k) {
      case 'create': withFd(p, 'wx', 0o644, () => undefined); return {}
      case 'write':
        withFd(p, O_WRONLY, undefined, fd => {
          writeAll(fd, content(op.s, op.off, op.len), op.off)
          if (op.sync) fs.fsyncSync(fd)
        })
        return {}
      case 'hole':
        withFd(p, O_WRONLY, undefined, fd => {
          const off = fs.fstatSync(fd).size + op.gap
          writeAll(fd, content(op.s, off, op.len), off)
        })
        return {}
      case 'rewrite': withFd(p, 'w', 0o644, fd => writeAll(fd, content(op.s, 0, op.len), 0)); return {}
      case 'save': {
        const tmp = path.join(root, TEMP_NAME)
        withFd(tmp, 'wx', 0o644, fd => { writeAll(fd, content(op.s, 0, op.len), 0); fs.fsyncSync(fd) })
        fs.renameSync(tmp, p)
        return {}
      }
      case 'truncate': fs.truncateSync(p, op.size); return {}
      case 'rename': fs.renameSync(p, path.join(root, op.to)); return {}
      case 'link': fs.linkSync(p, path.join(root, op.to)); return {}
      case 'unlink': fs.unlinkSync(p); return {}
      case 'chmod': fs.chmodSync(p, op.mode); return {}
      case 'read':
        return withFd(p, 'r', undefined, fd => ({ data: readRange(fd, op.len < 0 ? 0 : op.off, op.len < 0 ? fs.fstatSync(fd).size : op.len) }))
    }
  }
}

/** Null when the outcomes agree; otherwise what differs. */
export function compareOutcome (want: Outcome, got: Outcome): string | null {
  if (want.err !== got.err) return `expected ${want.err ?? 'success'}, got ${got.err ?? 'success'}`
  if (want.data && got.data && !want.data.equals(got.data)) {
    let at = 0
    while (at < Math.min(want.data.length, got.data.length) && want.data[at] === got.data[at]) at++
    return `read ${got.data.length} bytes, expected ${want.data.length}; first difference at byte ${at}`
  }
  return null
}

/** A run directory described as the model describes its state. */
export function describeDir (root: string): Record<string, Expected> {
  const out: Record<string, Expected> = {}
  const byIno = new Map<number, string[]>()
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      // libfuse keeps an unlinked file that is still open under a hidden name until its last close.
      if (name.startsWith('.fuse_hidden')) continue
      const r = rel ? `${rel}/${name}` : name
      const st = fs.lstatSync(path.join(root, r))
      if (st.isDirectory() && r === SUBDIR) { walk(r); continue }
      const sha256 = st.isFile() ? createHash('sha256').update(fs.readFileSync(path.join(root, r))).digest('hex') : `not a file (mode ${st.mode.toString(8)})`
      out[r] = { size: st.size, sha256, mode: st.mode & 0o7777, links: [] }
      byIno.set(st.ino, [...(byIno.get(st.ino) ?? []), r])
    }
  }
  walk('')
  for (const names of byIno.values()) for (const n of names) out[n]!.links = [...names].sort()
  return out
}

/** Null when equal; otherwise the first differences. */
export function compareStates (want: Record<string, Expected>, got: Record<string, Expected>): string | null {
  const diffs: string[] = []
  for (const k of [...new Set([...Object.keys(want), ...Object.keys(got)])].sort()) {
    const x = JSON.stringify(want[k])
    const y = JSON.stringify(got[k])
    if (x !== y) diffs.push(`${k}: expected ${x ?? 'missing'}, found ${y ?? 'missing'}`)
    if (diffs.length >= 5) break
  }
  return diffs.length ? diffs.join('\n') : null
}
