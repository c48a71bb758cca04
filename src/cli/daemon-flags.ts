// V8 options for the long-running processes (the mount daemon and the
// storage node). They can only be given on node's command line: V8 sizes its
// heap when the process starts, and NODE_OPTIONS refuses this one. So every
// launcher (bin/deltafs.js's shebang, the mount(8) helper, tests, benchmarks)
// takes them from here.
//
// Why: both daemons keep a small JS heap (about 13 MiB) while megabytes of
// Buffers pass through them. At that size V8 sets the old generation's limit
// only a young generation's worth above the live size, which is exactly the
// point where it starts incremental marking, so marking never stopped: the
// mount ran about 190 major GCs per 512 MiB written, and GC took a third of
// its CPU (bench/RESULTS.md, 2026-12-05). A larger initial old generation
// leaves the limit well above the live size; major GCs then come only from
// external-memory pressure (about 40 per 512 MiB).
export const DAEMON_NODE_FLAGS: readonly string[] = ['--initial-heap-size=64']
