import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { Pool } from 'undici'
import { GatewayError } from '../../gateway/errors.ts'
import type { ChatChunk, ChatRequest, ExecuteParams, ProviderAdapter, ToolDefinition } from '../types.ts'
import { ChunkAggregator } from '../shared/aggregate.ts'
import { createNdjsonSplitter } from '../shared/sse.ts'
import { startOllamaMock, type OllamaMock } from '../../test/helpers/ollama-mock.ts'
import { ollamaFactory } from './adapter.ts'
import { toOllamaChat, toOllamaEmbed, type OllamaRequestOptions } from './request.ts'
import { fromOllamaChat, fromOllamaEmbed } from './response.ts'
import { createOllamaStreamMapper } from './stream.ts'
import { toOllamaError } from './errors.ts'

const fixture = (name: string): string => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')
const meta = { provider: 'local', id: 'chatcmpl-test', now: 1700000000 }
const opts: OllamaRequestOptions = { provider: 'local', basePath: '', dropUnsupported: false }
const WEATHER: ToolDefinition = {
  type: 'function',
  function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } } }, strict: true },
}

/** Feeds an NDJSON text through the splitter and a mapper, like the HttpAdapter does. */
function mapStream(text: string, pieceSize = 7): ChatChunk[] {
  const mapper = createOllamaStreamMapper('llama3.2', meta)
  const out: ChatChunk[] = []
  const split = createNdjsonSplitter((data) => out.push(...(mapper.push({ event: 'message', data }) ?? [])))
  for (let i = 0; i < text.length; i += pieceSize) split.feed(text.slice(i, i + pieceSize))
  split.end()
  out.push(...(mapper.end() ?? []))
  return out
}

function catchErr(fn: () => unknown): GatewayError {
  try { fn() } catch (e) { return e as GatewayError }
  throw new Error('expected an error')
}

describe('ollama request translation', () => {
  it('maps messages, images, tool calls, tool results, options and format', () => {
    const req: ChatRequest = {
      model: 'x',
      messages: [
        { role: 'developer', content: 'be brief' },
        { role: 'user', content: [{ type: 'text', text: 'Look:' }, { type: 'text', text: 'what is this?' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }] },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_0', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        { role: 'tool', tool_call_id: 'call_0', content: [{ type: 'text', text: '18C' }] },
      ],
      temperature: 0.2, top_p: 0.9, max_tokens: 10, max_completion_tokens: 20, stop: 'END', seed: 7,
      presence_penalty: 0.1, frequency_penalty: 0.3,
      tools: [WEATHER], tool_choice: 'auto', user: 'u1', stream_options: { include_usage: true }, n: 1,
      response_format: { type: 'json_object' },
    }
    const up = toOllamaChat(req, 'llama3.2', true, { ...opts, keepAlive: '5m' })
    expect(up.path).toBe('/api/chat')
    expect(up.body).toEqual({
      model: 'llama3.2',
      stream: true,
      keep_alive: '5m',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'Look:\nwhat is this?', images: ['iVBORw0KGgo='] },
        { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }] },
        { role: 'tool', content: '18C', tool_name: 'get_weather' },
      ],
      tools: [{ type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: WEATHER.function.parameters } }],
      format: 'json',
      options: { temperature: 0.2, top_p: 0.9, num_predict: 20, stop: ['END'], seed: 7, presence_penalty: 0.1, frequency_penalty: 0.3 },
    })
  })

  it('sends a json_schema as the format object, and tool_choice none drops the tools', () => {
    const schema = { type: 'object', properties: { a: { type: 'number' } } }
    const up = toOllamaChat({ model: 'x', messages: [{ role: 'user', content: 'hi' }], tools: [WEATHER], tool_choice: 'none', response_format: { type: 'json_schema', json_schema: { name: 's', schema } } }, 'm', false, opts)
    expect(up.body).toEqual({ model: 'm', stream: false, messages: [{ role: 'user', content: 'hi' }], format: schema })
  })

  it('answers 400 naming what Ollama cannot do, unless dropUnsupportedParams', () => {
    const http = { model: 'x', messages: [{ role: 'user' as const, content: [{ type: 'text' as const, text: 'look' }, { type: 'image_url' as const, image_url: { url: 'https://example.com/a.png' } }] }] }
    const e = catchErr(() => toOllamaChat(http, 'm', false, opts))
    expect(e).toBeInstanceOf(GatewayError)
    expect(e.code).toBe('MCP_ERR_REQ_PARAM_UNSUPPORTED')
    expect(e.status).toBe(400)
    expect(e.param).toBe('messages[0].content[1].image_url')
    expect(e.message).toContain("'messages[0].content[1].image_url'")
    for (const [k, v] of [['n', 2], ['logprobs', true], ['logit_bias', { 1: 2 }], ['tool_choice', 'required'], ['parallel_tool_calls', false], ['store', true], ['reasoning_effort', 'xhigh']] as const) {
      const err = catchErr(() => toOllamaChat({ model: 'x', messages: [{ role: 'user', content: 'hi' }], [k]: v }, 'm', false, opts))
      expect(err.param).toBe(k)
    }
    expect(catchErr(() => toOllamaChat({ model: 'x', messages: [{ role: 'user', content: 'hi', name: 'bob' }] }, 'm', false, opts)).param).toBe('messages[0].name')
    expect(toOllamaChat({ model: 'x', messages: [{ role: 'user', content: 'hi' }], store: false, metadata: {}, service_tier: 'auto' }, 'm', false, opts).body).toEqual({ model: 'm', stream: false, messages: [{ role: 'user', content: 'hi' }] })
    const dropped = toOllamaChat({ ...http, n: 3, logit_bias: {} }, 'm', false, { ...opts, dropUnsupported: true })
    expect(dropped.body).toEqual({ model: 'm', stream: false, messages: [{ role: 'user', content: 'look' }] })
  })

  it("a malformed request's 400 has details request.body_invalid, as anthropic's and openai's (it was req_body_invalid)", () => {
    const calls = [{ id: 'a', type: 'function' as const, function: { name: 'f', arguments: '{not json' } }]
    const e = catchErr(() => toOllamaChat({ model: 'x', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: null, tool_calls: calls }] }, 'm', false, opts))
    expect([e.code, e.param, e.details]).toEqual(['MCP_ERR_REQ_BODY_INVALID', 'messages[1].tool_calls[0].function.arguments', 'request.body_invalid'])
  })

  it('answers 400 for a user message with null content and for a role Ollama has no equivalent for (not a crash, not a role-less message)', () => {
    // The inbound schema accepts content: null on any role; a TypeError here became a 502 "bad response" from the provider.
    const nullContent = catchErr(() => toOllamaChat({ model: 'x', messages: [{ role: 'user', content: null as never }] }, 'm', false, opts))
    expect(nullContent).toBeInstanceOf(GatewayError)
    expect(nullContent.code).toBe('MCP_ERR_REQ_BODY_INVALID')
    expect(nullContent.param).toBe('messages[0].content')
    // The deprecated `function` role (once sent upstream without a role) is a tool result now
    // (shared/legacy-functions.ts): one that names no earlier call answers nothing, whatever dropUnsupported says.
    const legacy: ChatRequest = { model: 'x', messages: [{ role: 'user', content: 'hi' }, { role: 'function', content: 'r' } as never] }
    for (const o of [opts, { ...opts, dropUnsupported: true }]) {
      const role = catchErr(() => toOllamaChat(legacy, 'm', false, o))
      expect(role).toBeInstanceOf(GatewayError)
      expect(role.code).toBe('MCP_ERR_REQ_BODY_INVALID')
      expect(role.param).toBe('messages[1].name')
    }
  })

  it('joins several text parts with a line break (they were glued: "Hello" + "world" reached the model as "Helloworld")', () => {
    const parts = (...t: string[]) => t.map((text) => ({ type: 'text' as const, text }))
    const up = toOllamaChat({
      model: 'x',
      messages: [
        { role: 'system', content: parts('Be brief.', 'Answer in French.') },
        { role: 'user', content: [...parts('Hello', '', 'world'), { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }] },
        { role: 'assistant', content: parts('Bonjour', 'le monde') },
        { role: 'user', content: parts('Thanks') },
      ],
    }, 'm', false, opts)
    expect(up.body).toMatchObject({
      messages: [
        { role: 'system', content: 'Be brief.\nAnswer in French.' },
        { role: 'user', content: 'Hello\nworld', images: ['iVBORw0KGgo='] },
        { role: 'assistant', content: 'Bonjour\nle monde' },
        { role: 'user', content: 'Thanks' },
      ],
    })
  })

  it('rejects tool-call arguments that are not a JSON object', () => {
    const e = catchErr(() => toOllamaChat({ model: 'x', messages: [{ role: 'assistant', tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '{bad' } }] }] }, 'm', false, opts))
    expect(e.code).toBe('MCP_ERR_REQ_BODY_INVALID')
    expect(e.param).toBe('messages[0].tool_calls[0].function.arguments')
  })

  it('reads a tool call without arguments (or with blank ones) as {}, like the anthropic and google translations', () => {
    const calls = [
      { id: 'a', type: 'function', function: { name: 'f' } },
      { id: 'b', type: 'function', function: { name: 'g', arguments: '' } },
      { id: 'c', type: 'function', function: { name: 'h', arguments: ' \n' } },
    ] as never
    const up = toOllamaChat({ model: 'x', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: null, tool_calls: calls }] }, 'm', false, opts)
    expect((up.body as { messages: unknown[] }).messages[1]).toEqual({
      role: 'assistant', content: '',
      tool_calls: [{ function: { name: 'f', arguments: {} } }, { function: { name: 'g', arguments: {} } }, { function: { name: 'h', arguments: {} } }],
    })
  })

  it('maps embeddings requests', () => {
    expect(toOllamaEmbed({ model: 'e', input: ['a', 'b'], dimensions: 4, encoding_format: 'float' }, 'nomic', opts)).toEqual({ path: '/api/embed', body: { model: 'nomic', input: ['a', 'b'], dimensions: 4 } })
    expect(catchErr(() => toOllamaEmbed({ model: 'e', input: [1, 2, 3] }, 'nomic', opts)).param).toBe('input')
    // base64 is encoded by the gateway (response side): Ollama is asked for floats.
    expect(toOllamaEmbed({ model: 'e', input: 'a', encoding_format: 'base64' }, 'nomic', opts)).toEqual({ path: '/api/embed', body: { model: 'nomic', input: 'a' } })
  })
})

describe('ollama response translation (fixtures)', () => {
  it('maps a chat response', () => {
    const r = fromOllamaChat(JSON.parse(fixture('chat.json')), 'llama3.2', meta)
    expect(r).toEqual({
      id: 'chatcmpl-test', object: 'chat.completion', created: 1735689600, model: 'llama3.2',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hello! How are you today?' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 26, completion_tokens: 298, total_tokens: 324 },
    })
  })

  it('maps tool calls: ids from the response id, arguments as JSON text, finish tool_calls', () => {
    const r = fromOllamaChat(JSON.parse(fixture('chat-tools.json')), 'llama3.2', meta)
    expect(r.choices[0]).toEqual({
      index: 0,
      message: { role: 'assistant', content: null, tool_calls: [{ id: 'call_test_0', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","unit":"celsius"}' } }] },
      finish_reason: 'tool_calls',
    })
  })

  it('gives tool calls ids unique per response (not call_0 on every turn), the same scheme streamed or not', () => {
    // Before: every turn's first call was call_0, so a history held the same id twice (Anthropic rejects
    // duplicate tool_use ids, and tool results matched the wrong call).
    const body = JSON.parse(fixture('chat-tools.json'))
    const one = fromOllamaChat(body, 'llama3.2', { ...meta, id: 'chatcmpl-0f3e2d1c-aaaa-4bbb-8ccc-123456789abc' })
    const two = fromOllamaChat(body, 'llama3.2', { ...meta, id: 'chatcmpl-9a8b7c6d-aaaa-4bbb-8ccc-123456789abc' })
    expect(one.choices[0]?.message.tool_calls?.[0]?.id).toBe('call_0f3e2d1caaaa4bbb8ccc123456789abc_0')
    expect(two.choices[0]?.message.tool_calls?.[0]?.id).toBe('call_9a8b7c6daaaa4bbb8ccc123456789abc_0')
    const streamed = mapStream(fixture('chat-stream-tools.ndjson')).flatMap((c) => c.choices[0]?.delta.tool_calls ?? []).map((t) => t.id)
    expect(streamed).toEqual(['call_test_0', 'call_test_1'])
    // An id Ollama sent is kept.
    expect(fromOllamaChat({ message: { content: '', tool_calls: [{ id: 'x1', function: { name: 'f', arguments: {} } }] } }, 'm', meta).choices[0]?.message.tool_calls?.[0]?.id).toBe('x1')
  })

  it('maps embeddings', () => {
    const r = fromOllamaEmbed(JSON.parse(fixture('embed.json')), 'nomic', 'local')
    expect(r.data.map((d) => d.index)).toEqual([0, 1])
    expect(r.data[1]?.embedding).toEqual([-0.0098027075, 0.06042469, 0.025257962, -0.006364387])
    expect(r.usage).toEqual({ prompt_tokens: 8, total_tokens: 8 })
  })

  it('maps an NDJSON text stream to chunks with a finish chunk and a usage chunk', () => {
    const chunks = mapStream(fixture('chat-stream.ndjson'))
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? null)).toEqual(['The', ' sky', ' is blue.', null, null])
    expect(chunks[0]?.choices[0]?.delta.role).toBe('assistant')
    expect(chunks[3]?.choices[0]?.finish_reason).toBe('stop')
    expect(chunks[4]).toMatchObject({ choices: [], usage: { prompt_tokens: 26, completion_tokens: 4, total_tokens: 30 } })
    expect(new Set(chunks.map((c) => c.id))).toEqual(new Set(['chatcmpl-test']))
  })

  it('maps streamed tool calls with increasing indexes and ids', () => {
    const agg = new ChunkAggregator()
    for (const c of mapStream(fixture('chat-stream-tools.ndjson'), 13)) agg.add(c)
    const r = agg.toResponse()
    expect(r.choices[0]?.finish_reason).toBe('tool_calls')
    expect(r.choices[0]?.message.tool_calls).toEqual([
      { id: 'call_test_0', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
      { id: 'call_test_1', type: 'function', function: { name: 'get_time', arguments: '{"tz":"Europe/Paris","precise":true}' } },
    ])
    expect(r.usage?.total_tokens).toBe(151)
  })

  it('raises on EOF before done, on an error line and on a malformed line', () => {
    expect(catchErr(() => mapStream(fixture('chat-stream-cut.ndjson'))).code).toBe('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
    const e = catchErr(() => mapStream(fixture('chat-stream-error.ndjson')))
    expect(e.code).toBe('MCP_ERR_UPSTREAM_ERROR')
    expect(e.message).toContain('unexpected EOF')
    expect(catchErr(() => mapStream('{"model":"x","message":{"content":"a"},"done":false}\n{oops\n')).details).toBe('upstream.malformed_event')
  })

  it('maps error bodies', () => {
    const e = toOllamaError('local', 404, '{"error":"model \\"nope\\" not found, try pulling it first"}', {})
    expect(e.status).toBe(404)
    expect(e.providerCode).toBe('model_not_found')
    expect(e.message).toContain('not found')
    expect(toOllamaError('local', 500, 'boom', {}).message).toBe('boom')
  })
})

describe('ollama adapter against the mock', () => {
  let mock: OllamaMock
  const pools = new Map<string, Pool>()
  const deps = {
    dispatcherFor(origin: string): Pool {
      let p = pools.get(origin)
      if (!p) { p = new Pool(origin, { connections: 4 }); pools.set(origin, p) }
      return p
    },
  }
  const params = (model = 'llama3.2'): ExecuteParams => ({ model, signal: new AbortController().signal, deadline: Date.now() + 10_000, requestId: 'req-1' })

  function adapter(extra: Record<string, unknown> = {}): ProviderAdapter {
    const cfg = { type: 'ollama', baseUrl: mock.url, ...extra }
    expect(ollamaFactory.configErrors(cfg)).toEqual([])
    return ollamaFactory.create('local', cfg, deps)
  }

  async function drain(a: ProviderAdapter, req: ChatRequest, p = params()): Promise<{ chunks: ChatChunk[]; text: string; err?: unknown; stream: Awaited<ReturnType<ProviderAdapter['stream']>> }> {
    const stream = await a.stream(req, p)
    const chunks: ChatChunk[] = []
    try {
      for await (const c of stream) chunks.push(c)
    } catch (err) {
      return { chunks, text: chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), err, stream }
    }
    return { chunks, text: chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), stream }
  }

  beforeAll(async () => { mock = await startOllamaMock() })
  beforeEach(() => mock.reset())
  afterAll(async () => {
    await Promise.all([...pools.values()].map((p) => p.close()))
    await mock.close()
  })

  it('validates config and applies the default host', () => {
    const cfg: Record<string, unknown> = { type: 'ollama' }
    expect(ollamaFactory.configErrors(cfg)).toEqual([])
    expect(cfg['baseUrl']).toBe('http://127.0.0.1:11434')
    expect(ollamaFactory.configErrors({ type: 'ollama', baseUrl: 'http://h:11434/api' })[0]).toContain('without /api')
    expect(ollamaFactory.configErrors({ type: 'ollama', nope: 1 })).toEqual(['nope: unknown key'])
  })

  it('executes a chat', async () => {
    const r = await adapter().execute({ model: 'x', messages: [{ role: 'user', content: 'echo hello world' }] }, params())
    expect(r.choices[0]?.message.content).toBe('echo: hello world')
    expect(r.choices[0]?.finish_reason).toBe('stop')
    expect(r.object).toBe('chat.completion')
    expect(r.usage).toEqual({ prompt_tokens: 4, completion_tokens: 3, total_tokens: 7 })
    expect(mock.requests[0]?.path).toBe('/api/chat')
    expect(mock.requests[0]?.body).toMatchObject({ model: 'llama3.2', stream: false })
    expect(mock.requests[0]?.headers['x-request-id']).toBe('req-1')
  })

  it('executes a tool call and the tool-result round trip', async () => {
    const a = adapter()
    const r = await a.execute({ model: 'x', messages: [{ role: 'user', content: 'please call tool' }], tools: [WEATHER] }, params())
    const call = r.choices[0]?.message.tool_calls?.[0]
    expect(call).toEqual({ id: expect.stringMatching(/^call_[0-9a-f]{32}_0$/), type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } })
    expect(r.choices[0]?.finish_reason).toBe('tool_calls')
    const again = await a.execute({ model: 'x', messages: [{ role: 'user', content: 'please call tool' }], tools: [WEATHER] }, params())
    expect(again.choices[0]?.message.tool_calls?.[0]?.id).not.toBe(call!.id)
    const r2 = await a.execute({
      model: 'x',
      tools: [WEATHER],
      messages: [
        { role: 'user', content: 'please call tool' },
        { role: 'assistant', content: null, tool_calls: [call!] },
        { role: 'tool', tool_call_id: call!.id, content: 'sunny, 18C' },
      ],
    }, params())
    expect(r2.choices[0]?.message.content).toBe('tool result: sunny, 18C')
    expect(mock.requests[2]?.body.messages.slice(1)).toEqual([
      { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }] },
      { role: 'tool', content: 'sunny, 18C', tool_name: 'get_weather' },
    ])
  })

  it('streams text with a finish reason and the final usage', async () => {
    const { chunks, text, err, stream } = await drain(adapter(), { model: 'x', stream: true, messages: [{ role: 'user', content: 'hi' }] })
    expect(err).toBeUndefined()
    expect(stream.status).toBe(200)
    expect(text).toBe('tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7 tok8 tok9 tok10 tok11')
    const last = chunks[chunks.length - 1]!
    expect(last.choices).toEqual([])
    expect(last.usage).toEqual({ prompt_tokens: 1, completion_tokens: 12, total_tokens: 13 })
    const final = await stream.final
    expect(final.choices[0]?.finish_reason).toBe('stop')
    expect(final.choices[0]?.message.content).toBe(text)
    expect(final.usage?.completion_tokens).toBe(12)
    expect(mock.requests[0]?.body.stream).toBe(true)
  })

  it('streams a length stop when max_tokens caps the answer', async () => {
    const { text, stream } = await drain(adapter(), { model: 'x', max_tokens: 3, messages: [{ role: 'user', content: 'hi' }] })
    expect(text).toBe('tok0 tok1 tok2')
    expect((await stream.final).choices[0]?.finish_reason).toBe('length')
    expect(mock.requests[0]?.body.options).toEqual({ num_predict: 3 })
  })

  it('streams tool calls', async () => {
    const { stream, err } = await drain(adapter(), { model: 'x', messages: [{ role: 'user', content: 'call tool now' }], tools: [WEATHER] })
    expect(err).toBeUndefined()
    const final = await stream.final
    expect(final.choices[0]?.finish_reason).toBe('tool_calls')
    expect(final.choices[0]?.message.tool_calls).toEqual([{ id: expect.stringMatching(/^call_[0-9a-f]{32}_0$/), type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }])
    expect(final.choices[0]?.message.tool_calls?.[0]?.id).toBe(`call_${final.id.slice('chatcmpl-'.length).replaceAll('-', '')}_0`)
    expect(final.usage?.completion_tokens).toBe(8)
  })

  it('a stream cut before the done line is interrupted', async () => {
    mock.fault = 'cutAfter:2'
    const { err, text, stream } = await drain(adapter(), { model: 'x', messages: [{ role: 'user', content: 'hi' }] })
    expect(text).toBe('tok0 tok1')
    expect((err as GatewayError).code).toBe('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
    await expect(stream.final).rejects.toMatchObject({ code: 'MCP_ERR_UPSTREAM_STREAM_INTERRUPTED' })
  })

  it('a stream that ends without done:true is interrupted', async () => {
    const { err } = await drain(adapter(), { model: 'x', messages: [{ role: 'user', content: 'hi' }] }, params())
    expect(err).toBeUndefined()
    mock.fault = 'noDone'
    const r = await drain(adapter(), { model: 'x', messages: [{ role: 'user', content: 'hi' }] })
    expect((r.err as GatewayError).details).toBe('upstream.stream_cut')
  })

  it('an error line mid-stream and a malformed line raise', async () => {
    const a = adapter()
    const r = await drain(a, { model: 'x', messages: [{ role: 'user', content: 'stream error please' }] })
    expect(r.text).toBe('tok0')
    expect((r.err as GatewayError).message).toContain('mock failure')
    mock.fault = 'malformedAfter:1'
    const m = await drain(a, { model: 'x', messages: [{ role: 'user', content: 'hi' }] })
    expect((m.err as GatewayError).details).toBe('upstream.malformed_event')
    expect(a.getMetrics().errors).toBe(2)
  })

  it('a stalled stream hits the idle timeout', async () => {
    mock.fault = 'stallAfter:1'
    const r = await drain(adapter({ timeouts: { idleMs: 150 } }), { model: 'x', messages: [{ role: 'user', content: 'hi' }] })
    expect((r.err as GatewayError).code).toBe('MCP_ERR_UPSTREAM_TIMEOUT')
  })

  it('maps upstream errors: unknown model 404, 500 fault, parameter 400 before any I/O', async () => {
    const a = adapter()
    await expect(a.execute({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }, params('missing-model'))).rejects.toMatchObject({
      code: 'MCP_ERR_UPSTREAM_ERROR', status: 404, providerCode: 'model_not_found',
    })
    mock.fault = 'status:500,times:1'
    await expect(a.stream({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }, params())).rejects.toMatchObject({ status: 500 })
    const n = mock.requests.length
    await expect(a.execute({ model: 'x', n: 2, messages: [{ role: 'user', content: 'hi' }] }, params())).rejects.toMatchObject({ code: 'MCP_ERR_REQ_PARAM_UNSUPPORTED', param: 'n' })
    expect(mock.requests.length).toBe(n)
    expect(a.getMetrics().errorsByCode).toMatchObject({ model_not_found: 1, MCP_ERR_UPSTREAM_ERROR: 1, MCP_ERR_REQ_PARAM_UNSUPPORTED: 1 })
  })

  it('embeds a string and an array', async () => {
    const a = adapter()
    const one = await a.embed!({ model: 'e', input: 'hello world' }, params('nomic-embed-text'))
    expect(one.data).toHaveLength(1)
    expect(one.data[0]?.embedding).toHaveLength(8)
    expect(one.usage).toEqual({ prompt_tokens: 3, total_tokens: 3 })
    const two = await a.embed!({ model: 'e', input: ['a', 'b'], dimensions: 4 }, params('nomic-embed-text'))
    expect(two.data.map((d) => [d.index, (d.embedding as number[]).length])).toEqual([[0, 4], [1, 4]])
    expect(mock.requests[1]).toMatchObject({ path: '/api/embed', body: { model: 'nomic-embed-text', input: ['a', 'b'], dimensions: 4 } })
  })

  it('answers encoding_format base64 (what the openai SDKs send by default) with float32 base64 of the floats', async () => {
    const a = adapter()
    const floats = await a.embed!({ model: 'e', input: ['a', 'b'], encoding_format: 'float' }, params('nomic-embed-text'))
    const b64 = await a.embed!({ model: 'e', input: ['a', 'b'], encoding_format: 'base64' }, params('nomic-embed-text'))
    expect(mock.requests[1]?.body).toEqual({ model: 'nomic-embed-text', input: ['a', 'b'] })
    expect(b64.data.map((d) => typeof d.embedding)).toEqual(['string', 'string'])
    const decode = (s: string): number[] => { const b = Buffer.from(s, 'base64'); return Array.from(new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4)) }
    expect(b64.data.map((d) => decode(d.embedding as string))).toEqual(floats.data.map((d) => Array.from(Float32Array.from(d.embedding as number[]))))
    expect(b64.usage).toEqual(floats.usage)
  })

  it('health checks /api/tags', async () => {
    const h = await adapter().healthCheck()
    expect(h.ok).toBe(true)
    expect(mock.requests[0]).toMatchObject({ method: 'GET', path: '/api/tags' })
    const down = ollamaFactory.create('down', (() => { const c = { type: 'ollama', baseUrl: 'http://127.0.0.1:9' }; ollamaFactory.configErrors(c); return c })(), deps)
    expect((await down.healthCheck()).ok).toBe(false)
  })

  it('sends a bearer token only when an apiKey is configured', async () => {
    await adapter().execute({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }, params())
    await adapter({ apiKey: 'secret' }).execute({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }, params())
    expect(mock.requests[0]?.headers['authorization']).toBeUndefined()
    expect(mock.requests[1]?.headers['authorization']).toBe('Bearer secret')
  })
})
