/**
 * End-to-end conformance: the official `openai` and `@anthropic-ai/sdk` clients against the running
 * gateway, for every provider × {text, stream with usage, tool call, streamed tool call, tool-result
 * round trip, upstream 429, upstream 400}. Each provider sits behind a mock speaking its own
 * documented wire format; the SDKs' own stream helpers must reassemble text and tool calls exactly.
 */
import { fileURLToPath } from 'node:url'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startAnthropicMock, thinkingSignature } from '../helpers/anthropic-mock.ts'
import { startAzureMock } from '../helpers/azure-mock.ts'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startGeminiMock } from '../helpers/gemini-mock.ts'
import { startOllamaMock } from '../helpers/ollama-mock.ts'
import { startOpenAIMock } from '../helpers/openai-mock.ts'

interface FaultableMock { url: string; fault: unknown; close(): Promise<void> }

interface ProviderCase {
  /** Provider name in the gateway config. */
  name: string
  model: string
  mock: FaultableMock
  /** Rate-limit fault in the mock's DSL; some mocks express Retry-After differently. */
  rateLimit: string
  badRequest: string
}

const TOOLS_OPENAI: OpenAI.Chat.Completions.ChatCompletionTool[] = [{
  type: 'function',
  function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
}]
const TOOLS_ANTHROPIC: Anthropic.Tool[] = [{
  name: 'get_weather', description: 'Weather for a city', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
}]

let gw: TestGateway
const cases: ProviderCase[] = []
const mocks: FaultableMock[] = []

beforeAll(async () => {
  const [openai, compat, azure, anthropic, gemini, ollama, inhouse] = await Promise.all([
    startOpenAIMock(), startOpenAIMock(), startAzureMock(), startAnthropicMock(), startGeminiMock(), startOllamaMock(), startOpenAIMock(),
  ])
  mocks.push(openai, compat, azure, anthropic, gemini, ollama, inhouse)
  cases.push(
    { name: 'openai', model: 'gpt-4o', mock: openai, rateLimit: 'status:429,retryAfter:1', badRequest: 'status:400' },
    { name: 'compat', model: 'meta-llama/Llama-3.1-8B', mock: compat, rateLimit: 'status:429,retryAfter:1', badRequest: 'status:400' },
    { name: 'azure', model: 'gpt-4o', mock: azure, rateLimit: 'status:429,retryAfter:1', badRequest: 'status:400' },
    { name: 'anthropic', model: 'claude-sonnet-4-5', mock: anthropic, rateLimit: 'status:429,retryAfter:1', badRequest: 'status:400' },
    { name: 'google', model: 'gemini-2.5-flash', mock: gemini, rateLimit: 'status:429,retryAfter:1', badRequest: 'status:400' },
    { name: 'ollama', model: 'llama3.2', mock: ollama, rateLimit: 'status:429,retryAfter:1', badRequest: 'status:400' },
    // A custom adapter module (examples/custom-provider/openai-sdk-adapter.ts) in front of an in-house OpenAI-style service.
    { name: 'custom', model: 'house-large', mock: inhouse, rateLimit: 'status:429,retryAfter:1', badRequest: 'status:400' },
  )
  process.env['MCP_CONFORMANCE_INHOUSE_KEY'] = 'inhouse-conformance-key-0001'
  gw = await startGateway({
    providers: {
      openai: { type: 'openai', baseUrl: openai.url, apiKey: 'sk-conformance-openai-0001' },
      compat: { type: 'openai-compatible', baseUrl: compat.url, apiKey: 'vllm-conformance-key-0001' },
      azure: { type: 'azure-openai', baseUrl: azure.url, apiKey: 'azure-conformance-key-0001' },
      anthropic: { type: 'anthropic', baseUrl: anthropic.url, apiKey: 'sk-ant-conformance-0001' },
      google: { type: 'google', baseUrl: gemini.url, apiKey: 'AIzaConformanceKey000000000001' },
      ollama: { type: 'ollama', baseUrl: ollama.url },
      custom: {
        type: 'custom',
        module: fileURLToPath(new URL('../../examples/custom-provider/openai-sdk-adapter.ts', import.meta.url)),
        options: { baseUrl: inhouse.url, apiKeyEnv: 'MCP_CONFORMANCE_INHOUSE_KEY', models: ['house-large'] },
      },
    },
  })
})

afterAll(async () => {
  await gw?.close()
  await Promise.all(mocks.map((m) => m.close()))
})

function openaiClient(): OpenAI {
  return new OpenAI({ apiKey: ADMIN_KEY, baseURL: `${gw.url}/v1`, maxRetries: 0 })
}

function anthropicClient(): Anthropic {
  return new Anthropic({ apiKey: ADMIN_KEY, baseURL: gw.url, maxRetries: 0 })
}

const PROVIDERS = ['openai', 'compat', 'azure', 'anthropic', 'google', 'ollama', 'custom']

function caseOf(name: string): ProviderCase {
  const c = cases.find((x) => x.name === name)
  if (!c) throw new Error(`no case ${name}`)
  return c
}

describe.each(PROVIDERS)('openai SDK → gateway → %s', (name) => {
  it('text', async () => {
    const c = caseOf(name)
    const r = await openaiClient().chat.completions.create({ model: `${name}/${c.model}`, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'echo hello world' }] })
    expect(r.choices[0]!.message.content).toBe('echo: hello world')
    expect(r.choices[0]!.finish_reason).toBe('stop')
    expect(r.usage!.prompt_tokens).toBeGreaterThan(0)
    expect(r.usage!.completion_tokens).toBeGreaterThan(0)
  })

  it('stream with usage', async () => {
    const c = caseOf(name)
    const stream = await openaiClient().chat.completions.create({
      model: `${name}/${c.model}`, stream: true, stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'echo streamed words arrive in order' }],
    })
    let text = ''
    let usage: OpenAI.CompletionUsage | null | undefined
    let finish: string | null = null
    for await (const chunk of stream) {
      for (const ch of chunk.choices) { text += ch.delta.content ?? ''; if (ch.finish_reason) finish = ch.finish_reason }
      if (chunk.usage) usage = chunk.usage
    }
    expect(text).toBe('echo: streamed words arrive in order')
    expect(finish).toBe('stop')
    expect(usage?.prompt_tokens).toBeGreaterThan(0)
    expect(usage?.completion_tokens).toBeGreaterThan(0)
  })

  it('tool call', async () => {
    const c = caseOf(name)
    const r = await openaiClient().chat.completions.create({ model: `${name}/${c.model}`, tools: TOOLS_OPENAI, messages: [{ role: 'user', content: 'please call tool for Paris' }] })
    const call = r.choices[0]!.message.tool_calls![0]!
    expect(r.choices[0]!.finish_reason).toBe('tool_calls')
    expect(call.type).toBe('function')
    if (call.type !== 'function') return
    expect(call.function.name).toBe('get_weather')
    expect(JSON.parse(call.function.arguments)).toEqual({ city: 'Paris' })
    expect(call.id).toMatch(/\S/)
  })

  it('streamed tool call (SDK stream helper)', async () => {
    const c = caseOf(name)
    const runner = openaiClient().chat.completions.stream({ model: `${name}/${c.model}`, tools: TOOLS_OPENAI, messages: [{ role: 'user', content: 'please call tool for Paris' }] })
    const final = await runner.finalChatCompletion()
    const call = final.choices[0]!.message.tool_calls![0]!
    expect(final.choices[0]!.finish_reason).toBe('tool_calls')
    if (call.type !== 'function') throw new Error('not a function call')
    expect(call.function.name).toBe('get_weather')
    expect(JSON.parse(call.function.arguments)).toEqual({ city: 'Paris' })
  })

  it('tool-result round trip', async () => {
    const c = caseOf(name)
    const client = openaiClient()
    const first = await client.chat.completions.create({ model: `${name}/${c.model}`, tools: TOOLS_OPENAI, messages: [{ role: 'user', content: 'please call tool for Paris' }] })
    const msg = first.choices[0]!.message
    const call = msg.tool_calls![0]!
    const second = await client.chat.completions.create({
      model: `${name}/${c.model}`, tools: TOOLS_OPENAI,
      messages: [
        { role: 'user', content: 'please call tool for Paris' },
        { role: 'assistant', content: null, tool_calls: msg.tool_calls! },
        { role: 'tool', tool_call_id: call.id, content: 'sunny' },
      ],
    })
    expect(second.choices[0]!.message.content).toContain('tool result:')
    expect(second.choices[0]!.message.content).toContain('sunny')
  })

  it('upstream 429 keeps status and Retry-After', async () => {
    const c = caseOf(name)
    c.mock.fault = `${c.rateLimit},times:1`
    const err = await openaiClient().chat.completions.create({ model: `${name}/${c.model}`, messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e)
    c.mock.fault = null
    expect(err).toBeInstanceOf(OpenAI.RateLimitError)
    const e = err as InstanceType<typeof OpenAI.RateLimitError>
    expect(e.status).toBe(429)
    expect(e.headers?.get('retry-after')).toBe('1')
    expect(e.headers?.get('x-request-id')).toMatch(/\S/)
  })

  it('upstream 400 keeps status and message', async () => {
    const c = caseOf(name)
    c.mock.fault = `${c.badRequest},times:1`
    const err = await openaiClient().chat.completions.create({ model: `${name}/${c.model}`, messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e)
    c.mock.fault = null
    expect(err).toBeInstanceOf(OpenAI.BadRequestError)
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).status).toBe(400)
  })
})

/** Providers with embeddings and a model each serves; the SDK sends encoding_format base64 unless told otherwise. */
const EMBEDDERS: readonly (readonly [string, string])[] = [
  ['openai', 'text-embedding-3-small'], ['azure', 'text-embedding-3-small'], ['google', 'gemini-embedding-001'], ['ollama', 'nomic-embed-text'],
]

describe.each(EMBEDDERS)('openai SDK embeddings → gateway → %s', (name, model) => {
  it('the SDK default (base64 on the wire) and float give the same vectors', async () => {
    const client = openaiClient()
    const dflt = await client.embeddings.create({ model: `${name}/${model}`, input: ['alpha', 'beta'] })
    const float = await client.embeddings.create({ model: `${name}/${model}`, input: ['alpha', 'beta'], encoding_format: 'float' })
    expect(dflt.data.map((d) => d.index)).toEqual([0, 1])
    expect(dflt.data.map((d) => d.embedding)).toEqual(float.data.map((d) => Array.from(Float32Array.from(d.embedding))))
    expect(dflt.usage.prompt_tokens).toBeGreaterThan(0)
  })
})

it('embeddings on a chat-only provider: a 400 whose param is model (it had no param)', async () => {
  const e = await openaiClient().embeddings.create({ model: 'anthropic/claude-sonnet-4-5', input: 'hello' }).then(() => undefined, (x: unknown) => x)
  expect(e).toBeInstanceOf(OpenAI.BadRequestError)
  const err = e as InstanceType<typeof OpenAI.BadRequestError>
  expect(err.param).toBe('model')
  expect(err.message).toContain('Provider anthropic does not support embeddings')
})

describe.each(PROVIDERS)('anthropic SDK → gateway → %s', (name) => {
  it('text', async () => {
    const c = caseOf(name)
    const r = await anthropicClient().messages.create({ model: `${name}/${c.model}`, max_tokens: 256, system: 'Be brief.', messages: [{ role: 'user', content: 'echo hello world' }] })
    expect(r.type).toBe('message')
    expect(r.content[0]).toMatchObject({ type: 'text', text: 'echo: hello world' })
    expect(r.stop_reason).toBe('end_turn')
    expect(r.usage.input_tokens).toBeGreaterThan(0)
    expect(r.usage.output_tokens).toBeGreaterThan(0)
  })

  it('stream with usage (SDK stream helper)', async () => {
    const c = caseOf(name)
    const s = anthropicClient().messages.stream({ model: `${name}/${c.model}`, max_tokens: 256, messages: [{ role: 'user', content: 'echo streamed words arrive in order' }] })
    let deltas = ''
    s.on('text', (t) => { deltas += t })
    const final = await s.finalMessage()
    expect(deltas).toBe('echo: streamed words arrive in order')
    expect(final.content[0]).toMatchObject({ type: 'text', text: 'echo: streamed words arrive in order' })
    expect(final.stop_reason).toBe('end_turn')
    expect(final.usage.output_tokens).toBeGreaterThan(0)
    expect(final.usage.input_tokens).toBeGreaterThan(0)
  })

  it('tool call', async () => {
    const c = caseOf(name)
    const r = await anthropicClient().messages.create({ model: `${name}/${c.model}`, max_tokens: 256, tools: TOOLS_ANTHROPIC, messages: [{ role: 'user', content: 'please call tool for Paris' }] })
    expect(r.stop_reason).toBe('tool_use')
    const block = r.content.find((b) => b.type === 'tool_use')
    expect(block).toMatchObject({ type: 'tool_use', name: 'get_weather', input: { city: 'Paris' } })
  })

  it('streamed tool call (SDK stream helper)', async () => {
    const c = caseOf(name)
    const s = anthropicClient().messages.stream({ model: `${name}/${c.model}`, max_tokens: 256, tools: TOOLS_ANTHROPIC, messages: [{ role: 'user', content: 'please call tool for Paris' }] })
    const final = await s.finalMessage()
    expect(final.stop_reason).toBe('tool_use')
    const block = final.content.find((b) => b.type === 'tool_use')
    expect(block).toMatchObject({ type: 'tool_use', name: 'get_weather', input: { city: 'Paris' } })
  })

  it('tool-result round trip', async () => {
    const c = caseOf(name)
    const client = anthropicClient()
    const first = await client.messages.create({ model: `${name}/${c.model}`, max_tokens: 256, tools: TOOLS_ANTHROPIC, messages: [{ role: 'user', content: 'please call tool for Paris' }] })
    const use = first.content.find((b) => b.type === 'tool_use')
    if (!use || use.type !== 'tool_use') throw new Error('no tool_use block')
    const second = await client.messages.create({
      model: `${name}/${c.model}`, max_tokens: 256, tools: TOOLS_ANTHROPIC,
      messages: [
        { role: 'user', content: 'please call tool for Paris' },
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny' }] },
      ],
    })
    const text = second.content.filter((b) => b.type === 'text').map((b) => (b.type === 'text' ? b.text : '')).join('')
    expect(text).toContain('tool result:')
    expect(text).toContain('sunny')
  })

  it('upstream 429 keeps status and Retry-After', async () => {
    const c = caseOf(name)
    c.mock.fault = `${c.rateLimit},times:1`
    const err = await anthropicClient().messages.create({ model: `${name}/${c.model}`, max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e)
    c.mock.fault = null
    expect(err).toBeInstanceOf(Anthropic.RateLimitError)
    const e = err as InstanceType<typeof Anthropic.RateLimitError>
    expect(e.status).toBe(429)
    expect(e.headers?.get('retry-after')).toBe('1')
    expect((e.error as { type?: string }).type).toBe('error')
  })

  it('upstream 400 keeps status', async () => {
    const c = caseOf(name)
    c.mock.fault = `${c.badRequest},times:1`
    const err = await anthropicClient().messages.create({ model: `${name}/${c.model}`, max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e)
    c.mock.fault = null
    expect(err).toBeInstanceOf(Anthropic.BadRequestError)
    expect((err as InstanceType<typeof Anthropic.BadRequestError>).status).toBe(400)
  })
})

describe('anthropic SDK → gateway → anthropic with extended thinking (thinking blocks were dropped: turn 2 of every tool loop got a 400)', () => {
  const THINKING = { type: 'enabled', budget_tokens: 1024 } as const
  const USER = 'please call tool for Paris'

  /** Turn 1 (a tool call), then turn 2 sending back the SDK's own turn-1 content with the tool result. */
  async function loop(streamed: boolean): Promise<void> {
    const client = anthropicClient()
    const params = { model: 'anthropic/claude-sonnet-4-5', max_tokens: 2048, thinking: THINKING, tools: TOOLS_ANTHROPIC }
    const create = (messages: Anthropic.MessageParam[]): Promise<Anthropic.Message> =>
      streamed ? client.messages.stream({ ...params, messages }).finalMessage() : client.messages.create({ ...params, messages })
    const first = await create([{ role: 'user', content: USER }])
    expect(first.stop_reason).toBe('tool_use')
    expect(first.content.map((b) => b.type)).toEqual(['thinking', 'tool_use'])
    const thought = first.content[0]
    if (thought?.type !== 'thinking') throw new Error('no thinking block')
    // What the mock sent: its thinking text, signed with the HMAC of that text.
    expect(thought.thinking).toBe('Thinking about: calling get_weather')
    expect(thought.signature).toBe(thinkingSignature(thought.thinking))
    const use = first.content[1]
    if (use?.type !== 'tool_use') throw new Error('no tool_use block')

    const second = await create([
      { role: 'user', content: USER },
      { role: 'assistant', content: first.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny' }] },
    ])
    expect(second.content.map((b) => b.type)).toEqual(['thinking', 'text'])
    expect(second.content[1]).toMatchObject({ type: 'text', text: 'tool result: sunny' })
    const sent = caseOf('anthropic').mock as unknown as { requests: { body: { messages: { content: unknown }[] } }[] }
    expect(sent.requests.at(-1)!.body.messages[1]!.content).toEqual(JSON.parse(JSON.stringify(first.content)))
  }

  it('non-streamed: turn 2 with the SDK\'s turn-1 content (thinking + tool_use) gets 200', async () => { await loop(false) })
  it('streamed (finalMessage): turn 2 with the SDK\'s turn-1 content (thinking + tool_use) gets 200', async () => { await loop(true) })

  it('the mock refuses turn 2 without the thinking block, as Anthropic does', async () => {
    const err = await anthropicClient().messages.create({
      model: 'anthropic/claude-sonnet-4-5', max_tokens: 2048, thinking: THINKING, tools: TOOLS_ANTHROPIC,
      messages: [
        { role: 'user', content: USER },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'sunny' }] },
      ],
    }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(Anthropic.BadRequestError)
    expect((err as Error).message).toContain('Expected `thinking` or `redacted_thinking`, but found `tool_use`')
  })
})
