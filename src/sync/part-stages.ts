// Where a file sent whole in parts is put together before it replaces its
// name (Applier). A transaction too large for one frame reaches the others
// as several (Transaction.part): applied in place, a file sent whole would
// show there emptied, then growing part by part. Staged, it shows old, then
// new. Each stage is a data file and a small description beside it, both
// outside the volume, so that a restarted mount goes on with the next part.
import { createHash } from 'node:crypto'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { logger } from '../util/log.js'

const log = logger('stages')

export interface Stage {
  /** The volume path the staged file replaces at its last part. */
  path: string
  /** The author, and the device seq and number of the last part written into the stage. */
  deviceId: string
  deviceSeq: number
  part: number
  /** The volume seq of that part: the record version of the file if it goes in place early. */
  seq: number
  /** The staging file. */
  file: string
}

function isStage (v: unknown): v is Omit<Stage, 'file'> {
  const s = v as Partial<Stage>
  return typeof s?.path === 'string' && typeof s.deviceId === 'string' &&
    [s.deviceSeq, s.part, s.seq].every(n => Number.isSafeInteger(n) && (n as number) >= 0)
}

export class PartStages {
  private readonly byPath = new Map<string, Stage>()

  constructor (readonly dir: string) {}

  /** Loads the stages a previous run left; drops halves of them (a crash mid-step). */
  async open (): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 })
    const names = new Set(await fsp.readdir(this.dir))
    for (const name of names) {
      const full = path.join(this.dir, name)
      if (name.endsWith('.json')) {
        const stage = await fsp.readFile(full, 'utf8').then(t => JSON.parse(t) as unknown, () => undefined)
        const file = full.slice(0, -'.json'.length) + '.data'
        if (isStage(stage) && names.has(path.basename(file)) && this.fileOf(stage.path) === file) {
          this.byPath.set(stage.path, { ...stage, file })
        } else {
          // Its data went in place already (or never was): the next part, or the transaction again, applies as usual.
          await fsp.rm(full, { force: true })
        }
      }
    }
    for (const name of names) {
      if (!name.endsWith('.data')) continue
      const full = path.join(this.dir, name)
      if (![...this.byPath.values()].some(s => s.file === full)) await fsp.rm(full, { force: true })
    }
    if (this.byPath.size > 0) log.info({ files: [...this.byPath.keys()] }, 'files received in part are staged: their next parts complete them')
  }

  get size (): number { return this.byPath.size }

  get (volPath: string): Stage | undefined { return this.byPath.get(volPath) }

  /** Stages at or under one of paths. */
  within (paths: string[]): Stage[] {
    return [...this.byPath.values()].filter(s => paths.some(p => s.path === p || s.path.startsWith(p + '/')))
  }

  /** A fresh stage for path: its data file is empty or missing until the caller writes it, then calls note. */
  async begin (volPath: string, from: Omit<Stage, 'path' | 'file'>): Promise<Stage> {
    const file = this.fileOf(volPath)
    await this.forget(volPath)
    await fsp.rm(file, { force: true })
    return { path: volPath, file, ...from }
  }

  /** Records that the stage holds its parts up to stage.part: written after the data, so a crash repeats a part, never skips one. */
  async note (stage: Stage): Promise<void> {
    const { file, ...rest } = stage
    const meta = file.slice(0, -'.data'.length) + '.json'
    await fsp.writeFile(meta + '.tmp', JSON.stringify(rest))
    await fsp.rename(meta + '.tmp', meta)
    this.byPath.set(stage.path, stage)
  }

  /** Forgets a stage whose data went in place (renamed away) or is not wanted. */
  async forget (volPath: string): Promise<void> {
    const stage = this.byPath.get(volPath)
    this.byPath.delete(volPath)
    const file = stage?.file ?? this.fileOf(volPath)
    await fsp.rm(file.slice(0, -'.data'.length) + '.json', { force: true })
    await fsp.rm(file, { force: true })
  }

  /** One stage per path, named by its hash: paths can be longer than a file name. */
  private fileOf (volPath: string): string {
    return path.join(this.dir, createHash('sha256').update(volPath).digest('hex').slice(0, 32) + '.data')
  }
}
