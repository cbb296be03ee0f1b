/**
 * POST /v1/messages/count_tokens (the Anthropic SDK's messages.countTokens; Claude Code asks it every turn to manage its
 * context window, and it was a 404): an Anthropic target counts upstream, with exactly the fields count_tokens takes;
 * any other provider is counted with the gateway's tokenizer, flagged `x-mcp-token-count: estimated`. Errors in
 * Anthropic's shape, never a made-up count; no budget reserved, no cost metered.
 */
import Anthropic from '@anthropic-ai/sdk'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startAnthropicMock, type AnthropicMock } from '../helpers/anthropic-mock.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { estimateChatPrompt, loadTokenizer } from '../../gateway/cost/estimate.ts'
import { anthropicToCanonical } from '../../gateway/inbound/anthropic.ts'

let mock: AnthropicMock
let oa: OpenAIMock
let gw: TestGateway

beforeAll(async () => {
  mock = await startAnthropicMock()
  oa = await startOpenAIMock()
  gw = await startGateway({
    providers: {
      claude: { type: 'anthropic', baseUrl: mock.url, apiKey: 'sk-ant-count-0001' },
      oa: { type: 'openai', baseUrl: oa.url, apiKey: 'sk-count-openai-0001' },
    },
    models: { smart: { targets: [{ provider: 'claude', model: 'claude-sonnet-4-5' }, { provider: 'oa', model: 'gpt-4o' }] } },
    // A budget of one request a day: token counts must not use it.
    plugins: { budget: { backend: 'local', budgets: [{ name: 'one', scope: 'global', period: 'day', requests: 1 }] } },
    chains: { default: ['request-id', 'auth', 'budget', 'cost-meter'] },
  })
})
afterAll(async () => {
  await gw?.close()
  await mock?.close()
  await oa?.close()
})
beforeEach(() => { mock.reset(); oa.reset() })

const client = (apiKey = ADMIN_KEY): Anthropic => new Anthropic({ apiKey, baseURL: gw.url, maxRetries: 0 })
const BODY = {
  system: 'You are terse.',
  messages: [{ role: 'user' as const, content: 'What is the weather in Paris today, in one word?' }],
  tools: [{ name: 'get_weather', description: 'Weather for a city', input_schema: { type: 'object' as const, properties: { city: { type: 'string' } } } }],
}

describe('POST /v1/messages/count_tokens', () => {
  it('an Anthropic model: counted by Anthropic, sent only what count_tokens takes, the client\'s betas passed on', async () => {
    const r = await client().messages.countTokens({ model: 'claude/claude-sonnet-4-5', ...BODY }, { headers: { 'anthropic-beta': 'context-1m-2025-08-07' } })
    const sent = mock.requests.at(-1)!
    expect(sent.path).toBe('/v1/messages/count_tokens')
    expect(Object.keys(sent.body).sort()).toEqual(['messages', 'model', 'system', 'tools'])
    expect(sent.body.model).toBe('claude-sonnet-4-5')
    expect(sent.headers['anthropic-beta']).toBe('context-1m-2025-08-07')
    // The mock counts ceil(characters / 4) of the system prompt and the messages: 14 + 48 = 62 → 16.
    expect(r).toEqual({ input_tokens: 16 })
    // An alias counts at its first target.
    expect(await client().messages.countTokens({ model: 'smart', ...BODY })).toEqual({ input_tokens: 16 })
  })

  it('another provider: the gateway\'s tokenizer, flagged estimated; the upstream is not called', async () => {
    const res = await fetch(`${gw.url}/v1/messages/count_tokens?beta=true`, {
      method: 'POST', headers: { 'x-api-key': ADMIN_KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'oa/gpt-4o', ...BODY }),
    })
    expect(res.status).toBe(200)
    expect(res.headers.get('x-mcp-token-count')).toBe('estimated')
    await loadTokenizer()
    const expected = estimateChatPrompt(anthropicToCanonical({ model: 'oa/gpt-4o', max_tokens: 1, ...BODY }))
    expect(expected).toBeGreaterThan(10)
    expect(await res.json()).toEqual({ input_tokens: expected })
    expect(oa.requests).toHaveLength(0)
  })

  it('counts use no budget and meter no cost: after three, the one request the budget allows still goes through', async () => {
    for (let i = 0; i < 3; i++) await client().messages.countTokens({ model: 'claude/claude-sonnet-4-5', ...BODY })
    const m = await client().messages.create({ model: 'claude/claude-sonnet-4-5', max_tokens: 16, messages: BODY.messages })
    expect(m.type).toBe('message')
    await expect(client().messages.create({ model: 'claude/claude-sonnet-4-5', max_tokens: 16, messages: BODY.messages })).rejects.toMatchObject({ status: 402 })
  })

  it('errors in Anthropic\'s shape, never a made-up count: bad key, max_tokens, unknown model, the upstream\'s own error', async () => {
    await expect(client('wrong-key-0000000000000000000000').messages.countTokens({ model: 'claude/claude-sonnet-4-5', ...BODY })).rejects.toBeInstanceOf(Anthropic.AuthenticationError)
    const withMax = await fetch(`${gw.url}/v1/messages/count_tokens`, {
      method: 'POST', headers: { 'x-api-key': ADMIN_KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude/claude-sonnet-4-5', max_tokens: 10, ...BODY }),
    })
    expect(withMax.status).toBe(400)
    expect(await withMax.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringContaining('max_tokens') } })
    await expect(client().messages.countTokens({ model: 'nope/x', ...BODY })).rejects.toBeInstanceOf(Anthropic.NotFoundError)
    mock.fault = { status: 529, type: 'overloaded_error', message: 'Overloaded', times: 1 }
    const e = await client().messages.countTokens({ model: 'claude/claude-sonnet-4-5', ...BODY }).then(() => undefined, (err: unknown) => err)
    expect(e).toBeInstanceOf(Anthropic.APIError)
    expect((e as InstanceType<typeof Anthropic.APIError>).status).toBe(529)
  })
})

describe('a pathological prompt cannot stall the gateway (the tokenizer is quadratic in a run\'s length)', () => {
  // One request of 1 MiB of one repeated letter, or of CJK text (no spaces), kept the event loop busy for more than
  // 11 minutes: nothing else was answered on either port. Counting is now bounded; the count stays close.
  const cases = [
    { name: 'one repeated letter', text: 'x'.repeat(1 << 20), tokensPerChar: 1 / 8 },
    { name: 'CJK text', text: '漢字'.repeat(1 << 19), tokensPerChar: 1 },
  ]
  for (const c of cases) {
    it(`${c.name}, 1 MiB: answered, within 2 % of the tokenizer's own count, other requests served meanwhile`, async () => {
      const counting = fetch(`${gw.url}/v1/messages/count_tokens`, {
        method: 'POST', headers: { 'x-api-key': ADMIN_KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'oa/gpt-4o', messages: [{ role: 'user', content: c.text }] }),
      })
      const models = await fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
      expect(models.status).toBe(200)
      const res = await counting
      expect(res.status).toBe(200)
      const { input_tokens: n } = await res.json() as { input_tokens: number }
      const expected = c.text.length * c.tokensPerChar
      expect(Math.abs(n - expected) / expected).toBeLessThan(0.02)
    }, 20_000)
  }
})

