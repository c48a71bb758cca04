// Redo after a crash. Writes are journaled before they reach the backing
// file, so a crash can leave journaled bytes that never got there. Before
// the mount serves anything, the Write and Truncate ops of every transaction
// still in the outbox are written again, in order, so the backing files hold
// exactly what is about to be pushed. Only writes after the last op that
// changed which file a path names (create, unlink, rename, …) are redone: an
// op that came later proves the earlier writes had landed, and redoing them
// could hit a different file that now has that name.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import type { Op } from '../codec/wire.js'
import type { Journal } from '../journal/journal.js'
import type { Logger } from '../util/log.js'

async function openExisting (real: string): Promise<fsp.FileHandle | undefined> {
  try {
    const st = await fsp.lstat(real)
    if (!st.isFile()) return undefined
    return await fsp.open(real, fs.constants.O_WRONLY | fs.constants.O_NOFOLLOW)
  } catch {
    return undefined
  }
}

/** Calls fn for each pending op in order with the path it acts on and a running index. */
export async function eachPendingOp (journal: Journal, fn: (op: Op, subject: string, index: number) => Promise<void>): Promise<number> {
  let after = 0
  let index = 0
  let txs = 0
  for (;;) {
    const page = await journal.readOutbox(after, 16)
    if (page.length === 0) return txs
    for (const { deviceSeq, tx } of page) {
      after = deviceSeq
      txs++
      let subject = tx.path
      for (const op of tx.ops) {
        await fn(op, subject, index++)
        if ('rename' in op && op.rename) subject = op.rename.to
      }
    }
  }
}

export async function redoPending (journal: Journal, filesDir: string, log: Logger): Promise<void> {
  const lastIdentityChange = new Map<string, number>()
  const txs = await eachPendingOp(journal, async (op, subject, index) => {
    if ('write' in op || 'truncate' in op || 'setAttr' in op || 'setXattr' in op || 'removeXattr' in op) return
    lastIdentityChange.set(subject, index)
    if ('rename' in op && op.rename) lastIdentityChange.set(op.rename.to, index)
    if ('link' in op && op.link) lastIdentityChange.set(op.link.to, index)
  })
  let bytes = 0
  await eachPendingOp(journal, async (op, subject, index) => {
    const isWrite = 'write' in op && op.write
    const isTruncate = 'truncate' in op && op.truncate
    if (!isWrite && !isTruncate) return
    if (index < (lastIdentityChange.get(subject) ?? -1)) return
    const fh = await openExisting(path.join(filesDir, subject))
    if (!fh) return
    try {
      if ('write' in op && op.write) {
        await fh.write(op.write.data, 0, op.write.data.length, op.write.offset)
        bytes += op.write.data.length
      } else if ('truncate' in op && op.truncate) {
        await fh.truncate(op.truncate.size)
      }
    } finally {
      await fh.close()
    }
  })
  if (txs > 0) log.info({ transactions: txs, bytes }, 'replayed pending journal writes into the backing files')
}
