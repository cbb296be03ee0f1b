/**
 * SSRF protection for provider URLs from the API (providers/shared/safe-url.ts): the config-time
 * check, the connect-time guard against DNS rebinding (a resolver stub that answers public first and
 * loopback later; a trap listener counts what reaches it), the operator allowlist, redirects never
 * followed, and routing fields in request bodies refused.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { GatewayError } from '../../gateway/errors.ts'
import { Pools } from '../../gateway/upstream/pools.ts'
import { parseSettings, readRawConfig } from '../../gateway/settings.ts'
import { openHttp } from '../../providers/shared/http.ts'
import { checkAllowlist, checkProviderUrl, checkProviderUrlSyntax, deniedReason, guardedConnect, type ProviderUrlPolicy, type ResolveAll } from '../../providers/shared/safe-url.ts'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'

const PUBLIC = '93.184.216.34'
const dns = (table: Record<string, string[]>): ResolveAll => async (h) => {
  const a = table[h]
  if (!a) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${h}`), { code: 'ENOTFOUND' })
  return a.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }))
}

describe('checkProviderUrl (config time)', () => {
  const policy: ProviderUrlPolicy = { resolve: dns({ 'api.openai.com': [PUBLIC], 'internal.example': ['10.1.2.3'], 'mixed.example': [PUBLIC, '127.0.0.1'], 'v6.example': ['2606:4700::1111'], 'meta.example': ['169.254.169.254'] }) }

  it.each([
    ['https://127.0.0.1/v1', 'loopback'], ['https://127.1/v1', 'loopback'], ['https://2130706433/v1', 'loopback'], ['https://0x7f000001/v1', 'loopback'],
    ['https://0177.0.0.1/v1', 'loopback'], ['https://[::1]/v1', 'loopback'], ['https://[::ffff:127.0.0.1]/v1', 'loopback'], ['https://[::ffff:7f00:1]/v1', 'loopback'],
    ['https://0.0.0.0/v1', 'unspecified'], ['https://10.0.0.1/v1', 'private'], ['https://172.16.5.4/v1', 'private'], ['https://172.31.255.255/v1', 'private'],
    ['https://192.168.1.1/v1', 'private'], ['https://[fd12::1]/v1', 'private'], ['https://169.254.169.254/latest/meta-data/', 'cloud metadata'],
    ['https://[fd00:ec2::254]/', 'cloud metadata'], ['https://100.100.100.200/', 'cloud metadata'], ['https://169.254.10.10/', 'link-local'], ['https://[fe80::1]/', 'link-local'],
    ['https://100.64.0.1/', 'CGNAT'], ['https://[64:ff9b::a00:1]/', 'private'], ['https://[2002:a00:1::]/', 'private'], ['https://[::a00:1]/', 'private'],
    ['https://224.0.0.1/', 'multicast'], ['https://240.0.0.1/', 'reserved'],
  ])('%s is refused (%s)', async (url, reason) => {
    const errs = await checkProviderUrl(url, policy)
    expect(errs.length).toBeGreaterThan(0)
    expect(errs.join(' ')).toContain(reason)
  })

  it.each([
    ['http://api.openai.com/v1', 'http: URLs are not allowed'], ['ftp://api.openai.com/', 'scheme ftp:'], ['https://user:pass@api.openai.com/v1', 'credentials'],
    ['https://sk-abc@api.openai.com/v1', 'credentials'], ['https://api.openai.com/v1#frag', 'fragment'], ['https://api.openai.com/v1#', 'fragment'],
    ['https://api.openai.com/v1\n', 'control'], ['https://api.open\tai.com/v1', 'control'], [' https://api.openai.com/v1', 'control'], ['not-a-url', 'not a valid'],
    ['https://localhost/v1', 'local machine'], ['https://foo.localhost/v1', 'local machine'], ['https://metadata.google.internal/computeMetadata/v1/', 'metadata'],
    ['https://internal.example/v1', 'resolves to 10.1.2.3'], ['https://mixed.example/v1', 'resolves to 127.0.0.1'], ['https://meta.example/', 'cloud metadata'],
    ['https://nowhere.example/v1', 'does not resolve'],
  ])('%s is refused (%s)', async (url, reason) => {
    expect((await checkProviderUrl(url, policy)).join(' ')).toContain(reason)
  })

  it('accepts public https URLs (IPv4 and IPv6)', async () => {
    expect(await checkProviderUrl('https://api.openai.com/v1', policy)).toEqual([])
    expect(await checkProviderUrl('https://v6.example:8443/v1?x=1', policy)).toEqual([])
    expect(await checkProviderUrl(`https://${PUBLIC}/v1`, policy)).toEqual([])
    expect(await checkProviderUrl('https://[2606:4700::1111]/v1', policy)).toEqual([])
  })

  it('http only when allowed', async () => {
    expect(await checkProviderUrl('http://api.openai.com/v1', { ...policy, allowHttp: true })).toEqual([])
    expect(checkProviderUrlSyntax('http://api.openai.com/v1', {})).toHaveLength(1)
  })

  it('the operator allowlist: CIDRs, exact hosts and *.suffix hosts; metadata only by address', async () => {
    const resolve = dns({ 'ollama.internal': ['10.9.8.7'], 'llm.team.svc.cluster.local': ['10.1.1.1'], 'meta.internal': ['169.254.169.254'] })
    const allow = (allowlist: string[]): ProviderUrlPolicy => ({ allowHttp: true, allowlist, resolve })
    expect(await checkProviderUrl('http://10.0.0.5:11434', allow(['10.0.0.0/8']))).toEqual([])
    expect(await checkProviderUrl('http://10.0.0.5:11434', allow(['10.0.0.0/24']))).toEqual([])
    expect(await checkProviderUrl('http://10.0.1.5:11434', allow(['10.0.0.0/24']))).not.toEqual([])
    expect(await checkProviderUrl('http://ollama.internal:11434', allow(['ollama.internal']))).toEqual([])
    expect(await checkProviderUrl('http://llm.team.svc.cluster.local', allow(['*.svc.cluster.local']))).toEqual([])
    expect(await checkProviderUrl('http://[::1]:8000', allow(['::1']))).toEqual([])
    // Allowed by name, so only DNS decides (this resolver stub does not know it).
    expect((await checkProviderUrl('http://localhost:8000', allow(['localhost']))).join(' ')).toContain('does not resolve')
    // A name on the allowlist never reaches the metadata service; an address entry can.
    expect((await checkProviderUrl('http://meta.internal/', allow(['meta.internal']))).join(' ')).toContain('cloud metadata')
    expect(await checkProviderUrl('http://meta.internal/', allow(['169.254.169.254/32']))).toEqual([])
  })

  it('allowlist entries are validated, and settings refuse malformed ones', () => {
    expect(checkAllowlist(['10.0.0.0/8', 'fd00::/8', '*.svc.cluster.local', 'ollama', '1.2.3.4'])).toEqual([])
    expect(checkAllowlist(['10.0.0.0/33', 'not a host', '10.0.0.0/x'])).toHaveLength(3)
    const raw = readRawConfig()
    expect(() => parseSettings({ ...raw, security: { providerUrlAllowlist: ['10.0.0.0/99'] } })).toThrow(/security\.providerUrlAllowlist\[0\]/)
    expect(() => parseSettings({ ...raw, server: { ...(raw['server'] as object), limits: { exempt: ['nope'] } } })).toThrow(/server\.limits\.exempt\[0\]/)
  })

  it('deniedReason covers IPv4-mapped, NAT64 and 6to4 forms', () => {
    expect(deniedReason('::ffff:169.254.169.254')).toBe('cloud metadata')
    expect(deniedReason('64:ff9b::7f00:1')).toBe('loopback')
    expect(deniedReason('2002:c0a8:0101::1')).toBe('private')
    expect(deniedReason('8.8.8.8')).toBeUndefined()
    expect(deniedReason('2001:4860:4860::8888')).toBeUndefined()
  })
})

describe('guardedConnect (connect time)', () => {
  let trap: http.Server
  let trapPort: number
  let connections = 0

  beforeAll(async () => {
    trap = http.createServer((req, res) => { req.resume(); res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"trap":true}') })
    trap.on('connection', () => { connections++ })
    await new Promise<void>((r) => trap.listen(0, '127.0.0.1', r))
    trapPort = (trap.address() as AddressInfo).port
  })
  afterAll(async () => {
    trap.closeAllConnections()
    await new Promise((r) => trap.close(r))
  })

  async function call(pools: Pools, origin: string): Promise<number> {
    const head = await openHttp(pools.get(origin), { method: 'GET', path: '/', headers: {} }, { provider: 'p', signal: new AbortController().signal, headersTimeoutMs: 2000, bodyTimeoutMs: 2000 })
    await head.text()
    return head.status
  }

  it('DNS rebinding: public when the URL was checked, loopback at connect time: refused before any connection', async () => {
    let lookups = 0
    const policy: ProviderUrlPolicy = { allowHttp: true, resolve: async () => [{ address: lookups++ === 0 ? PUBLIC : '127.0.0.1', family: 4 }] }
    const origin = `http://rebind.example:${trapPort}`
    expect(await checkProviderUrl(origin, policy)).toEqual([])
    const before = connections
    const pools = new Pools({ connections: 4, keepAliveTimeoutMs: 1000, connectTimeoutMs: 1000 }, (o) => (o === origin ? guardedConnect(policy) : undefined))
    try {
      const err = await call(pools, origin).then(() => undefined, (e: unknown) => e)
      expect(err).toBeInstanceOf(GatewayError)
      expect((err as GatewayError).code).toBe('MCP_ERR_UPSTREAM_ADDRESS_BLOCKED')
      expect((err as GatewayError).status).toBe(502)
      expect((err as GatewayError).message).toContain('loopback')
      expect(connections).toBe(before)
    } finally {
      await pools.close()
    }
  })

  it('IP literals and reserved names are refused before connecting; an allowlisted address connects', async () => {
    const before = connections
    const blocked = new Pools({ connections: 4, keepAliveTimeoutMs: 1000, connectTimeoutMs: 1000 }, () => guardedConnect({ allowHttp: true }))
    try {
      for (const origin of [`http://127.0.0.1:${trapPort}`, `http://localhost:${trapPort}`, `http://2130706433:${trapPort}`]) {
        const err = await call(blocked, origin).then(() => undefined, (e: unknown) => e)
        expect((err as GatewayError).code, origin).toBe('MCP_ERR_UPSTREAM_ADDRESS_BLOCKED')
      }
      expect(connections).toBe(before)
    } finally {
      await blocked.close()
    }
    const allowed = new Pools({ connections: 4, keepAliveTimeoutMs: 1000, connectTimeoutMs: 1000 }, () => guardedConnect({ allowHttp: true, allowlist: ['127.0.0.1/32'] }))
    try {
      expect(await call(allowed, `http://127.0.0.1:${trapPort}`)).toBe(200)
      expect(connections).toBe(before + 1)
    } finally {
      await allowed.close()
    }
  })

  it('a name resolving to both a public and a private address is refused at connect time', async () => {
    const before = connections
    const pools = new Pools({ connections: 4, keepAliveTimeoutMs: 1000, connectTimeoutMs: 1000 }, () => guardedConnect({ allowHttp: true, resolve: dns({ 'two.example': [PUBLIC, '127.0.0.1'] }) }))
    try {
      const err = await call(pools, `http://two.example:${trapPort}`).then(() => undefined, (e: unknown) => e)
      expect((err as GatewayError).code).toBe('MCP_ERR_UPSTREAM_ADDRESS_BLOCKED')
      expect(connections).toBe(before)
    } finally {
      await pools.close()
    }
  })
})

describe('redirects and routing fields through the gateway', () => {
  let trap: http.Server
  let redirector: http.Server
  let trapHits = 0
  let mock: OpenAIMock
  let tg: TestGateway

  beforeAll(async () => {
    trap = http.createServer((req, res) => { trapHits++; req.resume(); res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"id":"x","object":"chat.completion","choices":[]}') })
    await new Promise<void>((r) => trap.listen(0, '127.0.0.1', r))
    const trapUrl = `http://127.0.0.1:${(trap.address() as AddressInfo).port}/v1/chat/completions`
    redirector = http.createServer((req, res) => { req.resume(); res.writeHead(302, { location: trapUrl, 'content-type': 'application/json' }); res.end('{"redirect":true}') })
    await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', r))
    mock = await startOpenAIMock()
    tg = await startGateway({
      providers: {
        redir: { type: 'openai', baseUrl: `http://127.0.0.1:${(redirector.address() as AddressInfo).port}/v1`, apiKey: 'sk-redirect-canary', models: ['gpt-4o'] },
        mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-ssrf', models: ['gpt-4o'] },
      },
    })
  })
  afterAll(async () => {
    await tg?.close()
    await mock?.close()
    for (const s of [trap, redirector]) { s.closeAllConnections(); await new Promise((r) => s.close(r)) }
  })

  const chat = (model: string, extra: Record<string, unknown> = {}, stream = false): Promise<Response> => fetch(`${tg.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], stream, ...extra }),
  })

  it('an upstream 302 is never followed: the redirect target receives nothing and no Location reaches the client', async () => {
    for (const stream of [false, true]) {
      const r = await chat('redir/gpt-4o', {}, stream)
      await r.text()
      expect(r.headers.get('location')).toBeNull()
      expect(r.status).not.toBe(200)
    }
    const msg = await fetch(`${tg.url}/v1/messages`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'redir/gpt-4o', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }) })
    await msg.text()
    expect(msg.headers.get('location')).toBeNull()
    expect(trapHits).toBe(0)
  })

  // KNOWN ISSUE (outside this suite's files): gateway/upstream/open.ts and providers/shared/http-adapter.ts treat
  // only >= 400 as an upstream error, so a 3xx is delivered as if it were the answer (status 302, the upstream's
  // body). Fix: `head.status >= 300` in both. Flip `it.fails` to `it` once fixed.
  it('an upstream 3xx reaches the client as 502 MCP_ERR_UPSTREAM_ERROR', async () => {
    const r = await chat('redir/gpt-4o')
    expect(r.status).toBe(502)
    expect(r.headers.get('x-mcp-error-code')).toBe('MCP_ERR_UPSTREAM_ERROR')
  })

  it.each(['api_base', 'base_url', 'api_key'])('a routing field in the body (%s) is refused with 400 and nothing goes upstream', async (field) => {
    const before = mock.requests.length
    const r = await chat('mock/gpt-4o', { [field]: 'http://169.254.169.254/' })
    expect(r.status).toBe(400)
    expect(await r.json()).toMatchObject({ error: { code: 'MCP_ERR_REQ_BODY_INVALID', param: field } })
    expect(mock.requests.length).toBe(before)
  })
})
