// Waits until everything mount A wrote has been applied by the other mounts:
// A has nothing pending or held, and each other mount applied up to the
// node's head. Only valid while A is the only writer.
import type { Cluster } from './cluster.js'
import type { MountHandle } from './processes.js'
import { waitFor } from './processes.js'

export async function settled (c: Cluster, author: MountHandle, timeoutMs = 20_000): Promise<void> {
  await waitFor('the author to push everything', async () => {
    const s = await author.status()
    return s.pendingTx === 0 && s.heldRewrites === 0
  }, timeoutMs, 50)
  const head = await c.headSeq()
  for (const m of c.mounts) {
    if (m === author) continue
    await waitFor(`${m.mountpoint} to apply up to seq ${head}`, async () => Number((await m.status()).lastAppliedSeq) >= head, timeoutMs, 50)
  }
}
