/**
 * `x-should-retry`, the header the official OpenAI and Anthropic SDKs obey over their own retry rules (they retry
 * 408, 409, 429 and 5xx twice by default):
 *   - a provider's own hint is passed on, and the router obeys it (false: the target is not tried again; true: a
 *     failure it would not retry is retried);
 *   - OpenAI's insufficient_quota (a 429 no retry gets past) and any answer whose Retry-After is longer than the SDKs
 *     wait out (60 s) get `x-should-retry: false`, so the SDKs neither send the request again at once nor sleep an hour;
 *   - an ordinary 429 with a short Retry-After gets no hint: the SDKs retry it as before.
 * Counted at the mocks: how many times the request reached the provider.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import OpenAI from 'openai'
import Anthropic from '@anthropic-ai/sdk'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { startAnthropicMock, type AnthropicMock } from '../helpers/anthropic-mock.ts'

let oa: OpenAIMock
let ob: OpenAIMock
let an: AnthropicMock
let tg: TestGateway

const MSG = [{ role: 'user' as const, content: 'hello' }]

beforeAll(async () => {
  oa = await startOpenAIMock()
  ob = await startOpenAIMock()
  an = await startAnthropicMock()
  tg = await startGateway({
    providers: {
      oa: { type: 'openai', baseUrl: oa.url, apiKey: 'sk-retry-hint-a-0001', models: ['gpt-4o'] },
      ob: { type: 'openai', baseUrl: ob.url, apiKey: 'sk-retry-hint-b-0001', models: ['gpt-4o'] },
      claude: { type: 'anthropic', baseUrl: an.url, apiKey: 'sk-ant-retry-hint-0001' },
      // The same mock under other names: each alias below has targets of its own, so one test's failures (breaker,
      // ejection, cooling) do not decide another's.
      ...Object.fromEntries(['q1', 'q2', 'q3', 'q4'].map((n) => [n, { type: 'openai', baseUrl: oa.url, apiKey: 'sk-retry-hint-a-0001', models: ['gpt-4o'] }])),
    },
    models: {
      // One target, three attempts: the router's own backoff-and-retry of the same target.
      solo: { targets: [{ provider: 'q1', model: 'gpt-4o' }], retry: { maxAttempts: 3, backoffBaseMs: 1, backoffMaxMs: 5 } },
      solo2: { targets: [{ provider: 'q2', model: 'gpt-4o' }], retry: { maxAttempts: 3, backoffBaseMs: 1, backoffMaxMs: 5 } },
      solo3: { targets: [{ provider: 'q3', model: 'gpt-4o' }], retry: { maxAttempts: 3, backoffBaseMs: 1, backoffMaxMs: 5 } },
      // Two targets: a failure on the first falls back to the second.
      pair: { targets: [{ provider: 'q4', model: 'gpt-4o' }, { provider: 'ob', model: 'gpt-4o' }], retry: { maxAttempts: 3, backoffBaseMs: 1, backoffMaxMs: 5 } },
    },
  })
})
afterAll(async () => {
  await tg?.close()
  await oa?.close()
  await ob?.close()
  await an?.close()
})
beforeEach(() => { oa.reset(); ob.reset(); an.reset() })

/** The SDKs as applications use them: two retries (their default), no long waits in a test. */
const openai = (): OpenAI => new OpenAI({ apiKey: ADMIN_KEY, baseURL: `${tg.url}/v1`, maxRetries: 2, timeout: 10_000 })
const anthropic = (): Anthropic => new Anthropic({ apiKey: ADMIN_KEY, baseURL: tg.url, maxRetries: 2, timeout: 10_000 })

async function openaiError(p: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  const e = await p.then(() => undefined, (x: unknown) => x)
  expect(e).toBeInstanceOf(OpenAI.APIError)
  return e as InstanceType<typeof OpenAI.APIError>
}

describe('x-should-retry through the gateway, official SDKs as clients', () => {
  it("OpenAI's insufficient_quota: one request upstream, x-should-retry false, the SDK does not send it again", async () => {
    oa.fault = 'code:insufficient_quota'
    const e = await openaiError(openai().chat.completions.create({ model: 'oa/gpt-4o', messages: MSG }))
    expect(e.status).toBe(429)
    expect(e.code).toBe('insufficient_quota')
    expect(e.headers?.get('x-should-retry')).toBe('false')
    expect(oa.requests).toHaveLength(1)
  })

  it('an ordinary 429 with a short Retry-After gets no hint: the SDK retries it, and the retry succeeds', async () => {
    oa.fault = 'status:429,retryAfter:0,times:2'
    const r = await openai().chat.completions.create({ model: 'oa/gpt-4o', messages: MSG })
    expect(r.choices[0]?.message.content).toMatch(/^tok0/)
    expect(oa.requests).toHaveLength(3)
  })

  it('a Retry-After past 60 s: x-should-retry false, so neither SDK retries early or sleeps for an hour', async () => {
    oa.fault = 'status:429,retryAfter:3600'
    const e = await openaiError(openai().chat.completions.create({ model: 'oa/gpt-4o', messages: MSG }))
    expect(e.status).toBe(429)
    expect(e.headers?.get('retry-after')).toBe('3600')
    expect(e.headers?.get('x-should-retry')).toBe('false')
    expect(oa.requests).toHaveLength(1)

    // The Anthropic SDK waits out any Retry-After it is given: without the hint this call would sleep for an hour.
    an.fault = 'status:429,retryAfter:3600'
    const ae = await anthropic().messages.create({ model: 'claude/claude-sonnet-4-5', max_tokens: 64, messages: MSG }).then(() => undefined, (x: unknown) => x)
    expect(ae).toBeInstanceOf(Anthropic.RateLimitError)
    expect((ae as InstanceType<typeof Anthropic.APIError>).headers?.get('x-should-retry')).toBe('false')
    expect(an.requests).toHaveLength(1)
  })

  it("Anthropic's own x-should-retry is passed on (as sent and translated) and obeyed by the SDKs", async () => {
    an.fault = 'status:500,shouldRetry:false'
    const ae = await anthropic().messages.create({ model: 'claude/claude-sonnet-4-5', max_tokens: 64, messages: MSG }).then(() => undefined, (x: unknown) => x)
    expect(ae).toBeInstanceOf(Anthropic.InternalServerError)
    expect((ae as InstanceType<typeof Anthropic.APIError>).headers?.get('x-should-retry')).toBe('false')
    expect(an.requests).toHaveLength(1)

    // An OpenAI client of the same provider (translated): the same hint, the same single request.
    an.reset()
    an.fault = 'status:529,shouldRetry:false'
    const e = await openaiError(openai().chat.completions.create({ model: 'claude/claude-sonnet-4-5', messages: MSG }))
    expect(e.status).toBe(529)
    expect(e.headers?.get('x-should-retry')).toBe('false')
    expect(an.requests).toHaveLength(1)

    // true on a status the SDKs would not retry (400): they retry it.
    an.reset()
    an.fault = 'status:400,shouldRetry:true,times:1'
    const ok = await anthropic().messages.create({ model: 'claude/claude-sonnet-4-5', max_tokens: 64, messages: MSG })
    expect(ok.content[0]).toMatchObject({ type: 'text' })
    expect(an.requests).toHaveLength(2)
  })
})

/** A chat to the gateway with fetch: the status and headers as they come, no SDK retries. */
const chat = (model: string): Promise<Response> => fetch(`${tg.url}/v1/chat/completions`, {
  method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
  body: JSON.stringify({ model, messages: MSG }),
})

describe('the router obeys x-should-retry', () => {
  it('false: an alias does not retry the same target after a backoff (one request, not three)', async () => {
    oa.fault = 'code:insufficient_quota'
    const res = await chat('solo')
    expect(res.status).toBe(429)
    expect(res.headers.get('x-should-retry')).toBe('false')
    expect(res.headers.get('x-mcp-attempts')).toBe('1')
    expect(oa.requests).toHaveLength(1)

    // Without the hint, the same alias retries the same target (the router's behaviour is otherwise unchanged).
    oa.reset()
    oa.fault = 'status:503,times:2'
    const ok = await chat('solo2')
    expect(ok.status).toBe(200)
    expect(ok.headers.get('x-mcp-attempts')).toBe('3')
    expect(oa.requests).toHaveLength(3)
  })

  it('false: another target still takes the request (fallback), each provider asked once', async () => {
    oa.fault = 'code:insufficient_quota'
    const r = await openai().chat.completions.create({ model: 'pair', messages: MSG }).withResponse()
    expect(r.data.choices[0]?.message.content).toMatch(/^tok0/)
    expect(r.response.headers.get('x-mcp-provider')).toBe('ob')
    expect(r.response.headers.get('x-mcp-attempts')).toBe('2')
    expect(oa.requests).toHaveLength(1)
    expect(ob.requests).toHaveLength(1)
  })

  it('true: a failure the router would not retry (409) is retried', async () => {
    oa.fault = 'status:409,shouldRetry:true,times:1'
    const res = await chat('solo3')
    expect(res.status).toBe(200)
    expect(res.headers.get('x-mcp-attempts')).toBe('2')
    expect(oa.requests).toHaveLength(2)
  })
})

describe("the gateway's own refusals", () => {
  let blocked: TestGateway
  beforeAll(async () => {
    blocked = await startGateway({
      server: { limits: { exempt: [], authFailures: 2, authFailureWindowMs: 60_000, authFailureCooldownMs: 300_000 } },
      providers: { oa: { type: 'openai', baseUrl: oa.url, apiKey: 'sk-retry-hint-a-0001', models: ['gpt-4o'] } },
    })
  })
  afterAll(async () => { await blocked?.close() })

  it('an address blocked for 300 s after failed authentications: 429 with x-should-retry false, one request from the SDK', async () => {
    const bad = new OpenAI({ apiKey: 'not-a-key', baseURL: `${blocked.url}/v1`, maxRetries: 0 })
    for (let i = 0; i < 2; i++) expect((await openaiError(bad.models.list())).status).toBe(401)
    let seen = 0
    const counting = new OpenAI({
      apiKey: ADMIN_KEY, baseURL: `${blocked.url}/v1`, maxRetries: 2,
      fetch: (url, init) => { seen++; return fetch(url, init) },
    })
    const e = await openaiError(counting.chat.completions.create({ model: 'oa/gpt-4o', messages: MSG }))
    expect(e.status).toBe(429)
    expect(e.code).toBe('MCP_ERR_CLIENT_AUTH_BLOCKED')
    expect(Number(e.headers?.get('retry-after'))).toBeGreaterThan(60)
    expect(e.headers?.get('x-should-retry')).toBe('false')
    expect(seen).toBe(1)
    expect(oa.requests).toHaveLength(0)
  })
})
