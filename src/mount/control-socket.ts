// Where a running mount answers `deltafs status`: an HTTP endpoint on a Unix
// socket in the runtime directory, named after the mount point.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { DeltafsError } from '../util/errors.js'

export function runtimeDir (): string {
  if (process.env.DELTAFS_RUNTIME_DIR) return process.env.DELTAFS_RUNTIME_DIR
  if (process.env.XDG_RUNTIME_DIR) return path.join(process.env.XDG_RUNTIME_DIR, 'deltafs')
  if (process.getuid?.() === 0) return '/run/deltafs'
  return path.join(os.tmpdir(), `deltafs-${process.getuid?.() ?? 'user'}`)
}

export function controlSocketPath (mountpoint: string): string {
  const id = createHash('sha256').update(path.resolve(mountpoint)).digest('hex').slice(0, 24)
  return path.join(runtimeDir(), `${id}.sock`)
}

export class ControlServer {
  private server: http.Server | undefined

  constructor (private readonly socketPath: string, private readonly status: () => unknown) {}

  async open (): Promise<void> {
    if (this.server) return
    fs.mkdirSync(path.dirname(this.socketPath), { recursive: true, mode: 0o700 })
    fs.rmSync(this.socketPath, { force: true })
    const server = http.createServer((req, res) => {
      if (req.url === '/status') {
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify(this.status()))
      } else {
        res.statusCode = 404
        res.end()
      }
    })
    await new Promise<void>((resolve, reject) => server.listen(this.socketPath, resolve).once('error', reject))
    this.server = server
  }

  async close (): Promise<void> {
    const server = this.server
    if (!server) return
    this.server = undefined
    await new Promise<void>(resolve => server.close(() => resolve()))
    fs.rmSync(this.socketPath, { force: true })
  }
}

/** Asks the mount daemon serving `mountpoint` for its status. */
export function fetchStatus (mountpoint: string): Promise<Record<string, unknown>> {
  const socketPath = controlSocketPath(mountpoint)
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: '/status', timeout: 5000 }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', chunk => { body += chunk })
      res.on('end', () => {
        try { resolve(JSON.parse(body) as Record<string, unknown>) } catch (err) { reject(err) }
      })
    })
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', err => {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'ECONNREFUSED') {
        reject(new DeltafsError('NOT_RUNNING', `no deltafs mount is running at ${path.resolve(mountpoint)}`))
      } else {
        reject(err)
      }
    })
  })
}
