// Times in nanoseconds travel (journal, wire) as JS numbers, and fs.utimes
// takes seconds as a double that libuv truncates to whole microseconds.
// Both lose precision: today's times in ns (~1.8e18) are doubles 256 apart,
// and most decimal fractions of a second have no exact double, so x.250 s
// could come out as x.249999 s. Seen through FUSE's whole-millisecond times,
// a file's mtime on the other mount was then a millisecond off (found by the
// tar and touch tests). So times keep whole microseconds (all utimes can
// set), encoded as the smallest double not below them, and are decoded by
// flooring, which makes the round trip exact.

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

/** The number form of a time in whole-or-fractional ms (as FUSE passes them). */
export function msToNumberNs (ms: number): number {
  return nsToNumber(BigInt(Math.round(ms * 1000)) * NS_PER_US)
}

/** Seconds for fs.utimes/lutimes that libuv turns into exactly the microsecond of a number-form ns time. */
export function utimesSeconds (ns: number): number {
  if (!Number.isFinite(ns)) return 0
  const us = wholeUs(BigInt(Math.floor(ns)))
  // Aim at the middle of the microsecond: libuv truncates, and us / 1e6 is rarely exact.
  return Number(us) / 1e6 + 5e-7
}

/** Seconds for fs.utimes of a bigint ns time (as lstat gives it). */
export function utimesSecondsOf (ns: bigint): number {
  return Number(wholeUs(ns)) / 1e6 + 5e-7
}

function nextUp (n: number): number {
  const buf = new DataView(new ArrayBuffer(8))
  buf.setFloat64(0, n)
  const bits = buf.getBigUint64(0)
  buf.setBigUint64(0, n >= 0 ? bits + 1n : bits - 1n)
  return buf.getFloat64(0)
}
