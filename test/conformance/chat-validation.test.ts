/**
 * /v1/chat/completions bodies that OpenAI's API refuses for a field's type or shape are a 400 naming the field, before
 * any provider is called: on the three translated providers (google, ollama, anthropic), which had each made something
 * of them, and on the OpenAI pass-through, the same schema applying to every route. What the mocks received is checked.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { authHeaders, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { TRANSLATED_PROVIDERS, translatedProvidersForFile } from '../helpers/translated-providers.ts'

const t = translatedProvidersForFile()
let openai: OpenAIMock
let passThrough: TestGateway
beforeAll(async () => {
  openai = await startOpenAIMock()
  passThrough = await startGateway({ providers: { openai: { type: 'openai', baseUrl: openai.url, apiKey: 'sk-test-0000000000000001' } } })
}, 30_000)
afterAll(async () => {
  await passThrough?.close()
  await openai?.close()
})
beforeEach(() => openai.reset())

const PROVIDERS = [...TRANSLATED_PROVIDERS, 'openai'] as const
type Provider = (typeof PROVIDERS)[number]

async function chat(p: Provider, body: object): Promise<{ status: number; json: any }> {
  if (p !== 'openai') return t().chat(p, body)
  const r = await fetch(`${passThrough.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model: 'openai/gpt-4o', max_tokens: 32, ...body }) })
  return { status: r.status, json: await r.json() }
}
const requests = (p: Provider): unknown[] => (p === 'openai' ? openai.requests : t().requests(p))

/** A 400 naming `param` (and, when given, saying `reason` of it), and nothing sent upstream. */
async function refused(p: Provider, body: object, param: string, reason?: string): Promise<void> {
  const { status, json } = await chat(p, body)
  expect(status, JSON.stringify(json)).toBe(400)
  expect(json.error.code).toBe('MCP_ERR_REQ_BODY_INVALID')
  expect(json.error.param).toBe(param)
  if (reason !== undefined) expect(json.error.message).toContain(`${param}: ${reason}`)
  expect(requests(p)).toHaveLength(0)
}

const user = (content: unknown): object => ({ messages: [{ role: 'user', content }] })

describe.each(PROVIDERS)('%s: content parts', (p) => {
  it('a text part\'s text that is not a string, or missing, is a 400 naming it (Anthropic got "5", Ollama an empty prompt)', async () => {
    await refused(p, user([{ type: 'text', text: 5 }]), 'messages[0].content[0].text', 'must be string')
    await refused(p, user([{ type: 'text', text: 'look' }, { type: 'text' }]), 'messages[0].content[1].text', 'is required')
  })

  it('the same in a system, developer, assistant or tool message', async () => {
    await refused(p, { messages: [{ role: 'system', content: [{ type: 'text', text: null }] }, { role: 'user', content: 'hi' }] }, 'messages[0].content[0].text')
    await refused(p, { messages: [{ role: 'developer', content: [{ type: 'text', text: ['x'] }] }, { role: 'user', content: 'hi' }] }, 'messages[0].content[0].text')
    await refused(p, { messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: [{ type: 'text', text: 1 }] }, { role: 'user', content: 'and?' }] }, 'messages[1].content[0].text')
    await refused(p, {
      messages: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'c1', content: [{ type: 'text', text: {} }] },
      ],
    }, 'messages[2].content[0].text')
  })

  it('the required fields of the other part types OpenAI has', async () => {
    await refused(p, user([{ type: 'image_url', image_url: 'https://example.com/cat.png' }]), 'messages[0].content[0].image_url', 'must be object')
    await refused(p, user([{ type: 'image_url', image_url: { url: 5 } }]), 'messages[0].content[0].image_url.url', 'must be string')
    await refused(p, user([{ type: 'image_url', image_url: {} }]), 'messages[0].content[0].image_url.url', 'is required')
    await refused(p, user([{ type: 'input_audio', input_audio: { data: 'UklGRg==' } }]), 'messages[0].content[0].input_audio.format', 'is required')
    await refused(p, user([{ type: 'input_audio', input_audio: { data: 7, format: 'wav' } }]), 'messages[0].content[0].input_audio.data', 'must be string')
    await refused(p, user([{ type: 'file', file: { file_data: 5, filename: 'a.pdf' } }]), 'messages[0].content[0].file.file_data', 'must be string')
    await refused(p, { messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: [{ type: 'refusal' }] }, { role: 'user', content: 'and?' }] }, 'messages[1].content[0].refusal', 'is required')
    await refused(p, user([null]), 'messages[0].content[0]', 'must be object')
  })

  it('well-formed parts still pass', async () => {
    const { status, json } = await chat(p, user([{ type: 'text', text: 'echo hi' }, { type: 'text', text: '' }]))
    expect(status, JSON.stringify(json)).toBe(200)
    expect(requests(p)).toHaveLength(1)
  })
})

describe.each(PROVIDERS)('%s: response_format.json_schema', (p) => {
  const rf = (jsonSchema: unknown): object => ({ messages: [{ role: 'user', content: 'hi' }], response_format: { type: 'json_schema', json_schema: jsonSchema } })

  it('a schema that is not an object is a 400 naming it (Anthropic got it as the schema, Gemini plain JSON mode, Ollama format "abc")', async () => {
    await refused(p, rf({ name: 'x', schema: 'abc' }), 'response_format.json_schema.schema', 'must be object')
    await refused(p, rf({ name: 'x', schema: [1] }), 'response_format.json_schema.schema', 'must be object')
  })

  it('json_schema itself, its name, strict and description are checked as OpenAI does', async () => {
    await refused(p, rf('x'), 'response_format.json_schema', 'must be object')
    await refused(p, { messages: [{ role: 'user', content: 'hi' }], response_format: { type: 'json_schema' } }, 'response_format.json_schema', 'is required')
    await refused(p, rf({ schema: { type: 'object' } }), 'response_format.json_schema.name', 'is required')
    await refused(p, rf({ name: 5, schema: { type: 'object' } }), 'response_format.json_schema.name', 'must be string')
    await refused(p, rf({ name: 'my schema', schema: { type: 'object' } }), 'response_format.json_schema.name', 'must match pattern')
    await refused(p, rf({ name: 'a'.repeat(65), schema: { type: 'object' } }), 'response_format.json_schema.name', 'must match pattern')
    await refused(p, rf({ name: 'x', strict: 'yes', schema: { type: 'object' } }), 'response_format.json_schema.strict', 'must be boolean,null')
    await refused(p, rf({ name: 'x', description: 7, schema: { type: 'object' } }), 'response_format.json_schema.description', 'must be string')
  })

  it('a well-formed one still passes (strict null as the OpenAI SDK types allow)', async () => {
    for (const jsonSchema of [{ name: 'Answer_v-2', description: 'the answer', strict: true, schema: { type: 'object', properties: { a: { type: 'string' } }, required: ['a'], additionalProperties: false } }, { name: 'x', strict: null, schema: { type: 'object', properties: { a: { type: 'string' } } } }]) {
      openai.reset(); t().reset()
      const { status, json } = await chat(p, rf(jsonSchema))
      expect(status, JSON.stringify(json)).toBe(200)
      expect(requests(p)).toHaveLength(1)
    }
  })
})

it('openai pass-through: malformed legacy `functions` and `function_call` are refused as on the translated providers (test/conformance/legacy-functions.test.ts)', async () => {
  const ask = (extra: object): object => ({ messages: [{ role: 'user', content: 'weather?' }], ...extra })
  await refused('openai', ask({ functions: [{ name: 'a', parameters: 'x' }] }), 'functions[0].parameters', 'must be object')
  await refused('openai', ask({ functions: [{}] }), 'functions[0].name', 'is required')
  await refused('openai', ask({ functions: [{ name: 'a' }], function_call: 'required' }), 'function_call', 'must be one of "none", "auto"')
  const { status, json } = await chat('openai', ask({ functions: [{ name: 'get_weather', description: 'weather', parameters: { type: 'object' } }], function_call: { name: 'get_weather' } }))
  expect(status, JSON.stringify(json)).toBe(200)
})

describe.each(PROVIDERS)('%s: max_tokens beside max_completion_tokens', (p) => {
  const hi = { messages: [{ role: 'user', content: 'hi' }] }

  it('different values are a 400 naming max_tokens, as OpenAI refuses the two at once (the providers used one silently)', async () => {
    await refused(p, { ...hi, max_tokens: 10, max_completion_tokens: 20 }, 'max_tokens', 'differs from max_completion_tokens (10 and 20)')
  })

  it('the same value twice is accepted (some clients send both), as is either alone or one null', async () => {
    for (const ceilings of [{ max_tokens: 20, max_completion_tokens: 20 }, { max_tokens: null, max_completion_tokens: 20 }, { max_tokens: 20, max_completion_tokens: null }]) {
      openai.reset(); t().reset()
      const { status, json } = await chat(p, { ...hi, ...ceilings })
      expect(status, JSON.stringify(json)).toBe(200)
      const sent = (requests(p)[0] as { body: any }).body
      const ceiling = p === 'google' ? sent.generationConfig.maxOutputTokens : p === 'ollama' ? sent.options.num_predict : p === 'anthropic' ? sent.max_tokens : sent.max_completion_tokens ?? sent.max_tokens
      expect(ceiling).toBe(20)
    }
  })
})
