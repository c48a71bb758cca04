// /sbin/mount.deltafs: lets `mount -t deltafs HOST:PORT/VOLUME DIR -o …`
// work. mount(8) expects the helper to return once the filesystem is
// mounted, so the daemon is started detached and the helper waits for the
// mount to appear (or for the daemon to fail, whose message it relays).
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { DAEMON_NODE_FLAGS } from './daemon-flags.js'

const OPTION_FLAGS: Record<string, string> = {
  data: '--data', key: '--key-file', passphrase: '--passphrase-file', token: '--token-file',
  'tls-ca': '--tls-ca', 'tls-cert': '--tls-cert', 'tls-key': '--tls-key',
}
// Generic mount(8) options that mean nothing to deltafs.
const IGNORED = new Set(['rw', 'defaults', 'auto', 'noauto', 'user', 'nouser', '_netdev', 'nofail', 'exec', 'noexec', 'suid', 'nosuid', 'dev', 'nodev'])

function fail (message: string): never {
  process.stderr.write(`mount.deltafs: ${message}\n`)
  process.exit(1)
}

function expandHome (p: string): string {
  return p.startsWith('~/') ? path.join(os.homedir(), p.slice(2)) : p
}

function isMounted (dir: string): boolean {
  return fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').some(l => l.split(' ')[1] === dir)
}

function parseArgs (argv: string[]): { node: string; volume: string; target: string; flags: string[] } {
  const positional: string[] = []
  const options: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '-o') options.push(...(argv[++i] ?? '').split(',').filter(Boolean))
    else if (a.startsWith('-o')) options.push(...a.slice(2).split(',').filter(Boolean))
    else if (['-f', '-n', '-s', '-v'].includes(a)) continue // fake, no-mtab, sloppy, verbose
    else positional.push(a)
  }
  if (positional.length !== 2) fail('usage: mount.deltafs HOST:PORT/VOLUME MOUNTPOINT [-o data=DIR,key=FILE,token=FILE,tls-ca=FILE,insecure,allow_other,attr_cache=SECONDS]')
  const m = /^(.+:\d+)\/([^/]+)$/.exec(positional[0]!)
  if (!m) fail(`source "${positional[0]}" is not HOST:PORT/VOLUME`)
  const flags: string[] = []
  for (const opt of options) {
    const [k, v] = opt.split('=', 2) as [string, string | undefined]
    if (IGNORED.has(k)) continue
    if (k === 'insecure') { flags.push('--insecure'); continue }
    if (k === 'allow_other') { flags.push('--allow-other'); continue }
    if (k === 'attr_cache' && v !== undefined) { flags.push('--attr-cache', v); continue }
    const flag = OPTION_FLAGS[k]
    if (!flag || v === undefined) fail(`unknown option "${opt}"`)
    flags.push(flag, path.resolve(expandHome(v)))
  }
  return { node: m[1]!, volume: m[2]!, target: path.resolve(positional[1]!), flags }
}

const { node, volume, target, flags } = parseArgs(process.argv.slice(2))
const deltafs = fileURLToPath(new URL('../../../bin/deltafs.js', import.meta.url))
const logDir = process.getuid?.() === 0 ? '/var/log/deltafs' : path.join(os.homedir(), '.local', 'state', 'deltafs')
fs.mkdirSync(logDir, { recursive: true })
const logFile = path.join(logDir, `mount-${volume}-${target.replace(/[^A-Za-z0-9]+/g, '_')}.log`)
const out = fs.openSync(logFile, 'a')
const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, deltafs, 'mount', volume, target, '--node', node, ...flags], {
  detached: true, stdio: ['ignore', out, out],
})
child.unref()
let exited: number | null = null
child.on('exit', code => { exited = code ?? 1 })
const deadline = Date.now() + 20_000
const timer = setInterval(() => {
  if (isMounted(target)) {
    clearInterval(timer)
    process.exit(0)
  }
  if (exited !== null || Date.now() > deadline) {
    clearInterval(timer)
    const lines = fs.readFileSync(logFile, 'utf8').trim().split('\n')
    const plain = lines.filter(l => l.startsWith('deltafs:')).pop()
    fail(`${plain ?? 'the mount daemon did not come up'} (log: ${logFile})`)
  }
}, 50)
