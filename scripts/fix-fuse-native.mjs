// Runs after `npm install`/`npm ci`. fuse-native 2.2.6 loses file times in
// its C glue, and no fixed release exists, so this patches the installed
// fuse-native.c and builds the addon from it (node-gyp-build then loads
// build/Release ahead of the shipped prebuilds):
// - utimens passed the access time in both time arguments (`l->atime` where
//   the modification time belongs): every utimes(2) set mtime = atime;
// - times crossed in whole milliseconds both ways: stat through a mount lost
//   the sub-millisecond part, and so did utimensat(2). Stat arrays of 21
//   uint32 now carry each time's nanoseconds within its millisecond, and
//   utimens also passes both tv_nsec values; stat times before 1970 (sent
//   in two's complement) no longer turn into far-future ones;
// - libfuse 2.9's high-level setattr calls utimens for a single time
//   (touch -m, futimens with UTIME_OMIT, as tar does) only when the
//   filesystem sets flag_utime_omit_ok; otherwise it drops that request.
//   The patched utimens passes UTIME_NOW/UTIME_OMIT on in tv_nsec.
// It also lets the FUSE threads answer two requests without the trip through
// the JS thread, once the daemon says these are exactly its answers
// (FuseShortcuts in src/fs/vfs.ts): getattr as lstat of the backing path, and
// getxattr of a name outside user.* as ENODATA.
// The patched addon exports `deltafs_ns_times`, which src/fs/fuse-native-fixes.ts
// checks: with the prebuild (build failed) it keeps the millisecond protocol.
// Only the known 2.2.6 source is patched; any other is left alone, with a warning.
import { gypRebuild, say } from './lib/gyp-rebuild.mjs'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

let dir
try {
  dir = path.dirname(require.resolve('fuse-native/package.json'))
} catch {
  say('fuse-native is not installed: nothing to fix')
  process.exit(0)
}
const source = path.join(dir, 'fuse-native.c')
// The source as installed, kept so that a later version of these edits starts from it.
const original = `${source}.deltafs-orig`
// First line of the patched source; the number changes with EDITS.
const MARK = '// deltafs fuse-native patch 4\n'
// fuse-native 2.2.6's fuse-native.c with the utimens argument corrected (the
// state earlier versions of this script left it in).
const KNOWN_SHA256 = '506e8049f5709f070b11c19bb8c450e5bb0c7e5adf9b95b76c9f80c1d6e459b2'
const MTIME_WRONG = 'FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)'
const MTIME_RIGHT = 'FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)'

/** [from, to] pairs, applied in order to the corrected 2.2.6 source; each `from` occurs once. */
const EDITS = [
  [
    'static const uint32_t op_rmdir = 33;\n',
    'static const uint32_t op_rmdir = 33;\n\n// deltafs: times carry nanoseconds (see populate_stat_len, utimens).\nstatic const uint32_t deltafs_ns_times = 1;\n',
  ],
  [
    '  size_t atime;\n  size_t mtime;\n',
    '  size_t atime;\n  size_t mtime;\n  long atime_nsec;\n  long mtime_nsec;\n',
  ],
  [
    'static void uint32s_to_timespec (struct timespec* ts, uint32_t** ints) {\n' +
    '  uint64_t ms = uint32s_to_uint64(ints);\n' +
    '  ts->tv_sec = ms / 1000;\n' +
    '  ts->tv_nsec = (ms % 1000) * 1000000;\n' +
    '}\n',
    '// deltafs: ms in two\'s complement, so that times before 1970 come through.\n' +
    'static void uint32s_to_timespec (struct timespec* ts, uint32_t** ints) {\n' +
    '  int64_t ms = (int64_t) uint32s_to_uint64(ints);\n' +
    '  int64_t sec = ms / 1000;\n' +
    '  int64_t rem = ms % 1000;\n' +
    '  if (rem < 0) { sec -= 1; rem += 1000; }\n' +
    '  ts->tv_sec = sec;\n' +
    '  ts->tv_nsec = rem * 1000000;\n' +
    '}\n',
  ],
  [
    'static void populate_stat (uint32_t *ints, struct stat* stat) {\n',
    '// deltafs: a stat array of 21 uint32 has the nanoseconds within the\n' +
    '// millisecond of atime, mtime, ctime in [18..20]; one of 18 is whole ms.\n' +
    '#define populate_stat(ints, st) populate_stat_len(ints, ints##_len, st)\n' +
    'static void populate_stat_len (uint32_t *ints, size_t len, struct stat* stat) {\n' +
    '  const uint32_t *sub_ms = len >= 21 * sizeof(uint32_t) ? ints + 18 : NULL;\n',
  ],
  [
    '  uint32s_to_timespec(&stat->st_ctim, &ints);\n#endif\n}\n',
    '  uint32s_to_timespec(&stat->st_ctim, &ints);\n' +
    '  if (sub_ms != NULL) {\n' +
    '    stat->st_atim.tv_nsec += sub_ms[0] % 1000000;\n' +
    '    stat->st_mtim.tv_nsec += sub_ms[1] % 1000000;\n' +
    '    stat->st_ctim.tv_nsec += sub_ms[2] % 1000000;\n' +
    '  }\n' +
    '#endif\n}\n',
  ],
  [
    'FUSE_METHOD_VOID(utimens, 5, 0, (const char *path, const struct timespec tv[2]), {\n' +
    '  l->path = path;\n' +
    '  l->atime = timespec_to_uint64(&tv[0]);\n' +
    '  l->mtime = timespec_to_uint64(&tv[1]);\n' +
    '}, {\n' +
    '  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));\n' +
    '  FUSE_UINT64_TO_INTS_ARGV(l->atime, 3)\n' +
    '  FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)\n' +
    '})\n',
    '// deltafs: also tv_nsec of both times, which may be UTIME_NOW or UTIME_OMIT.\n' +
    'FUSE_METHOD_VOID(utimens, 7, 0, (const char *path, const struct timespec tv[2]), {\n' +
    '  l->path = path;\n' +
    '  l->atime = timespec_to_uint64(&tv[0]);\n' +
    '  l->mtime = timespec_to_uint64(&tv[1]);\n' +
    '  l->atime_nsec = tv[0].tv_nsec;\n' +
    '  l->mtime_nsec = tv[1].tv_nsec;\n' +
    '}, {\n' +
    '  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));\n' +
    '  FUSE_UINT64_TO_INTS_ARGV(l->atime, 3)\n' +
    '  FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)\n' +
    '  napi_create_uint32(env, (uint32_t) l->atime_nsec, &(argv[7]));\n' +
    '  napi_create_uint32(env, (uint32_t) l->mtime_nsec, &(argv[8]));\n' +
    '})\n',
  ],
  [
    '  if (implemented[op_utimens]) ops.utimens = fuse_native_utimens;\n',
    '  if (implemented[op_utimens]) {\n' +
    '    ops.utimens = fuse_native_utimens;\n' +
    '    // deltafs: single-time updates reach utimens (UTIME_OMIT for the other).\n' +
    '    ops.flag_utime_omit_ok = 1;\n' +
    '  }\n',
  ],
  [
    '  NAPI_EXPORT_UINT32(op_rmdir)\n}',
    '  NAPI_EXPORT_UINT32(op_rmdir)\n  NAPI_EXPORT_UINT32(deltafs_ns_times)\n}',
  ],
  // getattr answered on the FUSE thread (see deltafs_set_stat_root below).
  [
    '#include <pthread.h>\n',
    '#include <pthread.h>\n#include <errno.h>\n#include <sys/stat.h>\n',
  ],
  [
    '  uv_sem_t sem;\n} fuse_thread_t;\n',
    '  uv_sem_t sem;\n' +
    '  // deltafs: once set, getattr is lstat(stat_root + path) on the FUSE thread.\n' +
    '  int stat_root_set;\n' +
    '  char stat_root[4096];\n' +
    '  // deltafs: once set, getxattr of a name outside user.* is ENODATA at once.\n' +
    '  int user_xattrs_only;\n' +
    '} fuse_thread_t;\n' +
    '\n' +
    '// JS gets paths through napi_create_string_utf8, which turns bytes that are\n' +
    '// not UTF-8 into U+FFFD: the daemon creates and opens such names under\n' +
    '// that spelling. Only paths that round-trip through JS unchanged (strict\n' +
    '// UTF-8: no overlong forms, surrogates or code points past U+10FFFF) may\n' +
    '// take a shortcut, or getattr would look up other bytes than the rest.\n' +
    'static int deltafs_utf8 (const char *s) {\n' +
    '  const unsigned char *p = (const unsigned char *) s;\n' +
    '  while (*p) {\n' +
    '    unsigned char c = *p;\n' +
    '    if (c < 0x80) { p++; continue; }\n' +
    '    int n;\n' +
    '    unsigned int cp;\n' +
    '    if (c >= 0xC2 && c <= 0xDF) { n = 1; cp = c & 0x1F; }\n' +
    '    else if (c >= 0xE0 && c <= 0xEF) { n = 2; cp = c & 0x0F; }\n' +
    '    else if (c >= 0xF0 && c <= 0xF4) { n = 3; cp = c & 0x07; }\n' +
    '    else return 0;\n' +
    '    for (int i = 1; i <= n; i++) {\n' +
    '      if ((p[i] & 0xC0) != 0x80) return 0;\n' +
    '      cp = (cp << 6) | (p[i] & 0x3F);\n' +
    '    }\n' +
    '    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;\n' +
    '    p += n + 1;\n' +
    '  }\n' +
    '  return 1;\n' +
    '}\n' +
    '\n' +
    'static int deltafs_lstat (const char *root, const char *path, struct stat *st) {\n' +
    '  char full[8192];\n' +
    '  int n = snprintf(full, sizeof(full), "%s%s", root, path);\n' +
    '  if (n < 0 || (size_t) n >= sizeof(full)) return -ENAMETOOLONG;\n' +
    '  return lstat(full, st) == 0 ? 0 : -errno;\n' +
    '}\n',
  ],
  [
    'FUSE_METHOD(getattr, 1, 1, (const char *path, struct stat *stat), {\n  l->path = path;\n',
    'FUSE_METHOD(getattr, 1, 1, (const char *path, struct stat *stat), {\n' +
    '  // deltafs: most requests of a tar x or a git clone are lookups, each a\n' +
    '  // getattr; a plain lstat needs no round trip through the JS thread.\n' +
    '  fuse_thread_t *owner = (fuse_thread_t *) fuse_get_context()->private_data;\n' +
    '  if (__atomic_load_n(&owner->stat_root_set, __ATOMIC_ACQUIRE) && deltafs_utf8(path)) return deltafs_lstat(owner->stat_root, path, stat);\n' +
    '  l->path = path;\n',
  ],
  [
    'FUSE_METHOD(getxattr, 4, 1, (const char *path, const char *name, char *value, size_t size), {\n  l->path = path;\n',
    'FUSE_METHOD(getxattr, 4, 1, (const char *path, const char *name, char *value, size_t size), {\n' +
    '  // deltafs: the kernel asks for security.capability before every write.\n' +
    '  fuse_thread_t *owner = (fuse_thread_t *) fuse_get_context()->private_data;\n' +
    '  if (__atomic_load_n(&owner->user_xattrs_only, __ATOMIC_ACQUIRE) && strncmp(name, "user.", 5) != 0) return -ENODATA;\n' +
    '  l->path = path;\n',
  ],
  [
    'NAPI_METHOD(fuse_native_unmount) {\n',
    '// deltafs: for a filesystem whose getattr is exactly lstat of root + path.\n' +
    '// Set once, before or while mounted; requests already on their way to JS\n' +
    '// are answered there, the same way.\n' +
    'NAPI_METHOD(deltafs_set_stat_root) {\n' +
    '  NAPI_ARGV(2)\n' +
    '  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);\n' +
    '  if (ft_len < sizeof(fuse_thread_t)) {\n' +
    '    napi_throw_error(env, NULL, "not a thread buffer of this addon");\n' +
    '    return NULL;\n' +
    '  }\n' +
    '  size_t len = 0;\n' +
    '  if (napi_get_value_string_utf8(env, argv[1], NULL, 0, &len) != napi_ok || len == 0 || len >= sizeof(ft->stat_root)) {\n' +
    '    napi_throw_error(env, NULL, "stat root must be a non-empty path shorter than 4096 bytes");\n' +
    '    return NULL;\n' +
    '  }\n' +
    '  if (__atomic_load_n(&ft->stat_root_set, __ATOMIC_ACQUIRE)) {\n' +
    '    napi_throw_error(env, NULL, "stat root already set");\n' +
    '    return NULL;\n' +
    '  }\n' +
    '  napi_get_value_string_utf8(env, argv[1], ft->stat_root, sizeof(ft->stat_root), &len);\n' +
    '  __atomic_store_n(&ft->stat_root_set, 1, __ATOMIC_RELEASE);\n' +
    '  return NULL;\n' +
    '}\n' +
    '\n' +
    '// deltafs: for a filesystem that has no attribute outside the user namespace.\n' +
    'NAPI_METHOD(deltafs_set_user_xattrs_only) {\n' +
    '  NAPI_ARGV(1)\n' +
    '  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);\n' +
    '  if (ft_len < sizeof(fuse_thread_t)) {\n' +
    '    napi_throw_error(env, NULL, "not a thread buffer of this addon");\n' +
    '    return NULL;\n' +
    '  }\n' +
    '  __atomic_store_n(&ft->user_xattrs_only, 1, __ATOMIC_RELEASE);\n' +
    '  return NULL;\n' +
    '}\n' +
    '\n' +
    'NAPI_METHOD(fuse_native_unmount) {\n',
  ],
  [
    '  NAPI_EXPORT_FUNCTION(fuse_native_unmount)\n',
    '  NAPI_EXPORT_FUNCTION(fuse_native_unmount)\n  NAPI_EXPORT_FUNCTION(deltafs_set_stat_root)\n  NAPI_EXPORT_FUNCTION(deltafs_set_user_xattrs_only)\n',
  ],
]

const text = fs.readFileSync(source, 'utf8')
const built = fs.existsSync(path.join(dir, 'build', 'Release', 'fuse.node'))

if (text.startsWith(MARK)) {
  if (built) process.exit(0) // patched and built before
} else {
  const base = fs.existsSync(original) ? fs.readFileSync(original, 'utf8') : text
  const corrected = base.replace(MTIME_WRONG, MTIME_RIGHT)
  if (createHash('sha256').update(corrected).digest('hex') !== KNOWN_SHA256) {
    say(`fuse-native.c is not the known 2.2.6 source: left as it is, times through mounts may be wrong (${source})`)
    process.exit(0)
  }
  if (!fs.existsSync(original)) fs.writeFileSync(original, base)
  let patched = MARK + corrected
  for (const [from, to] of EDITS) {
    if (patched.split(from).length !== 2) {
      say(`fuse-native.c: a patch step does not fit (${JSON.stringify(from.slice(0, 60))}): left as it is`)
      process.exit(0)
    }
    patched = patched.replace(from, to)
  }
  fs.writeFileSync(source, patched)
}

// The shipped prebuild still works if this fails: whole-ms times, mtime =
// atime on utimes, single-time updates dropped.
gypRebuild(dir, 'fuse-native with its time fixes and FUSE-thread answers', 'using its prebuild, whose times are whole ms and whose utimes sets mtime = atime')
