/**
 * budget plugin on Redis: the Lua store's semantics, the race across two real gateway processes
 * sharing Redis (100 concurrent requests against a budget that affords 10), client aborts (mid-stream,
 * and while the admission itself is in flight), crashed instances' reservations expiring, and the
 * degraded modes with a private redis-server that the test kills.
 *
 * Uses the shared Redis (MCP_TEST_REDIS_URL, default redis://127.0.0.1:6379) with a unique key prefix,
 * deleted afterwards. Without Redis these tests skip, except in CI (CI=true) where they fail.
 */
import type { ChildProcess } from 'node:child_process'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { streamedChatCtx } from '../helpers/budget-ctx.ts'
import { closeRedis, createRedis } from '../../gateway/redis.ts'
import { RedisBudgetStore } from '../../plugins/budget/redis-store.ts'
import { budgetPlugin } from '../../plugins/budget/index.ts'
import type { BudgetConfig } from '../../plugins/budget/config.ts'
import { validatePluginConfig } from '../../gateway/pipeline/compile.ts'
import { Metrics } from '../../gateway/metrics.ts'
import type { PluginDeps } from '../../gateway/pipeline/types.ts'
import type { RequestCtx } from '../../gateway/context.ts'
import pino from 'pino'
import type { BudgetReportRow } from '../../plugins/budget/index.ts'
import type { CounterSpec } from '../../plugins/budget/store.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { launchEntry } from '../helpers/gateway-process.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { startForwarder } from '../durability/tcp-forwarder.ts'
import { adminGet, chat, deletePrefix, metricValue, REDIS_URL, redisAvailable, startPrivateRedis, startTestGateway, until, type PrivateRedis } from './helpers.ts'

const ONE = 7350 // nano-USD of "hi" with max_tokens 12 on gpt-4o-mini (see budget.test.ts)
const usd = (nano: number): number => nano / 1e9
const available = await redisAvailable()
const RUN = `${process.pid}-${Date.now()}`
let n = 0
const prefix = (): string => `test:{budget-${RUN}}:${++n}:`

function counter(budget: string, limits: [number, number, number], hard = true): CounterSpec {
  const start = Date.UTC(2030, 0, 1)
  return { budget, scopeId: 'a:b', periodStart: start, periodEnd: start + 86_400_000, hard, limits }
}

describe.skipIf(!available)('RedisBudgetStore (Lua)', () => {
  let r: Redis
  const p = prefix()
  beforeAll(() => { r = new Redis(REDIS_URL) })
  afterAll(async () => { await deletePrefix(r, p); r.disconnect() })

  it('admits all-or-nothing over every counter, settles once, adds to an existing reservation', async () => {
    const s = new RedisBudgetStore(r, p, 60_000)
    const a = counter('a', [100, -1, -1])
    const b = counter('b', [-1, -1, 2])
    const now = Date.UTC(2030, 0, 1, 12)
    expect((await s.admit('r1', [a, b], [60, 5, 1], true, now)).status).toBe('ok')
    // b has room for one more request, a has not: nothing is reserved on either.
    const refused = await s.admit('r2', [a, b], [60, 5, 1], true, now)
    expect(refused).toMatchObject({ status: 'refused', failed: 0, unit: 0 })
    expect(refused.states.map((x) => x.reserved)).toEqual([[60, 5, 1], [60, 5, 1]])
    // Extending r1 adds to its reservation; settling replaces it by the actual amount, once.
    expect((await s.admit('r1', [a, b], [20, 0, 0], true, now)).states[0]!.reserved).toEqual([80, 5, 1])
    expect(await s.settle('r1', [a, b], [70, 4, 1], now)).toEqual([{ spent: [70, 4, 1], reserved: [0, 0, 0] }, { spent: [70, 4, 1], reserved: [0, 0, 0] }])
    expect(await s.settle('r1', [a, b], [70, 4, 1], now)).toBeUndefined()
    // A late admission of a settled id reserves nothing.
    expect((await s.admit('r1', [a, b], [1, 1, 1], true, now)).status).toBe('settled')
    // Not enforced (shadow): admitted 'over', and counted.
    expect((await s.admit('r3', [a], [60, 0, 1], false, now)).status).toBe('over')
    expect(await s.scopes('a', a.periodStart)).toEqual(['a:b'])
  })

  it('a reservation whose instance died expires after its TTL', async () => {
    const s = new RedisBudgetStore(r, p, 1000)
    const c = counter('ttl', [100, -1, -1])
    const t0 = Date.UTC(2030, 0, 1, 12)
    expect((await s.admit('dead', [c], [100, 0, 1], true, t0)).status).toBe('ok')
    expect((await s.admit('next', [c], [1, 0, 1], true, t0 + 500)).status).toBe('refused')
    // The admission after the TTL drops the orphan first.
    const later = await s.admit('next', [c], [1, 0, 1], true, t0 + 1500)
    expect(later.status).toBe('ok')
    expect(later.states[0]!.reserved).toEqual([1, 0, 1])
  })

  it('refresh() moves open reservations\' expiry, and never brings back a settled one', async () => {
    const s = new RedisBudgetStore(r, p, 1000)
    const c = counter('refresh', [100, -1, -1])
    const t0 = Date.UTC(2030, 0, 1, 12)
    expect((await s.admit('live', [c], [60, 0, 1], true, t0)).status).toBe('ok')
    expect((await s.admit('done', [c], [40, 0, 1], true, t0)).status).toBe('ok')
    await s.settle('done', [c], [0, 0, 0], t0)
    await s.refresh([{ id: 'live', counters: [c] }, { id: 'done', counters: [c] }], t0 + 900)
    expect(await r.zscore(`${s.counterKey(c)}:r`, 'done')).toBeNull()
    // Past its first expiry 'live' still holds its 60: only 40 fit.
    expect((await s.admit('x', [c], [41, 0, 1], true, t0 + 1500)).status).toBe('refused')
    expect((await s.admit('x', [c], [40, 0, 1], true, t0 + 1500)).status).toBe('ok')
    // Not refreshed again, it expires 1000 ms after the refresh: then 60 more fit beside x's 40.
    expect((await s.admit('y', [c], [60, 0, 1], true, t0 + 1899)).status).toBe('refused')
    expect((await s.admit('y', [c], [60, 0, 1], true, t0 + 1901)).status).toBe('ok')
  })
})

describe.skipIf(!available)('budget on Redis: a stream open longer than reservationTtlMs', () => {
  let r: Redis
  const p = prefix()
  beforeAll(async () => { r = createRedis(REDIS_URL, { commandTimeoutMs: 1000 }); await until(() => r.status === 'ready') })
  afterAll(async () => { await deletePrefix(r, p); await closeRedis(r) })

  it('keeps its reservation while open: another instance cannot drop it and admit past the limit', async () => {
    const cfg = validatePluginConfig(budgetPlugin, {
      backend: 'redis', keyPrefix: p, reservationTtlMs: 1000, timeoutMs: 1000,
      budgets: [{ name: 'one-at-a-time', scope: 'global', period: 'day', requests: 1 }],
    }, 'plugins.budget') as unknown as BudgetConfig
    const deps: PluginDeps = { services: { redis: r }, logger: pino({ level: 'silent' }), metrics: new Metrics(), env: { adminKey: undefined, production: false } }
    type Inst = { onRequestBody(ctx: RequestCtx): void | Promise<void>; onComplete(ctx: RequestCtx): void; close?(): void | Promise<void> }
    // Two instances on the same counters (two gateway processes).
    const a = await budgetPlugin.create(cfg, deps) as unknown as Inst
    const b = await budgetPlugin.create(cfg, { ...deps, metrics: new Metrics() }) as unknown as Inst
    const ctx = streamedChatCtx
    const long = ctx()
    await a.onRequestBody(long)
    // The stream on instance a runs for 2.5 TTLs.
    await new Promise((res) => setTimeout(res, 2500))
    const other = ctx()
    await expect(b.onRequestBody(other)).rejects.toMatchObject({ code: 'MCP_ERR_BUDGET_EXCEEDED' })
    b.onComplete(other)
    a.onComplete(long)
    await a.close?.()
    await b.close?.()
  })
})

interface Entry { proc: ChildProcess; url: string; adminUrl: string; out(): string; stop(): Promise<void> }

async function spawnEntry(config: Record<string, unknown>): Promise<Entry> {
  const p = await launchEntry('test/budget/gateway-entry.ts', { MCP_REDIS_URL: REDIS_URL, BUDGET_ENTRY_CONFIG: JSON.stringify(config) })
  return {
    proc: p.proc, url: p.url, adminUrl: p.adminUrl, out: p.output,
    async stop() { if (p.running()) { p.proc.kill('SIGTERM'); const t = setTimeout(() => p.proc.kill('SIGKILL'), 3000); await p.exited; clearTimeout(t) } },
  }
}

async function rows(adminUrl: string): Promise<BudgetReportRow[]> {
  return (await adminGet<{ data: BudgetReportRow[] }>(adminUrl, '/api/v1/mcp/budgets')).data
}

describe.skipIf(!available)('budget across two gateway processes sharing Redis', () => {
  let mock: OpenAIMock
  let a: Entry
  let b: Entry
  let r: Redis
  const p = prefix()

  beforeAll(async () => {
    mock = await startOpenAIMock()
    r = new Redis(REDIS_URL)
    const config = {
      providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-budget-redis' } },
      plugins: {
        budget: {
          backend: 'redis', keyPrefix: p, timeoutMs: 1000, estimate: { perMessageTokens: 0 },
          budgets: [
            { name: 'race', scope: 'team', id: 'race', period: 'day', amountUsd: usd(10 * ONE + ONE / 2) },
            { name: 'aborts', scope: 'team', id: 'aborts', period: 'day', amountUsd: 10 },
          ],
        },
      },
      chains: { default: ['test-principal', 'budget'] },
    }
    ;[a, b] = await Promise.all([spawnEntry(config), spawnEntry(config)])
  }, 60_000)
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()])
    await mock?.close()
    await deletePrefix(r, p)
    r.disconnect()
  })

  it('100 concurrent requests split over both: 10 admitted in total, spend within the budget, nothing reserved after', async () => {
    const res = await Promise.all(Array.from({ length: 100 }, (_, i) => chat(i % 2 === 0 ? a.url : b.url, { team: 'race', maxTokens: 12 })))
    const codes = res.map((x) => x.status)
    await Promise.all(res.map((x) => x.arrayBuffer()))
    const okA = codes.filter((c, i) => c === 200 && i % 2 === 0).length
    const okB = codes.filter((c, i) => c === 200 && i % 2 === 1).length
    expect(okA + okB).toBe(10)
    expect(codes.filter((c) => c === 402).length).toBe(90)
    expect(mock.requests.length).toBe(10)
    await until(async () => {
      const [row] = await rows(a.adminUrl)
      return row !== undefined && row.reserved.usd === 0 && row.spent.requests === 10
    })
    // Both instances read the same counter.
    const [rowA] = (await rows(a.adminUrl)).filter((x) => x.budget === 'race')
    const [rowB] = (await rows(b.adminUrl)).filter((x) => x.budget === 'race')
    expect(rowA).toEqual(rowB)
    expect(rowA!.spent.usd).toBeCloseTo(usd(10 * ONE), 12)
    expect(rowA!.spent.usd).toBeLessThanOrEqual(usd(10 * ONE + ONE / 2))
  })

  it('client aborts on both instances leave no reservation open in Redis', async () => {
    mock.fault = 'chunkDelayMs:80'
    await Promise.all(Array.from({ length: 10 }, async (_, i) => {
      const ac = new AbortController()
      const res = await chat(i % 2 === 0 ? a.url : b.url, { team: 'aborts', stream: true, signal: ac.signal })
      expect(res.status).toBe(200)
      await res.body!.getReader().read()
      ac.abort()
    }))
    mock.fault = 'delayMs:3000'
    await Promise.all(Array.from({ length: 10 }, async (_, i) => {
      const ac = new AbortController()
      const pr = chat(i % 2 === 0 ? a.url : b.url, { team: 'aborts', signal: ac.signal }).catch((e: unknown) => e)
      await new Promise((res) => setTimeout(res, 200))
      ac.abort()
      await pr
    }))
    mock.fault = null
    await until(async () => {
      const row = (await rows(b.adminUrl)).find((x) => x.budget === 'aborts')
      return row !== undefined && row.spent.requests === 20
    }, 10_000)
    const row = (await rows(a.adminUrl)).find((x) => x.budget === 'aborts')!
    expect(row.reserved).toEqual({ usd: 0, tokens: 0, requests: 0 })
    // Nothing left in the reservation sets either.
    const z = await r.zcard(`${p}c:aborts:aborts:${Date.parse(row.periodStart)}:r`)
    expect(z).toBe(0)
  })
})

describe.skipIf(!available)('budget on Redis: admission in flight, degraded modes (private redis-server)', () => {
  let mock: OpenAIMock
  let priv: PrivateRedis | undefined
  let tg: TestGateway | undefined
  let client: ReturnType<typeof createRedis> | undefined
  beforeAll(async () => { mock = await startOpenAIMock() })
  afterAll(async () => { await mock.close() })
  afterEach(async () => {
    await tg?.close(); tg = undefined
    await closeRedis(client); client = undefined
    await priv?.stop(); priv = undefined
    mock.reset()
  })

  /** `clientOptions`: createRedis' (default: as main.ts creates the client, with none). */
  async function start(budget: Record<string, unknown>, clientOptions: Parameters<typeof createRedis>[1] = { commandTimeoutMs: 5000 }): Promise<TestGateway> {
    priv = await startPrivateRedis()
    client = createRedis(priv.url, clientOptions)
    await until(() => client!.status === 'ready')
    return startTestGateway({
      providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-budget-redis' } },
      plugins: { budget: { backend: 'redis', keyPrefix: prefix(), estimate: { perMessageTokens: 0 }, breakerFailures: 100, ...budget } },
      chains: { default: ['test-principal', 'budget'] },
    }, { services: { redis: client } })
  }

  async function reservedInRedis(): Promise<number> {
    const rr = new Redis(priv!.url)
    try {
      let total = 0
      // Counter hashes are `<prefix>c:...` (the prefix ends with ':'): `*c:*` also matched a reservation key `s:<instance>:<n>`
      // whenever the process's random instance id ended in 'c' (1 in 64), and HGET on it failed with WRONGTYPE.
      for (const k of await rr.keys('*:c:*')) if (!k.endsWith(':r')) total += Number(await rr.hget(k, 'ru') ?? 0)
      return total
    } finally { rr.disconnect() }
  }

  it('a client that leaves while its admission is in flight: released when the admission returns, provider never called', async () => {
    tg = await start({ timeoutMs: 3000, budgets: [{ name: 'slow', scope: 'key', period: 'day', amountUsd: 1 }] })
    expect((await chat(tg.url, { maxTokens: 12 })).status).toBe(200)
    mock.reset()
    const blocker = new Redis(priv!.url)
    const sleeping = blocker.call('DEBUG', 'SLEEP', '0.6')
    await new Promise((r) => setTimeout(r, 50))
    const ac = new AbortController()
    const pr = chat(tg.url, { maxTokens: 12, signal: ac.signal }).catch((e: unknown) => e)
    await new Promise((r) => setTimeout(r, 150))
    ac.abort()
    await pr
    await sleeping
    blocker.disconnect()
    await until(async () => (await metricValue(tg!.adminUrl, 'mcp_budget_reservations_open')) === 0 && (await reservedInRedis()) === 0)
    expect(mock.requests.length).toBe(0)
  })

  it('the Redis client main.ts creates leaves the budget\'s timeoutMs in charge: an admission answered in 400 ms of a 1000 ms budget is admitted', async () => {
    // The client's own command timeout (250 ms by default) used to fail it first: a 503 (failMode closed), and every
    // settlement (given 1000 ms) and keepalive refresh slower than 250 ms failed the same way.
    tg = await start({ timeoutMs: 1000, failMode: 'closed', budgets: [{ name: 'slowish', scope: 'key', period: 'day', amountUsd: 1 }] }, {})
    expect((await chat(tg.url, { maxTokens: 12 })).status).toBe(200)
    const blocker = new Redis(priv!.url)
    const sleeping = blocker.call('DEBUG', 'SLEEP', '0.4')
    await new Promise((r) => setTimeout(r, 20))
    const res = await chat(tg.url, { maxTokens: 12 })
    expect(res.status).toBe(200)
    await res.arrayBuffer()
    await sleeping
    blocker.disconnect()
    await until(async () => (await metricValue(tg!.adminUrl, 'mcp_budget_reservations_open')) === 0 && (await reservedInRedis()) === 0)
    expect(await metricValue(tg.adminUrl, 'mcp_budget_degraded_total{mode="closed"}')).toBeUndefined()
  })

  it('an admission that times out under failMode closed is 503 and its late reservation is released', async () => {
    tg = await start({ timeoutMs: 100, failMode: 'closed', budgets: [{ name: 'to', scope: 'key', period: 'day', amountUsd: 1 }] })
    const blocker = new Redis(priv!.url)
    const sleeping = blocker.call('DEBUG', 'SLEEP', '0.5')
    await new Promise((r) => setTimeout(r, 50))
    const res = await chat(tg.url, { maxTokens: 12 })
    expect(res.status).toBe(503)
    expect(res.headers.get('x-mcp-error-code')).toBe('MCP_ERR_BUDGET_UNAVAILABLE')
    await sleeping
    blocker.disconnect()
    await until(async () => (await reservedInRedis()) === 0)
    expect(mock.requests.length).toBe(0)
  })

  it('a huge max_tokens is reserved safely: no Lua error, so clients cannot open the breaker for everyone', async () => {
    // A hard request quota does not limit USD or tokens, so the worst case of a huge max_tokens is reserved as is:
    // past Redis' 64-bit integers, HINCRBY failed inside admit.lua, every such request counted as a Redis failure,
    // and `breakerFailures` of them opened the breaker: every other client got 503 (failMode closed). The largest
    // max_tokens the gateway takes is 2^53 - 1 (1e19 is a 400 at the edge), whose worst-case cost is still past them.
    tg = await start({ timeoutMs: 1000, failMode: 'closed', breakerFailures: 2, breakerCooldownMs: 60_000, budgets: [{ name: 'quota', scope: 'key', period: 'day', requests: 100 }] })
    const past = await chat(tg.url, { key: 'attacker', extra: { max_tokens: 1e19 } })
    expect(past.status).toBe(400)
    await past.arrayBuffer()
    for (let i = 0; i < 3; i++) {
      const huge = await chat(tg.url, { key: 'attacker', extra: { max_tokens: Number.MAX_SAFE_INTEGER } })
      expect(huge.status).toBe(200)
      await huge.arrayBuffer()
    }
    const other = await chat(tg.url, { key: 'someone-else', maxTokens: 12 })
    expect(other.status).toBe(200)
    expect(await metricValue(tg.adminUrl, 'mcp_budget_backend_errors_total{op="admit"}')).toBeUndefined()
    await until(async () => (await metricValue(tg!.adminUrl, 'mcp_budget_reservations_open')) === 0)
    expect(await reservedInRedis()).toBe(0)
  })

  it('a model-scoped budget: a model name with a lone surrogate is counted, not a Redis failure', async () => {
    // The scope id of a model budget is the client's model; encodeURIComponent throws on a lone surrogate, which
    // failed the admission as if Redis were down (503, and breakerFailures of them opened the breaker for everyone).
    tg = await start({ timeoutMs: 1000, failMode: 'closed', breakerFailures: 2, breakerCooldownMs: 60_000, budgets: [{ name: 'per-model', scope: 'model', period: 'day', requests: 100 }] })
    for (let i = 0; i < 3; i++) {
      const odd = await chat(tg.url, { model: 'mock/gpt-4o-mini\ud800', maxTokens: 12 })
      expect(odd.status).not.toBe(503)
      await odd.arrayBuffer()
    }
    const other = await chat(tg.url, { maxTokens: 12 })
    expect(other.status).toBe(200)
    await other.arrayBuffer()
    expect(await metricValue(tg.adminUrl, 'mcp_budget_backend_errors_total{op="admit"}')).toBeUndefined()
    await until(async () => (await metricValue(tg!.adminUrl, 'mcp_budget_reservations_open')) === 0)
    const listed = Object.fromEntries((await adminGet<{ data: BudgetReportRow[] }>(tg.adminUrl, '/api/v1/mcp/budgets')).data.map((r) => [r.id, r.spent.requests]))
    expect(listed).toEqual({ 'mock/gpt-4o-mini': 1, 'mock/gpt-4o-mini\ufffd': 3 })
  })

  it('Redis stalls mid-stream under a streamCutoff budget: closed ends the stream as budget_unavailable (not a cut-off), open lets it finish', async () => {
    // Regression: an extension Redis could not answer was read as a refusal: the stream ended with budget_exceeded
    // "is exhausted" on a budget at 0.001 % of use, and was counted in mcp_budget_stream_cutoffs_total.
    priv = await startPrivateRedis()
    const fwd = await startForwarder({ host: '127.0.0.1', port: priv.port })
    try {
      client = createRedis(`redis://127.0.0.1:${fwd.port}`, { commandTimeoutMs: 5000 })
      await until(() => client!.status === 'ready')
      const config = (failMode: string): Record<string, unknown> => ({
        providers: { slow: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-budget-redis', headers: { 'x-mock-chunk-delay-ms': '40', 'x-mock-tokens': '60' } } },
        plugins: { budget: {
          backend: 'redis', keyPrefix: prefix(), timeoutMs: 100, failMode, breakerFailures: 100, capMaxTokens: false, extendTokens: 8,
          estimate: { defaultMaxTokens: 16, perMessageTokens: 0 }, budgets: [{ name: 'team-day', scope: 'team', period: 'day', amountUsd: 100, streamCutoff: true }],
        } },
        chains: { default: ['test-principal', 'budget'] },
      })
      const stalled = async (): Promise<{ events: number; last: string }> => {
        const res = await chat(tg!.url, { model: 'slow/gpt-4o-mini', team: 'ml', stream: true })
        expect(res.status).toBe(200)
        const t = setTimeout(() => fwd.pause(), 300)
        const body = await res.text()
        clearTimeout(t)
        fwd.restore()
        return { events: (body.match(/"content":"/g) ?? []).length, last: body.trim().split('\n\n').at(-1)! }
      }
      tg = await startTestGateway(config('closed'), { services: { redis: client } })
      const closed = await stalled()
      expect(closed.events).toBeLessThan(61) // the role chunk and 60 tokens when complete
      expect(JSON.parse(closed.last.slice('data: '.length))).toMatchObject({ error: { code: 'MCP_ERR_BUDGET_UNAVAILABLE', type: 'api_error' } })
      expect(closed.last).not.toContain('budget_exceeded')
      expect(await metricValue(tg.adminUrl, 'mcp_budget_stream_cutoffs_total{budget="team-day",shadow="false"}') ?? 0).toBe(0)
      expect(await metricValue(tg.adminUrl, 'mcp_budget_degraded_total{mode="closed"}')).toBe(1)

      tg.setConfig(config('open'))
      expect((await tg.gw.reload('test')).ok).toBe(true)
      const open = await stalled()
      expect(open.events).toBe(61)
      expect(open.last).toBe('data: [DONE]')
    } finally {
      fwd.restore()
      await tg?.close(); tg = undefined
      await fwd.close()
    }
  })

  it('Redis down: failMode closed refuses (503), local enforces per instance, open admits', async () => {
    tg = await start({ timeoutMs: 100, failMode: 'closed', budgets: [{ name: 'q', scope: 'key', period: 'day', requests: 2 }] })
    expect((await chat(tg.url)).status).toBe(200)
    await priv!.stop()
    await until(() => client!.status !== 'ready')
    const closed = await chat(tg.url)
    expect(closed.status).toBe(503)
    expect(closed.headers.get('retry-after')).toBe('1')

    tg.setConfig({
      providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-budget-redis' } },
      plugins: { budget: { backend: 'redis', keyPrefix: prefix(), timeoutMs: 100, failMode: 'local', budgets: [{ name: 'q', scope: 'key', period: 'day', requests: 2 }] } },
      chains: { default: ['test-principal', 'budget'] },
    })
    expect((await tg.gw.reload('test')).ok).toBe(true)
    expect([(await chat(tg.url)).status, (await chat(tg.url)).status, (await chat(tg.url)).status]).toEqual([200, 200, 402])

    tg.setConfig({
      providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-budget-redis' } },
      plugins: { budget: { backend: 'redis', keyPrefix: prefix(), timeoutMs: 100, failMode: 'open', budgets: [{ name: 'q', scope: 'key', period: 'day', requests: 1 }] } },
      chains: { default: ['test-principal', 'budget'] },
    })
    expect((await tg.gw.reload('test')).ok).toBe(true)
    expect([(await chat(tg.url)).status, (await chat(tg.url)).status, (await chat(tg.url)).status]).toEqual([200, 200, 200])
    expect(await metricValue(tg.adminUrl, 'mcp_budget_degraded_total{mode="open"}')).toBe(3)
    expect(await metricValue(tg.adminUrl, 'mcp_budget_degraded_total{mode="local"}')).toBe(3)
  })
})
