// A Mount wires one mount daemon together: the backing directory and its
// Passthrough, capture, the journal, the FUSE session, the sync client and
// the status socket. open() and close() are idempotent.
import fsp from 'node:fs/promises'
import path from 'node:path'
import { Passthrough } from '../fs/passthrough.js'
import { fuseOps } from '../fs/fuse-ops.js'
import { FuseSession, inodesFit32Bits } from '../fs/fuse-session.js'
import { CaptureVfs } from '../capture/capture-vfs.js'
import { OpenDeleted } from '../capture/open-deleted.js'
import { newCaptureStats } from '../capture/capture-stats.js'
import { TxRecorder } from '../capture/tx-recorder.js'
import { LevelJournal } from '../journal/level-journal.js'
import { TxCodec } from '../codec/codec.js'
import { loadZstd, zstdImplementation } from '../codec/zstd.js'
import { PartStages } from '../sync/part-stages.js'
import { Applier } from '../sync/applier.js'
import { SyncClient } from '../sync/sync-client.js'
import { newSyncStats } from '../sync/sync-stats.js'
import { ControlServer, controlSocketPath } from './control-socket.js'
import { isMounted, prepareMountpoint } from './mountpoint.js'
import { redoPending } from './recovery.js'
import { LinkRebase } from '../sync/link-rebase.js'
import { answerRefresh, journalNewFile, journalWholeFile, reconcile } from './reconcile.js'
import { ConflictResolver } from '../sync/conflict-resolver.js'
import { FileIds } from '../sync/conflict-policy.js'
import { DEFAULT_RECORD_BUDGET, type RecordBudget, RecordStore } from '../capture/record-store.js'
import { checkVolumeName } from '../util/names.js'
import { type ClientTlsOptions, clientCredentials } from '../rpc/tls.js'
import { keyCheck } from '../codec/volume-key.js'
import type { DeltafsError } from '../util/errors.js'
import { logger } from '../util/log.js'
import { RwGate } from '../util/rw-gate.js'

const log = logger('mount')

export interface MountOptions {
  volume: string
  mountpoint: string
  node: string
  /** Holds <volume>/files (backing directory) and <volume>/journal. */
  dataDir: string
  quietMs?: number
  maxTxBytes?: number
  /** How long a new file stays held after its last close, waiting for a rename over an old one. */
  freshGraceMs?: number
  /** Budget of the records area that makes deltas of rewrites possible. */
  recordBudget?: Partial<RecordBudget>
  tls?: ClientTlsOptions
  /** Access token for the volume. */
  token?: string
  /** The volume key; payloads are end-to-end encrypted with it. */
  key?: Buffer
  /** Other users may use the mount (FUSE allow_other); modes are checked by the kernel. */
  allowOther?: boolean
  /** Seconds the kernel may keep attributes (DEFAULT_ATTR_CACHE_SECONDS); names are looked up at every use regardless. */
  attrCacheSeconds?: number
}

/**
 * Close-to-open coherence (DESIGN §3.7) needs fresh attributes at each open
 * and path lookup, which entry_timeout=0 gives on its own. Caching the
 * attributes for a second more only lets an fstat or a read on a file that
 * was already open miss a remote change for that second, and saves a
 * GETATTR round trip through the daemon on most syscalls (creates, git and
 * tar about 1.4x faster in bench/RESULTS.md).
 */
export const DEFAULT_ATTR_CACHE_SECONDS = 1

export class Mount {
  private readonly captureStats = newCaptureStats()
  private readonly syncStats = newSyncStats()
  private journal: LevelJournal | undefined
  private recorder: TxRecorder | undefined
  private stages: PartStages | undefined
  private session: FuseSession | undefined
  private sync: SyncClient | undefined
  private control: ControlServer | undefined
  private conflicts: ConflictResolver | undefined
  private state: 'new' | 'opening' | 'open' | 'closed' = 'new'
  mountpoint = ''
  private failWith: ((err: DeltafsError) => void) | undefined
  /** Settles when syncing stopped for good (wrong key, refused token). */
  readonly failed = new Promise<DeltafsError>(resolve => { this.failWith = resolve })
  private markUnmounted: (() => void) | undefined
  /** Settles when someone else unmounted the mount point (umount, fusermount -u). */
  readonly unmounted = new Promise<void>(resolve => { this.markUnmounted = resolve })
  private watchdog: NodeJS.Timeout | undefined
  private recordTimer: NodeJS.Timeout | undefined

  constructor (private readonly opts: MountOptions) {}

  async open (): Promise<void> {
    if (this.state !== 'new') return
    this.state = 'opening'
    const { volume, dataDir } = this.opts
    checkVolumeName(volume)
    const credentials = clientCredentials(this.opts.node, this.opts.tls ?? {}, log)
    this.mountpoint = await prepareMountpoint(this.opts.mountpoint, log)
    const volumeDir = path.resolve(dataDir, volume)
    const filesDir = path.join(volumeDir, 'files')
    await fsp.mkdir(filesDir, { recursive: true, mode: 0o755 })
    // Modes in the backing directory must be exactly what applications asked for.
    process.umask(0)

    try {
      // Long transactions split into parts that still fit zstd-codec's heap (MAX_ZSTD_RAW_BYTES), should it be the one in use.
      const journal = this.journal = new LevelJournal(path.join(volumeDir, 'journal'), volume, 3 << 20)
      await this.journal.open()
      await redoPending(this.journal, filesDir, log)
      const linkAsideDir = path.join(volumeDir, 'link-aside')
      const restored = await LinkRebase.recover(linkAsideDir, filesDir)
      if (restored > 0) log.info({ restored }, 'put back hard links set aside for a remote change when the mount stopped')
      const zstd = zstdImplementation()
      if (zstd !== 'zstd-napi' && !process.env.DELTAFS_ZSTD) log.warn({ zstd }, 'the native zstd binding is not in use: compression costs more CPU (npm install zstd-napi)')
      const codec = new TxCodec(await loadZstd(1, zstd), this.opts.key)
      const passthrough = new Passthrough(filesDir)
      const records = new RecordStore(path.join(volumeDir, 'records'), { ...DEFAULT_RECORD_BUDGET, ...this.opts.recordBudget }, r => recorder.evicted(r))
      await records.open()
      const stages = this.stages = new PartStages(path.join(volumeDir, 'staging'))
      await stages.open()
      const recorder = this.recorder = new TxRecorder(this.journal, p => passthrough.real(p), this.captureStats, {
        quietMs: this.opts.quietMs ?? 200, maxTxBytes: this.opts.maxTxBytes ?? (1 << 20), freshGraceMs: this.opts.freshGraceMs ?? 100, maxHeldFreshBytes: 128 << 20,
      }, records)
      this.recordTimer = setInterval(() => records.enforce(), 5000)
      this.recordTimer.unref()
      await reconcile(this.journal, this.recorder, filesDir, log)
      // Local changes and remote applies take turns (see CaptureVfs).
      const gate = new RwGate()
      const openDeleted = new OpenDeleted({
        real: p => passthrough.real(p),
        aside: () => records.tempPath(),
        deviceId: journal.deviceId,
        // Not detached from other names: the copy is the very file its descriptors write to.
        journalNewFile: p => journalNewFile(recorder, passthrough.real(p), p),
        kept: async entry => { await this.conflicts?.keptDeleted(entry) },
      })
      const vfs = new CaptureVfs(passthrough, this.recorder, this.captureStats, { real: p => passthrough.real(p), reopen: (fh, p) => passthrough.reopen(fh, p), records, journal: this.journal, openDeleted }, gate)
      const useIno = await inodesFit32Bits(filesDir)
      if (!useIno) log.warn({ filesDir }, 'backing filesystem is not ext2/3/4: inode numbers are per path, so hard links look like separate files')
      this.session = new FuseSession(this.mountpoint, fuseOps(vfs, log), { fsname: `deltafs:${volume}`, attrTimeout: this.opts.attrCacheSeconds ?? DEFAULT_ATTR_CACHE_SECONDS, useIno, allowOther: this.opts.allowOther ?? false, shortcuts: vfs.shortcuts })
      await this.session.open()
      this.watchdog = setInterval(() => {
        isMounted(this.mountpoint).then(up => { if (!up && this.state === 'open') this.markUnmounted?.() }, () => undefined)
      }, 1000)
      this.watchdog.unref()
      this.conflicts = new ConflictResolver({
        journal: this.journal,
        real: p => passthrough.real(p),
        tempPath: () => records.tempPath(),
        stats: this.syncStats,
        local: {
          isOpen: p => recorder.isOpen(p),
          closeAll: related => recorder.closeAll(related),
          record: async (p, op) => { await recorder.closeAll([p]); await recorder.record(p, op) },
          journalNewFile: p => journalNewFile(recorder, passthrough.real(p), p),
          journalWholeFile: p => journalWholeFile(recorder, passthrough.real(p), p, () => records.tempPath()),
          moveOpen: (p, copy) => vfs.moveOpen(p, copy),
          otherNames: p => vfs.otherNames(p),
        },
      })
      await this.conflicts.open()
      this.sync = new SyncClient({
        node: this.opts.node, volume, journal: this.journal, codec, stats: this.syncStats,
        applier: new Applier(filesDir, {
          deviceId: this.journal.deviceId,
          tempPath: () => records.tempPath(),
          onRefresh: p => answerRefresh(recorder, passthrough.real(p), p, () => records.tempPath()),
          onReplaced: p => vfs.reopenHandles(p),
          onRemoving: (p, by) => vfs.adoptOpen(p, by),
          onMoved: (from, to) => vfs.movedRemotely(from, to),
          linksPendingFrom: p => journal.pendingLinkFrom(p),
          lastChange: p => journal.record(p),
          removedHere: p => journal.pendingRemoval(p),
          changedHere: p => journal.pendingOn(p).length > 0,
          interruptedSeq: () => journal.interruptedApply(),
          pendingLinks: { list: () => journal.pendingLinks(), asideDir: linkAsideDir, outbox: (after, limit) => journal.readOutbox(after, limit) },
          stages,
        }),
        onBaseMismatch: (p, author) => recorder.record(p, { refresh: { deviceId: author } }),
        fileIds: new FileIds(volume, this.opts.key),
        conflicts: this.conflicts,
        gate,
        stub: { credentials, token: this.opts.token },
        keyCheck: this.opts.key ? keyCheck(this.opts.key, volume) : new Uint8Array(0),
        onFatal: err => this.failWith?.(err),
      })
      this.sync.open()
      this.control = new ControlServer(controlSocketPath(this.mountpoint), () => this.status())
      await this.control.open()
    } catch (err) {
      await this.close()
      throw err
    }
    this.state = 'open'
    log.info({ volume, mountpoint: this.mountpoint, node: this.opts.node, deviceId: this.journal.deviceId }, 'mounted')
  }

  async close (): Promise<void> {
    if (this.state === 'closed' || this.state === 'new') return
    this.state = 'closed'
    clearInterval(this.watchdog)
    clearInterval(this.recordTimer)
    await this.control?.close().catch(err => log.warn({ err }, 'closing the status socket failed'))
    // Unmount first so no new writes arrive, then close what they left open.
    await this.session?.close().catch(err => log.error({ err }, 'unmount failed'))
    await this.recorder?.closeEverything().catch(err => log.error({ err }, 'closing open transactions failed'))
    await this.sync?.close()
    await this.journal?.sync().catch(() => undefined)
    await this.journal?.close()
    log.info({ mountpoint: this.mountpoint }, 'unmounted')
  }

  status (): Record<string, unknown> {
    const j = this.journal
    const pending = j?.pending() ?? { tx: 0, bytes: 0 }
    return {
      volume: this.opts.volume,
      mountpoint: this.mountpoint,
      node: this.opts.node,
      deviceId: j?.deviceId,
      connected: this.syncStats.connected,
      readOnly: this.syncStats.readOnly,
      // Not yet on the node: closed and unacked, or still being captured
      // (a transaction closes at its file's release, which the kernel sends
      // after close(2) has returned).
      pendingTx: pending.tx + (this.recorder?.openCount() ?? 0),
      openTx: this.recorder?.openCount() ?? 0,
      heldRewrites: this.recorder?.heldCount() ?? 0,
      stagedFiles: this.stages?.size ?? 0,
      pendingBytes: pending.bytes,
      lastPushedSeq: this.syncStats.lastPushedSeq,
      lastAppliedSeq: j?.applied() ?? 0,
      ...this.captureStats,
      healsRequested: this.syncStats.healsRequested,
      conflictsLost: this.syncStats.conflicts,
      conflicts: this.conflicts?.list() ?? [],
      bytesPushed: this.syncStats.bytesPushed,
      framesPushed: this.syncStats.framesPushed,
      bytesReceived: this.syncStats.bytesReceived,
      txRefused: this.syncStats.txRefused,
      ...(j?.counters() ?? {}),
      lastError: this.syncStats.lastError,
      // What the daemon holds, by kind: rss beyond heap and external is native (LevelDB, malloc arenas).
      memory: process.memoryUsage(),
    }
  }
}
