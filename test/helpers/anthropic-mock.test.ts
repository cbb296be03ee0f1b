import Anthropic from '@anthropic-ai/sdk'
import { Pool } from 'undici'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { GatewayError } from '../../gateway/errors.ts'
import { anthropicFactory } from '../../providers/anthropic/adapter.ts'
import type { ChatChunk, ChatRequest, ExecuteParams, ProviderAdapter } from '../../providers/types.ts'
import { parseAnthropicFault, startAnthropicMock, thinkingSignature, type AnthropicMock } from './anthropic-mock.ts'

const KEY = 'sk-ant-test'
const MODEL = 'claude-sonnet-4-5-20250929'
const TOKS = Array.from({ length: 12 }, (_, i) => `tok${i}`).join(' ')
const weatherTool = { name: 'get_weather', description: 'Weather', input_schema: { type: 'object' as const, properties: { city: { type: 'string' } } } }

let mock: AnthropicMock
let client: Anthropic

beforeAll(async () => {
  mock = await startAnthropicMock({ apiKey: KEY })
  client = new Anthropic({ apiKey: KEY, baseURL: mock.url, maxRetries: 0, timeout: 10_000 })
})
afterAll(async () => { await mock.close() })
beforeEach(() => { mock.reset() })

async function raw(path: string, init: RequestInit & { headers?: Record<string, string> } = {}): Promise<Response> {
  return fetch(mock.url + path, { ...init, headers: { 'x-api-key': KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json', ...init.headers } })
}

describe('anthropic-mock with the official SDK', () => {
  it('uses the host form for url', () => {
    expect(mock.url).toBe(`http://127.0.0.1:${mock.port}`)
  })

  it('answers messages.create with a Message and records the headers', async () => {
    const m = await client.messages.create({ model: MODEL, max_tokens: 100, messages: [{ role: 'user', content: 'hello there' }] })
    expect(m).toMatchObject({ type: 'message', role: 'assistant', model: MODEL, stop_reason: 'end_turn', content: [{ type: 'text', text: TOKS }] })
    expect(m.id).toMatch(/^msg_/)
    expect(m.usage).toMatchObject({ input_tokens: 3, output_tokens: 12 })
    expect(mock.requests[0]).toMatchObject({ method: 'POST', path: '/v1/messages', status: 200 })
    // SDK 1.x sends the key as a Bearer token; the raw tests below cover x-api-key.
    expect(mock.requests[0]?.headers['authorization']).toBe(`Bearer ${KEY}`)
    expect(mock.requests[0]?.headers['anthropic-version']).toBeTypeOf('string')
  })

  it('echoes, caps at max_tokens, calls a tool and answers a tool result', async () => {
    const echo = await client.messages.create({ model: MODEL, max_tokens: 100, messages: [{ role: 'user', content: 'echo hi there' }] })
    expect(echo.content).toEqual([{ type: 'text', text: 'echo: hi there' }])
    const capped = await client.messages.create({ model: MODEL, max_tokens: 3, messages: [{ role: 'user', content: 'x' }] })
    expect(capped).toMatchObject({ stop_reason: 'max_tokens', content: [{ text: 'tok0 tok1 tok2' }] })

    const call = await client.messages.create({ model: MODEL, max_tokens: 100, tools: [weatherTool], messages: [{ role: 'user', content: 'please call tool' }] })
    expect(call.stop_reason).toBe('tool_use')
    const use = call.content[0]
    expect(use).toMatchObject({ type: 'tool_use', name: 'get_weather', input: { city: 'Paris' } })
    const id = (use as { id: string }).id
    const after = await client.messages.create({
      model: MODEL, max_tokens: 100, tools: [weatherTool],
      messages: [
        { role: 'user', content: 'please call tool' },
        { role: 'assistant', content: call.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: id, content: '18C sunny' }] },
      ],
    })
    expect(after.content).toEqual([{ type: 'text', text: 'tool result: 18C sunny' }])
  })

  it('streams text with ping events that messages.stream reassembles', async () => {
    const stream = client.messages.stream({ model: MODEL, max_tokens: 100, messages: [{ role: 'user', content: 'echo streaming works' }] })
    const seen: string[] = []
    stream.on('text', (t) => seen.push(t))
    expect(await stream.finalText()).toBe('echo: streaming works')
    expect(seen).toEqual(['echo:', ' streaming', ' works'])
    const final = await stream.finalMessage()
    expect(final.usage.output_tokens).toBe(3)

    const wire = await (await raw('/v1/messages', { method: 'POST', body: JSON.stringify({ model: MODEL, max_tokens: 5, stream: true, messages: [{ role: 'user', content: 'x' }] }) })).text()
    const events = wire.split('\n\n').filter(Boolean).map((e) => e.split('\n')[0])
    expect(events).toEqual([
      'event: message_start', 'event: content_block_start', 'event: ping',
      ...Array(5).fill('event: content_block_delta'),
      'event: content_block_stop', 'event: message_delta', 'event: message_stop',
    ])
  })

  it('streams tool_use input as input_json_delta that messages.stream reassembles', async () => {
    const stream = client.messages.stream({ model: MODEL, max_tokens: 100, tools: [weatherTool], messages: [{ role: 'user', content: 'call tool now' }] })
    const partials: string[] = []
    stream.on('inputJson', (partial) => partials.push(partial))
    const m = await stream.finalMessage()
    expect(m.stop_reason).toBe('tool_use')
    expect(m.content[0]).toMatchObject({ type: 'tool_use', name: 'get_weather', input: { city: 'Paris' } })
    expect(partials).toEqual(['', '{"ci', 'ty": "Pa', 'ris"}']) // the real API opens with an empty fragment too
  })

  it('answers 529 overloaded_error and 429 with retry-after', async () => {
    mock.fault = 'status:529,times:1'
    const e1 = await client.messages.create({ model: MODEL, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e)
    expect(e1).toBeInstanceOf(Anthropic.APIError)
    expect((e1 as InstanceType<typeof Anthropic.APIError>).status).toBe(529)
    expect((e1 as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } })
    expect(mock.fault).toBeNull()

    const res = await raw('/v1/messages', { method: 'POST', headers: { 'x-mock-fault': 'retryAfter:7' }, body: '{}' })
    expect(res.status).toBe(429)
    expect(res.headers.get('retry-after')).toBe('7')
    expect(await res.json()).toMatchObject({ type: 'error', error: { type: 'rate_limit_error' }, request_id: expect.stringMatching(/^req_/) })
    const e2 = await client.messages.create({ model: MODEL, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-mock-fault': 'type:rate_limit_error' } }).catch((e: unknown) => e)
    expect(e2).toBeInstanceOf(Anthropic.RateLimitError)
  })

  it('sends an error event mid-stream that the SDK raises', async () => {
    const stream = client.messages.stream({ model: MODEL, max_tokens: 100, messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-mock-fault': 'errorAfter:2' } })
    await expect(stream.finalMessage()).rejects.toMatchObject({ type: 'overloaded_error' })
  })

  it('validates auth, version, JSON and required fields', async () => {
    const noKey = await fetch(`${mock.url}/v1/messages`, { method: 'POST', headers: { 'anthropic-version': '2023-06-01' }, body: '{}' })
    expect(noKey.status).toBe(401)
    expect(await noKey.json()).toMatchObject({ error: { type: 'authentication_error' } })
    expect((await raw('/v1/messages', { method: 'POST', headers: { 'x-api-key': 'wrong' }, body: '{}' })).status).toBe(401)
    expect((await fetch(`${mock.url}/v1/models`, { headers: { authorization: 'Bearer wrong', 'anthropic-version': '2023-06-01' } })).status).toBe(401)
    expect((await raw('/v1/models')).status).toBe(200)
    const noVersion = await fetch(`${mock.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': KEY }, body: '{}' })
    expect(noVersion.status).toBe(400)
    const noMax = await raw('/v1/messages', { method: 'POST', body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'x' }] }) })
    expect(noMax.status).toBe(400)
    expect(await noMax.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: 'max_tokens: Field required' } })
    expect((await raw('/v1/messages', { method: 'POST', body: '{bad' })).status).toBe(400)
    expect((await raw('/v1/nope')).status).toBe(404)
    const models = await client.models.list()
    expect(models.data.map((m) => m.id)).toContain(MODEL)
  })

  it('refuses a custom tool name outside ^[a-zA-Z0-9_-]{1,64}$, as Anthropic does', async () => {
    const post = (name: string) => raw('/v1/messages', { method: 'POST', body: JSON.stringify({ model: MODEL, max_tokens: 8, messages: [{ role: 'user', content: 'x' }], tools: [weatherTool, { ...weatherTool, name }] }) })
    const bad = await post('my.tool')
    expect(bad.status).toBe(400)
    expect(await bad.json()).toMatchObject({ error: { type: 'invalid_request_error', message: "tools.1.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'" } })
    expect((await post('x'.repeat(65))).status).toBe(400)
    expect((await post('get-weather_2')).status).toBe(200)
  })

  it('parses the fault DSL', () => {
    expect(parseAnthropicFault('529')).toEqual({ status: 529 })
    expect(parseAnthropicFault('type:overloaded_error times:2')).toEqual({ type: 'overloaded_error', status: 529, times: 2 })
    expect(parseAnthropicFault('retryAfter=3')).toEqual({ retryAfter: 3, status: 429 })
    expect(parseAnthropicFault('cutAfter:3,noStop')).toEqual({ cutAfter: 3, noStop: true })
    expect(parseAnthropicFault('errorAfter:1 type:api_error')).toEqual({ errorAfter: 1, type: 'api_error' })
    expect(() => parseAnthropicFault('bogus:1')).toThrow()
  })

  it('close() ends hung requests', async () => {
    const m2 = await startAnthropicMock()
    const c2 = new Anthropic({ apiKey: 'k', baseURL: m2.url, maxRetries: 0 })
    const hung = c2.messages.create({ model: MODEL, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-mock-fault': 'hang' } }).catch((e: unknown) => e)
    await new Promise((r) => setTimeout(r, 50))
    await m2.close()
    expect(await hung).toBeInstanceOf(Error)
  })
})

describe('anthropic adapter against the mock', () => {
  let adapter: ProviderAdapter
  let pool: Pool
  const params = (): ExecuteParams => ({ model: MODEL, signal: new AbortController().signal, deadline: Date.now() + 10_000, requestId: 'req-test' })
  const chat = (content: string, extra: Partial<ChatRequest> = {}): ChatRequest => ({ model: 'claude', messages: [{ role: 'user', content }], ...extra })
  const tools: NonNullable<ChatRequest['tools']> = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }]

  beforeAll(() => {
    adapter = anthropicFactory.create('claude', { type: 'anthropic', baseUrl: mock.url, apiKey: KEY }, {
      dispatcherFor: (origin) => (pool ??= new Pool(origin)),
    })
  })
  afterAll(async () => { await pool?.close() })

  async function drain(s: AsyncIterable<ChatChunk>): Promise<{ chunks: ChatChunk[]; error?: unknown }> {
    const chunks: ChatChunk[] = []
    try { for await (const c of s) chunks.push(c) } catch (error) { return { chunks, error } }
    return { chunks }
  }

  it('executes: body translated with max_tokens default and auth headers; response mapped', async () => {
    const res = await adapter.execute(chat('echo hi', { messages: [{ role: 'system', content: 'S' }, { role: 'user', content: 'echo hi' }] }), params())
    expect(res.choices[0]).toEqual({ index: 0, message: { role: 'assistant', content: 'echo: hi' }, finish_reason: 'stop' })
    expect(res.id).toMatch(/^msg_/)
    expect(res.usage).toMatchObject({ prompt_tokens: 2, completion_tokens: 2, total_tokens: 4 })
    const rec = mock.requests[0]!
    expect(rec.body).toEqual({ model: MODEL, max_tokens: 4096, system: 'S', messages: [{ role: 'user', content: 'echo hi' }] })
    expect(rec.headers['anthropic-version']).toBe('2023-06-01')
    expect(rec.headers['x-request-id']).toBe('req-test')
  })

  it('executes a tool round trip', async () => {
    const call = await adapter.execute(chat('call tool', { tools }), params())
    const tc = call.choices[0]!.message.tool_calls![0]!
    expect(call.choices[0]!.finish_reason).toBe('tool_calls')
    expect(JSON.parse(tc.function.arguments)).toEqual({ city: 'Paris' })
    const res = await adapter.execute(chat('', {
      tools,
      messages: [{ role: 'user', content: 'call tool' }, { role: 'assistant', content: null, tool_calls: [tc] }, { role: 'tool', tool_call_id: tc.id, content: '18C' }],
    }), params())
    expect(res.choices[0]!.message.content).toBe('tool result: 18C')
  })

  it('streams text and tool calls into canonical chunks', async () => {
    const s = await adapter.stream(chat('x', { max_tokens: 4 }), params())
    const { chunks, error } = await drain(s)
    expect(error).toBeUndefined()
    const final = await s.final
    expect(final.choices[0]?.message.content).toBe('tok0 tok1 tok2 tok3')
    expect(final.choices[0]?.finish_reason).toBe('length')
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { completion_tokens: 4 } })

    const t = await adapter.stream(chat('call tool', { tools }), params())
    await drain(t)
    const tf = await t.final
    expect(tf.choices[0]?.finish_reason).toBe('tool_calls')
    expect(tf.choices[0]?.message.tool_calls?.[0]).toMatchObject({ type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris"}' } })
  })

  it('maps HTTP errors (529 overloaded, 429 with Retry-After) keeping the provider type', async () => {
    mock.fault = 'status:529,times:1'
    const e = await adapter.execute(chat('x'), params()).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(GatewayError)
    expect(e).toMatchObject({ code: 'MCP_ERR_UPSTREAM_ERROR', status: 529, providerCode: 'overloaded_error', message: 'Overloaded' })
    mock.fault = 'retryAfter:2,times:1'
    const r = await adapter.stream(chat('x'), params()).catch((x: unknown) => x)
    expect(r).toMatchObject({ status: 429, providerCode: 'rate_limit_error', headers: { 'retry-after': '2' } })
  })

  it.each([
    ['cutAfter:2', 'MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', 'upstream.stream_interrupted'],
    ['noStop', 'MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', 'upstream.stream_cut'],
    ['malformedAfter:1', 'MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', 'upstream.malformed_event'],
    ['errorAfter:1', 'MCP_ERR_UPSTREAM_ERROR', 'upstream.http_529'],
  ])('stream fault %s → %s (%s)', async (fault, code, details) => {
    mock.fault = `${fault},times:1`
    const s = await adapter.stream(chat('x'), params())
    const { error } = await drain(s)
    expect(error).toBeInstanceOf(GatewayError)
    expect(error).toMatchObject({ code })
    // A socket cut can surface as the SSE end or as the undici error, depending on timing.
    if (fault !== 'cutAfter:2') expect((error as GatewayError).details).toBe(details)
    await expect(s.final).rejects.toBeInstanceOf(GatewayError)
  })

  it('health-checks GET /v1/models', async () => {
    const h = await adapter.healthCheck()
    expect(h.ok).toBe(true)
    expect(mock.requests.at(-1)).toMatchObject({ method: 'GET', path: '/v1/models', status: 200 })
  })
})

describe('anthropic-mock extended thinking', () => {
  const thinking = { type: 'enabled' as const, budget_tokens: 1024 }
  const ask = { model: MODEL, max_tokens: 2048, thinking, tools: [weatherTool] }

  it('opens the reply with a signed thinking block, streamed as thinking_delta and signature_delta', async () => {
    const m = await client.messages.create({ ...ask, messages: [{ role: 'user', content: 'echo hi' }] })
    expect(m.content).toEqual([{ type: 'thinking', thinking: 'Thinking about: echo: hi', signature: thinkingSignature('Thinking about: echo: hi') }, { type: 'text', text: 'echo: hi' }])
    const s = client.messages.stream({ ...ask, messages: [{ role: 'user', content: 'echo hi' }] })
    const types: string[] = []
    s.on('streamEvent', (e) => { if (e.type === 'content_block_delta') types.push(e.delta.type) })
    expect((await s.finalMessage()).content).toEqual(m.content)
    expect(types).toEqual(['thinking_delta', 'thinking_delta', 'thinking_delta', 'thinking_delta', 'signature_delta', 'text_delta', 'text_delta'])
  })

  it('refuses a tool loop whose last assistant turn lacks its thinking block, or whose signature was altered', async () => {
    const first = await client.messages.create({ ...ask, messages: [{ role: 'user', content: 'call tool' }] })
    const use = first.content[1]!
    const turn2 = (content: Anthropic.ContentBlockParam[]): Promise<unknown> => client.messages.create({
      ...ask, messages: [{ role: 'user', content: 'call tool' }, { role: 'assistant', content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: (use as Anthropic.ToolUseBlock).id, content: 'sunny' }] }],
    }).catch((e: unknown) => e)
    expect(await turn2(first.content)).toMatchObject({ type: 'message', content: [{ type: 'thinking' }, { type: 'text', text: 'tool result: sunny' }] })
    const missing = await turn2([use])
    expect(missing).toBeInstanceOf(Anthropic.BadRequestError)
    expect((missing as Error).message).toContain('messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`')
    const altered = await turn2([{ ...(first.content[0] as Anthropic.ThinkingBlock), signature: 'forged' }, use])
    expect((altered as Error).message).toContain('Invalid `signature` in `thinking` block')
  })
})
