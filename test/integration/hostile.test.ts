// Issue: frames from the wire are untrusted, on the mount and on the node.
// Each hostile frame gets a clear error and an entry in the log, and crashes
// nothing; the process goes on serving others, and nothing outside the
// mount's backing directory is read or written.
//
// A hand-crafted pusher ("devil") talks to a real storage node; mount B is a
// real FUSE mount in a child process. After every hostile item a GOOD
// transaction follows, and B must show it: B is alive and skipped the bad one.
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import * as grpc from '@grpc/grpc-js'
import t, { type Test } from 'tap'
import { Cluster } from '../helpers/cluster.js'
import { snapshot, type Entry } from '../helpers/tree.js'
import { type MountHandle, sleep, tempDir, waitFor } from '../helpers/processes.js'
import { SyncStub } from '../../src/rpc/client.js'
import { SyncService, VOLUME_HEADER, channelOptions } from '../../src/rpc/service.js'
import {
  type Ack, AckStatus, type Delivery, type Frame, type FrameHeader, FrameCodec, type Op, PayloadCodec,
  type Transaction, TransactionCodec,
} from '../../src/codec/wire.js'
import { TxCodec } from '../../src/codec/codec.js'
import { loadZstd } from '../../src/codec/zstd.js'

const MiB = 1 << 20
const VOL = 'vol'
const DEVICE = 'devil'
/** A name no one else uses: every escape target carries it. */
const U = `pwned-${process.pid}-${randomBytes(3).toString('hex')}`

t.setTimeout(15 * 60_000)

// ---------------------------------------------------------------- helpers

type PushCall = grpc.ClientDuplexStream<Uint8Array, Ack>

/** One Push stream: write frame bytes, read Acks in order, see how it ends. */
class Pusher {
  readonly call: PushCall
  private readonly waiting: Array<{ resolve: (a: Ack) => void; reject: (e: unknown) => void }> = []
  error: grpc.ServiceError | undefined
  readonly failed: Promise<grpc.ServiceError>

  constructor (open: () => PushCall) {
    this.call = open()
    this.failed = new Promise(resolve => {
      this.call.on('error', (err: grpc.ServiceError) => {
        this.error = err
        for (const w of this.waiting.splice(0)) w.reject(err)
        resolve(err)
      })
    })
    this.call.on('data', (ack: Ack) => { this.waiting.shift()?.resolve(ack) })
    this.call.on('end', () => { for (const w of this.waiting.splice(0)) w.reject(new Error('push stream ended')) })
  }

  send (bytes: Uint8Array, timeoutMs = 20_000): Promise<Ack> {
    return new Promise((resolve, reject) => {
      if (this.error) { reject(this.error); return }
      const timer = setTimeout(() => reject(new Error(`no ack within ${timeoutMs} ms`)), timeoutMs)
      this.waiting.push({
        resolve: a => { clearTimeout(timer); resolve(a) },
        reject: e => { clearTimeout(timer); reject(e) },
      })
      this.call.write(bytes)
    })
  }

  /** The status the stream failed with, or undefined if it did not fail within timeoutMs. */
  async failure (timeoutMs = 15_000): Promise<grpc.ServiceError | undefined> {
    let timer: ReturnType<typeof setTimeout> | undefined
    const r = await Promise.race([this.failed, new Promise<undefined>(resolve => { timer = setTimeout(() => resolve(undefined), timeoutMs) })])
    clearTimeout(timer)
    return r
  }

  close (): void {
    if (!this.error) this.call.cancel()
  }
}

/** Raw Push calls with a larger send limit than SyncStub allows, to reach the node's own limit. */
function rawPushOpener (address: string, maxSend: number): { open: () => PushCall; close: () => void } {
  const Ctor = grpc.makeGenericClientConstructor(SyncService, 'Sync')
  const client = new Ctor(address, grpc.credentials.createInsecure(), { ...channelOptions, 'grpc.max_send_message_length': maxSend }) as unknown as grpc.Client & { push (md: grpc.Metadata): PushCall }
  return {
    open: () => { const md = new grpc.Metadata(); md.set(VOLUME_HEADER, VOL); return client.push(md) },
    close: () => client.close(),
  }
}

interface LogLine { msg?: string; err?: unknown; error?: unknown; seq?: number; txId?: { deviceSeq?: number }; [k: string]: unknown }

function logLines (text: string): LogLine[] {
  return text.split('\n').flatMap(l => {
    if (!l.startsWith('{')) return []
    try { return [JSON.parse(l) as LogLine] } catch { return [] }
  })
}

/** The last lines of the text logs of a cluster's processes (Cluster.logs() also dumps LevelDB's binary .log files). */
function textLogs (c: Cluster): string {
  const procs = [c.node, ...c.mounts].filter((p): p is NonNullable<typeof p> => p !== undefined)
  return procs.map(p => `== ${p.logFile}\n${p.log().split('\n').slice(-60).join('\n')}`).join('\n')
}

function rssKiB (pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m?.[1] ?? NaN)
}

function without<T> (o: Record<string, T>, ...keys: string[]): Record<string, T> {
  const out = { ...o }
  for (const k of keys) delete out[k]
  return out
}

/** zstd frame with a single-segment header declaring `declared` bytes (8-byte FCS) followed by `blocks`. */
function zstdFrame (declared: number | undefined, blocks: Buffer[]): Buffer {
  const parts: Buffer[] = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd])]
  if (declared === undefined) {
    parts.push(Buffer.from([0x00, 0x58])) // FHD: no FCS, no single segment; window descriptor
  } else {
    const fcs = Buffer.alloc(8)
    fcs.writeBigUInt64LE(BigInt(declared))
    parts.push(Buffer.from([0xE0]), fcs) // FHD: FCS 8 bytes, single segment
  }
  return Buffer.concat([...parts, ...blocks])
}
function zstdBlock (type: 0 | 1, size: number, last: boolean, fill = 0x41): Buffer {
  const h = (size << 3) | (type << 1) | (last ? 1 : 0)
  const head = Buffer.from([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff])
  return Buffer.concat([head, type === 1 ? Buffer.from([fill]) : Buffer.alloc(size, fill)])
}
/** `count` RLE blocks of 128 KiB: 4 bytes each on the wire, 128 KiB each when expanded. */
function rleBlocks (count: number): Buffer[] {
  return Array.from({ length: count }, (_, i) => zstdBlock(1, 128 * 1024, i === count - 1))
}

// ---------------------------------------------------------------- the test

t.test('hostile frames are refused, logged and survived by mount and node', async t => {
  const c = await Cluster.start(t, 1, VOL)
  const B = c.mounts[0] as MountHandle
  const node = c.node!
  const nodePid = node.child.pid!
  const backing = path.join(B.dataDir, VOL, 'files')
  t.teardown(() => { if (t.passing() === false) t.comment(textLogs(c)) })

  // Sentinels: a sibling temp dir and a dir inside the cluster's dir.
  const outside = tempDir('deltafs-outside-')
  t.teardown(() => fs.rmSync(outside, { recursive: true, force: true }))
  const outsideTarget = path.join(outside, 'target')
  fs.mkdirSync(outsideTarget, { mode: 0o755 })
  fs.writeFileSync(path.join(outsideTarget, 'keep.txt'), 'keep me\n', { mode: 0o644 })
  fs.writeFileSync(path.join(outside, 'sentinel.txt'), 'outside sentinel\n', { mode: 0o600 })
  fs.chmodSync(outsideTarget, 0o755)
  const sentinel = path.join(c.dir, 'sentinel')
  fs.mkdirSync(sentinel)
  fs.writeFileSync(path.join(sentinel, 'keep.txt'), 'cluster sentinel\n', { mode: 0o640 })
  // Where escapes from <c.dir>/data-a/vol/files would land.
  const escapeTargets = [
    path.join(path.dirname(c.dir), `${U}-tmp.txt`), path.join(path.dirname(c.dir), `${U}-tmp`),
    path.join(process.cwd(), `${U}-rel.txt`), path.join(process.cwd(), U), `/${U}`,
  ]
  const listedDirs = [c.dir, B.dataDir, path.join(B.dataDir, VOL), node.dataDir]
  const listings = (): Record<string, string[]> => Object.fromEntries(listedDirs.map(d => [d, fs.readdirSync(d).sort()]))

  interface State { tree: Record<string, Entry>; outside: Record<string, Entry>; sentinel: Record<string, Entry>; listings: Record<string, string[]>; escapes: string[]; status: Record<string, number | string | boolean> }
  const state = async (): Promise<State> => ({
    tree: await snapshot(B.mountpoint),
    outside: await snapshot(outside),
    sentinel: await snapshot(sentinel),
    listings: listings(),
    escapes: escapeTargets.filter(p => fs.existsSync(p)),
    status: await B.status(),
  })
  const outsideMode = (): number => fs.statSync(outsideTarget).mode & 0o7777

  const zstd = await loadZstd()
  const codec = new TxCodec(zstd)
  const stub = new SyncStub(node.address)
  t.teardown(() => stub.close())
  let pusher = new Pusher(() => stub.push(VOL))
  t.teardown(() => pusher.close())

  let deviceSeq = 0
  const tx = (p: string, ops: Op[], over: Partial<Transaction> = {}): Transaction => {
    const s = ++deviceSeq
    return { txId: { deviceId: DEVICE, deviceSeq: s }, volume: VOL, fileId: `devil-${s}`, baseVersion: 0, path: p, ops, mtimeNs: 0n, ...over }
  }
  const sealed = (x: Transaction): Uint8Array => FrameCodec.encode(codec.seal(x))
  /** A frame with a hand-made header around any payload. */
  const rawFrame = (payload: Uint8Array, header: Partial<FrameHeader> = {}): Uint8Array => {
    const s = ++deviceSeq
    return FrameCodec.encode({
      header: { volume: VOL, txId: { deviceId: DEVICE, deviceSeq: s }, fileId: `devil-${s}`, baseVersion: 0, codec: PayloadCodec.NONE, encrypted: false, rawSize: payload.length, ...header },
      payload,
    })
  }
  const data = (s: string): Buffer => Buffer.from(s)

  /** Pushes a good transaction and waits until B has applied it; returns its seq. */
  const applyGood = async (t: Test, x: Transaction, p = pusher): Promise<number> => {
    const ack = await p.send(sealed(x))
    t.equal(ack.status, AckStatus.OK, `good tx ${x.path} stored (seq ${ack.seq})`)
    await waitFor(`B to apply seq ${ack.seq}`, async () => Number((await B.status()).lastAppliedSeq) >= ack.seq, 20_000)
    return ack.seq
  }
  let markers = 0
  /** A good, compressible (zstd) marker file; B must show it byte for byte. */
  const goodMarker = async (t: Test, p = pusher): Promise<string> => {
    const name = `ok-${++markers}.txt`
    const content = `marker ${markers} after a hostile frame\n`.repeat(40)
    const x = tx(`/${name}`, [{ create: { mode: 0o644 } }, { write: { offset: 0, data: data(content) } }])
    t.equal(codec.seal(x).header.codec, PayloadCodec.ZSTD, 'the marker travels zstd-compressed')
    await applyGood(t, x, p)
    t.equal(await fsp.readFile(path.join(B.mountpoint, name), 'utf8'), content, `B is alive and shows ${name}`)
    return name
  }

  interface MountExpect {
    /** Regexp the mount's log entry for the refusal must match. */
    log: RegExp
    /** true: txRefused must go up by one; 'either': a harmless no-op is fine too. */
    refused?: true | 'either'
    todo?: { tree?: string; refused?: string; log?: string; outside?: string }
  }

  /** A frame the node stores (it cannot look inside) and the mount must refuse. */
  const mountRefuses = async (name: string, bytes: () => Uint8Array, expect: MountExpect): Promise<void> => {
    await t.test(name, async t => {
      const before = await state()
      const ack = await pusher.send(bytes())
      t.equal(ack.status, AckStatus.OK, `the node stores it as seq ${ack.seq} (it does not decode payloads)`)
      const marker = await goodMarker(t)
      const after = await state()
      const refusedDelta = Number(after.status.txRefused) - Number(before.status.txRefused)
      const todo = expect.todo ?? {}
      if (expect.refused === 'either') {
        t.ok(refusedDelta === 0 || refusedDelta === 1, `B refused it or applied it as a harmless no-op (txRefused +${refusedDelta})`)
      } else {
        t.equal(refusedDelta, 1, 'B counted exactly one refused transaction', todo.refused ? { todo: todo.refused } : {})
      }
      t.same(without(after.tree, marker), before.tree, 'B\'s tree holds nothing from the bad frame', todo.tree ? { todo: todo.tree } : {})
      t.same(await snapshot(backing), after.tree, 'B\'s backing dir and mount agree')
      t.same(after.outside, before.outside, 'the sibling temp dir outside is unchanged', todo.outside ? { todo: todo.outside } : {})
      t.same(after.sentinel, before.sentinel, 'the sentinel in the cluster dir is unchanged')
      t.same(after.listings, before.listings, 'no new entries next to the backing dir')
      t.same(after.escapes, [], 'no escape target exists')
      if (refusedDelta === 1 || expect.refused !== 'either') {
        const entry = logLines(B.log()).find(l => l.seq === ack.seq && /refused/.test(String(l.msg)))
        t.ok(entry, `B's log has an entry for seq ${ack.seq}`, todo.log ? { todo: todo.log } : {})
        t.match(String(entry?.err ?? ''), expect.log, `with a clear error: ${String(entry?.err ?? '(none)').slice(0, 160)}`, todo.log ? { todo: todo.log } : {})
      }
      t.equal(B.child.exitCode, null, 'B is still running')
      t.equal(node.child.exitCode, null, 'the node is still running')
    })
  }

  /** A frame the node itself must refuse with a REJECTED ack, storing nothing. */
  const nodeRejects = async (name: string, bytes: () => Uint8Array, error: RegExp): Promise<void> => {
    await t.test(name, async t => {
      const before = await state()
      const head = await c.headSeq()
      const logAt = node.log().length
      const ack = await pusher.send(bytes())
      t.equal(ack.status, AckStatus.REJECTED, 'the node acks REJECTED')
      t.match(ack.error, error, `with a clear error: ${ack.error}`)
      t.equal(await c.headSeq(), head, 'the node stored nothing')
      const entry = logLines(node.log().slice(logAt)).find(l => /rejected/.test(String(l.msg)))
      t.ok(entry, 'the node logged it')
      await goodMarker(t) // the same stream goes on
      const after = await state()
      t.equal(after.status.txRefused, before.status.txRefused, 'B never saw it')
      t.same(after.outside, before.outside, 'the sibling temp dir outside is unchanged')
      t.same(after.sentinel, before.sentinel, 'the sentinel in the cluster dir is unchanged')
      t.equal(node.child.exitCode, null, 'the node is still running')
    })
  }

  /** Bytes that break the Push stream itself: a gRPC error, the node lives on and serves others. */
  const streamFails = async (name: string, bytes: Uint8Array, expect: { code: grpc.status; details: RegExp }, opener?: () => PushCall, logged = true): Promise<void> => {
    await t.test(name, async t => {
      const head = await c.headSeq()
      const logAt = node.log().length
      const hostile = new Pusher(opener ?? (() => stub.push(VOL)))
      const acks: Ack[] = []
      hostile.call.on('data', (a: Ack) => acks.push(a))
      hostile.call.write(bytes)
      const err = await hostile.failure(30_000)
      hostile.close()
      t.ok(err, 'the stream fails')
      t.equal(err?.code, expect.code, `with gRPC status ${grpc.status[expect.code]} (got ${err ? grpc.status[err.code] : 'none'})`)
      t.match(err?.details ?? '', expect.details, `details: ${err?.details ?? ''}`)
      t.same(acks, [], 'and no ack')
      await sleep(200)
      t.equal(node.child.exitCode, null, 'the node did not crash')
      t.equal(await c.headSeq(), head, 'the node stored nothing')
      const lines = logLines(node.log().slice(logAt))
      if (logged) {
        t.ok(lines.some(l => l.level !== undefined && Number(l.level) >= 30 && /push|frame|stream|message/i.test(String(l.msg))),
          'the node logged the bad stream')
      }
      await goodMarker(t) // an existing stream keeps working
      const fresh = new Pusher(() => stub.push(VOL))
      await goodMarker(t, fresh) // and a new stream works
      fresh.close()
    })
  }

  // ---------------------------------------------------------------- setup
  await t.test('setup: good transactions apply', async t => {
    await applyGood(t, tx('/victim.txt', [{ create: { mode: 0o644 } }, { write: { offset: 0, data: data('the victim\n') } }]))
    await applyGood(t, tx('/dir', [{ mkdir: { mode: 0o755 } }]))
    await goodMarker(t)
    t.equal(await fsp.readFile(path.join(B.mountpoint, 'victim.txt'), 'utf8'), 'the victim\n')
  })

  // ---------------------------------------------------------------- paths
  const cw = [{ create: { mode: 0o644 } }, { write: { offset: 0, data: data('evil\n') } }] as Op[]
  const base = path.basename(outside)
  await mountRefuses('path with .. into the cluster dir', () => sealed(tx(`/../../../sentinel/${U}.txt`, cw)), { log: /BAD_PATH|"\.\."|segment/ })
  await mountRefuses('path with .. into a sibling temp dir', () => sealed(tx(`/../../../../${base}/${U}.txt`, cw)), { log: /segment/ })
  await mountRefuses('path with .. into /tmp', () => sealed(tx(`/../../../../${U}-tmp.txt`, cw)), { log: /segment/ })
  await mountRefuses('path with .. in the middle', () => sealed(tx(`/dir/../../../${U}`, [{ mkdir: { mode: 0o777 } }])), { log: /segment/ })
  await mountRefuses('path ending in ..', () => sealed(tx('/dir/..', [{ setAttr: { hasMode: true, mode: 0o777 } }])), { log: /segment/ })
  await mountRefuses('rename target with ..', () => sealed(tx('/victim.txt', [{ rename: { to: `/../../../sentinel/${U}-renamed.txt` } }])), { log: /segment/ })
  await mountRefuses('hard link target with ..', () => sealed(tx('/victim.txt', [{ link: { to: `/../../../sentinel/${U}-link.txt` } }])), { log: /segment/ })
  await mountRefuses('symlink created at a .. path', () => sealed(tx(`/../../../sentinel/${U}-sym`, [{ symlink: { target: '/etc/passwd' } }])), { log: /segment/ })
  await mountRefuses('relative path', () => sealed(tx(`${U}-rel.txt`, cw)), { log: /not absolute/ })
  await mountRefuses('relative path with ..', () => sealed(tx(`../../../sentinel/${U}-rel.txt`, cw)), { log: /not absolute/ })
  await mountRefuses('empty path', () => sealed(tx('', cw)), { log: /bad path/ })
  await mountRefuses('path with a NUL byte', () => sealed(tx(`/nul\0${U}.txt`, cw)), { log: /NUL/ })
  await mountRefuses('path with a NUL byte and ..', () => sealed(tx(`/../../../sentinel/${U}\0.txt`, cw)), { log: /NUL|segment/ })
  await mountRefuses('rename target with a NUL byte', () => sealed(tx('/victim.txt', [{ rename: { to: `/victim\0${U}` } }])), { log: /NUL/ })
  await mountRefuses('name longer than 255 bytes', () => sealed(tx(`/${'x'.repeat(300)}`, cw)), { log: /longer than 255/ })
  await mountRefuses('symlink target with a NUL byte', () => sealed(tx(`/${U}-nul-link`, [{ symlink: { target: `/tmp\0/x` } }])), { log: /symlink target/ })

  // ---------------------------------------------------------------- symlink escapes
  await t.test('setup: symlinks in the volume pointing outside', async t => {
    await applyGood(t, tx('/esc', [{ symlink: { target: outsideTarget } }]))
    await applyGood(t, tx('/escf', [{ symlink: { target: path.join(outside, 'sentinel.txt') } }]))
    t.equal(fs.readlinkSync(path.join(backing, 'esc')), outsideTarget, 'B holds /esc -> the outside dir')
  })
  await mountRefuses('write through a symlinked directory', () => sealed(tx(`/esc/${U}.txt`, cw)), { log: /leaves the volume through a symlink/ })
  await mountRefuses('mkdir through a symlinked directory', () => sealed(tx(`/esc/${U}-dir`, [{ mkdir: { mode: 0o777 } }])), { log: /leaves the volume through a symlink/ })
  await mountRefuses('rename into a symlinked directory', () => sealed(tx('/victim.txt', [{ rename: { to: `/esc/${U}-stolen.txt` } }])), { log: /leaves the volume through a symlink/ })
  await mountRefuses('hard link into a symlinked directory', () => sealed(tx('/victim.txt', [{ link: { to: `/esc/${U}-link.txt` } }])), { log: /leaves the volume through a symlink/ })
  await mountRefuses('unlink through a symlinked directory', () => sealed(tx('/esc/keep.txt', [{ unlink: {} }])), { log: /leaves the volume through a symlink/ })
  await mountRefuses('write through a symlink to an outside file', () => sealed(tx('/escf', [{ write: { offset: 0, data: data('overwritten\n') } }])), { log: /ELOOP|symbolic links/ })
  await mountRefuses('truncate through a symlink to an outside file', () => sealed(tx('/escf', [{ truncate: { size: 0 } }])), { log: /ELOOP|symbolic links/ })
  await mountRefuses('create over a symlink to an outside dir', () => sealed(tx('/esc', [{ create: { mode: 0o777 } }])), { log: /ELOOP|symbolic links/ })
  await mountRefuses('chmod through a symlink to an outside file', () => sealed(tx('/escf', [{ setAttr: { hasMode: true, mode: 0o777 } }])), { log: /./, refused: 'either' })
  const modeBefore = outsideMode()
  await mountRefuses('mkdir over a symlink to an outside dir', () => sealed(tx('/esc', [{ mkdir: { mode: 0o777 } }])), {
    log: /./, refused: 'either',
  })
  await t.test('the outside dir a symlink points at keeps its mode', async t => {
    t.equal(outsideMode().toString(8), modeBefore.toString(8), 'mode of the outside dir unchanged')
    fs.chmodSync(outsideTarget, modeBefore) // restore for the items that follow
  })

  // ---------------------------------------------------------------- refused by the node
  await nodeRejects('frame without a header', () => FrameCodec.encode({ payload: randomBytes(32) } as unknown as Frame), /no header/)
  await nodeRejects('empty message', () => new Uint8Array(0), /no header/)
  await nodeRejects('header without a transaction id', () => FrameCodec.encode({ header: { volume: VOL, codec: PayloadCodec.NONE, rawSize: 0 }, payload: new Uint8Array(0) } as unknown as Frame), /no header or transaction id/)
  await nodeRejects('header for another volume', () => rawFrame(randomBytes(16), { volume: 'other' }), /for volume "other"/)
  await nodeRejects('device id with a path in it', () => rawFrame(randomBytes(16), { txId: { deviceId: '../../etc/passwd', deviceSeq: 1 } }), /bad transaction id/)
  await nodeRejects('device seq 0', () => rawFrame(randomBytes(16), { txId: { deviceId: DEVICE, deviceSeq: 0 } }), /bad transaction id/)
  await nodeRejects('device seq 2^64-1', () => rawFrame(randomBytes(16), { txId: { deviceId: DEVICE, deviceSeq: 2 ** 64 } }), /bad transaction id/)

  // ---------------------------------------------------------------- broken protobuf on the stream
  const valid = sealed(tx('/never.txt', cw))
  // Undecodable bytes are refused frame by frame; the stream goes on.
  await nodeRejects('garbage protobuf bytes', () => Buffer.alloc(64, 0xff), /malformed Frame/)
  await nodeRejects('truncated frame', () => valid.subarray(0, valid.length - 7), /malformed Frame/)
  await nodeRejects('invalid wire type', () => Buffer.from([0x0f, 0x01, 0x02, 0x03]), /malformed Frame/)
  await nodeRejects('length prefix far past the end', () => Buffer.from([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]), /malformed Frame/)

  // ---------------------------------------------------------------- oversized frame
  const raw = rawPushOpener(node.address, 256 * MiB)
  t.teardown(() => raw.close())
  await t.test('a 33 MiB frame (node limit 32 MiB) is refused by the node', async t => {
    const head = await c.headSeq()
    const logAt = node.log().length
    const big = new Pusher(raw.open)
    const ack = await big.send(FrameCodec.encode({
      header: { volume: VOL, txId: { deviceId: DEVICE, deviceSeq: ++deviceSeq }, fileId: 'big', baseVersion: 0, codec: PayloadCodec.NONE, encrypted: false, rawSize: 33 * MiB },
      payload: randomBytes(33 * MiB),
    }))
    big.close()
    t.equal(ack.status, AckStatus.REJECTED, 'the node acks REJECTED')
    t.match(ack.error, /exceeds the limit/, `with a clear error: ${ack.error}`)
    t.equal(await c.headSeq(), head, 'the node stored nothing')
    t.ok(logLines(node.log().slice(logAt)).some(l => /rejected/.test(String(l.msg))), 'the node logged it')
  })
  // Far past the limit gRPC itself refuses the message before the node sees it.
  await streamFails('a 48 MiB frame', FrameCodec.encode({
    header: { volume: VOL, txId: { deviceId: DEVICE, deviceSeq: ++deviceSeq }, fileId: 'big', baseVersion: 0, codec: PayloadCodec.NONE, encrypted: false, rawSize: 48 * MiB },
    payload: randomBytes(48 * MiB),
  }), { code: grpc.status.RESOURCE_EXHAUSTED, details: /larger than max/ }, raw.open, false)

  // ---------------------------------------------------------------- payloads the mount must refuse
  await mountRefuses('valid header, garbage payload', () => rawFrame(Buffer.alloc(64, 0xff)), { log: /malformed Transaction/ })
  await mountRefuses('valid header, random payload', () => rawFrame(Buffer.concat([Buffer.from([0x0f]), randomBytes(200)])), { log: /malformed Transaction/ })
  await mountRefuses('payload shorter than the header says', () => rawFrame(TransactionCodec.encode(tx('/short.txt', cw)), { rawSize: 10_000 }), { log: /header says/ })
  await mountRefuses('header claims 4 GiB raw', () => rawFrame(randomBytes(32), { rawSize: 2 ** 32 - 1 }), { log: /claims .* raw bytes/ })
  for (const n of [7, 0, 255]) {
    await mountRefuses(`unknown codec number ${n}`, () => {
      const f = codec.seal(tx(`/${U}-codec.txt`, cw))
      return FrameCodec.encode({ ...f, header: { ...f.header, codec: n as PayloadCodec } })
    }, { log: /unknown payload codec/ })
  }
  await mountRefuses('payload of another transaction under a new id', () => {
    const x = tx(`/${U}-moved.txt`, cw)
    return rawFrame(TransactionCodec.encode(x), {})
  }, { log: /does not match its frame header/ })
  await mountRefuses('payload for another volume', () => {
    const x = tx(`/${U}-other.txt`, cw, { volume: 'other' })
    const f = codec.seal(x)
    return FrameCodec.encode({ ...f, header: { ...f.header, volume: VOL } })
  }, { log: /does not match its frame header|for volume/ })

  // ---------------------------------------------------------------- zstd bombs
  await mountRefuses('zstd bomb: 2 GiB declared in 64 KiB of RLE blocks', () => rawFrame(zstdFrame(2 ** 31, rleBlocks(16384)), { codec: PayloadCodec.ZSTD, rawSize: 1000 }), { log: /declares 2147483648 bytes/ })
  await mountRefuses('zstd bomb: 2 GiB declared, header says the same', () => rawFrame(zstdFrame(2 ** 31, rleBlocks(16384)), { codec: PayloadCodec.ZSTD, rawSize: 2 ** 31 }), { log: /claims|declares/ })
  const bRssBefore = rssKiB(B.child.pid!)
  await mountRefuses('zstd bomb: 1000 bytes declared, 2 GiB of RLE blocks', () => rawFrame(zstdFrame(1000, rleBlocks(16384)), { codec: PayloadCodec.ZSTD, rawSize: 1000 }), { log: /zstd/ })
  await t.test('B did not expand the bomb', async t => {
    const grew = rssKiB(B.child.pid!) - bRssBefore
    t.ok(grew < 200 * 1024, `B's RSS grew ${Math.round(grew / 1024)} MiB (limit 200)`)
  })
  await mountRefuses('zstd: 20 MiB of raw blocks behind a 1000-byte declaration', () => rawFrame(zstdFrame(1000, Array.from({ length: 160 }, (_, i) => zstdBlock(0, 128 * 1024, i === 159))), { codec: PayloadCodec.ZSTD, rawSize: 1000 }), { log: /zstd/ })
  await mountRefuses('zstd frame without a content size', () => rawFrame(zstdFrame(undefined, rleBlocks(4)), { codec: PayloadCodec.ZSTD, rawSize: 1000 }), { log: /no content size/ })
  await mountRefuses('zstd: not a zstd frame', () => rawFrame(randomBytes(100), { codec: PayloadCodec.ZSTD, rawSize: 100 }), { log: /not a zstd frame/ })
  await mountRefuses('zstd: two frames', () => {
    const one = Buffer.from(zstd.compress(TransactionCodec.encode(tx(`/${U}-2f.txt`, cw))))
    return rawFrame(Buffer.concat([one, one]), { codec: PayloadCodec.ZSTD, rawSize: 100 })
  }, { log: /only one frame/ })

  // ---------------------------------------------------------------- offsets and sizes
  await mountRefuses('write at offset 2^60', () => sealed(tx('/victim.txt', [{ write: { offset: 2 ** 60, data: data('x') } }])), { log: /out of range/ })
  await mountRefuses('write whose offset + length passes 2^52', () => sealed(tx('/victim.txt', [{ write: { offset: 2 ** 52 - 4, data: data('sixteen bytes!!!') } }])), { log: /out of range/ })
  await mountRefuses('write at offset 2^64-1', () => sealed(tx('/victim.txt', [{ write: { offset: 2 ** 64, data: data('x') } }])), { log: /out of range/ })
  await mountRefuses('truncate to 2^60', () => sealed(tx('/victim.txt', [{ truncate: { size: 2 ** 60 } }])), { log: /out of range/ })
  await mountRefuses('truncate to 2^64-1', () => sealed(tx('/victim.txt', [{ truncate: { size: 2 ** 64 } }])), { log: /out of range/ })
  await mountRefuses('create then write at 2^60: nothing of it applies', () => sealed(tx(`/${U}-partial.txt`, [{ create: { mode: 0o644 } }, { write: { offset: 2 ** 60, data: data('x') } }])), {
    log: /out of range/,
  })

  // ---------------------------------------------------------------- files that do not exist
  // Not refused any more: the receiver asks the author for the renamed file whole.
  await mountRefuses('rename of a missing file', () => sealed(tx(`/${U}-missing.txt`, [{ rename: { to: `/${U}-renamed.txt` } }])), { log: /./, refused: 'either' })
  await mountRefuses('write under a missing directory', () => sealed(tx(`/${U}-nodir/f.txt`, cw)), { log: /ENOENT/ })
  await mountRefuses('rename into a missing directory', () => sealed(tx('/victim.txt', [{ rename: { to: `/${U}-nodir/v.txt` } }])), { log: /ENOENT/ })
  await mountRefuses('setattr of a missing file', () => sealed(tx(`/${U}-missing.txt`, [{ setAttr: { hasMode: true, mode: 0o600 } }])), { log: /ENOENT/ })
  await mountRefuses('unlink of a missing file', () => sealed(tx(`/${U}-missing.txt`, [{ unlink: {} }])), { log: /./, refused: 'either' })
  await mountRefuses('rmdir of a file', () => sealed(tx('/victim.txt', [{ rmdir: {} }])), { log: /ENOTDIR/ })

  // ---------------------------------------------------------------- replay
  await t.test('a replayed transaction id is a DUPLICATE and applies once', async t => {
    const before = await state()
    const first = tx(`/${U}-dup.txt`, [{ create: { mode: 0o644 } }, { write: { offset: 0, data: data('first\n') } }])
    const seq = await applyGood(t, first)
    const head = await c.headSeq()
    const applied = Number((await B.status()).txApplied)
    const replay = { ...tx(`/${U}-dup-evil.txt`, cw), txId: first.txId }
    deviceSeq-- // the replay took no new id
    for (const [label, bytes] of [['same bytes', sealed(first)], ['other content', sealed(replay)]] as const) {
      const ack = await pusher.send(bytes)
      t.equal(ack.status, AckStatus.DUPLICATE, `${label}: acked DUPLICATE`)
      t.equal(ack.seq, seq, `${label}: with the original seq ${seq}`)
      t.equal(await c.headSeq(), head, `${label}: Info headSeq did not grow`)
    }
    const marker = await goodMarker(t)
    const after = await state()
    t.equal(Number(after.status.txApplied), applied + 1, 'B applied only the marker since')
    t.same(Object.keys(without(after.tree, marker)).sort(), [...Object.keys(before.tree), `${U}-dup.txt`].sort(), 'the replay added nothing to B')
    t.equal(await fsp.readFile(path.join(B.mountpoint, `${U}-dup.txt`), 'utf8'), 'first\n', 'the original content stands')
  })

  // ---------------------------------------------------------------- a subscriber that never reads
  await t.test('a subscriber that never reads does not grow the node', async t => {
    const slowStub = new SyncStub(node.address)
    t.teardown(() => slowStub.close())
    const slow = slowStub.subscribe({ volume: VOL, fromSeq: 0, deviceId: 'slow' })
    let slowSeq = 0
    let slowErr: grpc.ServiceError | undefined
    slow.on('data', (d: Delivery) => { slowSeq = d.seq })
    slow.on('error', (err: grpc.ServiceError) => { slowErr = err })
    slow.pause()
    await sleep(1000)
    const base = rssKiB(nodePid)
    let peak = base
    const sampler = setInterval(() => { try { peak = Math.max(peak, rssKiB(nodePid)) } catch { /* gone */ } }, 50)
    t.teardown(() => clearInterval(sampler))

    const bulk = new Pusher(() => stub.push(VOL))
    const started = Date.now()
    const frames = 150
    const inflight: Array<Promise<Ack>> = []
    let stored = 0
    let lastBulkSeq = 0
    const count = (ack: Ack): void => { if (ack.status === AckStatus.OK) { stored++; lastBulkSeq = Math.max(lastBulkSeq, ack.seq) } }
    for (let i = 0; i < frames; i++) {
      // A whole rewrite each: applies on a mount that has no /bulk.bin yet.
      const x = tx('/bulk.bin', [{ truncate: { size: 0 } }, { write: { offset: 0, data: randomBytes(MiB) } }])
      inflight.push(bulk.send(FrameCodec.encode(codec.seal(x)), 60_000))
      if (inflight.length >= 8) count(await inflight.shift()!)
    }
    for (const p of inflight) count(await p)
    bulk.close()
    const pushedIn = Date.now() - started
    t.equal(stored, frames, `${frames} MiB pushed and stored in ${pushedIn} ms`)
    // Not the head: B answers each bulk frame (a write into a file it does not
    // have) with a refresh request of its own, and a mount's applied cursor
    // does not move over its own transactions, so the log may end with B's.
    await waitFor('B to apply the bulk', async () => Number((await B.status()).lastAppliedSeq) >= lastBulkSeq, 60_000)
    const head = await c.headSeq()
    const pushPeak = peak
    t.ok(pushPeak - base < 200 * 1024, `node RSS while pushing past a paused subscriber: ${Math.round(base / 1024)} -> peak ${Math.round(pushPeak / 1024)} MiB (growth limit 200)`)
    t.ok(slowSeq < head, `the paused subscriber got only what it buffered (seq ${slowSeq} of ${head})`)

    // Let it read now: it must catch up, and the node must stay bounded meanwhile.
    peak = rssKiB(nodePid)
    const resumeBase = peak
    slow.resume()
    await waitFor('the slow subscriber to catch up', () => slowSeq >= head || slowErr, 60_000, 50)
    clearInterval(sampler)
    t.equal(slowErr, undefined, 'the slow subscriber\'s stream did not fail')
    t.ok(slowSeq >= head, `the slow subscriber caught up with every transaction (seq ${slowSeq}, head ${head} when B had applied the bulk)`)
    t.ok(peak - base < 200 * 1024, `node RSS while the slow subscriber catches up: ${Math.round(resumeBase / 1024)} -> peak ${Math.round(peak / 1024)} MiB (growth over ${Math.round(base / 1024)} limit 200)`)
    slow.cancel()
    t.equal(node.child.exitCode, null, 'the node is still running')
    await goodMarker(t)
  })

  await t.test('afterwards: both processes still serve, nothing leaked', async t => {
    await goodMarker(t)
    const s = await state()
    t.same(s.escapes, [], 'no escape target exists')
    t.same(s.sentinel, { 'keep.txt': s.sentinel['keep.txt'] }, 'the cluster sentinel holds only its own file')
    t.same(Object.keys(s.outside).sort(), ['sentinel.txt', 'target', 'target/keep.txt'], 'the outside dir holds only its own files')
    t.equal(fs.readFileSync(path.join(outside, 'sentinel.txt'), 'utf8'), 'outside sentinel\n', 'the outside sentinel is intact')
    t.equal(B.child.exitCode, null, 'B is still running')
    t.equal(node.child.exitCode, null, 'the node is still running')
  })
})

// A frame whose encryption flag does not match the mount is hostile too: it
// must be refused like any other bad frame, not stop the mount.
t.test('a frame flagged encrypted on an unencrypted volume does not stop the mount', async t => {
  const c = await Cluster.start(t, 1, VOL)
  const B = c.mounts[0] as MountHandle
  t.teardown(() => { if (t.passing() === false) t.comment(textLogs(c)) })
  const codec = new TxCodec(await loadZstd())
  const stub = new SyncStub(c.node!.address)
  t.teardown(() => stub.close())
  const pusher = new Pusher(() => stub.push(VOL))
  t.teardown(() => pusher.close())
  await encryptionFlagCase(t, c, B, pusher, codec, { encrypted: true, payload: randomBytes(64), log: /encrypted/ })
})

t.test('a frame that does not decrypt does not stop a keyed mount', async t => {
  const c = new Cluster(VOL)
  t.teardown(() => c.destroy())
  t.teardown(() => { if (t.passing() === false) t.comment(textLogs(c)) })
  const key = randomBytes(32)
  fs.writeFileSync(path.join(c.dir, 'vol.key'), key.toString('hex'), { mode: 0o600 })
  c.mountArgs = ['--key-file', path.join(c.dir, 'vol.key')]
  await c.startNode()
  const B = await c.addMount()
  // This hand-made pusher skips Hello: let B register the volume key first.
  await waitFor('B to register the volume key', async () => (await B.status()).connected === true, 10_000)
  const codec = new TxCodec(await loadZstd(), key)
  const stub = new SyncStub(c.node!.address)
  t.teardown(() => stub.close())
  const pusher = new Pusher(() => stub.push(VOL))
  t.teardown(() => pusher.close())
  await encryptionFlagCase(t, c, B, pusher, codec, { encrypted: true, payload: randomBytes(64), log: /decrypt/ })
  const plain = new TxCodec(await loadZstd())
  const ack = await pusher.send(FrameCodec.encode(plain.seal({
    txId: { deviceId: DEVICE, deviceSeq: 100 }, volume: VOL, fileId: 'p', baseVersion: 0, path: '/plain.txt', ops: [{ create: { mode: 0o644 } }], mtimeNs: 0n,
  })))
  t.equal(ack.status, AckStatus.REJECTED, 'the node refuses an unencrypted frame on an encrypted volume')
  t.match(ack.error, /end-to-end encrypted/, `with a clear error: ${ack.error}`)
})

async function encryptionFlagCase (
  t: Test, c: Cluster, B: MountHandle, pusher: Pusher, codec: TxCodec,
  bad: { encrypted: boolean; payload: Uint8Array; log: RegExp },
): Promise<void> {
  const good = (n: number): Transaction => ({
    txId: { deviceId: DEVICE, deviceSeq: n }, volume: VOL, fileId: `f${n}`, baseVersion: 0, path: `/good-${n}.txt`,
    ops: [{ create: { mode: 0o644 } }, { write: { offset: 0, data: Buffer.from(`good ${n}\n`) } }], mtimeNs: 0n,
  })
  const first = await pusher.send(FrameCodec.encode(codec.seal(good(1))))
  await waitFor('B to apply the first good tx', async () => Number((await B.status()).lastAppliedSeq) >= first.seq, 20_000)
  const before = await B.status()
  const badAck = await pusher.send(FrameCodec.encode({
    header: { volume: VOL, txId: { deviceId: DEVICE, deviceSeq: 2 }, fileId: 'f2', baseVersion: 0, codec: PayloadCodec.NONE, encrypted: bad.encrypted, rawSize: bad.payload.length },
    payload: bad.payload,
  }))
  t.equal(badAck.status, AckStatus.OK, 'the node stores the frame')
  const after = await pusher.send(FrameCodec.encode(codec.seal(good(3))))
  const applied = await waitFor('B to apply the good tx after the bad frame', async () => Number((await B.status()).lastAppliedSeq) >= after.seq, 15_000).then(() => true, () => false)
  t.ok(applied, 'B skipped the bad frame and applied the next one')
  t.equal(B.child.exitCode, null, `B is still running (exit code ${String(B.child.exitCode)})`)
  if (applied) {
    const s = await B.status()
    t.equal(Number(s.txRefused) - Number(before.txRefused), 1, 'B counted the refusal')
    t.equal(await fsp.readFile(path.join(B.mountpoint, 'good-3.txt'), 'utf8'), 'good 3\n', 'B shows the good file')
  }
  const lines = logLines(B.log())
  const entry = lines.find(l => /refused|sync stopped/.test(String(l.msg)) && bad.log.test(String(l.err ?? '')))
  t.ok(entry, `B's log says why: ${String(entry?.err ?? '(none)')}`)
  t.same(fs.readdirSync(path.join(B.dataDir, VOL, 'files')).sort(), applied ? ['good-1.txt', 'good-3.txt'] : ['good-1.txt'], 'nothing of the bad frame in B\'s backing dir')
  if (!applied && B.child.exitCode !== null) {
    // Restart the mount on the same data: does the frame stop it again?
    const again = await c.addMount('a')
    const stoppedAgain = await waitFor('the restarted mount to apply or stop', async () => {
      if (again.child.exitCode !== null) return 'stopped'
      return Number((await again.status()).lastAppliedSeq) >= after.seq ? 'applied' : false
    }, 15_000).catch(() => 'neither')
    t.equal(stoppedAgain, 'applied', `restarted on the same data, the mount ${stoppedAgain === 'stopped' ? 'stops again (the frame is a poison pill)' : stoppedAgain}`)
  }
}
