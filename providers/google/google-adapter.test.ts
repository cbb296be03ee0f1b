/** The `google` adapter end to end against the Gemini mock, through a real undici Pool. */
import { Pool } from 'undici'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { GatewayError } from '../../gateway/errors.ts'
import { startGeminiMock, type GeminiMock } from '../../test/helpers/gemini-mock.ts'
import type { ChatChunk, ChatRequest, ExecuteParams, ProviderAdapter } from '../types.ts'
import { googleFactory } from './adapter.ts'

let mock: GeminiMock
let pool: Pool
let adapter: ProviderAdapter

function makeAdapter(extra: Record<string, unknown> = {}): ProviderAdapter {
  const cfg: Record<string, unknown> = { type: 'google', baseUrl: mock.url, apiKey: 'test-key', timeouts: { firstByteMs: 2000, idleMs: 300 }, ...extra }
  expect(googleFactory.configErrors(cfg)).toEqual([])
  return googleFactory.create('gem', cfg as never, { dispatcherFor: () => pool })
}

function params(extraHeaders?: Record<string, string>): ExecuteParams {
  const p: ExecuteParams = { model: 'gemini-2.5-flash', signal: new AbortController().signal, deadline: Date.now() + 5000, requestId: 'req-1' }
  if (extraHeaders) p.extraHeaders = extraHeaders
  return p
}

const ask = (text: string, extra: Partial<ChatRequest> = {}): ChatRequest => ({ model: 'gem/gemini-2.5-flash', messages: [{ role: 'user', content: text }], ...extra })

const tools: ChatRequest['tools'] = [{
  type: 'function',
  function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', additionalProperties: false, properties: { city: { type: 'string' } }, required: ['city'] } },
}]

async function rejection(p: Promise<unknown>): Promise<GatewayError> {
  try { await p } catch (e) { if (e instanceof GatewayError) return e; throw e }
  throw new Error('expected a GatewayError')
}

beforeAll(async () => {
  mock = await startGeminiMock({ apiKey: 'test-key' })
  pool = new Pool(mock.url)
  adapter = makeAdapter()
})

afterEach(() => { mock.reset() })

afterAll(async () => {
  await pool.close()
  await mock.close()
})

describe('google adapter against the Gemini mock', () => {
  it('execute: generateContent with the key in x-goog-api-key, never in the URL', async () => {
    const res = await adapter.execute(ask('echo hello world', { temperature: 0.5, max_tokens: 50 }), params())
    expect(res.choices[0]!.message.content).toBe('echo: hello world')
    expect(res.choices[0]!.finish_reason).toBe('stop')
    expect(res.usage).toMatchObject({ prompt_tokens: 4, completion_tokens: 3, total_tokens: 7 })
    const r = mock.requests[0]!
    expect(r.path).toBe('/v1beta/models/gemini-2.5-flash:generateContent?prettyPrint=false')
    expect(r.headers['x-goog-api-key']).toBe('test-key')
    expect(r.headers['x-request-id']).toBe('req-1')
    expect(r.path).not.toContain('key=')
    expect(r.body.generationConfig).toEqual({ temperature: 0.5, maxOutputTokens: 50 })
  })

  it('execute: a tool call round trip', async () => {
    const first = await adapter.execute(ask('please call tool', { tools }), params())
    const call = first.choices[0]!.message.tool_calls![0]!
    expect(call).toEqual({ id: expect.stringMatching(/^call_mock\w+_0$/), type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } })
    expect(first.choices[0]!.finish_reason).toBe('tool_calls')
    const second = await adapter.execute({
      model: 'x',
      tools,
      messages: [
        { role: 'user', content: 'please call tool' },
        { role: 'assistant', content: null, tool_calls: [call] },
        { role: 'tool', tool_call_id: call.id, content: 'sunny' },
      ],
    }, params())
    expect(second.choices[0]!.message.content).toBe('tool result: sunny')
    expect(mock.requests[1]!.body.contents[2]).toEqual({ role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { content: 'sunny' } } }] })
  })

  it('stream: reassembled text, finish reason and usage via stream.final', async () => {
    const s = await adapter.stream(ask('echo one two three four'), params())
    expect(s.status).toBe(200)
    const chunks: ChatChunk[] = []
    for await (const c of s) chunks.push(c)
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('echo: one two three four')
    expect(chunks.at(-1)!.choices).toEqual([])
    const final = await s.final
    expect(final.choices[0]!.message.content).toBe('echo: one two three four')
    expect(final.choices[0]!.finish_reason).toBe('stop')
    expect(final.usage).toMatchObject({ prompt_tokens: 6, completion_tokens: 5, total_tokens: 11 })
    expect(mock.requests[0]!.path).toBe('/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse')
  })

  it('stream: a tool call arrives whole', async () => {
    const s = await adapter.stream(ask('call tool now', { tools, tool_choice: 'required' }), params())
    for await (const _ of s) { /* drain */ }
    const final = await s.final
    expect(final.choices[0]!.message.tool_calls).toEqual([{ id: expect.stringMatching(/^call_mock\w+_0$/), type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }])
    expect(final.choices[0]!.finish_reason).toBe('tool_calls')
    expect(mock.requests[0]!.body.toolConfig).toEqual({ functionCallingConfig: { mode: 'ANY' } })
  })

  it('embed: embedContent for one input, batchEmbedContents for several', async () => {
    const p = { ...params(), model: 'gemini-embedding-001' }
    const one = await adapter.embed!({ model: 'x', input: 'hello', dimensions: 4 }, p)
    expect(one.data).toHaveLength(1)
    expect((one.data[0]!.embedding as number[]).length).toBe(4)
    expect(one.usage.prompt_tokens).toBeGreaterThan(0)
    const many = await adapter.embed!({ model: 'x', input: ['a', 'b', 'c'], encoding_format: 'base64' }, p)
    expect(many.data.map((d) => d.index)).toEqual([0, 1, 2])
    expect(typeof many.data[0]!.embedding).toBe('string')
    expect(mock.requests.map((r) => r.path)).toEqual([
      '/v1beta/models/gemini-embedding-001:embedContent?prettyPrint=false',
      '/v1beta/models/gemini-embedding-001:batchEmbedContents?prettyPrint=false',
    ])
  })

  it('embed: more than 100 inputs (Gemini\'s batch limit) go in batches of 100, answered as one list in order', async () => {
    const p = { ...params(), model: 'gemini-embedding-001' }
    const input = Array.from({ length: 250 }, (_, i) => `text ${i}`)
    const all = await adapter.embed!({ model: 'x', input, encoding_format: 'base64' }, p)
    expect(mock.requests.map((r) => (r.body.requests as unknown[]).length)).toEqual([100, 100, 50])
    expect(all.data.map((d) => d.index)).toEqual(input.map((_, i) => i))
    const single = await adapter.embed!({ model: 'x', input: ['text 0', 'text 249'], encoding_format: 'base64' }, p)
    expect([all.data[0]!.embedding, all.data[249]!.embedding]).toEqual(single.data.map((d) => d.embedding))
    expect(all.usage.prompt_tokens).toBeGreaterThan(single.usage.prompt_tokens)
  })

  it('429 RESOURCE_EXHAUSTED keeps Retry-After in GatewayError.headers', async () => {
    mock.fault = { status: 429, retryAfter: 7, times: 1 }
    const e = await rejection(adapter.execute(ask('hi'), params()))
    expect(e.code).toBe('MCP_ERR_UPSTREAM_ERROR')
    expect(e.status).toBe(429)
    expect(e.providerCode).toBe('RESOURCE_EXHAUSTED')
    expect(e.headers).toEqual({ 'retry-after': '7' })
    expect((await adapter.execute(ask('hi'), params())).choices).toHaveLength(1)
    expect(adapter.getMetrics().errorsByCode['RESOURCE_EXHAUSTED']).toBeGreaterThanOrEqual(1)
  })

  it('400 INVALID_ARGUMENT (per-request fault header, and a wrong key)', async () => {
    const e = await rejection(adapter.execute(ask('hi'), params({ 'x-mock-fault': 'status=400' })))
    expect([e.status, e.providerCode]).toEqual([400, 'INVALID_ARGUMENT'])
    const bad = makeAdapter({ apiKey: 'wrong' })
    const e2 = await rejection(bad.execute(ask('hi'), params()))
    expect([e2.status, e2.providerCode]).toEqual([400, 'INVALID_ARGUMENT'])
    expect(e2.message).toContain('API key not valid')
  })

  it('a safety-blocked prompt is a 400 content_filter error, streaming or not', async () => {
    const e = await rejection(adapter.execute(ask('this is blocked'), params()))
    expect([e.status, e.providerCode]).toEqual([400, 'content_filter'])
    const s = await adapter.stream(ask('this is blocked'), params())
    const e2 = await rejection((async () => { for await (const _ of s) { /* drain */ } })())
    expect(e2.providerCode).toBe('content_filter')
  })

  it('a cut stream throws MCP_ERR_UPSTREAM_STREAM_INTERRUPTED while iterating', async () => {
    const s = await adapter.stream(ask('echo a b c d e'), params({ 'x-mock-fault': 'cutAfter=2' }))
    const seen: string[] = []
    const e = await rejection((async () => { for await (const c of s) seen.push(c.choices[0]?.delta.content ?? '') })())
    expect(e.code).toBe('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
    expect(seen.join('')).toBe('echo: a')
    await expect(s.final).rejects.toMatchObject({ code: 'MCP_ERR_UPSTREAM_STREAM_INTERRUPTED' })
  })

  it('a malformed event and a stalled stream interrupt it', async () => {
    const s = await adapter.stream(ask('echo a b c'), params({ 'x-mock-fault': 'malformedAfter=1' }))
    const e = await rejection((async () => { for await (const _ of s) { /* drain */ } })())
    expect([e.code, e.details]).toEqual(['MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', 'upstream.malformed_event'])
    const s2 = await adapter.stream(ask('echo a b c'), params({ 'x-mock-fault': 'stallAfter=1' }))
    const e2 = await rejection((async () => { for await (const _ of s2) { /* drain */ } })())
    expect([e2.code, e2.details]).toEqual(['MCP_ERR_UPSTREAM_TIMEOUT', 'upstream.idle_timeout'])
  })

  it('an in-stream error event keeps Google\'s status; a stream without finishReason is interrupted; a reset is MCP_ERR_UPSTREAM_RESET', async () => {
    const s = await adapter.stream(ask('echo a b c'), params({ 'x-mock-fault': 'errorAfter:1 code:UNAVAILABLE' }))
    const e = await rejection((async () => { for await (const _ of s) { /* drain */ } })())
    expect([e.code, e.status, e.providerCode]).toEqual(['MCP_ERR_UPSTREAM_ERROR', 503, 'UNAVAILABLE'])
    const s2 = await adapter.stream(ask('echo a b c'), params({ 'x-mock-fault': 'noFinish' }))
    const e2 = await rejection((async () => { for await (const _ of s2) { /* drain */ } })())
    expect([e2.code, e2.details]).toEqual(['MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', 'upstream.stream_cut'])
    const e3 = await rejection(adapter.execute(ask('hi'), params({ 'x-mock-fault': 'reset' })))
    expect(e3.code).toBe('MCP_ERR_UPSTREAM_RESET')
  })

  it('an unsupported parameter is rejected before any upstream call', async () => {
    const e = await rejection(adapter.execute(ask('hi', { logprobs: true }), params()))
    expect([e.code, e.status, e.param]).toEqual(['MCP_ERR_REQ_PARAM_UNSUPPORTED', 400, 'logprobs'])
    expect(mock.requests).toHaveLength(0)
  })

  it('healthCheck lists models; listModels returns the configured ones', async () => {
    const h = await makeAdapter({ models: ['gemini-2.5-flash'] }).healthCheck()
    expect(h.ok).toBe(true)
    expect(mock.requests[0]!.path).toBe('/v1beta/models')
    expect(makeAdapter({ models: ['gemini-2.5-flash'] }).listModels!()).toEqual(['gemini-2.5-flash'])
    const noKey = await makeAdapter({ apiKey: undefined }).healthCheck()
    expect(noKey).toMatchObject({ ok: false, detail: 'HTTP 403' })
  })
})
