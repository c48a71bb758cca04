// A storage node plus mounts of one volume in a temp dir, torn down with the test.
import fs from 'node:fs'
import path from 'node:path'
import type { Test } from 'tap'
import { type MountHandle, type NodeHandle, startMount, startNode, tempDir } from './processes.js'
import { SyncStub } from '../../src/rpc/client.js'
import { TcpProxy } from './tcp-proxy.js'

export class Cluster {
  readonly dir = tempDir()
  node: NodeHandle | undefined
  readonly mounts: MountHandle[] = []
  private n = 0

  constructor (readonly volume = 'vol') {}

  static async start (t: Test, mounts: number, volume = 'vol', mountArgs: string[] = []): Promise<Cluster> {
    const c = new Cluster(volume)
    c.mountArgs = mountArgs
    t.teardown(() => c.destroy())
    await c.startNode()
    for (let i = 0; i < mounts; i++) await c.addMount()
    return c
  }

  /**
   * A node and `mounts` mounts, each reaching the node through its own
   * TcpProxy (proxies[i] for mounts[i]), so a test can cut one mount off.
   * Logs are printed if the test failed; everything is stopped at teardown.
   */
  static async startBehindProxies (t: Test, mounts: number): Promise<{ c: Cluster; proxies: TcpProxy[] }> {
    const c = new Cluster()
    const proxies: TcpProxy[] = []
    t.teardown(async () => {
      if (!t.passing()) t.comment(c.logs())
      await c.destroy()
      await Promise.all(proxies.map(p => p.close()))
    })
    await c.startNode()
    for (let i = 0; i < mounts; i++) {
      const proxy = new TcpProxy(() => c.node!.port)
      await proxy.start()
      proxies.push(proxy)
      await c.addMount(undefined, proxy.address)
    }
    return { c, proxies }
  }

  /** Extra arguments for every `deltafs serve` and `deltafs mount` this cluster starts. */
  nodeArgs: string[] = []
  mountArgs: string[] = []
  mountEnv: NodeJS.ProcessEnv = {}

  async startNode (port = 0): Promise<NodeHandle> {
    this.node = await startNode(path.join(this.dir, 'node'), port || this.node?.port || 0, this.nodeArgs)
    return this.node
  }

  async addMount (name = String.fromCharCode(97 + this.n++), node = this.node!.address, extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<MountHandle> {
    const m = await startMount(this.volume, path.join(this.dir, `mnt-${name}`), path.join(this.dir, `data-${name}`), node, [...this.mountArgs, ...extraArgs], { ...this.mountEnv, ...env })
    this.mounts.push(m)
    return m
  }

  async headSeq (): Promise<number> {
    const stub = new SyncStub(this.node!.address)
    // Generous: on a loaded 2-core machine the node has been seen to take
    // over 5 s to answer a new connection.
    try { return (await stub.info(this.volume, 20_000)).headSeq } finally { stub.close() }
  }

  /** Every log line of every process, for a failing test's diagnostics. */
  logs (): string {
    return fs.readdirSync(this.dir, { recursive: true, encoding: 'utf8' })
      // Only the processes' own logs: LevelDB keeps binary files named *.log too.
      .filter(f => /^(node|mount)-\d+\.log$/.test(path.basename(f)))
      .map(f => `== ${f}\n${fs.readFileSync(path.join(this.dir, f), 'utf8').split('\n').slice(-40).join('\n')}`)
      .join('\n')
  }

  async destroy (): Promise<void> {
    await Promise.all(this.mounts.map(m => m.stop()))
    await this.node?.stop()
    if (!process.env.DELTAFS_KEEP_TEST_DIRS) fs.rmSync(this.dir, { recursive: true, force: true })
  }
}
