/**
 * Listener limits: per-address and global connection caps, the pre-auth per-address request limit,
 * and the failed-authentication limiter, on the data plane and the admin listener. Clients on
 * 127.0.0.1 and 127.0.0.2 are two addresses (the whole of 127/8 is loopback on Linux); the loopback
 * exemption is switched off for these tests, and one test checks that it holds by default.
 */
import net from 'node:net'
import { Agent, fetch as ufetch } from 'undici'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { clientKey } from '../../gateway/hardening/address.ts'
import { AuthFailureLimiter } from '../../gateway/hardening/auth-failures.ts'
import { IpRateLimiter } from '../../gateway/hardening/ip-limiter.ts'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'

interface ErrorBody { error: { message: string; code: string; type: string } }

const from2 = new Agent({ localAddress: '127.0.0.2' })
const from1 = new Agent({ localAddress: '127.0.0.1' })

function get(url: string, key: string | undefined, agent = from1): Promise<Response> {
  return ufetch(url, { dispatcher: agent, headers: key === undefined ? {} : { authorization: `Bearer ${key}` } }) as unknown as Promise<Response>
}

/** Opens a raw connection and resolves once connected; collects what the server sends. */
function openRaw(port: number, localAddress = '127.0.0.1'): Promise<{ sock: net.Socket; data: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1', localAddress })
    let buf = ''
    const closed = new Promise<void>((r) => sock.once('close', () => r()))
    sock.on('data', (d: Buffer) => { buf += d.toString('latin1') })
    sock.on('error', () => {})
    sock.once('connect', () => resolve({ sock, data: () => buf, closed }))
    sock.once('error', reject)
  })
}

async function metric(tg: TestGateway, line: RegExp): Promise<number> {
  const text = await (await fetch(`${tg.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).text()
  const m = text.split('\n').find((l) => line.test(l))
  return m === undefined ? 0 : Number(m.split(' ').pop())
}

afterAll(async () => {
  await from1.close()
  await from2.close()
})

describe('limiter units', () => {
  it('token bucket: burst, then one request per 1/rate, Retry-After in whole seconds', () => {
    const l = new IpRateLimiter(2, 3, 100)
    expect([l.take('a', 0), l.take('a', 0), l.take('a', 0)]).toEqual([0, 0, 0])
    expect(l.take('a', 0)).toBe(1)
    expect(l.take('b', 0)).toBe(0)
    expect(l.take('a', 500)).toBe(0)
    expect(l.take('a', 500)).toBe(1)
  })

  it('token bucket table is bounded: the oldest address is forgotten first', () => {
    const l = new IpRateLimiter(1, 1, 3)
    for (const k of ['a', 'b', 'c', 'd']) l.take(k, 0)
    expect(l.tracked).toBe(3)
    expect(l.take('a', 0)).toBe(0)
  })

  it('checks answer like local replies', () => {
    const l = new IpRateLimiter(1, 1, 10)
    expect(l.check('a', 0)).toBeUndefined()
    expect(l.check('a', 0)).toMatchObject({ code: 'MCP_ERR_CLIENT_RATE_LIMITED', headers: { 'retry-after': '1' } })
    const f = new AuthFailureLimiter(1, 1000, 3000, 10)
    f.fail('a', 0)
    expect(f.check('a', 0)).toMatchObject({ code: 'MCP_ERR_CLIENT_AUTH_BLOCKED', headers: { 'retry-after': '3' } })
    expect(f.check('b', 0)).toBeUndefined()
  })

  it('failed auths: blocked at the limit within the window, for the cooldown; the window resets', () => {
    const l = new AuthFailureLimiter(3, 1000, 5000, 100)
    expect(l.fail('a', 0)).toBe(false)
    expect(l.fail('a', 10)).toBe(false)
    expect(l.blockedFor('a', 10)).toBe(0)
    expect(l.fail('a', 20)).toBe(true)
    expect(l.blockedFor('a', 20)).toBe(5)
    expect(l.blockedFor('a', 5020)).toBe(0)
    // Failures spread over more than the window never block.
    const m = new AuthFailureLimiter(3, 1000, 5000, 100)
    expect([m.fail('x', 0), m.fail('x', 900), m.fail('x', 1900), m.fail('x', 2800)]).toEqual([false, false, false, false])
  })

  it('client keys: IPv4 as is, IPv4-mapped unwrapped, IPv6 by /64', () => {
    expect(clientKey('10.1.2.3')).toBe('10.1.2.3')
    expect(clientKey('::ffff:10.1.2.3')).toBe('10.1.2.3')
    expect(clientKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64')
    expect(clientKey('2001:db8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64')
    expect(clientKey('::1')).toBe('0:0:0:0::/64')
  })
})

describe('listener limits (loopback exemption off)', () => {
  let mock: OpenAIMock
  let tg: TestGateway
  let port: number
  let adminPort: number

  beforeAll(async () => {
    mock = await startOpenAIMock({ record: false })
    tg = await startGateway({
      server: {
        limits: { exempt: [], connectionsPerIp: 3, connections: 6, requestsPerSecondPerIp: 2, burstPerIp: 6, authFailures: 3, authFailureWindowMs: 60_000, authFailureCooldownMs: 1500 },
      },
      providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-limits', models: ['gpt-4o'] } },
    })
    port = Number(new URL(tg.url).port)
    adminPort = Number(new URL(tg.adminUrl).port)
  })
  afterAll(async () => {
    await tg?.close()
    await mock?.close()
  })
  afterEach(() => { mock.fault = null })

  it('per-address connection cap: the next connection gets 429 JSON and is closed; another address is not affected', async () => {
    const held = await Promise.all([openRaw(port), openRaw(port), openRaw(port)])
    const over = await openRaw(port)
    await over.closed
    const text = over.data()
    expect(text).toMatch(/^HTTP\/1\.1 429 /)
    expect(text).toContain('retry-after: 1')
    const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as ErrorBody
    expect(body.error.code).toBe('MCP_ERR_CLIENT_TOO_MANY_CONNECTIONS')
    // 127.0.0.2 is another client.
    const other = await openRaw(port, '127.0.0.2')
    other.sock.write(`GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_KEY}\r\nConnection: close\r\n\r\n`)
    await other.closed
    expect(other.data()).toMatch(/^HTTP\/1\.1 200 /)
    // A freed slot is reusable.
    held[0]!.sock.destroy()
    await held[0]!.closed
    await new Promise((r) => setTimeout(r, 50))
    const again = await openRaw(port)
    again.sock.write(`GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_KEY}\r\nConnection: close\r\n\r\n`)
    await again.closed
    expect(again.data()).toMatch(/^HTTP\/1\.1 (200|429) /)
    for (const h of held) h.sock.destroy()
    expect(await metric(tg, /^mcp_listener_refused_total\{listener="data",reason="connections_per_ip"\}/)).toBeGreaterThanOrEqual(1)
  })

  it('global connection cap: over it, 503 MCP_ERR_SERVER_OVERLOADED and closed', async () => {
    const held = [...await Promise.all([openRaw(port), openRaw(port), openRaw(port)]), ...await Promise.all([openRaw(port, '127.0.0.2'), openRaw(port, '127.0.0.2'), openRaw(port, '127.0.0.2')])]
    const over = await openRaw(port, '127.0.0.3')
    await over.closed
    expect(over.data()).toMatch(/^HTTP\/1\.1 503 /)
    expect(over.data()).toContain('MCP_ERR_SERVER_OVERLOADED')
    for (const h of held) h.sock.destroy()
    await Promise.all(held.map((h) => h.closed))
  })

  it('pre-auth request limit: 429 with Retry-After before auth runs (no key needed to be refused); other addresses unaffected', async () => {
    await new Promise((r) => setTimeout(r, 3100)) // a full bucket
    const authRejectedBefore = await metric(tg, /^mcp_plugin_auth_rejected_total\{reason="missing_key"\}/)
    const statuses: number[] = []
    for (let i = 0; i < 6; i++) statuses.push((await get(`${tg.url}/v1/models`, ADMIN_KEY, from2)).status)
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200])
    const r = await get(`${tg.url}/v1/models`, undefined, from2)
    expect(r.status).toBe(429)
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    expect(r.headers.get('x-mcp-error-code')).toBe('MCP_ERR_CLIENT_RATE_LIMITED')
    expect(((await r.json()) as ErrorBody).error).toMatchObject({ code: 'MCP_ERR_CLIENT_RATE_LIMITED', type: 'rate_limit_error' })
    // Refused before the pipeline: the auth plugin never saw it.
    expect(await metric(tg, /^mcp_plugin_auth_rejected_total\{reason="missing_key"\}/)).toBe(authRejectedBefore)
    // /v1/messages is answered in Anthropic's shape.
    const m = await ufetch(`${tg.url}/v1/messages`, { dispatcher: from2, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
    expect(m.status).toBe(429)
    expect(await m.json()).toMatchObject({ type: 'error', error: { type: 'rate_limit_error' } })
    // Another address has its own bucket.
    expect((await get(`${tg.url}/v1/models`, ADMIN_KEY, from1)).status).toBe(200)
    expect(await metric(tg, /^mcp_listener_refused_total\{listener="data",reason="requests_per_ip"\}/)).toBeGreaterThanOrEqual(2)
  })

  it('failed-auth limiter: after 3 failed authentications the address gets 429 even with a valid key, until the cooldown ends', async () => {
    const agent = new Agent({ localAddress: '127.0.0.4' })
    try {
      for (let i = 0; i < 3; i++) expect((await get(`${tg.url}/v1/models`, 'wrong-key', agent)).status).toBe(401)
      const r = await get(`${tg.url}/v1/models`, ADMIN_KEY, agent)
      expect(r.status).toBe(429)
      expect(r.headers.get('x-mcp-error-code')).toBe('MCP_ERR_CLIENT_AUTH_BLOCKED')
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
      expect(((await r.json()) as ErrorBody).error.code).toBe('MCP_ERR_CLIENT_AUTH_BLOCKED')
      // Another address is not blocked.
      const other = new Agent({ localAddress: '127.0.0.5' })
      expect((await get(`${tg.url}/v1/models`, ADMIN_KEY, other)).status).toBe(200)
      await other.close()
      await new Promise((res) => setTimeout(res, 1600))
      expect((await get(`${tg.url}/v1/models`, ADMIN_KEY, agent)).status).toBe(200)
      expect(await metric(tg, /^mcp_listener_refused_total\{listener="data",reason="auth_failures"\}/)).toBeGreaterThanOrEqual(1)
    } finally {
      await agent.close()
    }
  })

  it("a provider's 401 passed to the client does not count as a failed authentication", async () => {
    const agent = new Agent({ localAddress: '127.0.0.6' })
    try {
      mock.fault = 'status:401'
      for (let i = 0; i < 4; i++) {
        const r = await ufetch(`${tg.url}/v1/chat/completions`, { dispatcher: agent, method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'x' }] }) })
        expect(r.status).toBe(401)
        expect(r.headers.get('x-mcp-error-code')).toBe('MCP_ERR_UPSTREAM_ERROR')
        await r.text()
      }
      mock.fault = null
      expect((await get(`${tg.url}/v1/models`, ADMIN_KEY, agent)).status).toBe(200)
    } finally {
      await agent.close()
    }
  })

  it('admin listener: failed admin authentications block the address there too; probes stay open', async () => {
    const agent = new Agent({ localAddress: '127.0.0.7' })
    try {
      for (let i = 0; i < 3; i++) expect((await get(`${tg.adminUrl}/api/v1/mcp/config`, 'nope', agent)).status).toBe(401)
      const r = await get(`${tg.adminUrl}/api/v1/mcp/config`, ADMIN_KEY, agent)
      expect(r.status).toBe(429)
      expect(((await r.json()) as ErrorBody).error.code).toBe('MCP_ERR_CLIENT_AUTH_BLOCKED')
      expect(await metric(tg, /^mcp_listener_refused_total\{listener="admin",reason="auth_failures"\}/)).toBeGreaterThanOrEqual(1)
    } finally {
      await agent.close()
    }
    // The connection cap holds on the admin port too.
    const held = await Promise.all([openRaw(adminPort, '127.0.0.8'), openRaw(adminPort, '127.0.0.8'), openRaw(adminPort, '127.0.0.8')])
    const over = await openRaw(adminPort, '127.0.0.8')
    await over.closed
    expect(over.data()).toMatch(/^HTTP\/1\.1 429 /)
    for (const h of held) h.sock.destroy()
  })
})

describe('loopback is exempt by default', () => {
  let tg: TestGateway
  beforeAll(async () => { tg = await startGateway({ server: { limits: { authFailures: 2, requestsPerSecondPerIp: 1, burstPerIp: 1, connectionsPerIp: 1 } } }) })
  afterAll(async () => { await tg?.close() })

  it('no per-address limit applies to 127.0.0.0/8 and ::1 unless `server.limits.exempt` is changed', async () => {
    expect(tg.gw.settings.server.limits.exempt).toEqual(['127.0.0.0/8', '::1'])
    // And the admin listener binds to loopback unless configured otherwise.
    expect(tg.gw.settings.admin.host).toBe('127.0.0.1')
    const agent = new Agent({ connections: 4, localAddress: '127.0.0.9' })
    try {
      for (let i = 0; i < 4; i++) expect((await get(`${tg.url}/v1/models`, 'bad', agent)).status).toBe(401)
      const ok = await Promise.all(Array.from({ length: 4 }, () => get(`${tg.url}/v1/models`, ADMIN_KEY, agent)))
      expect(ok.map((r) => r.status)).toEqual([200, 200, 200, 200])
    } finally {
      await agent.close()
    }
  })
})
