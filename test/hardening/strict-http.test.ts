/**
 * Strict HTTP/1.1 parsing (llhttp, never `insecureHTTPParser`) and slow-client timeouts on the data
 * plane: every smuggling or framing vector is a JSON 400 with the connection closed and nothing sent
 * upstream; headersTimeout and requestTimeout cut slow clients with a JSON 408; CONNECT and unknown
 * Expect values get JSON answers instead of Node's bare ones.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { rawExchange } from '../helpers/raw-http.ts'

const AUTH = `Authorization: Bearer ${ADMIN_KEY}\r\n`
const BODY = JSON.stringify({ model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
const CANARY = `GET /smuggled-canary HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`

describe('strict parsing and slow clients', () => {
  let mock: OpenAIMock
  let tg: TestGateway
  let port: number
  let adminPort: number

  beforeAll(async () => {
    mock = await startOpenAIMock()
    tg = await startGateway({
      server: { headersTimeoutMs: 1000, requestTimeoutMs: 1500 },
      providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-strict', models: ['gpt-4o'] } },
    })
    port = Number(new URL(tg.url).port)
    adminPort = Number(new URL(tg.adminUrl).port)
  })
  afterAll(async () => {
    await tg?.close()
    await mock?.close()
  })
  afterEach(() => mock.reset())

  const vectors: [string, string][] = [
    ['CL.TE (Content-Length with Transfer-Encoding: chunked)', `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${CANARY}`],
    ['TE.CL (chunked first)', `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${AUTH}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n${CANARY}`],
    ['TE obfuscated (xchunked)', `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${AUTH}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${CANARY}`],
    ['TE obfuscated (space before colon)', `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${AUTH}Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${CANARY}`],
    ['duplicate Content-Length (same value)', `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nContent-Length: ${BODY.length}\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`],
    ['duplicate Content-Length (different values)', `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Length: 0\r\nContent-Length: ${CANARY.length}\r\n\r\n${CANARY}`],
    ['obs-fold header continuation', `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${AUTH}X-A: a\r\n folded\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`],
    ['bare LF line endings', `POST /v1/chat/completions HTTP/1.1\nHost: x\n${AUTH.trimEnd()}\nContent-Length: ${BODY.length}\n\n${BODY}`],
    ['bare CR', `GET /v1/models HTTP/1.1\rHost: x\r\n${AUTH}\r\n`],
    ['invalid header name character', `GET /v1/models HTTP/1.1\r\nHost: x\r\nX(A): v\r\n${AUTH}\r\n`],
    ['NUL in a header value', `GET /v1/models HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n${AUTH}\r\n`],
    ['chunk-size overflow', `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n{}\r\n0\r\n\r\n${CANARY}`],
    ['Content-Length with a sign', `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Length: +5\r\n\r\n0\r\n\r\n${CANARY}`],
  ]

  it.each(vectors)('%s: JSON 400, connection closed, nothing upstream, smuggled request never served', async (_name, raw) => {
    const x = rawExchange(port, raw, 5000)
    const r = await x.response
    await x.closed
    expect(r.status).toBe(400)
    expect(r.headers['content-type']).toBe('application/json')
    expect(r.headers['connection']).toBe('close')
    const body = JSON.parse(r.body) as { error: { code: string; message: string } }
    expect(body.error.code).toBe('MCP_ERR_REQ_BODY_INVALID')
    expect(body.error.message).toMatch(/malformed HTTP request \(HPE_/)
    expect(r.body).not.toContain('smuggled-canary')
    expect(mock.requests).toHaveLength(0)
  })

  it('absolute-form request targets never reach another host or the admin routes', async () => {
    for (const target of ['http://127.0.0.1/api/v1/mcp/config', 'http://169.254.169.254/latest/meta-data/', `http://127.0.0.1:${adminPort}/metrics`]) {
      const r = await rawExchange(port, `GET ${target} HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`).response
      expect(r.status).toBe(404)
      expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'MCP_ERR_REQ_NOT_FOUND' } })
    }
    expect(mock.requests).toHaveLength(0)
  })

  it('headersTimeout: a client dripping header bytes gets a JSON 408 and is closed', async () => {
    const t0 = Date.now()
    const x = rawExchange(port, 'GET /v1/models HTTP/1.1\r\nHost: x\r\n', 6000)
    const drip = setInterval(() => x.write('X'), 200)
    try {
      const r = await x.response
      await x.closed
      expect(r.status).toBe(408)
      expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'MCP_ERR_REQ_TIMEOUT' } })
      // headersTimeout 1 s, enforced by a check every second: at most ~2 s.
      expect(Date.now() - t0).toBeLessThan(3000)
    } finally {
      clearInterval(drip)
    }
  })

  it('requestTimeout: a slow body gets a JSON 408 and is closed; nothing goes upstream', async () => {
    const t0 = Date.now()
    const x = rawExchange(port, `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nContent-Length: ${BODY.length}\r\n\r\n`, 6000)
    let i = 0
    const drip = setInterval(() => { if (i < BODY.length - 1) x.write(BODY[i++]!) }, 100)
    try {
      const r = await x.response
      await x.closed
      expect(r.status).toBe(408)
      expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'MCP_ERR_REQ_TIMEOUT' } })
      expect(Date.now() - t0).toBeLessThan(3500)
      expect(mock.requests).toHaveLength(0)
    } finally {
      clearInterval(drip)
    }
  })

  // The 408 was written straight to the socket: no request id in the body or header, the OpenAI shape on
  // /v1/messages, and the access log, onComplete and mcp_request_errors_total saw a 408 without its error code.
  it.each([
    ['/v1/chat/completions', '', BODY],
    ['/v1/messages', 'anthropic-version: 2023-06-01\r\n', JSON.stringify({ model: 'mock/gpt-4o', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })],
  ])('requestTimeout on %s goes through the request\'s own error path: request id, its API\'s shape, counted by code', async (path, extra, body) => {
    const errors = async (): Promise<number> => {
      const text = await (await fetch(`${tg.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).text()
      const route = path === '/v1/messages' ? 'messages' : 'chat'
      const line = text.split('\n').find((l) => l.startsWith('mcp_request_errors_total{') && l.includes(`route="${route}"`) && l.includes('code="MCP_ERR_REQ_TIMEOUT"'))
      return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1))
    }
    const before = await errors()
    const x = rawExchange(port, `POST ${path} HTTP/1.1\r\nHost: x\r\n${AUTH}${extra}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`, 6000)
    const r = await x.response
    await x.closed
    expect(r.status).toBe(408)
    expect(r.headers['x-mcp-error-code']).toBe('MCP_ERR_REQ_TIMEOUT')
    const id = r.headers['x-request-id']
    expect(id).toMatch(/^[0-9a-f-]{36}$/)
    const json = JSON.parse(r.body) as Record<string, unknown>
    if (path === '/v1/messages') {
      expect(json).toEqual({ type: 'error', error: { type: 'invalid_request_error', message: 'The request was not received in time' }, request_id: id })
    } else {
      expect(json).toMatchObject({ error: { code: 'MCP_ERR_REQ_TIMEOUT', request_id: id } })
    }
    await expect.poll(() => tg.logs.find((l) => l['requestId'] === id && l['plugin'] === 'access-log')).toBeDefined()
    expect(tg.logs.find((l) => l['requestId'] === id && l['plugin'] === 'access-log')).toMatchObject({ status: 408, errorCode: 'MCP_ERR_REQ_TIMEOUT', details: 'request.timeout' })
    expect(await errors()).toBe(before + 1)
    expect(mock.requests).toHaveLength(0)
  })

  it('CONNECT gets a JSON 405 and the connection closes (Node would drop it silently)', async () => {
    for (const p of [port, adminPort]) {
      const x = rawExchange(p, `CONNECT 169.254.169.254:80 HTTP/1.1\r\nHost: 169.254.169.254:80\r\n${AUTH}\r\n`)
      const r = await x.response
      await x.closed
      expect(r.status).toBe(405)
      expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'MCP_ERR_REQ_METHOD_NOT_ALLOWED' } })
    }
  })

  it('Expect other than 100-continue gets a JSON 417 (Node would answer without a body)', async () => {
    const r = await rawExchange(port, `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${AUTH}Expect: teapot\r\nContent-Type: application/json\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`).response
    expect(r.status).toBe(417)
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'MCP_ERR_REQ_EXPECTATION_FAILED' } })
    expect(mock.requests).toHaveLength(0)
  })

  it('a framing error in a body that is being read gets a JSON 400 through the response in progress', async () => {
    const x = rawExchange(port, `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"mod\r\nzz\r\n`)
    const r = await x.response
    await x.closed
    expect(r.status).toBe(400)
    // The request's own error path: its id in the body and the header, its code in the access log.
    const id = r.headers['x-request-id']
    expect(id).toMatch(/^[0-9a-f-]{36}$/)
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'MCP_ERR_REQ_BODY_INVALID', request_id: id } })
    await expect.poll(() => tg.logs.find((l) => l['requestId'] === id && l['plugin'] === 'access-log')).toMatchObject({ status: 400, errorCode: 'MCP_ERR_REQ_BODY_INVALID', details: 'request.malformed_http' })
    expect(mock.requests).toHaveLength(0)
  })

  it('the admin listener: no Host header is fine, oversize headers are a JSON 431', async () => {
    const r1 = await rawExchange(adminPort, 'GET /healthz HTTP/1.1\r\n\r\n').response
    expect(r1.status).toBe(200)
    const x = rawExchange(adminPort, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)
    const r2 = await x.response
    await x.closed
    expect(r2.status).toBe(431)
    expect(JSON.parse(r2.body)).toMatchObject({ error: { code: 'MCP_ERR_REQ_HEADERS_TOO_LARGE' } })
  })
})
