// Part delta: what whole-file rewrites and in-place edits cost, deltafs
// against rsync and xdelta3, case by case:
//   1. one line changed in a text file (100 MiB), saved through a temp file + fsync + rename
//   2. the same file truncated (open O_TRUNC) and rewritten identically
//   3. 4 KiB inserted at its start (truncate + rewrite)
//   4. 1 MiB appended (O_APPEND)
//   5. one byte changed in place in a --size file (default 1 GiB, incompressible)
// deltafs: a storage node and mounts A and B; the change is made through A;
// the figures are deltas of A's `deltafs status --json` counters (bytesPushed)
// and of its daemon's /proc/PID/io and /proc/PID/stat, taken after A has no
// held rewrite and an empty outbox; B must then hold the same bytes.
// rsync: `rsync -a --no-whole-file --stats` from one local directory to
// another holding the previous version. xdelta3: `xdelta3 -e -s OLD NEW
// DELTA`. Both run under /usr/bin/time (CPU, children included) inside a
// shell that prints its own /proc/$$/io once they are reaped: Linux adds the
// I/O of reaped children (and theirs) to the parent, so that is the I/O of
// every process the tool forked. The page cache is dropped before every
// measured change, for every tool.
// The text size is 100 MiB unless DELTAFS_BENCH_DELTA_TEXT says otherwise (e.g. 16M).
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {
  type BenchOptions, KiB, MiB, Report, type Summary, dropCaches, dropCachesState, fmtBytes, fmtSummary, num, parseSize,
  runCmd, summarize, waitFor,
} from './lib/common.js'
import {
  Cleanup, type MountHandle, type ProcIo, type Status, ioDelta, procCpuSeconds, procIo, runWorker, startMount, startNode,
  threadCpuSeconds,
} from './lib/procs.js'

type Tool = 'deltafs' | 'rsync' | 'xdelta3'
const TOOLS: Tool[] = ['deltafs', 'rsync', 'xdelta3']
type CaseId = 'line' | 'same' | 'insert' | 'append' | 'poke'
const CASES: CaseId[] = ['line', 'same', 'insert', 'append', 'poke']

/** Speed target (DESIGN §4/§9 brief): file size / mount daemon CPU seconds for the case. */
const SPEED_TARGET_MBS = 200
/** deltafs may send at most this many times what xdelta3's delta holds. */
const XDELTA_FACTOR = 1.5

interface Sample {
  /** Size of the file after the change. */
  size: number
  wire: number
  readBytes: number
  rchar: number
  cpu: number
  wallMs: number
  /** deltafs only: from the commit (rename, close) until settled. */
  phaseCpu?: number
  phaseRchar?: number
  phaseReadBytes?: number
  settleMs?: number
  writeBytes?: number
  journaled?: number
  frames?: number
  /** rsync only: literal bytes. */
  literal?: number
  /** deltafs only: CPU seconds of A's daemon per thread name over the whole case. */
  threads?: Record<string, number>
}

const VOLUME = 'delta'
const n = (s: Status, k: string): number => Number(s[k] ?? NaN)

/** Deterministic text: numbered lines of varied length, every line unique. */
function makeText (bytes: number, seed: number): Buffer {
  const buf = Buffer.allocUnsafe(bytes + 256)
  let off = 0
  for (let i = 0; off < bytes; i++) {
    const v = (i * 2654435761 + seed * 40503) % 1000003
    off += buf.write(`line ${String(i).padStart(9, '0')} of a long text file, seed ${seed}, value ${v}${' abcdefgh'.slice(0, v % 9)}\n`, off, 'latin1')
  }
  return buf.subarray(0, bytes)
}

/** Replaces the line that starts after `at` by another one of a different length. */
function editLine (content: Buffer, at: number, run: number): { next: Buffer; offset: number } {
  const start = content.indexOf(10, at) + 1
  const end = content.indexOf(10, start)
  if (start <= 0 || end < 0) throw new Error(`no line after offset ${at}`)
  const line = Buffer.from(`this line was edited by the delta benchmark in run ${run}\n`)
  return { next: Buffer.concat([content.subarray(0, start), line, content.subarray(end + 1)]), offset: start }
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

async function fileSha (file: string): Promise<string> {
  const h = createHash('sha256')
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 4 * MiB })) h.update(chunk as Buffer)
  return h.digest('hex')
}

/** Writes data in 1 MiB writes from position `at` (an editor's buffered save). */
async function writeAll (fh: fsp.FileHandle, data: Buffer, at = 0): Promise<void> {
  for (let off = 0; off < data.length;) {
    const { bytesWritten } = await fh.write(data, off, Math.min(MiB, data.length - off), at + off)
    off += bytesWritten
  }
}

/** Appends in 1 MiB writes (O_APPEND: no position). */
async function appendAll (fh: fsp.FileHandle, data: Buffer): Promise<void> {
  for (let off = 0; off < data.length;) {
    const { bytesWritten } = await fh.write(data, off, Math.min(MiB, data.length - off))
    off += bytesWritten
  }
}

interface Probe { cpu: number; io: ProcIo; t: number; threads: Record<string, number> }
function probe (pid: number): Probe { return { cpu: procCpuSeconds(pid), io: procIo(pid), t: Date.now(), threads: threadCpuSeconds(pid) } }

function threadDelta (a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(b)) out[k] = v - (a[k] ?? 0)
  return out
}

async function settled (A: MountHandle, timeoutMs: number): Promise<Status> {
  return waitFor(`mount A to end its held rewrites and drain its outbox`, async () => {
    const s = await A.status()
    return s.heldRewrites === 0 && s.pendingTx === 0 ? s : undefined
  }, timeoutMs, 20)
}

async function caughtUp (A: MountHandle, B: MountHandle, timeoutMs: number): Promise<void> {
  const target = n(await settled(A, timeoutMs), 'lastPushedSeq')
  await waitFor(`mount B to apply up to seq ${target}`, async () => n(await B.status(), 'lastAppliedSeq') >= target, timeoutMs, 50)
}

function parseRsyncNumber (stats: string, label: string): number {
  const m = new RegExp(`^${label}: ([\\d,.]+)`, 'm').exec(stats)
  return m ? Number(m[1]!.replace(/,/g, '')) : NaN
}

interface Measured { stdout: string; cpu: number; wallS: number; io: ProcIo }

/**
 * Runs cmd under /usr/bin/time inside sh, which prints its own /proc/$$/io
 * after reaping it: the I/O of cmd and of every process it forked and reaped.
 */
async function measured (cmd: string[], timeFile: string, timeoutMs: number, baseline?: ProcIo): Promise<Measured> {
  const res = await runCmd('sh', ['-c', '"$@"; rc=$?; cat /proc/$$/io; exit $rc', 'sh', '/usr/bin/time', '-f', '%e %U %S', '-o', timeFile, ...cmd], { timeoutMs })
  const get = (k: string): number => Number(new RegExp(`^${k}: (\\d+)$`, 'm').exec(res.stdout)?.[1] ?? NaN)
  let io: ProcIo = { rchar: get('rchar'), wchar: get('wchar'), readBytes: get('read_bytes'), writeBytes: get('write_bytes') }
  if (baseline) io = ioDelta(baseline, io)
  const [wallS, user, sys] = fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number)
  return { stdout: res.stdout, cpu: user! + sys!, wallS: wallS!, io }
}

async function ensureTool (bin: string, pkg: string, report: Report): Promise<void> {
  const found = bin.startsWith('/')
    ? fs.existsSync(bin)
    : (await runCmd('sh', ['-c', `command -v ${bin}`], { timeoutMs: 10_000, allowFail: true })).code === 0
  if (found) return
  report.progress(`${bin} is missing: apt-get install -y ${pkg}`)
  await runCmd('apt-get', ['install', '-y', pkg], { timeoutMs: 600_000, env: { DEBIAN_FRONTEND: 'noninteractive' } })
  report.line(`(${pkg} was installed with apt-get for this run.)`)
}

const bytesText = (x: number | undefined): string => x === undefined || !Number.isFinite(x) ? 'n/a' : Math.abs(x) < 10 * KiB ? `${Math.round(x)} B` : fmtBytes(Math.round(x))
const secs = (x: number | undefined): string => num(x)
const mbs = (size: number, cpu: number): number => cpu > 0 ? size / 1e6 / cpu : Infinity

export async function delta (opts: BenchOptions, report: Report, base: string): Promise<void> {
  const cleanup = new Cleanup()
  const textSize = parseSize(process.env.DELTAFS_BENCH_DELTA_TEXT ?? '100M')
  const bigSize = opts.size
  const runs = opts.runs
  const textTimeout = Math.max(180_000, textSize / MiB * 2000)
  const bigTimeout = Math.max(180_000, bigSize / MiB * 1000)
  const TITLES: Record<CaseId, string> = {
    line: `1. one line changed, temp + fsync + rename (${fmtBytes(textSize)} text)`,
    same: `2. truncate + identical rewrite (${fmtBytes(textSize)} text)`,
    insert: `3. 4 KiB inserted at the start, truncate + rewrite (${fmtBytes(textSize)} text)`,
    append: `4. 1 MiB appended, O_APPEND (${fmtBytes(textSize)} text)`,
    poke: `5. 1 byte changed in place (${fmtBytes(bigSize)}, incompressible)`,
  }
  const results = new Map<CaseId, Record<Tool, Sample[]>>()
  for (const c of CASES) results.set(c, { deltafs: [], rsync: [], xdelta3: [] })
  const loads: number[] = []
  const oddities: string[] = []
  report.heading(`delta: whole-file rewrites and in-place edits, deltafs vs rsync vs xdelta3 (${fmtBytes(textSize)} text, ${fmtBytes(bigSize)} binary, ${runs} run(s))`)
  try {
    await ensureTool('rsync', 'rsync', report)
    await ensureTool('xdelta3', 'xdelta3', report)
    await ensureTool('/usr/bin/time', 'time', report)
    const dir = path.join(base, 'delta')
    fs.mkdirSync(dir, { recursive: true })
    const timeFile = path.join(dir, 'time.out')
    const ioBaseline = (await measured(['true'], timeFile, 10_000)).io

    const node = await startNode(cleanup, path.join(dir, 'node'))
    const A = await startMount(cleanup, VOLUME, path.join(dir, 'mnt-a'), path.join(dir, 'data-a'), node.address)
    const B = await startMount(cleanup, VOLUME, path.join(dir, 'mnt-b'), path.join(dir, 'data-b'), node.address)
    const recordsA = path.join(A.dataDir, VOLUME, 'records')
    const checkRecords = (what: string): void => {
      const left = fs.existsSync(recordsA) ? fs.readdirSync(recordsA) : []
      if (left.length > 0) oddities.push(`after ${what}, A's records area still held ${left.length} file(s): ${left.slice(0, 3).join(', ')}`)
    }

    // ---- text file: deltafs copy on A, rsync copies in src/ and dst/, xdelta3 on dst (old) and src (new)
    const fileA = path.join(A.mountpoint, 'big.txt')
    const fileB = path.join(B.mountpoint, 'big.txt')
    const src = path.join(dir, 'rsync-src')
    const dst = path.join(dir, 'rsync-dst')
    fs.mkdirSync(src)
    fs.mkdirSync(dst)
    const srcFile = path.join(src, 'big.txt')
    const dstFile = path.join(dst, 'big.txt')
    const deltaFile = path.join(dir, 'xdelta3.out')

    let content = makeText(textSize, 1)
    report.progress(`writing the ${fmtBytes(textSize)} text file through A and waiting until B has it`)
    let t0 = Date.now()
    {
      const fh = await fsp.open(fileA, 'w')
      await writeAll(fh, content)
      await fh.close()
    }
    await caughtUp(A, B, textTimeout)
    const want0 = sha(content)
    await waitFor('B to hold the first copy', async () => (await fileSha(fileB)) === want0, textTimeout, 500)
    fs.writeFileSync(srcFile, content)
    fs.writeFileSync(dstFile, content)
    report.progress(`setup took ${((Date.now() - t0) / 1000).toFixed(1)} s; A pushed ${fmtBytes(n(await A.status(), 'bytesPushed'))} for it`)

    const hourAgo = (): Date => new Date(Date.now() - 3600_000)

    /** xdelta3 (old = dst, new = src), then rsync src → dst, each after dropping the page cache. */
    const localTools = async (c: CaseId, size: number, oldFile: string, newFile: string, srcDir: string, dstDir: string, timeoutMs: number, verify: boolean): Promise<void> => {
      fs.rmSync(deltaFile, { force: true })
      await dropCaches()
      const x = await measured(['xdelta3', '-e', '-s', oldFile, newFile, deltaFile], timeFile, timeoutMs, ioBaseline)
      results.get(c)!.xdelta3.push({ size, wire: fs.statSync(deltaFile).size, readBytes: x.io.readBytes, rchar: x.io.rchar, cpu: x.cpu, wallMs: x.wallS * 1000 })
      // The previous version looks an hour older, as a file edited since the last sync does.
      fs.utimesSync(oldFile, hourAgo(), hourAgo())
      await dropCaches()
      const r = await measured(['rsync', '-a', '--no-whole-file', '--stats', `${srcDir}/`, `${dstDir}/`], timeFile, timeoutMs, ioBaseline)
      const sent = parseRsyncNumber(r.stdout, 'Total bytes sent')
      const received = parseRsyncNumber(r.stdout, 'Total bytes received')
      results.get(c)!.rsync.push({ size, wire: sent + received, readBytes: r.io.readBytes, rchar: r.io.rchar, cpu: r.cpu, wallMs: r.wallS * 1000, literal: parseRsyncNumber(r.stdout, 'Literal data') })
      if (verify) {
        const same = (await runCmd('cmp', [newFile, oldFile], { timeoutMs, allowFail: true })).code === 0
        if (!same) throw new Error(`rsync left ${newFile} and ${oldFile} different`)
      }
    }

    /** One deltafs change through A: `change` makes it up to its commit, returns the commit. */
    const deltafsCase = async (c: CaseId, size: number, timeoutMs: number, change: () => Promise<() => Promise<void>>): Promise<void> => {
      await settled(A, timeoutMs)
      await dropCaches()
      const s0 = await A.status()
      const p0 = probe(A.pid)
      const commit = await change()
      const pMid = probe(A.pid)
      await commit()
      const s1 = await settled(A, timeoutMs)
      const p1 = probe(A.pid)
      const io = ioDelta(p0.io, p1.io)
      const phase = ioDelta(pMid.io, p1.io)
      results.get(c)!.deltafs.push({
        size,
        wire: n(s1, 'bytesPushed') - n(s0, 'bytesPushed'),
        readBytes: io.readBytes,
        rchar: io.rchar,
        writeBytes: io.writeBytes,
        cpu: p1.cpu - p0.cpu,
        wallMs: p1.t - p0.t,
        phaseCpu: p1.cpu - pMid.cpu,
        phaseRchar: phase.rchar,
        phaseReadBytes: phase.readBytes,
        settleMs: p1.t - pMid.t,
        journaled: n(s1, 'bytesJournaled') - n(s0, 'bytesJournaled'),
        frames: n(s1, 'framesPushed') - n(s0, 'framesPushed'),
        threads: threadDelta(p0.threads, p1.threads),
      })
      if (n(s1, 'txRefused') > n(s0, 'txRefused')) oddities.push(`${c}: A's txRefused went from ${n(s0, 'txRefused')} to ${n(s1, 'txRefused')}`)
    }

    const verifyText = async (what: string): Promise<void> => {
      await caughtUp(A, B, textTimeout)
      const want = sha(content)
      await waitFor(`B to hold the text after ${what}`, async () => (await fileSha(fileB)) === want, 60_000, 500)
      checkRecords(what)
    }

    for (let run = 0; run < runs; run++) {
      // 1. one line changed, temp + fsync + rename
      loads.push(os.loadavg()[0]!)
      t0 = Date.now()
      const edit = editLine(content, Math.floor(content.length * (0.1 + ((0.5 + run * 0.37) % 0.8))), run)
      content = edit.next
      const tmpA = path.join(A.mountpoint, '.big.txt.swp')
      await deltafsCase('line', content.length, textTimeout, async () => {
        const fh = await fsp.open(tmpA, 'w')
        await writeAll(fh, content)
        await fh.sync()
        await fh.close()
        return () => fsp.rename(tmpA, fileA)
      })
      await verifyText(`case 1, run ${run + 1}`)
      if (fs.existsSync(path.join(B.mountpoint, '.big.txt.swp'))) oddities.push(`case 1, run ${run + 1}: the temp file reached B`)
      fs.writeFileSync(srcFile, content)
      await localTools('line', content.length, dstFile, srcFile, src, dst, textTimeout, true)
      report.progress(`run ${run + 1}, case 1 (line at offset ${edit.offset}): ${((Date.now() - t0) / 1000).toFixed(1)} s`)

      // 2. truncate + identical rewrite
      loads.push(os.loadavg()[0]!)
      t0 = Date.now()
      await deltafsCase('same', content.length, textTimeout, async () => {
        const fh = await fsp.open(fileA, 'w')
        await writeAll(fh, content)
        return () => fh.close()
      })
      await verifyText(`case 2, run ${run + 1}`)
      fs.writeFileSync(srcFile, content)
      await localTools('same', content.length, dstFile, srcFile, src, dst, textTimeout, true)
      report.progress(`run ${run + 1}, case 2: ${((Date.now() - t0) / 1000).toFixed(1)} s`)

      // 3. 4 KiB inserted at the start, truncate + rewrite
      loads.push(os.loadavg()[0]!)
      t0 = Date.now()
      content = Buffer.concat([makeText(4 * KiB, 100 + run), content])
      await deltafsCase('insert', content.length, textTimeout, async () => {
        const fh = await fsp.open(fileA, 'w')
        await writeAll(fh, content)
        return () => fh.close()
      })
      await verifyText(`case 3, run ${run + 1}`)
      fs.writeFileSync(srcFile, content)
      await localTools('insert', content.length, dstFile, srcFile, src, dst, textTimeout, true)
      report.progress(`run ${run + 1}, case 3: ${((Date.now() - t0) / 1000).toFixed(1)} s`)

      // 4. 1 MiB appended
      loads.push(os.loadavg()[0]!)
      t0 = Date.now()
      const tail = makeText(MiB, 200 + run)
      content = Buffer.concat([content, tail])
      await deltafsCase('append', content.length, textTimeout, async () => {
        const fh = await fsp.open(fileA, 'a')
        await appendAll(fh, tail)
        return () => fh.close()
      })
      await verifyText(`case 4, run ${run + 1}`)
      fs.appendFileSync(srcFile, tail)
      await localTools('append', content.length, dstFile, srcFile, src, dst, textTimeout, true)
      report.progress(`run ${run + 1}, case 4: ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    }
    fs.rmSync(srcFile, { force: true })
    fs.rmSync(dstFile, { force: true })

    // ---- 5. one byte changed in place in a big incompressible file
    const bigA = path.join(A.mountpoint, 'big.bin')
    const bigB = path.join(B.mountpoint, 'big.bin')
    const bigSrc = path.join(dir, 'big-src')
    const bigDst = path.join(dir, 'big-dst')
    fs.mkdirSync(bigSrc)
    fs.mkdirSync(bigDst)
    const bigSrcFile = path.join(bigSrc, 'big.bin')
    const bigDstFile = path.join(bigDst, 'big.bin')
    report.progress(`writing ${fmtBytes(bigSize)} through A and waiting until B has it`)
    t0 = Date.now()
    const w = await runWorker('seqwrite', { file: bigA, size: bigSize, block: MiB }, bigTimeout)
    await caughtUp(A, B, bigTimeout)
    report.progress(`took ${((Date.now() - t0) / 1000).toFixed(1)} s (the write ${(w.ms / 1000).toFixed(1)} s); preparing the rsync copies`)
    await runWorker('seqwrite', { file: bigSrcFile, size: bigSize, block: MiB, fsync: false }, bigTimeout)
    await runCmd('cp', ['--reflink=never', '--preserve=all', bigSrcFile, bigDstFile], { timeoutMs: bigTimeout })
    const pokeAt = async (file: string, offset: number): Promise<{ fh: fsp.FileHandle; value: number }> => {
      const fh = await fsp.open(file, 'r+')
      const b = Buffer.alloc(1)
      await fh.read(b, 0, 1, offset)
      b[0] = b[0]! ^ 0xff
      await fh.write(b, 0, 1, offset)
      return { fh, value: b[0] }
    }
    for (let run = 0; run < runs; run++) {
      loads.push(os.loadavg()[0]!)
      t0 = Date.now()
      const offset = (Math.floor(bigSize / 2) + 123 + run * 1_000_003) % bigSize
      let value = -1
      await deltafsCase('poke', bigSize, bigTimeout, async () => {
        const p = await pokeAt(bigA, offset)
        value = p.value
        return () => p.fh.close()
      })
      await caughtUp(A, B, bigTimeout)
      const one = Buffer.alloc(1)
      const fhB = await fsp.open(bigB, 'r')
      await fhB.read(one, 0, 1, offset)
      await fhB.close()
      if (one[0] !== value) throw new Error(`B reads ${one[0]} at ${offset}, A wrote ${value}`)
      const p = await pokeAt(bigSrcFile, offset)
      await p.fh.close()
      await localTools('poke', bigSize, bigDstFile, bigSrcFile, bigSrc, bigDst, bigTimeout, run === runs - 1)
      report.progress(`run ${run + 1}, case 5 (byte at ${offset}): ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    }
    report.progress(`comparing B's ${fmtBytes(bigSize)} file (through its mount) with A's backing file`)
    const same = (await runCmd('cmp', [bigB, path.join(A.backing, 'big.bin')], { timeoutMs: bigTimeout, allowFail: true }))
    if (same.code !== 0) throw new Error(`B's big.bin differs from A's: ${same.stdout.trim()} ${same.stderr.trim()}`)
    checkRecords('case 5')
  } finally {
    await cleanup.run()
  }
  writeReport(report, results, TITLES, textSize, bigSize, runs, loads, oddities)
}

/** Median CPU seconds per thread name over the runs, largest first. */
function threadsText (xs: Sample[]): string {
  const names = new Set(xs.flatMap(s => Object.keys(s.threads ?? {})))
  const med = [...names].map(k => [k, summarize(xs.map(s => s.threads?.[k] ?? 0))!.median] as const)
    .filter(([, v]) => v >= 0.02).sort((a, b) => b[1] - a[1])
  return med.length === 0 ? '< 0.02 s each' : med.map(([k, v]) => `${k} ${num(v)}`).join(', ')
}

function writeReport (report: Report, results: Map<CaseId, Record<Tool, Sample[]>>, titles: Record<CaseId, string>,
  textSize: number, bigSize: number, runs: number, loads: number[], oddities: string[]): void {
  const sum = (xs: Sample[], f: (s: Sample) => number | undefined): Summary | undefined =>
    summarize(xs.map(f).filter((x): x is number => x !== undefined && !Number.isNaN(x)))
  const speed = (x: number | undefined): string => x === Infinity ? '∞ (0 ticks)' : num(x)
  const load = summarize(loads)
  report.line(`Method: each change is made once per run for every tool, on the same contents; a run goes through cases 1–4 on a ${fmtBytes(textSize)} generated text file (numbered lines; the file grows by the insert and the append, so later runs work on a slightly larger file) and then case 5 on a ${fmtBytes(bigSize)} incompressible file. Page cache before every measured change: ${dropCachesState()}. Cells are min / **median** / max over ${runs} run(s).`)
  report.line(`deltafs: a storage node and two mounts over loopback; the change is made through mount A by the harness process (1 MiB writes); figures are deltas taken around it once A shows heldRewrites = 0 and pendingTx = 0: bytes on the wire = A's bytesPushed (encoded frames); reads = A's daemon /proc/PID/io (read_bytes = from disk, rchar = all read syscalls, which include the written data read from /dev/fuse and the socket); CPU = utime + stime of A's daemon from /proc/PID/stat (10 ms ticks). B was checked to hold the same bytes after every change (SHA-256 of the text through B's mount; for case 5 the byte read back through B after each run and cmp of B's whole file with A's backing file at the end). rsync: \`rsync -a --no-whole-file --stats src/ dst/\` with dst holding the previous version (mtime set an hour back); bytes = Total bytes sent + Total bytes received. xdelta3: \`xdelta3 -e -s OLD NEW DELTA\`; bytes = the delta file's size. For both, CPU = user + sys from /usr/bin/time (children included), reads = /proc/$$/io of the shell that reaped the tool (so all its processes; rsync's rchar also counts the pipe between its processes, about the bytes on the wire). Speed = file size / CPU seconds in MB/s (10^6 B).`)

  const rows: string[][] = []
  for (const c of CASES) {
    const r = results.get(c)!
    for (const tool of TOOLS) {
      const xs = r[tool]
      if (xs.length === 0) continue
      rows.push([
        tool === 'deltafs' ? `**${titles[c]}**` : '',
        tool,
        fmtSummary(sum(xs, s => s.wire), bytesText),
        fmtSummary(sum(xs, s => s.readBytes), bytesText),
        fmtSummary(sum(xs, s => s.rchar), bytesText),
        fmtSummary(sum(xs, s => s.cpu), secs),
        fmtSummary(sum(xs, s => mbs(s.size, s.cpu)), speed),
      ])
    }
  }
  report.table(['case', 'tool', 'bytes on the wire', 'read from disk (read_bytes)', 'read syscalls (rchar)', 'CPU s', 'MB/s (size / CPU)'], rows)

  const drows: string[][] = []
  for (const c of CASES) {
    const xs = results.get(c)!.deltafs
    if (xs.length === 0) continue
    drows.push([
      titles[c].replace(/ \(.*\)$/, ''),
      fmtSummary(sum(xs, s => s.frames), num),
      fmtSummary(sum(xs, s => s.journaled), bytesText),
      fmtSummary(sum(xs, s => s.writeBytes), bytesText),
      fmtSummary(sum(xs, s => s.wallMs / 1000), secs),
      fmtSummary(sum(xs, s => s.phaseCpu), secs),
      fmtSummary(sum(xs, s => s.phaseRchar), bytesText),
      fmtSummary(sum(xs, s => s.phaseReadBytes), bytesText),
      fmtSummary(sum(xs, s => s.settleMs), num),
      fmtSummary(sum(xs, s => mbs(s.size, s.phaseCpu ?? NaN)), speed),
      threadsText(xs),
    ])
  }
  report.line('deltafs in detail. "Commit" is the rename (case 1) or the close (cases 2–5): the columns after it cover only the commit until A settled, i.e. the delta computation (cases 1–3) and the push, not taking in the written data.')
  report.table(['case', 'frames pushed', 'bytes journaled', 'A write_bytes', 'wall s (change → settled)', 'CPU s commit → settled', 'rchar commit → settled', 'read_bytes commit → settled', 'ms commit → settled', 'MB/s on commit → settled CPU', 'A CPU s by thread, whole case (medians, ≥ 0.02 s)'], drows)

  const verdict: string[][] = []
  const fails = { rsync: [] as string[], xdelta: [] as string[], speed: [] as string[] }
  for (const c of CASES) {
    const r = results.get(c)!
    if (r.deltafs.length === 0) continue
    const med = (tool: Tool, f: (s: Sample) => number): number => sum(r[tool], f)?.median ?? NaN
    const d = med('deltafs', s => s.wire)
    const rs = med('rsync', s => s.wire)
    const xd = med('xdelta3', s => s.wire)
    const pairs = (tool: Tool, factor: number): [number, number] => {
      let ok = 0
      for (let i = 0; i < Math.min(r.deltafs.length, r[tool].length); i++) if (r.deltafs[i]!.wire <= factor * r[tool][i]!.wire) ok++
      return [ok, Math.min(r.deltafs.length, r[tool].length)]
    }
    const [okR, nR] = pairs('rsync', 1)
    const [okX, nX] = pairs('xdelta3', XDELTA_FACTOR)
    const sp = med('deltafs', s => mbs(s.size, s.cpu))
    const spPhase = med('deltafs', s => mbs(s.size, s.phaseCpu ?? NaN))
    const yes = (ok: number, all: number): string => ok === all ? `yes (${ok}/${all} runs)` : `**NO** (${ok}/${all} runs)`
    if (okR < nR) fails.rsync.push(`case ${c}`)
    if (okX < nX) fails.xdelta.push(`case ${c}`)
    if (!(sp >= SPEED_TARGET_MBS)) fails.speed.push(`case ${c}`)
    verdict.push([
      titles[c].replace(/ \(.*\)$/, ''),
      bytesText(d), bytesText(rs), bytesText(xd),
      rs > 0 ? `${(d / rs).toFixed(3)}×` : 'n/a',
      xd > 0 ? `${(d / xd).toFixed(2)}×` : 'n/a',
      yes(okR, nR), yes(okX, nX),
      `${speed(sp)} (commit → settled: ${speed(spPhase)})`,
      sp >= SPEED_TARGET_MBS ? 'yes' : '**NO**',
    ])
  }
  report.line(`Verdicts (medians; the yes/no columns compare run by run):`)
  report.table(['case', 'deltafs B', 'rsync B', 'xdelta3 B', 'deltafs / rsync', 'deltafs / xdelta3', `deltafs ≤ rsync`, `deltafs ≤ ${XDELTA_FACTOR}× xdelta3`, 'deltafs MB/s (size / A CPU)', `≥ ${SPEED_TARGET_MBS} MB/s`], verdict)
  const list = (xs: string[]): string => xs.length === 0 ? 'met in every case' : `**MISSED** in ${xs.join(', ')}`
  report.line(`Targets: deltafs ≤ rsync bytes: ${list(fails.rsync)}; ≤ ${XDELTA_FACTOR}× xdelta3: ${list(fails.xdelta)}; ≥ ${SPEED_TARGET_MBS} MB/s (file size / A's daemon CPU for the case): ${list(fails.speed)}.`)
  if (load) report.line(`Load average (1 min) sampled at the start of each case: ${num(load.min)} / **${num(load.median)}** / ${num(load.max)} (min / median / max) on ${os.cpus().length} cores: other work ran at the same time, so CPU and time figures are noisier than bytes.`)
  if (oddities.length > 0) report.line(`Oddities seen: ${oddities.join('; ')}.`)
}
