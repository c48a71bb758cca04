// The VolumeLog conformance suite against the embedded LevelDB backend.
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { LevelVolumeLog } from '../../src/storage-node/level-volume-log.js'
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
