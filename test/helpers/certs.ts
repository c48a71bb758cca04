// A throwaway CA with a server certificate for 127.0.0.1 and a client
// certificate, made with the openssl CLI for TLS and mTLS tests.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

export interface TestCerts { dir: string; caCert: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string; otherCaCert: string }

function openssl (cwd: string, args: string[]): void {
  execFileSync('openssl', args, { cwd, stdio: 'ignore' })
}

function makeCa (dir: string, name: string): void {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`])
}

function issue (dir: string, ca: string, name: string, ext: string): void {
  fs.writeFileSync(path.join(dir, `${name}.ext`), ext)
  openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`])
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`])
}

export function makeCerts (dir: string): TestCerts {
  fs.mkdirSync(dir, { recursive: true })
  makeCa(dir, 'ca')
  makeCa(dir, 'other-ca')
  issue(dir, 'ca', 'server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n')
  issue(dir, 'ca', 'client', 'extendedKeyUsage=clientAuth\n')
  const p = (f: string): string => path.join(dir, f)
  return { dir, caCert: p('ca.crt'), serverCert: p('server.crt'), serverKey: p('server.key'), clientCert: p('client.crt'), clientKey: p('client.key'), otherCaCert: p('other-ca.crt') }
}
