import Anthropic from '@anthropic-ai/sdk'
import { describe, expect, it } from 'vitest'
import { GatewayError } from '../errors.ts'
import { nativeOnlyOf } from './anthropic-paths.ts'
import { toAnthropicRequest } from '../../providers/anthropic/request.ts'
import { toOpenAIChat } from '../../providers/openai/request.ts'
import { toGoogleChat } from '../../providers/google/request.ts'
import { toOllamaChat } from '../../providers/ollama/request.ts'
import { fromAnthropicMessage } from '../../providers/anthropic/response.ts'
import { createAnthropicStreamMapper } from '../../providers/anthropic/stream.ts'
import { ChunkAggregator } from '../../providers/shared/aggregate.ts'
import type { ChatChunk, ChatResponse } from '../../providers/types.ts'
import {
  anthropicErrorBody, anthropicInbound, anthropicToCanonical, canonicalToAnthropic, createAnthropicStreamEncoder,
} from './anthropic.ts'

function catchError(fn: () => unknown): GatewayError {
  try { fn() } catch (e) { if (e instanceof GatewayError) return e; throw e }
  throw new Error('expected a GatewayError')
}

const FULL = {
  model: 'claude-sonnet-4-5',
  max_tokens: 1024,
  system: [{ type: 'text', text: 'You are terse.', cache_control: { type: 'ephemeral' } }],
  messages: [
    { role: 'user', content: [
      { type: 'text', text: 'Weather in Paris? Here is a map.' },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
      { type: 'image', source: { type: 'url', url: 'https://example.com/map.jpg' } },
    ] },
    { role: 'assistant', content: [
      { type: 'thinking', thinking: 'I should call the tool.', signature: 'sig' },
      { type: 'text', text: 'Checking.' },
      { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
      { type: 'tool_use', id: 'toolu_2', name: 'get_time', input: {} },
    ] },
    { role: 'user', content: [
      { type: 'tool_result', tool_use_id: 'toolu_1', content: '18°C' },
      { type: 'tool_result', tool_use_id: 'toolu_2', content: [{ type: 'text', text: 'boom' }], is_error: true },
      { type: 'text', text: 'And tomorrow?' },
    ] },
  ],
  stop_sequences: ['END'],
  temperature: 0.3,
  top_p: 0.8,
  top_k: 40,
  metadata: { user_id: 'u-1' },
  tools: [{ name: 'get_weather', description: 'Weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }],
  tool_choice: { type: 'any', disable_parallel_tool_use: true },
  stream: true,
}

describe('anthropicToCanonical', () => {
  it('translates a full request', () => {
    expect(anthropicToCanonical(FULL)).toEqual({
      model: 'claude-sonnet-4-5',
      max_tokens: 1024,
      messages: [
        { role: 'system', content: [{ type: 'text', text: 'You are terse.', cache_control: { type: 'ephemeral' } }] },
        { role: 'user', content: [
          { type: 'text', text: 'Weather in Paris? Here is a map.' },
          { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
          { type: 'image_url', image_url: { url: 'https://example.com/map.jpg' } },
        ] },
        { role: 'assistant', content: 'Checking.', tool_calls: [
          { id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
          { id: 'toolu_2', type: 'function', function: { name: 'get_time', arguments: '{}' } },
        ], thinking_blocks: [{ type: 'thinking', thinking: 'I should call the tool.', signature: 'sig' }] },
        { role: 'tool', tool_call_id: 'toolu_1', content: '18°C' },
        { role: 'tool', tool_call_id: 'toolu_2', content: [{ type: 'text', text: 'boom' }], is_error: true },
        { role: 'user', content: [{ type: 'text', text: 'And tomorrow?' }] },
      ],
      stop: ['END'],
      temperature: 0.3,
      top_p: 0.8,
      top_k: 40,
      user: 'u-1',
      tools: [{ type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
      tool_choice: 'required',
      parallel_tool_calls: false,
      stream: true,
      stream_options: { include_usage: true },
    })
  })

  it('round-trips through the anthropic provider translation, thinking history included', () => {
    const canonical = anthropicToCanonical(FULL)
    const back = toAnthropicRequest(canonical, FULL.model, true, { provider: 'claude', basePath: '', defaultMaxTokens: 4096, dropUnsupportedParams: false })
    expect(back).toEqual(FULL)
  })

  describe('Anthropic-only fields on the way to other providers (translated, dropped or a 400, never verbatim)', () => {
    const CACHED = {
      model: 'm', max_tokens: 100,
      system: [{ type: 'text', text: 'Be terse.', cache_control: { type: 'ephemeral' } }],
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'Weather?', cache_control: { type: 'ephemeral', ttl: '1h' } }] },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: 'service down', cache_control: { type: 'ephemeral' } }], is_error: true }] },
      ],
      tools: [{ name: 'get_weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } }, cache_control: { type: 'ephemeral' } }],
    }
    const withSampling = { ...CACHED, top_k: 40, thinking: { type: 'enabled', budget_tokens: 2048 } }
    const OPENAI = { provider: 'oai', dropUnsupportedParams: false, forwardTopK: false }

    it('openai: cache_control is left out, is_error is marked in the text, top_k is a 400 (or dropped), thinking becomes reasoning_effort', () => {
      const up = toOpenAIChat(anthropicToCanonical(CACHED), 'gpt-4o', false, '/v1', OPENAI)
      const body = up.body as { messages: Record<string, unknown>[]; tools: unknown[] }
      expect(JSON.stringify(body)).not.toContain('cache_control')
      expect(JSON.stringify(body)).not.toContain('is_error')
      expect(body.messages[0]).toEqual({ role: 'system', content: [{ type: 'text', text: 'Be terse.' }] })
      expect(body.messages[1]).toEqual({ role: 'user', content: [{ type: 'text', text: 'Weather?' }] })
      expect(body.messages[3]).toEqual({ role: 'tool', tool_call_id: 'toolu_1', content: 'Error: service down' })
      expect(body.tools).toEqual([{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }])
      const e = catchError(() => toOpenAIChat(anthropicToCanonical({ ...CACHED, top_k: 40 }), 'gpt-4o', false, '/v1', OPENAI))
      expect([e.code, e.status, e.param]).toEqual(['MCP_ERR_REQ_PARAM_UNSUPPORTED', 400, 'top_k'])
      expect(e.message).toContain('oai')
      const dropped = toOpenAIChat(anthropicToCanonical(withSampling), 'gpt-4o', false, '/v1', { ...OPENAI, dropUnsupportedParams: true }).body
      expect(dropped).not.toHaveProperty('top_k')
      expect(dropped).not.toHaveProperty('thinking')
      // gpt-4o is no reasoning model: it refuses reasoning_effort, so thinking is dropped (or a 400 naming it).
      expect(dropped).not.toHaveProperty('reasoning_effort')
      expect(catchError(() => toOpenAIChat(anthropicToCanonical(withSampling), 'gpt-4o', false, '/v1', { ...OPENAI, forwardTopK: true })).param).toBe('thinking')
      // A reasoning model gets the effort its budget buys.
      const o3 = toOpenAIChat(anthropicToCanonical(withSampling), 'o3', false, '/v1', { ...OPENAI, dropUnsupportedParams: true }).body
      expect(o3).not.toHaveProperty('thinking')
      expect(o3).toMatchObject({ reasoning_effort: 'low' })
      // openai-compatible servers (vLLM, llama.cpp) take top_k.
      const compat = toOpenAIChat(anthropicToCanonical({ ...CACHED, top_k: 40 }), 'llama', false, '/v1', { ...OPENAI, forwardTopK: true }).body
      expect(compat).toMatchObject({ top_k: 40 })
    })

    it('openai: max_tokens (always set by /v1/messages) goes to OpenAI as max_completion_tokens, which its reasoning models require; compatible servers keep max_tokens', () => {
      const official = toOpenAIChat(anthropicToCanonical(CACHED), 'o3', false, '/v1', { ...OPENAI, completionTokens: true }).body
      expect(official).toMatchObject({ max_completion_tokens: 100 })
      expect(official).not.toHaveProperty('max_tokens')
      // A client's own max_completion_tokens wins; nothing is renamed for OpenAI-compatible servers or Azure.
      const both = toOpenAIChat({ model: 'x', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5, max_completion_tokens: 7 }, 'o3', false, '/v1', { ...OPENAI, completionTokens: true }).body
      expect(both).toMatchObject({ max_tokens: 5, max_completion_tokens: 7 })
      const compat = toOpenAIChat(anthropicToCanonical(CACHED), 'llama', false, '/v1', { ...OPENAI, forwardTopK: true }).body
      expect(compat).toMatchObject({ max_tokens: 100 })
      expect(compat).not.toHaveProperty('max_completion_tokens')
    })

    it('google: is_error becomes functionResponse.response.error, top_k topK, cache_control left out, thinking a thinkingBudget', () => {
      const gopts = { provider: 'gem', basePath: '', apiVersion: 'v1beta', dropUnsupportedParams: false }
      const body = toGoogleChat(anthropicToCanonical({ ...CACHED, top_k: 40 }), 'gemini-2.5-flash', false, gopts).body as Record<string, any>
      expect(JSON.stringify(body)).not.toContain('cache_control')
      expect(body.contents[2]).toEqual({ role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { error: 'service down' } } }] })
      expect(body.generationConfig).toEqual({ maxOutputTokens: 100, topK: 40 })
      const thinking = toGoogleChat(anthropicToCanonical(withSampling), 'gemini-2.5-flash', false, gopts).body as Record<string, any>
      expect(thinking.generationConfig).toEqual({ maxOutputTokens: 100, topK: 40, thinkingConfig: { thinkingBudget: 2048 } })
    })

    it('ollama: is_error is marked in the text, top_k goes to options, cache_control left out, thinking is think: true', () => {
      const oopts = { provider: 'local', basePath: '', dropUnsupported: false }
      const body = toOllamaChat(anthropicToCanonical({ ...CACHED, top_k: 40 }), 'llama3.2', false, oopts).body as Record<string, any>
      expect(JSON.stringify(body)).not.toContain('cache_control')
      expect(body.messages[3]).toEqual({ role: 'tool', content: 'Error: service down', tool_name: 'get_weather' })
      expect(body.options).toEqual({ num_predict: 100, top_k: 40 })
      expect(toOllamaChat(anthropicToCanonical(withSampling), 'm', false, oopts).body).toMatchObject({ think: true })
    })
  })

  it('service_tier: standard_only reaches Anthropic as it came and OpenAI as `default`; auto is the default everywhere; another value is a 400', () => {
    const body = (tier: unknown): object => ({ model: 'claude-x', max_tokens: 100, service_tier: tier, messages: [{ role: 'user', content: 'hi' }] })
    const opts = { provider: 'claude', basePath: '', defaultMaxTokens: 4096, dropUnsupportedParams: false }
    expect(toAnthropicRequest(anthropicToCanonical(body('standard_only')), 'claude-x', false, opts)).toMatchObject({ service_tier: 'standard_only' })
    expect(toAnthropicRequest(anthropicToCanonical(body('auto')), 'claude-x', false, opts)).not.toHaveProperty('service_tier')
    expect(toOpenAIChat(anthropicToCanonical(body('standard_only')), 'gpt-4o', false, '/v1', { provider: 'oai', dropUnsupportedParams: false, forwardTopK: false }).body).toMatchObject({ service_tier: 'default' })
    expect(JSON.stringify(toGoogleChat(anthropicToCanonical(body('standard_only')), 'gemini-2.5-flash', false, { provider: 'gem', basePath: '', apiVersion: 'v1beta', dropUnsupportedParams: false }).body)).not.toContain('service_tier')
    expect(catchError(() => anthropicToCanonical(body('priority'))).param).toBe('service_tier')
  })

  it('context_management (Claude Code sends it; it was a 400 that failed every Claude Code request): carried to Anthropic, left out elsewhere', () => {
    const cm = { edits: [{ type: 'clear_thinking_20251015', keep: 'all' }] }
    const body = { model: 'claude-x', max_tokens: 100, context_management: cm, messages: [{ role: 'user', content: 'hi' }] }
    const canonical = anthropicToCanonical(body)
    expect(toAnthropicRequest(canonical, 'claude-x', false, { provider: 'claude', basePath: '', defaultMaxTokens: 4096, dropUnsupportedParams: false })).toMatchObject({ context_management: cm })
    expect(toOpenAIChat(canonical, 'gpt-4o', false, '/v1', { provider: 'oai', dropUnsupportedParams: false, forwardTopK: false }).body).not.toHaveProperty('context_management')
    expect(JSON.stringify(toGoogleChat(canonical, 'gemini-2.5-flash', false, { provider: 'gem', basePath: '', apiVersion: 'v1beta', dropUnsupportedParams: false }).body)).not.toContain('context_management')
    expect(toOllamaChat(canonical, 'llama3.2', false, { provider: 'local', basePath: '', dropUnsupported: false }).body).not.toHaveProperty('context_management')
    expect(catchError(() => anthropicToCanonical({ ...body, context_management: 'all' })).param).toBe('context_management')
  })

  describe('image and document blocks: cache_control carried to Anthropic, left out elsewhere; fields not carried are a 400', () => {
    const PNG64 = 'iVBORw0KGgo='
    const IMAGE = { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG64 }, cache_control: { type: 'ephemeral' } }
    const DOC = { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'The lease.' }, title: 'lease.txt', cache_control: { type: 'ephemeral', ttl: '1h' } }
    const PDF_DOC = { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: 'JVBERi0=' }, citations: { enabled: false } }
    const body = (...blocks: object[]): any => ({ model: 'claude-x', max_tokens: 100, messages: [{ role: 'user', content: [...blocks, { type: 'text', text: 'Summarise.' }] }] })

    it('anthropic: the blocks come back as they went, cache_control included (it was left out of images and documents)', () => {
      const up = toAnthropicRequest(anthropicToCanonical(body(IMAGE, DOC)), 'claude-x', false, { provider: 'claude', basePath: '', defaultMaxTokens: 4096, dropUnsupportedParams: false })
      expect(up.messages[0]!.content).toEqual([IMAGE, DOC, { type: 'text', text: 'Summarise.' }])
      // citations: {enabled: false} asks for nothing: accepted, not sent.
      const pdf = toAnthropicRequest(anthropicToCanonical(body(PDF_DOC)), 'claude-x', false, { provider: 'claude', basePath: '', defaultMaxTokens: 4096, dropUnsupportedParams: false })
      expect(pdf.messages[0]!.content).toEqual([{ type: 'document', source: PDF_DOC.source }, { type: 'text', text: 'Summarise.' }])
    })

    it('a tool_result\'s cache_control (Claude Code\'s breakpoint on the last block) reaches Anthropic; openai, google and ollama leave it out', () => {
      const cc = { type: 'ephemeral' }
      const canonical = anthropicToCanonical({
        model: 'm', max_tokens: 5,
        messages: [
          { role: 'user', content: 'weather?' },
          { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'weather', input: {} }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: 'sunny', cache_control: cc }] },
        ],
      })
      const up = toAnthropicRequest(canonical, 'claude-x', false, { provider: 'claude', basePath: '', defaultMaxTokens: 4096, dropUnsupportedParams: false })
      expect(up.messages[2]!.content).toEqual([{ type: 'tool_result', tool_use_id: 't1', content: 'sunny', cache_control: cc }])
      expect(JSON.stringify(toOpenAIChat(canonical, 'gpt-4o', false, '/v1', { provider: 'oai', dropUnsupportedParams: false, forwardTopK: false }).body)).not.toContain('cache_control')
      expect(JSON.stringify(toGoogleChat(canonical, 'gemini-2.5-flash', false, { provider: 'gem', basePath: '', apiVersion: 'v1beta', dropUnsupportedParams: false }).body)).not.toContain('cache_control')
      expect(JSON.stringify(toOllamaChat(canonical, 'llama3', false, { provider: 'local', basePath: '', dropUnsupported: false }).body)).not.toContain('cache_control')
    })

    it('openai, google and ollama: cache_control left out', () => {
      const canonical = anthropicToCanonical(body(IMAGE, DOC))
      expect(JSON.stringify(toOpenAIChat(canonical, 'gpt-4o', false, '/v1', { provider: 'oai', dropUnsupportedParams: false, forwardTopK: false }).body)).not.toContain('cache_control')
      const g = toGoogleChat(canonical, 'gemini-2.5-flash', false, { provider: 'gem', basePath: '', apiVersion: 'v1beta', dropUnsupportedParams: false }).body as Record<string, any>
      expect(g.contents[0].parts).toEqual([{ inlineData: { mimeType: 'image/png', data: PNG64 } }, { inlineData: { mimeType: 'text/plain', data: Buffer.from('The lease.').toString('base64') } }, { text: 'Summarise.' }])
      const o = toOllamaChat(anthropicToCanonical(body(IMAGE)), 'llava', false, { provider: 'local', basePath: '', dropUnsupported: false }).body as Record<string, any>
      expect(o.messages[0]).toEqual({ role: 'user', content: 'Summarise.', images: [PNG64] })
    })

    it.each([
      ['a document\'s citations (they would come back in text blocks the answer does not carry)', { ...PDF_DOC, citations: { enabled: true } }, 'messages[0].content[0].citations'],
      ['a document\'s context', { ...DOC, context: 'A lease from 2024.' }, 'messages[0].content[0].context'],
      ['a field images do not have', { ...IMAGE, title: 'x' }, 'messages[0].content[0].title'],
    ])('%s: native-only, naming it (only an Anthropic provider takes the body as sent; was silently left out)', (_, block, param) => {
      const req = anthropicToCanonical(body(block))
      expect(nativeOnlyOf(req)?.field).toBe(param)
      expect(JSON.stringify(req)).not.toMatch(/citations|context|title/)
    })
  })

  it('keeps images in tool_result content: the text stays in the tool message, the images follow all tool results as user content', () => {
    const png = { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' }
    const body = {
      model: 'm', max_tokens: 5,
      messages: [
        { role: 'user', content: 'screenshot both pages' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'shot', input: {} }, { type: 'tool_use', id: 't2', name: 'shot', input: {} }] },
        { role: 'user', content: [
          { type: 'tool_result', tool_use_id: 't1', content: [{ type: 'text', text: 'page 1' }, { type: 'image', source: png }] },
          { type: 'tool_result', tool_use_id: 't2', content: [{ type: 'image', source: { type: 'url', url: 'https://example.com/2.png' } }] },
          { type: 'text', text: 'compare them' },
        ] },
      ],
    }
    const r = anthropicToCanonical(body)
    expect(r.messages.slice(2)).toEqual([
      { role: 'tool', tool_call_id: 't1', content: [{ type: 'text', text: 'page 1' }] },
      { role: 'tool', tool_call_id: 't2', content: '' },
      { role: 'user', content: [
        { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
        { type: 'image_url', image_url: { url: 'https://example.com/2.png' } },
        { type: 'text', text: 'compare them' },
      ] },
    ])
    // Anthropic upstream: one user turn, the tool_result blocks first, then the images and the text.
    const up = toAnthropicRequest(r, 'claude', false, { defaultMaxTokens: 100 } as never)
    expect(up.messages.at(-1)).toMatchObject({ role: 'user', content: [
      { type: 'tool_result', tool_use_id: 't1' }, { type: 'tool_result', tool_use_id: 't2' },
      { type: 'image', source: png }, { type: 'image', source: { type: 'url', url: 'https://example.com/2.png' } }, { type: 'text', text: 'compare them' },
    ] })
  })

  it('maps string system, tool_choice variants, output_config and thinking', () => {
    const base = { model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }
    expect(anthropicToCanonical({ ...base, system: 'S' }).messages[0]).toEqual({ role: 'system', content: 'S' })
    expect(anthropicToCanonical({ ...base, tool_choice: { type: 'auto' } }).tool_choice).toBe('auto')
    expect(anthropicToCanonical({ ...base, tool_choice: { type: 'none' } }).tool_choice).toBe('none')
    expect(anthropicToCanonical({ ...base, tool_choice: { type: 'tool', name: 'f' } }).tool_choice).toEqual({ type: 'function', function: { name: 'f' } })
    const r = anthropicToCanonical({ ...base, output_config: { format: { type: 'json_schema', schema: { type: 'object' } }, effort: 'low' }, thinking: { type: 'enabled', budget_tokens: 2048 } })
    expect(r.response_format).toEqual({ type: 'json_schema', json_schema: { name: 'output', schema: { type: 'object' } } })
    expect(r.reasoning_effort).toBe('low')
    expect(r['thinking']).toEqual({ type: 'enabled', budget_tokens: 2048 })
    expect(anthropicToCanonical({ ...base, thinking: { type: 'disabled' } })['thinking']).toEqual({ type: 'disabled' })
    expect(anthropicToCanonical({ ...base, stream: false }).stream_options).toBeUndefined()
  })

  it.each([
    ['max_tokens', { max_tokens: undefined }],
    ['max_tokens', { max_tokens: 1.5 }],
    ['messages', { messages: [] }],
    ['messages[0].role', { messages: [{ role: 'tool', content: 'x' }] }],
    ['messages[0].content[0].text', { messages: [{ role: 'user', content: [{ type: 'text' }] }] }],
    ['messages[0].content[0].source.type', { messages: [{ role: 'user', content: [{ type: 'image', source: { type: 7 } }] }] }],
    ['messages[0].content[0].type', { messages: [{ role: 'user', content: [{ type: 7 }] }] }],
    ['tools[0].type', { tools: [{ type: 7, name: 'web_search' }] }],
    ['messages[0].content[0].input', { messages: [{ role: 'assistant', content: [{ type: 'tool_use', id: 't', name: 'n', input: 'x' }] }] }],
    ['temperature', { temperature: 1.5 }],
    ['tool_choice.type', { tool_choice: { type: 'sometimes' } }],
  ] as [string, Record<string, unknown>][])('rejects a bad %s with MCP_ERR_REQ_BODY_INVALID naming it', (field, patch) => {
    const e = catchError(() => anthropicToCanonical({ model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }], ...patch }))
    expect(e.code).toBe('MCP_ERR_REQ_BODY_INVALID')
    expect(e.status).toBe(400)
    expect(e.param).toBe(field)
    expect(e.message).toContain(`${field}:`)
  })

  it.each([
    ['messages[2].content[0].type', { messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'user', content: [{ type: 'audio' }] }] }],
    ['messages[0].content[0].source.type', { messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'file', file_id: 'f' } }, { type: 'text', text: 'hi' }] }] }],
    ['tools[0].type', { tools: [{ type: 'web_search_20250305', name: 'web_search' }] }],
    ['metadata.tenant', { metadata: { tenant: 'x' } }],
    ['container', { container: 'c1' }],
    ['messages[1].content[0].type', { messages: [{ role: 'user', content: 'news?' }, { role: 'assistant', content: [{ type: 'server_tool_use', id: 's1', name: 'web_search', input: { query: 'q' } }, { type: 'web_search_tool_result', tool_use_id: 's1', content: [] }, { type: 'text', text: 'Found it.' }] }, { role: 'user', content: 'more' }] }],
  ] as [string, Record<string, unknown>][])('%s: native-only (an Anthropic provider gets the body as sent, any other a 400 naming it), left out of the canonical request', (field, patch) => {
    const req = anthropicToCanonical({ model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }], ...patch })
    expect(nativeOnlyOf(req)?.field).toBe(field)
    const json = JSON.stringify(req)
    for (const gone of ['audio', 'file_id', 'web_search', 'tenant', 'container', 'server_tool_use']) expect(json).not.toContain(gone)
    // A request with nothing native-only is not marked.
    expect(nativeOnlyOf(anthropicToCanonical({ model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }))).toBeUndefined()
  })

  it('a server tool beside client tools: the client tools stay canonical; the server-tool history keeps its text', () => {
    const req = anthropicToCanonical({
      model: 'm', max_tokens: 5,
      tools: [{ name: 'f', input_schema: { type: 'object' } }, { type: 'web_search_20250305', name: 'web_search', max_uses: 2 }],
      messages: [{ role: 'user', content: 'news?' }, { role: 'assistant', content: [{ type: 'server_tool_use', id: 's1', name: 'web_search', input: {} }, { type: 'text', text: 'Found.', citations: [{ type: 'web_search_result_location', url: 'u', title: 't', encrypted_index: 'e', cited_text: 'c' }] }] }, { role: 'user', content: 'more' }],
    })
    // The first such part named (messages are read before tools).
    expect(nativeOnlyOf(req)).toEqual({ field: 'messages[1].content[0].type', reason: "content block type 'server_tool_use' is not translated" })
    expect(req.tools).toEqual([{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }])
    expect(req.messages[1]).toEqual({ role: 'assistant', content: 'Found.' })
  })
})

const RES: ChatResponse = {
  id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: 'gpt-4o',
  choices: [{
    index: 0,
    message: { role: 'assistant', content: 'Let me look.', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }] },
    finish_reason: 'tool_calls',
  }],
  usage: { prompt_tokens: 100, completion_tokens: 20, total_tokens: 120, prompt_tokens_details: { cached_tokens: 30, cache_creation_tokens: 10 } },
}

describe('empty Messages content → canonical OpenAI takes (OpenAI refused an empty parts array and a bare null assistant)', () => {
  it('system [], a tool_result with content [], an assistant with no blocks or only thinking', () => {
    const req = anthropicToCanonical({
      model: 'm', max_tokens: 16, system: [],
      messages: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'f', input: {} }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: [] }, { type: 'text', text: 'go on' }] },
        { role: 'assistant', content: [{ type: 'redacted_thinking', data: 'x' }] },
        { role: 'user', content: 'and?' },
        { role: 'assistant', content: [] },
      ],
    })
    expect(req.messages).toEqual([
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: null, tool_calls: [{ id: 't1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 't1', content: '' },
      { role: 'user', content: [{ type: 'text', text: 'go on' }] },
      { role: 'assistant', content: '', thinking_blocks: [{ type: 'redacted_thinking', data: 'x' }] },
      { role: 'user', content: 'and?' },
      { role: 'assistant', content: '' },
    ])
    const sent = toOpenAIChat(req, 'gpt-4o', false, '').body as { messages: { role: string; content: unknown; tool_calls?: unknown }[] }
    for (const m of sent.messages) {
      expect(Array.isArray(m.content) && m.content.length === 0, JSON.stringify(m)).toBe(false)
      if (m.role === 'assistant' && m.content === null) expect(m.tool_calls).toBeDefined()
    }
  })
})

describe('canonicalToAnthropic', () => {
  it('builds a Message with content blocks, stop_reason and usage split back into cache fields', () => {
    expect(canonicalToAnthropic(RES, 'claude-alias')).toEqual({
      id: 'chatcmpl-1', type: 'message', role: 'assistant', model: 'claude-alias',
      content: [{ type: 'text', text: 'Let me look.' }, { type: 'tool_use', id: 'call_1', name: 'f', input: { a: 1 } }],
      stop_reason: 'tool_use', stop_sequence: null,
      usage: { input_tokens: 60, cache_creation_input_tokens: 10, cache_read_input_tokens: 30, output_tokens: 20 },
    })
  })

  it.each([['stop', 'end_turn'], ['length', 'max_tokens'], ['content_filter', 'refusal']] as const)('maps finish_reason %s to %s', (f, s) => {
    const res: ChatResponse = { ...RES, choices: [{ index: 0, message: { role: 'assistant', content: 'x' }, finish_reason: f }] }
    expect(canonicalToAnthropic(res, 'm')).toMatchObject({ stop_reason: s, content: [{ type: 'text', text: 'x' }] })
  })

  it('a finish reason outside OpenAI\'s set (a server\'s own, e.g. vLLM abort) still gives a stop_reason, streamed and not', () => {
    const res = { ...RES, choices: [{ index: 0, message: { role: 'assistant', content: 'x' }, finish_reason: 'abort' }] } as unknown as ChatResponse
    expect(canonicalToAnthropic(res, 'm')).toMatchObject({ stop_reason: 'end_turn' })
    const enc = anthropicInbound.createStreamEncoder('m', true)
    const sse = enc.chunk({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'x', choices: [{ index: 0, delta: { content: 'x' }, finish_reason: 'abort' as never }] }) + enc.end()
    expect(sse).toContain('"stop_reason":"end_turn"')
  })

  it('encodes through the Inbound interface', () => {
    expect(JSON.parse(anthropicInbound.encodeResponse(RES, 'm'))).toMatchObject({ type: 'message', model: 'm' })
  })
})

const base = { id: 'chatcmpl-9', object: 'chat.completion.chunk' as const, created: 1, model: 'gpt-4o' }
const ch = (delta: ChatChunk['choices'][number]['delta'], finish: ChatChunk['choices'][number]['finish_reason'] = null): ChatChunk =>
  ({ ...base, choices: [{ index: 0, delta, finish_reason: finish }] })
const usageChunk: ChatChunk = { ...base, choices: [], usage: { prompt_tokens: 12, completion_tokens: 7, total_tokens: 19 } }

/** Text, then two tool calls (OpenAI-style fragments), finish, usage. */
const TOOL_STREAM: ChatChunk[] = [
  ch({ role: 'assistant', content: '' }),
  ch({ content: 'Let me ' }),
  ch({ content: 'check.' }),
  ch({ tool_calls: [{ index: 0, id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '' } }] }),
  ch({ tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] }),
  ch({ tool_calls: [{ index: 0, function: { arguments: ' "Paris"}' } }] }),
  ch({ tool_calls: [{ index: 1, id: 'call_b', type: 'function', function: { name: 'get_time', arguments: '{}' } }] }),
  ch({}, 'tool_calls'),
  usageChunk,
]

function encode(chunks: ChatChunk[]): string {
  const enc = createAnthropicStreamEncoder('claude-alias')
  return chunks.map((c) => enc.chunk(c)).join('') + enc.end()
}

/** Lets the official SDK parse the encoder's bytes, as a client of the gateway would. */
function sdkOver(body: string): Anthropic {
  return new Anthropic({
    apiKey: 'k', maxRetries: 0,
    fetch: (async () => new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } })) as typeof fetch,
  })
}

describe('createAnthropicStreamEncoder', () => {
  it('writes the exact SSE for a text stream', () => {
    const out = encode([ch({ role: 'assistant', content: '' }), ch({ content: 'Hi' }), ch({ content: '!' }), ch({}, 'stop'), usageChunk])
    expect(out).toBe([
      'event: message_start\ndata: {"type":"message_start","message":{"id":"chatcmpl-9","type":"message","role":"assistant","model":"claude-alias","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}\n\n',
      'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',
      'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}\n\n',
      'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"!"}}\n\n',
      'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
      'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":7}}\n\n',
      'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    ].join(''))
  })

  it('closes the text block before each tool_use block and streams input_json_delta', () => {
    const events = encode(TOOL_STREAM).split('\n\n').filter(Boolean).map((e) => JSON.parse(e.split('\ndata: ')[1]!) as { type: string; index?: number })
    expect(events.map((e) => `${e.type}${e.index !== undefined ? `#${e.index}` : ''}`)).toEqual([
      'message_start',
      'content_block_start#0', 'content_block_delta#0', 'content_block_delta#0', 'content_block_stop#0',
      'content_block_start#1', 'content_block_delta#1', 'content_block_delta#1', 'content_block_stop#1',
      'content_block_start#2', 'content_block_delta#2', 'content_block_stop#2',
      'message_delta', 'message_stop',
    ])
    expect(events[5]).toEqual({ type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'call_a', name: 'get_weather', input: {} } })
    expect(events[12]).toMatchObject({ delta: { stop_reason: 'tool_use' } })
  })

  it('is reassembled by the official SDK (messages.stream) into text and tool inputs', async () => {
    const stream = sdkOver(encode(TOOL_STREAM)).messages.stream({ model: 'claude-alias', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] })
    const msg = await stream.finalMessage()
    expect(msg.content).toEqual([
      expect.objectContaining({ type: 'text', text: 'Let me check.' }),
      expect.objectContaining({ type: 'tool_use', id: 'call_a', name: 'get_weather', input: { city: 'Paris' } }),
      expect.objectContaining({ type: 'tool_use', id: 'call_b', name: 'get_time', input: {} }),
    ])
    expect(msg.stop_reason).toBe('tool_use')
    expect(msg.usage).toMatchObject({ input_tokens: 12, output_tokens: 7 })
  })

  it('keeps interleaved tool-call fragments apart: every delta goes to the open block, and the SDK reassembles each input', async () => {
    // A server that starts two tool calls and then sends arguments for each in turn (and a text after them).
    const chunks: ChatChunk[] = [
      ch({ role: 'assistant', content: '' }),
      ch({ tool_calls: [{ index: 0, id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '' } }] }),
      ch({ tool_calls: [{ index: 1, id: 'call_b', type: 'function', function: { name: 'get_time', arguments: '{"tz":' } }] }),
      ch({ tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] }),
      ch({ tool_calls: [{ index: 1, function: { arguments: ' "UTC"}' } }] }),
      ch({ tool_calls: [{ index: 0, function: { arguments: ' "Paris"}' } }] }),
      ch({ content: 'Checking both.' }),
      ch({}, 'tool_calls'),
      usageChunk,
    ]
    const body = encode(chunks)
    const events = body.split('\n\n').filter(Boolean).map((e) => JSON.parse(e.split('\ndata: ')[1]!) as { type: string; index?: number })
    let open = -1
    for (const e of events) {
      if (e.type === 'content_block_start') { expect(open, 'a block starts while another is open').toBe(-1); open = e.index! }
      if (e.type === 'content_block_delta') expect(e.index, 'a delta for a block that is not open').toBe(open)
      if (e.type === 'content_block_stop') { expect(e.index).toBe(open); open = -1 }
    }
    const msg = await sdkOver(body).messages.stream({ model: 'claude-alias', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }).finalMessage()
    expect(msg.content).toEqual([
      expect.objectContaining({ type: 'tool_use', id: 'call_a', name: 'get_weather', input: { city: 'Paris' } }),
      expect.objectContaining({ type: 'tool_use', id: 'call_b', name: 'get_time', input: { tz: 'UTC' } }),
      expect.objectContaining({ type: 'text', text: 'Checking both.' }),
    ])
    expect(msg.stop_reason).toBe('tool_use')
    // Without a finish chunk, end() writes what was held too.
    const cut = encode(chunks.slice(0, 6))
    expect(cut.match(/"type":"content_block_stop"/g)).toHaveLength(2)
    expect(cut).toContain('"partial_json":"{\\"tz\\": \\"UTC\\"}"')
  })

  it('writes an error event the SDK raises with the Anthropic error type', async () => {
    const enc = createAnthropicStreamEncoder('m', undefined, 'req-1')
    const body = enc.chunk(ch({ content: 'partial' })) +
      enc.error(new GatewayError('MCP_ERR_UPSTREAM_ERROR', { provider: 'p', status: 529, reason: 'Overloaded' }, { status: 529, message: 'Overloaded' }))
    // The request's id, as in an error body.
    expect(body.endsWith('event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req-1"}\n\n')).toBe(true)
    expect(enc.end()).toBe('')
    const stream = sdkOver(body).messages.stream({ model: 'm', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] })
    await expect(stream.finalMessage()).rejects.toMatchObject({ type: 'overloaded_error' })
  })

  it('still writes a complete message for an empty stream', () => {
    const out = createAnthropicStreamEncoder('m').end()
    expect(out).toContain('event: message_start')
    expect(out).toContain('"stop_reason":"end_turn"')
    expect(out.endsWith('event: message_stop\ndata: {"type":"message_stop"}\n\n')).toBe(true)
  })
})

/**
 * A one-text-block Anthropic stream ending with `stop` (message_delta's delta), through the provider's stream mapper and
 * the /v1/messages encoder; the message_delta event the Anthropic client gets. `compact`: Anthropic's own
 * serialization (the mapper's fast path), else indented (its full parse).
 */
function messageDeltaThrough(stop: { stop_reason: string; stop_sequence: string | null }, compact: boolean): { delta: unknown } {
  const mapper = createAnthropicStreamMapper('claude', 'claude-x', () => 1_700_000_000_000)
  const enc = createAnthropicStreamEncoder('m')
  let out = ''
  for (const e of [
    { type: 'message_start', message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 3, output_tokens: 1 } } },
    { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
    { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hi' } },
    { type: 'content_block_stop', index: 0 },
    { type: 'message_delta', delta: stop, usage: { output_tokens: 2 } },
    { type: 'message_stop' },
  ]) for (const c of mapper.push({ event: e.type, data: compact ? JSON.stringify(e) : JSON.stringify(e, null, 1) }) ?? []) out += enc.chunk(c)
  for (const c of mapper.end() ?? []) out += enc.chunk(c)
  out += enc.end()
  const delta = out.split('\n\n').find((e) => e.startsWith('event: message_delta'))!
  return JSON.parse(delta.split('\ndata: ')[1]!) as { delta: unknown }
}

describe('stop sequences through the anthropic provider', () => {
  // A client that sends stop_sequences learns which one ended the turn: stop_reason 'stop_sequence' and its text.
  const stopped = { stop_reason: 'stop_sequence', stop_sequence: '\nUser: "' }

  it('keeps stop_reason stop_sequence and the sequence in a Message', () => {
    const res = fromAnthropicMessage({
      id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'Hi' }],
      ...stopped, usage: { input_tokens: 3, output_tokens: 2 },
    }, 'claude')
    expect(res.choices[0]?.finish_reason).toBe('stop')
    expect(canonicalToAnthropic(res, 'm')).toMatchObject(stopped)
    const ended = fromAnthropicMessage({ id: 'msg_2', type: 'message', role: 'assistant', model: 'claude-x', content: [], stop_reason: 'end_turn', stop_sequence: null, usage: {} }, 'claude')
    expect(canonicalToAnthropic(ended, 'm')).toMatchObject({ stop_reason: 'end_turn', stop_sequence: null })
  })

  it('keeps them in a stream (message_delta), in Anthropic\'s serialization and in another one', () => {
    for (const [compact, seq] of [[true, stopped.stop_sequence], [true, 'END'], [false, stopped.stop_sequence]] as const) {
      const stop = { stop_reason: 'stop_sequence', stop_sequence: seq }
      expect(messageDeltaThrough(stop, compact), `${String(compact)} ${seq}`).toMatchObject({ delta: stop })
    }
  })
})

describe('stop reasons the finish reason cannot say, back to Anthropic clients as Anthropic sent them', () => {
  // model_context_window_exceeded and pause_turn were answered as max_tokens and end_turn: a client could not tell a full
  // context window from its own output limit, nor a paused turn from a finished one.
  it.each([
    ['model_context_window_exceeded', 'length'],
    ['pause_turn', 'stop'],
    ['a_reason_added_later', 'stop'],
  ])('%s (OpenAI clients: %s), in a Message and in a stream', (reason, finish) => {
    const res = fromAnthropicMessage({ id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'Hi' }], stop_reason: reason, stop_sequence: null, usage: { input_tokens: 3, output_tokens: 2 } }, 'claude')
    expect(res.choices[0]).toMatchObject({ finish_reason: finish, anthropic_stop_reason: reason })
    expect(canonicalToAnthropic(res, 'm')).toMatchObject({ stop_reason: reason, stop_sequence: null })
    for (const compact of [true, false]) {
      expect(messageDeltaThrough({ stop_reason: reason, stop_sequence: null }, compact).delta, String(compact)).toEqual({ stop_reason: reason, stop_sequence: null })
    }
  })

  it('the reasons the finish reason does say carry no extension (end_turn, max_tokens, tool_use, refusal)', () => {
    for (const reason of ['end_turn', 'max_tokens', 'tool_use', 'refusal']) {
      const res = fromAnthropicMessage({ id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'Hi' }], stop_reason: reason, stop_sequence: null, usage: {} }, 'claude')
      expect(res.choices[0]).not.toHaveProperty('anthropic_stop_reason')
      expect(canonicalToAnthropic(res, 'm')).toMatchObject({ stop_reason: reason })
    }
  })
})

describe('anthropicErrorBody', () => {
  it.each([
    ['MCP_ERR_REQ_BODY_INVALID', 400, 'invalid_request_error'],
    ['MCP_ERR_AUTH_INVALID', 401, 'authentication_error'],
    ['MCP_ERR_AUTH_FORBIDDEN', 403, 'permission_error'],
    ['MCP_ERR_ROUTE_MODEL_NOT_FOUND', 404, 'not_found_error'],
    ['MCP_ERR_REQ_BODY_TOO_LARGE', 413, 'request_too_large'],
    ['MCP_ERR_INTERNAL', 500, 'api_error'],
    ['MCP_ERR_UPSTREAM_CONNECT', 502, 'api_error'],
    // 503 was api_error ("unexpected internal error"): Anthropic clients could not tell "retry later" from a bug.
    ['MCP_ERR_UPSTREAM_UNAVAILABLE', 503, 'overloaded_error'],
    ['MCP_ERR_SERVER_OVERLOADED', 503, 'overloaded_error'],
    ['MCP_ERR_SERVER_DRAINING', 503, 'overloaded_error'],
    // Anthropic's error reference: 504 - timeout_error (the gateway's own upstream timeout is a 504).
    ['MCP_ERR_UPSTREAM_TIMEOUT', 504, 'timeout_error'],
  ] as const)('%s (%i) → %s', (code, status, type) => {
    const e = new GatewayError(code, {})
    expect(e.status).toBe(status)
    expect(anthropicErrorBody(e, 'req_1')).toEqual({ type: 'error', error: { type, message: e.message }, request_id: 'req_1' })
  })

  it('a provider\'s 400 names the Messages field the client sent, not the canonical one it became (it named fields the client never sent)', () => {
    const gopts = { provider: 'google', basePath: '', apiVersion: 'v1beta', dropUnsupportedParams: false }
    const base = { model: 'm', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] }
    const tools = [{ name: 'a', input_schema: { type: 'object', properties: { x: { type: 'string' } } } }]
    const messageFor = (body: Record<string, unknown>): string => {
      const e = catchError(() => toGoogleChat(anthropicToCanonical({ ...base, ...body }), 'gemini-2.5-flash', false, gopts))
      return (anthropicErrorBody(e, 'r') as { error: { message: string } }).error.message
    }
    expect(messageFor({ tools, tool_choice: { type: 'auto', disable_parallel_tool_use: true } }))
      .toBe("Parameter 'tool_choice.disable_parallel_tool_use' is not supported by provider google")
    expect(messageFor({ output_config: { effort: 'max' } })).toBe("Parameter 'output_config.effort' is not supported by provider google")
    expect(messageFor({ stop_sequences: ['a', 'b', 'c', 'd', 'e', 'f'] })).toBe('Invalid request body: stop_sequences: Gemini takes at most 5 stop sequences, got 6')
    const user = new GatewayError('MCP_ERR_REQ_PARAM_UNSUPPORTED', { param: 'user', provider: 'p' }, { param: 'user' })
    expect((anthropicErrorBody(user, 'r') as { error: { message: string } }).error.message).toBe("Parameter 'metadata.user_id' is not supported by provider p")
    // A tool's fields sit on the tool itself (a provider's function-name rule, providers/shared/tool-names.ts).
    const toolName = (field: string): string => {
      const e = new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason: `${field}: provider google takes function names of letters, got "1a"` }, { param: field })
      return (anthropicErrorBody(e, 'r') as { error: { message: string } }).error.message
    }
    expect(toolName('tools[1].function.name')).toBe('Invalid request body: tools[1].name: provider google takes function names of letters, got "1a"')
    expect(toolName('tool_choice.function.name')).toBe('Invalid request body: tool_choice.name: provider google takes function names of letters, got "1a"')
    expect(toolName('tools[0].function.parameters')).toBe('Invalid request body: tools[0].input_schema: provider google takes function names of letters, got "1a"')
    // The OpenAI dialect keeps the canonical names, which are its own; an upstream error is left as the provider wrote it.
    const upstream = new GatewayError('MCP_ERR_UPSTREAM_ERROR', { provider: 'p', status: 400, reason: "'stop' is bad" }, { status: 400, param: 'stop' })
    expect((anthropicErrorBody(upstream, 'r') as { error: { message: string } }).error.message).toBe(upstream.message)
  })

  it('uses 429 rate_limit_error and 529 overloaded_error for upstream errors with those statuses', () => {
    const at = (status: number, type: string) => new GatewayError('MCP_ERR_UPSTREAM_ERROR', {}, { status, type, message: 'x' })
    expect(anthropicErrorBody(at(429, 'requests'), 'r')).toMatchObject({ error: { type: 'rate_limit_error' } })
    expect(anthropicErrorBody(at(529, 'api_error'), 'r')).toMatchObject({ error: { type: 'overloaded_error' } })
    expect(anthropicErrorBody(at(402, 'billing_error'), 'r')).toMatchObject({ error: { type: 'billing_error' } })
    expect(anthropicErrorBody(at(504, 'api_error'), 'r')).toMatchObject({ error: { type: 'timeout_error' } })
    expect(anthropicErrorBody(at(409, 'conflict_error'), 'r')).toMatchObject({ error: { type: 'conflict_error' } })
  })

  it('answers an upstream 503 (OpenAI "overloaded", Gemini UNAVAILABLE) as overloaded_error, in a body and in a stream, status kept', async () => {
    const e = new GatewayError('MCP_ERR_UPSTREAM_ERROR', {}, { status: 503, type: 'api_error', message: 'The model is overloaded.' })
    expect(e.status).toBe(503)
    expect(anthropicErrorBody(e, 'r')).toMatchObject({ error: { type: 'overloaded_error' } })
    const body = createAnthropicStreamEncoder('m', undefined, 'req-1').error(e)
    expect(body).toBe('event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"The model is overloaded."},"request_id":"req-1"}\n\n')
    const stream = sdkOver(body).messages.stream({ model: 'm', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] })
    await expect(stream.finalMessage()).rejects.toMatchObject({ type: 'overloaded_error' })
  })
})

describe('extended thinking through the anthropic provider (thinking blocks were dropped, breaking tool loops)', () => {
  const OPTS = { provider: 'claude', basePath: '', defaultMaxTokens: 4096, dropUnsupportedParams: false }
  // Anthropic signatures are opaque base64; the strings must come back byte for byte (escapes and all).
  const SIG = 'EqQBCkYIARgCKkB+/sig==\u2028"quoted"'
  const CONTENT = [
    { type: 'thinking', thinking: 'First, the weather.\nThen "the time".', signature: SIG },
    { type: 'redacted_thinking', data: 'EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpPkNRj2YfWXGmKDxH4mPnZ5sQ7vB5URj' },
    { type: 'thinking', thinking: 'Second thoughts.', signature: 'c2ln' },
    { type: 'text', text: 'Checking.' },
    { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
  ]

  it('history: thinking and redacted_thinking blocks → canonical thinking_blocks → Anthropic, first and unmodified', () => {
    const body = {
      model: 'claude-x', max_tokens: 2048, thinking: { type: 'enabled', budget_tokens: 1024 },
      messages: [
        { role: 'user', content: 'Weather?' },
        { role: 'assistant', content: [CONTENT[4], CONTENT[3], CONTENT[0], CONTENT[1], CONTENT[2]] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'sunny' }] },
      ],
    }
    const canonical = anthropicToCanonical(body)
    expect(canonical.messages[1]).toMatchObject({ role: 'assistant', thinking_blocks: CONTENT.slice(0, 3) })
    const up = toAnthropicRequest(canonical, 'claude-x', false, OPTS)
    expect(up.messages[1]!.content).toEqual(CONTENT)
    expect(JSON.stringify(up.messages[1]!.content)).toContain(JSON.stringify(SIG))
    expect(catchError(() => anthropicToCanonical({ ...body, messages: [{ role: 'assistant', content: [{ type: 'thinking', thinking: 'x' }] }] })).param).toBe('messages[0].content[0].signature')
  })

  it('history: other providers leave thinking blocks out', () => {
    const canonical = anthropicToCanonical({ model: 'm', max_tokens: 10, messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: CONTENT }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'sunny' }] }] })
    const openai = toOpenAIChat(canonical, 'gpt-4o', false, '/v1', { provider: 'oai', dropUnsupportedParams: false, forwardTopK: false }).body
    expect(JSON.stringify(openai)).not.toContain('thinking')
    expect((openai as { messages: unknown[] }).messages[1]).toEqual({ role: 'assistant', content: 'Checking.', tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] })
    expect(JSON.stringify(toGoogleChat(canonical, 'gemini', false, { provider: 'g', apiVersion: 'v1beta', dropUnsupportedParams: false } as never).body)).not.toContain('thinking')
    expect(JSON.stringify(toOllamaChat(canonical, 'llama', false, { provider: 'o', dropUnsupportedParams: false } as never).body)).not.toContain('thinking')
  })

  it('answer: a Message keeps its thinking blocks first, in order, unmodified', () => {
    const res = fromAnthropicMessage({ id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', content: CONTENT, stop_reason: 'tool_use', stop_sequence: null, usage: { input_tokens: 3, output_tokens: 2 } }, 'claude')
    expect(res.choices[0]!.message.thinking_blocks).toEqual(CONTENT.slice(0, 3))
    expect((canonicalToAnthropic(res, 'm') as { content: unknown }).content).toEqual(CONTENT)
  })

  it('stream: thinking_delta and signature_delta reach the client as Anthropic sent them, block indexes kept; the aggregate keeps them', async () => {
    const events = [
      { type: 'message_start', message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 3, output_tokens: 1 } } },
      { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'First, the weather.\nThen ' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: '"the time".' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: SIG } },
      { type: 'content_block_stop', index: 0 },
      { type: 'content_block_start', index: 1, content_block: CONTENT[1] },
      { type: 'content_block_stop', index: 1 },
      { type: 'content_block_start', index: 2, content_block: { type: 'thinking', thinking: '' } },
      { type: 'content_block_delta', index: 2, delta: { type: 'thinking_delta', thinking: 'Second thoughts.' } },
      { type: 'content_block_delta', index: 2, delta: { type: 'signature_delta', signature: 'c2ln' } },
      { type: 'content_block_stop', index: 2 },
      { type: 'content_block_start', index: 3, content_block: { type: 'text', text: '' } },
      { type: 'content_block_delta', index: 3, delta: { type: 'text_delta', text: 'Checking.' } },
      { type: 'content_block_stop', index: 3 },
      { type: 'content_block_start', index: 4, content_block: { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: {} } },
      { type: 'content_block_delta', index: 4, delta: { type: 'input_json_delta', partial_json: '{"city": "Paris"}' } },
      { type: 'content_block_stop', index: 4 },
      { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 20 } },
      { type: 'message_stop' },
    ]
    const mapper = createAnthropicStreamMapper('claude', 'claude-x', () => 1_700_000_000_000)
    const enc = createAnthropicStreamEncoder('m')
    const agg = new ChunkAggregator()
    let out = ''
    for (const e of events) for (const c of mapper.push({ event: e.type, data: JSON.stringify(e) }) ?? []) { agg.add(c); out += enc.chunk(c) }
    out += enc.end()
    const written = out.split('\n\n').filter(Boolean).map((e) => JSON.parse(e.split('\ndata: ')[1]!) as Record<string, unknown>)
    expect(written.slice(1, -2)).toEqual(events.slice(1, -2))
    expect(agg.toResponse().choices[0]!.message.thinking_blocks).toEqual(CONTENT.slice(0, 3))
    const msg = await sdkOver(out).messages.stream({ model: 'm', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }).finalMessage()
    expect(msg.content).toEqual(CONTENT)
  })

  it('stream: a thinking block after a tool_use (interleaved thinking) closes it and gets the next index', () => {
    const enc = createAnthropicStreamEncoder('m')
    let out = ''
    for (const c of [
      ch({ role: 'assistant', content: '' }),
      ch({ thinking_blocks: [{ index: 0, type: 'thinking', thinking: 'a', signature: 's1' }] }),
      ch({ tool_calls: [{ index: 0, id: 't1', type: 'function', function: { name: 'f', arguments: '{}' } }] }),
      ch({ thinking_blocks: [{ index: 1, type: 'thinking', thinking: 'b' }] }),
      ch({ thinking_blocks: [{ index: 1, type: 'thinking', signature: 's2' }] }),
      ch({ tool_calls: [{ index: 1, id: 't2', type: 'function', function: { name: 'f', arguments: '{}' } }] }),
      ch({}, 'tool_calls'),
    ]) out += enc.chunk(c)
    out += enc.end()
    const events = out.split('\n\n').filter(Boolean).map((e) => JSON.parse(e.split('\ndata: ')[1]!) as { type: string; index?: number; content_block?: { type: string } })
    expect(events.filter((e) => e.type === 'content_block_start').map((e) => `${e.index}:${e.content_block!.type}`)).toEqual(['0:thinking', '1:tool_use', '2:thinking', '3:tool_use'])
    expect(events.filter((e) => e.type === 'content_block_stop').map((e) => e.index)).toEqual([0, 1, 2, 3])
  })
})
