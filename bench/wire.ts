// Part 5, wire: what a 1-byte in-place edit in a large file costs. deltafs:
// the bytesPushed delta of mount A (`deltafs status --json` counters), what
// mount B received, and the disk reads of A, B and the storage node
// (/proc/<pid>/io read_bytes). rsync: --no-whole-file --stats between two
// local directories holding the same file with the same edit, with its disk
// reads from GNU time (%I, blocks read by rsync and the processes it forks).
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import {
  type BenchOptions, MiB, Report, dropCaches, dropCachesState, fmtBytes, num, runCmd, waitFor,
} from './lib/common.js'
import { Cleanup, type MountHandle, type ProcIo, type Status, drain, ioDelta, procIo, runWorker, startMount, startNode } from './lib/procs.js'

function n (s: Status, k: string): number { return Number(s[k] ?? NaN) }

async function caughtUp (A: MountHandle, B: MountHandle, timeoutMs: number): Promise<void> {
  await drain(A, timeoutMs)
  const target = n(await A.status(), 'lastPushedSeq')
  await waitFor(`mount B to apply up to seq ${target}`, async () => n(await B.status(), 'lastAppliedSeq') >= target, timeoutMs, 50)
}

function parseRsyncNumber (stats: string, label: string): number {
  const m = new RegExp(`^${label}: ([\\d,.]+)`, 'm').exec(stats)
  return m ? Number(m[1]!.replace(/,/g, '')) : NaN
}

export async function wire (opts: BenchOptions, report: Report, base: string): Promise<void> {
  const cleanup = new Cleanup()
  const size = opts.size
  const offset = Math.floor(size / 2) + 123
  const bigTimeout = Math.max(180_000, size / MiB * 1000)
  report.heading(`wire: 1-byte in-place edit in a ${fmtBytes(size)} file`)
  try {
    const dir = path.join(base, 'wire')
    const node = await startNode(cleanup, path.join(dir, 'node'))
    const A = await startMount(cleanup, 'wire', path.join(dir, 'mnt-a'), path.join(dir, 'data-a'), node.address)
    const B = await startMount(cleanup, 'wire', path.join(dir, 'mnt-b'), path.join(dir, 'data-b'), node.address)
    const fileA = path.join(A.mountpoint, 'big.bin')

    report.progress(`writing ${fmtBytes(size)} through mount A and waiting until B has it`)
    const w = await runWorker('seqwrite', { file: fileA, size, block: MiB }, bigTimeout)
    const t0 = Date.now()
    await caughtUp(A, B, bigTimeout)
    const syncSecs = (Date.now() - t0) / 1000
    const st = await fsp.stat(path.join(B.mountpoint, 'big.bin'))
    if (st.size !== size) throw new Error(`B holds ${st.size} bytes, A wrote ${size}`)
    const s0 = await A.status()
    report.line(`Setup: writing the file through A took ${num(w.ms / 1000)} s (${num(size / MiB / (w.ms / 1000))} MB/s); A's outbox drained and B applied it ${num(syncSecs)} s later; A pushed ${fmtBytes(n(s0, 'bytesPushed'))} in ${n(s0, 'framesPushed')} frames for it.`)

    await dropCaches()
    const before = { a: await A.status(), b: await B.status() }
    const io0: Record<string, ProcIo> = { a: procIo(A.pid), b: procIo(B.pid), node: procIo(node.pid) }
    const poke = await runWorker('poke', { file: fileA, offset }, 60_000)
    await caughtUp(A, B, 60_000)
    const io1: Record<string, ProcIo> = { a: procIo(A.pid), b: procIo(B.pid), node: procIo(node.pid) }
    const after = { a: await A.status(), b: await B.status() }
    const fh = await fsp.open(path.join(B.mountpoint, 'big.bin'), 'r')
    const one = Buffer.alloc(1)
    await fh.read(one, 0, 1, offset)
    await fh.close()
    if (one[0] !== poke.value) throw new Error(`B reads ${one[0]} at ${offset}, A wrote ${poke.value}`)
    const d = (k: string, side: 'a' | 'b' = 'a'): number => n(after[side], k) - n(before[side], k)
    const io = { a: ioDelta(io0.a!, io1.a!), b: ioDelta(io0.b!, io1.b!), node: ioDelta(io0.node!, io1.node!) }

    // rsync between two plain directories, same file, same edit.
    const src = path.join(dir, 'rsync-src')
    const dst = path.join(dir, 'rsync-dst')
    fs.mkdirSync(src, { recursive: true })
    fs.mkdirSync(dst, { recursive: true })
    report.progress('preparing the rsync copy')
    await runWorker('seqwrite', { file: path.join(src, 'big.bin'), size, block: MiB, fsync: false }, bigTimeout)
    await runCmd('cp', ['--reflink=never', '--preserve=all', path.join(src, 'big.bin'), path.join(dst, 'big.bin')], { timeoutMs: bigTimeout })
    // The copy looks an hour older, as a file edited since the last sync does (rsync's quick check compares mtimes in seconds).
    const hourAgo = new Date(Date.now() - 3600_000)
    fs.utimesSync(path.join(dst, 'big.bin'), hourAgo, hourAgo)
    await runWorker('poke', { file: path.join(src, 'big.bin'), offset }, 60_000)
    await dropCaches()
    const timeFile = path.join(dir, 'rsync.time')
    const haveTime = fs.existsSync('/usr/bin/time')
    const rsyncArgs = ['-a', '--no-whole-file', '--stats', `${src}/`, `${dst}/`]
    const r = haveTime
      ? await runCmd('/usr/bin/time', ['-f', '%I %O %e', '-o', timeFile, 'rsync', ...rsyncArgs], { timeoutMs: bigTimeout })
      : await runCmd('rsync', rsyncArgs, { timeoutMs: bigTimeout })
    const sent = parseRsyncNumber(r.stdout, 'Total bytes sent')
    const received = parseRsyncNumber(r.stdout, 'Total bytes received')
    const literal = parseRsyncNumber(r.stdout, 'Literal data')
    const matched = parseRsyncNumber(r.stdout, 'Matched data')
    const timeParts = haveTime ? fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number) : []
    const rsyncRead = timeParts[0] !== undefined ? timeParts[0] * 512 : NaN
    const same = (await runCmd('cmp', [path.join(src, 'big.bin'), path.join(dst, 'big.bin')], { timeoutMs: bigTimeout, allowFail: true })).code === 0
    if (!same) throw new Error('rsync left the two copies different')

    const kb = (x: number): string => !Number.isFinite(x) ? 'n/a' : x < 1024 ? `${x} B` : `${x} B (${fmtBytes(x)})`
    report.line(`Edit: one byte at offset ${offset}, changed in place (open r+, pwrite 1 byte, close) by a separate process. Page cache before the edit and before rsync: ${dropCachesState()}. B read the new byte back through its mount.`)
    report.table(['figure', 'deltafs', 'rsync --no-whole-file'], [
      ['**bytes on the wire, sender → receiver**', `**${kb(d('bytesPushed'))}** (A bytesPushed, ${d('framesPushed')} frame(s))`, `**${kb(sent)}** (Total bytes sent)`],
      ['bytes the other way', `${kb(d('bytesReceived', 'b'))} (B bytesReceived, payload of ${d('txApplied', 'b')} tx applied)`, `${kb(received)} (Total bytes received: block checksums)`],
      ['captured / literal bytes', `${d('bytesCaptured')} captured, ${d('bytesJournaled')} journaled`, `${literal} literal, ${matched} matched`],
      ['bytes read from disk', `A ${kb(io.a.readBytes)}, B ${kb(io.b.readBytes)}, node ${kb(io.node.readBytes)} (/proc/PID/io read_bytes)`, `${kb(rsyncRead)} (GNU time %I × 512)`],
      ['bytes read by syscalls (rchar; for deltafs also /dev/fuse and sockets)', `A ${kb(io.a.rchar)}, B ${kb(io.b.rchar)}, node ${kb(io.node.rchar)}`, 'n/a'],
      ['wall time', `${num(poke.ms)} ms edit`, `${num(r.ms / 1000)} s`],
    ])
    const pushed = d('bytesPushed')
    report.line(`Target (DESIGN §9): under 1 KiB on the wire → deltafs ${pushed} B ${pushed < 1024 ? 'meets it' : 'MISSES it'}; rsync sent ${Number.isFinite(sent) ? `${sent} B and received ${received} B` : 'n/a'}${Number.isFinite(rsyncRead) ? ` and read ${fmtBytes(rsyncRead)} from disk (${(rsyncRead / size).toFixed(2)}× the file)` : ''}.`)
  } finally {
    await cleanup.run()
  }
}
