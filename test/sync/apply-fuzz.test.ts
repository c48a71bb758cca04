// Seeded fuzz of the receive path without a mount: bytes from the wire go
// through FrameCodec.decode -> TxCodec.open -> Applier.apply against a
// sandbox backing dir. Every failure must be a DeltafsError or a Node errno
// error (never a TypeError, RangeError, ...), and nothing outside the backing
// dir may change.
//
//   DELTAFS_FUZZ_SEED=<n>   reproduce a run (the seed is printed)
//   DELTAFS_FUZZ_CASES=<n>  number of cases (default 3000)
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { TxCodec } from '../../src/codec/codec.js'
import { loadZstd } from '../../src/codec/zstd.js'
import { type Frame, type FrameHeader, FrameCodec, type Op, PayloadCodec, type Piece, type Transaction, TransactionCodec } from '../../src/codec/wire.js'
import { Applier } from '../../src/sync/applier.js'
import { DeltafsError } from '../../src/util/errors.js'
import { prng } from '../helpers/prng.js'

const SEED = (process.env.DELTAFS_FUZZ_SEED ? Number(process.env.DELTAFS_FUZZ_SEED) : Date.now()) >>> 0
const CASES = Number(process.env.DELTAFS_FUZZ_CASES ?? 3000)

const rand = prng(SEED)
const int = (n: number): number => Math.floor(rand() * n)
const chance = (p: number): boolean => rand() < p
function pick<T> (xs: readonly T[]): T { return xs[int(xs.length)]! }
function bytes (n: number): Buffer {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = int(256)
  return b
}

// ---------------------------------------------------------------- sandbox
//
//   <tmp>/outside/                 sentinels; the symlinks below point here
//   <tmp>/d1/near.txt              where "/../../x" would land
//   <tmp>/d1/d2/near.txt           where "/../x" would land
//   <tmp>/d1/d2/files/             the backing dir

const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'deltafs-fuzz-')))
const root = path.join(tmp, 'd1', 'd2', 'files')
const outside = path.join(tmp, 'outside')

function setupSandbox (): void {
  fs.mkdirSync(root, { recursive: true })
  fs.mkdirSync(path.join(outside, 'sub'), { recursive: true })
  fs.writeFileSync(path.join(outside, 'sentinel.txt'), 'outside sentinel\n')
  fs.writeFileSync(path.join(outside, 'sub', 'secret.txt'), 'secret\n')
  fs.writeFileSync(path.join(tmp, 'd1', 'near.txt'), 'near 1\n')
  fs.writeFileSync(path.join(tmp, 'd1', 'd2', 'near.txt'), 'near 2\n')
  fs.chmodSync(outside, 0o755)
  fs.chmodSync(path.join(outside, 'sub'), 0o755)
  fs.chmodSync(path.join(outside, 'sentinel.txt'), 0o644)
  restoreFixtures()
}

/** Puts back the pre-populated entries of the backing dir that earlier cases removed or moved. */
function restoreFixtures (): void {
  const ensure = (rel: string, make: (abs: string) => void): void => {
    const abs = path.join(root, rel)
    try { fs.lstatSync(abs) } catch { try { make(abs) } catch { /* parent gone: next time */ } }
  }
  ensure('dir', abs => fs.mkdirSync(abs))
  ensure('dir/sub', abs => fs.mkdirSync(abs))
  ensure('a.txt', abs => fs.writeFileSync(abs, 'file a\n'))
  ensure('b.bin', abs => fs.writeFileSync(abs, Buffer.alloc(10_000, 7)))
  ensure('dir/c.txt', abs => fs.writeFileSync(abs, 'file c\n'))
  ensure('out', abs => fs.symlinkSync(outside, abs)) // absolute, to a dir outside
  ensure('up', abs => fs.symlinkSync('../../../outside', abs)) // relative, to the same dir
  ensure('secret', abs => fs.symlinkSync(path.join(outside, 'sentinel.txt'), abs)) // to a file outside
  ensure('dir/back', abs => fs.symlinkSync('../../../../outside/sub', abs))
}

interface Entry { type: string; mode: number; size?: number; sha256?: string; target?: string }

/** Everything under <tmp> except the backing dir (which may hold huge sparse files). */
function snapshotOutside (): Record<string, Entry> {
  const out: Record<string, Entry> = {}
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(tmp, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name
      if (r === 'd1/d2/files') continue
      const abs = path.join(tmp, r)
      const st = fs.lstatSync(abs)
      const mode = st.mode & 0o7777
      if (st.isSymbolicLink()) {
        out[r] = { type: 'symlink', mode: 0, target: fs.readlinkSync(abs) }
      } else if (st.isDirectory()) {
        out[r] = { type: 'dir', mode }
        walk(r)
      } else if (st.isFile()) {
        out[r] = { type: 'file', mode, size: st.size, sha256: createHash('sha256').update(fs.readFileSync(abs)).digest('hex') }
      } else {
        out[r] = { type: 'other', mode }
      }
    }
  }
  walk('')
  return out
}
const withoutModes = (s: Record<string, Entry>): Record<string, Omit<Entry, 'mode'>> =>
  Object.fromEntries(Object.entries(s).map(([k, { mode: _mode, ...rest }]) => [k, rest]))
function diffSnap (a: Record<string, Entry>, b: Record<string, Entry>): string[] {
  const d: string[] = []
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) d.push(`${k}: ${JSON.stringify(a[k]) ?? 'missing'} -> ${JSON.stringify(b[k]) ?? 'missing'}`)
  }
  return d
}

// ---------------------------------------------------------------- generators

const FRESH = Array.from({ length: 6 }, (_, i) => `fz${SEED.toString(36)}-${i}`)
const EXISTING = ['a.txt', 'b.bin', 'dir', 'dir/c.txt', 'dir/sub']
const LINKS = ['out', 'up', 'secret', 'dir/back', 'out/sub', 'up/sentinel.txt', 'out/sentinel.txt', 'dir/back/secret.txt']
const WEIRD = ['..', '.', '', 'x'.repeat(255), 'y'.repeat(256), 'a\0b', '\0', 'é', ' ', '-', '~', '..\0', '...', 'a/../..']

function goodName (): string {
  const r = rand()
  if (r < 0.35) return pick(EXISTING)
  if (r < 0.6) return pick(LINKS)
  if (r < 0.9) return pick(FRESH)
  return `${pick(['dir', 'dir/sub', 'out', 'up'])}/${pick(FRESH)}`
}

function randomPath (): string {
  const r = rand()
  if (r < 0.55) {
    const segs = Array.from({ length: 1 + int(2) }, goodName)
    return '/' + segs.join('/')
  }
  if (r < 0.68) return '/' + '../'.repeat(1 + int(8)) + pick([...FRESH, 'outside/sentinel.txt', `outside/${pick(FRESH)}`, 'd1/near.txt', 'outside'])
  if (r < 0.72) return `/${goodName()}/../${'../'.repeat(int(4))}${pick(FRESH)}`
  if (r < 0.77) return pick([goodName(), `../${pick(FRESH)}`, `./${goodName()}`, '..', '.'])
  if (r < 0.82) {
    const p = '/' + goodName()
    const at = int(p.length + 1)
    return p.slice(0, at) + '\0' + p.slice(at)
  }
  if (r < 0.86) return pick(['/' + 'z'.repeat(256), '/' + 'd/'.repeat(2100) + 'f', '/dir/' + 'é'.repeat(128), '/' + 'q'.repeat(5000)])
  if (r < 0.92) return pick(['/', '', '//a.txt', '/a.txt/', '/./a.txt', '/dir//c.txt', '/dir/./c.txt', '/dir/sub/..', '/a.txt/x'])
  if (r < 0.96) return '/' + pick(WEIRD) + (chance(0.5) ? '/' + pick(WEIRD) : '')
  return bytes(1 + int(40)).toString('latin1')
}

const OFFSETS = [0, 1, 4095, 4096, 65_536, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 52 - 1, 2 ** 52, 2 ** 53, 2 ** 60, 2 ** 63, 2 ** 64]
function offset (): number {
  const r = rand()
  if (r < 0.5) return int(70_000)
  if (r < 0.6) return 4096 * int(64)
  return pick(OFFSETS)
}
function dataSize (): number {
  const r = rand()
  if (r < 0.2) return 0
  if (r < 0.7) return int(4096)
  if (r < 0.97) return int(64 * 1024)
  return 1 << 20
}
const INT64 = [0n, 1n, -1n, 1_700_000_000_000_000_000n, -(2n ** 62n), 2n ** 62n, 2n ** 63n - 1n, -(2n ** 63n), 9_200_000_000_000_000_000n]
function mode (): number { return chance(0.7) ? pick([0o644, 0o755, 0o600, 0o777, 0, 0o4755, 0o1777, 0o7777]) : int(2 ** 32) }
function target (): string {
  return pick(['/etc/passwd', '../../../outside', outside, 'a.txt', '', 'x\0y', '../' + pick(FRESH), 't'.repeat(5000), '/', '.', pick(FRESH)])
}

function randomOp (): Op {
  switch (int(13)) {
    case 0: return { create: { mode: mode() } }
    case 1: case 2: return { write: { offset: offset(), data: chance(0.5) ? bytes(Math.min(dataSize(), 4096)) : Buffer.alloc(dataSize(), int(256)) } }
    case 3: return { truncate: { size: offset() } }
    case 4: return { unlink: {} }
    case 5: return { mkdir: { mode: mode() } }
    case 6: return { rmdir: {} }
    case 7: return { rename: { to: randomPath() } }
    case 8: return { symlink: { target: target() } }
    case 9: return { setAttr: { hasMode: chance(0.5), mode: mode(), hasMtime: chance(0.5), mtimeNs: pick(INT64), hasAtime: chance(0.5), atimeNs: pick(INT64) } }
    case 10: return { link: { to: randomPath() } }
    case 11: {
      const pieces: Piece[] = Array.from({ length: int(5) }, () => chance(0.5) ? { copy: { offset: offset(), length: offset() } } : { insert: { data: bytes(int(100)) } })
      return { rebuild: { baseVersion: int(10), pieces, resultSize: offset(), resultSha256: bytes(pick([0, 32, 31])), baseSha256: bytes(32) } }
    }
    default: return {} as Op // an Op with no member set
  }
}

let deviceSeq = 0
function randomTx (goodish = false): Transaction {
  const ops = Array.from({ length: goodish ? 1 + int(3) : int(6) }, randomOp)
  return {
    txId: { deviceId: chance(0.9) ? 'fuzzdev' : bytes(int(20)).toString('latin1'), deviceSeq: chance(0.95) ? ++deviceSeq : pick([0, 2 ** 53, 2 ** 64]) },
    volume: chance(0.95) ? 'vol' : pick(['', 'other', '../vol', 'v\0l']),
    fileId: chance(0.9) ? `f${int(100)}` : bytes(int(30)).toString('latin1'),
    baseVersion: chance(0.9) ? int(100) : pick(OFFSETS),
    path: goodish ? '/' + goodName() : randomPath(),
    ops,
    mtimeNs: chance(0.7) ? 0n : pick(INT64),
  }
}

function mutate (b: Uint8Array): Buffer {
  let out = Buffer.from(b)
  const n = 1 + int(3)
  for (let i = 0; i < n; i++) {
    switch (int(7)) {
      case 0: { // flip random bytes
        for (let k = 1 + int(8); k > 0 && out.length > 0; k--) out[int(out.length)] = chance(0.5) ? int(256) : out[int(out.length)]! ^ (1 << int(8))
        break
      }
      case 1: out = out.subarray(0, int(out.length + 1)); break // truncate
      case 2: out = Buffer.concat([out, bytes(1 + int(64))]); break // extend
      case 3: { const at = int(out.length + 1); out = Buffer.concat([out.subarray(0, at), bytes(1 + int(16)), out.subarray(at)]); break }
      case 4: { const at = int(out.length + 1); out = Buffer.concat([out.subarray(0, at), out.subarray(Math.min(out.length, at + 1 + int(16)))]); break }
      case 5: if (out.length > 0) out[int(out.length)] = pick([0x00, 0x7f, 0x80, 0xff, 0x0f, 0x12, 0x0a]); break
      default: { // a varint run that never ends
        const at = int(out.length + 1)
        out = Buffer.concat([out.subarray(0, at), Buffer.alloc(1 + int(12), 0xff), out.subarray(at)])
      }
    }
  }
  return out
}

function zstdHeaderFrame (declared: number, blocks: number): Buffer {
  const fcs = Buffer.alloc(8)
  fcs.writeBigUInt64LE(BigInt(declared))
  const parts: Buffer[] = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0xE0]), fcs]
  for (let i = 0; i < blocks; i++) {
    const type = int(2) as 0 | 1
    const size = 1 + (chance(0.5) ? int(2048) : int(128 * 1024)) // small raw blocks are complete, big ones truncated
    const h = (size << 3) | (type << 1) | (i === blocks - 1 ? 1 : 0)
    parts.push(Buffer.from([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff]), type === 1 ? Buffer.from([int(256)]) : bytes(Math.min(size, 2048)))
  }
  return Buffer.concat(parts)
}

// ---------------------------------------------------------------- the run

type Stage = 'decode' | 'open' | 'apply'

function acceptable (err: unknown): boolean {
  if (err instanceof DeltafsError) return true
  const code = (err as { code?: unknown } | null)?.code
  return err instanceof Error && typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)
}

t.test(`fuzz: decode -> open -> apply (seed ${SEED}, ${CASES} cases)`, async t => {
  t.comment(`DELTAFS_FUZZ_SEED=${SEED} DELTAFS_FUZZ_CASES=${CASES}`)
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }))
  setupSandbox()
  const zstd = await loadZstd()
  const plain = new TxCodec(zstd)
  const key = Buffer.from(createHash('sha256').update(`fuzz key ${SEED}`).digest())
  const keyed = new TxCodec(zstd, key)
  const applier = new Applier(root)

  const initial = snapshotOutside()
  let previous = initial
  const outsideChanges: Array<{ caseNo: number; kind: string; content: boolean; diff: string[]; tx?: string }> = []
  const unexpected: Array<{ caseNo: number; kind: string; stage: Stage; error: string }> = []
  const outcomes = new Map<string, number>()
  const count = (k: string): void => { outcomes.set(k, (outcomes.get(k) ?? 0) + 1) }
  // Escape oracle: where each hostile path would land if it were joined onto the backing dir.
  const watched = new Set<string>()
  const watch = (p: unknown): void => {
    if (typeof p !== 'string' || p.includes('\0') || p.length > 4000) return
    const landing = path.join(root, p)
    if (landing === root || landing.startsWith(root + path.sep) || landing.startsWith(tmp + path.sep)) return
    if (!fs.existsSync(landing)) watched.add(landing)
  }
  const started = Date.now()

  for (let caseNo = 0; caseNo < CASES; caseNo++) {
    if (caseNo % 100 === 0) restoreFixtures()
    let codec = chance(0.15) ? keyed : plain
    let kind: string
    let bytesIn: Uint8Array
    let described: Transaction | undefined
    const r = rand()
    if (r < 0.5) {
      kind = 'tx'
      described = randomTx()
      try {
        bytesIn = FrameCodec.encode(codec.seal(described))
      } catch (err) {
        // Our own generator produced something the encoder cannot express (e.g. a bad string): count and go on.
        count(`seal-error:${(err as Error).name}`)
        continue
      }
    } else if (r < 0.85) {
      described = randomTx(true)
      const frame = codec.seal(described)
      if (chance(0.5)) {
        kind = 'mutate-frame'
        bytesIn = mutate(FrameCodec.encode(frame))
      } else {
        kind = 'mutate-payload'
        const payload = mutate(frame.payload)
        const header = chance(0.5) ? { ...frame.header, rawSize: frame.header.codec === PayloadCodec.NONE ? payload.length : frame.header.rawSize } : frame.header
        bytesIn = FrameCodec.encode({ header, payload })
      }
    } else {
      kind = 'header'
      codec = chance(0.4) ? keyed : plain
      described = randomTx(true)
      const raw = TransactionCodec.encode(described)
      const payload = pick([
        () => raw, () => bytes(int(300)), () => zstd.compress(raw), () => zstdHeaderFrame(pick([int(5000), 4 << 20, 2 ** 31, 2 ** 40]), 1 + int(6)),
        () => Buffer.alloc(0),
      ])()
      const header: Partial<FrameHeader> = {
        volume: chance(0.8) ? 'vol' : pick(['', 'other']),
        fileId: 'f',
        baseVersion: 0,
        codec: pick([0, 1, 1, 2, 2, 3, 255]) as PayloadCodec,
        encrypted: chance(0.3),
        rawSize: pick([payload.length, raw.length, int(2 ** 32), 0, 4 << 20, (32 << 20) + 1]),
      }
      if (chance(0.8)) header.txId = chance(0.8) ? described.txId : { deviceId: '', deviceSeq: 0 }
      bytesIn = FrameCodec.encode({ header, payload } as Frame)
    }
    if (described) {
      watch(described.path)
      for (const op of described.ops) {
        if ('rename' in op && op.rename) watch(op.rename.to)
        if ('link' in op && op.link) watch(op.link.to)
      }
    }

    let stage: Stage = 'decode'
    try {
      const frame = FrameCodec.decode(bytesIn)
      stage = 'open'
      const tx = codec.open(frame)
      stage = 'apply'
      watch(tx.path)
      const result = await applier.apply(tx)
      count(`ok:${result.facts.size >= 0 ? 'exists' : 'gone'}`)
    } catch (err) {
      if (acceptable(err)) {
        count(`${stage}:${(err as { code: string }).code}`)
      } else {
        count(`${stage}:UNEXPECTED:${(err as Error | null)?.name ?? typeof err}`)
        const e = err as Error
        unexpected.push({ caseNo, kind, stage, error: `${e?.name}: ${e?.message} @ ${String(e?.stack).split('\n').slice(1, 3).join(' | ')}` })
      }
    }

    const now = snapshotOutside()
    const diff = diffSnap(previous, now)
    if (diff.length > 0) {
      outsideChanges.push({ caseNo, kind, content: diffSnap(withoutModes(previous) as Record<string, Entry>, withoutModes(now) as Record<string, Entry>).length > 0, diff, tx: described ? JSON.stringify({ path: described.path, ops: described.ops.map(o => Object.keys(o)[0]) }) : undefined })
      previous = now
    }
  }
  const elapsed = Date.now() - started

  t.comment(`${CASES} cases in ${elapsed} ms (seed ${SEED})`)
  for (const [k, n] of [...outcomes].sort((a, b) => b[1] - a[1])) t.comment(`${String(n).padStart(6)}  ${k}`)
  t.comment(`escape oracle watched ${watched.size} landing paths outside the sandbox`)

  t.ok(outcomes.size > 5, 'the run reached several outcomes')
  t.ok([...outcomes.keys()].some(k => k.startsWith('ok:')), 'some transactions applied')
  t.ok([...outcomes.keys()].some(k => k.startsWith('apply:')), 'some transactions were refused by the applier')
  t.ok([...outcomes.keys()].some(k => k.startsWith('open:')), 'some frames were refused by the codec')
  t.ok([...outcomes.keys()].some(k => k.startsWith('decode:')), 'some frames did not decode')

  // Known bug, counted apart so that it does not hide anything new.
  const aadBug = (u: { stage: Stage; error: string }): boolean => u.stage === 'open' && /TypeError: Cannot read properties of (null|undefined) \(reading 'deviceId'\)/.test(u.error)
  t.same(unexpected.filter(u => !aadBug(u)).slice(0, 10), [], 'every failure is a DeltafsError or an errno error')
  t.same(unexpected.filter(aadBug).slice(0, 3), [], 'an encrypted frame without a txId is refused with a DeltafsError')

  const final = snapshotOutside()
  t.same(withoutModes(final), withoutModes(initial), 'names, contents and symlinks outside the backing dir are byte-identical')
  t.same(final, initial, 'modes outside the backing dir are unchanged')
  const contentChanges = outsideChanges.filter(c => c.content)
  t.same(contentChanges.slice(0, 5), [], 'no case changed anything but a mode outside')
  if (outsideChanges.length > 0) {
    t.comment(`${outsideChanges.length} case(s) changed something outside, first: ${JSON.stringify(outsideChanges.slice(0, 3))}`)
  }
  t.same([...watched].filter(p => fs.existsSync(p)), [], 'no escape landing path outside the sandbox exists')
  t.ok(fs.readFileSync(path.join(outside, 'sentinel.txt'), 'utf8') === 'outside sentinel\n', 'the outside sentinel is intact')

  // zstd still works after all the hostile payloads.
  const probe: Transaction = { txId: { deviceId: 'probe', deviceSeq: 1 }, volume: 'vol', fileId: 'p', baseVersion: 0, path: '/probe.txt', ops: [{ write: { offset: 0, data: Buffer.alloc(100_000, 0x61) } }], mtimeNs: 0n }
  const sealed = plain.seal(probe)
  t.equal(sealed.header.codec, PayloadCodec.ZSTD, 'the probe is compressed')
  t.equal(plain.open(sealed).path, '/probe.txt', 'zstd still decompresses after the run')
  await fsp.rm(path.join(root, 'probe.txt'), { force: true })
  t.ok(randomBytes(1).length === 1, 'the process is alive')
})
