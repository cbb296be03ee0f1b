/**
 * Message fields and content parts that anthropic, google and ollama have no place for, sent on /v1/chat/completions:
 * each reaches the provider in its own terms or is a 400 naming the field and the provider, never dropped on the way
 * (what the mocks received is checked). Null and empty values carry nothing and pass (the OpenAI SDK echoes an
 * assistant message with `refusal: null`, `annotations: []`, `audio: null`).
 */
import { describe, expect, it } from 'vitest'
import { TRANSLATED_PROVIDERS as PROVIDERS, translatedProvidersForFile, type TranslatedProvider as Provider } from '../helpers/translated-providers.ts'

const t = translatedProvidersForFile()
const requests = (p: Provider): { body: any }[] => t().requests(p)
const chat = (p: Provider, body: object): Promise<{ status: number; json: any }> => t().chat(p, body)

/** The provider's 400 naming `param`, and nothing sent upstream. */
async function refused(p: Provider, body: object, param: string): Promise<void> {
  const { status, json } = await chat(p, body)
  expect(status, JSON.stringify(json)).toBe(400)
  expect(json.error.param).toBe(param)
  expect(json.error.message).toContain(p)
  expect(requests(p)).toHaveLength(0)
}

const history = (assistant: object): object => ({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'Hello.', ...assistant }, { role: 'user', content: 'and?' }] })

describe.each(PROVIDERS)('%s: assistant message fields it has no place for are a 400 naming them (were dropped)', (p) => {
  it('`audio` (a reference to an earlier spoken answer)', async () => {
    await refused(p, history({ audio: { id: 'audio_abc123' } }), 'messages[1].audio')
  })

  it('`annotations` (URL citations)', async () => {
    await refused(p, history({ annotations: [{ type: 'url_citation', url_citation: { url: 'https://example.com', title: 'Ex', start_index: 0, end_index: 6 } }] }), 'messages[1].annotations')
  })

  it('a field of no API it knows, on a user message', async () => {
    await refused(p, { messages: [{ role: 'user', content: 'hi', priority: 'high' }] }, 'messages[0].priority')
  })

  it('an earlier answer\'s reasoning trace from another server (`reasoning_content`, `reasoning`) is left out, not refused', async () => {
    const { status, json } = await chat(p, history({ reasoning_content: 'The user greets me.', reasoning: 'The user greets me.' }))
    expect(status, JSON.stringify(json)).toBe(200)
    expect(JSON.stringify(requests(p)[0]!.body)).not.toContain('The user greets me.')
    // On a user message it is no reasoning trace: refused like any field of no API the translation knows.
    requests(p).length = 0
    await refused(p, { messages: [{ role: 'user', content: 'hi', reasoning_content: 'x' }] }, 'messages[0].reasoning_content')
  })

  it('the OpenAI SDK\'s echo (`refusal: null`, `annotations: []`, `audio: null`, `function_call: null`) carries nothing and passes', async () => {
    const { status, json } = await chat(p, history({ refusal: null, annotations: [], audio: null, function_call: null, tool_calls: [] }))
    expect(status, JSON.stringify(json)).toBe(200)
    expect(requests(p)).toHaveLength(1)
  })
})

const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=='
const assistantParts = (part: object): object => history({ content: [{ type: 'text', text: 'Here it is.' }, part] })

describe('assistant content parts other than text and refusals (were dropped by google and ollama)', () => {
  it('google: an image goes into the model turn as inline data', async () => {
    const { status, json } = await chat('google', assistantParts({ type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }))
    expect(status, JSON.stringify(json)).toBe(200)
    const model = requests('google')[0]!.body.contents.find((c: { role: string }) => c.role === 'model')
    expect(model.parts).toEqual([{ text: 'Here it is.' }, { inlineData: { mimeType: 'image/png', data: PNG } }])
  })

  it.each(['google', 'anthropic'] as const)('%s: a data: URL whose percent-encoding does not decode is a 400 naming it (google answered a 502 blaming the provider)', async (p) => {
    const part = p === 'google' ? { type: 'image_url', image_url: { url: 'data:image/png,%E0%A4%A' } } : { type: 'file', file: { file_data: 'data:text/plain,%E0%A4%A' } }
    const { status, json } = await chat(p, { messages: [{ role: 'user', content: [{ type: 'text', text: 'look' }, part] }] })
    expect(status, JSON.stringify(json)).toBe(400)
    expect(json.error.param).toBe(p === 'google' ? 'messages[0].content[1].image_url.url' : 'messages[0].content[1].file.file_data')
    expect(requests(p)).toHaveLength(0)
  })

  it('google: a part type Gemini has no part for is a 400 naming it', async () => {
    await refused('google', assistantParts({ type: 'video_url', video_url: { url: 'https://example.com/v.mp4' } }), 'messages[1].content[1].video_url')
  })

  it.each([
    ['image_url', { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }],
    ['input_audio', { type: 'input_audio', input_audio: { data: 'UklGRg==', format: 'wav' } }],
    ['file', { type: 'file', file: { file_data: 'data:application/pdf;base64,JVBERi0=' } }],
  ])('ollama: an %s part is a 400 naming it (Ollama\'s `images` are the user\'s)', async (type, part) => {
    await refused('ollama', assistantParts(part), `messages[1].content[1].${type}`)
  })
})

const IMAGE = { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }
const CALL = { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'shot', arguments: '{}' } }] }

describe.each(['google', 'ollama'] as const)('%s: a system or developer message\'s parts other than text are a 400 naming them (were dropped)', (p) => {
  it.each(['system', 'developer'])('a %s message', async (role) => {
    await refused(p, { messages: [{ role, content: [{ type: 'text', text: 'Be brief.' }, IMAGE] }, { role: 'user', content: 'hi' }] }, 'messages[0].content[1].image_url')
  })
})

const toolResult = (...parts: object[]): object => ({ messages: [{ role: 'user', content: 'take a screenshot' }, CALL, { role: 'tool', tool_call_id: 'call_1', content: [{ type: 'text', text: 'here' }, ...parts] }] })

describe('a tool result\'s parts other than text', () => {
  it('ollama: a 400 naming them (were dropped)', async () => {
    await refused('ollama', toolResult(IMAGE), 'messages[2].content[1].image_url')
  })

  it('google: images and files as data: URLs go inline in the functionResponse\'s parts (Gemini 3 reads what a tool returns; were a 400)', async () => {
    const PDF = 'JVBERi0xLjQK'
    const { status, json } = await chat('google', toolResult(IMAGE, { type: 'file', file: { file_data: `data:application/pdf;base64,${PDF}` } }))
    expect(status, JSON.stringify(json)).toBe(200)
    const turn = requests('google')[0]!.body.contents.at(-1)
    expect(turn).toEqual({
      role: 'user',
      parts: [{ functionResponse: { name: 'shot', response: { content: 'here' }, parts: [{ inlineData: { mimeType: 'image/png', data: PNG } }, { inlineData: { mimeType: 'application/pdf', data: PDF } }] } }],
    })
  })

  it('google: an image by http(s) URL is a 400 naming its url (a function response takes no file URI on Gemini\'s API)', async () => {
    await refused('google', toolResult({ type: 'image_url', image_url: { url: 'https://example.com/shot.png' } }), 'messages[2].content[1].image_url.url')
  })

  it('google: a part Gemini has no function-response part for is a 400 naming it', async () => {
    await refused('google', toolResult({ type: 'input_audio', input_audio: { data: 'UklGRg==', format: 'wav' } }), 'messages[2].content[1].input_audio')
  })
})

describe('anthropic: a system or developer message\'s parts other than text', () => {
  it.each(['system', 'developer'])('in a %s message are a 400 naming the part (were sent into `system`, which takes text blocks only)', async (role) => {
    await refused('anthropic', { messages: [{ role, content: [{ type: 'text', text: 'Be brief.' }, IMAGE] }, { role: 'user', content: 'hi' }] }, 'messages[0].content[1].type')
  })
})

describe.each(PROVIDERS)('%s: a tool call in the history without a function name', (p) => {
  it.each([['empty', ''], ['missing', undefined]])('(%s) is a 400 naming messages[i].tool_calls[j].function.name, not sent (anthropic and ollama sent it)', async (_, name) => {
    const calls = [{ id: 'call_1', type: 'function', function: { name: 'shot', arguments: '{}' } }, { id: 'call_2', type: 'function', function: { name, arguments: '{}' } }]
    const body = { messages: [{ role: 'user', content: 'go' }, { role: 'assistant', content: null, tool_calls: calls }, { role: 'tool', tool_call_id: 'call_1', content: 'ok' }, { role: 'tool', tool_call_id: 'call_2', content: 'ok' }] }
    const { status, json } = await chat(p, body)
    expect(status, JSON.stringify(json)).toBe(400)
    expect(json.error.param).toBe('messages[1].tool_calls[1].function.name')
    expect(requests(p)).toHaveLength(0)
  })
})

describe("ollama: a tool message's `name` (the legacy way to name the function whose result it is)", () => {
  const call = (name: string): object => ({ role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name, arguments: '{}' } }] })

  it("is accepted when it is the matching call's name, which goes as tool_name (it was a 400)", async () => {
    const { status, json } = await chat('ollama', { messages: [{ role: 'user', content: 'go' }, call('shot'), { role: 'tool', tool_call_id: 'call_1', name: 'shot', content: 'ok' }] })
    expect(status, JSON.stringify(json)).toBe(200)
    expect(requests('ollama')[0]!.body.messages[2]).toEqual({ role: 'tool', content: 'ok', tool_name: 'shot' })
  })

  it('is the tool_name when no call has its tool_call_id (it was a 400)', async () => {
    const { status, json } = await chat('ollama', { messages: [{ role: 'user', content: 'go' }, { role: 'tool', tool_call_id: 'elsewhere', name: 'shot', content: 'ok' }] })
    expect(status, JSON.stringify(json)).toBe(200)
    expect(requests('ollama')[0]!.body.messages[1]).toEqual({ role: 'tool', content: 'ok', tool_name: 'shot' })
  })

  it("is a 400 naming it when it is not the matching call's name", async () => {
    await refused('ollama', { messages: [{ role: 'user', content: 'go' }, call('shot'), { role: 'tool', tool_call_id: 'call_1', name: 'other', content: 'ok' }] }, 'messages[2].name')
  })
})

describe.each(['anthropic', 'google'] as const)("%s: a tool message's `name` (the legacy way to name the function whose result it is)", (p) => {
  const history = (name: string): object => ({ messages: [{ role: 'user', content: 'go' }, CALL, { role: 'tool', tool_call_id: 'call_1', name, content: 'ok' }] })

  it("is accepted when it is the matching call's name (anthropic answered 400)", async () => {
    const { status, json } = await chat(p, history('shot'))
    expect(status, JSON.stringify(json)).toBe(200)
    expect(requests(p)).toHaveLength(1)
  })

  it("is a 400 naming it when it is not the matching call's name (google sent the call's and ignored it)", async () => {
    await refused(p, history('other'), 'messages[2].name')
  })
})
