// The gate that lets local changes and remote applies take turns.
import t from 'tap'
import { RwGate } from '../../src/util/rw-gate.js'

const tick = () => new Promise(resolve => setImmediate(resolve))

t.test('shared holders run together, an exclusive holder runs alone', async t => {
  const gate = new RwGate()
  const log: string[] = []
  let releaseShared!: () => void
  const sharedDone = new Promise<void>(resolve => { releaseShared = resolve })
  const s1 = gate.withShared(async () => { log.push('s1 in'); await sharedDone; log.push('s1 out') })
  const s2 = gate.withShared(async () => { log.push('s2 in'); await sharedDone; log.push('s2 out') })
  await tick()
  t.same(log, ['s1 in', 's2 in'], 'two shared holders at once')
  const x = gate.withExclusive(async () => { log.push('x in'); await tick(); log.push('x out') })
  // Arrives after the exclusive waiter: must wait for it (no starvation).
  const s3 = gate.withShared(async () => { log.push('s3 in') })
  await tick()
  t.notOk(log.includes('x in'), 'the exclusive holder waits for the shared ones')
  t.notOk(log.includes('s3 in'), 'a later shared holder queues behind the waiting exclusive one')
  releaseShared()
  await Promise.all([s1, s2, x, s3])
  t.same(log, ['s1 in', 's2 in', 's1 out', 's2 out', 'x in', 'x out', 's3 in'], 'served in arrival order')
})

t.test('a failing holder releases the gate', async t => {
  const gate = new RwGate()
  await t.rejects(gate.withExclusive(async () => { throw new Error('boom') }), /boom/)
  t.equal(await gate.withShared(async () => 42), 42, 'the gate is free again')
})
