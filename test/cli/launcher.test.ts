// The daemons' V8 options reach node only through each launcher's command
// line (see src/cli/daemon-flags.ts): the installed `deltafs` command gets
// them from its shebang, which must not drift from the shared list.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import { promisify } from 'node:util'
import t from 'tap'
import { DAEMON_NODE_FLAGS } from '../../src/cli/daemon-flags.js'
import { deltafsBin } from '../helpers/processes.js'

t.test('bin/deltafs.js runs node with the daemon flags', async t => {
  const first = fs.readFileSync(deltafsBin, 'utf8').split('\n')[0]
  t.equal(first, `#!/usr/bin/env -S node ${DAEMON_NODE_FLAGS.join(' ')}`, 'shebang carries DAEMON_NODE_FLAGS')
  t.ok(DAEMON_NODE_FLAGS.length > 0, 'there are flags to carry')
})

t.test('the shebang line works when the file is executed', async t => {
  const { stdout } = await promisify(execFile)(deltafsBin, ['--help'], { timeout: 30_000 })
  t.match(stdout, /Usage: deltafs/, 'deltafs --help through the shebang')
})
