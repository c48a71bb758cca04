// A descriptor held open on mount B while A saves a new version of the file
// (B applies it as a Rebuild: a new file renamed into place) must write into
// the file B now shows, not into the replaced one; otherwise B journals and
// sends the write while its own copy never gets it, and the mounts diverge.
import { createHash } from 'node:crypto'
import fsp from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { Cluster } from '../helpers/cluster.js'
import { type MountHandle, waitFor } from '../helpers/processes.js'

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

function text (lines: number, extra = ''): Buffer {
  const out: string[] = []
  for (let i = 0; i < lines; i++) {
    out.push(`line ${String(i).padStart(6, '0')} of a text that is saved again, value ${(i * 2654435761) % 1000003}\n`)
    if (i === 10) out.push(extra)
  }
  return Buffer.from(out.join(''))
}

async function readOr (file: string): Promise<Buffer | null> {
  return fsp.readFile(file).catch(() => null)
}

t.test('writes through a descriptor held across a remote save reach every mount', async t => {
  t.setTimeout(120_000)
  const c = await Cluster.start(t, 2)
  const [A, B] = c.mounts as [MountHandle, MountHandle]
  const onA = path.join(A.mountpoint, 'doc.txt')
  const onB = path.join(B.mountpoint, 'doc.txt')
  const v1 = text(40_000)
  await fsp.writeFile(onA, v1)
  await waitFor('B to have version 1', async () => (await readOr(onB))?.equals(v1), 30_000)

  const held = await fsp.open(onB, 'r+')
  t.teardown(() => held.close().catch(() => undefined))

  // An editor's save: a new file renamed over the old one; a line inserted
  // near the top shifts everything after it, so the delta is a Rebuild.
  const v2 = text(40_000, 'a line inserted by the editor on A\n')
  const tmp = path.join(A.mountpoint, '.doc.txt.swp')
  await fsp.writeFile(tmp, v2)
  await fsp.rename(tmp, onA)
  await waitFor('B to have version 2', async () => (await readOr(onB))?.equals(v2), 30_000)
  const rebuilds = Number((await A.status()).bytesPushed)
  t.ok(rebuilds < v2.length / 4, `A sent version 2 as a delta (${rebuilds} bytes pushed in all, the file is ${v2.length})`)

  await held.write(Buffer.from('HELLO'), 0, 5, 0)
  await held.sync()
  await held.close()
  const v3 = Buffer.concat([Buffer.from('HELLO'), v2.subarray(5)])
  const bothHave = async (): Promise<boolean> => {
    const [a, b] = await Promise.all([readOr(onA), readOr(onB)])
    return a !== null && b !== null && a.equals(v3) && b.equals(v3)
  }
  try {
    await waitFor('A and B to hold the write made through the held descriptor', bothHave, 30_000)
    t.pass('A and B both have it')
  } catch {
    const [a, b] = await Promise.all([readOr(onA), readOr(onB)])
    t.fail(`A ${a ? sha(a).slice(0, 12) : 'missing'} (${a?.subarray(0, 5).toString()}), B ${b ? sha(b).slice(0, 12) : 'missing'} (${b?.subarray(0, 5).toString()}); want ${sha(v3).slice(0, 12)} (HELLO)`)
  }
})
