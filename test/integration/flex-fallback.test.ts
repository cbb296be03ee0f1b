/**
 * OpenAI's flex processing through an alias: a flex request refused for want of flex capacity (429) is not a failure
 * of the target (no breaker failure, no cool-down: standard traffic keeps flowing), and with `flexFallback` it is sent
 * again at once to the same target at the standard tier, as OpenAI advises; its cost is then the standard rates', and
 * a budget reserves it at those rates from the start. The official OpenAI SDK is the client.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import OpenAI from 'openai'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'

let mock: OpenAIMock
let tg: TestGateway
const MSG = [{ role: 'user' as const, content: 'hi' }]
const RETRY = { maxAttempts: 3, backoffBaseMs: 1, backoffMaxMs: 5 }

beforeAll(async () => {
  mock = await startOpenAIMock()
  tg = await startGateway({
    providers: {
      fa: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-flex-test-0001' },
      fb: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-flex-test-0001' },
    },
    models: {
      cheap: { targets: [{ provider: 'fa', model: 'o4-mini' }], retry: RETRY, flexFallback: true },
      patient: { targets: [{ provider: 'fb', model: 'o4-mini' }], retry: RETRY },
      // The same target, one attempt: a standard 429 is returned at once (and cools the target down).
      once: { targets: [{ provider: 'fb', model: 'o4-mini' }], retry: { maxAttempts: 1 } },
    },
    plugins: { budget: { backend: 'local', estimate: { perMessageTokens: 0 }, budgets: [{ name: 'day', scope: 'global', period: 'day', amountUsd: 1 }] } },
    chains: { default: ['request-id', 'auth', 'budget', 'cost-meter'] },
  })
})
afterAll(async () => {
  await tg?.close()
  await mock?.close()
})
beforeEach(() => { mock.reset() })

const client = (): OpenAI => new OpenAI({ apiKey: ADMIN_KEY, baseURL: `${tg.url}/v1`, maxRetries: 0 })

async function target(provider: string, model: string): Promise<{ failures: number; coolingForMs: number }> {
  const r = await fetch(`${tg.adminUrl}/api/v1/mcp/targets/${provider}/${model}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
  expect(r.status).toBe(200)
  return await r.json() as { failures: number; coolingForMs: number }
}

describe('flex capacity refusals', () => {
  it('flexFallback: sent again at once at the standard tier; the answer says default; no failure, no cool-down', async () => {
    mock.fault = 'status:429,retryAfter:30,times:1'
    const { data, response } = await client().chat.completions.create({ model: 'cheap', messages: MSG, service_tier: 'flex', max_tokens: 12 }).withResponse()
    expect(data.choices[0]?.message.content).toMatch(/^tok0/)
    expect(data.service_tier).toBe('default')
    expect(response.headers.get('x-mcp-attempts')).toBe('2')
    expect(response.headers.get('x-mcp-fallback-reason')).toBe('flex_unavailable')
    expect(mock.requests.map((r) => (r.body as { service_tier?: string }).service_tier)).toEqual(['flex', 'default'])
    expect(await target('fa', 'o4-mini')).toMatchObject({ failures: 0, coolingForMs: 0 })
  })

  it('without flexFallback: retried as flex after a backoff, still not a failure of the target nor a cool-down of its standard traffic', async () => {
    mock.fault = 'status:429,retryAfter:30,times:1'
    const { data, response } = await client().chat.completions.create({ model: 'patient', messages: MSG, service_tier: 'flex', max_tokens: 12 }).withResponse()
    expect(data.service_tier).toBe('flex')
    expect(response.headers.get('x-mcp-attempts')).toBe('2')
    expect(mock.requests.map((r) => (r.body as { service_tier?: string }).service_tier)).toEqual(['flex', 'flex'])
    expect(await target('fb', 'o4-mini')).toMatchObject({ failures: 0, coolingForMs: 0 })
    // A standard request's 429 still cools the target down (the router's behaviour is otherwise unchanged).
    mock.reset()
    mock.fault = 'status:429,retryAfter:30'
    const e = await client().chat.completions.create({ model: 'once', messages: MSG, max_tokens: 12 }).then(() => undefined, (x: unknown) => x)
    expect(e).toBeInstanceOf(OpenAI.RateLimitError)
    expect((await target('fb', 'o4-mini')).coolingForMs).toBeGreaterThan(0)
    mock.fault = null
  })

  it('insufficient_quota on a flex request is not a capacity refusal: not sent again', async () => {
    mock.fault = 'code:insufficient_quota'
    const e = await client().chat.completions.create({ model: 'cheap', messages: MSG, service_tier: 'flex', max_tokens: 12 }).then(() => undefined, (x: unknown) => x)
    expect(e).toBeInstanceOf(OpenAI.RateLimitError)
    expect(mock.requests).toHaveLength(1)
    mock.fault = null
  })
})

describe('a budget reserves a flex request that may fall back at the standard rates', () => {
  // o4-mini: standard 1.10 / 4.40, flex 0.55 / 2.20 USD per million. "hi" (1 prompt token) with max_tokens 12:
  // standard 1,100 + 52,800 = 53,900 nano-USD, flex 550 + 26,400 = 26,950.
  let small: TestGateway
  beforeAll(async () => {
    small = await startGateway({
      providers: { fa: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-flex-test-0001' } },
      models: {
        cheap: { targets: [{ provider: 'fa', model: 'o4-mini' }], retry: RETRY, flexFallback: true },
        patient: { targets: [{ provider: 'fa', model: 'o4-mini' }], retry: RETRY },
      },
      // Its own budget name: the in-process store is the process's, shared with the gateway above.
      plugins: { budget: { backend: 'local', estimate: { perMessageTokens: 0 }, budgets: [{ name: 'small-day', scope: 'global', period: 'day', amountUsd: 40_000 / 1e9 }] } },
      chains: { default: ['request-id', 'auth', 'budget', 'cost-meter'] },
    })
  })
  afterAll(async () => { await small?.close() })

  it('40,000 nano-USD covers a flex request (26,950) but not one that may fall back to the standard tier (53,900)', async () => {
    const c = new OpenAI({ apiKey: ADMIN_KEY, baseURL: `${small.url}/v1`, maxRetries: 0 })
    const refused = await c.chat.completions.create({ model: 'cheap', messages: MSG, service_tier: 'flex', max_tokens: 12 }).then(() => undefined, (x: unknown) => x)
    expect(refused).toBeInstanceOf(OpenAI.APIError)
    expect((refused as InstanceType<typeof OpenAI.APIError>).status).toBe(402)
    expect(mock.requests).toHaveLength(0)
    const ok = await c.chat.completions.create({ model: 'patient', messages: MSG, service_tier: 'flex', max_tokens: 12 })
    expect(ok.service_tier).toBe('flex')
    expect(mock.requests).toHaveLength(1)
  })
})
