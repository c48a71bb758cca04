// A TCP relay between one mount and the storage node, so a test can cut a
// single mount off the network (and heal it) while the mount keeps running.
import net from 'node:net'

export class TcpProxy {
  private server: net.Server | undefined
  private readonly sockets = new Set<net.Socket>()
  private cutOff = false
  port = 0

  constructor (private readonly targetPort: () => number, private readonly host = '127.0.0.1') {}

  get address (): string { return `${this.host}:${this.port}` }
  get isCut (): boolean { return this.cutOff }

  async start (): Promise<void> {
    const server = net.createServer(client => {
      if (this.cutOff) { client.destroy(); return }
      const upstream = net.connect(this.targetPort(), this.host)
      for (const s of [client, upstream]) {
        this.sockets.add(s)
        s.on('close', () => this.sockets.delete(s))
        s.on('error', () => { client.destroy(); upstream.destroy() })
      }
      client.pipe(upstream)
      upstream.pipe(client)
      client.on('close', () => upstream.destroy())
      upstream.on('close', () => client.destroy())
    })
    await new Promise<void>((resolve, reject) => server.listen(0, this.host, resolve).once('error', reject))
    this.port = (server.address() as net.AddressInfo).port
    this.server = server
  }

  /** Drops every relayed connection and refuses new ones until heal(). */
  cut (): void {
    this.cutOff = true
    for (const s of this.sockets) s.destroy()
  }

  heal (): void { this.cutOff = false }

  async close (): Promise<void> {
    this.cut()
    const server = this.server
    this.server = undefined
    if (server) await new Promise<void>(resolve => server.close(() => resolve()))
  }
}
