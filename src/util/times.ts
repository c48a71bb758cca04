// Node's utimes family takes seconds as a double, and libuv truncates them
// to whole microseconds. A time like 1614834367.089 s is held in binary just
// below itself and would land a microsecond early (.088999); half a
// microsecond more lands it on the intended one.
export function utimesArg (ns: number): number {
  return ns / 1e9 + 5e-7
}
