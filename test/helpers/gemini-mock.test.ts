/** The Gemini mock speaks Google's wire format and its fault DSL does what it says. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseGeminiFault, startGeminiMock, type GeminiMock } from './gemini-mock.ts'

let mock: GeminiMock

beforeAll(async () => { mock = await startGeminiMock({ apiKey: 'k' }) })
afterAll(async () => { await mock.close() })

const post = (path: string, body: unknown, headers: Record<string, string> = {}): Promise<Res> =>
  fetch(`${mock.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-goog-api-key': 'k', ...headers }, body: JSON.stringify(body) })

/** fetch's Response with `json()` typed loosely: the mock answers arbitrary Google shapes. */
type Res = Omit<Response, 'json'> & { json(): Promise<any> }

const user = (text: string) => ({ contents: [{ role: 'user', parts: [{ text }] }] })

describe('gemini mock', () => {
  it('parses the fault DSL like openai-mock: JSON, key:value / key=value items, bare status and flags', () => {
    expect(parseGeminiFault('{"status":429,"retryAfter":2}')).toEqual({ status: 429, retryAfter: 2 })
    expect(parseGeminiFault('503; times=2 reset')).toEqual({ status: 503, times: 2, reset: true })
    expect(parseGeminiFault('retryAfter:4')).toEqual({ retryAfter: 4, status: 429 })
    expect(parseGeminiFault('code:UNAVAILABLE')).toEqual({ code: 'UNAVAILABLE', status: 503 })
    expect(parseGeminiFault('errorAfter:2,code:INTERNAL')).toEqual({ errorAfter: 2, code: 'INTERNAL' })
    expect(() => parseGeminiFault('bogus:1')).toThrow('unknown fault key')
  })

  it('generateContent: echo reply with usage; the key is required in x-goog-api-key', async () => {
    const r = await post('/v1beta/models/gemini-2.5-flash:generateContent', user('echo hi there'))
    const j = await r.json()
    expect(j.candidates[0]).toEqual({ content: { parts: [{ text: 'echo: hi there' }], role: 'model' }, finishReason: 'STOP', index: 0 })
    expect(j.usageMetadata).toEqual({ promptTokenCount: 4, candidatesTokenCount: 3, totalTokenCount: 7 })
    const noKey: Res = await fetch(`${mock.url}/v1beta/models/m:generateContent`, { method: 'POST', body: JSON.stringify(user('x')) })
    expect([noKey.status, (await noKey.json()).error.status]).toEqual([403, 'PERMISSION_DENIED'])
    const inUrl = await post('/v1beta/models/m:generateContent?key=k', user('x'))
    expect(inUrl.status).toBe(400)
  })

  it('JSON answers and errors are pretty-printed unless the query says prettyPrint=false (or $prettyPrint=false)', async () => {
    const pretty = await (await post('/v1beta/models/gemini-2.5-flash:generateContent', user('echo hi'))).text()
    expect(pretty).toMatch(/^\{\n {2}"candidates": \[\n/)
    for (const q of ['prettyPrint=false', '%24prettyPrint=false']) {
      const compact = await (await post(`/v1beta/models/gemini-2.5-flash:generateContent?${q}`, user('echo hi'))).text()
      expect(compact).not.toContain('\n')
      expect(JSON.parse(compact).candidates).toEqual(JSON.parse(pretty).candidates)
    }
    const err = await (await post('/v1beta/models/m:generateContent', {})).text()
    expect(err).toMatch(/^\{\n {2}"error": \{\n/)
  })

  it('rejects JSON-Schema keys Gemini does not know and unknown fields, like Google', async () => {
    const tools = [{ functionDeclarations: [{ name: 'f', parameters: { type: 'object', additionalProperties: false, properties: { a: { type: 'string' } } } }] }]
    const r = await post('/v1beta/models/m:generateContent', { ...user('x'), tools })
    const j = await r.json()
    expect([r.status, j.error.status]).toEqual([400, 'INVALID_ARGUMENT'])
    expect(j.error.message).toContain('additionalProperties')
    expect((await post('/v1beta/models/m:generateContent', { ...user('x'), temperature: 1 })).status).toBe(400)
    const bad = await post('/v1beta/models/m:generateContent', user('x'), { 'x-mock-fault': 'nope:1' })
    expect([bad.status, (await bad.json()).error.status]).toEqual([400, 'INVALID_ARGUMENT'])
  })

  it('refuses a function name Gemini does not take, like Google', async () => {
    const decl = (name: string) => ({ ...user('x'), tools: [{ functionDeclarations: [{ name: 'ok' }, { name }] }] })
    for (const name of ['1tool', 'lookup_ü', 'a b', 'x'.repeat(65)]) {
      const r = await post('/v1beta/models/m:generateContent', decl(name))
      expect([r.status, (await r.json()).error.message]).toEqual([400, expect.stringContaining('tools[0].function_declarations[1].name: Invalid function name')])
    }
    expect((await post('/v1beta/models/m:generateContent', decl('_ns:my.tool-2'))).status).toBe(200)
  })

  it('refuses an int32 field of generationConfig beyond 32 bits, like Google', async () => {
    for (const [gen, field] of [[{ maxOutputTokens: 2 ** 31 }, 'max_output_tokens'], [{ seed: -(2 ** 31) - 1 }, 'seed'], [{ thinkingConfig: { thinkingBudget: 2 ** 32 } }, 'thinking_config.thinking_budget'], [{ topK: 1.5 }, 'top_k']] as const) {
      const r = await post('/v1beta/models/m:generateContent', { ...user('x'), generationConfig: gen })
      expect([r.status, (await r.json()).error.message]).toEqual([400, expect.stringContaining(`'generation_config.${field}' (TYPE_INT32)`)])
    }
    expect((await post('/v1beta/models/m:generateContent', { ...user('x'), generationConfig: { maxOutputTokens: 2 ** 31 - 1, seed: -(2 ** 31) } })).status).toBe(200)
  })

  it('streamGenerateContent?alt=sse: one GenerateContentResponse per data line, finishReason and usage on the last', async () => {
    const r = await post('/v1beta/models/m:streamGenerateContent?alt=sse', user('echo a b'))
    expect(r.headers.get('content-type')).toBe('text/event-stream')
    const events = (await r.text()).split('\r\n\r\n').filter(Boolean).map((e) => JSON.parse(e.slice('data: '.length)))
    expect(events.map((e) => e.candidates[0].content.parts[0].text).join('')).toBe('echo: a b')
    expect(events.at(-1).candidates[0].finishReason).toBe('STOP')
    expect(events.at(-1).usageMetadata.candidatesTokenCount).toBe(3)
  })

  it('429 with Retry-After and a RetryInfo detail, for `times` requests only', async () => {
    mock.fault = { status: 429, retryAfter: 3, times: 1 }
    const r = await post('/v1beta/models/m:generateContent', user('x'))
    const j = await r.json()
    expect([r.status, r.headers.get('retry-after'), j.error.status]).toEqual([429, '3', 'RESOURCE_EXHAUSTED'])
    expect(j.error.details).toContainEqual({ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '3s' })
    expect(mock.fault).toBeNull()
    expect((await post('/v1beta/models/m:generateContent', user('x'))).status).toBe(200)
  })

  it('blocked prompt, function call, tool result', async () => {
    const blocked = await (await post('/v1beta/models/m:generateContent', user('a blocked prompt'))).json()
    expect(blocked.candidates).toBeUndefined()
    expect(blocked.promptFeedback.blockReason).toBe('SAFETY')
    const tools = [{ functionDeclarations: [{ name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } }] }]
    const call = await (await post('/v1beta/models/m:generateContent', { ...user('call tool'), tools })).json()
    expect(call.candidates[0].content.parts).toEqual([{ functionCall: { name: 'get_weather', args: { city: 'Paris' } } }])
    const result = await (await post('/v1beta/models/m:generateContent', {
      contents: [{ role: 'user', parts: [{ text: 'call tool' }] }, { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: {} } }] },
        { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { temp: 20 } } }] }],
    })).json()
    expect(result.candidates[0].content.parts[0].text).toBe('tool result: {"temp":20}')
  })

  it('embedContent and batchEmbedContents; models list', async () => {
    const one = await (await post('/v1beta/models/e:embedContent', { content: { parts: [{ text: 'a' }] }, outputDimensionality: 3 })).json()
    expect(one.embedding.values).toHaveLength(3)
    const many = await (await post('/v1beta/models/e:batchEmbedContents', { requests: [{ model: 'models/e', content: { parts: [{ text: 'a' }] } }, { model: 'models/e', content: { parts: [{ text: 'b' }] } }] })).json()
    expect(many.embeddings).toHaveLength(2)
    const again = await (await post('/v1beta/models/e:embedContent', { content: { parts: [{ text: 'a' }] } })).json()
    expect(many.embeddings[0].values).toEqual(again.embedding.values)
    const wrong = await post('/v1beta/models/e:batchEmbedContents', { requests: [{ model: 'models/other', content: { parts: [{ text: 'a' }] } }] })
    expect(wrong.status).toBe(400)
    const list = await (await fetch(`${mock.url}/v1beta/models`, { headers: { 'x-goog-api-key': 'k' } }) as Res).json()
    expect(list.models[0].name).toBe('models/gemini-2.5-flash')
  })
})
