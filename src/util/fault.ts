// Fault points for crash tests. DELTAFS_FAULTS="point[@n],…" makes the
// process SIGKILL itself the n-th time (default first) it passes `point`.
// Unset, a fault point is one Map lookup on a frozen empty map.

function parse (spec: string | undefined): Map<string, number> {
  const m = new Map<string, number>()
  for (const item of (spec ?? '').split(',').map(s => s.trim()).filter(Boolean)) {
    const [name, n] = item.split('@')
    m.set(name!, Math.max(1, Number(n ?? 1) || 1))
  }
  return m
}

const armed = parse(process.env.DELTAFS_FAULTS)

export type FaultPoint =
  | 'capture.after-journal' // a write is journaled, the backing file not yet written
  | 'journal.after-close' // a transaction is closed, not yet pushed
  | 'sync.after-send' // a frame is on the wire, its ack not yet processed
  | 'apply.after-data' // a remote transaction is in the files, the cursor not yet moved
  | 'conflict.after-drop' // the losing transactions are dropped, the winner's change not yet applied
  | 'node.after-append' // the node stored a transaction, the ack not yet sent

export function fault (point: FaultPoint): void {
  if (armed.size === 0) return
  const left = armed.get(point)
  if (left === undefined) return
  if (left > 1) { armed.set(point, left - 1); return }
  process.kill(process.pid, 'SIGKILL')
}
