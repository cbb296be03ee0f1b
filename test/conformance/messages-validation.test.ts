/**
 * /v1/messages bodies that Anthropic's API refuses are a 400 in Anthropic's shape naming the client's field, before
 * any provider is called, on every translated provider (google, ollama, anthropic): empty messages (were dropped, so an
 * assistant turn became the last one or no message was left).
 */
import { describe, expect, it } from 'vitest'
import { authHeaders } from '../helpers/gateway.ts'
import { TRANSLATED_MODELS, TRANSLATED_PROVIDERS as PROVIDERS, translatedProvidersForFile, type TranslatedProvider as Provider } from '../helpers/translated-providers.ts'

const t = translatedProvidersForFile()

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
})
