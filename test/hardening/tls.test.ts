/**
 * TLS on both listeners and to upstreams, with certificates made by the openssl CLI for this run:
 * TLS 1.2+ only (1.0/1.1 handshakes fail), the certificate reloaded when its files change (open
 * connections kept, a broken pair ignored), mutual TLS on the admin listener when `caFile` is set,
 * and upstream certificates always verified (`upstream.caFile` adds a private CA).
 */
import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import { Agent, fetch as ufetch } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'

const dir = mkdtempSync(path.join(tmpdir(), 'mcp-tls-'))
const f = (n: string): string => path.join(dir, n)

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' })
}

/** A CA, two server certificates for 127.0.0.1/localhost, a client certificate. */
function makeCerts(): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=mcp-test-ca')
  writeFileSync(f('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  writeFileSync(f('client.ext'), 'extendedKeyUsage=clientAuth\n')
  for (const [name, cn, ext] of [['srv1', 'mcp-server-1', 'san.ext'], ['srv2', 'mcp-server-2', 'san.ext'], ['client', 'mcp-client', 'client.ext']] as const) {
    openssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`)
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', ext)
  }
}

/** Installs a certificate pair the way a secret rotation does: write aside, then rename over. */
function install(name: string, as: string): void {
  writeFileSync(f(`${as}.crt.tmp`), readFileSync(f(`${name}.crt`)))
  writeFileSync(f(`${as}.key.tmp`), readFileSync(f(`${name}.key`)))
  renameSync(f(`${as}.key.tmp`), f(`${as}.key`))
  renameSync(f(`${as}.crt.tmp`), f(`${as}.crt`))
}

function cnOf(pem: Buffer | string): string {
  return new X509Certificate(pem).subject.replace(/^CN=/, '')
}

/** Handshakes and returns the peer certificate's CN, or the error code. */
function handshake(port: number, opts: tls.ConnectionOptions = {}): Promise<{ cn?: string; error?: string; protocol?: string | null }> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(f('ca.crt')), servername: 'localhost', ...opts })
    s.once('secureConnect', () => {
      const cert = s.getPeerCertificate()
      resolve({ cn: typeof cert.subject?.CN === 'string' ? cert.subject.CN : String(cert.subject?.CN), protocol: s.getProtocol() })
      s.end()
    })
    s.once('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }))
  })
}

beforeAll(() => {
  makeCerts()
  install('srv1', 'live')
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('TLS listeners', () => {
  let tg: TestGateway
  let port: number
  let adminPort: number
  let agent: Agent

  beforeAll(async () => {
    tg = await startGateway({
      server: { tls: { certFile: f('live.crt'), keyFile: f('live.key') } },
      admin: { tls: { certFile: f('srv1.crt'), keyFile: f('srv1.key'), caFile: f('ca.crt') } },
    })
    port = Number(new URL(tg.url).port)
    adminPort = Number(new URL(tg.adminUrl).port)
    agent = new Agent({ connect: { ca: readFileSync(f('ca.crt')) } })
  })
  afterAll(async () => {
    await agent?.close()
    await tg?.close()
  })

  it('serves HTTPS on the data plane with TLS 1.2 or 1.3', async () => {
    const r = await ufetch(`https://127.0.0.1:${port}/v1/models`, { dispatcher: agent, headers: { authorization: `Bearer ${ADMIN_KEY}` } })
    expect(r.status).toBe(200)
    const h12 = await handshake(port, { maxVersion: 'TLSv1.2' })
    expect(h12).toMatchObject({ cn: 'mcp-server-1', protocol: 'TLSv1.2' })
    expect((await handshake(port)).protocol).toBe('TLSv1.3')
  })

  it('refuses TLS 1.0 and 1.1 handshakes (the server answers protocol_version)', async () => {
    // Control: this client really offers TLS 1.0/1.1 (a permissive server accepts it).
    const lax = https.createServer({ cert: readFileSync(f('srv1.crt')), key: readFileSync(f('srv1.key')), minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' })
    await new Promise<void>((r) => lax.listen(0, '127.0.0.1', r))
    try {
      for (const v of ['TLSv1', 'TLSv1.1'] as const) {
        const opts: tls.ConnectionOptions = { minVersion: v, maxVersion: v, ciphers: 'DEFAULT@SECLEVEL=0' }
        expect((await handshake((lax.address() as AddressInfo).port, opts)).protocol).toBe(v)
        const h = await handshake(port, opts)
        expect(h.cn).toBeUndefined()
        expect(h.error).toBe('ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION')
        const admin = await handshake(adminPort, opts)
        expect(admin.error).toBe('ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION')
      }
    } finally {
      await new Promise((r) => lax.close(r))
    }
  })

  it('reloads the certificate when its files change, without dropping open connections; a broken pair is ignored', async () => {
    // A keep-alive connection opened before the rotation.
    const keepAgent = new https.Agent({ keepAlive: true, maxSockets: 1 })
    const before = https.request({ host: '127.0.0.1', port, path: '/v1/models', ca: readFileSync(f('ca.crt')), servername: 'localhost', agent: keepAgent, headers: { authorization: `Bearer ${ADMIN_KEY}` } })
    const first = await new Promise<{ status: number; socket: tls.TLSSocket }>((resolve, reject) => {
      before.on('response', (res) => { const socket = res.socket as tls.TLSSocket; res.resume(); res.on('end', () => resolve({ status: res.statusCode ?? 0, socket })) })
      before.on('error', reject)
      before.end()
    })
    expect(first.status).toBe(200)
    expect(cnOf(first.socket.getPeerX509Certificate()!.raw)).toBe('mcp-server-1')

    install('srv2', 'live')
    let cn = ''
    for (let i = 0; i < 40 && cn !== 'mcp-server-2'; i++) {
      await new Promise((r) => setTimeout(r, 100))
      cn = (await handshake(port)).cn ?? ''
    }
    expect(cn).toBe('mcp-server-2')
    expect(tg.logs.some((l) => l['msg'] === 'TLS certificate reloaded')).toBe(true)

    // The connection from before still works, on its original certificate.
    const again = await new Promise<{ status: number; socket: tls.TLSSocket }>((resolve, reject) => {
      const r = https.request({ host: '127.0.0.1', port, path: '/v1/models', ca: readFileSync(f('ca.crt')), servername: 'localhost', agent: keepAgent, headers: { authorization: `Bearer ${ADMIN_KEY}` } })
      r.on('response', (res) => { const socket = res.socket as tls.TLSSocket; res.resume(); res.on('end', () => resolve({ status: res.statusCode ?? 0, socket })) })
      r.on('error', reject)
      r.end()
    })
    expect(again.status).toBe(200)
    expect(again.socket).toBe(first.socket)
    keepAgent.destroy()

    // A key that does not match its certificate: refused, the current pair keeps serving.
    writeFileSync(f('live.key'), readFileSync(f('srv1.key')))
    await new Promise((r) => setTimeout(r, 600))
    expect((await handshake(port)).cn).toBe('mcp-server-2')
    expect(tg.logs.some((l) => String(l['msg']).startsWith('TLS certificate reload failed'))).toBe(true)
    install('srv2', 'live')
  })

  it('admin listener with caFile requires a client certificate signed by that CA (mutual TLS)', async () => {
    const without = await handshake(adminPort)
    // TLS 1.3 reports a missing client certificate after the handshake: the first read fails.
    const withoutRequest = await new Promise<string>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: adminPort, ca: readFileSync(f('ca.crt')), servername: 'localhost' })
      let buf = ''
      s.on('data', (d: Buffer) => { buf += d.toString() })
      s.once('secureConnect', () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'))
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'))
      s.once('close', () => resolve(buf === '' ? 'closed' : buf))
    })
    expect(withoutRequest).not.toMatch(/^HTTP\/1\.1 200/)
    void without
    const mtls = new Agent({ connect: { ca: readFileSync(f('ca.crt')), cert: readFileSync(f('client.crt')), key: readFileSync(f('client.key')) } })
    try {
      const r = await ufetch(`https://127.0.0.1:${adminPort}/healthz`, { dispatcher: mtls })
      expect(r.status).toBe(200)
    } finally {
      await mtls.close()
    }
  })
})

describe('verified TLS to upstreams', () => {
  let upstream: https.Server
  let seen = 0
  let origin: string

  beforeAll(async () => {
    upstream = https.createServer({ cert: readFileSync(f('srv1.crt')), key: readFileSync(f('srv1.key')) }, (req, res) => {
      seen++
      req.resume()
      req.on('end', () => {
        const body = JSON.stringify({ id: 'c1', object: 'chat.completion', created: 1, model: 'gpt-4o', choices: [{ index: 0, message: { role: 'assistant', content: 'tls ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } })
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
        res.end(body)
      })
    })
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
    origin = `https://127.0.0.1:${(upstream.address() as AddressInfo).port}`
  })
  afterAll(async () => {
    upstream.closeAllConnections()
    await new Promise((r) => upstream.close(r))
  })

  async function ask(tg: TestGateway): Promise<Response> {
    return fetch(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'up/gpt-4o', messages: [{ role: 'user', content: 'hi' }] }) })
  }

  it('an upstream certificate from an unknown CA is refused (nothing is sent); upstream.caFile trusts a private CA', async () => {
    const providers = { up: { type: 'openai', baseUrl: `${origin}/v1`, apiKey: 'sk-tls', models: ['gpt-4o'] } }
    const strict = await startGateway({ providers })
    try {
      const r = await ask(strict)
      expect(r.status).toBe(502)
      const body = await r.json() as { error: { message: string } }
      expect(body.error.message).toMatch(/certificate|CERT|SIGNATURE|verify/i)
      expect(seen).toBe(0)
    } finally {
      await strict.close()
    }
    const trusting = await startGateway({ providers, upstream: { caFile: f('ca.crt') } })
    try {
      const r = await ask(trusting)
      expect(r.status).toBe(200)
      expect(((await r.json()) as { choices: { message: { content: string } }[] }).choices[0]?.message.content).toBe('tls ok')
      expect(seen).toBe(1)
    } finally {
      await trusting.close()
    }
  })
})
