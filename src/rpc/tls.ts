// Transport credentials: TLS (and mTLS) from PEM files, plaintext only where
// it cannot be overheard (loopback) unless the user insists with --insecure.
import fs from 'node:fs'
import * as grpc from '@grpc/grpc-js'
import { isLoopbackHost, parseHostPort } from './service.js'
import { DeltafsError } from '../util/errors.js'
import type { Logger } from '../util/log.js'

function pem (file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file)
  } catch (err) {
    throw new DeltafsError('TLS', `cannot read ${what} ${file}: ${(err as Error).message}`, { cause: err })
  }
}

export interface ServerTlsOptions { cert?: string; key?: string; clientCa?: string; insecure?: boolean }

export function serverCredentials (listen: string, o: ServerTlsOptions, log: Logger): grpc.ServerCredentials {
  if (o.cert || o.key) {
    if (!o.cert || !o.key) throw new DeltafsError('TLS', 'TLS needs both --tls-cert and --tls-key')
    const clientCa = o.clientCa ? pem(o.clientCa, 'client CA') : null
    return grpc.ServerCredentials.createSsl(clientCa, [{ cert_chain: pem(o.cert, 'certificate'), private_key: pem(o.key, 'private key') }], clientCa !== null)
  }
  if (o.clientCa) throw new DeltafsError('TLS', '--tls-client-ca needs --tls-cert and --tls-key')
  const { host } = parseHostPort(listen)
  if (!isLoopbackHost(host)) {
    if (!o.insecure) throw new DeltafsError('TLS', `refusing plaintext on ${listen}: give --tls-cert and --tls-key, or --insecure to accept that anyone on the network can read and alter the traffic`)
    log.warn({ listen }, 'serving PLAINTEXT on a non-loopback address (--insecure): traffic can be read and altered')
  }
  return grpc.ServerCredentials.createInsecure()
}

export interface ClientTlsOptions { ca?: string; cert?: string; key?: string; insecure?: boolean }

export function clientCredentials (node: string, o: ClientTlsOptions, log: Logger): grpc.ChannelCredentials {
  if (o.ca || o.cert || o.key) {
    if (Boolean(o.cert) !== Boolean(o.key)) throw new DeltafsError('TLS', 'a client certificate needs both --tls-cert and --tls-key')
    return grpc.credentials.createSsl(o.ca ? pem(o.ca, 'CA certificate') : null, o.key ? pem(o.key, 'private key') : null, o.cert ? pem(o.cert, 'certificate') : null)
  }
  const { host } = parseHostPort(node)
  if (!isLoopbackHost(host)) {
    if (!o.insecure) throw new DeltafsError('TLS', `refusing plaintext to ${node}: give --tls-ca (the node's CA certificate), or --insecure`)
    log.warn({ node }, 'connecting in PLAINTEXT to a non-loopback node (--insecure)')
  }
  return grpc.credentials.createInsecure()
}
