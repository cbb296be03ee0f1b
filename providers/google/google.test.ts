/** Pure translation tests for the `google` provider, on fixtures written from the Gemini API reference. */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { GatewayError } from '../../gateway/errors.ts'
import { ChunkAggregator } from '../shared/aggregate.ts'
import { createSseParser } from '../shared/sse.ts'
import type { ChatChunk, ChatRequest, EmbeddingRequest } from '../types.ts'
import { googleConfigErrors } from './config.ts'
import { toGoogleError } from './errors.ts'
import { MAX_SCHEMA_NODES, toGeminiSchema, toGoogleChat, toGoogleEmbeddings, type GoogleRequestOptions } from './request.ts'
import { finishEmbeddings, fromGoogleChat, fromGoogleEmbeddings } from './response.ts'
import { createGoogleStreamMapper } from './stream.ts'

const fixture = (name: string): string => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')
const json = (name: string): any => JSON.parse(fixture(name))

const opts: GoogleRequestOptions = { provider: 'gem', basePath: '', apiVersion: 'v1beta', dropUnsupportedParams: false }
const chat = (extra: Partial<ChatRequest> & Record<string, unknown>, o: Partial<GoogleRequestOptions> = {}) =>
  toGoogleChat({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...extra } as ChatRequest, 'gemini-2.5-flash', false, { ...opts, ...o })

function caught(fn: () => unknown): GatewayError {
  try { fn() } catch (e) { if (e instanceof GatewayError) return e; throw e }
  throw new Error('expected a GatewayError')
}

/** Runs an SSE fixture through the shared parser and the Gemini mapper, as the adapter does. */
function runStream(sse: string): { chunks: ChatChunk[]; agg: ChunkAggregator } {
  const mapper = createGoogleStreamMapper('gem', 'gemini-2.5-flash', 'req-1')
  const chunks: ChatChunk[] = []
  const parser = createSseParser((ev) => { chunks.push(...(mapper.push(ev) ?? [])) })
  parser.feed(Buffer.from(sse))
  parser.end()
  chunks.push(...(mapper.end() ?? []))
  const agg = new ChunkAggregator()
  for (const c of chunks) agg.add(c)
  return { chunks, agg }
}

describe('config', () => {
  it('applies defaults and rejects unknown keys', () => {
    const cfg: Record<string, unknown> = { type: 'google', apiKey: 'k' }
    expect(googleConfigErrors(cfg)).toEqual([])
    expect(cfg).toMatchObject({ baseUrl: 'https://generativelanguage.googleapis.com', apiVersion: 'v1beta', dropUnsupportedParams: false })
    expect(googleConfigErrors({ type: 'google', apiVersion: 'beta' })).toEqual([expect.stringContaining('apiVersion')])
    expect(googleConfigErrors({ type: 'google', safetySettings: [{ category: 'HARM_CATEGORY_HARASSMENT' }] })).toEqual([expect.stringContaining('threshold')])
    expect(googleConfigErrors({ type: 'google', organization: 'x' })).toEqual(['organization: unknown key'])
  })
})

describe('request: canonical → generateContent', () => {
  it('a function name Gemini refuses is a 400 naming it (it was Gemini\'s 400 naming tools[0].function_declarations[0].name)', () => {
    const fn = (name: string) => ({ type: 'function' as const, function: { name, parameters: { type: 'object', properties: { a: { type: 'string' } } } } })
    for (const name of ['1tool', 'lookup_ü', 'do thing', '', 'x'.repeat(65)]) {
      const e = caught(() => chat({ tools: [fn('ok'), fn(name)] }, { dropUnsupportedParams: true }))
      expect([e.status, e.code, e.param]).toEqual([400, 'MCP_ERR_REQ_BODY_INVALID', 'tools[1].function.name'])
      expect(e.message).toContain(`provider gem takes function names that start with a letter or an underscore`)
    }
    expect(caught(() => chat({ tools: [fn('ok')], tool_choice: { type: 'function', function: { name: '9' } } })).param).toBe('tool_choice.function.name')
    const body = chat({ tools: [fn('_ns:my.tool-2'), fn('x'.repeat(64))] }).body as { tools: { functionDeclarations: { name: string }[] }[] }
    expect(body.tools[0]!.functionDeclarations.map((d) => d.name)).toEqual(['_ns:my.tool-2', 'x'.repeat(64)])
  })

  it('int32 fields (Gemini refused max_tokens 2^31 and seed 2^31 with its own 400 naming generation_config fields)', () => {
    const gen = (extra: Record<string, unknown>) => (chat(extra).body as { generationConfig: Record<string, unknown> }).generationConfig
    expect(gen({ max_tokens: 2 ** 31, top_k: 2 ** 40 })).toEqual({ maxOutputTokens: 2 ** 31 - 1, topK: 2 ** 31 - 1 })
    expect(gen({ max_completion_tokens: Number.MAX_SAFE_INTEGER, seed: -(2 ** 31) })).toEqual({ maxOutputTokens: 2 ** 31 - 1, seed: -(2 ** 31) })
    expect(gen({ thinking: { type: 'enabled', budget_tokens: 2 ** 33 } })).toEqual({ thinkingConfig: { thinkingBudget: 2 ** 31 - 1 } })
    expect(gen({ max_tokens: 4096, seed: 2 ** 31 - 1 })).toEqual({ maxOutputTokens: 4096, seed: 2 ** 31 - 1 })
    for (const seed of [2 ** 31, -(2 ** 31) - 1]) {
      const e = caught(() => chat({ seed }))
      expect([e.status, e.code, e.param]).toEqual([400, 'MCP_ERR_REQ_BODY_INVALID', 'seed'])
      expect(e.message).toContain(`provider gem takes a seed between -2147483648 and 2147483647`)
    }
  })

  it('stop: up to 5 sequences go as stopSequences; more (Gemini refuses them) are a 400 naming stop', () => {
    expect((chat({ stop: 'END' }).body as { generationConfig: unknown }).generationConfig).toEqual({ stopSequences: ['END'] })
    expect((chat({ stop: ['a', 'b', 'c', 'd', 'e'] }).body as { generationConfig: unknown }).generationConfig).toEqual({ stopSequences: ['a', 'b', 'c', 'd', 'e'] })
    const e = caught(() => chat({ stop: ['a', 'b', 'c', 'd', 'e', 'f'] }))
    expect([e.status, e.param]).toEqual([400, 'stop'])
    expect(e.message).toMatch(/at most 5 stop sequences, got 6/)
  })

  it('translates a full conversation exactly (fixture)', () => {
    const req = json('chat-request.canonical.json') as ChatRequest
    const up = toGoogleChat(req, 'gemini-2.5-flash', false, opts)
    expect(up.path).toBe('/v1beta/models/gemini-2.5-flash:generateContent?prettyPrint=false')
    expect(up.body).toEqual(json('chat-request.gemini.json'))
  })

  it('streams to streamGenerateContent?alt=sse and keeps a base path prefix', () => {
    const up = toGoogleChat({ model: 'x', messages: [{ role: 'user', content: 'hi' }], stream: true }, 'models/gemini-2.0-flash', true, { ...opts, basePath: '/proxy', apiVersion: 'v1' })
    expect(up.path).toBe('/proxy/v1/models/gemini-2.0-flash:streamGenerateContent?alt=sse')
    expect(up.body).toEqual({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] })
    expect(toGoogleChat({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }, 'tunedModels/my-model', false, opts).path).toBe('/v1beta/tunedModels/my-model:generateContent?prettyPrint=false')
    expect(toGoogleChat({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }, '../evil', false, opts).path).toBe('/v1beta/models/..%2Fevil:generateContent?prettyPrint=false')
  })

  it('merges consecutive turns of one role and skips empty assistant turns', () => {
    const up = chat({ messages: [
      { role: 'user', content: 'a' }, { role: 'user', content: 'b' },
      { role: 'assistant', content: '' }, { role: 'assistant', content: 'c' }, { role: 'assistant', content: [{ type: 'text', text: 'd' }] },
    ] })
    expect((up.body as any).contents).toEqual([
      { role: 'user', parts: [{ text: 'a' }, { text: 'b' }] },
      { role: 'model', parts: [{ text: 'c' }, { text: 'd' }] },
    ])
  })

  it('drops empty text parts (Gemini rejects them) and rejects a user message without content', () => {
    const up = chat({ messages: [{ role: 'system', content: '' }, { role: 'user', content: [{ type: 'text', text: '' }, { type: 'text', text: 'x' }] }] })
    expect(up.body).toEqual({ contents: [{ role: 'user', parts: [{ text: 'x' }] }] })
    expect(caught(() => chat({ messages: [{ role: 'user', content: null as never }] })).code).toBe('MCP_ERR_REQ_BODY_INVALID')
  })

  it('a conversation with no content Gemini takes is a 400 naming the message (was Gemini\'s "contents is not specified")', () => {
    for (const messages of [
      [{ role: 'user', content: [] }],
      [{ role: 'system', content: 'be brief' }, { role: 'user', content: [{ type: 'text', text: '' }] }],
      [{ role: 'assistant', content: null }, { role: 'user', content: '' }],
    ] as ChatRequest['messages'][]) {
      const e = caught(() => chat({ messages }))
      expect(e.code).toBe('MCP_ERR_REQ_BODY_INVALID')
      expect(e.param).toBe(`messages[${messages.length - 1}].content`)
      expect(e.message).toContain('provider gem')
    }
    expect(caught(() => chat({ messages: [{ role: 'system', content: 'only a system prompt' }] })).param).toBe('messages')
  })

  it('an empty last user turn is a 400 naming its content, not dropped (the model\'s answer was left last)', () => {
    for (const content of [[], '', [{ type: 'text', text: '' }]] as ChatRequest['messages'][number]['content'][]) {
      const e = caught(() => chat({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'answer' }, { role: 'user', content } as ChatRequest['messages'][number]] }))
      expect([e.status, e.code, e.param], JSON.stringify(content)).toEqual([400, 'MCP_ERR_REQ_BODY_INVALID', 'messages[2].content'])
      expect(e.message).toContain('provider gem refuses an empty turn')
    }
    // In the middle too (the model turns around it ran together).
    const mid = caught(() => chat({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'a' }, { role: 'user', content: '' }, { role: 'assistant', content: 'b' }, { role: 'user', content: 'c' }] }))
    expect(mid.param).toBe('messages[2].content')
    // Merged with content of its own turn it carries nothing, and is fine.
    const ok = chat({ messages: [{ role: 'user', content: '' }, { role: 'user', content: 'hi' }] }).body as any
    expect(ok.contents).toEqual([{ role: 'user', parts: [{ text: 'hi' }] }])
    const tool = chat({ messages: [
      { role: 'user', content: 'x' }, { role: 'assistant', content: null, tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '{}' } }] },
      { role: 'user', content: '' }, { role: 'tool', tool_call_id: 'a', content: 'r' },
    ] }).body as any
    expect(tool.contents).toHaveLength(3)
  })

  it('maps tool_choice to functionCallingConfig modes', () => {
    const mode = (tool_choice: NonNullable<ChatRequest['tool_choice']>) => (chat({ tool_choice }).body as any).toolConfig
    expect(mode('auto')).toEqual({ functionCallingConfig: { mode: 'AUTO' } })
    expect(mode('none')).toEqual({ functionCallingConfig: { mode: 'NONE' } })
    expect(mode('required')).toEqual({ functionCallingConfig: { mode: 'ANY' } })
  })

  it('json_object → responseMimeType; safetySettings pass through', () => {
    const safetySettings = [{ category: 'HARM_CATEGORY_HARASSMENT', threshold: 'BLOCK_ONLY_HIGH' }]
    const up = chat({ response_format: { type: 'json_object' } }, { safetySettings })
    expect((up.body as any).generationConfig).toEqual({ responseMimeType: 'application/json' })
    expect((up.body as any).safetySettings).toEqual(safetySettings)
  })

  it('data: URLs without base64 are encoded; unknown image extensions default to image/jpeg', () => {
    const up = chat({ messages: [{ role: 'user', content: [
      { type: 'image_url', image_url: { url: 'data:text/plain,hello%20world' } },
      { type: 'image_url', image_url: { url: 'https://example.com/img' } },
      { type: 'input_audio', input_audio: { data: 'UklGRg==', format: 'wav' } },
    ] }] })
    expect((up.body as any).contents[0].parts).toEqual([
      { inlineData: { mimeType: 'text/plain', data: Buffer.from('hello world').toString('base64') } },
      { fileData: { fileUri: 'https://example.com/img', mimeType: 'image/jpeg' } },
      { inlineData: { mimeType: 'audio/wav', data: 'UklGRg==' } },
    ])
  })

  it('rejects unsupported parameters with a 400 naming the parameter and the provider', () => {
    for (const [extra, param] of [
      [{ logprobs: true }, 'logprobs'],
      [{ parallel_tool_calls: false }, 'parallel_tool_calls'],
      [{ store: true }, 'store'],
      [{ response_format: { type: 'grammar' } }, 'response_format'],
      [{ tools: [{ type: 'function', function: { name: 'f' } }, { type: 'web_search' }] }, 'tools[1].type'],
      [{ top_logprobs: 2 }, 'top_logprobs'],
      [{ reasoning_effort: 'xhigh' }, 'reasoning_effort'],
      [{ tool_choice: 'sometimes' }, 'tool_choice'],
    ] as const) {
      const e = caught(() => chat(extra as Record<string, unknown>))
      expect(e.code).toBe('MCP_ERR_REQ_PARAM_UNSUPPORTED')
      expect(e.status).toBe(400)
      expect(e.param).toBe(param)
      expect(e.message).toBe(`Parameter '${param}' is not supported by provider gem`)
    }
    expect(caught(() => chat({ messages: [{ role: 'user', content: [{ type: 'video', video: {} }] }] })).param).toBe('messages[0].content[0].video')
  })

  it('an image `detail` low or high is a 400 naming it (was dropped); auto passes; dropped with dropUnsupportedParams', () => {
    const image = (detail: string) => ({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA', detail } }] }] }) as Record<string, unknown>
    for (const detail of ['low', 'high']) expect(caught(() => chat(image(detail))).param).toBe('messages[0].content[0].image_url.detail')
    const parts = [{ inlineData: { mimeType: 'image/png', data: 'AAAA' } }]
    expect((chat(image('auto')).body as { contents: unknown }).contents).toEqual([{ role: 'user', parts }])
    expect((chat(image('low'), { dropUnsupportedParams: true }).body as { contents: unknown }).contents).toEqual([{ role: 'user', parts }])
  })

  it('drops unsupported parameters when dropUnsupportedParams is set, and ignores null values', () => {
    const up = chat({ logprobs: true, parallel_tool_calls: false, top_logprobs: 2, reasoning_effort: 'xhigh', temperature: null, tool_choice: 'sometimes' as never }, { dropUnsupportedParams: true })
    expect(up.body).toEqual({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] })
  })

  it('with dropUnsupportedParams, drops unsupported content parts and non-function tools too (they were a 400)', () => {
    const messages = [{ role: 'user', content: [
      { type: 'text', text: 'look' },
      { type: 'video', video: {} },
      { type: 'input_audio', input_audio: { data: 'AAAA', format: 'aiff' } },
      { type: 'file', file: { file_id: 'file-1' } },
    ] }]
    const tools = [{ type: 'web_search' }, { type: 'function', function: { name: 'f', description: 'd' } }]
    for (const [req, param] of [[{ messages }, 'messages[0].content[1].video'], [{ tools }, 'tools[0].type']] as const) {
      expect(caught(() => chat(req as Record<string, unknown>)).param).toBe(param)
    }
    const up = chat({ messages, tools } as Record<string, unknown>, { dropUnsupportedParams: true })
    expect(up.body).toEqual({
      contents: [{ role: 'user', parts: [{ text: 'look' }] }],
      tools: [{ functionDeclarations: [{ name: 'f', description: 'd' }] }],
    })
    // Only unsupported tools: no tools at all (Gemini rejects an empty functionDeclarations list).
    expect(chat({ tools: [{ type: 'web_search' }] } as Record<string, unknown>, { dropUnsupportedParams: true }).body).not.toHaveProperty('tools')
  })

  it('Gemini 3: a function call without a thought signature gets the documented skip value (one per turn); real ones are kept; 2.x gets none', () => {
    // A history from another provider or an Anthropic client: no extra_content, so no signature to send back.
    const history = (sig?: string): ChatRequest => ({
      model: 'x',
      messages: [
        { role: 'user', content: 'weather in Paris and Rome?' },
        { role: 'assistant', content: null, tool_calls: [
          { id: 'a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' }, ...(sig ? { extra_content: { google: { thought_signature: sig } } } : {}) },
          { id: 'b', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } },
        ] } as ChatRequest['messages'][number],
        { role: 'tool', tool_call_id: 'a', content: '{"t":20}' },
        { role: 'tool', tool_call_id: 'b', content: '{"t":25}' },
      ],
    })
    const sigs = (model: string, sig?: string): unknown[] => {
      const body = toGoogleChat(history(sig), model, false, opts).body as { contents: { role: string; parts: { functionCall?: unknown; thoughtSignature?: string }[] }[] }
      return body.contents.filter((c) => c.role === 'model').flatMap((c) => c.parts.filter((p) => p.functionCall).map((p) => p.thoughtSignature))
    }
    expect(sigs('gemini-3-pro-preview')).toEqual(['skip_thought_signature_validator', undefined])
    expect(sigs('models/gemini-3.1-flash')).toEqual(['skip_thought_signature_validator', undefined])
    expect(sigs('gemini-3-pro-preview', 'c2ln')).toEqual(['c2ln', undefined])
    expect(sigs('gemini-2.5-flash')).toEqual([undefined, undefined])
    expect(sigs('tunedModels/my-model')).toEqual([undefined, undefined])
  })

  it('a tool result\'s text parts are one line break apart, not glued into one word ("line oneline two")', () => {
    const call = { id: 'a', type: 'function' as const, function: { name: 'f', arguments: '{}' } }
    const response = (extra: Record<string, unknown>) => {
      const body = chat({ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: null, tool_calls: [call] },
        { role: 'tool', tool_call_id: 'a', content: [{ type: 'text', text: 'line one' }, { type: 'text', text: '' }, { type: 'text', text: 'line two' }], ...extra } as ChatRequest['messages'][number]] }).body as any
      return body.contents[2].parts[0].functionResponse.response
    }
    expect(response({})).toEqual({ content: 'line one\nline two' })
    expect(response({ is_error: true })).toEqual({ error: 'line one\nline two' })
  })

  it('rejects a tool message whose tool_call_id matches no assistant tool call, and bad arguments', () => {
    const e = caught(() => chat({ messages: [{ role: 'tool', tool_call_id: 'nope', content: 'x' }] }))
    expect(e.code).toBe('MCP_ERR_REQ_BODY_INVALID')
    expect(e.param).toBe('messages[0].tool_call_id')
    const bad = caught(() => chat({ messages: [{ role: 'assistant', tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '{oops' } }] }] }))
    expect(bad.code).toBe('MCP_ERR_REQ_BODY_INVALID')
  })

  it('names the field of a tool call without a name (the error had no param: OpenAI clients got param null)', () => {
    const e = caught(() => chat({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: null, tool_calls: [{ id: 'a', type: 'function', function: { name: '', arguments: '{}' } }] }] }))
    expect([e.code, e.param]).toEqual(['MCP_ERR_REQ_BODY_INVALID', 'messages[1].tool_calls[0].function.name'])
  })

  it("a malformed request's 400 has details request.body_invalid, as anthropic's and openai's (it was req_body_invalid)", () => {
    const e = caught(() => chat({ stop: ['a', 'b', 'c', 'd', 'e', 'f'] }))
    expect([e.code, e.param, e.details]).toEqual(['MCP_ERR_REQ_BODY_INVALID', 'stop', 'request.body_invalid'])
  })
})

describe('toGeminiSchema', () => {
  it('an array without items gets items {} (any element), not Gemini\'s 400 "items: missing field"; a tuple the anyOf of its elements', () => {
    expect(toGeminiSchema({ type: 'object', properties: { tags: { type: 'array', description: 'tags' }, opt: { type: ['array', 'null'] } } })).toEqual({
      type: 'object', properties: { tags: { type: 'array', description: 'tags', items: {} }, opt: { type: 'array', items: {}, nullable: true } },
    })
    const tuple = { type: 'array', prefixItems: [{ type: 'number' }, { type: 'string' }], minItems: 2, maxItems: 2 }
    expect(toGeminiSchema({ type: 'object', properties: { t: tuple, u: { type: 'array', items: [{ type: 'integer' }, { type: 'integer' }] }, e: { type: 'array', items: [] } } })['properties']).toEqual({
      t: { type: 'array', items: { anyOf: [{ type: 'number' }, { type: 'string' }] }, minItems: 2, maxItems: 2 },
      u: { type: 'array', items: { type: 'integer' } },
      e: { type: 'array', items: {} },
    })
  })

  it('properties without a type make an object (Gemini: "properties: only allowed for OBJECT type"); items without one an array', () => {
    expect(toGeminiSchema({ type: 'object', properties: { a: { properties: { b: { type: 'string' } }, required: ['b'] }, l: { items: { type: 'string' } } } })['properties']).toEqual({
      a: { type: 'object', properties: { b: { type: 'string' } }, required: ['b'] },
      l: { type: 'array', items: { type: 'string' } },
    })
    // Keywords JSON Schema ignores on another type are left out (Gemini refuses them there).
    expect(toGeminiSchema({ type: 'object', properties: { v: { type: 'string', items: { type: 'string' }, properties: { x: {} }, required: ['x'], maxLength: 3 } } })['properties'])
      .toEqual({ v: { type: 'string', maxLength: 3 } })
  })

  it('a type list splits its keywords into the anyOf branch of their type (properties beside anyOf was Gemini\'s 400)', () => {
    const s = toGeminiSchema({ type: 'object', properties: { a: { type: ['object', 'string', 'array', 'null'], description: 'd', properties: { b: { type: 'string' } }, required: ['b'], maxLength: 9, minItems: 1 } } })
    expect(s['properties']).toEqual({
      a: {
        description: 'd', nullable: true,
        anyOf: [{ type: 'object', properties: { b: { type: 'string' } }, required: ['b'] }, { type: 'string', maxLength: 9 }, { type: 'array', minItems: 1, items: {} }],
      },
    })
  })

  it('required names without a property are dropped (Gemini: "required[1]: property is not defined"), after allOf merges', () => {
    expect(toGeminiSchema({ type: 'object', properties: { a: { type: 'string' } }, required: ['a', 'b'] })).toEqual({ type: 'object', properties: { a: { type: 'string' } }, required: ['a'] })
    expect(toGeminiSchema({ type: 'object', properties: { o: { type: 'object', required: ['x'] } } })['properties']).toEqual({ o: { type: 'object' } })
    // A required name whose property comes from another allOf part is kept.
    expect(toGeminiSchema({ type: 'object', properties: { a: { type: 'string' } }, allOf: [{ required: ['a'] }, { properties: { b: { type: 'integer' } }, required: ['b', 'c'] }] }))
      .toEqual({ type: 'object', properties: { a: { type: 'string' }, b: { type: 'integer' } }, required: ['a', 'b'] })
  })

  it('a chain of $defs each used twice (exponential once inlined) is a 400 naming the field, not minutes of work', () => {
    // 40 links: 2^40 copies of the last definition if inlined. 2 KB of JSON Schema for 20 links used to take 7 s.
    const defs: Record<string, unknown> = {}
    for (let i = 0; i < 40; i++) defs[`d${i}`] = { type: 'object', properties: { a: { $ref: `#/$defs/d${i + 1}` }, b: { $ref: `#/$defs/d${i + 1}` } } }
    defs['d40'] = { type: 'string' }
    const parameters = { type: 'object', $defs: defs, properties: { x: { $ref: '#/$defs/d0' } } }
    const req = { model: 'gemini-2.5-flash', messages: [{ role: 'user' as const, content: 'hi' }], tools: [{ type: 'function' as const, function: { name: 'f', parameters } }] }
    const e = caught(() => toGoogleChat(req, 'gemini-2.5-flash', false, opts))
    expect([e.code, e.param, e.status]).toEqual(['MCP_ERR_REQ_BODY_INVALID', 'tools[0].function.parameters', 400])
    expect(e.message).toContain(`more than ${MAX_SCHEMA_NODES} schema nodes`)
    const rf = { model: req.model, messages: req.messages, response_format: { type: 'json_schema' as const, json_schema: { name: 'r', schema: parameters } } }
    expect(() => toGoogleChat(rf, 'gemini-2.5-flash', false, opts)).toThrow(/response_format\.json_schema\.schema: more than/)
    // A short chain is inlined as before.
    const short = toGeminiSchema({ type: 'object', $defs: { p: { type: 'object', properties: { q: { $ref: '#/$defs/q' }, r: { $ref: '#/$defs/q' } } }, q: { type: 'string' } }, properties: { x: { $ref: '#/$defs/p' } } })
    expect(short['properties']).toEqual({ x: { type: 'object', properties: { q: { type: 'string' }, r: { type: 'string' } } } })
  })

  it('an allOf of 5,000 parts merges every property and required name once (one copy, not one per part: 6 s before)', () => {
    const n = 5_000
    const allOf = Array.from({ length: n }, (_, i) => ({ properties: { [`p${i}`]: { type: 'string' } }, required: [`p${i}`, 'p0'] }))
    const input = { type: 'object', properties: { base: { type: 'integer' } }, required: ['base'], allOf }
    const s = toGeminiSchema(input)
    expect(Object.keys(s['properties'] as object)).toHaveLength(n + 1)
    expect(s['required']).toEqual(['base', ...Array.from({ length: n }, (_, i) => `p${i}`)])
    // The client's own schema is left as it came (the merge copies).
    expect(input.required).toEqual(['base'])
    expect(Object.keys(input.properties)).toEqual(['base'])
  })

  it('inlines any local JSON-pointer $ref, as zod-to-json-schema writes a reused schema (#/properties/a), not only $defs', () => {
    const s = toGeminiSchema({
      type: 'object',
      properties: {
        from: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
        to: { $ref: '#/properties/from' },
        stops: { type: 'array', items: { $ref: '#/properties/from/properties/city' } },
        'a/b': { type: 'integer' },
        c: { $ref: '#/properties/a~1b', description: 'escaped' },
      },
    })
    const place = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }
    expect(s['properties']).toEqual({
      from: place, to: place, stops: { type: 'array', items: { type: 'string' } }, 'a/b': { type: 'integer' }, c: { type: 'integer', description: 'escaped' },
    })
    // A reference to the root (a recursive schema) is inlined once, then cut.
    expect(toGeminiSchema({ type: 'object', properties: { name: { type: 'string' }, parent: { $ref: '#' } } })).toEqual({
      type: 'object', properties: { name: { type: 'string' }, parent: { type: 'object', properties: { name: { type: 'string' }, parent: { type: 'object' } } } },
    })
  })

  it('keeps only string enums (Gemini\'s Schema.enum is a list of strings, for STRING only): numeric ones are dropped, named in the description', () => {
    const s = toGeminiSchema({
      type: 'object',
      properties: {
        level: { type: 'integer', enum: [1, 2, 3], description: 'Detail level' },
        flag: { enum: [true, false] },
        color: { enum: ['red', 'green', null] },
        mode: { type: 'string', enum: ['a', 'b'] },
      },
    })
    expect(s).toEqual({
      type: 'object',
      properties: {
        level: { type: 'integer', description: 'Detail level (one of: 1, 2, 3)' },
        flag: { description: 'One of: true, false' },
        color: { type: 'string', enum: ['red', 'green'], nullable: true },
        mode: { type: 'string', enum: ['a', 'b'] },
      },
    })
  })

  it('inlines recursive refs once, merges allOf, turns oneOf into anyOf and type arrays into anyOf', () => {
    const s = toGeminiSchema({
      type: 'object',
      properties: {
        node: { $ref: '#/definitions/Node' },
        both: { allOf: [{ type: 'object', properties: { a: { type: 'string' } }, required: ['a'] }, { properties: { b: { type: 'integer', format: 'int64' } }, required: ['b'] }] },
        either: { oneOf: [{ type: 'string' }, { type: 'integer' }], examples: ['x'] },
        multi: { type: ['string', 'number'], exclusiveMinimum: 0, not: {} },
      },
      definitions: { Node: { type: 'object', description: 'a tree', properties: { child: { $ref: '#/definitions/Node', description: 'sub' } } } },
    })
    expect(s).toEqual({
      type: 'object',
      properties: {
        node: { type: 'object', description: 'a tree', properties: { child: { type: 'object', description: 'sub' } } },
        both: { type: 'object', properties: { a: { type: 'string' }, b: { type: 'integer', format: 'int64' } }, required: ['a', 'b'] },
        either: { anyOf: [{ type: 'string' }, { type: 'integer' }], example: 'x' },
        multi: { anyOf: [{ type: 'string' }, { type: 'number' }] },
      },
    })
  })
})

describe('response: generateContent → chat.completion', () => {
  it('joins text parts and maps usage (fixture)', () => {
    const r = fromGoogleChat(json('generate-content.text.json'), 'gemini-2.5-flash', 'gem')
    expect(r).toMatchObject({ id: 'chatcmpl-mAitaJ3uE9iMz7IPrpiWoAw', object: 'chat.completion', model: 'gemini-2.5-flash' })
    expect(r.choices).toEqual([{ index: 0, message: { role: 'assistant', content: 'Paris is sunny today.' }, finish_reason: 'stop' }])
    expect(r.usage).toEqual({
      prompt_tokens: 12, completion_tokens: 45, total_tokens: 57,
      prompt_tokens_details: { cached_tokens: 4 }, completion_tokens_details: { reasoning_tokens: 40 },
    })
  })

  it('turns functionCall parts into tool calls with deterministic ids; thoughts are not content (fixture)', () => {
    const body = json('generate-content.function-call.json')
    const r = fromGoogleChat(body, 'm', 'gem')
    expect(r.choices[0]).toEqual({
      index: 0,
      message: {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'call_fc-resp-1_0', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' }, extra_content: { google: { thought_signature: 'Q2lRQjBlMk1vZ0xm' } } },
          { id: 'call_fc-resp-1_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"London"}' } },
        ],
      },
      finish_reason: 'tool_calls',
    })
    expect(fromGoogleChat(body, 'm', 'gem').choices[0]!.message.tool_calls!.map((t) => t.id)).toEqual(['call_fc-resp-1_0', 'call_fc-resp-1_1'])
  })

  it('a safety-blocked prompt is a 400 content_filter error keeping the block reason (fixture)', () => {
    const e = caught(() => fromGoogleChat(json('generate-content.blocked-prompt.json'), 'm', 'gem'))
    expect(e.code).toBe('MCP_ERR_UPSTREAM_ERROR')
    expect(e.status).toBe(400)
    expect(e.providerCode).toBe('content_filter')
    expect(e.message).toContain('SAFETY')
  })

  it('safety-blocked candidates finish with content_filter; MAX_TOKENS with length (fixture)', () => {
    const r = fromGoogleChat(json('generate-content.safety.json'), 'm', 'gem')
    expect(r.choices).toEqual([
      { index: 0, message: { role: 'assistant', content: null }, finish_reason: 'content_filter' },
      { index: 1, message: { role: 'assistant', content: 'A long story' }, finish_reason: 'length' },
    ])
  })

  it('a body without candidates nor block reason is a bad response', () => {
    expect(caught(() => fromGoogleChat({ usageMetadata: {} }, 'm', 'gem')).code).toBe('MCP_ERR_UPSTREAM_BAD_RESPONSE')
  })
})

describe('stream: SSE GenerateContentResponse events → chunks', () => {
  it('text deltas, a finish chunk, then one usage chunk with no choices (fixture)', () => {
    const { chunks, agg } = runStream(fixture('stream.text.sse'))
    expect(chunks.map((c) => c.choices.map((ch) => [ch.delta, ch.finish_reason]))).toEqual([
      [[{ role: 'assistant', content: 'Hello' }, null]],
      [[{ content: ', world' }, null]],
      [[{ content: '!' }, null]],
      [[{}, 'stop']],
      [],
    ])
    expect(chunks.every((c) => c.id === 'chatcmpl-sse-text-1' && c.object === 'chat.completion.chunk')).toBe(true)
    expect(chunks.filter((c) => c.usage).length).toBe(1)
    expect(chunks.at(-1)!.usage).toEqual({ prompt_tokens: 8, completion_tokens: 14, total_tokens: 22, completion_tokens_details: { reasoning_tokens: 10 } })
    expect(agg.text).toBe('Hello, world!')
    expect(agg.finishReason).toBe('stop')
  })

  it('each functionCall part is one whole tool_call delta; finish is tool_calls (fixture)', () => {
    const { chunks, agg } = runStream(fixture('stream.function-call.sse'))
    expect(chunks[0]!.choices[0]!.delta).toEqual({
      role: 'assistant',
      tool_calls: [{ index: 0, id: 'call_sse-fc-1_0', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' }, extra_content: { google: { thought_signature: 'c2ln' } } }],
    })
    const res = agg.toResponse()
    expect(res.choices[0]!.message.tool_calls).toEqual([
      { id: 'call_sse-fc-1_0', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
      { id: 'call_sse-fc-1_1', type: 'function', function: { name: 'get_time', arguments: '{}' } },
    ])
    expect(res.choices[0]!.finish_reason).toBe('tool_calls')
    expect(res.usage).toMatchObject({ prompt_tokens: 30, completion_tokens: 12, total_tokens: 42 })
  })

  it('EOF before any finishReason is an interrupted stream (fixture)', () => {
    const e = caught(() => runStream(fixture('stream.cut.sse')))
    expect(e.code).toBe('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
    expect(e.details).toBe('upstream.stream_cut')
  })

  it('malformed JSON is an interrupted stream with upstream.malformed_event', () => {
    const mapper = createGoogleStreamMapper('gem', 'm', 'r')
    const e = caught(() => mapper.push({ event: 'message', data: '{"candidates": [' }))
    expect(e.code).toBe('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
    expect(e.details).toBe('upstream.malformed_event')
  })

  it('an error event and a blocked prompt raise', () => {
    const m1 = createGoogleStreamMapper('gem', 'm', 'r')
    const e1 = caught(() => m1.push({ event: 'message', data: JSON.stringify(json('error.429.json')) }))
    expect([e1.status, e1.providerCode]).toEqual([429, 'RESOURCE_EXHAUSTED'])
    const m2 = createGoogleStreamMapper('gem', 'm', 'r')
    const e2 = caught(() => m2.push({ event: 'message', data: JSON.stringify(json('generate-content.blocked-prompt.json')) }))
    expect([e2.status, e2.providerCode]).toEqual([400, 'content_filter'])
  })

  it('uses the request id when the events carry no responseId', () => {
    const m = createGoogleStreamMapper('gem', 'm', 'req-9')
    const out = m.push({ event: 'message', data: '{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f"}}]},"finishReason":"STOP"}]}' })!
    expect(out[0]!.id).toBe('chatcmpl-req-9')
    expect(out[0]!.choices[0]!.delta.tool_calls![0]!.id).toBe('call_req-9_0')
    expect(m.end()).toBeUndefined()
  })
})

describe('errors', () => {
  it('429 RESOURCE_EXHAUSTED: Google status kept as code, RetryInfo → Retry-After in seconds (fixture)', () => {
    const e = toGoogleError('gem', 429, fixture('error.429.json'), {})
    expect(e.code).toBe('MCP_ERR_UPSTREAM_ERROR')
    expect(e.status).toBe(429)
    expect(e.providerCode).toBe('RESOURCE_EXHAUSTED')
    expect(e.type).toBe('rate_limit_error')
    expect(e.headers).toEqual({ 'retry-after': '27' })
    expect(toGoogleError('gem', 429, fixture('error.429.json'), { 'retry-after': '5' }).headers).toEqual({ 'retry-after': '5' })
  })

  it('400 INVALID_ARGUMENT with the key scrubbed from the message (fixture)', () => {
    const e = toGoogleError('gem', 400, fixture('error.400.json'), {})
    expect([e.status, e.providerCode]).toEqual([400, 'INVALID_ARGUMENT'])
    expect(e.message).not.toContain('AIza')
  })

  it('array-wrapped and non-JSON bodies', () => {
    expect(toGoogleError('gem', 503, `[${fixture('error.400.json')}]`, {}).providerCode).toBe('INVALID_ARGUMENT')
    const e = toGoogleError('gem', 502, '<html>Bad Gateway</html>', {})
    expect([e.status, e.message, e.providerCode]).toEqual([502, '<html>Bad Gateway</html>', null])
  })
})

describe('embeddings', () => {
  const emb = (req: Partial<EmbeddingRequest>, o: Partial<GoogleRequestOptions> = {}) => toGoogleEmbeddings({ model: 'e', input: 'x', ...req } as EmbeddingRequest, 'gemini-embedding-001', { ...opts, ...o })

  it('one input → embedContent; several → batchEmbedContents with models/<m> per request', () => {
    expect(emb({ input: 'hello', dimensions: 256 })).toEqual({
      path: '/v1beta/models/gemini-embedding-001:embedContent?prettyPrint=false',
      body: { model: 'models/gemini-embedding-001', content: { parts: [{ text: 'hello' }] }, outputDimensionality: 256 },
    })
    expect(emb({ input: ['a', 'b'], encoding_format: 'base64', user: 'u' })).toEqual({
      path: '/v1beta/models/gemini-embedding-001:batchEmbedContents?prettyPrint=false',
      body: { requests: [
        { model: 'models/gemini-embedding-001', content: { parts: [{ text: 'a' }] } },
        { model: 'models/gemini-embedding-001', content: { parts: [{ text: 'b' }] } },
      ] },
    })
  })

  it('rejects token-id inputs and unknown parameters', () => {
    expect(caught(() => emb({ input: [1, 2, 3] })).param).toBe('input')
    expect(caught(() => emb({ task_type: 'RETRIEVAL_QUERY' })).param).toBe('task_type')
    expect(emb({ task_type: 'RETRIEVAL_QUERY' }, { dropUnsupportedParams: true }).body).not.toHaveProperty('task_type')
  })

  it('maps embedContent and batchEmbedContents responses (fixtures); usage is estimated', () => {
    const one = fromGoogleEmbeddings(json('embed-content.json'), 'gemini-embedding-001', 'gem')
    expect(one).toEqual({ object: 'list', model: 'gemini-embedding-001', data: [{ object: 'embedding', index: 0, embedding: [0.013168523, -0.008711934, -0.046782676, 0.00069968984] }], usage: { prompt_tokens: 0, total_tokens: 0 } })
    const many = fromGoogleEmbeddings(json('batch-embed-contents.json'), 'm', 'gem')
    const req: EmbeddingRequest = { model: 'm', input: ['abcdefgh', 'xyz'], encoding_format: 'base64' }
    const done = finishEmbeddings(many, req, ['abcdefgh', 'xyz'])
    expect(done.usage).toEqual({ prompt_tokens: 3, total_tokens: 3 })
    const decoded = done.data.map((d) => { const b = Buffer.from(d.embedding as string, 'base64'); return Array.from(new Float32Array(b.buffer, b.byteOffset, b.length / 4)) })
    expect(decoded).toEqual([[0.5, -0.25, 0.125], [1, 0, -1]])
    expect(finishEmbeddings(many, { model: 'm', input: 'x' }, ['x']).data[1]!.embedding).toEqual([1, 0, -1])
  })
})
