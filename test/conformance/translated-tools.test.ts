/**
 * Tool schemas, tool histories, tool sets and content that a provider would refuse as the client sent them, through the
 * running gateway to the provider mocks (each refuses what its provider refuses): translated where the gateway can say
 * the same thing in the provider's terms, else a 400 naming the client's field and the provider.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { authHeaders, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { translatedProvidersForFile } from '../helpers/translated-providers.ts'

const t = translatedProvidersForFile()

describe('google: tool parameters become a Schema Gemini takes', () => {
  it('an array without items, properties without a type, a type list with properties and unknown required names (each was Gemini\'s 400)', async () => {
    const parameters = {
      type: 'object',
      properties: {
        tags: { type: 'array', description: 'labels' },
        filter: { properties: { field: { type: 'string' } } },
        value: { type: ['object', 'string'], properties: { op: { type: 'string' } } },
      },
      required: ['tags', 'missing'],
    }
    const { status, json } = await t().chat('google', { tools: [{ type: 'function', function: { name: 'search', parameters } }], messages: [{ role: 'user', content: 'echo hi' }] })
    expect(status, JSON.stringify(json)).toBe(200)
    expect(t().requests('google')[0]!.body.tools[0].functionDeclarations[0].parameters).toEqual({
      type: 'object',
      properties: {
        tags: { type: 'array', description: 'labels', items: {} },
        filter: { type: 'object', properties: { field: { type: 'string' } } },
        value: { anyOf: [{ type: 'object', properties: { op: { type: 'string' } } }, { type: 'string' }] },
      },
      required: ['tags'],
    })
  })
})

describe('anthropic: tool call ids and tool results as Anthropic takes them', () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }]
  const call = (id: string) => ({ role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name: 'get_weather', arguments: '{}' } }] })

  it('a call id from another provider (functions.get_weather:0) reaches Anthropic rewritten, its result with it (was Anthropic\'s 400)', async () => {
    const { status, json } = await t().chat('anthropic', { tools, messages: [{ role: 'user', content: 'call tool' }, call('functions.get_weather:0'), { role: 'tool', tool_call_id: 'functions.get_weather:0', content: 'sunny' }] })
    expect(status, JSON.stringify(json)).toBe(200)
    const sent = t().requests('anthropic')[0]!.body.messages
    expect(sent[1].content[0].id).toBe('functions_get_weather_0')
    expect(sent[2].content[0].tool_use_id).toBe('functions_get_weather_0')
  })

  it('a tool result answering no call is a 400 naming messages[1].tool_call_id, nothing sent (was sent after the user\'s text)', async () => {
    const { status, json } = await t().chat('anthropic', { messages: [{ role: 'user', content: 'x' }, { role: 'tool', tool_call_id: 'zz', content: 'r' }] })
    expect(status).toBe(400)
    expect(json.error.param).toBe('messages[1].tool_call_id')
    expect(json.error.message).toContain('matches no earlier assistant tool call; provider anthropic')
    expect(t().requests('anthropic')).toHaveLength(0)
  })

  it('a user message between the calls and their results goes after the results (was Anthropic\'s 400)', async () => {
    const { status, json } = await t().chat('anthropic', { tools, messages: [{ role: 'user', content: 'call tool' }, call('c1'), { role: 'user', content: 'interject' }, { role: 'tool', tool_call_id: 'c1', content: 'sunny' }] })
    expect(status, JSON.stringify(json)).toBe(200)
    expect(t().requests('anthropic')[0]!.body.messages[2].content.map((b: { type: string }) => b.type)).toEqual(['tool_result', 'text'])
  })
})

describe('google: a tool result\'s text blocks', () => {
  it('reach Gemini one line break apart (were glued: "line oneline two")', async () => {
    const { status, json } = await t().chat('google', { messages: [
      { role: 'user', content: 'call tool' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'c1', content: [{ type: 'text', text: 'line one' }, { type: 'text', text: 'line two' }] },
    ] })
    expect(status, JSON.stringify(json)).toBe(200)
    expect(t().requests('google')[0]!.body.contents[2].parts[0].functionResponse.response).toEqual({ content: 'line one\nline two' })
  })
})

describe('the tool set: each name once, a named choice among the tools', () => {
  const fn = (name: string) => ({ type: 'function', function: { name, parameters: { type: 'object', properties: { city: { type: 'string' } } } } })

  it.each(['anthropic', 'google', 'ollama'] as const)('%s: duplicate tool names are a 400 naming tools[1].function.name, nothing sent', async (p) => {
    const { status, json } = await t().chat(p, { tools: [fn('get_weather'), fn('get_weather')], messages: [{ role: 'user', content: 'call tool' }] })
    expect(status).toBe(400)
    expect(json.error.param).toBe('tools[1].function.name')
    expect(t().requests(p)).toHaveLength(0)
  })

  it.each(['anthropic', 'google'] as const)('%s: a named tool_choice naming no tool is a 400 naming tool_choice.function.name, nothing sent', async (p) => {
    const { status, json } = await t().chat(p, { tools: [fn('get_weather')], tool_choice: { type: 'function', function: { name: 'nope' } }, messages: [{ role: 'user', content: 'call tool' }] })
    expect(status).toBe(400)
    expect(json.error.param).toBe('tool_choice.function.name')
    expect(t().requests(p)).toHaveLength(0)
  })
})

describe('google: an empty user turn', () => {
  it.each([[[]], ['']])('last (content %j) is a 400 naming messages[2].content, nothing sent (was dropped, the model\'s answer left last)', async (content) => {
    const { status, json } = await t().chat('google', { messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'answer' }, { role: 'user', content }] })
    expect(status).toBe(400)
    expect(json.error.param).toBe('messages[2].content')
    expect(t().requests('google')).toHaveLength(0)
  })
})

describe('openai: a /v1/messages plain-text document', () => {
  let oa: OpenAIMock
  let gw: TestGateway
  beforeAll(async () => {
    oa = await startOpenAIMock()
    gw = await startGateway({ providers: { oa: { type: 'openai', baseUrl: oa.url, apiKey: 'sk-test-0000000000000001' } } })
  }, 30_000)
  afterAll(async () => { await gw.close(); await oa.close() })

  it('reaches OpenAI as a text part with its title (a text/plain file part was OpenAI\'s 400: PDF files only)', async () => {
    const r = await fetch(`${gw.url}/v1/messages`, {
      method: 'POST', headers: { ...authHeaders(), 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'oa/gpt-4o', max_tokens: 32, messages: [{ role: 'user', content: [
        { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'hello doc' }, title: 'notes.txt' },
        { type: 'text', text: 'what' },
      ] }] }),
    })
    expect(r.status, await r.clone().text()).toBe(200)
    expect(oa.requests.at(-1)!.body['messages']).toEqual([{ role: 'user', content: [{ type: 'text', text: 'notes.txt\n\nhello doc' }, { type: 'text', text: 'what' }] }])
  })
})
