/**
 * The data plane end to end: the official OpenAI SDK (and raw HTTP where the SDK cannot go)
 * against the real gateway, which proxies to the OpenAI mock.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import * as zlib from 'node:zlib'
import OpenAI from 'openai'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { rawExchange } from '../helpers/raw-http.ts'
import { startGatewayWithPlugins } from '../helpers/plugin-gateway.ts'
import type { PluginFactory } from '../../gateway/pipeline/types.ts'

const TOKENS12 = Array.from({ length: 12 }, (_, i) => `tok${i}`).join(' ')
const BODY_LIMIT = 4096
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const MSG = [{ role: 'user' as const, content: 'hello there' }]

interface ErrorBody { error: { message: string; type: string; code: string; param: string | null } }

describe('proxy (OpenAI inbound → openai provider)', () => {
  let mock: OpenAIMock
  let tg: TestGateway
  let client: OpenAI
  let port: number

  beforeAll(async () => {
    mock = await startOpenAIMock()
    tg = await startGateway({
      server: { bodyLimitBytes: BODY_LIMIT },
      providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-upstream-proxy-test', models: ['gpt-4o', 'text-embedding-3-small'] } },
    })
    client = new OpenAI({ apiKey: ADMIN_KEY, baseURL: `${tg.url}/v1`, maxRetries: 0, timeout: 10_000 })
    port = Number(new URL(tg.url).port)
  })
  afterAll(async () => {
    await tg?.close()
    await mock?.close()
  })
  afterEach(() => mock.reset())

  function post(path: string, body: string, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(`${tg.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', ...headers }, body })
  }

  async function expectOpenAIError(res: Response, status: number, code: string): Promise<ErrorBody['error']> {
    expect(res.status).toBe(status)
    expect(res.headers.get('content-type')).toContain('application/json')
    const body = await res.json() as ErrorBody
    expect(body.error).toMatchObject({ code, type: expect.any(String), message: expect.any(String) })
    expect(body.error).toHaveProperty('param')
    return body.error
  }

  // ---- happy paths --------------------------------------------------------------------------------

  it('non-streaming chat completion', async () => {
    const r = await client.chat.completions.create({ model: 'mock/gpt-4o', messages: MSG })
    expect(r.object).toBe('chat.completion')
    expect(r.choices[0]?.message.content).toBe(TOKENS12)
    expect(r.choices[0]?.finish_reason).toBe('stop')
    expect(r.usage).toMatchObject({ prompt_tokens: 3, completion_tokens: 12, total_tokens: 15 })
    expect(mock.requests).toHaveLength(1)
    expect(mock.requests[0]?.body).toMatchObject({ model: 'gpt-4o' })
    // The provider's key goes upstream, never the client's.
    expect(mock.requests[0]?.headers['authorization']).toBe('Bearer sk-upstream-proxy-test')
  })

  it('streaming chat: text reassembled exactly, usage with include_usage', async () => {
    const stream = await client.chat.completions.create({ model: 'mock/gpt-4o', messages: MSG, stream: true, stream_options: { include_usage: true } })
    let text = ''
    let usage: OpenAI.CompletionUsage | null | undefined
    let finish: string | null | undefined
    for await (const c of stream) {
      text += c.choices[0]?.delta.content ?? ''
      if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason
      if (c.usage) usage = c.usage
    }
    expect(text).toBe(TOKENS12)
    expect(finish).toBe('stop')
    expect(usage).toMatchObject({ prompt_tokens: 3, completion_tokens: 12, total_tokens: 15 })
  })

  it('streaming ends with data: [DONE] on the wire', async () => {
    const res = await post('/v1/chat/completions', JSON.stringify({ model: 'mock/gpt-4o', messages: MSG, stream: true }))
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toContain('text/event-stream')
    const text = await res.text()
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true)
    expect(text.match(/data: \[DONE\]/g)).toHaveLength(1)
  })

  it('embeddings', async () => {
    const r = await client.embeddings.create({ model: 'mock/text-embedding-3-small', input: ['alpha', 'beta'] })
    expect(r.data).toHaveLength(2)
    expect(r.data[0]?.embedding).toHaveLength(8)
    expect(r.data[1]?.index).toBe(1)
    expect(r.usage.prompt_tokens).toBeGreaterThan(0)
    expect(mock.requests[0]?.path).toBe('/v1/embeddings')
  })

  it('models list', async () => {
    const ids: string[] = []
    for await (const m of client.models.list()) ids.push(m.id)
    expect(ids).toEqual(['mock/gpt-4o', 'mock/text-embedding-3-small'])
    expect(mock.requests).toHaveLength(0) // answered locally
  })

  // ---- request id ---------------------------------------------------------------------------------

  it('x-request-id: generated and echoed, accepted when well-formed, replaced when malformed', async () => {
    const body = JSON.stringify({ model: 'mock/gpt-4o', messages: MSG })
    const gen = await post('/v1/chat/completions', body)
    await gen.arrayBuffer()
    expect(gen.headers.get('x-request-id')).toMatch(UUID)
    expect(mock.requests[0]?.headers['x-request-id']).toBe(gen.headers.get('x-request-id'))

    const ok = await post('/v1/chat/completions', body, { 'x-request-id': 'client-req_42.a:b' })
    await ok.arrayBuffer()
    expect(ok.headers.get('x-request-id')).toBe('client-req_42.a:b')
    expect(mock.requests[1]?.headers['x-request-id']).toBe('client-req_42.a:b')

    for (const bad of ['has spaces in it', 'x'.repeat(129), 'semi;colon']) {
      const r = await post('/v1/chat/completions', body, { 'x-request-id': bad })
      await r.arrayBuffer()
      expect(r.headers.get('x-request-id')).toMatch(UUID)
    }

    // Errors answered by the gateway carry it too.
    const e = await post('/v1/chat/completions', '{', { 'x-request-id': 'err-id-1' })
    expect(e.headers.get('x-request-id')).toBe('err-id-1')
    expect((await e.json() as { error: { request_id: string } }).error.request_id).toBe('err-id-1')
  })

  // ---- upstream errors ----------------------------------------------------------------------------

  it('upstream 429 with Retry-After: status, header and OpenAI error shape pass through', async () => {
    mock.fault = 'status:429,retryAfter:7,times:1'
    const err = await client.chat.completions.create({ model: 'mock/gpt-4o', messages: MSG }).then(() => undefined, (e: unknown) => e)
    expect(err).toBeInstanceOf(OpenAI.RateLimitError)
    const e = err as InstanceType<typeof OpenAI.RateLimitError>
    expect(e.status).toBe(429)
    expect(e.headers?.get('retry-after')).toBe('7')
    expect(e.code).toBe('rate_limit_exceeded')
    expect(e.message).toContain('Rate limit reached')

    mock.fault = 'status:429,retryAfter:3,times:1'
    const res = await post('/v1/chat/completions', JSON.stringify({ model: 'mock/gpt-4o', messages: MSG }))
    expect(res.headers.get('retry-after')).toBe('3')
    await expectOpenAIError(res, 429, 'rate_limit_exceeded')
  })

  // ---- auth ---------------------------------------------------------------------------------------

  it('401 without a key and with a wrong key; the key is accepted in all three headers', async () => {
    const body = JSON.stringify({ model: 'mock/gpt-4o', messages: MSG })
    const none = await fetch(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    expect(none.headers.get('www-authenticate')).toBe('Bearer')
    expect((await expectOpenAIError(none, 401, 'MCP_ERR_AUTH_MISSING')).type).toBe('authentication_error')

    const wrong = await fetch(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer wrong-key' }, body })
    await expectOpenAIError(wrong, 401, 'MCP_ERR_AUTH_INVALID')

    const viaSdk = new OpenAI({ apiKey: 'wrong-key', baseURL: `${tg.url}/v1`, maxRetries: 0 })
    await expect(viaSdk.chat.completions.create({ model: 'mock/gpt-4o', messages: MSG })).rejects.toBeInstanceOf(OpenAI.AuthenticationError)
    expect(mock.requests).toHaveLength(0)

    for (const h of [{ authorization: `Bearer ${ADMIN_KEY}` }, { 'x-api-key': ADMIN_KEY }, { 'api-key': ADMIN_KEY }]) {
      const r = await fetch(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...h }, body })
      expect(r.status, JSON.stringify(Object.keys(h))).toBe(200)
      await r.arrayBuffer()
    }
    expect(mock.requests).toHaveLength(3)
  })

  // ---- listener limits ----------------------------------------------------------------------------

  it('Content-Length over the limit: 413 JSON before the body is sent', async () => {
    const x = rawExchange(port, [
      'POST /v1/chat/completions HTTP/1.1', 'Host: 127.0.0.1', `Authorization: Bearer ${ADMIN_KEY}`,
      'Content-Type: application/json', 'Content-Length: 1000000000', '', '',
    ].join('\r\n'))
    const r = await x.response // no body byte was ever written
    expect(r.status).toBe(413)
    expect(r.headers['content-type']).toContain('application/json')
    expect(r.headers['connection']).toBe('close')
    const e = (JSON.parse(r.body) as ErrorBody).error
    expect(e.code).toBe('MCP_ERR_REQ_BODY_TOO_LARGE')
    expect(e.message).toContain(String(BODY_LIMIT))
    await x.closed
    expect(mock.requests).toHaveLength(0)
  })

  it('chunked body over the limit: 413', async () => {
    const x = rawExchange(port, [
      'POST /v1/chat/completions HTTP/1.1', 'Host: 127.0.0.1', `Authorization: Bearer ${ADMIN_KEY}`,
      'Content-Type: application/json', 'Transfer-Encoding: chunked', '', '',
    ].join('\r\n'))
    const piece = 'x'.repeat(3000)
    x.write(`${(3000).toString(16)}\r\n${piece}\r\n`)
    x.write(`${(3000).toString(16)}\r\n${piece}\r\n`) // 6000 > 4096; the terminating chunk never comes
    const r = await x.response
    expect(r.status).toBe(413)
    expect((JSON.parse(r.body) as ErrorBody).error.code).toBe('MCP_ERR_REQ_BODY_TOO_LARGE')
    x.destroy()
  })

  it('header block over the limit: 431 JSON', async () => {
    const x = rawExchange(port, [
      'GET /v1/models HTTP/1.1', 'Host: 127.0.0.1', `x-big: ${'a'.repeat(20_000)}`, '', '',
    ].join('\r\n'))
    const r = await x.response
    expect(r.status).toBe(431)
    expect(r.headers['content-type']).toContain('application/json')
    expect((JSON.parse(r.body) as ErrorBody).error.code).toBe('MCP_ERR_REQ_HEADERS_TOO_LARGE')
  })

  // ---- bad requests -------------------------------------------------------------------------------

  it('invalid JSON: 400 naming the problem', async () => {
    const e = await expectOpenAIError(await post('/v1/chat/completions', '{"model": "mock/gpt-4o", '), 400, 'MCP_ERR_REQ_JSON_INVALID')
    expect(e.message).toMatch(/^Request body is not valid JSON: .+JSON/)
    const empty = await expectOpenAIError(await post('/v1/chat/completions', ''), 400, 'MCP_ERR_REQ_JSON_INVALID')
    expect(empty.message).toContain('empty')
  })

  it('a compressed body (gzip, deflate, br, zstd) is decoded; the decoded size is held to the body limit', async () => {
    const body = JSON.stringify({ model: 'mock/gpt-4o', messages: MSG })
    const codings: Array<[string, (b: Buffer) => Buffer]> = [['gzip', zlib.gzipSync], ['deflate', zlib.deflateSync], ['br', zlib.brotliCompressSync]]
    if (zlib.zstdCompressSync) codings.push(['zstd', zlib.zstdCompressSync])
    for (const [coding, compress] of codings) {
      const r = await post('/v1/chat/completions', compress(Buffer.from(body)) as unknown as string, { 'content-encoding': coding })
      expect(r.status, coding).toBe(200)
      expect(((await r.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content).toBe(TOKENS12)
    }
    // Applied in order gzip then br: undone br first. identity counts as none.
    const twice = zlib.brotliCompressSync(zlib.gzipSync(Buffer.from(body)))
    expect((await post('/v1/chat/completions', twice as unknown as string, { 'content-encoding': 'gzip, identity, br' })).status).toBe(200)
    expect(mock.requests.at(-1)!.body).toMatchObject({ model: 'gpt-4o', messages: MSG })
    // A few hundred bytes that decode to far more than the limit: 413, and nothing goes upstream.
    const before = mock.requests.length
    const bomb = zlib.gzipSync(Buffer.from(JSON.stringify({ model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'a'.repeat(1_000_000) }] })))
    expect(bomb.length).toBeLessThan(BODY_LIMIT)
    const big = await expectOpenAIError(await post('/v1/chat/completions', bomb as unknown as string, { 'content-encoding': 'gzip' }), 413, 'MCP_ERR_REQ_BODY_TOO_LARGE')
    expect(big.message).toContain(String(BODY_LIMIT))
    expect(mock.requests.length).toBe(before)
  })

  it('a body that does not decode as its Content-Encoding: 400; an unknown coding: 415 naming it', async () => {
    const body = JSON.stringify({ model: 'mock/gpt-4o', messages: MSG })
    // Plain JSON sent as gzip used to be read as identity; a real gzip body then failed as "not valid UTF-8".
    const corrupt = await expectOpenAIError(await post('/v1/chat/completions', body, { 'content-encoding': 'gzip' }), 400, 'MCP_ERR_REQ_BODY_ENCODING')
    expect(corrupt.message).toMatch(/^Request body could not be decoded as gzip: /)
    const cut = zlib.gzipSync(Buffer.from(body)).subarray(0, 20)
    await expectOpenAIError(await post('/v1/chat/completions', cut as unknown as string, { 'content-encoding': 'gzip' }), 400, 'MCP_ERR_REQ_BODY_ENCODING')
    const unknown = await expectOpenAIError(await post('/v1/chat/completions', body, { 'content-encoding': 'compress' }), 415, 'MCP_ERR_REQ_CONTENT_ENCODING')
    expect(unknown.message).toContain('"compress"')
    expect(unknown.message).toContain('gzip, deflate, br')
    // The Anthropic route answers in its own shape.
    const a = await post('/v1/messages', body, { 'content-encoding': 'snappy' })
    expect(a.status).toBe(415)
    expect(await a.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringContaining('"snappy"') } })
    expect(mock.requests).toHaveLength(0)
  })

  it('a bad field: 400 naming the field path', async () => {
    const t = await expectOpenAIError(await post('/v1/chat/completions', JSON.stringify({ model: 'mock/gpt-4o', messages: MSG, temperature: 5 })), 400, 'MCP_ERR_REQ_BODY_INVALID')
    expect(t.param).toBe('temperature')
    expect(t.message).toContain('temperature: must be <= 2')
    const role = await expectOpenAIError(await post('/v1/chat/completions', JSON.stringify({ model: 'mock/gpt-4o', messages: [{ role: 'wizard', content: 'x' }] })), 400, 'MCP_ERR_REQ_BODY_INVALID')
    expect(role.param).toBe('messages[0].role')
    const missing = await expectOpenAIError(await post('/v1/chat/completions', JSON.stringify({ model: 'mock/gpt-4o' })), 400, 'MCP_ERR_REQ_BODY_INVALID')
    expect(missing.message).toContain('messages: is required')
    // content null is an assistant turn's only (OpenAI refuses it elsewhere); before, it reached the adapters.
    for (const role of ['user', 'system', 'tool']) {
      const n = await expectOpenAIError(await post('/v1/chat/completions', JSON.stringify({ model: 'mock/gpt-4o', messages: [{ role, content: null, tool_call_id: 'c1' }] })), 400, 'MCP_ERR_REQ_BODY_INVALID')
      expect(n.param, role).toBe('messages[0].content')
    }
    expect(mock.requests).toHaveLength(0)
  })

  it('numbers past the safe integers (1e309 parses as Infinity, which JSON.stringify sends upstream as null) and control characters in a model name: 400', async () => {
    // Raw bodies: JSON.stringify cannot write 1e309.
    for (const [field, value] of [['max_tokens', '1e309'], ['max_completion_tokens', '9223372036854775808'], ['seed', '-1e309']] as const) {
      const e = await expectOpenAIError(await post('/v1/chat/completions', `{"model":"mock/gpt-4o","messages":[{"role":"user","content":"x"}],"${field}":${value}}`), 400, 'MCP_ERR_REQ_BODY_INVALID')
      expect(e.param, field).toBe(field)
    }
    const dims = await expectOpenAIError(await post('/v1/embeddings', '{"model":"mock/text-embedding-3-small","input":"x","dimensions":1e309}'), 400, 'MCP_ERR_REQ_BODY_INVALID')
    expect(dims.param).toBe('dimensions')
    const nul = await expectOpenAIError(await post('/v1/chat/completions', JSON.stringify({ model: 'mock/gpt-4o\u0000', messages: MSG })), 400, 'MCP_ERR_REQ_BODY_INVALID')
    expect(nul).toMatchObject({ param: 'model', message: expect.stringContaining('model: must not contain control characters') })
    // The Messages API and count_tokens: the same rules for the model, in Anthropic's shape.
    for (const path of ['/v1/messages', '/v1/messages/count_tokens']) {
      for (const model of ['mock/gpt-4o\n', `mock/${'x'.repeat(300)}`]) {
        const body = { model, messages: MSG, ...(path === '/v1/messages' ? { max_tokens: 5 } : {}) }
        const r = await post(path, JSON.stringify(body), { 'anthropic-version': '2023-06-01' })
        expect(r.status, `${path} ${model.length}`).toBe(400)
        expect(await r.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringContaining('model') } })
      }
    }
    const inf = await post('/v1/messages', '{"model":"mock/gpt-4o","max_tokens":1e309,"messages":[{"role":"user","content":"x"}]}', { 'anthropic-version': '2023-06-01' })
    expect(inf.status).toBe(400)
    expect(mock.requests).toHaveLength(0)
  })

  it('unknown route 404 and wrong method 405, in the OpenAI error shape', async () => {
    const nf = await expectOpenAIError(await fetch(`${tg.url}/v1/nope`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } }), 404, 'MCP_ERR_REQ_NOT_FOUND')
    expect(nf.type).toBe('invalid_request_error')
    expect(nf.message).toContain('/v1/nope')
    const r = await fetch(`${tg.url}/v1/chat/completions`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
    expect(r.headers.get('allow')).toBe('POST')
    const wm = await expectOpenAIError(r, 405, 'MCP_ERR_REQ_METHOD_NOT_ALLOWED')
    expect(wm.message).toContain('GET')
    expect((await fetch(`${tg.url}/v1/models`, { method: 'POST' })).headers.get('allow')).toBe('GET, HEAD')
    const head = await fetch(`${tg.url}/v1/models`, { method: 'HEAD', headers: { authorization: `Bearer ${ADMIN_KEY}` } })
    expect(head.status).toBe(200)
    expect(await head.text()).toBe('')
  })

  // ---- broken upstream streams --------------------------------------------------------------------

  async function streamText(): Promise<string> {
    const res = await post('/v1/chat/completions', JSON.stringify({ model: 'mock/gpt-4o', messages: MSG, stream: true }))
    expect(res.status).toBe(200)
    return res.text()
  }

  function lastEvent(text: string): string {
    const events = text.split('\n\n').filter((e) => e.trim() !== '')
    return events[events.length - 1] ?? ''
  }

  it('mid-stream cut: the client stream ends with an explicit error event, never [DONE]', async () => {
    mock.fault = 'cutAfter:3'
    const text = await streamText()
    expect(text).not.toContain('[DONE]')
    expect(text).toContain('"content":"tok0"')
    const last = JSON.parse(lastEvent(text).replace(/^data: /, '')) as ErrorBody
    expect(last.error.code).toBe('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')

    const stream = await client.chat.completions.create({ model: 'mock/gpt-4o', messages: MSG, stream: true })
    let got = ''
    const err = await (async () => { for await (const c of stream) got += c.choices[0]?.delta.content ?? '' })().then(() => undefined, (e: unknown) => e)
    expect(err).toBeInstanceOf(OpenAI.APIError)
    expect((err as Error).message).toContain('interrupted')
    expect(TOKENS12.startsWith(got)).toBe(true)
    expect(got.length).toBeLessThan(TOKENS12.length)
  })

  it('malformed upstream event: error event, never [DONE]', async () => {
    mock.fault = 'malformedAfter:2'
    const text = await streamText()
    expect(text).not.toContain('[DONE]')
    expect(text).not.toContain('{not json')
    const last = JSON.parse(lastEvent(text).replace(/^data: /, '')) as ErrorBody
    expect(last.error.code).toBe('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
    expect(last.error.message).toContain('malformed')

    const stream = await client.chat.completions.create({ model: 'mock/gpt-4o', messages: MSG, stream: true })
    await expect((async () => { for await (const _c of stream) { /* drain */ } })()).rejects.toBeInstanceOf(OpenAI.APIError)
  })

  it('upstream stream without [DONE] but with a finish: the client sees a normal end', async () => {
    mock.fault = 'noDone'
    const text = await streamText()
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true)
    expect(text).not.toContain('"error"')

    const stream = await client.chat.completions.create({ model: 'mock/gpt-4o', messages: MSG, stream: true, stream_options: { include_usage: true } })
    let got = ''
    let usage: OpenAI.CompletionUsage | null | undefined
    for await (const c of stream) { got += c.choices[0]?.delta.content ?? ''; if (c.usage) usage = c.usage }
    expect(got).toBe(TOKENS12)
    expect(usage?.completion_tokens).toBe(12)
  })
})

describe('proxy with a chunk hook (canonical stream path, no pass-through)', () => {
  let mock: OpenAIMock
  let tg: TestGateway
  let client: OpenAI

  beforeAll(async () => {
    mock = await startOpenAIMock()
    const counter: PluginFactory = { name: 'chunk-counter', sideEffects: 'none', configSchema: { type: 'object' }, create: () => ({ onResponseChunk() {} }) }
    tg = await startGatewayWithPlugins({
      providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-upstream-proxy-test' } },
      chains: { counted: ['request-id', 'auth', 'chunk-counter'] },
      routes: { chat: { chain: 'counted' } },
    }, [counter])
    expect(tg.gw.holder.current.routes.get('chat')?.passthrough).toBe(false)
    client = new OpenAI({ apiKey: ADMIN_KEY, baseURL: `${tg.url}/v1`, maxRetries: 0, timeout: 10_000 })
  })
  afterAll(async () => {
    await tg?.close()
    await mock?.close()
  })
  afterEach(() => mock.reset())

  async function streamText(): Promise<string> {
    const res = await fetch(`${tg.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock/gpt-4o', messages: MSG, stream: true }),
    })
    expect(res.status).toBe(200)
    return res.text()
  }

  it('streams the text exactly, usage with include_usage', async () => {
    const stream = await client.chat.completions.create({ model: 'mock/gpt-4o', messages: MSG, stream: true, stream_options: { include_usage: true } })
    let text = ''
    let usage: OpenAI.CompletionUsage | null | undefined
    for await (const c of stream) { text += c.choices[0]?.delta.content ?? ''; if (c.usage) usage = c.usage }
    expect(text).toBe(TOKENS12)
    expect(usage).toMatchObject({ prompt_tokens: 3, completion_tokens: 12 })
  })

  it('mid-stream cut: error event, never [DONE]', async () => {
    mock.fault = 'cutAfter:3'
    const text = await streamText()
    expect(text).not.toContain('[DONE]')
    expect(text).toContain('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
    mock.fault = 'cutAfter:3'
    const stream = await client.chat.completions.create({ model: 'mock/gpt-4o', messages: MSG, stream: true })
    await expect((async () => { for await (const _c of stream) { /* drain */ } })()).rejects.toBeInstanceOf(OpenAI.APIError)
  })

  it('malformed upstream event: error event, never [DONE]', async () => {
    mock.fault = 'malformedAfter:2'
    const text = await streamText()
    expect(text).not.toContain('[DONE]')
    expect(text).toMatch(/"code":"MCP_ERR_UPSTREAM_(STREAM_INTERRUPTED|BAD_RESPONSE)"/)
  })

  it('upstream without [DONE] but with a finish: normal end', async () => {
    mock.fault = 'noDone'
    const text = await streamText()
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true)
    expect(text).not.toContain('"error"')
  })
})

describe('stream usage for metering', () => {
  it('asks the upstream for usage when a plugin on the route needs it, and hides it from clients that did not ask', async () => {
    const { startOpenAIMock } = await import('../helpers/openai-mock.ts')
    const { startGatewayWithPlugins } = await import('../helpers/plugin-gateway.ts')
    const { authHeaders } = await import('../helpers/gateway.ts')
    const seen: (number | undefined)[] = []
    const meter = { name: 'usage-probe', configSchema: { type: 'object', additionalProperties: false }, sideEffects: 'none' as const, needsUsage: true, create: () => ({ onComplete: (ctx: { usage?: { completion_tokens: number } }) => { seen.push(ctx.usage?.completion_tokens) } }) }
    const mock = await startOpenAIMock()
    const stream = (g: { url: string }, model: string) => fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model, stream: true, messages: [{ role: 'user', content: 'hi' }] }) }).then((r) => r.text())
    const events = (text: string) => text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6))
    const g = await startGatewayWithPlugins({
      providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-usage-000000001' } },
      chains: { default: ['request-id', 'auth', 'access-log'], metered: ['request-id', 'auth', 'usage-probe'] },
      routes: { chat: { chain: 'metered' } },
    }, [meter as never])
    try {
      const ev = events(await stream(g, 'mock/gpt-4o'))
      expect(ev.at(-1)).toBe('[DONE]')
      for (const e of ev.slice(0, -1)) expect(JSON.parse(e).choices.length).toBeGreaterThan(0)
      expect((mock.requests.at(-1)!.body as { stream_options?: { include_usage?: boolean } }).stream_options?.include_usage).toBe(true)
      expect(seen).toEqual([12])
      // Without a plugin that needs usage, the request goes upstream as the client sent it.
      g.setConfig({ providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-usage-000000001' } }, chains: { default: ['request-id', 'auth', 'access-log'] } })
      const r = await fetch(`${g.adminUrl}/api/v1/mcp/config/reload`, { method: 'POST', headers: { authorization: authHeaders().authorization! } })
      expect(r.status).toBe(200)
      await stream(g, 'mock/gpt-4o')
      expect((mock.requests.at(-1)!.body as { stream_options?: unknown }).stream_options).toBeUndefined()
    } finally {
      await g.close()
      await mock.close()
    }
  })
})
