// Issue 6: TLS and mTLS, per-volume tokens (read-write and read-only), and
// end-to-end encryption, each through real mounts and a real node.
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import * as grpc from '@grpc/grpc-js'
import t from 'tap'
import { Cluster } from '../helpers/cluster.js'
import { makeCerts } from '../helpers/certs.js'
import { runDeltafs, runToEnd, sleep, tempDir, waitFor, freePort } from '../helpers/processes.js'
import { SyncStub } from '../../src/rpc/client.js'

async function readWhenThere (file: string, timeoutMs = 10_000): Promise<string> {
  return waitFor(`${file} to arrive`, () => fsp.readFile(file, 'utf8').catch(() => ''), timeoutMs)
}

function statusCode (err: unknown): number | undefined {
  return (err as grpc.ServiceError | undefined)?.code
}

t.test('TLS: mounts sync over TLS; plaintext and wrong-CA clients get nothing', async t => {
  const certs = makeCerts(tempDir())
  t.teardown(() => fs.rmSync(certs.dir, { recursive: true, force: true }))
  const c = new Cluster()
  t.teardown(() => c.destroy())
  c.nodeArgs = ['--tls-cert', certs.serverCert, '--tls-key', certs.serverKey]
  c.mountArgs = ['--tls-ca', certs.caCert]
  await c.startNode()
  t.match(c.node!.log(), /"tls":true/, 'the node says it serves TLS')
  const A = await c.addMount()
  const B = await c.addMount()
  await fsp.writeFile(path.join(A.mountpoint, 'tls.txt'), 'over TLS\n')
  t.equal(await readWhenThere(path.join(B.mountpoint, 'tls.txt')), 'over TLS\n', 'B received the file over TLS')

  const plain = new SyncStub(c.node!.address)
  await t.rejects(plain.info('vol', 3000), 'a plaintext client cannot talk to the TLS node')
  plain.close()
  const wrongCa = new SyncStub(c.node!.address, { credentials: grpc.credentials.createSsl(fs.readFileSync(certs.otherCaCert)) })
  await t.rejects(wrongCa.info('vol', 3000), 'a client that does not trust the node\'s CA gets nothing')
  wrongCa.close()
})

t.test('mTLS: only clients with a certificate from the client CA get in', async t => {
  const certs = makeCerts(tempDir())
  t.teardown(() => fs.rmSync(certs.dir, { recursive: true, force: true }))
  const c = new Cluster()
  t.teardown(() => c.destroy())
  c.nodeArgs = ['--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-client-ca', certs.caCert]
  c.mountArgs = ['--tls-ca', certs.caCert, '--tls-cert', certs.clientCert, '--tls-key', certs.clientKey]
  await c.startNode()
  const A = await c.addMount()
  const B = await c.addMount()
  await fsp.writeFile(path.join(A.mountpoint, 'mtls.txt'), 'mutual\n')
  t.equal(await readWhenThere(path.join(B.mountpoint, 'mtls.txt')), 'mutual\n', 'mounts with client certificates sync')

  const noCert = new SyncStub(c.node!.address, { credentials: grpc.credentials.createSsl(fs.readFileSync(certs.caCert)) })
  await t.rejects(noCert.info('vol', 3000), 'a TLS client without a client certificate is refused')
  noCert.close()
})

t.test('tokens: read-write, read-only, missing and wrong', async t => {
  const c = new Cluster()
  t.teardown(() => c.destroy())
  await c.startNode()
  const created = await runToEnd(['token', 'create', 'vol', '--data', c.node!.dataDir])
  t.equal(created.code, 0, 'token create exits 0')
  const rw = created.out.trim().split('\n').pop()!
  const ro = (await runToEnd(['token', 'create', 'vol', '--data', c.node!.dataDir, '--read-only'])).out.trim().split('\n').pop()!
  t.match(rw, /^dfs_[A-Za-z0-9_-]{40,}$/, 'a token is printed')
  const stored = fs.readFileSync(path.join(c.node!.dataDir, 'tokens.json'), 'utf8')
  t.notOk(stored.includes(rw) || stored.includes(ro), 'tokens.json holds no token in clear')
  t.equal(fs.statSync(path.join(c.node!.dataDir, 'tokens.json')).mode & 0o777, 0o600, 'tokens.json is private')

  const tokenFile = path.join(c.dir, 'ro.token')
  fs.writeFileSync(tokenFile, ro + '\n', { mode: 0o600 })
  const A = await c.addMount('a', undefined, [], { DELTAFS_TOKEN: rw })
  const R = await c.addMount('r', undefined, ['--token-file', tokenFile])
  t.notMatch(String(A.child.spawnargs), /dfs_/, 'the token is not on the command line')
  await fsp.writeFile(path.join(A.mountpoint, 'shared.txt'), 'from A\n')
  t.equal(await readWhenThere(path.join(R.mountpoint, 'shared.txt')), 'from A\n', 'the read-only mount receives')
  await waitFor('R to report read-only', async () => (await R.status()).readOnly === true, 5000)
  await fsp.writeFile(path.join(R.mountpoint, 'local-only.txt'), 'stays here\n')
  await sleep(1000)
  t.notOk(fs.existsSync(path.join(A.mountpoint, 'local-only.txt')), 'a read-only mount pushes nothing')

  const anonymous = new SyncStub(c.node!.address)
  await t.rejects(anonymous.info('vol'), { code: grpc.status.PERMISSION_DENIED }, 'no token: PERMISSION_DENIED')
  const received: unknown[] = []
  const sub = anonymous.subscribe({ volume: 'vol', fromSeq: 0, deviceId: 'intruder' })
  sub.on('data', d => received.push(d))
  const subErr = await new Promise<unknown>(resolve => sub.on('error', resolve))
  t.equal(statusCode(subErr), grpc.status.PERMISSION_DENIED, 'subscribe without a token: PERMISSION_DENIED')
  t.equal(received.length, 0, 'and nothing from the volume was sent')
  anonymous.close()

  const wrong = new SyncStub(c.node!.address, { token: 'dfs_wrong' })
  await t.rejects(wrong.info('vol'), { code: grpc.status.PERMISSION_DENIED, details: /missing or wrong access token/ }, 'wrong token: PERMISSION_DENIED with a clear message')
  wrong.close()

  const reader = new SyncStub(c.node!.address, { token: ro })
  const push = reader.push('vol')
  const pushErr = await new Promise<unknown>(resolve => { push.on('error', resolve); push.on('data', () => undefined) })
  t.equal(statusCode(pushErr), grpc.status.PERMISSION_DENIED, 'a read-only token cannot push')
  t.match((pushErr as grpc.ServiceError).details, /read-only/, 'and is told why')
  const batch = reader.pushBatch('vol')
  const batchErr = await new Promise<unknown>(resolve => { batch.on('error', resolve); batch.on('data', () => undefined) })
  t.equal(statusCode(batchErr), grpc.status.PERMISSION_DENIED, 'nor push batches')
  reader.close()

  fs.mkdirSync(path.join(c.dir, 'mnt-bad'))
  const bad = await runToEnd(['mount', 'vol', path.join(c.dir, 'mnt-bad'), '--node', c.node!.address, '--data', path.join(c.dir, 'data-bad')], { DELTAFS_TOKEN: 'dfs_nope' })
    .catch(err => ({ code: -1, out: String(err) }))
  t.equal(bad.code, 3, 'a mount with a wrong token stops with exit code 3')
  t.match(bad.out, /refused access: missing or wrong access token/, 'and says why')
})

t.test('end-to-end encryption: wrong keys refused, the node sees no plaintext', async t => {
  const c = new Cluster()
  t.teardown(() => c.destroy())
  await c.startNode()
  const k1 = path.join(c.dir, 'k1.key')
  const k2 = path.join(c.dir, 'k2.key')
  fs.writeFileSync(k1, randomBytes(32).toString('hex'), { mode: 0o600 })
  fs.writeFileSync(k2, randomBytes(32).toString('hex'), { mode: 0o600 })
  const A = await c.addMount('a', undefined, ['--key-file', k1])
  const B = await c.addMount('b', undefined, ['--key-file', k1])
  const marker = `MARKER${randomBytes(8).toString('hex')}`
  await fsp.mkdir(path.join(A.mountpoint, `dir-${marker}`))
  await fsp.writeFile(path.join(A.mountpoint, `dir-${marker}`, `name-${marker}.txt`), `content ${marker} inside\n`)
  t.equal(await readWhenThere(path.join(B.mountpoint, `dir-${marker}`, `name-${marker}.txt`)), `content ${marker} inside\n`, 'a mount with the same key decrypts')

  for (const [label, args, env, why] of [
    ['wrong key', ['--key-file', k2], {}, /wrong key for volume "vol"/],
    ['no key', [], {}, /volume "vol" is encrypted/],
    ['passphrase that gives another key', [], { DELTAFS_PASSPHRASE: 'correct horse battery staple' }, /wrong key for volume "vol"/],
  ] as const) {
    const name = label.replace(/\W+/g, '-')
    const data = path.join(c.dir, `data-${name}`)
    const mnt = path.join(c.dir, `mnt-${name}`)
    fs.mkdirSync(mnt)
    const r = await runToEnd(['mount', 'vol', mnt, '--node', c.node!.address, '--data', data, ...args], env)
    t.equal(r.code, 3, `${label}: the mount stops with exit code 3`)
    t.match(r.out, why, `${label}: ${r.out.trim().split('\n').pop() ?? ''}`)
    t.same(fs.readdirSync(path.join(data, 'vol', 'files')), [], `${label}: nothing was written into its tree`)
  }

  await c.node!.stop()
  const needle = Buffer.from(marker)
  const files = fs.readdirSync(c.node!.dataDir, { recursive: true, encoding: 'utf8' }).map(f => path.join(c.node!.dataDir, f)).filter(f => fs.statSync(f).isFile())
  t.ok(files.length > 0, `the node data dir holds ${files.length} files`)
  const leaking = files.filter(f => fs.readFileSync(f).includes(needle))
  t.same(leaking, [], 'no file of the node contains the marker from names or contents')
})

t.test('passphrase-derived keys: two mounts with one passphrase sync', async t => {
  const c = await Cluster.start(t, 0, 'pvol')
  const env = { DELTAFS_PASSPHRASE: 'a long enough passphrase' }
  const A = await c.addMount('a', undefined, [], env)
  const B = await c.addMount('b', undefined, [], env)
  await fsp.writeFile(path.join(A.mountpoint, 'p.txt'), 'scrypt\n')
  t.equal(await readWhenThere(path.join(B.mountpoint, 'p.txt')), 'scrypt\n', 'B decrypts with the same passphrase')
  const short = await runToEnd(['mount', 'pvol', path.join(c.dir, 'x'), '--node', c.node!.address, '--data', path.join(c.dir, 'dx')], { DELTAFS_PASSPHRASE: 'short' })
  t.equal(short.code, 2, 'a too short passphrase is refused')
  t.match(short.out, /at least 8 characters/, 'with a clear message')
})

t.test('plaintext only on loopback unless --insecure', async t => {
  const dir = tempDir()
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const serve = await runToEnd(['serve', '--data', dir, '--listen', '0.0.0.0:0'])
  t.equal(serve.code, 2, 'serve on 0.0.0.0 without TLS exits 2')
  t.match(serve.out, /refusing plaintext on 0\.0\.0\.0:0/, serve.out.trim())
  fs.mkdirSync(path.join(dir, 'mnt'))
  const mount = await runToEnd(['mount', 'vol', path.join(dir, 'mnt'), '--node', '192.0.2.1:7070', '--data', path.join(dir, 'data')])
  t.equal(mount.code, 2, 'a mount of a non-loopback node without TLS exits 2')
  t.match(mount.out, /refusing plaintext to 192\.0\.2\.1:7070/, mount.out.trim())

  const port = await freePort()
  const insecure = runDeltafs(['serve', '--data', dir, '--listen', `0.0.0.0:${port}`, '--insecure'], path.join(dir, 'insecure.log'))
  t.teardown(() => insecure.stop())
  await waitFor('the --insecure node to listen', () => /"msg":"listening"/.test(insecure.log()), 10_000)
  t.match(insecure.log(), /PLAINTEXT on a non-loopback address/, 'it warns')
  t.match(insecure.log(), /"requireTokens":true/, 'and requires tokens for every volume')
})

t.test('limits: streams per token are capped', async t => {
  const c = new Cluster()
  t.teardown(() => c.destroy())
  c.nodeArgs = ['--max-connections-per-token', '2']
  await c.startNode()
  const stub = new SyncStub(c.node!.address)
  t.teardown(() => stub.close())
  const subs = [0, 1, 2].map(i => stub.subscribe({ volume: 'vol', fromSeq: 0, deviceId: `s${i}` }))
  const third = await new Promise<unknown>(resolve => { subs[2]!.on('error', resolve); subs[2]!.on('data', () => undefined) })
  t.equal(statusCode(third), grpc.status.RESOURCE_EXHAUSTED, 'the third stream is refused with RESOURCE_EXHAUSTED')
  t.match((third as grpc.ServiceError).details, /too many open streams/, 'with a clear message')
  for (const s of subs.slice(0, 2)) { s.on('error', () => undefined); s.cancel() }
  await sleep(200)
  const again = stub.subscribe({ volume: 'vol', fromSeq: 0, deviceId: 's3' })
  again.on('error', () => undefined)
  await sleep(300)
  t.equal(again.destroyed, false, 'after the others close, a new stream is accepted')
  again.cancel()
})
