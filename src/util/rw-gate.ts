// A fair read/write gate for async work: any number of shared holders, or
// one exclusive holder. Waiters are served in arrival order, so a stream of
// shared holders cannot starve an exclusive one (or the other way round).
type Waiter = { exclusive: boolean; go: () => void }

export class RwGate {
  private shared = 0
  private exclusive = false
  private readonly queue: Waiter[] = []
  /** How many exclusive holders have entered so far: lets a shared holder tell whether one ran since it last looked. */
  exclusiveRuns = 0

  /** Runs fn while no exclusive holder runs. */
  async withShared<T> (fn: () => Promise<T>): Promise<T> {
    await this.enter(false)
    try { return await fn() } finally { this.leave(false) }
  }

  /** Runs fn alone: no shared or other exclusive holder runs meanwhile. */
  async withExclusive<T> (fn: () => Promise<T>): Promise<T> {
    await this.enter(true)
    try { return await fn() } finally { this.leave(true) }
  }

  private free (exclusive: boolean): boolean {
    return exclusive ? !this.exclusive && this.shared === 0 : !this.exclusive
  }

  private enter (exclusive: boolean): Promise<void> {
    if (this.queue.length === 0 && this.free(exclusive)) {
      this.take(exclusive)
      return Promise.resolve()
    }
    return new Promise(resolve => this.queue.push({ exclusive, go: resolve }))
  }

  private take (exclusive: boolean): void {
    if (exclusive) { this.exclusive = true; this.exclusiveRuns++ } else this.shared++
  }

  private leave (exclusive: boolean): void {
    if (exclusive) this.exclusive = false
    else this.shared--
    while (this.queue.length > 0 && this.free(this.queue[0]!.exclusive)) {
      const w = this.queue.shift()!
      this.take(w.exclusive)
      w.go()
    }
  }
}
