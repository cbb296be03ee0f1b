/**
 * OpenAI's newer top-level request fields, sent on /v1/chat/completions to anthropic, google and ollama: translated,
 * accepted and not sent when the answer does not depend on them (documented in docs/providers.md), or a 400 naming
 * the field and the provider when it would. Never dropped silently (what the mocks received is checked).
 */
import { describe, expect, it } from 'vitest'
import { TRANSLATED_PROVIDERS as PROVIDERS, translatedProvidersForFile, type TranslatedProvider as Provider } from '../helpers/translated-providers.ts'

const t = translatedProvidersForFile()
const requests = (p: Provider): { body: any }[] => t().requests(p)
/** A one-message chat with `body`'s fields. */
const chat = (p: Provider, body: object): Promise<{ status: number; json: any }> => t().chat(p, { messages: [{ role: 'user', content: 'hi' }], ...body })

describe.each(PROVIDERS)('%s', (p) => {
  it('`safety_identifier` (OpenAI\'s successor to `user`) is accepted like `user` (was a 400)', async () => {
    const { status, json } = await chat(p, { safety_identifier: 'hash-of-user-42' })
    expect(status, JSON.stringify(json)).toBe(200)
    const sent = JSON.stringify(requests(p)[0]!.body)
    if (p === 'anthropic') expect(requests(p)[0]!.body.metadata).toEqual({ user_id: 'hash-of-user-42' })
    else expect(sent).not.toContain('hash-of-user-42')
  })

  it('`prompt_cache_key` (a caching hint) is accepted and not sent (was a 400)', async () => {
    const { status, json } = await chat(p, { prompt_cache_key: 'tenant-7' })
    expect(status, JSON.stringify(json)).toBe(200)
    expect(JSON.stringify(requests(p)[0]!.body)).not.toContain('tenant-7')
  })

  it('OpenAI `metadata` (stored-completion tags) is accepted and not sent, alike on all three (anthropic and ollama refused a non-empty one)', async () => {
    const { status, json } = await chat(p, { metadata: { tenant: 'acme-tag-7' } })
    expect(status, JSON.stringify(json)).toBe(200)
    expect(JSON.stringify(requests(p)[0]!.body)).not.toContain('acme-tag-7')
  })

  it('`prediction` (Predicted Outputs, a latency hint that never changes the answer) is accepted and not sent (was a 400)', async () => {
    const { status, json } = await chat(p, { prediction: { type: 'content', content: 'draft-of-the-answer' } })
    expect(status, JSON.stringify(json)).toBe(200)
    expect(JSON.stringify(requests(p)[0]!.body)).not.toContain('draft-of-the-answer')
  })

  it('OpenAI\'s defaults sent explicitly (as SDKs and frameworks do) are accepted (google refused several)', async () => {
    const defaults = { n: 1, presence_penalty: 0, frequency_penalty: 0, logprobs: false, top_logprobs: 0, logit_bias: {}, metadata: {}, store: false, service_tier: 'auto', parallel_tool_calls: true, modalities: ['text'] }
    const { status, json } = await chat(p, defaults)
    expect(status, JSON.stringify(json)).toBe(200)
    const sent = requests(p)[0]!.body
    for (const k of ['logprobs', 'top_logprobs', 'logit_bias', 'store', 'service_tier', 'parallel_tool_calls', 'modalities']) expect(JSON.stringify(sent)).not.toContain(k)
  })

  it('`service_tier: default` (standard processing) is accepted: Anthropic\'s `standard_only`, the others\' only tier (was a 400)', async () => {
    const { status, json } = await chat(p, { service_tier: 'default' })
    expect(status, JSON.stringify(json)).toBe(200)
    if (p === 'anthropic') expect(requests(p)[0]!.body.service_tier).toBe('standard_only')
    else expect(JSON.stringify(requests(p)[0]!.body)).not.toContain('service_tier')
  })

  it.each([
    ['top_logprobs', 2],
    ['logit_bias', { 50256: -100 }],
    ['service_tier', 'flex'],
    ['logprobs', true],
    ['store', true],
    ['n', 2],
  ])('`%s` at another value than its default is a 400 naming it', async (field, value) => {
    if (p === 'google' && field === 'n') return // Gemini's candidateCount
    const { status, json } = await chat(p, { [field]: value })
    expect(status, JSON.stringify(json)).toBe(400)
    expect(json.error.param).toBe(field)
    expect(requests(p)).toHaveLength(0)
  })

  it.each([
    ['verbosity', 'low'],
    ['modalities', ['text', 'audio']],
    ['audio', { voice: 'alloy', format: 'wav' }],
    ['web_search_options', {}],
  ])('`%s` changes the answer and is a 400 naming it', async (field, value) => {
    const { status, json } = await chat(p, { [field]: value })
    expect(status, JSON.stringify(json)).toBe(400)
    expect(json.error.param).toBe(field)
    expect(json.error.message).toContain(p)
    expect(requests(p)).toHaveLength(0)
  })
})

it('anthropic: with both `user` and `safety_identifier`, `safety_identifier` is the user_id, whatever the order', async () => {
  for (const body of [{ user: 'u-old', safety_identifier: 'u-new' }, { safety_identifier: 'u-new', user: 'u-old' }]) {
    t().anthropic.reset()
    expect((await chat('anthropic', body)).status).toBe(200)
    expect(requests('anthropic')[0]!.body.metadata).toEqual({ user_id: 'u-new' })
  }
})
