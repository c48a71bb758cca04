// Turns a finished rewrite into a Rebuild op against the kept record, when
// that is smaller than the writes it replaces.
import type { Op } from '../codec/wire.js'
import { computeDelta, deltaWireSize } from '../delta/delta-engine.js'

/** Rebuilds larger than this go as plain writes, which split into frames. */
export const MAX_REBUILD_BYTES = 8 << 20
/** Fixed cost of a Rebuild op beyond its pieces: digests, sizes, framing. */
const REBUILD_OVERHEAD = 96

export interface RebuildChoice { op: Op; wireBytes: number; readBytes: number }

export async function rebuildAgainst (basePath: string, newPath: string, baseVersion: number): Promise<RebuildChoice> {
  const d = await computeDelta(basePath, newPath)
  return {
    op: { rebuild: { baseVersion, pieces: d.pieces, resultSize: d.resultSize, resultSha256: d.resultSha256, baseSha256: d.baseSha256 } },
    wireBytes: deltaWireSize(d.pieces) + REBUILD_OVERHEAD,
    readBytes: d.stats.bytesReadBase + d.stats.bytesReadNew,
  }
}
