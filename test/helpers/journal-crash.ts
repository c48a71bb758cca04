// What a crash can leave of a mount's journal, made on purpose: references
// to payload bytes that never reached their segment, and no sync since.
import fsp from 'node:fs/promises'
import path from 'node:path'
import { Level } from 'level'
import { segmentName } from '../../src/journal/payload-store.js'

/**
 * Edits a closed journal at dir (the LevelJournal's directory) as if the
 * process had died with these byte ranges of segment 1 still unwritten and
 * no payload sync since it opened.
 */
export async function crashLeaving (dir: string, holes: Array<[number, number]>): Promise<void> {
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  await db.put('m!sync', new Uint8Array(0))
  await db.close()
  const fh = await fsp.open(path.join(dir, 'payload', segmentName(1)), 'r+')
  try {
    for (const [at, n] of holes) await fh.write(Buffer.alloc(n), 0, n, at)
  } finally {
    await fh.close()
  }
}

/** Runs fn as if in the boot with this id (the journal tells a process crash from a reboot by it). */
export async function withBoot<T> (id: string, fn: () => Promise<T>): Promise<T> {
  const before = process.env.DELTAFS_BOOT_ID
  process.env.DELTAFS_BOOT_ID = id
  try {
    return await fn()
  } finally {
    if (before === undefined) delete process.env.DELTAFS_BOOT_ID
    else process.env.DELTAFS_BOOT_ID = before
  }
}
