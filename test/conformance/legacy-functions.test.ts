/**
 * OpenAI's deprecated function calling (`functions`, `function_call`, an assistant turn's `function_call`, role
 * `function`) and assistant refusals, sent on /v1/chat/completions to providers that are not OpenAI: each reaches the
 * provider in its own terms or is a 400 naming the field and the provider, never dropped on the way (what the mocks
 * received is checked).
 */
import { describe, expect, it } from 'vitest'
import { TRANSLATED_PROVIDERS as PROVIDERS, translatedProvidersForFile, type TranslatedProvider as Provider } from '../helpers/translated-providers.ts'

const t = translatedProvidersForFile()
const requests = (p: Provider): { body: any }[] => t().requests(p)
const chat = (p: Provider, body: object): Promise<{ status: number; json: any }> => t().chat(p, body)

const FN = { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } }
const LEGACY_CALL = { role: 'assistant', content: null, function_call: { name: 'get_weather', arguments: '{"city":"Paris"}' } }

/** The provider's 400 naming `param`, and nothing sent upstream. */
async function refused(p: Provider, body: object, param: string | RegExp): Promise<void> {
  const { status, json } = await chat(p, body)
  expect(status, JSON.stringify(json)).toBe(400)
  expect(json.error.param).toMatch(param)
  expect(json.error.message).toContain(p)
  expect(requests(p)).toHaveLength(0)
}

describe.each(PROVIDERS)('%s', (p) => {
  it('`functions` is a 400 naming it', async () => {
    await refused(p, { functions: [FN], messages: [{ role: 'user', content: 'weather?' }] }, /^functions$/)
  })

  it('`function_call` is a 400 naming it', async () => {
    await refused(p, { function_call: 'auto', messages: [{ role: 'user', content: 'weather?' }] }, /^function_call$/)
  })

  it('a `function` message is a 400 naming it', async () => {
    await refused(p, { messages: [{ role: 'user', content: 'weather?' }, { role: 'function', name: 'get_weather', content: 'sunny' }] }, /^messages\[1\]\.(role|name)$/)
  })

  it('an assistant turn\'s legacy `function_call` is a 400 naming it (was dropped)', async () => {
    await refused(p, { messages: [{ role: 'user', content: 'weather?' }, LEGACY_CALL, { role: 'user', content: 'and?' }] }, /^messages\[1\]\.function_call$/)
  })
})
/** The assistant text of the history as the provider received it. */
function assistantText(p: Provider): string {
  const body = requests(p)[0]!.body
  if (p === 'google') return (body.contents as { role: string; parts: { text?: string }[] }[]).filter((c) => c.role === 'model').flatMap((c) => c.parts.map((x) => x.text ?? '')).join('|')
  if (p === 'ollama') return (body.messages as { role: string; content: string }[]).filter((m) => m.role === 'assistant').map((m) => m.content).join('|')
  return (body.messages as { role: string; content: string | { type: string; text?: string }[] }[]).filter((m) => m.role === 'assistant')
    .map((m) => (typeof m.content === 'string' ? m.content : m.content.map((b) => b.text ?? '').join('|'))).join('|')
}

describe.each(PROVIDERS)('%s: an assistant refusal in the history reaches the provider as the assistant\'s text (was dropped by google and ollama)', (p) => {
  it('the `refusal` field', async () => {
    const { status } = await chat(p, { messages: [{ role: 'user', content: 'do it' }, { role: 'assistant', content: null, refusal: 'I cannot help with that.' }, { role: 'user', content: 'why?' }] })
    expect(status).toBe(200)
    expect(assistantText(p)).toContain('I cannot help with that.')
  })

  it('refusal parts of the content', async () => {
    const { status } = await chat(p, { messages: [{ role: 'user', content: 'do it' }, { role: 'assistant', content: [{ type: 'text', text: 'Well.' }, { type: 'refusal', refusal: 'No.' }] }, { role: 'user', content: 'why?' }] })
    expect(status).toBe(200)
    expect(assistantText(p)).toMatch(/Well\.[\s|]*No\./)
  })
})

describe.each(PROVIDERS)('%s: a message `name` (a participant\'s name, no place for it upstream)', (p) => {
  it('is a 400 naming it (google dropped it)', async () => {
    await refused(p, { messages: [{ role: 'user', name: 'alice', content: 'hi' }] }, /^messages\[0\]\.name$/)
  })
})
