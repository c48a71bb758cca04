// A small seeded PRNG (mulberry32) so randomized tests replay from their seed.
export type Rand = () => number

export function prng (seed: number): Rand {
  let s = seed | 0
  return () => {
    s = (s + 0x6D2B79F5) | 0
    let x = Math.imul(s ^ (s >>> 15), 1 | s)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

export function pick<T> (rand: Rand, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)]!
}

/** A seed from the environment variable, or a fresh one. */
export function seedFrom (envVar: string): number {
  const v = process.env[envVar]
  return v !== undefined && v !== '' ? Number(v) : Date.now() % 1_000_000
}
