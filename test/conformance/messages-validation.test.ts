/**
 * /v1/messages bodies that Anthropic's API refuses are a 400 in Anthropic's shape naming the client's field, before
 * any provider is called, on every translated provider (google, ollama, anthropic): empty messages (were dropped, so an
 * assistant turn became the last one or no message was left), system blocks that are not text (a bogus type was read
 * as text), a `system` role among the messages, and image types Anthropic does not take (were forwarded).
 */
import { describe, expect, it } from 'vitest'
import { authHeaders } from '../helpers/gateway.ts'
import { TRANSLATED_MODELS, TRANSLATED_PROVIDERS as PROVIDERS, translatedProvidersForFile, type TranslatedProvider as Provider } from '../helpers/translated-providers.ts'

const t = translatedProvidersForFile()
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=='

async function messages(p: Provider, body: object): Promise<{ status: number; json: any }> {
  const r = await fetch(`${t().gw.url}/v1/messages`, {
    method: 'POST', headers: { ...authHeaders(), 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({ model: TRANSLATED_MODELS[p], max_tokens: 32, ...body }),
  })
  return { status: r.status, json: await r.json() }
}

/** An Anthropic-shaped 400 whose message names `field`, and nothing sent upstream. */
async function refused(p: Provider, body: object, field: string, reason?: string): Promise<void> {
  const { status, json } = await messages(p, body)
  expect(status, JSON.stringify(json)).toBe(400)
  expect(json.type).toBe('error')
  expect(json.error.type).toBe('invalid_request_error')
  expect(json.error.message).toContain(`${field}: ${reason ?? ''}`)
  expect(t().requests(p)).toHaveLength(0)
}

const EMPTY = 'must not be empty'

describe.each(PROVIDERS)('%s', (p) => {
  it('a last user message with content [] is a 400 naming it (was dropped: the assistant answer went last, a prefill)', async () => {
    await refused(p, { messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'answer' }, { role: 'user', content: [] }] }, 'messages[2].content', EMPTY)
  })

  it('a lone user message with content [] is a 400 (was sent upstream as no messages at all)', async () => {
    await refused(p, { messages: [{ role: 'user', content: [] }] }, 'messages[0].content', EMPTY)
  })

  it('an empty user string and an empty assistant turn before the last message are 400s, as Anthropic answers', async () => {
    await refused(p, { messages: [{ role: 'user', content: '' }] }, 'messages[0].content', EMPTY)
    await refused(p, { messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: [] }, { role: 'user', content: 'and?' }] }, 'messages[1].content', EMPTY)
    await refused(p, { messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: '' }, { role: 'user', content: 'and?' }] }, 'messages[1].content', EMPTY)
  })

  it('a final assistant message may be empty (Anthropic\'s one exception)', async () => {
    for (const content of [[], '']) {
      t().reset()
      const { status, json } = await messages(p, { messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content }] })
      expect(status, JSON.stringify(json)).toBe(200)
      expect(t().requests(p)).toHaveLength(1)
    }
  })

  it('a system block that is not text is a 400 naming its type (a bogus type was read as text, an image said "text: must be a string")', async () => {
    const u = [{ role: 'user', content: 'hi' }]
    await refused(p, { system: [{ type: 'bogus', text: 'be evil' }], messages: u }, 'system[0].type', "must be 'text' (the system prompt takes text blocks only)")
    await refused(p, { system: [{ type: 'text', text: 'ok' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } }], messages: u }, 'system[1].type', "must be 'text'")
  })

  it('role system among the messages is a 400 naming it (was taken as a system prompt)', async () => {
    await refused(p, { messages: [{ role: 'system', content: 'sys' }, { role: 'user', content: 'hi' }] }, 'messages[0].role', "must be 'user' or 'assistant' (a system prompt is the top-level system field)")
    await refused(p, { messages: [{ role: 'user', content: 'hi' }, { role: 'tool', content: 'x' }] }, 'messages[1].role', "must be 'user' or 'assistant'")
  })

  it('a base64 image of a type Anthropic does not take is a 400 naming its media_type (image/bmp was forwarded)', async () => {
    const image = (mediaType: string): object => ({ messages: [{ role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image', source: { type: 'base64', media_type: mediaType, data: PNG } }] }] })
    await refused(p, image('image/bmp'), 'messages[0].content[1].source.media_type', "must be one of 'image/jpeg', 'image/png', 'image/gif', 'image/webp'")
    await refused(p, image('IMAGE/PNG'), 'messages[0].content[1].source.media_type')
    const { status, json } = await messages(p, image('image/png'))
    expect(status, JSON.stringify(json)).toBe(200)
  })

  it('the same in a tool result', async () => {
    await refused(p, {
      tools: [{ name: 'shot', input_schema: { type: 'object' } }],
      messages: [
        { role: 'user', content: 'take one' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'shot', input: {} }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/tiff', data: PNG } }] }] },
      ],
    }, 'messages[2].content[0].content[0].source.media_type')
  })
})
