/**
 * The official `openai` SDK through the gateway to an Anthropic model, against the Anthropic mock, which refuses
 * what Anthropic's API refuses (empty and whitespace-only text blocks, image media types other than jpeg, png, gif
 * and webp, whitespace-only stop sequences). What an OpenAI client sends must reach Anthropic in a form it accepts,
 * or be answered by the gateway with a 400 naming the OpenAI field.
 */
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startAnthropicMock, type AnthropicMock } from '../helpers/anthropic-mock.ts'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'

const MODEL = 'claude/claude-sonnet-4-5'
const TOOLS: OpenAI.Chat.Completions.ChatCompletionTool[] = [{
  type: 'function',
  function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
}]

let mock: AnthropicMock
let gw: TestGateway
let client: OpenAI

beforeAll(async () => {
  mock = await startAnthropicMock()
  gw = await startGateway({
    providers: {
      claude: { type: 'anthropic', baseUrl: mock.url, apiKey: 'sk-ant-o2a-0001' },
      claudedrop: { type: 'anthropic', baseUrl: mock.url, apiKey: 'sk-ant-o2a-0001', dropUnsupportedParams: true },
    },
  })
  client = new OpenAI({ apiKey: ADMIN_KEY, baseURL: `${gw.url}/v1`, maxRetries: 0 })
})
afterAll(async () => {
  await gw?.close()
  await mock?.close()
})
beforeEach(() => { mock.reset() })

async function badRequest(p: Promise<unknown>): Promise<InstanceType<typeof OpenAI.BadRequestError>> {
  const e = await p.then(() => undefined, (err: unknown) => err)
  expect(e).toBeInstanceOf(OpenAI.BadRequestError)
  return e as InstanceType<typeof OpenAI.BadRequestError>
}

describe('openai SDK → gateway → anthropic: content Anthropic refuses', () => {
  it('a tool loop whose assistant turn said only whitespace before its tool call goes through', async () => {
    const r = await client.chat.completions.create({
      model: MODEL, tools: TOOLS,
      messages: [
        { role: 'user', content: 'please call tool for Paris' },
        { role: 'assistant', content: '\n\n', tool_calls: [{ id: 'toolu_01X', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        { role: 'tool', tool_call_id: 'toolu_01X', content: 'sunny' },
      ],
    })
    expect(r.choices[0]!.message.content).toBe('tool result: sunny')
    expect(mock.requests[0]!.body.messages[1].content).toEqual([{ type: 'tool_use', id: 'toolu_01X', name: 'get_weather', input: { city: 'Paris' } }])
  })

  it('empty and whitespace-only text parts next to real content are left out', async () => {
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: [
        { role: 'system', content: [{ type: 'text', text: '' }, { type: 'text', text: 'Be brief.' }] },
        { role: 'user', content: [{ type: 'text', text: 'echo hi' }, { type: 'text', text: '' }, { type: 'text', text: ' \n' }] },
      ],
    })
    expect(r.choices[0]!.message.content).toBe('echo: hi')
  })

  it('a whitespace-only assistant turn in the history is left out like an empty one', async () => {
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'hello' }, { role: 'assistant', content: ' ' }, { role: 'user', content: 'echo again' }],
    })
    expect(r.choices[0]!.finish_reason).toBe('stop')
    expect(mock.requests[0]!.body.messages).toEqual([{ role: 'user', content: [{ type: 'text', text: 'hello' }, { type: 'text', text: 'echo again' }] }])
  })
})

describe('openai SDK → gateway → anthropic: values Anthropic has no room for', () => {
  const PNG = 'data:image/png;base64,iVBORw0KGgo='

  it('a prefill (last assistant message) ending in whitespace has it trimmed; Anthropic refuses it (it was a 400)', async () => {
    for (const prefill of ['The answer is: ', [{ type: 'text' as const, text: 'Intro.' }, { type: 'text' as const, text: 'The answer is:\n' }]]) {
      mock.reset()
      const r = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: prefill }] })
      expect(r.choices[0]!.finish_reason, JSON.stringify(prefill)).toBe('stop')
      const sent = mock.requests[0]!.body.messages.at(-1)
      expect(sent.role).toBe('assistant')
      expect(typeof sent.content === 'string' ? sent.content : sent.content.at(-1).text).toBe('The answer is:')
    }
    // Only the final assistant message is a prefill: whitespace at the end of earlier turns is kept as sent.
    mock.reset()
    await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi ' }, { role: 'assistant', content: 'hello ' }, { role: 'user', content: 'again' }] })
    expect(mock.requests[0]!.body.messages.map((m: { content: string }) => m.content)).toEqual(['hi ', 'hello ', 'again'])
  })

  it('an image whose media type Anthropic refuses is a 400 naming the field, before Anthropic is called (dropped when configured)', async () => {
    const content: OpenAI.Chat.Completions.ChatCompletionContentPart[] = [
      { type: 'text', text: 'echo look' },
      { type: 'image_url', image_url: { url: 'data:image/bmp;base64,Qk0=' } },
    ]
    const e = await badRequest(client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content }] }))
    expect(e.param).toBe('messages[0].content[1].image_url.url')
    expect(e.message).toContain('image/bmp')
    expect(mock.requests).toHaveLength(0)
    const r = await client.chat.completions.create({ model: 'claudedrop/claude-sonnet-4-5', messages: [{ role: 'user', content }] })
    expect(r.choices[0]!.message.content).toBe('echo: look')
  })

  it('accepts the four image media types Anthropic takes, whatever their case', async () => {
    const content: OpenAI.Chat.Completions.ChatCompletionContentPart[] = [
      { type: 'text', text: 'echo four' },
      ...['image/jpeg', 'image/PNG', 'image/gif', 'image/webp'].map((t) => ({ type: 'image_url' as const, image_url: { url: PNG.replace('image/png', t) } })),
    ]
    const r = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content }] })
    expect(r.choices[0]!.message.content).toBe('echo: four')
  })

  it('a whitespace-only stop sequence is a 400 naming stop, before Anthropic is called (dropped when configured)', async () => {
    const e = await badRequest(client.chat.completions.create({ model: MODEL, stop: ['END', '\n'], messages: [{ role: 'user', content: 'echo hi' }] }))
    expect(e.param).toBe('stop')
    expect(mock.requests).toHaveLength(0)
    const r = await client.chat.completions.create({ model: 'claudedrop/claude-sonnet-4-5', stop: ['END', '\n'], messages: [{ role: 'user', content: 'echo hi' }] })
    expect(r.choices[0]!.message.content).toBe('echo: hi')
    expect(mock.requests[0]!.body.stop_sequences).toEqual(['END'])
  })
})

describe('plain-text documents (Anthropic\'s `source.type: text`; were a 400: only PDF documents were carried)', () => {
  const TEXT = 'Clause 1: the tenant pays rent monthly.\nClause 2: ünïcödé stays.'
  const DOCUMENT = { type: 'document', source: { type: 'text', media_type: 'text/plain', data: TEXT }, title: 'lease.txt' }

  it('openai SDK: a file part of a data:text/plain URL (base64 or percent-encoded) reaches Anthropic as a text document', async () => {
    for (const fileData of [`data:text/plain;base64,${Buffer.from(TEXT).toString('base64')}`, `data:text/plain;charset=utf-8,${encodeURIComponent(TEXT)}`]) {
      mock.reset()
      const content = [{ type: 'text', text: 'echo read' }, { type: 'file', file: { file_data: fileData, filename: 'lease.txt' } }] as OpenAI.Chat.Completions.ChatCompletionContentPart[]
      const r = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content }] })
      expect(r.choices[0]!.message.content).toBe('echo: read')
      expect(mock.requests[0]!.body.messages[0].content).toEqual([{ type: 'text', text: 'echo read' }, DOCUMENT])
    }
  })

  it('anthropic SDK: a text document goes to Anthropic as it came, title included', async () => {
    const anthropic = new Anthropic({ apiKey: ADMIN_KEY, baseURL: gw.url, maxRetries: 0 })
    const r = await anthropic.messages.create({
      model: MODEL, max_tokens: 64,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'echo doc' }, DOCUMENT as Anthropic.DocumentBlockParam] }],
    })
    expect(r.content).toEqual([{ type: 'text', text: 'echo: doc' }])
    expect(mock.requests[0]!.body.messages[0].content).toEqual([{ type: 'text', text: 'echo doc' }, DOCUMENT])
  })

  it('a document of another kind (a URL): an Anthropic provider gets it as sent (native-only, was a 400)', async () => {
    const anthropic = new Anthropic({ apiKey: ADMIN_KEY, baseURL: gw.url, maxRetries: 0 })
    const doc = { type: 'document' as const, source: { type: 'url' as const, url: 'https://example.com/a.pdf' } }
    const r = await anthropic.messages.create({ model: MODEL, max_tokens: 64, messages: [{ role: 'user', content: [doc, { type: 'text', text: 'echo doc' }] }] })
    expect(r.content).toEqual([{ type: 'text', text: 'echo: doc' }])
    expect(mock.requests[0]!.body.messages[0].content).toEqual([doc, { type: 'text', text: 'echo doc' }])
  })
})
