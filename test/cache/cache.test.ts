/**
 * cache plugin through the real server against the OpenAI mock: miss then hit with no upstream call
 * (pass-through JSON, translated JSON, streams replayed and streams captured), the saved cost counted,
 * TTL expiry (injectable clock), key scope isolation, errors and non-deterministic requests not
 * cached, opt-in and opt-out by header, hits served while the provider fails, a hit costs no budget,
 * and the Redis backend shared by two gateways.
 */
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { validatePluginConfig } from '../../gateway/pipeline/compile.ts'
import { closeRedis, createRedis } from '../../gateway/redis.ts'
import { createCachePlugin, cachePlugin } from '../../plugins/cache/index.ts'
import { cacheKey, stableStringify } from '../../plugins/cache/key.ts'
import { ADMIN_KEY, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { startAnthropicMock } from '../helpers/anthropic-mock.ts'
import { adminGet, chat, deletePrefix, metricValue, REDIS_URL, redisAvailable, startTestGateway, until } from '../budget/helpers.ts'

let n = 0
const prefix = (): string => `test:cache:${process.pid}:${Date.now()}:${++n}:`

function settings(mock: OpenAIMock, cache: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-cache-test' } },
    plugins: { cache: { backend: 'memory', keyPrefix: prefix(), aliases: ['*'], ...cache } },
    chains: { default: ['test-principal', 'cache'] },
    ...extra,
  }
}

type Completion = { choices: { message: { content: string } }[]; usage: { prompt_tokens: number } }

describe('cache config and key', () => {
  it('has the io contract (timeoutMs, failMode) and defaults; rejects unknown keys', () => {
    const cfg = validatePluginConfig(cachePlugin, {}, 'plugins.cache')
    expect(cfg).toMatchObject({ backend: 'auto', timeoutMs: 50, failMode: 'open', ttlSeconds: 3600, scope: 'key', aliases: [], keys: [], headerOptIn: false, cacheNonDeterministic: false })
    expect(() => validatePluginConfig(cachePlugin, { ttl: 5 }, 'plugins.cache')).toThrow(/plugins\.cache\.ttl: unknown key/)
  })

  it('the key is order-independent, scoped, and ignores stream / stream_options only', () => {
    expect(stableStringify({ b: 1, a: { d: [2, { z: 1, y: 2 }], c: undefined } })).toBe('{"a":{"d":[2,{"y":2,"z":1}]},"b":1}')
    const base = { model: 'gpt-4o', messages: [{ role: 'user' as const, content: 'hi' }], temperature: 0 }
    const k = cacheKey(base, 'mock/gpt-4o', 'k1')
    expect(cacheKey({ temperature: 0, messages: base.messages, model: 'x', stream: true, stream_options: { include_usage: true } }, 'mock/gpt-4o', 'k1')).toBe(k)
    expect(cacheKey(base, 'mock/gpt-4o', 'k2')).not.toBe(k)
    expect(cacheKey(base, 'other', 'k1')).not.toBe(k)
    expect(cacheKey({ ...base, user: 'u' }, 'mock/gpt-4o', 'k1')).not.toBe(k)
  })
})

describe('cache through the gateway (in-process LRU)', () => {
  let mock: OpenAIMock
  let tg: TestGateway | undefined
  beforeAll(async () => { mock = await startOpenAIMock() })
  afterAll(async () => { await mock.close() })
  afterEach(async () => { await tg?.close(); tg = undefined; mock.reset() })

  it('miss, then a hit without an upstream call, with x-mcp-cache and the saved cost counted', async () => {
    tg = await startTestGateway(settings(mock, {}))
    const r1 = await chat(tg.url, { temperature: 0, maxTokens: 12 })
    expect(r1.status).toBe(200)
    expect(r1.headers.get('x-mcp-cache')).toBe('miss')
    const b1 = await r1.json() as Completion
    const r2 = await chat(tg.url, { temperature: 0, maxTokens: 12 })
    expect(r2.status).toBe(200)
    expect(r2.headers.get('x-mcp-cache')).toBe('hit')
    expect(await r2.json()).toEqual(b1)
    expect(mock.requests).toHaveLength(1)
    // gpt-4o-mini: 1 prompt token × $0.15/M + 12 completion tokens × $0.60/M.
    const saved = 1 * 0.15e-6 + 12 * 0.6e-6
    expect(Number(r2.headers.get('x-mcp-cache-saved-usd'))).toBeCloseTo(saved, 9)
    expect(await metricValue(tg.adminUrl, 'mcp_cache_hits_total')).toBe(1)
    expect(await metricValue(tg.adminUrl, 'mcp_cache_misses_total')).toBe(1)
    expect(await metricValue(tg.adminUrl, 'mcp_cache_saved_usd_total')).toBeCloseTo(saved, 12)
  })

  it("the plugin's own prices are read as the cost meter reads its entries: by provider name, and model '*'", async () => {
    for (const provider of ['mock', 'openai']) {
      tg = await startTestGateway(settings(mock, { prices: [{ provider, model: '*', input: 10_000, output: 20_000, effectiveFrom: '2020-01-01' }] }))
      await (await chat(tg.url, { temperature: 0, maxTokens: 12 })).arrayBuffer()
      const r2 = await chat(tg.url, { temperature: 0, maxTokens: 12 })
      expect(r2.headers.get('x-mcp-cache')).toBe('hit')
      // $0.01 a prompt token, $0.02 a completion token: 1 × 0.01 + 12 × 0.02.
      expect(Number(r2.headers.get('x-mcp-cache-saved-usd')), provider).toBeCloseTo(0.25, 9)
      await r2.arrayBuffer()
      await tg.close()
      tg = undefined
    }
  })

  it('a streamed request is answered from a non-streamed entry (replayed), and a streamed answer is stored', async () => {
    tg = await startTestGateway(settings(mock, {}))
    const plain = await (await chat(tg.url, { temperature: 0, content: 'one' })).json() as Completion
    const s = await chat(tg.url, { temperature: 0, content: 'one', stream: true })
    expect(s.headers.get('x-mcp-cache')).toBe('hit')
    const text = await s.text()
    const events = text.split('\n\n').filter(Boolean).map((e) => e.slice(6))
    expect(events[events.length - 1]).toBe('[DONE]')
    const content = events.slice(0, -1).map((e) => (JSON.parse(e) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? '').join('')
    expect(content).toBe(plain.choices[0]!.message.content)
    expect(mock.requests).toHaveLength(1)

    // A stream miss (pass-through bytes, tapped) fills the cache for the next request.
    const miss = await chat(tg.url, { temperature: 0, content: 'two', stream: true })
    expect(miss.headers.get('x-mcp-cache')).toBe('miss')
    await miss.text()
    await until(async () => {
      const r = await chat(tg!.url, { temperature: 0, content: 'two' })
      const hit = r.headers.get('x-mcp-cache') === 'hit'
      await r.arrayBuffer()
      return hit
    })
    expect(mock.requests).toHaveLength(2)
  })

  it('translated answers (Anthropic inbound) are cached too', async () => {
    tg = await startTestGateway(settings(mock, {}))
    const send = (): Promise<Response> => fetch(`${tg!.url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': ADMIN_KEY, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'mock/gpt-4o-mini', max_tokens: 20, temperature: 0, messages: [{ role: 'user', content: 'hello' }] }),
    })
    const a = await send()
    expect(a.status).toBe(200)
    expect(a.headers.get('x-mcp-cache')).toBe('miss')
    const ja = await a.json()
    const b = await send()
    expect(b.headers.get('x-mcp-cache')).toBe('hit')
    expect(await b.json()).toEqual(ja)
    expect(mock.requests).toHaveLength(1)
  })

  it('Anthropic\'s own answers to /v1/messages (sent as they came, nativeMessages) are cached, streamed or not', async () => {
    const anthropic = await startAnthropicMock()
    try {
      tg = await startTestGateway({ ...settings(mock, {}), providers: { claude: { type: 'anthropic', baseUrl: anthropic.url, apiKey: 'sk-ant-cache-test' } } })
      const send = (content: string, stream = false): Promise<Response> => fetch(`${tg!.url}/v1/messages`, {
        method: 'POST',
        headers: { 'x-api-key': ADMIN_KEY, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
        body: JSON.stringify({ model: 'claude/claude-sonnet-4-5', max_tokens: 20, temperature: 0, stream, messages: [{ role: 'user', content }] }),
      })
      const a = await send('echo one')
      expect(a.headers.get('x-mcp-cache')).toBe('miss')
      const ja = await a.json() as { content: unknown; model: string }
      expect(ja.model).toBe('claude-sonnet-4-5') // Anthropic's own answer
      const b = await send('echo one')
      expect(b.headers.get('x-mcp-cache')).toBe('hit')
      expect((await b.json() as { content: unknown }).content).toEqual(ja.content)
      expect(anthropic.requests).toHaveLength(1)

      // A streamed miss (Anthropic's events, tapped) fills the cache for the next request, streamed or not.
      const miss = await send('echo two', true)
      expect(miss.headers.get('x-mcp-cache')).toBe('miss')
      expect(await miss.text()).toContain('event: message_stop')
      await until(async () => {
        const r = await send('echo two')
        const hit = r.headers.get('x-mcp-cache') === 'hit'
        if (hit) expect((await r.json() as { content: unknown }).content).toEqual([{ type: 'text', text: 'echo: two' }])
        else await r.arrayBuffer()
        return hit
      })
      expect(anthropic.requests).toHaveLength(2)
    } finally {
      await anthropic.close()
    }
  })

  it('entries expire after the TTL (injectable clock)', async () => {
    let now = Date.parse('2026-06-01T00:00:00Z')
    tg = await startTestGateway(settings(mock, { ttlSeconds: 60 }), { plugins: [createCachePlugin({ now: () => now })] })
    expect((await chat(tg.url, { temperature: 0 })).headers.get('x-mcp-cache')).toBe('miss')
    now += 59_000
    const hit = await chat(tg.url, { temperature: 0 })
    expect(hit.headers.get('x-mcp-cache')).toBe('hit')
    expect(hit.headers.get('x-mcp-cache-age')).toBe('59')
    now += 2000
    expect((await chat(tg.url, { temperature: 0 })).headers.get('x-mcp-cache')).toBe('miss')
    expect(mock.requests).toHaveLength(2)
  })

  it('scope key: another key does not see the entry; scope global shares it', async () => {
    tg = await startTestGateway(settings(mock, { scope: 'key' }))
    await (await chat(tg.url, { temperature: 0, key: 'a' })).arrayBuffer()
    expect((await chat(tg.url, { temperature: 0, key: 'b' })).headers.get('x-mcp-cache')).toBe('miss')
    expect((await chat(tg.url, { temperature: 0, key: 'a' })).headers.get('x-mcp-cache')).toBe('hit')
    await tg.close()
    tg = await startTestGateway(settings(mock, { scope: 'global' }))
    await (await chat(tg.url, { temperature: 0, key: 'a' })).arrayBuffer()
    expect((await chat(tg.url, { temperature: 0, key: 'b' })).headers.get('x-mcp-cache')).toBe('hit')
  })

  it('errors are never cached', async () => {
    tg = await startTestGateway(settings(mock, {}))
    mock.fault = 'status:500,times:1'
    const e = await chat(tg.url, { temperature: 0 })
    expect(e.status).toBe(500)
    const ok = await chat(tg.url, { temperature: 0 })
    expect(ok.status).toBe(200)
    expect(ok.headers.get('x-mcp-cache')).toBe('miss')
    expect((await chat(tg.url, { temperature: 0 })).headers.get('x-mcp-cache')).toBe('hit')
    expect(mock.requests).toHaveLength(2)
  })

  it('opt-in: per model, per key, by header; non-deterministic requests and x-mcp-cache: off bypass', async () => {
    tg = await startTestGateway(settings(mock, { aliases: ['mock/gpt-4o'], keys: ['vip'], headerOptIn: true }))
    // Not opted in: no header, never cached.
    const none = await chat(tg.url, { temperature: 0 })
    expect(none.headers.get('x-mcp-cache')).toBeNull()
    // By model, by key, by header.
    expect((await chat(tg.url, { model: 'mock/gpt-4o', temperature: 0 })).headers.get('x-mcp-cache')).toBe('miss')
    expect((await chat(tg.url, { key: 'vip', temperature: 0 })).headers.get('x-mcp-cache')).toBe('miss')
    expect((await chat(tg.url, { temperature: 0, headers: { 'x-mcp-cache': 'on' } })).headers.get('x-mcp-cache')).toBe('miss')
    // Temperature absent (provider default 1) or > 0: bypass.
    expect((await chat(tg.url, { model: 'mock/gpt-4o' })).headers.get('x-mcp-cache')).toBe('bypass')
    expect((await chat(tg.url, { model: 'mock/gpt-4o', temperature: 0.7 })).headers.get('x-mcp-cache')).toBe('bypass')
    expect((await chat(tg.url, { model: 'mock/gpt-4o', temperature: 0, headers: { 'x-mcp-cache': 'off' } })).headers.get('x-mcp-cache')).toBe('bypass')
    expect(await metricValue(tg.adminUrl, 'mcp_cache_bypass_total{reason="nondeterministic"}')).toBe(2)
  })

  it('a hit is served while the provider fails, and outside the router (no attempt on any target)', async () => {
    tg = await startTestGateway(settings(mock, {}, { models: { smart: { targets: [{ provider: 'mock', model: 'gpt-4o' }] } } }))
    expect((await chat(tg.url, { model: 'smart', temperature: 0 })).headers.get('x-mcp-cache')).toBe('miss')
    mock.fault = '503'
    const hit = await chat(tg.url, { model: 'smart', temperature: 0 })
    expect(hit.status).toBe(200)
    expect(hit.headers.get('x-mcp-cache')).toBe('hit')
    expect(hit.headers.get('x-mcp-attempts')).toBeNull()
    expect(mock.requests).toHaveLength(1)
    const targets = await adminGet<{ data: { id: string; requests: number }[] }>(tg.adminUrl, '/api/v1/mcp/targets')
    expect(targets.data.find((t) => t.id === 'mock/gpt-4o')?.requests).toBe(1)
  })

  it('with the budget plugin after it: a hit costs no budget (USD) and is still a request', async () => {
    tg = await startTestGateway({
      ...settings(mock, {}),
      plugins: {
        cache: { backend: 'memory', keyPrefix: prefix(), aliases: ['*'] },
        budget: { backend: 'local', keyPrefix: prefix(), estimate: { perMessageTokens: 0 }, budgets: [{ name: 'one', scope: 'key', period: 'day', amountUsd: 0.00001, requests: 5 }] },
      },
      chains: { default: ['test-principal', 'cache', 'budget'] },
    })
    expect((await chat(tg.url, { temperature: 0, maxTokens: 12 })).status).toBe(200)
    // The budget affords one such request: a different one is refused, the same one is a free hit.
    expect((await chat(tg.url, { temperature: 0, maxTokens: 12, content: 'other' })).status).toBe(402)
    const hit = await chat(tg.url, { temperature: 0, maxTokens: 12 })
    expect(hit.status).toBe(200)
    expect(hit.headers.get('x-mcp-cache')).toBe('hit')
    await until(async () => (await metricValue(tg!.adminUrl, 'mcp_budget_reservations_open')) === 0)
    const rows = (await adminGet<{ data: { spent: { usd: number; requests: number } }[] }>(tg.adminUrl, '/api/v1/mcp/budgets')).data
    expect(rows[0]!.spent.requests).toBe(2)
    expect(rows[0]!.spent.usd).toBeCloseTo(7350e-9, 12)
  })
})

describe('cache and routing rules', () => {
  let mock: OpenAIMock
  let tg: TestGateway | undefined
  beforeAll(async () => { mock = await startOpenAIMock() })
  afterAll(async () => { await mock.close() })
  afterEach(async () => { await tg?.close(); tg = undefined; mock.reset() })

  const ask = async (headers: Record<string, string> = {}): Promise<{ cache: string | null; model: string }> => {
    const r = await chat(tg!.url, { model: 'smart', temperature: 0, content: 'q1', headers })
    expect(r.status).toBe(200)
    return { cache: r.headers.get('x-mcp-cache'), model: (await r.json() as { model: string }).model }
  }

  // Regression: the key had the alias's name only, so the same body sent with `x-tier: cheap` (a header rule that
  // picks gpt-4o-mini; the header is not in the body) was answered from gpt-4o's entry, and the other way round.
  it('a header rule that picks other targets does not share entries with the alias\'s default targets', async () => {
    tg = await startTestGateway(settings(mock, {}, {
      models: {
        smart: {
          strategy: 'priority',
          targets: [{ provider: 'mock', model: 'gpt-4o' }, { provider: 'mock', model: 'gpt-4o-mini' }],
          rules: [{ when: { header: { 'x-tier': 'cheap' } }, targets: [1] }, { when: { header: { 'x-tier': 'research' } }, alias: 'research' }],
        },
        research: { targets: [{ provider: 'mock', model: 'gpt-4.1' }] },
      },
    }))
    expect(await ask()).toEqual({ cache: 'miss', model: 'gpt-4o' })
    expect(await ask({ 'x-tier': 'cheap' })).toEqual({ cache: 'miss', model: 'gpt-4o-mini' })
    expect(await ask({ 'x-tier': 'research' })).toEqual({ cache: 'miss', model: 'gpt-4.1' })
    expect(await ask({ 'x-tier': 'cheap' })).toEqual({ cache: 'hit', model: 'gpt-4o-mini' })
    expect(await ask({ 'x-tier': 'research' })).toEqual({ cache: 'hit', model: 'gpt-4.1' })
    expect(await ask()).toEqual({ cache: 'hit', model: 'gpt-4o' })
    // A header no rule matches routes as no header: same entry.
    expect(await ask({ 'x-tier': 'other' })).toEqual({ cache: 'hit', model: 'gpt-4o' })
    expect(mock.requests).toHaveLength(3)
  })

  it('requests the strategy spreads over an alias\'s targets share one entry', async () => {
    tg = await startTestGateway(settings(mock, {}, {
      models: { smart: { strategy: 'weighted', targets: [{ provider: 'mock', model: 'gpt-4o' }, { provider: 'mock', model: 'gpt-4o-mini' }] } },
    }))
    const first = await ask()
    expect(first.cache).toBe('miss')
    // Weighted round-robin sends the next request to the other target; it is answered from the first one's entry.
    for (let i = 0; i < 3; i++) expect(await ask()).toEqual({ cache: 'hit', model: first.model })
    expect(mock.requests).toHaveLength(1)
    // Without the cache the strategy does spread them.
    const r = await chat(tg.url, { model: 'smart', temperature: 0, content: 'q1', headers: { 'x-mcp-cache': 'off' } })
    expect((await r.json() as { model: string }).model).not.toBe(first.model)
  })
})

describe('cache and the rate limit', () => {
  let mock: OpenAIMock
  let tg: TestGateway | undefined
  beforeAll(async () => { mock = await startOpenAIMock() })
  afterAll(async () => { await mock.close() })
  afterEach(async () => { await tg?.close(); tg = undefined; mock.reset() })

  const remaining = (r: Response, kind: 'tokens' | 'requests'): number => Number(r.headers.get(`x-ratelimit-remaining-${kind}`))
  /** The answer is sent before onComplete corrects the charge: wait for it. */
  const settled = (): Promise<void> => until(async () => (await metricValue(tg!.adminUrl, 'mcp_requests_in_flight')) === 0)

  // Regression: rate-limit charged a hit the usage of the answer it replayed (882 → 870 → 857 tokens left), though
  // no provider spent a token on it; the budget counts a hit as 0 tokens and 1 request.
  for (const order of [['rate-limit', 'cache'], ['cache', 'rate-limit']]) {
    it(`a hit costs no tokens of a tpm limit and is still a request (chain ${order.join(', ')})`, async () => {
      tg = await startTestGateway({
        ...settings(mock, {}),
        plugins: {
          cache: { backend: 'memory', keyPrefix: prefix(), aliases: ['*'] },
          'rate-limit': { backend: 'local', limits: [{ name: 'pk', scope: 'key', tpm: 1000, rpm: 100 }] },
        },
        chains: { default: ['test-principal', ...order] },
      })
      const miss = await chat(tg.url, { temperature: 0, maxTokens: 100 })
      expect(miss.headers.get('x-mcp-cache')).toBe('miss')
      const used = (await miss.json() as { usage: { total_tokens: number } }).usage.total_tokens
      expect(used).toBeGreaterThan(0)
      await settled()
      const hits: Response[] = []
      for (let i = 0; i < 5; i++) {
        const hit = await chat(tg.url, { temperature: 0, maxTokens: 100 })
        expect(hit.headers.get('x-mcp-cache')).toBe('hit')
        await hit.arrayBuffer()
        await settled()
        hits.push(hit)
      }
      // Each hit is a request; the tokens left do not shrink from one hit to the next.
      expect(hits.map((h) => remaining(h, 'requests'))).toEqual([98, 97, 96, 95, 94])
      const tokens = hits.map((h) => remaining(h, 'tokens'))
      for (let i = 1; i < tokens.length; i++) expect(tokens[i]).toBeGreaterThanOrEqual(tokens[0]!)
      if (order[0] === 'cache') {
        // The hit is known at admission: it is charged nothing then either (a check of one token, given back).
        expect(tokens[0]).toBeGreaterThanOrEqual(1000 - used - 1)
      } else {
        // Charged its estimate at admission (the hit is not known yet), given back at completion.
        expect(tokens[0]).toBeLessThan(1000 - used - 100)
      }
      expect(mock.requests).toHaveLength(1)
    })
  }
})

describe('cache and the budget downgrade', () => {
  let mock: OpenAIMock
  let tg: TestGateway | undefined
  beforeAll(async () => { mock = await startOpenAIMock() })
  afterAll(async () => { await mock.close() })
  afterEach(async () => { await tg?.close(); tg = undefined; mock.reset() })

  // Regression: the key was the requested model only, so a downgraded answer (the cheaper alias's model) was
  // stored under `smart` and served to requests that were not downgraded.
  for (const order of [['cache', 'budget'], ['budget', 'cache']]) {
    it(`a downgraded answer is never served to a request that was not downgraded (chain ${order.join(', ')})`, async () => {
      const p = prefix()
      tg = await startTestGateway({
        ...settings(mock, { scope: 'global' }),
        plugins: {
          cache: { backend: 'memory', keyPrefix: p, aliases: ['*'], scope: 'global' },
          budget: {
            backend: 'local', keyPrefix: p, downgradeRefreshMs: 0,
            budgets: [{ name: 'team-month', scope: 'team', period: 'month', requests: 1, mode: 'soft' }],
            downgrade: [{ alias: 'smart', whenBudget: 'team-month', atPercent: 100, to: 'cheap' }],
          },
        },
        models: {
          smart: { targets: [{ provider: 'mock', model: 'gpt-4o' }] },
          cheap: { targets: [{ provider: 'mock', model: 'gpt-4o-mini' }] },
        },
        chains: { default: ['test-principal', ...order] },
      })
      // Team ml spends its budget; its next request for smart is downgraded to cheap.
      await (await chat(tg.url, { model: 'smart', team: 'ml', temperature: 0, content: 'warm-up' })).arrayBuffer()
      await until(async () => (await metricValue(tg!.adminUrl, 'mcp_budget_reservations_open')) === 0)
      const down = await chat(tg.url, { model: 'smart', team: 'ml', temperature: 0, content: 'q' })
      expect(down.headers.get('x-mcp-downgraded')).toBe('smart->cheap')
      expect((await down.json() as { model: string }).model).toBe('gpt-4o-mini')
      // Team web is not downgraded: its answer is smart's model, not the cached cheap one.
      const full = await chat(tg.url, { model: 'smart', team: 'web', temperature: 0, content: 'q' })
      expect(full.headers.get('x-mcp-downgraded')).toBeNull()
      expect(full.headers.get('x-mcp-cache')).toBe('miss')
      expect((await full.json() as { model: string }).model).toBe('gpt-4o')
      // And it is cached for smart: the same request from another undowngraded team hits it.
      const again = await chat(tg.url, { model: 'smart', team: 'ops', temperature: 0, content: 'q' })
      expect(again.headers.get('x-mcp-cache')).toBe('hit')
      expect((await again.json() as { model: string }).model).toBe('gpt-4o')
    })
  }
})

const redisUp = await redisAvailable()

describe.skipIf(!redisUp)('cache on Redis, shared by two gateways', () => {
  let mock: OpenAIMock
  let r: Redis
  const p = prefix()
  beforeAll(async () => { mock = await startOpenAIMock(); r = new Redis(REDIS_URL) })
  afterAll(async () => { await mock.close(); await deletePrefix(r, p); r.disconnect() })

  it('one gateway stores, the other hits; the entry carries a TTL', async () => {
    const c1 = createRedis(REDIS_URL)
    const c2 = createRedis(REDIS_URL)
    await until(() => c1.status === 'ready' && c2.status === 'ready')
    const cfg = settings(mock, { backend: 'redis', keyPrefix: p, scope: 'global', ttlSeconds: 120, timeoutMs: 1000 })
    const g1 = await startTestGateway(cfg, { services: { redis: c1 } })
    const g2 = await startTestGateway(cfg, { services: { redis: c2 } })
    try {
      expect((await chat(g1.url, { temperature: 0 })).headers.get('x-mcp-cache')).toBe('miss')
      await until(async () => (await r.keys(`${p}*`)).length === 1)
      const hit = await chat(g2.url, { temperature: 0 })
      expect(hit.headers.get('x-mcp-cache')).toBe('hit')
      expect(mock.requests).toHaveLength(1)
      const [key] = await r.keys(`${p}*`)
      const ttl = await r.pttl(key!)
      expect(ttl).toBeGreaterThan(100_000)
      expect(ttl).toBeLessThanOrEqual(120_000)
    } finally {
      await g1.close(); await g2.close()
      await closeRedis(c1); await closeRedis(c2)
    }
  })
})
