// The floor under every deltafs figure: the same fuse-native session and
// Passthrough a deltafs mount uses, with nothing captured, journaled or
// synced. What this costs against bindfs is the binding's (one trip through
// the JS thread per request); what deltafs costs on top of it is capture's.
// Usage: node dist/bench/fuse-floor.js SOURCE MOUNTPOINT [--cache-names]
// (SIGTERM unmounts). --cache-names lets the kernel cache names found and
// missing for 1 s, as libfuse's defaults (and so bindfs) do, where a deltafs
// mount caches neither (close-to-open coherence with remote changes): the
// difference is what that coherence costs on this binding.
import { FuseSession, inodesFit32Bits } from '../src/fs/fuse-session.js'
import { fuseOps } from '../src/fs/fuse-ops.js'
import { Passthrough } from '../src/fs/passthrough.js'
import { DEFAULT_ATTR_CACHE_SECONDS } from '../src/mount/mount.js'
import { logger } from '../src/util/log.js'

const [source, mountpoint, ...flags] = process.argv.slice(2)
const cacheNames = flags.includes('--cache-names')
if (!source || !mountpoint || flags.some(f => f !== '--cache-names')) {
  console.error('usage: fuse-floor SOURCE MOUNTPOINT [--cache-names]')
  process.exit(2)
}
const vfs = new Passthrough(source)
// The FUSE-thread answers a deltafs mount takes (CaptureVfs.shortcuts), and
// only those, so that the floor is the same binding path: getattr as lstat
// and getxattr outside user.* answered on the FUSE thread (the bench's files
// have no such attributes, so nothing reads differently).
const session = new FuseSession(mountpoint, fuseOps(vfs, logger('fuse-floor')), {
  fsname: 'fuse-floor', attrTimeout: DEFAULT_ATTR_CACHE_SECONDS, ...(cacheNames ? { entryTimeout: 1, negativeTimeout: 1 } : {}), useIno: await inodesFit32Bits(source), shortcuts: { ...vfs.shortcuts, userXattrsOnly: true },
})
await session.open()
console.log(`mounted ${mountpoint} (FUSE-thread answers: ${session.shortcutsTaken.join(', ') || 'none'})`)
process.once('SIGTERM', () => { session.close().then(() => process.exit(0), () => process.exit(1)) })
