import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { GatewayError } from '../../gateway/errors.ts'
import { ChunkAggregator } from '../shared/aggregate.ts'
import { createSseParser, type SseEvent } from '../shared/sse.ts'
import type { ChatChunk, ChatRequest } from '../types.ts'
import { anthropicFactory, anthropicHeaders } from './adapter.ts'
import { anthropicConfigErrors, type AnthropicConfig } from './config.ts'
import { toAnthropicError } from './errors.ts'
import { toAnthropicChat, toAnthropicRequest, type AnthropicRequestOptions } from './request.ts'
import { fromAnthropicMessage, toFinishReason } from './response.ts'
import { ANTHROPIC_LANE_EVENT, createAnthropicStreamMapper, fastTextDelta, laneTextOf } from './stream.ts'

const fixture = (name: string): string => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')
const json = (name: string): unknown => JSON.parse(fixture(name))

const OPTS: AnthropicRequestOptions = { provider: 'claude', basePath: '', defaultMaxTokens: 4096, dropUnsupportedParams: false }
const DROP: AnthropicRequestOptions = { ...OPTS, dropUnsupportedParams: true }
const MODEL = 'claude-sonnet-4-5-20250929'

function req(extra: Partial<ChatRequest> = {}): ChatRequest {
  return { model: 'anthropic/claude', messages: [{ role: 'user', content: 'Hi' }], ...extra }
}

function catchError(fn: () => unknown): GatewayError {
  try { fn() } catch (e) { if (e instanceof GatewayError) return e; throw e }
  throw new Error('expected a GatewayError')
}

/** Feeds an SSE transcript through the one parser and the mapper; returns the chunks (or the error). */
function replay(name: string, splitAt = 7): { chunks: ChatChunk[]; error?: GatewayError } {
  const mapper = createAnthropicStreamMapper('claude', MODEL, () => 1_700_000_000_000)
  const chunks: ChatChunk[] = []
  const parser = createSseParser((ev: SseEvent) => { chunks.push(...(mapper.push(ev) ?? [])) })
  try {
    const text = fixture(name)
    // Feed in odd-sized pieces: events split across reads must not matter.
    for (let i = 0; i < text.length; i += splitAt) parser.feed(text.slice(i, i + splitAt))
    parser.end()
    chunks.push(...(mapper.end() ?? []))
    return { chunks }
  } catch (e) {
    if (e instanceof GatewayError) return { chunks, error: e }
    throw e
  }
}

function aggregate(chunks: ChatChunk[]) {
  const agg = new ChunkAggregator()
  for (const c of chunks) agg.add(c)
  return agg.toResponse()
}

describe('anthropic request translation', () => {
  it('translates the full fixture exactly (system, merging, images, tool calls and results, tools, choice)', () => {
    const up = toAnthropicChat(json('request.canonical.json') as ChatRequest, MODEL, true, OPTS)
    expect(up.path).toBe('/v1/messages')
    expect(up.body).toEqual(json('request.anthropic.json'))
  })

  it('a data: URL\'s header is read from its start only: a 10 MB one without a base64 header is a 400, a 10 MB image is taken', () => {
    const image = (url: string): ChatRequest => req({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }] }] })
    // `data:a;a;a;...` ten million characters long: the regex overflowed V8's stack (a RangeError, a 500).
    const e = (() => { try { toAnthropicRequest(image(`data:a${';a'.repeat(5_000_000)}`), MODEL, false, OPTS); return undefined } catch (x) { return x } })()
    expect(e).toBeInstanceOf(GatewayError)
    expect((e as GatewayError).message).toContain('must be base64-encoded')
    const data = 'A'.repeat(10_000_000)
    const body = toAnthropicRequest(image(`data:image/png;base64,${data}`), MODEL, false, OPTS)
    expect(body.messages[0]!.content).toEqual([{ type: 'image', source: { type: 'base64', media_type: 'image/png', data } }])
  })

  it('keeps a single string system prompt as a string and defaults max_tokens from config', () => {
    const body = toAnthropicRequest(req({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }] }), MODEL, false, OPTS)
    expect(body).toEqual({ model: MODEL, max_tokens: 4096, system: 'Be brief.', messages: [{ role: 'user', content: 'Hi' }] })
  })

  it('uses max_completion_tokens over max_tokens, and max_tokens when alone', () => {
    expect(toAnthropicRequest(req({ max_tokens: 10, max_completion_tokens: 20 }), MODEL, false, OPTS).max_tokens).toBe(20)
    expect(toAnthropicRequest(req({ max_tokens: 10 }), MODEL, false, OPTS).max_tokens).toBe(10)
  })

  it('a message left with no content (only whitespace) is a 400 naming it, unless it merges into a turn with content', () => {
    for (const content of ['   ', [{ type: 'text' as const, text: ' \n ' }]]) {
      const e = catchError(() => toAnthropicChat(req({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }, { role: 'user', content }] }), MODEL, false, OPTS))
      expect([e.status, e.param], JSON.stringify(content)).toEqual([400, 'messages[2].content'])
    }
    // Next to tool results (the same Anthropic user turn) a blank user message carries nothing, and is fine.
    const ok = toAnthropicChat(req({ messages: [
      { role: 'user', content: 'weather?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'w', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'toolu_1', content: 'sunny' },
      { role: 'user', content: ' ' },
    ] }), MODEL, false, OPTS)
    expect((ok.body as { messages: unknown[] }).messages).toHaveLength(3)
  })

  it('tool call ids Anthropic refuses (Kimi\'s functions.get_weather:0) are rewritten alike in the call and its result, never onto another id', () => {
    const call = (id: string) => ({ id, type: 'function' as const, function: { name: 'get_weather', arguments: '{}' } })
    const up = toAnthropicRequest(req({ messages: [
      { role: 'user', content: 'weather?' },
      { role: 'assistant', content: null, tool_calls: [call('functions.get_weather:0'), call('functions_get_weather_0'), call('a/b'), call('a|b')] },
      { role: 'tool', tool_call_id: 'functions.get_weather:0', content: 'sunny' },
      { role: 'tool', tool_call_id: 'functions_get_weather_0', content: 'rain' },
      { role: 'tool', tool_call_id: 'a/b', content: 'x' },
      { role: 'tool', tool_call_id: 'a|b', content: 'y' },
    ] }), MODEL, false, OPTS)
    const ids = (up.messages[1]!.content as Record<string, unknown>[]).map((b) => b['id'])
    expect(ids).toEqual(['functions_get_weather_0_2', 'functions_get_weather_0', 'a_b', 'a_b_2'])
    expect((up.messages[2]!.content as Record<string, unknown>[]).map((b) => b['tool_use_id'])).toEqual(ids)
    // Ids Anthropic takes go as they came.
    const plain = toAnthropicRequest(req({ messages: [{ role: 'user', content: 'w' }, { role: 'assistant', content: null, tool_calls: [call('call_1-A')] }, { role: 'tool', tool_call_id: 'call_1-A', content: 's' }] }), MODEL, false, OPTS)
    expect((plain.messages[1]!.content as Record<string, unknown>[])[0]!['id']).toBe('call_1-A')
  })

  it('a tool result answering no call of the assistant turn before it is a 400 naming its tool_call_id (was sent after the user\'s text)', () => {
    const call = { id: 'c1', type: 'function' as const, function: { name: 'w', arguments: '{}' } }
    const e = catchError(() => toAnthropicChat(req({ messages: [{ role: 'user', content: 'x' }, { role: 'tool', tool_call_id: 'zz', content: 'r' }] }), MODEL, false, OPTS))
    expect([e.status, e.code, e.param]).toEqual([400, 'MCP_ERR_REQ_BODY_INVALID', 'messages[1].tool_call_id'])
    expect(e.message).toContain('"zz" matches no earlier assistant tool call; provider claude')
    const older = catchError(() => toAnthropicChat(req({ messages: [
      { role: 'user', content: 'x' }, { role: 'assistant', content: null, tool_calls: [call] }, { role: 'tool', tool_call_id: 'c1', content: 'r' },
      { role: 'assistant', content: 'done' }, { role: 'tool', tool_call_id: 'c1', content: 'again' },
    ] }), MODEL, false, OPTS))
    expect(older.param).toBe('messages[4].tool_call_id')
  })

  it('tool results go first in their user turn, the user\'s text after them (Anthropic refuses text before a tool_result)', () => {
    const up = toAnthropicRequest(req({ messages: [
      { role: 'user', content: 'call tool' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'w', arguments: '{}' } }] },
      { role: 'user', content: 'interject' },
      { role: 'tool', tool_call_id: 'c1', content: 'sunny' },
    ] }), MODEL, false, OPTS)
    expect(up.messages[2]).toEqual({ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'c1', content: 'sunny' }, { type: 'text', text: 'interject' }] })
  })

  it('maps stop arrays, user and a base path', () => {
    const up = toAnthropicChat(req({ stop: ['a', 'b'], user: 'u1' }), MODEL, false, { ...OPTS, basePath: '/proxy' })
    expect(up.path).toBe('/proxy/v1/messages')
    expect(up.body).toMatchObject({ stop_sequences: ['a', 'b'], metadata: { user_id: 'u1' } })
  })

  it.each([
    ['none', { type: 'none' }],
    ['auto', { type: 'auto' }],
    ['required', { type: 'any' }],
    [{ type: 'function', function: { name: 'f' } }, { type: 'tool', name: 'f' }],
  ] as const)('maps tool_choice %j', (choice, expected) => {
    const tools: NonNullable<ChatRequest['tools']> = [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }]
    expect(toAnthropicRequest(req({ tools, tool_choice: choice as NonNullable<ChatRequest['tool_choice']> }), MODEL, false, OPTS).tool_choice).toEqual(expected)
  })

  it('maps parallel_tool_calls: false to disable_parallel_tool_use (auto when no choice), never on none', () => {
    const tools: NonNullable<ChatRequest['tools']> = [{ type: 'function', function: { name: 'f' } }]
    expect(toAnthropicRequest(req({ tools, parallel_tool_calls: false }), MODEL, false, OPTS).tool_choice).toEqual({ type: 'auto', disable_parallel_tool_use: true })
    expect(toAnthropicRequest(req({ tools, parallel_tool_calls: false, tool_choice: 'none' }), MODEL, false, OPTS).tool_choice).toEqual({ type: 'none' })
    expect(toAnthropicRequest(req({ tools, parallel_tool_calls: true }), MODEL, false, OPTS).tool_choice).toBeUndefined()
  })

  it('keeps tool strict and cache_control extensions, and text-part cache_control', () => {
    const tools = [{ type: 'function', function: { name: 'f', strict: true }, cache_control: { type: 'ephemeral' } }] as unknown as NonNullable<ChatRequest['tools']>
    const body = toAnthropicRequest(req({
      tools,
      messages: [{ role: 'system', content: [{ type: 'text', text: 'long prompt', cache_control: { type: 'ephemeral' } } as never] }, { role: 'user', content: 'Hi' }],
    }), MODEL, false, OPTS)
    expect(body.tools).toEqual([{ name: 'f', input_schema: { type: 'object', properties: {} }, strict: true, cache_control: { type: 'ephemeral' } }])
    expect(body.system).toEqual([{ type: 'text', text: 'long prompt', cache_control: { type: 'ephemeral' } }])
  })

  it('maps a PDF file part to a document block', () => {
    const body = toAnthropicRequest(req({ messages: [{ role: 'user', content: [{ type: 'file', file: { file_data: 'data:application/pdf;base64,JVBERi0=', filename: 'a.pdf' } }] }] }), MODEL, false, OPTS)
    expect(body.messages[0]!.content).toEqual([{ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: 'JVBERi0=' }, title: 'a.pdf' }])
  })

  it('drops an empty assistant turn and keeps a refusal as text', () => {
    const body = toAnthropicRequest(req({
      messages: [
        { role: 'user', content: 'a' },
        { role: 'assistant', content: null, refusal: 'I cannot help with that.' },
        { role: 'user', content: 'b' },
        { role: 'assistant', content: '' },
      ],
    }), MODEL, false, OPTS)
    expect(body.messages).toEqual([
      { role: 'user', content: 'a' },
      { role: 'assistant', content: [{ type: 'text', text: 'I cannot help with that.' }] },
      { role: 'user', content: 'b' },
    ])
  })

  it('keeps an assistant refusal content part (OpenAI\'s assistant content may hold them) as text, like the refusal field', () => {
    const body = toAnthropicRequest(req({
      messages: [
        { role: 'user', content: 'a' },
        { role: 'assistant', content: [{ type: 'refusal', refusal: 'I cannot help with that.' } as never, { type: 'text', text: 'Ask me something else.' }] },
        { role: 'user', content: 'b' },
      ],
    }), MODEL, false, OPTS)
    expect(body.messages[1]).toEqual({ role: 'assistant', content: [{ type: 'text', text: 'I cannot help with that.' }, { type: 'text', text: 'Ask me something else.' }] })
  })

  it('maps response_format json_schema to output_config.format and reasoning_effort to output_config.effort', () => {
    const body = toAnthropicRequest(req({
      response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { a: { type: 'string' } } } } },
      reasoning_effort: 'high',
    }), MODEL, false, OPTS)
    expect(body.output_config).toEqual({ format: { type: 'json_schema', schema: { type: 'object', properties: { a: { type: 'string' } } } }, effort: 'high' })
    expect(toAnthropicRequest(req({ response_format: { type: 'text' } }), MODEL, false, OPTS).output_config).toBeUndefined()
  })

  it.each([
    ['n', { n: 2 }],
    ['presence_penalty', { presence_penalty: 0.5 }],
    ['frequency_penalty', { frequency_penalty: 1 }],
    ['seed', { seed: 42 }],
    ['logprobs', { logprobs: true }],
    ['top_logprobs', { top_logprobs: 3 }],
    ['response_format', { response_format: { type: 'json_object' } }],
    ['reasoning_effort', { reasoning_effort: 'minimal' }],
    ['modalities', { modalities: ['text', 'audio'] }],
    ['messages[0].name', { messages: [{ role: 'user', content: 'Hi', name: 'bob' }] }],
    ['messages[0].content[1].type', { messages: [{ role: 'user', content: [{ type: 'text', text: 'Listen:' }, { type: 'input_audio', input_audio: { data: '', format: 'wav' } }] }] }],
    ['messages[0].content[0].image_url.detail', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x/y.png', detail: 'low' } }] }] }],
  ] as [string, Partial<ChatRequest>][])('rejects %s with MCP_ERR_REQ_PARAM_UNSUPPORTED naming it and the provider, or drops it when configured', (param, extra) => {
    const e = catchError(() => toAnthropicRequest(req(extra), MODEL, false, OPTS))
    expect(e.code).toBe('MCP_ERR_REQ_PARAM_UNSUPPORTED')
    expect(e.status).toBe(400)
    expect(e.param).toBe(param)
    expect(e.message).toBe(`Parameter '${param}' is not supported by provider claude`)
    const body = JSON.stringify(toAnthropicRequest(req(extra), MODEL, false, DROP))
    expect(body).not.toMatch(/"(n|presence_penalty|frequency_penalty|seed|logprobs|top_logprobs|response_format|reasoning_effort|metadata|modalities|name|detail|input_audio|output_config)"/)
  })

  it('accepts the OpenAI default values of parameters Anthropic lacks (n: 1, penalties 0, logprobs false, nulls)', () => {
    const body = toAnthropicRequest(req({ n: 1, presence_penalty: 0, frequency_penalty: 0, logprobs: false, seed: null, temperature: null }), MODEL, false, OPTS)
    expect(body).toEqual({ model: MODEL, max_tokens: 4096, messages: [{ role: 'user', content: 'Hi' }] })
  })

  it('rejects a temperature above Anthropic\'s range instead of clamping it', () => {
    const e = catchError(() => toAnthropicRequest(req({ temperature: 1.5 }), MODEL, false, OPTS))
    expect(e.code).toBe('MCP_ERR_REQ_PARAM_UNSUPPORTED')
    expect(e.param).toBe('temperature')
    expect(e.message).toContain('between 0 and 1')
  })

  it('rejects tool call arguments that are not a JSON object, naming the field', () => {
    const e = catchError(() => toAnthropicRequest(req({
      messages: [{ role: 'user', content: 'x' }, { role: 'assistant', tool_calls: [{ id: 't1', type: 'function', function: { name: 'f', arguments: '{bad' } }] }],
    }), MODEL, false, OPTS))
    expect(e.code).toBe('MCP_ERR_REQ_BODY_INVALID')
    expect(e.message).toContain('messages[1].tool_calls[0].function.arguments')
  })

  it('a tool or tool_choice name Anthropic refuses is a 400 naming it (it was Anthropic\'s 400 naming tools.0.custom.name)', () => {
    const fn = (name: string) => ({ type: 'function' as const, function: { name, parameters: { type: 'object' } } })
    for (const name of ['lookup_ü', 'my.tool', 'a b', '', 'x'.repeat(65)]) {
      const e = catchError(() => toAnthropicRequest(req({ tools: [fn('ok'), fn(name)] }), MODEL, false, DROP))
      expect([e.status, e.code, e.param]).toEqual([400, 'MCP_ERR_REQ_BODY_INVALID', 'tools[1].function.name'])
      expect(e.message).toContain(`provider claude takes function names of letters (a-z, A-Z), digits, underscores and dashes, at most 64 characters, got ${JSON.stringify(name)}`)
    }
    const choice = catchError(() => toAnthropicRequest(req({ tools: [fn('ok')], tool_choice: { type: 'function', function: { name: 'o.k' } } }), MODEL, false, OPTS))
    expect(choice.param).toBe('tool_choice.function.name')
    const ok = toAnthropicRequest(req({ tools: [fn('get-weather_2'), fn('x'.repeat(64))], tool_choice: { type: 'function', function: { name: 'get-weather_2' } } }), MODEL, false, OPTS)
    expect(ok.tools!.map((t) => t['name'])).toEqual(['get-weather_2', 'x'.repeat(64)])
  })

  it('rejects an image URL that is neither data: nor http(s)', () => {
    const e = catchError(() => toAnthropicRequest(req({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'ftp://x/y.png' } }] }] }), MODEL, false, OPTS))
    expect(e.code).toBe('MCP_ERR_REQ_BODY_INVALID')
    expect(e.message).toContain('messages[0].content[0].image_url.url')
  })
})

describe('anthropic response translation', () => {
  it('maps a text message, keeping the msg id', () => {
    const res = fromAnthropicMessage(json('message-text.json'), 'claude', 1_700_000_000_000)
    expect(res).toEqual({
      id: 'msg_013Zva2CMHLNnXjNJJKqJ2EF',
      object: 'chat.completion',
      created: 1_700_000_000,
      model: MODEL,
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hi! My name is Claude.' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 2095, completion_tokens: 503, total_tokens: 2598, prompt_tokens_details: { cached_tokens: 0, cache_creation_tokens: 0 } },
    })
  })

  it('maps tool_use blocks to tool_calls, counts cache tokens in prompt_tokens, and keeps thinking blocks as thinking_blocks', () => {
    const res = fromAnthropicMessage(json('message-tool-use.json'), 'claude')
    expect(res.choices[0]).toEqual({
      index: 0,
      message: {
        role: 'assistant',
        content: "I'll check both cities.",
        tool_calls: [
          { id: 'toolu_01A09q90qw90lq917835lq9', type: 'function', function: { name: 'get_weather', arguments: '{"location":"San Francisco, CA","unit":"celsius"}' } },
          { id: 'toolu_01B19q90qw90lq917835lq9', type: 'function', function: { name: 'get_weather', arguments: '{"location":"New York, NY"}' } },
        ],
        thinking_blocks: [{ type: 'thinking', thinking: 'The user wants the weather in two cities.', signature: 'EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds' }],
      },
      finish_reason: 'tool_calls',
    })
    expect(res.usage).toEqual({ prompt_tokens: 2098, completion_tokens: 120, total_tokens: 2218, prompt_tokens_details: { cached_tokens: 1800, cache_creation_tokens: 248 } })
  })

  it.each([
    ['end_turn', 'stop'], ['stop_sequence', 'stop'], ['pause_turn', 'stop'], ['max_tokens', 'length'],
    ['model_context_window_exceeded', 'length'], ['tool_use', 'tool_calls'], ['refusal', 'content_filter'],
  ])('maps stop_reason %s to %s', (from, to) => {
    expect(toFinishReason(from)).toBe(to)
  })

  it('rejects a body without content as a bad upstream response', () => {
    expect(catchError(() => fromAnthropicMessage({ type: 'message' }, 'claude')).code).toBe('MCP_ERR_UPSTREAM_BAD_RESPONSE')
  })
})

describe('anthropic stream mapper', () => {
  it('maps a text stream: role chunk, deltas, finish chunk, then a usage chunk with choices: []', () => {
    const { chunks, error } = replay('stream-text.sse')
    expect(error).toBeUndefined()
    const base = { id: 'msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY', object: 'chat.completion.chunk', created: 1_700_000_000, model: MODEL }
    expect(chunks).toEqual([
      { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] },
      { ...base, choices: [{ index: 0, delta: { content: 'Hello' }, finish_reason: null }] },
      { ...base, choices: [{ index: 0, delta: { content: '!' }, finish_reason: null }] },
      { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] },
      { ...base, choices: [], usage: { prompt_tokens: 35, completion_tokens: 15, total_tokens: 50, prompt_tokens_details: { cached_tokens: 10, cache_creation_tokens: 0 } } },
    ])
  })

  it('maps text followed by two streamed tool_use blocks to indexed tool call deltas', () => {
    const { chunks, error } = replay('stream-tool-use.sse', 13)
    expect(error).toBeUndefined()
    const firstTool = chunks.find((c) => c.choices[0]?.delta.tool_calls)
    expect(firstTool?.choices[0]?.delta.tool_calls).toEqual([{ index: 0, id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', type: 'function', function: { name: 'get_weather', arguments: '' } }])
    const res = aggregate(chunks)
    expect(res.choices[0]?.message.content).toBe("Okay, let's check the weather for both cities:")
    expect(res.choices[0]?.message.tool_calls).toEqual([
      { id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', type: 'function', function: { name: 'get_weather', arguments: '{"location": "San Francisco, CA"}' } },
      { id: 'toolu_02U2y2gK45rBnl3uOUsO8Vq7', type: 'function', function: { name: 'get_weather', arguments: '{"location": "New York, NY", "unit": "celsius"}' } },
    ])
    expect(JSON.parse(res.choices[0]!.message.tool_calls![1]!.function.arguments)).toEqual({ location: 'New York, NY', unit: 'celsius' })
    expect(res.choices[0]?.finish_reason).toBe('tool_calls')
    expect(res.usage).toMatchObject({ prompt_tokens: 472, completion_tokens: 89 })
  })

  it('gives a tool_use block without input the arguments {} (as the non-streamed answer does), not an empty string', () => {
    // A tool without parameters: Anthropic streams its block with an empty input_json_delta, or with none at all.
    const ev = (data: object): SseEvent => ({ event: (data as { type: string }).type, data: JSON.stringify(data) })
    const mapper = createAnthropicStreamMapper('claude', MODEL, () => 1_700_000_000_000)
    const chunks: ChatChunk[] = []
    for (const e of [
      { type: 'message_start', message: { id: 'msg_1', type: 'message', role: 'assistant', model: MODEL, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } } },
      { type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 'toolu_1', name: 'get_time', input: {} } },
      { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '' } },
      { type: 'content_block_stop', index: 0 },
      { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'toolu_2', name: 'get_date', input: {} } },
      { type: 'content_block_stop', index: 1 },
      { type: 'content_block_start', index: 2, content_block: { type: 'tool_use', id: 'toolu_3', name: 'get_weather', input: {} } },
      { type: 'content_block_delta', index: 2, delta: { type: 'input_json_delta', partial_json: '{"city": "Paris"}' } },
      { type: 'content_block_stop', index: 2 },
      { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 20 } },
      { type: 'message_stop' },
    ]) chunks.push(...(mapper.push(ev(e)) ?? []))
    chunks.push(...(mapper.end() ?? []))
    const streamed = aggregate(chunks).choices[0]?.message.tool_calls
    expect(streamed?.map((t) => t.function.arguments)).toEqual(['{}', '{}', '{"city": "Paris"}'])
    const whole = fromAnthropicMessage({
      id: 'msg_1', type: 'message', role: 'assistant', model: MODEL, stop_reason: 'tool_use', stop_sequence: null, usage: { input_tokens: 5, output_tokens: 20 },
      content: [{ type: 'tool_use', id: 'toolu_1', name: 'get_time', input: {} }],
    }, 'claude')
    expect(whole.choices[0]?.message.tool_calls?.[0]?.function.arguments).toBe(streamed?.[0]?.function.arguments)
  })

  it('maps thinking_delta and signature_delta to thinking_blocks deltas and takes cumulative usage from message_delta', () => {
    const { chunks, error } = replay('stream-thinking.sse')
    expect(error).toBeUndefined()
    expect(chunks.flatMap((c) => c.choices[0]?.delta.thinking_blocks ?? [])).toEqual([
      { index: 0, type: 'thinking', thinking: '' },
      { index: 0, type: 'thinking', thinking: '27 * 453 = 12231' },
      { index: 0, type: 'thinking', signature: 'EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds' },
    ])
    const res = aggregate(chunks)
    expect(res.choices[0]?.message.content).toBe('27 * 453 = 12,231')
    expect(res.choices[0]?.message.thinking_blocks).toEqual([{ type: 'thinking', thinking: '27 * 453 = 12231', signature: 'EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds' }])
    expect(res.usage).toMatchObject({ prompt_tokens: 40, completion_tokens: 180 })
  })

  it('throws the mapped error of an error event (overloaded_error → 529, provider code kept)', () => {
    const { chunks, error } = replay('stream-error.sse')
    expect(aggregate(chunks).choices[0]?.message.content).toBe('Once upon')
    expect(error?.code).toBe('MCP_ERR_UPSTREAM_ERROR')
    expect(error?.status).toBe(529)
    expect(error?.providerCode).toBe('overloaded_error')
    expect(error?.type).toBe('overloaded_error')
    expect(error?.message).toBe('Overloaded')
  })

  it('treats EOF before message_stop as an interrupted stream', () => {
    const mapper = createAnthropicStreamMapper('claude', MODEL)
    mapper.push({ event: 'message_start', data: '{"type":"message_start","message":{"id":"msg_1","model":"m","usage":{"input_tokens":1}}}' })
    mapper.push({ event: 'message_delta', data: '{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}' })
    const e = catchError(() => mapper.end())
    expect(e.code).toBe('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
    expect(e.details).toBe('upstream.stream_cut')
  })

  it('treats a malformed event as an interrupted stream with details upstream.malformed_event', () => {
    const mapper = createAnthropicStreamMapper('claude', MODEL)
    const e = catchError(() => mapper.push({ event: 'content_block_delta', data: '{"type":"content_block_delta",' }))
    expect(e.code).toBe('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
    expect(e.details).toBe('upstream.malformed_event')
  })
})

describe('anthropic errors', () => {
  it.each([
    [400, 'error-invalid-request.json', 'invalid_request_error'],
    [401, 'error-authentication.json', 'authentication_error'],
    [429, 'error-rate-limit.json', 'rate_limit_error'],
    [529, 'error-overloaded.json', 'overloaded_error'],
  ])('maps HTTP %i %s to an upstream error keeping the provider type as code', (status, file, type) => {
    const e = toAnthropicError('claude', status, fixture(file), { 'retry-after': '7' })
    expect(e.code).toBe('MCP_ERR_UPSTREAM_ERROR')
    expect(e.status).toBe(status)
    expect(e.providerCode).toBe(type)
    expect(e.type).toBe(type)
    expect(e.message).toBe((json(file) as { error: { message: string } }).error.message)
    expect(e.headers).toEqual({ 'retry-after': '7' })
  })

  it.each([403, 404, 413, 500])('maps HTTP %i with a non-JSON body (e.g. a proxy page)', (status) => {
    const e = toAnthropicError('claude', status, '<html>nope</html>', {})
    expect(e.status).toBe(status)
    expect(e.message).toBe('<html>nope</html>')
  })
})

describe('anthropic config and adapter', () => {
  it('applies defaults and rejects unknown keys', () => {
    const cfg = { type: 'anthropic', apiKey: 'k' } as Record<string, unknown>
    expect(anthropicConfigErrors(cfg)).toEqual([])
    expect(cfg).toMatchObject({ baseUrl: 'https://api.anthropic.com', anthropicVersion: '2023-06-01', defaultMaxTokens: 4096, dropUnsupportedParams: false, timeouts: { firstByteMs: 60_000 } })
    expect(anthropicConfigErrors({ type: 'anthropic', organization: 'x' })).toEqual(['organization: unknown key'])
    expect(anthropicConfigErrors({ type: 'anthropic', defaultMaxTokens: 0 })).toHaveLength(1)
  })

  it('sends x-api-key and anthropic-version', () => {
    const cfg = { type: 'anthropic', apiKey: 'sk-ant-x', anthropicVersion: '2023-06-01', headers: { 'anthropic-beta': 'b1' } } as unknown as AnthropicConfig
    expect(anthropicHeaders(cfg)).toEqual({ 'content-type': 'application/json', 'anthropic-version': '2023-06-01', 'anthropic-beta': 'b1', 'x-api-key': 'sk-ant-x' })
  })

  it('creates an adapter of type anthropic without pass-through', () => {
    const a = anthropicFactory.create('claude', { type: 'anthropic', apiKey: 'k', models: ['claude-x'] }, { dispatcherFor: () => ({}) as never })
    expect(a.type).toBe('anthropic')
    expect(a.name).toBe('claude')
    expect(a.passthrough).toBeUndefined()
    expect(a.listModels?.()).toEqual(['claude-x'])
  })
})

describe('message_start and message_delta read without a full parse', () => {
  /** The chunks of one event through a fresh mapper (after a message_start when `after` is set). */
  const map = (data: string, spy?: { parses: string[] }, event?: string): unknown => {
    const m = createAnthropicStreamMapper('anthropic', 'claude-x', () => 1_700_000_000_000)
    // The event's name as Anthropic sends it (its data's type), unless the test names another.
    const name = event ?? String((JSON.parse(data) as { type?: unknown }).type)
    const parse = JSON.parse
    if (spy) JSON.parse = ((t: string, r?: never) => { spy.parses.push(t); return parse(t, r) }) as typeof JSON.parse
    try { return m.push({ event: name, data }) } finally { JSON.parse = parse }
  }
  /** The same event in another serialization (spaces after the colons), which takes the full parse. */
  const spaced = (data: string): string => JSON.stringify(JSON.parse(data), null, 1)

  const starts = [
    '{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":7,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}',
    '{"type":"message_start","message":{"id":"msg_2","type":"message","role":"assistant","content":[],"model":"claude-opus-4-6","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":5,"cache_read_input_tokens":9,"cache_creation":{"ephemeral_5m_input_tokens":5,"ephemeral_1h_input_tokens":0},"output_tokens":2,"service_tier":"standard"}}}',
  ]
  starts.push(starts[0]!.replace('"output_tokens":1}', '"output_tokens":1,"note":"a}b {c"}'))
  const deltas = [
    '{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":12}}',
    '{"type":"message_delta","delta":{"stop_reason":"stop_sequence","stop_sequence":"\\n\\nHuman: \\"x\\""},"usage":{"input_tokens":5,"output_tokens":12,"cache_read_input_tokens":3,"server_tool_use":{"web_search_requests":1}}}',
    '{"type":"message_delta","delta":{"stop_reason":null,"stop_sequence":null},"usage":{"output_tokens":0}}',
  ]

  it('parses only the usage object of Anthropic\'s own serialization, with the chunks of the full parse', () => {
    for (const d of [...starts, ...deltas]) {
      const spy = { parses: [] as string[] }
      const fast = map(d, spy)
      // Besides the usage object, only a matched stop sequence with escapes is parsed (its string literal alone).
      const literal = /"stop_reason":"stop_sequence","stop_sequence":("(?:[^"\\]|\\.)*")/.exec(d)?.[1]
      expect(spy.parses.slice(1), d).toEqual(literal?.includes('\\') ? [literal] : [])
      // What was parsed is the usage object itself, the last value of the event.
      expect(spy.parses[0], d).not.toBe(d)
      expect(d.includes(`"usage":${spy.parses[0]!}}`), d).toBe(true)
      expect(fast, d).toEqual(map(spaced(d)))
    }
  })

  it('gives the full parse\'s chunks whatever the event is called (the name only picks which shape to try)', () => {
    for (const d of [...starts, ...deltas]) {
      for (const name of ['message', 'x', 'content_block_delta', 'ping', 'message_stop']) {
        const spy = { parses: [] as string[] }
        const got = map(d, spy, name)
        expect(got, `${name}: ${d}`).toEqual(map(spaced(d)))
        // Without an event line (name 'message') the fast shapes are all tried; under another name, the full parse.
        expect(spy.parses[0] === d, `${name}: ${d}`).toBe(name !== 'message')
      }
    }
  })

  it('leaves other shapes to the full parse, with the same result', () => {
    const others = [
      starts[0]!.replace('"id":"msg_1"', '"id":"msg_\\u0031"'),
      starts[0]!.replace('"stop_reason":null', '"stop_reason":null,"extra":1'),
      deltas[0]!.replace('"end_turn"', '"END"'),
      deltas[0]!.replace('"usage":{"output_tokens":12}', '"usage":{"output_tokens":12},"x":1'),
    ]
    for (const d of others) {
      const spy = { parses: [] as string[] }
      const got = map(d, spy)
      expect(spy.parses.some((t) => t === d), d).toBe(true)
      expect(got, d).toEqual(map(spaced(d)))
    }
  })
})

describe('text deltas read without a full parse (fastTextDelta)', () => {
  const event = (text: string, index = 0): string => JSON.stringify({ type: 'content_block_delta', index, delta: { type: 'text_delta', text } })

  it('reads the text of Anthropic\'s own serialization, escapes and look-alikes included', () => {
    for (const text of ['Hello', '', 'a "quoted" }} word', 'line\nbreak \\ back', '😀 \u2028 \u0000', '"}}', ',"delta":{"type":"text_delta","text":"x"}}']) {
      expect(fastTextDelta(event(text, 3))).toEqual({ index: 3, text })
    }
  })

  it('leaves every other shape to the full parse', () => {
    const others = [
      JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '{"a"' } }),
      JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'a', extra: 1 } }),
      JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'a' }, extra: 'b' }),
      JSON.stringify({ index: 0, type: 'content_block_delta', delta: { type: 'text_delta', text: 'a' } }),
      '{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a"}}',
      '{"type":"content_block_delta","index":-1,"delta":{"type":"text_delta","text":"a"}}',
      '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a","b":"c"}}',
      '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":5}}',
      '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"bad \\q escape"}}',
      '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"raw \u0001 control"}}',
    ]
    for (const d of others) expect(fastTextDelta(d)).toBeUndefined()
  })

  it('the mapper gives the same chunks either way', () => {
    const run = (data: string[]): unknown[] => {
      const m = createAnthropicStreamMapper('anthropic', 'claude-x', () => 1_700_000_000_000)
      const out: unknown[] = []
      m.push({ event: 'message_start', data: JSON.stringify({ type: 'message_start', message: { id: 'msg_1', model: 'claude-x', usage: { input_tokens: 3 } } }) })
      out.push(m.push({ event: 'content_block_start', data: data.length > 0 && data[0]!.startsWith('{ ') ? '{ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }' : '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}' }))
      for (const d of data) out.push(m.push({ event: 'content_block_delta', data: d }))
      return out
    }
    const texts = ['Hel', 'lo "x" }}', '']
    const fast = run(texts.map((t) => event(t)))
    const slow = run(texts.map((t) => `{ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": ${JSON.stringify(t)} } }`))
    expect(fast).toEqual(slow)
  })

  it('text lane: the text of escape-free deltas only, and textChunk(text) is the chunk push makes', () => {
    for (const t of ['Hello', '', ' tok1', 'é 😀 \u2028', '}} ,x:{']) expect(laneTextOf(event(t, 2))).toBe(t)
    // Escapes (quotes, newlines, backslashes) and other shapes take the chunk path.
    for (const d of [event('a "q"'), event('line\nbreak'), event('back \\ slash'), JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '{}' } }), '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a","b":"c"}}']) {
      expect(laneTextOf(d), d).toBeUndefined()
    }
    const m = createAnthropicStreamMapper('anthropic', 'claude-x', () => 1_700_000_000_000)
    m.push({ event: 'message_start', data: JSON.stringify({ type: 'message_start', message: { id: 'msg_1', model: 'claude-x', usage: { input_tokens: 3 } } }) })
    const d = event(' word', 0)
    expect(m.laneText!({ event: 'content_block_delta', data: d })).toBe(' word')
    expect([m.textChunk!(' word')]).toEqual(m.push({ event: 'content_block_delta', data: d }))
    m.push({ event: 'message_stop', data: '{"type":"message_stop"}' })
    // After message_stop nothing more is mapped, in either form.
    expect(m.laneText!({ event: 'content_block_delta', data: d })).toBeUndefined()
  })

  it('whole-event lane: matches exactly the SSE events whose data laneTextOf reads, with the same text', () => {
    const sse = (data: string, name = 'content_block_delta'): string => `event: ${name}\ndata: ${data}\n\n`
    const m = createAnthropicStreamMapper('anthropic', 'claude-x', () => 1_700_000_000_000)
    const match = (s: string): string | undefined => {
      const re = ANTHROPIC_LANE_EVENT.pattern
      re.lastIndex = 0
      return re.test(s) && re.lastIndex === s.length ? m.laneEventText!(s, 0, s.length) : undefined
    }
    for (const t of ['Hello', '', ' tok1', 'é 😀 \u2028', '}} ,x:{']) expect(match(`${sse(event(t, 3))}`)).toBe(t)
    expect(match(sse(event('x', 1234)))).toBe('x')
    for (const s of [sse(event('a "q"')), sse(event('back \\ slash')), sse(event('x'), 'other'), `data: ${event('x')}\n\n`, sse(event('x', 12345)),
      sse('{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a","b":"c"}}')]) {
      expect(match(s), s).toBeUndefined()
    }
    // In the middle of a longer input, at an offset: the span's text.
    const s = `${sse(event('first'))}${sse(event('second', 2))}`
    const re = ANTHROPIC_LANE_EVENT.pattern
    re.lastIndex = sse(event('first')).length
    expect(re.test(s)).toBe(true)
    expect(m.laneEventText!(s, sse(event('first')).length, re.lastIndex)).toBe('second')
    // The template is the event with an empty text, and the pattern matches it.
    expect(match(ANTHROPIC_LANE_EVENT.template)).toBe('')
    m.push({ event: 'message_stop', data: '{"type":"message_stop"}' })
    expect(m.laneEventText!(s, 0, sse(event('first')).length)).toBeUndefined()
  })
})
