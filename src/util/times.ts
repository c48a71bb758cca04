// File times travel (ops, transactions, the journal's outbox) as bigint
// nanoseconds, exact: a double cannot hold today's times in ns (~1.8e18,
// doubles 256 apart there). Where a number is kept, in the file records that
// only tell whether a file changed, and where fs.utimes has to set a time
// (no ns-time addon built), times keep whole microseconds: fs.utimes takes
// seconds as a double that libuv truncates, and most decimal fractions of a
// second have no exact double, so x.250 s could come out as x.249999 s. The
// number form is the smallest double not below the whole microseconds, and
// is decoded by flooring, which makes the round trip exact.

/** A time a utimens asks for: ns since the epoch, the clock's now, or left as it is. */
export type TimeSet = bigint | 'now' | 'omit'

const NS_PER_S = 1_000_000_000n
const NS_PER_MS = 1_000_000n

/** Whole seconds (floored) and the nanoseconds into that second, as a timespec holds them. */
export function splitNs (ns: bigint): { sec: bigint; nsec: number } {
  let sec = ns / NS_PER_S
  let nsec = ns - sec * NS_PER_S
  if (nsec < 0n) { sec -= 1n; nsec += NS_PER_S }
  return { sec, nsec: Number(nsec) }
}

/** Whole milliseconds (floored) and the nanoseconds into that millisecond. */
export function splitMs (ns: bigint): { ms: number; subMs: number } {
  let ms = ns / NS_PER_MS
  let sub = ns - ms * NS_PER_MS
  if (sub < 0n) { ms -= 1n; sub += NS_PER_MS }
  return { ms: Number(ms), subMs: Number(sub) }
}

/** A time in ns from what a JSON journal entry holds: a decimal string, or a number from before times were exact. */
export function nsFromJson (v: string | number | bigint | undefined): bigint {
  if (typeof v === 'bigint') return v
  if (typeof v === 'string') return BigInt(v)
  return typeof v === 'number' && Number.isFinite(v) ? BigInt(Math.floor(v)) : 0n
}

const NS_PER_US = 1000n

function wholeUs (ns: bigint): bigint {
  const us = ns / NS_PER_US
  return ns < 0n && us * NS_PER_US !== ns ? us - 1n : us // floor, also before 1970
}

/** The number form of a time in ns (as lstat's bigint gives it): whole microseconds, decodable exactly. */
export function nsToNumber (ns: bigint): number {
  const exact = wholeUs(ns) * NS_PER_US
  let n = Number(exact)
  // Number() rounds to nearest; step up to the next double when that fell below.
  if (BigInt(n) < exact) n = nextUp(n)
  return n
}

/** Seconds for fs.utimes of a time in ns that libuv turns into exactly its (floored) microsecond. */
export function utimesSecondsOf (ns: bigint): number {
  // Aim at the middle of the microsecond: libuv truncates, and us / 1e6 is rarely exact.
  return Number(wholeUs(ns)) / 1e6 + 5e-7
}

function nextUp (n: number): number {
  const buf = new DataView(new ArrayBuffer(8))
  buf.setFloat64(0, n)
  const bits = buf.getBigUint64(0)
  buf.setBigUint64(0, n >= 0 ? bits + 1n : bits - 1n)
  return buf.getFloat64(0)
}
