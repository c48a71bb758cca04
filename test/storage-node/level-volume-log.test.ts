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
