import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { Pool } from 'undici'
import type { GatewayError } from '../../gateway/errors.ts'
import type { ChatChunk, ExecuteParams, ProviderAdapter } from '../types.ts'
import { startOpenAIMock, type OpenAIMock } from '../../test/helpers/openai-mock.ts'
import { openaiCompatibleFactory } from './adapter.ts'
import { createOpenAIStreamMapper } from '../openai/stream.ts'
import { ChunkAggregator } from '../shared/aggregate.ts'
import { fromOpenAIChat } from '../openai/response.ts'
import { toOpenAIError } from '../openai/errors.ts'
import { anthropicInbound } from '../../gateway/inbound/anthropic.ts'

/** A keyless local server (llama.cpp / vLLM without --api-key): answers /v1/models and chat. */
async function startKeylessServer(): Promise<{ url: string; seen: { path: string; headers: IncomingHttpHeaders }[]; close(): Promise<void> }> {
  const seen: { path: string; headers: IncomingHttpHeaders }[] = []
  const server: Server = createServer((req, res) => {
    seen.push({ path: req.url ?? '', headers: req.headers })
    req.resume()
    req.on('end', () => {
      res.setHeader('content-type', 'application/json')
      if (req.url === '/v1/models') { res.end('{"object":"list","data":[{"id":"qwen2.5","object":"model","created":0,"owned_by":"llamacpp"}]}'); return }
      res.end(JSON.stringify({
        id: 'chatcmpl-local', object: 'chat.completion', created: 1, model: 'qwen2.5',
        choices: [{ index: 0, message: { role: 'assistant', content: 'local hello' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 2, completion_tokens: 2, total_tokens: 4 },
      }))
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}/v1`, seen, close: () => new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections() }) }
}

describe('openai-compatible adapter', () => {
  let mock: OpenAIMock
  let local: Awaited<ReturnType<typeof startKeylessServer>>
  const pools = new Map<string, Pool>()
  const deps = {
    dispatcherFor(origin: string): Pool {
      let p = pools.get(origin)
      if (!p) { p = new Pool(origin, { connections: 4 }); pools.set(origin, p) }
      return p
    },
  }
  const params = (model = 'qwen2.5'): ExecuteParams => ({ model, signal: new AbortController().signal, deadline: Date.now() + 10_000, requestId: 'req-c' })

  function adapter(cfgIn: Record<string, unknown>): ProviderAdapter {
    const cfg = { type: 'openai-compatible', ...cfgIn }
    expect(openaiCompatibleFactory.configErrors(cfg)).toEqual([])
    return openaiCompatibleFactory.create('vllm', cfg, deps)
  }

  beforeAll(async () => { mock = await startOpenAIMock(); local = await startKeylessServer() })
  beforeEach(() => { mock.reset(); local.seen.length = 0 })
  afterAll(async () => {
    await Promise.all([...pools.values()].map((p) => p.close()))
    await Promise.all([mock.close(), local.close()])
  })

  it('requires a baseUrl and takes no OpenAI-only fields', () => {
    expect(openaiCompatibleFactory.configErrors({ type: 'openai-compatible' })).toEqual(['baseUrl: is required'])
    expect(openaiCompatibleFactory.configErrors({ type: 'openai-compatible', baseUrl: 'http://h/v1', organization: 'o' })).toEqual(['organization: unknown key'])
    expect(openaiCompatibleFactory.configErrors({ type: 'openai-compatible', baseUrl: 'http://h/v1?x=1' })[0]).toContain('query')
  })

  it('sends no Authorization header without an apiKey; health is GET {base}/models', async () => {
    const a = adapter({ baseUrl: local.url })
    expect(a.type).toBe('openai-compatible')
    const r = await a.execute({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }, params())
    expect(r.choices[0]?.message.content).toBe('local hello')
    const h = await a.healthCheck()
    expect(h.ok).toBe(true)
    expect(local.seen.map((s) => s.path)).toEqual(['/v1/chat/completions', '/v1/models'])
    expect(local.seen.every((s) => s.headers['authorization'] === undefined)).toBe(true)
    expect(a.passthrough?.headers['authorization']).toBeUndefined()
    expect(a.passthrough?.path('chat', 'x')).toBe('/v1/chat/completions')
  })

  it('executes, streams and embeds with a bearer key', async () => {
    const a = adapter({ baseUrl: mock.url, apiKey: 'local-key', models: ['qwen2.5'] })
    expect(a.listModels?.()).toEqual(['qwen2.5'])
    const r = await a.execute({ model: 'x', messages: [{ role: 'user', content: 'echo compat' }] }, params())
    expect(r.choices[0]?.message.content).toBe('echo: compat')
    expect(mock.requests[0]?.headers['authorization']).toBe('Bearer local-key')
    expect(mock.requests[0]?.body.model).toBe('qwen2.5')

    const s = await a.stream({ model: 'x', stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'echo streamed words' }] }, params())
    const chunks: ChatChunk[] = []
    for await (const c of s) chunks.push(c)
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('echo: streamed words')
    expect((await s.final).usage?.total_tokens).toBeGreaterThan(0)

    const e = await a.embed!({ model: 'x', input: 'hello' }, params('emb'))
    expect(e.data[0]?.embedding).toHaveLength(8)
  })

  it('keeps upstream errors and detects cut streams', async () => {
    const a = adapter({ baseUrl: mock.url, apiKey: 'k' })
    mock.fault = 'status:503,times:1'
    await expect(a.execute({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }, params())).rejects.toMatchObject({ status: 503, code: 'MCP_ERR_UPSTREAM_ERROR' })
    mock.fault = 'cutAfter:1'
    const s = await a.stream({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }, params())
    let err: GatewayError | undefined
    try { for await (const _ of s) { /* drain */ } } catch (e) { err = e as GatewayError }
    expect(err?.code).toBe('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
  })
})

describe('openai-compatible stream quirks (translation)', () => {
  const events = (m: ReturnType<typeof createOpenAIStreamMapper>, evs: unknown[]): ChatChunk[] =>
    evs.flatMap((e) => m.push({ event: 'message', data: JSON.stringify(e) }) ?? [])

  it('tool calls without index: an id seen before continues its call, one without id the last, numbering is per choice, an explicit index is kept', () => {
    const call = (id?: string, index?: number): Record<string, unknown> => ({ ...(id !== undefined ? { id } : {}), ...(index !== undefined ? { index } : {}), function: { arguments: 'x' } })
    const chunks = events(createOpenAIStreamMapper('vllm'), [
      { id: 'c', created: 1, choices: [{ index: 0, delta: { tool_calls: [call(), call('a'), call('b')] } }, { index: 1, delta: { tool_calls: [call('a'), call()] } }] },
      { id: 'c', created: 1, choices: [{ index: 0, delta: { tool_calls: [call('a'), call(), call('c'), call('b', 7), call('')] } }] },
      { id: 'c', created: 1, choices: [{ index: 1, delta: { tool_calls: [call('z'), call('a')] } }] },
    ])
    const indexes = chunks.map((c) => c.choices.map((ch) => ch.delta.tool_calls?.map((t) => t.index)))
    expect(indexes).toEqual([[[0, 1, 2], [0, 0]], [[1, 2, 3, 7, 3]], [[1, 0]]])
  })

  // Linear in the calls: each id was looked up in a list of all before it (100,000 fresh ids took 54 s); the bound is
  // the test's timeout.
  it('200,000 tool-call deltas without index, each with a new id, are numbered in linear time', () => {
    const n = 200_000
    const calls = Array.from({ length: n }, (_, i) => ({ id: `call_${i}`, function: { arguments: '' } }))
    const [chunk] = events(createOpenAIStreamMapper('vllm'), [{ id: 'c', created: 1, choices: [{ index: 0, delta: { tool_calls: calls } }] }])
    const got = chunk!.choices[0]!.delta.tool_calls!
    expect(got.length).toBe(n)
    expect(got.every((t, i) => t.index === i)).toBe(true)
  }, 10_000)

  it('tool calls streamed without index: a delta with a new id starts the next call, one without id continues the last', () => {
    const chunks = events(createOpenAIStreamMapper('vllm'), [
      { id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { role: 'assistant' }, finish_reason: null }] },
      { id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { tool_calls: [{ id: 'call_a', type: 'function', function: { name: 'f', arguments: '{"x":' } }] }, finish_reason: null }] },
      { id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { tool_calls: [{ function: { arguments: '1}' } }] }, finish_reason: null }] },
      { id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { tool_calls: [{ id: 'call_b', type: 'function', function: { name: 'g', arguments: '{}' } }] }, finish_reason: null }] },
      { id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { tool_calls: [{ id: 'call_c', type: 'function', function: { name: 'h', arguments: '{}' } }, { id: 'call_d', type: 'function', function: { name: 'i', arguments: '{}' } }] }, finish_reason: 'tool_calls' }] },
    ])
    expect(chunks.flatMap((c) => c.choices[0]?.delta.tool_calls?.map((t) => t.index) ?? [])).toEqual([0, 0, 1, 2, 3])
    const agg = new ChunkAggregator()
    for (const c of chunks) agg.add(c)
    expect(agg.toResponse().choices[0]?.message.tool_calls?.map((t) => [t.id, t.function.name, t.function.arguments])).toEqual([
      ['call_a', 'f', '{"x":1}'], ['call_b', 'g', '{}'], ['call_c', 'h', '{}'], ['call_d', 'i', '{}'],
    ])
  })
})

describe('openai-compatible finish reasons', () => {
  it.each(['eos', 'eos_token', 'stop_sequence'])('TGI/llama.cpp finish_reason %s is stop, streamed and not, and Anthropic clients get end_turn', (reason) => {
    const m = createOpenAIStreamMapper('tgi')
    const chunks = [
      { id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { role: 'assistant', content: 'hi' }, finish_reason: null }] },
      { id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: {}, finish_reason: reason }] },
    ].flatMap((e) => m.push({ event: 'message', data: JSON.stringify(e) }) ?? [])
    expect(chunks[1]?.choices[0]?.finish_reason).toBe('stop')
    const enc = anthropicInbound.createStreamEncoder('m', true)
    const sse = chunks.map((c) => enc.chunk(c)).join('') + enc.end()
    expect(sse).toContain('"stop_reason":"end_turn"')
    const res = fromOpenAIChat({ id: 'c', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: reason }] }, 'tgi')
    expect(res.choices[0]?.finish_reason).toBe('stop')
  })
})

describe('upstream errors that echo the key encoded', () => {
  it('redact it JSON-escaped (\\/) and URL-encoded, not only literally', async () => {
    const key = 'local/secret+key=0123456789'
    const bodies = [
      `{"error":{"message":"bad key ${key.replace(/\//g, '\\/')}","code":"invalid_api_key","param":null}}`,
      `{"detail":"Invalid key ${encodeURIComponent(key)}"}`,
      JSON.stringify({ error: { message: `key at https://h/x/${encodeURIComponent(key)}/y` } }),
    ]
    let i = 0
    const server = createServer((req, res) => { req.resume(); req.on('end', () => { res.writeHead(401, { 'content-type': 'application/json' }); res.end(bodies[i++ % bodies.length]) }) })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
    try {
      const cfg = { type: 'openai-compatible', baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, apiKey: key }
      expect(openaiCompatibleFactory.configErrors(cfg)).toEqual([])
      const a = openaiCompatibleFactory.create('vllm', cfg, { dispatcherFor: () => pool })
      for (let n = 0; n < bodies.length; n++) {
        const e = await a.execute({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }, { model: 'm', signal: new AbortController().signal, deadline: Date.now() + 5000, requestId: 'r' }).catch((x: GatewayError) => x)
        const shown = `${(e as GatewayError).message} ${JSON.stringify(e)}`
        expect(shown).toContain('[redacted]')
        for (const form of [key, encodeURIComponent(key), 'secret+key', 'secret%2Bkey']) expect(shown).not.toContain(form)
      }
    } finally {
      await pool.close()
      await new Promise<void>((r) => server.close(() => r()))
    }
  })
})

describe('answers without id or created (llama.cpp, TGI)', () => {
  it('get an id and a created time, streamed (the first id seen, else from the request id) and not', () => {
    const m = createOpenAIStreamMapper('llama', 'req-42')
    const chunks = [
      { object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta: { role: 'assistant', content: 'a' }, finish_reason: null }] },
      { id: 'chatcmpl-up', object: 'chat.completion.chunk', created: 7, model: 'm', choices: [{ index: 0, delta: { content: 'b' }, finish_reason: null }] },
      { id: '', object: 'chat.completion.chunk', created: 0, model: 'm', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] },
    ].flatMap((e) => m.push({ event: 'message', data: JSON.stringify(e) }) ?? [])
    expect(chunks.map((c) => c.id)).toEqual(['chatcmpl-req-42', 'chatcmpl-up', 'chatcmpl-up'])
    expect(chunks[0]?.created).toBeGreaterThan(1_700_000_000)
    expect(chunks[2]?.created).toBe(7)
    const enc = anthropicInbound.createStreamEncoder('m', true)
    expect(chunks.map((c) => enc.chunk(c)).join('')).toContain('"id":"chatcmpl-req-42"')
    const res = fromOpenAIChat({ object: 'chat.completion', model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }] }, 'llama')
    expect(res.id).toMatch(/^chatcmpl-[0-9a-f]{32}$/)
    expect(res.created).toBeGreaterThan(1_700_000_000)
  })
})

describe('openai-compatible error bodies', () => {
  it("keep vLLM's top-level error's type and code, and TGI's error_type, besides the message", () => {
    const vllm = toOpenAIError('vllm', 400, '{"object":"error","message":"max_tokens is too large","type":"BadRequestError","param":"max_tokens","code":400}', {})
    expect(vllm).toMatchObject({ status: 400, message: 'max_tokens is too large', type: 'BadRequestError', providerCode: '400', param: 'max_tokens' })
    const tgi = toOpenAIError('tgi', 422, '{"error":"Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096","error_type":"validation"}', {})
    expect(tgi).toMatchObject({ status: 422, providerCode: 'validation' })
    expect(tgi.message).toContain('Input validation error')
    const azure401 = toOpenAIError('az', 401, '{"statusCode":401,"message":"Unauthorized. Access token is missing"}', {})
    expect(azure401).toMatchObject({ status: 401, message: 'Unauthorized. Access token is missing', type: 'authentication_error', providerCode: null })
  })
})

describe('an error event inside the stream', () => {
  it('takes its status from a numeric HTTP code (vLLM, llama.cpp), else 502', () => {
    const push = (e: object) => { try { createOpenAIStreamMapper('vllm').push({ event: 'message', data: JSON.stringify(e) }); return undefined } catch (x) { return x as GatewayError } }
    expect(push({ error: { object: 'error', message: 'prompt too long', type: 'BadRequestError', param: null, code: 400 } })).toMatchObject({ status: 400, providerCode: '400', message: 'prompt too long' })
    expect(push({ error: { code: 503, message: 'loading model', type: 'unavailable_error' } })).toMatchObject({ status: 503 })
    expect(push({ error: { message: 'The server had an error', type: 'server_error', param: null, code: null } })).toMatchObject({ status: 502 })
    expect(push({ error: { message: 'x', code: 'rate_limit_exceeded' } })).toMatchObject({ status: 502, providerCode: 'rate_limit_exceeded' })
  })
})
