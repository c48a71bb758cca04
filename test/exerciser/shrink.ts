// Cuts a failing op list down (short tails first, then delta debugging:
// drop chunks, then smaller chunks, while it still fails), within a time budget.

/** Whether ops still fail; may return a shorter prefix that fails (the ops up to the failing one). */
export type FailsPredicate<T> = (ops: T[]) => Promise<false | T[]>

export interface ShrinkResult<T> { ops: T[]; trials: number; timedOut: boolean }

export async function shrink<T> (ops: T[], fails: FailsPredicate<T>, budgetMs: number): Promise<ShrinkResult<T>> {
  const deadline = Date.now() + budgetMs
  let cur = ops
  let parts = 2
  let trials = 0
  // Bugs are often local: first try short tails of the list, which are cheap to run.
  for (let k = 16; k < cur.length; k *= 4) {
    if (Date.now() > deadline) return { ops: cur, trials, timedOut: true }
    trials++
    const failed = await fails(cur.slice(-k))
    if (failed) { cur = failed; break }
  }
  while (cur.length >= 2) {
    if (Date.now() > deadline) return { ops: cur, trials, timedOut: true }
    const chunk = Math.ceil(cur.length / parts)
    let reduced = false
    for (let i = 0; i < cur.length; i += chunk) {
      if (Date.now() > deadline) return { ops: cur, trials, timedOut: true }
      const candidate = [...cur.slice(0, i), ...cur.slice(i + chunk)]
      trials++
      const failed = await fails(candidate)
      if (failed) {
        cur = failed
        parts = Math.max(parts - 1, 2)
        reduced = true
        break
      }
    }
    if (!reduced) {
      if (chunk === 1) break
      parts = Math.min(cur.length, parts * 2)
    }
  }
  return { ops: cur, trials, timedOut: false }
}
