/**
 * Seeded fuzz of the translation paths: requests that pass the gateway's inbound validation but are
 * unusual (edge values, odd content parts, odd tool schemas and calls, odd message orders) go through a
 * running gateway to every provider's mock, streamed and not. Each mock refuses what its real API refuses.
 *
 * Every answer must be a 200 (a stream ending in [DONE] / message_stop), or a 4xx in the inbound API's
 * own error shape with a message, from the gateway itself (a 400 names the field). An upstream 4xx passed
 * on means the gateway sent the provider something it refuses: a translation finding. Never a 5xx, never
 * MCP_ERR_INTERNAL, and the gateway still serves at the end.
 *
 * A request whose last user message is "echo <text>" must come back as "echo: <text>" (every mock's echo), streamed or
 * not. A last phase puts faults in every mock (4xx, 5xx, resets, streams cut, malformed or ending in an error event):
 * then any status may come, but in the inbound API's error shape, and a 200 stream ends with its end or an error event.
 *
 * Knobs: FUZZ_SEED (default below), FUZZ_N requests per inbound API (default 400). A failure lists each distinct
 * problem once with a request that shows it: `FUZZ_SEED=<seed> FUZZ_N=1` reruns just that request (the model is
 * chosen by the seed). FUZZ_SHOW_4XX=1 prints every 4xx; FUZZ_DUMP=<file> writes the findings as JSON.
 */
import { writeFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startAnthropicMock, thinkingSignature } from '../helpers/anthropic-mock.ts'
import { startAzureMock } from '../helpers/azure-mock.ts'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startGeminiMock } from '../helpers/gemini-mock.ts'
import { startOllamaMock } from '../helpers/ollama-mock.ts'
import { startOpenAIMock } from '../helpers/openai-mock.ts'

const SEED = Number(process.env['FUZZ_SEED'] ?? 20261125)
const N = Number(process.env['FUZZ_N'] ?? 400)

// ---------- PRNG (mulberry32) ----------

type Rng = () => number
function mulberry32(seed: number): Rng {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

class Gen {
  readonly r: Rng
  constructor(seed: number) { this.r = mulberry32(seed) }
  int(lo: number, hi: number): number { return lo + Math.floor(this.r() * (hi - lo + 1)) }
  chance(p: number): boolean { return this.r() < p }
  pick<T>(xs: readonly T[]): T { return xs[Math.floor(this.r() * xs.length)]! }
  many<T>(lo: number, hi: number, f: () => T): T[] { return Array.from({ length: this.int(lo, hi) }, f) }
}

const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=='
const PDF = Buffer.from('%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF').toString('base64')
const WAV = Buffer.from('RIFF\x24\x00\x00\x00WAVEfmt ').toString('base64')

/** Texts a user may send: ordinary, unicode of every kind, long, and the mocks' triggers. */
function text(g: Gen): string {
  return g.pick([
    () => 'hello',
    () => 'echo ' + g.pick(['hi', 'héllo wörld', '😀🎉 emoji', '𝕏 astral 𠜎', 'مرحبا بالعالم', 'שלום', '\u202Eltr override', 'zero\u200Bwidth', 'tab\tand\nnewline']),
    () => 'please call tool for Paris',
    () => '🧪'.repeat(g.int(1, 50)),
    () => 'x'.repeat(g.int(1000, 20000)),
    () => ' leading and trailing ',
    () => '"quotes" \\ backslash {json: true}',
    () => '\u0000 nul',
    () => 'data: [DONE]\n\nevent: message_stop',
    () => 'line\r\nbreaks\r\n',
    () => '',
    () => '   ',
    () => '\n\t ',
  ])()
}

// ---------- OpenAI Chat Completions requests ----------

const PROVIDERS: readonly { prefix: string; embeds: boolean }[] = [
  { prefix: 'openai/gpt-4o', embeds: true },
  { prefix: 'compat/meta-llama/Llama-3.1-8B', embeds: true },
  { prefix: 'azure/gpt-4o', embeds: true },
  { prefix: 'anthropic/claude-sonnet-4-5', embeds: false },
  { prefix: 'google/gemini-2.5-flash', embeds: true },
  { prefix: 'ollama/llama3.2', embeds: true },
]

function oddSchema(g: Gen): Record<string, unknown> {
  return g.pick<() => Record<string, unknown>>([
    () => ({ type: 'object', properties: {} }),
    () => ({ type: 'object' }),
    () => ({}),
    () => ({ type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }),
    () => ({ type: 'object', properties: { unit: { type: 'string', enum: ['c', 'f'] }, n: { type: 'integer', minimum: 0, maximum: 10 } } }),
    () => ({ type: 'object', properties: { v: { anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'null' }] } } }),
    () => ({ type: 'object', properties: { a: { type: 'object', properties: { b: { type: 'array', items: { type: 'object', properties: { c: { type: 'boolean' } } } } } } }, additionalProperties: false }),
    () => ({ type: 'object', $defs: { Pt: { type: 'object', properties: { x: { type: 'number' } } } }, properties: { p: { $ref: '#/$defs/Pt' } } }),
    () => ({ $schema: 'http://json-schema.org/draft-07/schema#', type: 'object', properties: { q: { type: 'string', description: 'ü 😀', default: 'x' } }, additionalProperties: { type: 'string' } }),
    () => ({ type: 'object', properties: { t: { type: ['string', 'null'] } } }),
    () => ({ type: 'object', properties: { s: { type: 'string', format: 'date-time', pattern: '^\\d+$', minLength: 0, maxLength: 10 } } }),
    () => ({ type: 'object', properties: { o: { oneOf: [{ type: 'string' }, { type: 'integer' }] }, c: { const: 'k' } } }),
    () => ({ $ref: '#/$defs/Root', $defs: { Root: { type: 'object', properties: { r: { type: 'string' } } } } }),
    () => ({ type: 'object', definitions: { X: { type: 'string', enum: ['a', 'b'] } }, properties: { x: { $ref: '#/definitions/X' }, y: { $ref: '#/properties/x' } } }),
    () => ({ type: 'object', $defs: { Node: { type: 'object', properties: { v: { type: 'number' }, next: { $ref: '#/$defs/Node' } } } }, properties: { head: { $ref: '#/$defs/Node' } } }),
    () => ({ type: 'object', properties: { a: true, b: { type: 'array', items: true }, c: { type: 'array', prefixItems: [{ type: 'string' }], items: false } } }),
    () => ({ type: 'object', properties: { e: { enum: [1, 2, null] }, f: { enum: [] }, g: { type: 'string', enum: ['x'], nullable: true } }, required: ['missing'] }),
    () => ({ type: ['object', 'null'], properties: { a: { type: 'integer', exclusiveMinimum: 0, multipleOf: 2 } } }),
    () => ({ allOf: [{ type: 'object', properties: { a: { type: 'string' } } }, { properties: { b: { type: 'number' } }, required: ['b'] }] }),
    () => ({ type: 'object', properties: { p: { type: 'object', patternProperties: { '^x': { type: 'string' } }, additionalProperties: false } }, not: { required: ['z'] } }),
    () => ({ type: 'object', properties: { m: { type: 'object', properties: { deep: { type: 'object', properties: { deeper: { type: 'array', items: { anyOf: [{ $ref: '#/properties/m' }, { type: 'null' }] } } } } } } } }),
    () => ({ type: 'object', title: 'T', examples: [{ a: 1 }], properties: { a: { type: 'integer', examples: [1], deprecated: true, readOnly: true } }, if: { properties: { a: { const: 1 } } }, then: { required: ['a'] } }),
  ])()
}

function tool(g: Gen, name: string): Record<string, unknown> {
  const fn: Record<string, unknown> = { name }
  if (g.chance(0.6)) fn['description'] = g.pick(['', 'Weather for a city', '天気 🌦', 'x'.repeat(1000)])
  if (g.chance(0.85)) fn['parameters'] = oddSchema(g)
  if (g.chance(0.2)) fn['strict'] = g.chance(0.5)
  return { type: 'function', function: fn }
}

function oaPart(g: Gen): Record<string, unknown> {
  return g.pick<() => Record<string, unknown>>([
    () => ({ type: 'text', text: text(g) }),
    () => ({ type: 'text', text: text(g) }),
    () => ({ type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}`, ...(g.chance(0.5) ? { detail: g.pick(['low', 'high', 'auto']) } : {}) } }),
    () => ({ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }),
    () => ({ type: 'image_url', image_url: { url: `data:image/jpeg;base64,${PNG}` } }),
    () => ({ type: 'input_audio', input_audio: { data: WAV, format: g.pick(['wav', 'mp3']) } }),
    () => ({ type: 'file', file: { file_data: `data:application/pdf;base64,${PDF}`, filename: 'a.pdf' } }),
    () => ({ type: 'file', file: { file_id: 'file-abc123' } }),
    () => ({ type: 'text', text: '' }),
    () => ({ type: 'image_url', image_url: { url: `data:image/svg+xml;base64,${PNG}` } }),
    () => ({ type: 'image_url', image_url: { url: 'data:image/png,notbase64' } }),
  ])()
}

function oaContent(g: Gen, allowParts = true): unknown {
  if (allowParts && g.chance(0.05)) return []
  if (!allowParts || g.chance(0.5)) return text(g)
  return g.many(1, 4, () => oaPart(g))
}

function argumentsOf(g: Gen): string {
  // Mostly what models send; a quarter are not a JSON object (a 400 where the provider takes an object).
  if (g.chance(0.25)) return g.pick(['[1,2]', '"str"', '42', 'null', '{not json'])
  return g.pick(['{}', '{"city":"Paris"}', '', '{"a":{"b":[1,2,{"c":null}]}}', '{"emoji":"😀","rtl":"مرحبا"}', ' {"spaced": true} '])
}

function oaMessages(g: Gen, tools: string[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = []
  if (g.chance(0.5)) out.push({ role: g.pick(['system', 'developer']), content: g.pick<() => unknown>([() => text(g), () => text(g), () => [{ type: 'text', text: text(g) }], () => [], () => ''])() })
  if (g.chance(0.1)) out.push({ role: 'assistant', content: text(g) })
  const turns = g.int(0, 5)
  for (let i = 0; i < turns; i++) {
    const kind = g.int(0, 7)
    if (kind <= 2) out.push({ role: 'user', content: oaContent(g), ...(g.chance(0.1) ? { name: 'alice' } : {}) })
    else if (kind === 3) out.push({ role: 'assistant', content: g.chance(0.3) ? null : oaContent(g, g.chance(0.3)) })
    else if (kind === 4) out.push({ role: g.pick(['system', 'developer']), content: text(g) })
    else if (kind === 5 && g.chance(0.3)) out.push(g.pick<() => Record<string, unknown>>([
      () => ({ role: 'function', name: 'get_weather', content: '{"t":1}' }),
      () => ({ role: 'assistant', content: null, refusal: 'I cannot help with that.' }),
      () => ({ role: 'assistant', content: null, function_call: { name: 'get_weather', arguments: '{}' } }),
      () => ({ role: 'assistant', content: [{ type: 'refusal', refusal: 'no' }] }),
    ])())
    else {
      // assistant with tool calls, then results (as text or parts), maybe not all of them
      const calls = g.many(1, 3, () => ({ id: `call_${g.int(0, 1e6)}`, type: 'function', function: { name: tools[0] ?? g.pick(['get_weather', 'x']), arguments: argumentsOf(g) } }))
      out.push({ role: 'assistant', content: g.pick([null, '', 'Let me check.']), tool_calls: calls })
      for (const c of calls) {
        out.push({ role: 'tool', tool_call_id: c.id, content: g.pick<() => unknown>([() => text(g), () => '', () => '{"temp":21}', () => '[1,2]', () => 'null', () => [{ type: 'text', text: text(g) }], () => [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }], () => [], () => [{ type: 'text', text: 'see' }, oaPart(g)]])() })
      }
    }
  }
  out.push({ role: 'user', content: oaContent(g) })
  if (g.chance(0.1)) out.push({ role: 'assistant', content: g.pick(['The answer is:', 'Sure']) })
  return out
}

function openaiRequest(g: Gen, model: string): Record<string, unknown> {
  const toolNames = g.chance(0.4) ? g.many(1, 3, () => g.pick(['get_weather', 'lookup_ü', 'a', 'do-thing', 'tool_' + g.int(0, 9)])).filter((n, i, a) => a.indexOf(n) === i) : []
  const b: Record<string, unknown> = { model, messages: oaMessages(g, toolNames) }
  if (toolNames.length === 0 && g.chance(0.1)) {
    b['tools'] = []
    if (g.chance(0.5)) b['tool_choice'] = g.pick(['auto', 'none', 'required'])
  }
  if (toolNames.length > 0) {
    b['tools'] = toolNames.map((n) => tool(g, n))
    if (g.chance(0.6)) b['tool_choice'] = g.pick<() => unknown>([() => 'auto', () => 'none', () => 'required', () => ({ type: 'function', function: { name: toolNames[0] } }),
      () => ({ type: 'function', function: { name: toolNames[toolNames.length - 1] } }),
      () => ({ type: 'allowed_tools', allowed_tools: { mode: 'auto', tools: [{ type: 'function', function: { name: toolNames[0] } }] } })])()
    if (g.chance(0.3)) b['parallel_tool_calls'] = g.chance(0.5)
  }
  const opt = (p: number, k: string, f: () => unknown): void => { if (g.chance(p)) b[k] = f() }
  opt(0.3, 'temperature', () => g.pick([0, 2, 1, 0.7, null]))
  opt(0.3, 'top_p', () => g.pick([0, 1, 0.5, null]))
  opt(0.3, 'max_tokens', () => g.pick([1, 5, 4096, null]))
  opt(0.2, 'max_completion_tokens', () => g.pick([1, 64, null]))
  opt(0.2, 'n', () => g.pick([1, null, 2, 128]))
  opt(0.1, 'max_tokens', () => 2 ** 31)
  opt(0.3, 'stop', () => g.pick<unknown>(['\n', 'END', [], ['a', 'b'], ['x', 'y', 'z', 'w'], null, '😀', '', ' ', ['', 'END'], ['\n\n'], Array.from({ length: 16 }, (_, k) => `s${k}`)]))
  opt(0.2, 'presence_penalty', () => g.pick([-2, 0, 2, null]))
  opt(0.2, 'frequency_penalty', () => g.pick([-2, 0, 2, null]))
  opt(0.2, 'seed', () => g.pick([0, 42, -1, 2 ** 31 - 1, null]))
  opt(0.2, 'user', () => g.pick(['', 'user-😀', 'u'.repeat(256)]))
  opt(0.2, 'metadata', () => g.pick<unknown>([{}, { k: 'v' }, null, { 'ключ': 'значение' }]))
  opt(0.2, 'logprobs', () => g.pick([true, false, null]))
  if (b['logprobs'] === true && g.chance(0.5)) b['top_logprobs'] = g.pick([0, 5, 20])
  opt(0.2, 'response_format', () => g.pick<unknown>([
    { type: 'text' }, { type: 'json_object' },
    { type: 'json_schema', json_schema: { name: 'out', schema: oddSchema(g) } },
    { type: 'json_schema', json_schema: { name: 'out', strict: true, schema: { type: 'object', properties: { a: { type: 'string' } }, required: ['a'], additionalProperties: false } } },
  ]))
  opt(0.2, 'reasoning_effort', () => g.pick(['minimal', 'low', 'medium', 'high']))
  return b
}

// ---------- Anthropic Messages requests ----------

function anBlock(g: Gen): Record<string, unknown> {
  return g.pick<() => Record<string, unknown>>([
    () => ({ type: 'text', text: text(g) }),
    () => ({ type: 'text', text: text(g), cache_control: { type: 'ephemeral' } }),
    () => ({ type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } }),
    () => ({ type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } }),
    () => ({ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: PDF }, ...(g.chance(0.5) ? { title: 'doc 📄' } : {}) }),
    () => ({ type: 'image', source: { type: 'base64', media_type: 'image/jpeg', data: PNG } }),
  ])()
}

function anMessages(g: Gen, tools: string[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = []
  const turns = g.int(0, 3)
  for (let i = 0; i < turns; i++) {
    const kind = g.int(0, 4)
    if (kind <= 1) out.push({ role: 'user', content: g.chance(0.1) ? [] : g.chance(0.5) ? text(g) : g.many(1, 3, () => anBlock(g)) })
    else if (kind === 2) out.push({ role: 'assistant', content: g.pick<() => unknown>([() => text(g), () => [{ type: 'text', text: text(g) }], () => [], () => [{ type: 'text', text: 'a' }, { type: 'text', text: 'b', cache_control: { type: 'ephemeral' } }]])() })
    else {
      const ids = g.many(1, 2, () => `toolu_${g.int(0, 1e6)}`)
      const content: Record<string, unknown>[] = []
      if (g.chance(0.3)) content.push(g.chance(0.8) ? { type: 'thinking', thinking: 'hmm', signature: thinkingSignature('hmm') } : { type: 'redacted_thinking', data: 'opaque' })
      if (g.chance(0.5)) content.push({ type: 'text', text: 'Checking.' })
      for (const id of ids) content.push({ type: 'tool_use', id, name: tools[0] ?? 'get_weather', input: g.pick<unknown>([{}, { city: 'Paris' }, { a: { b: [1, null] } }, { s: '😀' }]) })
      out.push({ role: 'assistant', content })
      const results: Record<string, unknown>[] = ids.map((id) => {
        const r: Record<string, unknown> = { type: 'tool_result', tool_use_id: id }
        const c = g.int(0, 4)
        if (c === 1) r['content'] = text(g)
        else if (c === 2) r['content'] = [{ type: 'text', text: text(g) }]
        else if (c === 3) r['content'] = [{ type: 'text', text: 'see image' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } }]
        else if (c === 4) r['content'] = []
        if (g.chance(0.2)) r['is_error'] = true
        if (g.chance(0.1)) r['cache_control'] = { type: 'ephemeral' }
        return r
      })
      if (g.chance(0.3)) results.push({ type: 'text', text: text(g) })
      out.push({ role: 'user', content: results })
    }
  }
  out.push({ role: 'user', content: g.chance(0.5) ? text(g) : g.many(1, 3, () => anBlock(g)) })
  return out
}

function anthropicRequest(g: Gen, model: string): Record<string, unknown> {
  const toolNames = g.chance(0.4) ? ['get_weather', 'lookup'].slice(0, g.int(1, 2)) : []
  const b: Record<string, unknown> = { model, max_tokens: g.pick([1, 16, 1024, 64000]), messages: anMessages(g, toolNames) }
  if (g.chance(0.5)) b['system'] = g.chance(0.1) ? [] : g.chance(0.5) ? text(g) : g.many(1, 3, () => ({ type: 'text', text: text(g), ...(g.chance(0.3) ? { cache_control: { type: 'ephemeral' } } : {}) }))
  if (toolNames.length > 0) {
    b['tools'] = toolNames.map((name) => ({ name, input_schema: oddSchema(g), ...(g.chance(0.5) ? { description: g.pick(['', 'desc 😀']) } : {}) }))
    if (g.chance(0.6)) b['tool_choice'] = g.pick<() => unknown>([() => ({ type: 'auto' }), () => ({ type: 'any' }), () => ({ type: 'none' }), () => ({ type: 'tool', name: toolNames[0] }), () => ({ type: 'auto', disable_parallel_tool_use: true })])()
  }
  const opt = (p: number, k: string, f: () => unknown): void => { if (g.chance(p)) b[k] = f() }
  opt(0.3, 'temperature', () => g.pick([0, 1, 0.5]))
  opt(0.2, 'top_p', () => g.pick([0, 1, 0.9]))
  opt(0.2, 'top_k', () => g.pick([0, 1, 40, 500]))
  opt(0.3, 'stop_sequences', () => g.pick<unknown>([[], ['END'], ['😀', 'stop here', '\nHuman:'], Array.from({ length: 8 }, (_, k) => `s${k}`)]))
  opt(0.2, 'metadata', () => g.pick<unknown>([{}, { user_id: 'u-😀' }, { user_id: null }]))
  opt(0.2, 'thinking', () => g.pick<unknown>([{ type: 'enabled', budget_tokens: 1024 }, { type: 'enabled', budget_tokens: 32000 }, { type: 'disabled' }, { type: 'adaptive' }]))
  const thinking = (b['thinking'] as { type?: string } | undefined)?.type
  if (thinking === 'enabled' && (b['max_tokens'] as number) <= 1024) b['max_tokens'] = 2048
  // With thinking on, Anthropic wants an assistant tool_use turn to open with its thinking block: a client's history has them.
  // Anthropic merges consecutive assistant turns, so an earlier one would open the merged turn: such a history is the
  // client's mistake (Anthropic refuses it as it is), not the gateway's; it goes without thinking.
  const ms = b['messages'] as { role: string; content: unknown }[]
  if (ms.some((m, i) => i > 0 && m.role === 'assistant' && ms[i - 1]!.role === 'assistant')) delete b['thinking']
  else if (thinking === 'enabled' || thinking === 'adaptive') {
    for (const m of ms) {
      const c = m.content
      if (m.role === 'assistant' && Array.isArray(c) && c.some((x) => x.type === 'tool_use') && c[0]?.type !== 'thinking' && c[0]?.type !== 'redacted_thinking') {
        c.unshift({ type: 'thinking', thinking: 'hmm', signature: thinkingSignature('hmm') })
      }
    }
  }
  opt(0.1, 'output_config', () => g.pick<unknown>([{ effort: 'low' }, { effort: 'max' }, { effort: 'xhigh' }, { format: null, effort: null }, { format: { type: 'json_schema', schema: { type: 'object', properties: { a: { type: 'string' } } } } }]))
  return b
}

// ---------- embeddings ----------

function embeddingRequest(g: Gen, model: string): Record<string, unknown> {
  const b: Record<string, unknown> = {
    model,
    input: g.pick<() => unknown>([
      () => text(g), () => '', () => g.many(1, 5, () => text(g)), () => [''], () => [1, 2, 3], () => [[1, 2], [3]], () => ['😀', 'مرحبا', '𠜎'],
    ])(),
  }
  if (g.chance(0.3)) b['dimensions'] = g.pick([1, 8, 256, 3072])
  if (g.chance(0.3)) b['encoding_format'] = g.pick(['float', 'base64'])
  if (g.chance(0.2)) b['user'] = g.pick(['', 'u1'])
  return b
}

// ---------- the run ----------

let gw: TestGateway
interface Mock { fault: unknown; close(): Promise<void> }
const mocks: Mock[] = []

beforeAll(async () => {
  const [openai, compat, azure, anthropic, gemini, ollama] = await Promise.all([
    startOpenAIMock({ record: false }), startOpenAIMock({ record: false, limits: false }), startAzureMock(), startAnthropicMock({ record: false }), startGeminiMock({ record: false }), startOllamaMock({ record: false }),
  ])
  mocks.push(openai, compat, azure, anthropic, gemini, ollama)
  gw = await startGateway({
    log: { level: 'warn' },
    providers: {
      openai: { type: 'openai', baseUrl: openai.url, apiKey: 'sk-fuzz-openai-0001' },
      compat: { type: 'openai-compatible', baseUrl: compat.url, apiKey: 'vllm-fuzz-key-0001' },
      azure: { type: 'azure-openai', baseUrl: azure.url, apiKey: 'azure-fuzz-key-0001' },
      // The translation is fuzzed: /v1/messages translated to Anthropic too, not sent as it came (nativeMessages).
      anthropic: { type: 'anthropic', baseUrl: anthropic.url, apiKey: 'sk-ant-fuzz-0001', nativeMessages: false },
      google: { type: 'google', baseUrl: gemini.url, apiKey: 'AIzaFuzzKey00000000000000000001' },
      ollama: { type: 'ollama', baseUrl: ollama.url },
    },
  })
})

afterAll(async () => {
  await gw?.close()
  await Promise.all(mocks.map((m) => m.close()))
})

interface Outcome { status: number; code: string | null; body: unknown; raw: string; streamed: boolean }

async function send(path: string, body: Record<string, unknown>): Promise<Outcome> {
  const res = await fetch(gw.url + path, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const raw = await res.text()
  let parsed: unknown
  try { parsed = JSON.parse(raw) } catch { parsed = undefined }
  return { status: res.status, code: res.headers.get('x-mcp-error-code'), body: parsed, raw, streamed: (res.headers.get('content-type') ?? '').startsWith('text/event-stream') }
}

/** What is wrong with one answer, or undefined. `api` is the inbound API. */
function problemOf(api: 'openai' | 'anthropic', o: Outcome, stream: boolean): string | undefined {
  if (o.status === 200) {
    if (!stream) return o.body === undefined ? 'a 200 whose body is not JSON' : undefined
    if (!o.streamed) return 'a streamed request answered without an event stream'
    if (api === 'openai') {
      if (/^data: \{"error"/m.test(o.raw)) return 'an error event inside a 200 stream'
      return o.raw.trimEnd().endsWith('data: [DONE]') ? undefined : 'a 200 stream that does not end with [DONE]'
    }
    if (/^event: error/m.test(o.raw)) return 'an error event inside a 200 stream'
    return /event: message_stop\ndata: [^\n]*\n*$/.test(o.raw) ? undefined : 'a 200 stream that does not end with message_stop'
  }
  if (o.status >= 500) return `a ${o.status} (${o.code ?? 'no code'})`
  if (o.code === 'MCP_ERR_INTERNAL') return 'MCP_ERR_INTERNAL'
  if (o.status < 400) return `status ${o.status}`
  const b = o.body as { error?: { message?: unknown; type?: unknown; param?: unknown }; type?: unknown } | undefined
  const e = b?.error
  if (typeof e?.message !== 'string' || e.message === '') return `a ${o.status} without an error message`
  if (api === 'anthropic' && b?.type !== 'error') return `a ${o.status} not in Anthropic's error shape`
  if (typeof e.type !== 'string') return `a ${o.status} without an error type`
  // An upstream 4xx passed on: the gateway translated into something the provider refuses.
  if (o.code === null || o.code.startsWith('MCP_ERR_UPSTREAM')) return `the provider refused the translated request (${o.status}): ${e.message}`
  if (o.status === 400 && api === 'openai' && (typeof e.param !== 'string' || e.param === '')) return `a gateway 400 without a param: ${e.message}`
  // A Messages client is told about the fields it sent, not the canonical ones they became.
  if (api === 'anthropic' && /'(?:parallel_tool_calls|reasoning_effort|response_format|stop|user)'|body: stop:/.test(e.message)) return `a 400 naming a field the client did not send: ${e.message}`
  return undefined
}

/** What every mock answers a last user message "echo <rest>" with, or undefined when the request asks nothing so plain. */
function expectedEcho(body: Record<string, unknown>): string | undefined {
  const ms = body['messages'] as { role: string; content: unknown }[]
  const last = ms[ms.length - 1]!
  if (last.role !== 'user' || typeof last.content !== 'string' || !last.content.startsWith('echo ')) return undefined
  // A user turn before it is merged with it (Anthropic, Gemini), once system prompts and empty assistant turns between
  // them are taken out: the mocks then read both.
  for (let i = ms.length - 2; i >= 0; i--) {
    const m = ms[i] as { role: string; content: unknown; tool_calls?: unknown }
    if (m.role === 'system' || m.role === 'developer') continue
    const blank = m.content == null || (typeof m.content === 'string' && m.content.trim() === '') || (Array.isArray(m.content) && m.content.length === 0)
    if (m.role === 'assistant' && blank && m.tool_calls === undefined) continue
    if (m.role !== 'assistant') return undefined
    break
  }
  return 'echo: ' + last.content.slice(5)
}

/** The answer's text (choice 0; text blocks), streamed or not. */
function answerText(api: 'openai' | 'anthropic', o: Outcome): string {
  if (!o.streamed) {
    if (api === 'openai') return String((o.body as { choices: { message: { content: unknown } }[] }).choices[0]?.message.content ?? '')
    return (o.body as { content: { type: string; text?: string }[] }).content.filter((b) => b.type === 'text').map((b) => b.text).join('')
  }
  let text = ''
  for (const line of o.raw.split('\n')) {
    if (!line.startsWith('data: {')) continue
    const ev = JSON.parse(line.slice(6)) as { choices?: { index: number; delta?: { content?: string } }[]; type?: string; delta?: { type?: string; text?: string } }
    if (api === 'openai') for (const c of ev.choices ?? []) { if (c.index === 0) text += c.delta?.content ?? '' }
    else if (ev.type === 'content_block_delta' && ev.delta?.type === 'text_delta') text += ev.delta.text ?? ''
  }
  return text
}

const OPENAI_FAMILY = /^(?:openai|azure|compat)\//

/**
 * An OpenAI client's request that OpenAI itself refuses (an empty parts array, an assistant message with neither content
 * nor tool calls, more than 4 stop sequences, a tool name outside ^[a-zA-Z0-9_-]{1,64}$): sent to an OpenAI-style
 * provider (byte for byte), the provider's 400 naming the client's field is the right answer.
 */
function openaiRefuses(body: Record<string, unknown>): boolean {
  if (Array.isArray(body['stop']) && body['stop'].length > 4) return true
  if (Array.isArray(body['tools']) && (body['tools'] as { function?: { name?: unknown } }[]).some((t) => typeof t?.function?.name === 'string' && !/^[a-zA-Z0-9_-]{1,64}$/.test(t.function.name))) return true
  return (body['messages'] as { role: string; content?: unknown; tool_calls?: unknown }[]).some((m) =>
    (Array.isArray(m.content) && m.content.length === 0) || (m.role === 'assistant' && m.content == null && m.tool_calls === undefined && !('function_call' in m)))
}

interface Finding { seed: number; path: string; model: string; stream: boolean; problem: string; request: string }

/** One line per distinct problem (its first request shown), so a failure reads as a list of findings. */
function report(findings: Finding[]): string {
  const groups = new Map<string, Finding[]>()
  for (const f of findings) {
    const key = `${f.model}: ${f.problem.replace(/\d+/g, '#').slice(0, 160)}`
    groups.set(key, [...(groups.get(key) ?? []), f])
  }
  if (process.env['FUZZ_DUMP']) writeFileSync(process.env['FUZZ_DUMP'], JSON.stringify(findings, null, 1))
  return [...groups.entries()].map(([k, fs]) => {
    const f = fs[0]!
    return `${fs.length}× ${k}\n    e.g. FUZZ_SEED=${f.seed} FUZZ_N=1 ${f.path} stream=${f.stream} ${f.request.slice(0, 400)}`
  }).join('\n')
}

async function runAll(path: string, api: 'openai' | 'anthropic' | 'embeddings', make: (g: Gen, model: string) => Record<string, unknown>, models: readonly string[]): Promise<{ findings: Finding[]; counts: Record<number, number> }> {
  const findings: Finding[] = []
  const counts: Record<number, number> = {}
  const jobs: (() => Promise<void>)[] = []
  for (let i = 0; i < N; i++) {
    const seed = SEED + i
    const g = new Gen(seed)
    const model = models[seed % models.length]!
    const body = make(g, model)
    const stream = api !== 'embeddings' && g.chance(0.5)
    if (stream) {
      body['stream'] = true
      if (api === 'openai' && g.chance(0.6)) body['stream_options'] = g.pick<unknown>([{ include_usage: true }, { include_usage: false }, {}, null])
    } else if (api !== 'embeddings' && g.chance(0.2)) body['stream'] = api === 'openai' ? g.pick([false, null]) : false
    jobs.push(async () => {
      const o = await send(path, body)
      counts[o.status] = (counts[o.status] ?? 0) + 1
      if (process.env['FUZZ_SHOW_4XX'] && o.status >= 400) console.log(o.status, model, o.code, JSON.stringify((o.body as { error?: { message?: string } })?.error?.message).slice(0, 200))
      let p = problemOf(api === 'embeddings' ? 'openai' : api, o, stream)
      if (p?.startsWith('the provider refused') && api === 'openai' && o.status === 400 && OPENAI_FAMILY.test(model) && openaiRefuses(body)) p = undefined
      const echo = api === 'embeddings' ? undefined : expectedEcho(body)
      if (p === undefined && o.status === 200 && echo !== undefined && api !== 'embeddings') {
        const got = answerText(api, o)
        if (got !== echo) p = `the answer's text is ${JSON.stringify(got.slice(0, 80))}, not ${JSON.stringify(echo.slice(0, 80))}`
      }
      if (p !== undefined) findings.push({ seed, path, model, stream, problem: p, request: JSON.stringify(body) })
    })
  }
  // A few at a time: the machine has two cores.
  let next = 0
  await Promise.all(Array.from({ length: 4 }, async () => { while (next < jobs.length) await jobs[next++]!() }))
  return { findings, counts }
}

/**
 * With a fault in every mock, an answer may be any status, but in the inbound API's error shape with a message and
 * never MCP_ERR_INTERNAL; a 200 stream ends properly or with an error event in the inbound API's shape.
 */
function faultProblemOf(api: 'openai' | 'anthropic', o: Outcome, stream: boolean): string | undefined {
  if (o.code === 'MCP_ERR_INTERNAL') return 'MCP_ERR_INTERNAL'
  if (o.status === 200 && stream && o.streamed) {
    const tail = o.raw.trimEnd().split('\n\n').pop() ?? ''
    if (api === 'openai') {
      if (tail === 'data: [DONE]') return undefined
      const m = /^data: (\{"error".*)$/.exec(tail)
      if (!m) return `a 200 stream that ends with neither [DONE] nor an error event: ${tail.slice(0, 200)}`
      const ev = JSON.parse(m[1]!) as { error?: { message?: unknown } }
      return typeof ev.error?.message === 'string' && ev.error.message !== '' ? undefined : 'an error event without a message'
    }
    if (/^event: message_stop\ndata: /.test(tail)) return undefined
    const m = /^event: error\ndata: (.*)$/.exec(tail)
    if (!m) return `a 200 stream that ends with neither message_stop nor an error event: ${tail.slice(0, 200)}`
    const ev = JSON.parse(m[1]!) as { type?: unknown; error?: { type?: unknown; message?: unknown } }
    return ev.type === 'error' && typeof ev.error?.type === 'string' && typeof ev.error.message === 'string' && ev.error.message !== '' ? undefined : `an error event not in Anthropic's shape: ${m[1]!.slice(0, 200)}`
  }
  if (o.status === 200) return o.body === undefined ? 'a 200 whose body is not JSON' : undefined
  const b = o.body as { error?: { message?: unknown; type?: unknown }; type?: unknown } | undefined
  if (typeof b?.error?.message !== 'string' || b.error.message === '') return `a ${o.status} without an error message: ${o.raw.slice(0, 200)}`
  if (api === 'anthropic' && b.type !== 'error') return `a ${o.status} not in Anthropic's error shape`
  return undefined
}

const FAULTS = ['status:400', 'status:429', 'status:500', 'status:503', 'errorAfter:1', 'cutAfter:2', 'malformedAfter:1', 'cutAfter:0', 'reset']

describe(`translation fuzz (seed ${SEED}, ${N} requests per API)`, () => {
  it('/v1/chat/completions: every answer is a 200 or the gateway\'s own 4xx', async () => {
    const { findings, counts } = await runAll('/v1/chat/completions', 'openai', openaiRequest, PROVIDERS.map((p) => p.prefix))
    console.log('chat/completions statuses', counts)
    expect(findings.length, report(findings)).toBe(0)
  }, 60_000)

  it('/v1/messages: every answer is a 200 or the gateway\'s own 4xx', async () => {
    const { findings, counts } = await runAll('/v1/messages', 'anthropic', anthropicRequest, PROVIDERS.map((p) => p.prefix))
    console.log('messages statuses', counts)
    expect(findings.length, report(findings)).toBe(0)
  }, 60_000)

  it('/v1/embeddings: every answer is a 200 or the gateway\'s own 4xx', async () => {
    const { findings, counts } = await runAll('/v1/embeddings', 'embeddings', embeddingRequest, PROVIDERS.map((p) => p.prefix))
    console.log('embeddings statuses', counts)
    expect(findings.length, report(findings)).toBe(0)
  }, 60_000)

  it('with upstream faults: errors in the inbound API\'s shape, streams end with an error event', async () => {
    const findings: Finding[] = []
    const counts: Record<string, number> = {}
    const models = PROVIDERS.map((p) => p.prefix)
    for (const [k, fault] of FAULTS.entries()) {
      for (const m of mocks) m.fault = fault
      try {
        await Promise.all(Array.from({ length: 24 }, async (_, i) => {
          const seed = SEED + 1_000_000 + k * 100 + i
          const g = new Gen(seed)
          const api = g.chance(0.5) ? 'openai' : 'anthropic'
          const model = models[seed % models.length]!
          const body = api === 'openai' ? openaiRequest(g, model) : anthropicRequest(g, model)
          const stream = g.chance(0.6)
          if (stream) body['stream'] = true
          const path = api === 'openai' ? '/v1/chat/completions' : '/v1/messages'
          const o = await send(path, body)
          const key = `${fault} ${o.status}${o.status === 200 && stream ? (/"error"|event: error/.test(o.raw) ? ' stream+error' : ' stream') : ''}`
          counts[key] = (counts[key] ?? 0) + 1
          const p = faultProblemOf(api, o, stream)
          if (p !== undefined) findings.push({ seed, path, model, stream, problem: `[fault ${fault}] ${p}`, request: JSON.stringify(body) })
        }))
      } finally {
        for (const m of mocks) m.fault = null
      }
    }
    console.log('fault outcomes', counts)
    expect(findings.length, report(findings)).toBe(0)
  }, 60_000)

  it('the gateway still serves', async () => {
    const o = await send('/v1/chat/completions', { model: 'openai/gpt-4o', messages: [{ role: 'user', content: 'echo alive' }] })
    expect(o.status).toBe(200)
  })
})
