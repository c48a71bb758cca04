// Positional read and write on a raw descriptor, resolving to the byte count.
// fs.read/fs.write carry their own promisified forms, which resolve to
// objects; these skip that and need no FileHandle.
import fs from 'node:fs'

export function readAt (fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buffer, offset, length, position, (err, n) => err ? reject(err) : resolve(n)))
}

export function writeAt (fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, buffer, offset, length, position, (err, n) => err ? reject(err) : resolve(n)))
}
