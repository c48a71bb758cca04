// Part 3, ingest: a storage node (its own process) fed by hand-written
// pushers in the harness: SyncStub.pushBatch() streams of frames built with
// FrameCodec.encode as src/sync/sync-client.ts builds them, a window of
// unacked frames per stream, acks checked in order. Then fan-out latency to
// 10 SyncStub.subscribe() streams.
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import type * as grpc from '@grpc/grpc-js'
import { SyncStub } from '../src/rpc/client.js'
import { type Ack, AckStatus, type Delivery, FrameCodec, PayloadCodec, TransactionCodec } from '../src/codec/wire.js'
import { type BenchOptions, KiB, MiB, fmtBytes, Report, nowMs, num, percentile, withTimeout } from './lib/common.js'
import { Cleanup, type NodeHandle, procCpuSeconds, procMem, procRss, startNode } from './lib/procs.js'

/** As src/sync/sync-client.ts: unacked frames and bytes per PushBatch stream, and frames per message. */
const PUSH_WINDOW = 256
const PUSH_WINDOW_BYTES = 8 << 20
const PUSH_BATCH_FRAMES = 32
const PUSH_BATCH_BYTES = 4 << 20

/** The payload of a one-Write transaction of `size` data bytes, encoded once (random data: zstd would not pay, so codec NONE as ZstdCodec.seal would choose). */
function payloadFor (volume: string, deviceId: string, size: number): Uint8Array {
  return TransactionCodec.encode({
    txId: { deviceId, deviceSeq: 1 }, volume, fileId: '', baseVersion: 0, path: `/bench-${deviceId}.bin`,
    ops: [{ write: { offset: 0, data: randomBytes(size) } }], mtimeNs: BigInt(Date.now()) * 1_000_000n,
  })
}

function frameBytes (volume: string, deviceId: string, deviceSeq: number, payload: Uint8Array): Uint8Array {
  return FrameCodec.encode({
    header: { volume, txId: { deviceId, deviceSeq }, fileId: '', baseVersion: 0, codec: PayloadCodec.NONE, encrypted: false, rawSize: payload.length },
    payload,
  })
}

/**
 * The same bytes as frameBytes, cheaper: the payload field is encoded once
 * and only the small header is encoded per transaction (protobuf fields may
 * be concatenated), so the pushers cost the harness little CPU next to the node.
 */
function frameMaker (volume: string, deviceId: string, payload: Uint8Array): (deviceSeq: number) => Uint8Array {
  const full = frameBytes(volume, deviceId, 1, payload)
  const header1 = FrameCodec.encode({ header: { volume, txId: { deviceId, deviceSeq: 1 }, fileId: '', baseVersion: 0, codec: PayloadCodec.NONE, encrypted: false, rawSize: payload.length }, payload: new Uint8Array(0) })
  if (!Buffer.from(full.subarray(0, header1.length)).equals(header1)) throw new Error('frame header is not a prefix of the frame encoding')
  const payloadField = Buffer.from(full.subarray(header1.length))
  return deviceSeq => {
    const header = FrameCodec.encode({ header: { volume, txId: { deviceId, deviceSeq }, fileId: '', baseVersion: 0, codec: PayloadCodec.NONE, encrypted: false, rawSize: payload.length }, payload: new Uint8Array(0) })
    return Buffer.concat([header, payloadField])
  }
}

interface PushResult { acked: number; bytes: number; firstMs: number; lastMs: number }

/** One Push stream: sends up to `count` transactions (or until `deadline`), keeping a window in flight. */
async function pusher (address: string, volume: string, deviceId: string, size: number, count: number, deadline: number): Promise<PushResult> {
  const stub = new SyncStub(address)
  try {
    await stub.waitForReady(5000)
    const makeFrame = frameMaker(volume, deviceId, payloadFor(volume, deviceId, size))
    const call = stub.pushBatch(volume)
    const inflight: number[] = []
    let inflightBytes = 0
    let next = 1
    const res: PushResult = { acked: 0, bytes: 0, firstMs: nowMs(), lastMs: 0 }
    await new Promise<void>((resolve, reject) => {
      let done = false
      const finish = (err?: Error): void => {
        if (done) return
        done = true
        if (err) { call.cancel(); reject(err) } else { call.end(); resolve() }
      }
      const pump = (): void => {
        while (!done && inflight.length < PUSH_WINDOW && inflightBytes < PUSH_WINDOW_BYTES && next <= count && Date.now() < deadline) {
          const batch: Uint8Array[] = []
          let batchBytes = 0
          while (batch.length < PUSH_BATCH_FRAMES && batchBytes < PUSH_BATCH_BYTES && inflight.length < PUSH_WINDOW && inflightBytes < PUSH_WINDOW_BYTES && next <= count) {
            const bytes = makeFrame(next++)
            batch.push(bytes)
            batchBytes += bytes.length
            inflight.push(bytes.length)
            inflightBytes += bytes.length
          }
          call.write(batch)
        }
        if (inflight.length === 0) finish()
      }
      call.on('data', (acks: Ack[]) => {
        for (const ack of acks) {
          const size = inflight.shift()
          const expect = res.acked + 1
          if (size === undefined || ack.txId?.deviceSeq !== expect) { finish(new Error(`${deviceId}: ack for ${String(ack.txId?.deviceSeq)}, expected ${expect}`)); return }
          if (ack.status !== AckStatus.OK) { finish(new Error(`${deviceId}: tx ${expect} acked with status ${ack.status} ${ack.error}`)); return }
          inflightBytes -= size
          res.acked++
          res.bytes += size
        }
        res.lastMs = nowMs()
        pump()
      })
      call.on('error', (err: grpc.ServiceError) => finish(err))
      call.on('end', () => { if (!done) finish(inflight.length > 0 ? new Error(`${deviceId}: push stream ended with ${inflight.length} unacked`) : undefined) })
      pump()
    })
    return res
  } finally {
    stub.close()
  }
}

interface RunResult { tx: number; bytes: number; secs: number; nodeCpu: number; harnessCpu: number; rss: number; peakRss: number; peakAnon: number }

async function ingestRun (node: NodeHandle, volume: string, pushers: number, size: number, totalTx: number, seconds: number): Promise<RunResult> {
  const per = Math.ceil(totalTx / pushers)
  const cpu0 = procCpuSeconds(node.pid)
  const h0 = process.cpuUsage()
  let peakRss = 0
  let peakAnon = 0
  const sample = (): void => {
    try {
      const m = procMem(node.pid)
      peakRss = Math.max(peakRss, m.rss)
      peakAnon = Math.max(peakAnon, m.anon)
    } catch { /* node gone */ }
  }
  sample()
  const sampler = setInterval(sample, 100)
  const t0 = nowMs()
  const deadline = Date.now() + seconds * 1000
  try {
    const results = await withTimeout(`${pushers} pushers`, Promise.all(
      Array.from({ length: pushers }, (_v, k) => pusher(node.address, volume, `bench-p${k}`, size, per, deadline)),
    ), seconds * 1000 + 60_000)
    const t1 = Math.max(...results.map(r => r.lastMs))
    const h = process.cpuUsage(h0)
    const rss = procRss(node.pid)
    sample()
    return {
      tx: results.reduce((s, r) => s + r.acked, 0),
      bytes: results.reduce((s, r) => s + r.bytes, 0),
      secs: (t1 - t0) / 1000,
      nodeCpu: procCpuSeconds(node.pid) - cpu0,
      harnessCpu: (h.user + h.system) / 1e6,
      rss,
      peakRss,
      peakAnon,
    }
  } finally {
    clearInterval(sampler)
  }
}

/** One pusher sends transactions one at a time; each must reach all subscribers before the next. */
async function fanout (node: NodeHandle, count: number, subscribers: number, size: number): Promise<{ delivery: number[]; lastOfTx: number[]; ack: number[]; timeouts: number }> {
  const volume = 'fanout'
  const stubs: SyncStub[] = []
  const calls: Array<grpc.ClientReadableStream<Delivery>> = []
  const arrivals = new Map<number, number[]>()
  let wake: (() => void) | undefined
  let failure: Error | undefined
  const push = new SyncStub(node.address)
  try {
    await push.waitForReady(5000)
    for (let k = 0; k < subscribers; k++) {
      const stub = new SyncStub(node.address)
      stubs.push(stub)
      const call = stub.subscribe({ volume, fromSeq: 0, deviceId: `sub${k}` })
      calls.push(call)
      call.on('data', (d: Delivery) => {
        const t = nowMs()
        const list = arrivals.get(d.seq) ?? []
        list.push(t)
        arrivals.set(d.seq, list)
        wake?.()
      })
      call.on('error', (err: grpc.ServiceError) => { if (err.code !== 1) { failure = err; wake?.() } })
    }
    const deviceId = 'bench-fanout'
    const payload = payloadFor(volume, deviceId, size)
    const call = push.pushBatch(volume)
    const acks: Ack[] = []
    call.on('data', (a: Ack[]) => { acks.push(...a); wake?.() })
    call.on('error', (err: grpc.ServiceError) => { if (err.code !== 1) { failure = err; wake?.() } })
    const waitUntil = async (cond: () => boolean, ms: number): Promise<boolean> => {
      const deadline = nowMs() + ms
      while (!cond()) {
        if (failure) throw failure
        const left = deadline - nowMs()
        if (left <= 0) return false
        await new Promise<void>(resolve => { wake = resolve; setTimeout(resolve, Math.min(left, 100)) })
      }
      return true
    }
    const delivery: number[] = []
    const lastOfTx: number[] = []
    const ack: number[] = []
    let timeouts = 0
    // Transaction 1 is a warm-up: it also shows that every subscriber is attached.
    for (let i = 1; i <= count + 1; i++) {
      const t0 = nowMs()
      call.write([frameBytes(volume, deviceId, i, payload)])
      const acked = await waitUntil(() => acks.length >= i, 10_000)
      if (!acked) throw new Error(`no ack for fan-out transaction ${i} within 10 s`)
      const a = acks[i - 1]!
      if (a.status !== AckStatus.OK) throw new Error(`fan-out transaction ${i} acked with status ${a.status} ${a.error}`)
      const tAck = nowMs()
      const all = await waitUntil(() => (arrivals.get(a.seq)?.length ?? 0) >= subscribers, i === 1 ? 15_000 : 10_000)
      if (i === 1) {
        if (!all) throw new Error(`the warm-up transaction reached ${arrivals.get(a.seq)?.length ?? 0} of ${subscribers} subscribers within 15 s`)
        continue
      }
      if (!all) { timeouts++; continue }
      ack.push(tAck - t0)
      const times = arrivals.get(a.seq)!
      for (const t of times) delivery.push(t - t0)
      lastOfTx.push(Math.max(...times) - t0)
      arrivals.delete(a.seq)
    }
    call.end()
    return { delivery, lastOfTx, ack, timeouts }
  } finally {
    for (const c of calls) c.cancel()
    for (const s of stubs) s.close()
    push.close()
  }
}

/** min / median / max of a sample, formatted. */
function spread (xs: number[], bold = false): string {
  const s = [...xs].sort((a, b) => a - b)
  const mid = num(percentile(s, 50))
  return s.length === 1 ? (bold ? `**${mid}**` : mid) : `${num(s[0])} / ${bold ? `**${mid}**` : mid} / ${num(s[s.length - 1])}`
}

/** Extra node options for the storage node, e.g. DELTAFS_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/p". */
function nodeArgsFromEnv (): string[] {
  return (process.env.DELTAFS_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean)
}

export async function ingest (opts: BenchOptions, report: Report, base: string): Promise<void> {
  const cleanup = new Cleanup()
  report.heading('ingest: storage node, hand-written gRPC pushers')
  try {
    const nodeArgs = nodeArgsFromEnv()
    const node = await startNode(cleanup, path.join(base, 'ingest', 'node'), nodeArgs)
    report.line(`Storage node: \`deltafs serve\` (embedded LevelDB, group-committed fsync), its own process${nodeArgs.length ? ` (node options: ${nodeArgs.join(' ')})` : ''}. Pushers: in the harness process, one SyncStub + PushBatch stream each (grpc-js shares one HTTP/2 connection between them), a window of ${PUSH_WINDOW} frames / ${PUSH_WINDOW_BYTES >> 20} MiB and up to ${PUSH_BATCH_FRAMES} frames / ${PUSH_BATCH_BYTES >> 20} MiB per message like src/sync/sync-client.ts, every ack checked (in order, status OK); frames are built from a pre-encoded payload field plus a per-transaction header. Each pusher is its own device id on one volume per run. Transactions carry one Write op of random data (codec NONE). Bounded at ${opts.ingestTx} tx or ${opts.ingestSeconds} s per run; ${opts.runs} run(s) per configuration, in turn (min / median / max). Node CPU s per 10k tx is the node process's user+system CPU (all threads) divided by transactions acked: steadier than tx/s on a shared machine. Peak RSS: /proc VmRSS sampled every 100 ms; anon: the peak of RssAnon (heap, malloc, V8), the rest is mapped files (LevelDB tables) and shared memory.`)
    const rows: string[][] = []
    let best1k = 0
    for (const size of opts.ingestSizes) {
      for (const pushers of opts.ingestPushers) {
        const runs: RunResult[] = []
        for (let i = 0; i < opts.runs; i++) {
          const r = await ingestRun(node, `ing-${pushers}-${size}-${i}`, pushers, size, opts.ingestTx, opts.ingestSeconds)
          runs.push(r)
          report.progress(`${fmtBytes(size)} × ${pushers} pushers, run ${i + 1}: ${num(r.tx / r.secs)} tx/s, ${num(r.bytes / MiB / r.secs)} MB/s, node ${num(r.nodeCpu / r.tx * 1e4)} CPU s/10k tx, peak RSS ${num(r.peakRss / MiB)} MiB (anon ${num(r.peakAnon / MiB)})`)
        }
        const txs = runs.map(r => r.tx / r.secs)
        if (size === KiB) best1k = Math.max(best1k, percentile(txs, 50))
        rows.push([fmtBytes(size), String(pushers), spread(runs.map(r => r.tx)), spread(txs, true), spread(runs.map(r => r.bytes / MiB / r.secs)),
          spread(runs.map(r => r.nodeCpu / r.tx * 1e4)), spread(runs.map(r => r.nodeCpu / r.secs * 100)), spread(runs.map(r => r.harnessCpu / r.secs * 100)), spread(runs.map(r => r.peakRss / MiB)), spread(runs.map(r => r.peakAnon / MiB))])
      }
    }
    report.table(['tx data', 'pushers', 'tx acked', 'tx/s', 'MB/s (frame bytes)', 'node CPU s / 10k tx', 'node CPU %', 'harness CPU %', 'node peak RSS MiB', 'of it anon MiB (peak)'], rows)
    if (opts.ingestSizes.includes(KiB)) report.line(`Target (DESIGN §9): ≥ 20,000 small transactions/s → best median 1 KiB figure ${num(best1k)} tx/s ${best1k >= 20_000 ? 'meets it' : 'MISSES it'} (${(best1k / 20_000).toFixed(2)}× the target).`)

    const fanTx = opts.fanoutTx
    const f = await withTimeout('fan-out', fanout(node, fanTx, 10, KiB), 10 * 60_000)
    const q = (xs: number[]): string[] => [num(percentile(xs, 50)), num(percentile(xs, 99)), num(xs.length ? Math.max(...xs) : NaN)]
    report.line(`Fan-out: 10 SyncStub.subscribe streams on one volume, one pusher sending ${fanTx} transactions of 1 KiB one at a time (each waits until all 10 have it). Times from the pusher's write.${f.timeouts ? ` **${f.timeouts} transactions did not reach every subscriber within 10 s.**` : ''}`)
    report.table(['ms from push', 'n', 'p50', 'p99', 'max'], [
      ['ack (durable on the node)', String(f.ack.length), ...q(f.ack)],
      ['each delivery (10 per tx)', String(f.delivery.length), ...q(f.delivery)],
      ['last of the 10 deliveries', String(f.lastOfTx.length), ...q(f.lastOfTx)],
    ])
  } finally {
    await cleanup.run()
  }
}
