/**
 * budget plugin, in-process store, through the real server against the OpenAI mock: the race (100
 * concurrent requests against a budget that affords 10), client aborts leave no reservation, hard vs
 * soft, token and request quotas, the month boundary (injectable clock), the 402 body, headers and
 * the admin listing, stream cut-off with an explicit error event, and the budget-aware downgrade.
 *
 * Prices: mock/gpt-4o-mini is priced by the catalogue at $0.15 / $0.60 per million tokens, i.e. 150
 * and 600 nano-USD per input and output token. A request "hi" with max_tokens 12 uses 1 prompt token
 * (the mock counts ceil(chars / 4)) and 12 completion tokens: 150 + 7200 = 7350 nano-USD. With
 * `perMessageTokens: 0` the plugin's worst case is exactly that.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { createBudgetPlugin, type BudgetReportRow } from '../../plugins/budget/index.ts'
import { adminGet, chat, metricValue, startTestGateway, until } from './helpers.ts'

const ONE = 7350 // nano-USD of one request (see above)
const usd = (nano: number): number => nano / 1e9
let prefixN = 0
const prefix = (): string => `test:budget:${process.pid}:${Date.now()}:${++prefixN}:`

function settings(mock: OpenAIMock, budget: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    providers: {
      mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-budget-test' },
      long: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-budget-test', headers: { 'x-mock-tokens': '400' } },
    },
    plugins: { budget: { backend: 'local', keyPrefix: prefix(), estimate: { perMessageTokens: 0 }, ...budget } },
    chains: { default: ['test-principal', 'budget'] },
    ...extra,
  }
}

async function rows(tg: TestGateway): Promise<BudgetReportRow[]> {
  return (await adminGet<{ data: BudgetReportRow[] }>(tg.adminUrl, '/api/v1/mcp/budgets')).data
}

async function settled(tg: TestGateway): Promise<void> {
  await until(async () => (await metricValue(tg.adminUrl, 'mcp_budget_reservations_open')) === 0 && (await metricValue(tg.adminUrl, 'mcp_requests_in_flight')) === 0)
}

describe('budget: exact under concurrency (in-process store)', () => {
  let mock: OpenAIMock
  let tg: TestGateway | undefined
  beforeAll(async () => { mock = await startOpenAIMock() })
  afterAll(async () => { await mock.close() })
  afterEach(async () => { await tg?.close(); tg = undefined; mock.reset() })

  it('100 concurrent requests against a budget that affords 10: 10 admitted, spend within the budget, nothing reserved after', async () => {
    const limit = 10 * ONE + ONE / 2
    tg = await startTestGateway(settings(mock, { budgets: [{ name: 'team-day', scope: 'team', period: 'day', amountUsd: usd(limit) }] }))
    const res = await Promise.all(Array.from({ length: 100 }, () => chat(tg!.url, { team: 'ml', maxTokens: 12 })))
    const codes = res.map((r) => r.status)
    await Promise.all(res.map((r) => r.arrayBuffer()))
    const admitted = codes.filter((c) => c === 200).length
    expect(admitted).toBe(10)
    expect(codes.filter((c) => c === 402).length).toBe(90)
    expect(mock.requests.length).toBe(10)
    await settled(tg)
    const [row] = await rows(tg)
    expect(row).toMatchObject({ budget: 'team-day', scope: 'team', id: 'ml', reserved: { usd: 0, tokens: 0, requests: 0 }, spent: { requests: 10 } })
    expect(row!.spent.usd).toBeCloseTo(usd(10 * ONE), 12)
    expect(row!.spent.usd).toBeLessThanOrEqual(usd(limit))
  })

  it('requests that apply different sets of budgets, interleaved, each count on exactly their own counters', async () => {
    tg = await startTestGateway(settings(mock, {
      budgets: [
        { name: 'per-key', scope: 'key', period: 'day', requests: 2 },
        { name: 'team-x', scope: 'team', id: 'x', period: 'day', requests: 3 },
      ],
    }))
    // k1 in team x (both budgets), k2 without a team (per-key only), k3 in team x: the third k1 request and the
    // fourth team-x request are refused, whatever the order the sets of counters come in.
    const plan: Array<{ key: string; team?: string; want: number }> = [
      { key: 'k1', team: 'x', want: 200 }, { key: 'k2', want: 200 }, { key: 'k1', team: 'x', want: 200 },
      { key: 'k2', want: 200 }, { key: 'k3', team: 'x', want: 200 }, { key: 'k1', team: 'x', want: 402 },
      { key: 'k2', want: 402 }, { key: 'k3', team: 'x', want: 402 },
    ]
    const got: number[] = []
    for (const p of plan) {
      const r = await chat(tg.url, { key: p.key, ...(p.team ? { team: p.team } : {}) })
      await r.arrayBuffer()
      got.push(r.status)
      if (r.status === 402) expect(r.headers.get('x-mcp-budget')).toBe(p.key === 'k3' ? 'team-x' : 'per-key')
    }
    expect(got).toEqual(plan.map((p) => p.want))
    await settled(tg)
    const spent = Object.fromEntries((await rows(tg)).map((r) => [`${r.budget}/${r.id}`, r.spent.requests]))
    expect(spent).toEqual({ 'per-key/k1': 2, 'per-key/k2': 2, 'per-key/k3': 1, 'team-x/x': 3 })
  })

  it('a refusal is 402 budget_exceeded before the provider is called, with Retry-After to the period end', async () => {
    tg = await startTestGateway(settings(mock, { budgets: [{ name: 'tiny', scope: 'key', period: 'day', amountUsd: usd(ONE - 1) }] }))
    const r = await chat(tg.url, { maxTokens: 12 })
    expect(r.status).toBe(402)
    expect(r.headers.get('x-mcp-error-code')).toBe('MCP_ERR_BUDGET_EXCEEDED')
    expect(r.headers.get('x-mcp-budget')).toBe('tiny')
    const retry = Number(r.headers.get('retry-after'))
    expect(retry).toBeGreaterThan(0)
    expect(retry).toBeLessThanOrEqual(86_400)
    const body = await r.json() as { error: { code: string; type: string; message: string } }
    expect(body.error.code).toBe('budget_exceeded')
    expect(body.error.type).toBe('insufficient_quota')
    expect(body.error.message).toMatch(/Budget 'tiny' of key 'k1' is exhausted \(usd\) for this day/)
    expect(mock.requests.length).toBe(0)
  })

  it('client aborts (mid-stream and before the answer) leave no reservation open', async () => {
    tg = await startTestGateway(settings(mock, { budgets: [{ name: 'k', scope: 'key', period: 'day', amountUsd: 1 }] }))
    // Mid-stream: the stream is cut by the client after its first chunk.
    mock.fault = 'chunkDelayMs:80'
    const streams = await Promise.all(Array.from({ length: 5 }, async () => {
      const ac = new AbortController()
      const r = await chat(tg!.url, { stream: true, signal: ac.signal })
      expect(r.status).toBe(200)
      await r.body!.getReader().read()
      ac.abort()
    }))
    expect(streams).toHaveLength(5)
    // Before the answer: the upstream is slow to answer and the client gives up.
    mock.fault = 'delayMs:2000'
    await Promise.all(Array.from({ length: 5 }, async () => {
      const ac = new AbortController()
      const p = chat(tg!.url, { signal: ac.signal }).catch((e: unknown) => e)
      await new Promise((r) => setTimeout(r, 150))
      ac.abort()
      await p
    }))
    await settled(tg)
    const [row] = await rows(tg)
    expect(row!.reserved).toEqual({ usd: 0, tokens: 0, requests: 0 })
    // The cut streams are charged what they delivered (estimated), the unanswered ones nothing.
    expect(row!.spent.requests).toBe(10)
    expect(row!.spent.usd).toBeGreaterThan(0)
    expect(row!.spent.usd).toBeLessThan(usd(5 * 1_000_000))
  })

  it('a client that reads a stream and leaves before its usage event is charged the output it received, not only its prompt', async () => {
    tg = await startTestGateway(settings(mock, { budgets: [{ name: 'tok', scope: 'key', period: 'day', tokens: 100_000 }] }))
    mock.fault = 'chunkDelayMs:5'
    const ac = new AbortController()
    // 400 tokens, one event each (the 'long' provider): the client takes 100 events and leaves.
    const r = await chat(tg.url, { model: 'long/gpt-4o-mini', stream: true, maxTokens: 1000, signal: ac.signal })
    expect(r.status).toBe(200)
    const reader = r.body!.getReader()
    let text = ''
    while ((text.match(/"content":" ?tok/g) ?? []).length < 100) {
      const { value, done } = await reader.read()
      if (done) throw new Error('the stream ended early')
      text += new TextDecoder().decode(value)
    }
    ac.abort()
    await settled(tg)
    const [row] = await rows(tg)
    expect(row!.reserved.tokens).toBe(0)
    // Before: 1 (the prompt estimate), whatever the client had read.
    expect(row!.spent.tokens).toBeGreaterThanOrEqual(100)
    expect(row!.spent.tokens).toBeLessThan(1000)
  })

  it('an upstream error releases the reservation in full', async () => {
    tg = await startTestGateway(settings(mock, { budgets: [{ name: 'k', scope: 'key', period: 'day', amountUsd: 1 }] }))
    mock.fault = '400'
    const r = await chat(tg.url, { maxTokens: 12 })
    expect(r.status).toBe(400)
    await settled(tg)
    const [row] = await rows(tg)
    expect(row!.reserved.usd).toBe(0)
    expect(row!.spent.usd).toBe(0)
  })
})

describe('budget: modes, quotas, periods, headers', () => {
  let mock: OpenAIMock
  let tg: TestGateway | undefined
  beforeAll(async () => { mock = await startOpenAIMock() })
  afterAll(async () => { await mock.close() })
  afterEach(async () => { await tg?.close(); tg = undefined; mock.reset() })

  it('hard refuses past the limit, soft admits and counts past it', async () => {
    tg = await startTestGateway(settings(mock, {
      budgets: [
        { name: 'hard-req', scope: 'key', id: 'h', period: 'day', requests: 2, mode: 'hard' },
        { name: 'soft-req', scope: 'key', id: 's', period: 'day', requests: 2, mode: 'soft' },
      ],
    }))
    const hard = []
    const soft = []
    for (let i = 0; i < 3; i++) {
      hard.push((await chat(tg.url, { key: 'h', maxTokens: 12 })).status)
      soft.push((await chat(tg.url, { key: 's', maxTokens: 12 })).status)
    }
    expect(hard).toEqual([200, 200, 402])
    expect(soft).toEqual([200, 200, 200])
    await settled(tg)
    const byName = new Map((await rows(tg)).map((r) => [r.budget, r]))
    expect(byName.get('hard-req')).toMatchObject({ spent: { requests: 2 }, remaining: { requests: 0 }, percent: 100 })
    expect(byName.get('soft-req')).toMatchObject({ spent: { requests: 3 }, remaining: { requests: 0 }, percent: 150 })
  })

  it('a client reusing its x-request-id is charged every time (reservations are not keyed by the request id)', async () => {
    tg = await startTestGateway(settings(mock, { budgets: [{ name: 'req', scope: 'key', id: 'r', period: 'day', requests: 2 }] }, {
      chains: { default: ['request-id', 'test-principal', 'budget'] },
    }))
    const codes: number[] = []
    for (let i = 0; i < 3; i++) {
      const r = await chat(tg.url, { key: 'r', maxTokens: 12, headers: { 'x-request-id': 'same-id-every-time' } })
      expect(r.headers.get('x-request-id')).toBe('same-id-every-time')
      codes.push(r.status)
      await r.arrayBuffer()
      await settled(tg)
    }
    expect(codes).toEqual([200, 200, 402])
    const [row] = await rows(tg)
    expect(row).toMatchObject({ spent: { requests: 2 }, reserved: { requests: 0 } })
  })

  it('a token quota reserves prompt + max output and counts the actual usage', async () => {
    tg = await startTestGateway(settings(mock, { budgets: [{ name: 'tok', scope: 'key', period: 'week', tokens: 30 }] }))
    const codes: number[] = []
    for (let i = 0; i < 3; i++) codes.push((await chat(tg.url, { maxTokens: 12 })).status)
    expect(codes).toEqual([200, 200, 402]) // 13 + 13 = 26; 26 + 13 > 30
    // A smaller request still fits the rest.
    const small = await chat(tg.url, { maxTokens: 3 })
    expect(small.status).toBe(200)
    expect(small.headers.get('x-mcp-budget-remaining-tokens')).toBe('0')
    await settled(tg)
    const [row] = await rows(tg)
    expect(row).toMatchObject({ period: 'week', spent: { tokens: 30, requests: 3 }, reserved: { tokens: 0 } })
    expect(new Date(row!.periodStart).getUTCDay()).toBe(1) // weeks start on Monday
  })

  it('headers: x-mcp-budget-remaining-usd is the tightest remaining after this request\'s reservation', async () => {
    tg = await startTestGateway(settings(mock, {
      budgets: [
        { name: 'wide', scope: 'global', period: 'month', amountUsd: 1 },
        { name: 'narrow', scope: 'key', period: 'day', amountUsd: usd(3 * ONE), requests: 100 },
      ],
    }))
    const r = await chat(tg.url, { maxTokens: 12 })
    expect(r.status).toBe(200)
    expect(r.headers.get('x-mcp-budget-remaining-usd')).toBe(usd(2 * ONE).toFixed(9))
    expect(r.headers.get('x-mcp-budget-remaining-requests')).toBe('99')
  })

  it('a model with a long-context tier: a prompt over its threshold is reserved and charged at the tier\'s prices', async () => {
    // gpt-4o-mini with a tier from 10 prompt tokens at twice the price: 300 and 1200 nano-USD per input and output token.
    const prices = [{ provider: 'mock', model: 'gpt-4o-mini', input: 0.15, output: 0.6, longContext: { threshold: 10, input: 0.3, output: 1.2 } }]
    tg = await startTestGateway(settings(mock, { prices, budgets: [{ name: 'g', scope: 'global', period: 'day', amountUsd: 1 }] }))
    const short = await chat(tg.url, { maxTokens: 12 })
    expect(short.headers.get('x-mcp-budget-remaining-usd')).toBe(usd(1e9 - ONE).toFixed(9))
    await short.arrayBuffer()
    await settled(tg)
    // 80 characters: 20 prompt tokens, over the threshold: 20 × 300 + 12 × 1200 = 20,400 nano-USD, reserved and spent.
    const long = await chat(tg.url, { maxTokens: 12, content: 'x'.repeat(80) })
    expect(long.status).toBe(200)
    expect(long.headers.get('x-mcp-budget-remaining-usd')).toBe(usd(1e9 - ONE - 20_400).toFixed(9))
    await long.arrayBuffer()
    await settled(tg)
    const [row] = await rows(tg)
    expect(row!.spent.usd).toBeCloseTo(usd(ONE + 20_400), 12)
  })

  for (const chain of [['test-principal', 'budget'], ['test-principal', 'cost-meter', 'budget']]) {
    it(`a dated price change (100x) within the price caches' minute: a request after it is reserved at the new price, one in flight across it settled at the old (${chain.join(', ')})`, async () => {
      // Regression: the worst prices were memoised for 60 s and settlement priced at Date.now(), so a request after the
      // change was reserved at the old price and both settled at the new one: 24 times the hard limit was spent.
      const eff = Math.ceil((Date.now() + 1500) / 1000) * 1000
      const prices = [{ provider: 'openai', model: 'gpt-4o-mini', input: 15, output: 60, effectiveFrom: new Date(eff).toISOString() }]
      const base = settings(mock, { prices, budgets: [{ name: 'g', scope: 'global', period: 'day', amountUsd: usd(4 * ONE) }] }, { chains: { default: chain } })
      // With the cost meter in the chain its prices apply (to both).
      ;(base['plugins'] as Record<string, unknown>)['cost-meter'] = { pricing: { models: prices } }
      ;(base['providers'] as Record<string, unknown>)['slow'] = { type: 'openai', baseUrl: mock.url, apiKey: 'sk-budget-test', headers: { 'x-mock-chunk-delay-ms': '250' } }
      tg = await startTestGateway(base)
      // Arrives before the change, ends after it (12 events, 250 ms apart): priced as it arrived.
      const a = await chat(tg.url, { model: 'slow/gpt-4o-mini', maxTokens: 12, stream: true })
      expect(a.status).toBe(200)
      expect(Date.now()).toBeLessThan(eff)
      await a.text()
      expect(Date.now()).toBeGreaterThanOrEqual(eff)
      await settled(tg)
      expect((await rows(tg))[0]!.spent.usd).toBeCloseTo(usd(ONE), 12)
      // After the change its worst case is 100 x ONE, more than what remains: refused, nothing sent.
      const sent = mock.requests.length
      const b = await chat(tg.url, { maxTokens: 12 })
      expect(b.status).toBe(402)
      await b.arrayBuffer()
      expect(mock.requests.length).toBe(sent)
      await settled(tg)
      expect((await rows(tg))[0]!.spent.usd).toBeCloseTo(usd(ONE), 12)
    })
  }

  it('a key record\'s own budgets (daily_usd, monthly_usd) are enforced as hard amount budgets of that key', async () => {
    let now = Date.parse('2026-01-30T23:59:50Z')
    const plugin = createBudgetPlugin({ now: () => now })
    // No configured budget at all: the key records' budgets alone.
    tg = await startTestGateway(settings(mock, {}), { plugins: [plugin] })
    const daily = JSON.stringify({ daily_usd: usd(2 * ONE + ONE / 2), monthly_usd: usd(3 * ONE + ONE / 2) })
    const call = async (key: string, budgets?: string): Promise<Response> => {
      const r = await chat(tg!.url, { key, maxTokens: 12, ...(budgets !== undefined ? { headers: { 'x-test-budgets': budgets } } : {}) })
      await r.arrayBuffer()
      await settled(tg!)
      return r
    }
    const day1 = [(await call('kb', daily)).status, (await call('kb', daily)).status]
    const refused = await call('kb', daily)
    expect([...day1, refused.status]).toEqual([200, 200, 402])
    expect(refused.headers.get('x-mcp-budget')).toBe('principal.daily_usd')
    // Another key (its own counter), and a key without budgets, are not limited by it.
    expect((await call('other', daily)).status).toBe(200)
    expect([(await call('free')).status, (await call('free')).status, (await call('free')).status]).toEqual([200, 200, 200])
    // The next day: the daily counter is new, the month has room for one more.
    now = Date.parse('2026-01-31T00:00:05Z')
    expect((await call('kb', daily)).status).toBe(200)
    const monthly = await call('kb', daily)
    expect(monthly.status).toBe(402)
    expect(monthly.headers.get('x-mcp-budget')).toBe('principal.monthly_usd')
    // A raised budget (the key record changed) applies at once.
    expect((await call('kb', JSON.stringify({ daily_usd: 1, monthly_usd: 1 }))).status).toBe(200)
  })

  it('calendar months: the counter of a new month starts empty (injectable clock)', async () => {
    let now = Date.parse('2026-01-31T23:59:50Z')
    const plugin = createBudgetPlugin({ now: () => now })
    tg = await startTestGateway(settings(mock, { budgets: [{ name: 'monthly', scope: 'key', period: 'month', requests: 2 }] }), { plugins: [plugin] })
    const jan = [(await chat(tg.url)).status, (await chat(tg.url)).status, (await chat(tg.url)).status]
    expect(jan).toEqual([200, 200, 402])
    const refused = await chat(tg.url)
    expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(10)
    now = Date.parse('2026-02-01T00:00:05Z')
    expect((await chat(tg.url)).status).toBe(200)
    await settled(tg)
    const [row] = await rows(tg)
    expect(row).toMatchObject({ periodStart: '2026-02-01T00:00:00.000Z', periodEnd: '2026-03-01T00:00:00.000Z', spent: { requests: 1 } })
  })

  it('a stream whose client did not ask for usage is settled at its exact usage (the plugin asks upstream for it)', async () => {
    tg = await startTestGateway(settings(mock, { budgets: [{ name: 's', scope: 'key', period: 'day', amountUsd: 1 }] }))
    const r = await chat(tg.url, { stream: true, maxTokens: 12 })
    const text = await r.text()
    expect(text).not.toContain('"usage":{')
    await settled(tg)
    const [row] = await rows(tg)
    expect(row!.spent).toEqual({ usd: usd(ONE), tokens: 13, requests: 1 })
  })

  it('embeddings count against token quotas (prompt tokens only)', async () => {
    tg = await startTestGateway(settings(mock, { budgets: [{ name: 'emb', scope: 'key', period: 'day', tokens: 1000, amountUsd: 1 }] }))
    const r = await fetch(`${tg.url}/v1/embeddings`, { method: 'POST', headers: { authorization: 'Bearer x', 'content-type': 'application/json' }, body: JSON.stringify({ model: 'mock/text-embedding-3-small', input: 'abcdefgh' }) })
    expect(r.status).toBe(200)
    const body = await r.json() as { usage: { prompt_tokens: number } }
    await settled(tg)
    const [row] = await rows(tg)
    expect(row!.spent.tokens).toBe(body.usage.prompt_tokens)
    expect(Number.isFinite(row!.spent.usd)).toBe(true)
  })

  it('shadow mode counts would-be refusals and admits', async () => {
    tg = await startTestGateway(settings(mock, { shadow: true, budgets: [{ name: 'sh', scope: 'key', period: 'day', requests: 1 }] }))
    expect([(await chat(tg.url)).status, (await chat(tg.url)).status]).toEqual([200, 200])
    expect(await metricValue(tg.adminUrl, 'mcp_budget_refused_total{budget="sh",shadow="true"}')).toBe(1)
  })

  it('budgets of another team, key or deployment do not apply', async () => {
    tg = await startTestGateway(settings(mock, { budgets: [{ name: 'ml-only', scope: 'team', id: 'ml', period: 'day', requests: 1 }, { name: 'dep', scope: 'deployment', period: 'day', requests: 0 }] }))
    expect((await chat(tg.url, { team: 'ml' })).status).toBe(200)
    expect((await chat(tg.url, { team: 'ml' })).status).toBe(402)
    expect((await chat(tg.url, { team: 'web' })).status).toBe(200)
    expect((await chat(tg.url)).status).toBe(200)
  })
})

describe('budget: stream cut-off', () => {
  let mock: OpenAIMock
  let tg: TestGateway | undefined
  beforeAll(async () => { mock = await startOpenAIMock() })
  afterAll(async () => { await mock.close() })
  afterEach(async () => { await tg?.close(); tg = undefined; mock.reset() })

  it('an uncapped stream that crosses a hard budget ends with an explicit budget_exceeded event, no [DONE]', async () => {
    // Prompt 1 token (150) + 40 output tokens (24 000) affordable; reservations grow 10 tokens at a time.
    const limit = 150 + 40 * 600
    tg = await startTestGateway(settings(mock, {
      capMaxTokens: false, extendTokens: 10, estimate: { perMessageTokens: 0, defaultMaxTokens: 10 },
      budgets: [{ name: 'cut', scope: 'key', period: 'day', amountUsd: usd(limit), streamCutoff: true }],
    }))
    const r = await chat(tg.url, { model: 'long/gpt-4o-mini', stream: true })
    expect(r.status).toBe(200)
    const text = await r.text()
    const events = text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6))
    const last = events[events.length - 1]!
    expect(last).not.toBe('[DONE]')
    const err = JSON.parse(last) as { error: { code: string; type: string; message: string } }
    expect(err.error.code).toBe('budget_exceeded')
    expect(err.error.message).toMatch(/Budget 'cut'/)
    const delivered = events.slice(0, -1).map((e) => (JSON.parse(e) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? '').join('')
    // Cut within ~40 estimated tokens (4 characters each), long before the 400 the mock would send.
    expect(delivered.length).toBeGreaterThan(100)
    expect(delivered.length).toBeLessThanOrEqual(40 * 4)
    expect(mock.requests[0]!.body).not.toHaveProperty('max_completion_tokens')
    await settled(tg)
    const [row] = await rows(tg)
    expect(row!.reserved.usd).toBe(0)
    // Charged the estimate of what it streamed: within the budget plus the chunk that crossed it.
    expect(row!.spent.usd).toBeGreaterThan(usd(limit * 0.8))
    expect(row!.spent.usd).toBeLessThanOrEqual(usd(limit + 10 * 600))
    expect(await metricValue(tg.adminUrl, 'mcp_budget_stream_cutoffs_total{budget="cut",shadow="false"}')).toBe(1)
    // The next stream is refused at admission.
    expect((await chat(tg.url, { model: 'long/gpt-4o-mini', stream: true })).status).toBe(402)
  })

  it('shadow mode: a stream that would have been cut runs to its end and is counted with shadow="true"', async () => {
    const limit = 150 + 40 * 600
    tg = await startTestGateway(settings(mock, {
      shadow: true, capMaxTokens: false, extendTokens: 10, estimate: { perMessageTokens: 0, defaultMaxTokens: 10 },
      budgets: [{ name: 'cut', scope: 'key', period: 'day', amountUsd: usd(limit), streamCutoff: true }],
    }))
    const r = await chat(tg.url, { model: 'long/gpt-4o-mini', stream: true })
    expect(r.status).toBe(200)
    const text = await r.text()
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true)
    expect(text).not.toContain('budget_exceeded')
    await settled(tg)
    expect(await metricValue(tg.adminUrl, 'mcp_budget_stream_cutoffs_total{budget="cut",shadow="true"}')).toBe(1)
    expect(await metricValue(tg.adminUrl, 'mcp_budget_stream_cutoffs_total{budget="cut",shadow="false"}')).toBeUndefined()
    const [row] = await rows(tg)
    expect(row!.reserved.usd).toBe(0)
  })

  it('capMaxTokens (default): a request without max_tokens is sent with max_completion_tokens = defaultMaxTokens', async () => {
    tg = await startTestGateway(settings(mock, { estimate: { defaultMaxTokens: 64 }, budgets: [{ name: 'cap', scope: 'key', period: 'day', amountUsd: 1 }] }))
    expect((await chat(tg.url)).status).toBe(200)
    expect(mock.requests[0]!.body).toMatchObject({ max_completion_tokens: 64 })
  })
})

describe('budget: downgrade', () => {
  let mock: OpenAIMock
  let tg: TestGateway | undefined
  beforeAll(async () => { mock = await startOpenAIMock() })
  afterAll(async () => { await mock.close() })
  afterEach(async () => { await tg?.close(); tg = undefined; mock.reset() })

  it('past the threshold, the alias switches to the cheaper one (x-mcp-downgraded) and the router uses it', async () => {
    tg = await startTestGateway(settings(mock, {
      downgradeRefreshMs: 0,
      budgets: [{ name: 'team-month', scope: 'team', period: 'month', requests: 4, mode: 'soft' }],
      downgrade: [{ alias: 'smart', whenBudget: 'team-month', atPercent: 50, to: 'cheap' }],
    }, {
      models: {
        smart: { targets: [{ provider: 'mock', model: 'gpt-4o' }] },
        cheap: { targets: [{ provider: 'mock', model: 'gpt-4o-mini' }] },
      },
    }))
    const seen: { model: string | null; downgraded: string | null }[] = []
    for (let i = 0; i < 4; i++) {
      const r = await chat(tg.url, { model: 'smart', team: 'ml', maxTokens: 5 })
      expect(r.status).toBe(200)
      await r.arrayBuffer()
      await settled(tg)
      seen.push({ model: r.headers.get('x-mcp-model'), downgraded: r.headers.get('x-mcp-downgraded') })
    }
    expect(seen).toEqual([
      { model: 'gpt-4o', downgraded: null },
      { model: 'gpt-4o', downgraded: null },
      { model: 'gpt-4o-mini', downgraded: 'smart->cheap' },
      { model: 'gpt-4o-mini', downgraded: 'smart->cheap' },
    ])
    expect(mock.requests.map((q) => (q.body as { model: string }).model)).toEqual(['gpt-4o', 'gpt-4o', 'gpt-4o-mini', 'gpt-4o-mini'])
    // Another team's budget is untouched: no downgrade.
    const other = await chat(tg.url, { model: 'smart', team: 'web', maxTokens: 5 })
    expect(other.headers.get('x-mcp-downgraded')).toBeNull()
    expect(await metricValue(tg.adminUrl, 'mcp_budget_downgrades_total{alias="smart",to="cheap"}')).toBe(2)
  })

  it('downgrade to <provider>/<model>', async () => {
    tg = await startTestGateway(settings(mock, {
      downgradeRefreshMs: 0,
      budgets: [{ name: 'b', scope: 'key', period: 'day', requests: 10, mode: 'soft' }],
      downgrade: [{ alias: 'smart', whenBudget: 'b', atPercent: 0, to: 'mock/gpt-4.1-nano' }],
    }, { models: { smart: { targets: [{ provider: 'mock', model: 'gpt-4o' }] } } }))
    const r = await chat(tg.url, { model: 'smart' })
    expect(r.status).toBe(200)
    expect(r.headers.get('x-mcp-downgraded')).toBe('smart->mock/gpt-4.1-nano')
    expect((mock.requests[0]!.body as { model: string }).model).toBe('gpt-4.1-nano')
  })
})

describe("budget: OpenAI's processing tiers (service_tier)", () => {
  // gpt-4o-mini at priority: 0.25 / 1.00 USD per million, 250 and 1000 nano-USD a token: "hi" with max_tokens 12
  // reserves 250 + 12,000 nano-USD, where the standard rates reserve ONE (7350).
  const PRIORITY = 250 + 12 * 1000
  let mock: OpenAIMock
  let tg: TestGateway | undefined
  beforeAll(async () => { mock = await startOpenAIMock() })
  afterAll(async () => { await mock.close() })
  afterEach(async () => { await tg?.close(); tg = undefined; mock.reset() })

  const providers = (m: OpenAIMock) => ({
    mock: { type: 'openai', baseUrl: m.url, apiKey: 'sk-budget-test' },
    // Answers that priority served it, whatever was asked (an OpenAI project whose default tier is priority).
    prio: { type: 'openai', baseUrl: m.url, apiKey: 'sk-budget-test', headers: { 'x-mock-service-tier': 'priority' } },
  })

  it('a priority request is reserved at the priority rates: refused by a budget that covers the standard ones, nothing sent', async () => {
    tg = await startTestGateway(settings(mock, { budgets: [{ name: 'day', scope: 'global', period: 'day', amountUsd: usd(10_000) }] }, { providers: providers(mock) }))
    const refused = await chat(tg.url, { maxTokens: 12, extra: { service_tier: 'priority' } })
    expect(refused.status).toBe(402)
    expect(mock.requests).toHaveLength(0)
    // The same request at the standard tier fits, and is settled at the standard rates.
    const ok = await chat(tg.url, { maxTokens: 12 })
    expect(ok.status).toBe(200)
    await ok.arrayBuffer()
    await settled(tg)
    expect((await rows(tg))[0]!.spent.usd).toBeCloseTo(usd(ONE), 12)
  })

  it('settled at the tier that served it: priority answered → priority rates; priority asked but default served → standard rates', async () => {
    tg = await startTestGateway(settings(mock, { budgets: [{ name: 'day', scope: 'global', period: 'day', amountUsd: usd(10 * PRIORITY) }] }, { providers: providers(mock) }))
    for (const stream of [false, true]) {
      const before = (await rows(tg))[0]?.spent.usd ?? 0
      const r = await chat(tg.url, { maxTokens: 12, stream, extra: { service_tier: 'priority' } })
      expect(r.status).toBe(200)
      await r.arrayBuffer()
      await settled(tg)
      expect((await rows(tg))[0]!.spent.usd - before, `stream ${stream}`).toBeCloseTo(usd(PRIORITY), 12)
    }
    // Asked for nothing, but the project's default served it at priority: the answer says so, and that is settled.
    const before = (await rows(tg))[0]!.spent.usd
    const p = await chat(tg.url, { model: 'prio/gpt-4o-mini', maxTokens: 12 })
    expect(p.status).toBe(200)
    await p.arrayBuffer()
    await settled(tg)
    expect((await rows(tg))[0]!.spent.usd - before).toBeCloseTo(usd(PRIORITY), 12)
  })

  it('estimate.autoServiceTier: priority reserves requests that name no tier at the priority rates; default still at the standard ones', async () => {
    tg = await startTestGateway(settings(mock, {
      budgets: [{ name: 'day', scope: 'global', period: 'day', amountUsd: usd(10_000) }],
      estimate: { perMessageTokens: 0, autoServiceTier: 'priority' },
    }, { providers: providers(mock) }))
    expect((await chat(tg.url, { maxTokens: 12 })).status).toBe(402)
    expect((await chat(tg.url, { maxTokens: 12, extra: { service_tier: 'auto' } })).status).toBe(402)
    const std = await chat(tg.url, { maxTokens: 12, extra: { service_tier: 'default' } })
    expect(std.status).toBe(200)
    await std.arrayBuffer()
    expect(mock.requests).toHaveLength(1)
  })
})
