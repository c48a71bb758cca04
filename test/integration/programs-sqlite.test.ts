// Issue 3: sqlite3 keeps a database in a mount intact (rollback journal and
// WAL), and once the writer has exited, the other mount's copy opens,
// passes integrity_check and holds the same rows.
import fsp from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { Cluster } from '../helpers/cluster.js'
import type { MountHandle } from '../helpers/processes.js'
import { assertConverges, mustRun } from '../helpers/programs.js'

const ROWS = 10_000
const PER_TX = 250

function insertScript (journalMode: string): string {
  const lines = [`PRAGMA journal_mode=${journalMode};`, 'CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, payload BLOB);', 'CREATE INDEX IF NOT EXISTS t_name ON t(name);']
  for (let tx = 0; tx < ROWS / PER_TX; tx++) {
    lines.push('BEGIN;')
    for (let i = 0; i < PER_TX; i++) {
      const id = tx * PER_TX + i
      lines.push(`INSERT INTO t (id, name, payload) VALUES (${id}, 'name-${(id * 7919) % ROWS}', randomblob(${(id % 13) * 40}));`)
    }
    lines.push('COMMIT;')
  }
  // Some churn: deletes and updates move pages around.
  lines.push('BEGIN;', `DELETE FROM t WHERE id % 10 = 3;`, `UPDATE t SET name = name || '-x' WHERE id % 10 = 4;`, 'COMMIT;')
  lines.push(`INSERT INTO t (id, name) SELECT id + ${ROWS}, 'again' FROM t WHERE id % 10 = 4 AND id < 2000;`)
  if (journalMode === 'WAL') lines.push('PRAGMA wal_checkpoint(TRUNCATE);')
  return lines.join('\n') + '\n'
}

const EXPECTED_ROWS = ROWS - ROWS / 10 + 200

t.test('sqlite3 in a mount, replicated', async t => {
  t.setTimeout(5 * 60_000)
  const c = await Cluster.start(t, 2)
  const [A, B] = c.mounts as [MountHandle, MountHandle]
  t.teardown(() => { if (!t.passing()) t.comment(c.logs()) })

  for (const mode of ['DELETE', 'WAL']) {
    t.test(`journal_mode=${mode}`, async t => {
      const dir = `db-${mode.toLowerCase()}`
      await fsp.mkdir(path.join(A.mountpoint, dir))
      const dbA = path.join(A.mountpoint, dir, 'test.db')
      const dbB = path.join(B.mountpoint, dir, 'test.db')
      const started = Date.now()
      await mustRun(t, `${ROWS} inserts in transactions of ${PER_TX} in A`, 'sqlite3', ['-bail', dbA], { input: insertScript(mode), timeoutMs: 180_000 })
      t.comment(`sqlite3 on A took ${Date.now() - started} ms`)
      const checkA = await mustRun(t, 'integrity_check on A', 'sqlite3', [dbA, 'PRAGMA integrity_check;', 'SELECT count(*) FROM t;'])
      t.equal(checkA.stdout, `ok\n${EXPECTED_ROWS}\n`, 'A: integrity ok, row count right')
      // Both sqlite3 processes on A have exited: B's copy must become identical.
      await assertConverges(t, 'B holds the same database files', path.join(A.mountpoint, dir), path.join(B.mountpoint, dir), { mtimes: 'files' })
      const checkB = await mustRun(t, 'integrity_check on B', 'sqlite3', ['-readonly', dbB, 'PRAGMA integrity_check;', 'SELECT count(*) FROM t;', 'SELECT sum(length(payload)) = (SELECT sum(length(payload)) FROM t) FROM t;'])
      t.equal(checkB.stdout, `ok\n${EXPECTED_ROWS}\n1\n`, 'B: integrity ok, same row count')
      const dumpA = await mustRun(t, 'dump on A', 'sqlite3', ['-readonly', dbA, 'SELECT id, name, hex(payload) FROM t ORDER BY id;'])
      const dumpB = await mustRun(t, 'dump on B', 'sqlite3', ['-readonly', dbB, 'SELECT id, name, hex(payload) FROM t ORDER BY id;'])
      t.ok(dumpA.stdout.length > 0 && dumpA.stdout === dumpB.stdout, 'B\'s rows equal A\'s')
    })
  }
})
