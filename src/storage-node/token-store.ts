// Per-volume access tokens. Only SHA-256 digests are stored (tokens.json,
// mode 0600), so the file does not grant access by itself. The node re-reads
// the file when it changes, so `deltafs token create` works while it runs.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { checkVolumeName } from '../util/names.js'
import { DeltafsError } from '../util/errors.js'

export interface TokenEntry { volume: string; sha256: string; readOnly: boolean; created: string }
export interface Grant { volume: string; readOnly: boolean; tokenId: string }

function digest (token: string): string {
  return createHash('sha256').update(token).digest('hex')
}

export class TokenStore {
  private entries: TokenEntry[] = []
  private loadedMtime = -1

  constructor (readonly file: string) {}

  static forDataDir (dataDir: string): TokenStore {
    return new TokenStore(path.join(dataDir, 'tokens.json'))
  }

  /** Makes a new token; returns it in clear text, once. */
  create (volume: string, readOnly: boolean): string {
    checkVolumeName(volume)
    this.reload()
    const token = `dfs_${randomBytes(32).toString('base64url')}`
    this.entries.push({ volume, sha256: digest(token), readOnly, created: new Date().toISOString() })
    fs.mkdirSync(path.dirname(this.file), { recursive: true })
    const tmp = `${this.file}.${process.pid}.tmp`
    fs.writeFileSync(tmp, JSON.stringify(this.entries, null, 2) + '\n', { mode: 0o600 })
    fs.renameSync(tmp, this.file)
    return token
  }

  /** True when the volume has at least one token, and so requires one. */
  hasTokens (volume: string): boolean {
    this.reload()
    return this.entries.some(e => e.volume === volume)
  }

  /** The grant a token gives on a volume, or undefined. */
  check (volume: string, token: string | undefined): Grant | undefined {
    if (!token) return undefined
    this.reload()
    const d = Buffer.from(digest(token), 'hex')
    for (const e of this.entries) {
      if (e.volume === volume && timingSafeEqual(Buffer.from(e.sha256, 'hex'), d)) {
        return { volume, readOnly: e.readOnly, tokenId: e.sha256.slice(0, 16) }
      }
    }
    return undefined
  }

  private reload (): void {
    let mtime: number
    try {
      mtime = fs.statSync(this.file).mtimeMs
    } catch {
      this.entries = []
      this.loadedMtime = -1
      return
    }
    if (mtime === this.loadedMtime) return
    try {
      const parsed = JSON.parse(fs.readFileSync(this.file, 'utf8')) as TokenEntry[]
      if (!Array.isArray(parsed)) throw new Error('not a list')
      this.entries = parsed
      this.loadedMtime = mtime
    } catch (err) {
      throw new DeltafsError('AUTH', `token file ${this.file} is unreadable: ${(err as Error).message}`, { cause: err })
    }
  }
}
