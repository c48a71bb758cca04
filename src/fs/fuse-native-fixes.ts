// fuse-native 2.2.6 answers three requests differently from what the kernel
// and local filesystems do; this subclass replaces those handlers (they are
// fuse-native internals, pinned by its version in package-lock.json):
// - fgetattr: it calls getattr by path and drops the handle, so a file whose
//   name is gone (unlinked by another mount) fails with ENOENT while open;
// - getxattr/listxattr: with a caller's buffer too small it copies a
//   truncated value and reports the full length (the kernel turns that into
//   EIO) instead of ERANGE, and listxattr's size query adds 128 bytes.
import os from 'node:os'
import Fuse, { type FuseOps, type FuseOptions, type Signal } from 'fuse-native'

const { ENODATA, ERANGE } = os.constants.errno

export class FixedFuse extends Fuse {
  constructor (mnt: string, ops: FuseOps, opts?: FuseOptions) {
    super(mnt, ops, opts)
  }

  protected _op_fgetattr (signal: Signal, path: string, fd: number): void {
    // getattr's handler converts the stat; it is given a getattr that asks by handle.
    const byHandle: FuseOps = { getattr: (p, cb) => this.ops.fgetattr!(p, fd, cb) }
    super._op_getattr.call({ ops: byHandle }, signal, path)
  }

  protected _op_getxattr (signal: Signal, path: string, name: string, valueBuf: Buffer, position: number): void {
    this.ops.getxattr!(path, name, position, (err, value) => {
      if (err) return signal(err, valueBuf.buffer)
      if (!value) return signal(-ENODATA!, valueBuf.buffer)
      if (valueBuf.length === 0) return signal(value.length, valueBuf.buffer) // size query
      if (value.length > valueBuf.length) return signal(-ERANGE!, valueBuf.buffer)
      value.copy(valueBuf)
      return signal(value.length, valueBuf.buffer)
    })
  }

  protected _op_listxattr (signal: Signal, path: string, listBuf: Buffer): void {
    this.ops.listxattr!(path, (err, list) => {
      if (err || !list) return signal(err || -ENODATA!, listBuf.buffer)
      const packed = Buffer.concat(list.map(n => Buffer.from(n + '\0')))
      if (listBuf.length === 0) return signal(packed.length, listBuf.buffer) // size query
      if (packed.length > listBuf.length) return signal(-ERANGE!, listBuf.buffer)
      packed.copy(listBuf)
      return signal(packed.length, listBuf.buffer)
    })
  }
}
