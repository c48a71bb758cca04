// The in-memory model the exerciser checks the mount against: names point at
// inodes (hard links share one), and each op's outcome (an errno or bytes)
// follows Linux semantics.
import { createHash } from 'node:crypto'
import { content, NAMES, type Op, TEMP_NAME, type View, Rng, generate } from './ops.js'

interface Inode { data: Buffer; mode: number }
export interface Outcome { err?: string; data?: Buffer }
/** A name's expected state; links lists every name of its inode, sorted. */
export interface Expected { size: number; sha256: string; mode: number; links: string[] }

function grow (data: Buffer, size: number): Buffer {
  if (size <= data.length) return data.subarray(0, size)
  const out = Buffer.alloc(size)
  data.copy(out)
  return out
}

function writeAt (ino: Inode, off: number, bytes: Buffer): void {
  if (off + bytes.length > ino.data.length) ino.data = grow(ino.data, off + bytes.length)
  bytes.copy(ino.data, off)
}

export class Model implements View {
  private readonly byName = new Map<string, Inode>()
  private readonly slots: Array<Inode | undefined> = []

  size (f: string): number | undefined { return this.byName.get(f)?.data.length }
  slotSize (slot: number): number | undefined { return this.slots[slot]?.data.length }
  names (f: string): number {
    const ino = this.byName.get(f)
    return ino ? [...this.byName.values()].filter(i => i === ino).length : 0
  }

  isOpen (f: string): boolean {
    const ino = this.byName.get(f)
    return ino !== undefined && this.slots.includes(ino)
  }

  apply (op: Op): Outcome {
    if (op.k === 'closeall') { this.slots.length = 0; return {} }
    if (!('f' in op)) return this.applyFd(op)
    const ino = this.byName.get(op.f)
    const missing = { err: 'ENOENT' }
    switch (op.k) {
      case 'create':
        if (ino) return { err: 'EEXIST' }
        this.byName.set(op.f, { data: Buffer.alloc(0), mode: 0o644 })
        return {}
      case 'write':
        if (!ino) return missing
        writeAt(ino, op.off, content(op.s, op.off, op.len))
        return {}
      case 'hole': {
        if (!ino) return missing
        const off = ino.data.length + op.gap
        writeAt(ino, off, content(op.s, off, op.len))
        return {}
      }
      case 'rewrite': {
        const target = ino ?? { data: Buffer.alloc(0), mode: 0o644 }
        this.byName.set(op.f, target)
        target.data = content(op.s, 0, op.len)
        return {}
      }
      case 'save':
        this.byName.set(op.f, { data: content(op.s, 0, op.len), mode: 0o644 })
        return {}
      case 'truncate':
        if (!ino) return missing
        ino.data = grow(ino.data, op.size)
        return {}
      case 'rename': {
        if (!ino) return missing
        // rename(2): two links of one file: nothing happens.
        if (this.byName.get(op.to) === ino) return {}
        this.byName.set(op.to, ino)
        this.byName.delete(op.f)
        return {}
      }
      case 'link':
        if (!ino) return missing
        if (this.byName.has(op.to)) return { err: 'EEXIST' }
        this.byName.set(op.to, ino)
        return {}
      case 'unlink':
        if (!ino) return missing
        this.byName.delete(op.f)
        return {}
      case 'chmod':
        if (!ino) return missing
        ino.mode = op.mode
        return {}
      case 'open':
        if (!ino) return missing
        // Reopening a slot closes what it held first.
        this.slots[op.slot] = ino
        return {}
      case 'read':
        if (!ino) return missing
        if (op.len < 0) return { data: Buffer.from(ino.data) }
        return { data: Buffer.from(ino.data.subarray(Math.min(op.off, ino.data.length), Math.min(op.off + op.len, ino.data.length))) }
    }
  }

  private applyFd (op: Extract<Op, { slot: number }>): Outcome {
    const ino = this.slots[op.slot]
    if (!ino) return { err: 'EBADF' }
    switch (op.k) {
      case 'fwrite': writeAt(ino, op.off, content(op.s, op.off, op.len)); return {}
      case 'fread': return { data: Buffer.from(ino.data.subarray(Math.min(op.off, ino.data.length), Math.min(op.off + op.len, ino.data.length))) }
      case 'ftruncate': ino.data = grow(ino.data, op.size); return {}
      case 'close': this.slots[op.slot] = undefined; return {}
      default: throw new Error(`not a descriptor op: ${op.k}`)
    }
  }

  describe (): Record<string, Expected> {
    const out: Record<string, Expected> = {}
    for (const [name, ino] of this.byName) {
      const links = [...this.byName].filter(([, i]) => i === ino).map(([n]) => n).sort()
      out[name] = { size: ino.data.length, sha256: createHash('sha256').update(ino.data).digest('hex'), mode: ino.mode, links }
    }
    return out
  }
}

/**
 * The op list of a seed: generated against the model, so most ops act on
 * files that exist; the ops at `closeAt` close every descriptor.
 */
export function generateOps (seed: number, count: number, closeAt: readonly number[] = []): Op[] {
  const r = new Rng(seed)
  const m = new Model()
  const ops: Op[] = []
  for (let i = 0; i < count; i++) {
    const op: Op = closeAt.includes(i) ? { k: 'closeall' } : generate(r, m)
    m.apply(op)
    ops.push(op)
  }
  return ops
}

/** The expected state after ops. */
export function expectedAfter (ops: readonly Op[]): Record<string, Expected> {
  const m = new Model()
  for (const op of ops) m.apply(op)
  return m.describe()
}

export { NAMES, TEMP_NAME }
