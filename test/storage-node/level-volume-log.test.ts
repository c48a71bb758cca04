// The VolumeLog conformance suite against the embedded LevelDB backend.
import { spawn } from 'node:child_process'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { LevelVolumeLog, SEGMENT_MIN_FRAME } from '../../src/storage-node/level-volume-log.js'
import { segmentName } from '../../src/journal/payload-store.js'
import { volumeLogConformance } from './volume-log-conformance.js'

volumeLogConformance(t, async t => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'deltafs-volume-log-'))
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  return () => new LevelVolumeLog(path.join(dir, 'log'))
})

t.test('appends beyond one group commit\'s byte limit are split across commits, in order', async t => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'deltafs-volume-log-'))
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  const log = new LevelVolumeLog(path.join(dir, 'log'))
  await log.open()
  t.teardown(() => log.close())
  // 24 MiB queued at once: at least three commits of at most 8 MiB.
  const frames = Array.from({ length: 24 }, (_v, i) => Buffer.alloc(1 << 20, i))
  const results = await Promise.all(frames.map((frame, i) => log.append({ volume: 'big', deviceId: 'devA', deviceSeq: i + 1, frame })))
  t.same(results.map(r => r.seq), frames.map((_f, i) => i + 1), 'seqs follow arrival order')
  const entries = await log.read('big', 0, 100)
  t.same(entries.map(e => [e.seq, e.frame.length, e.frame[0]]), frames.map((f, i) => [i + 1, f.length, i]), 'each entry holds its own frame')
  t.same(await Promise.all(frames.map((frame, i) => log.append({ volume: 'big', deviceId: 'devA', deviceSeq: i + 1, frame }))), frames.map((_f, i) => ({ seq: i + 1, duplicate: true })), 'retries of all of them are duplicates')
})

/** A frame of a size and content given by n: large ones go to segments, every eighth stays inline. */
function patterned (n: number): Buffer {
  const size = n % 8 === 0 ? 100 + n : SEGMENT_MIN_FRAME + (n * 7919) % (200 << 10)
  const b = Buffer.alloc(size, n & 0xff)
  b.writeUInt32BE(n, 0)
  return b
}

async function segmentBytes (dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  for (const name of await fsp.readdir(dir)) out.set(name, (await fsp.stat(path.join(dir, name))).size)
  return out
}

t.test('large frames live in segment files and read back after a reopen', async t => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'deltafs-volume-log-'))
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  // Small segments, so that the frames span several of them.
  const make = (): LevelVolumeLog => new LevelVolumeLog(path.join(dir, 'log'), 1 << 20)
  let log = make()
  await log.open()
  const frames = Array.from({ length: 40 }, (_v, i) => patterned(i + 1))
  await Promise.all(frames.map((frame, i) => log.append({ volume: 'v', deviceId: 'devA', deviceSeq: i + 1, frame })))
  await log.close()
  const large = frames.filter(f => f.length >= SEGMENT_MIN_FRAME).reduce((n, f) => n + f.length, 0)
  const segs = await segmentBytes(path.join(dir, 'log-segments'))
  t.ok(segs.size > 1, `${segs.size} segment files`)
  t.equal([...segs.values()].reduce((a, b) => a + b, 0), large, 'the segments hold exactly the large frames')
  log = make()
  await log.open()
  t.teardown(() => log.close())
  const entries = await log.read('v', 0, 100)
  t.same(entries.map(e => [e.seq, e.deviceId]), frames.map((_f, i) => [i + 1, 'devA']), 'every entry, in order')
  t.ok(entries.every((e, i) => Buffer.from(e.frame).equals(frames[i]!)), 'every frame byte for byte')
  t.same((await log.read('v', 10, 3)).map(e => e.seq), [11, 12, 13], 'a read from the middle')
  t.same((await log.read('v', 0, 100, SEGMENT_MIN_FRAME)).map(e => e.seq), [1], 'maxBytes counts the frames in segments')
})

t.test('a torn segment tail and an unreferenced segment left by a crash do not break open', async t => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'deltafs-volume-log-'))
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  const segDir = path.join(dir, 'log-segments')
  let log = new LevelVolumeLog(path.join(dir, 'log'))
  await log.open()
  for (let i = 1; i <= 5; i++) await log.append({ volume: 'v', deviceId: 'devA', deviceSeq: i, frame: patterned(i) })
  await log.close()
  // The bytes of a write cut short, and a segment created just before the crash.
  const [last] = [...(await segmentBytes(segDir)).keys()].sort().reverse()
  await fsp.appendFile(path.join(segDir, last!), Buffer.alloc(5000, 0xee))
  await fsp.writeFile(path.join(segDir, segmentName(parseInt(last!.slice(0, 16), 16) + 1)), Buffer.alloc(3000, 0xdd))
  log = new LevelVolumeLog(path.join(dir, 'log'))
  await log.open()
  t.teardown(() => log.close())
  for (let i = 6; i <= 8; i++) await log.append({ volume: 'v', deviceId: 'devA', deviceSeq: i, frame: patterned(i) })
  const entries = await log.read('v', 0, 100)
  t.same(entries.map(e => e.seq), [1, 2, 3, 4, 5, 6, 7, 8], 'every entry')
  t.ok(entries.every(e => Buffer.from(e.frame).equals(patterned(e.seq))), 'old and new frames read back')
  const names = [...(await segmentBytes(segDir)).keys()].sort()
  t.equal(names.length, 3, 'new appends went to a segment of their own')
  t.equal((await segmentBytes(segDir)).get(last!), 5000 + [1, 2, 3, 4, 5].reduce((n, i) => n + (patterned(i).length >= SEGMENT_MIN_FRAME ? patterned(i).length : 0), 0), 'the torn segment was not appended to')
})

t.test('a SIGKILLed node process keeps every large frame it acked', async t => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'deltafs-volume-log-'))
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  const logDir = path.join(dir, 'log')
  const child = spawn(process.execPath, ['--input-type=module', '-e', `
    const { LevelVolumeLog } = await import(${JSON.stringify(new URL('../../src/storage-node/level-volume-log.js', import.meta.url).href)})
    const log = new LevelVolumeLog(${JSON.stringify(logDir)}, 4 << 20)
    await log.open()
    let next = 1
    // Four appends in flight: group commits of several frames each.
    const pusher = async () => {
      for (;;) {
        const n = next++
        const size = n % 8 === 0 ? 100 + n : ${SEGMENT_MIN_FRAME} + (n * 7919) % (200 << 10)
        const frame = Buffer.alloc(size, n & 0xff)
        frame.writeUInt32BE(n, 0)
        const r = await log.append({ volume: 'v', deviceId: 'devA', deviceSeq: n, frame })
        process.stdout.write('acked ' + n + ' ' + r.seq + '\\n')
      }
    }
    await Promise.all([pusher(), pusher(), pusher(), pusher()])
  `], { stdio: ['ignore', 'pipe', 'inherit'] })
  const acked = new Map<number, number>()
  let buffered = ''
  await new Promise<void>((resolve, reject) => {
    child.on('error', reject)
    child.on('exit', () => resolve())
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString()
      const lines = buffered.split('\n')
      buffered = lines.pop()!
      for (const line of lines) {
        const [, n, seq] = line.split(' ')
        acked.set(Number(n), Number(seq))
      }
      if (acked.size >= 150 && child.exitCode === null) child.kill('SIGKILL')
    })
  })
  t.equal(child.signalCode, 'SIGKILL', 'the child was killed, not finished')
  t.ok(acked.size >= 150, `${acked.size} appends acked before the kill`)
  const log = new LevelVolumeLog(logDir)
  await log.open()
  t.teardown(() => log.close())
  const entries = new Map((await log.read('v', 0, 100_000)).map(e => [e.seq, e]))
  const lost = [...acked].filter(([n, seq]) => !Buffer.from(entries.get(seq)?.frame ?? []).equals(patterned(n)))
  t.same(lost, [], 'every acked frame is there, byte for byte, at its seq')
  t.equal(await log.head('v'), entries.size, 'head is the last stored entry')
  const after = await log.append({ volume: 'v', deviceId: 'devA', deviceSeq: 1_000_000, frame: patterned(1_000_000) })
  t.same((await log.read('v', after.seq - 1, 1)).map(e => Buffer.from(e.frame).equals(patterned(1_000_000))), [true], 'appends continue after the crash')
})
