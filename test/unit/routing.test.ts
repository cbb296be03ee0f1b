/** Unit tests of the routing pieces: strategies, sticky hashing, rules, failure classes, Retry-After, retry budget. */
import { describe, expect, it } from 'vitest'
import { GatewayError } from '../../gateway/errors.ts'
import type { CompiledTarget } from '../../gateway/routing/alias.ts'
import { compileAliases, candidatesFor } from '../../gateway/routing/alias.ts'
import { classify, clientRetryHint, retryAfterMs, RetryBudget } from '../../gateway/routing/router.ts'
import { upstreamError } from '../../providers/shared/upstream-error.ts'
import { createOrder, rendezvous } from '../../gateway/routing/strategies.ts'
import { TargetRegistry } from '../../gateway/routing/target-state.ts'
import { parseSettings, readRawConfig } from '../../gateway/settings.ts'
import type { ProviderAdapter } from '../../providers/types.ts'
import type { RequestCtx } from '../../gateway/context.ts'

const settings = parseSettings({ ...readRawConfig(), admin: { key: 'k'.repeat(32) } }, {})
const routing = settings.routing
const fakeAdapter = { name: 'p', type: 'openai' } as unknown as ProviderAdapter

function target(i: number, over: Partial<CompiledTarget> = {}, reg = new TargetRegistry()): CompiledTarget {
  return {
    index: i, provider: `p${i}`, model: `m${i}`, adapter: fakeAdapter, weight: 1, priority: i, tags: [], timeouts: {},
    maxConcurrent: Infinity, contextWindow: 0, price: undefined, supportsPrefill: false,
    state: reg.get(`p${i}`, `m${i}`, routing), ...over,
  }
}

describe('strategies', () => {
  it('smooth weighted round-robin interleaves exactly by weight', () => {
    const ts = [target(0, { weight: 3 }), target(1, { weight: 1 })]
    const order = createOrder('weighted')
    const picks = Array.from({ length: 400 }, () => order(ts, undefined)[0]!.index)
    expect(picks.filter((p) => p === 0).length).toBe(300)
    expect(picks.slice(0, 4).sort()).toEqual([0, 0, 0, 1])
  })

  it('priority orders by priority, then config order', () => {
    const ts = [target(0, { priority: 2 }), target(1, { priority: 0 }), target(2, { priority: 0 })]
    expect(createOrder('priority')(ts, undefined).map((t) => t.index)).toEqual([1, 2, 0])
  })

  it('least outstanding prefers the target with fewer requests in flight', () => {
    const ts = [target(0), target(1)]
    ts[0]!.state.inflight = 5
    for (let i = 0; i < 20; i++) expect(createOrder('least-outstanding')(ts, undefined)[0]!.index).toBe(1)
  })

  it('lowest latency prefers the lower EWMA of time to first token', () => {
    const ts = [target(0), target(1)]
    ts[0]!.state.recordSuccess(200)
    ts[1]!.state.recordSuccess(50)
    expect(createOrder('lowest-latency')(ts, undefined)[0]!.index).toBe(1)
  })

  it('lowest cost prefers the cheapest priced target, unpriced last', () => {
    const ts = [target(0), target(1, { price: { input: 3, output: 15 } }), target(2, { price: { input: 0.15, output: 0.6 } })]
    expect(createOrder('lowest-cost')(ts, undefined).map((t) => t.index)).toEqual([2, 1, 0])
  })

  it('weighted random spreads by weight', () => {
    const ts = [target(0, { weight: 9 }), target(1, { weight: 1 })]
    const order = createOrder('random')
    const n = Array.from({ length: 2000 }, () => order(ts, undefined)[0]!.index).filter((i) => i === 0).length
    expect(n).toBeGreaterThan(1650)
    expect(n).toBeLessThan(1950)
  })
})

describe('sticky rendezvous hashing', () => {
  it('keeps a key on the same target, and moves only the keys of a removed target', () => {
    const reg = new TargetRegistry()
    const ts = [0, 1, 2, 3].map((i) => target(i, {}, reg))
    const keys = Array.from({ length: 500 }, (_, i) => `user-${i}`)
    const before = new Map(keys.map((k) => [k, rendezvous(ts, k)[0]!.index]))
    for (const k of keys) expect(rendezvous(ts, k)[0]!.index).toBe(before.get(k))
    const without = ts.filter((t) => t.index !== 2)
    for (const k of keys) {
      const now = rendezvous(without, k)[0]!.index
      if (before.get(k) !== 2) expect(now).toBe(before.get(k))
    }
    const counts = [0, 1, 2, 3].map((i) => [...before.values()].filter((v) => v === i).length)
    for (const c of counts) expect(c).toBeGreaterThan(70)
  })
})

describe('aliases', () => {
  const providers = new Map([['a', fakeAdapter], ['b', fakeAdapter]])
  const raw = (over: Record<string, unknown>) => parseSettings({ ...readRawConfig(), admin: { key: 'k'.repeat(32) }, providers: { a: { type: 'openai' }, b: { type: 'openai' } }, models: over }, {}).models

  it('names bad references', () => {
    const { errors } = compileAliases(raw({ x: { targets: [{ provider: 'nope', model: 'm' }], fallbacks: ['missing'] } }), providers, routing, new TargetRegistry())
    expect(errors).toContain("models.x.targets[0].provider: no provider named 'nope'")
    expect(errors).toContain("models.x.fallbacks[0]: no alias named 'missing'")
  })

  it('rules on headers and params pick their targets; fallbacks come after the own targets', () => {
    const { aliases, errors } = compileAliases(raw({
      x: { targets: [{ provider: 'a', model: 'm1' }, { provider: 'b', model: 'm2', priority: 1 }], rules: [{ when: { header: { 'x-tier': 'premium' }, param: { stream: true } }, targets: [1] }], fallbacks: ['y'] },
      y: { targets: [{ provider: 'b', model: 'm3' }] },
    }), providers, routing, new TargetRegistry())
    expect(errors).toEqual([])
    const ctx = (headers: Record<string, string>, stream: boolean) => ({ headers, chat: { model: 'x', messages: [], stream } }) as unknown as RequestCtx
    const ids = (c: RequestCtx) => candidatesFor(c, aliases.get('x')!, aliases).map((t) => t.target.state.id)
    expect(ids(ctx({}, true))).toEqual(['a/m1', 'b/m2', 'b/m3'])
    expect(ids(ctx({ 'x-tier': 'premium' }, true))).toEqual(['b/m2', 'b/m3'])
    expect(ids(ctx({ 'x-tier': 'premium' }, false))).toEqual(['a/m1', 'b/m2', 'b/m3'])
  })
})

describe('lowest cost from the price catalogue', () => {
  it('orders targets by catalogue price when the config gives none', async () => {
    const { loadCatalogue } = await import('../../gateway/cost/catalogue.ts')
    const cat = loadCatalogue()
    const priceOf = (_provider: string, type: string, model: string) => { const p = cat.lookup(type, model); return p ? { input: p.input / 1e6, output: p.output / 1e6 } : undefined }
    const models = parseSettings({ ...readRawConfig(), admin: { key: 'k'.repeat(32) }, providers: { a: { type: 'openai' } }, models: {
      cheap: { strategy: 'lowest-cost', targets: [{ provider: 'a', model: 'gpt-4.1' }, { provider: 'a', model: 'gpt-4o-mini' }, { provider: 'a', model: 'gpt-4o' }, { provider: 'a', model: 'my-local-model' }] },
    } }, {}).models
    const { aliases } = compileAliases(models, new Map([['a', fakeAdapter]]), routing, new TargetRegistry(), priceOf)
    const order = candidatesFor({ headers: {}, chat: { model: 'cheap', messages: [] } } as unknown as RequestCtx, aliases.get('cheap')!, aliases).map((c) => c.target.model)
    expect(order).toEqual(['gpt-4o-mini', 'gpt-4.1', 'gpt-4o', 'my-local-model'])
    expect(aliases.get('cheap')!.targets[1]!.price).toEqual({ input: 0.15, output: 0.6 })
  })
})

describe('failure classes and retry policy', () => {
  const up = (status: number, providerCode: string | null = null) => new GatewayError('MCP_ERR_UPSTREAM_ERROR', { provider: 'p', status, reason: 'x' }, { status, providerCode })
  it('retries connect errors, resets, timeouts, 408/429/5xx/529; never other 4xx', () => {
    for (const s of [408, 429, 500, 502, 503, 504, 529]) expect(classify(up(s))).toBe('retryable')
    for (const s of [400, 401, 403, 404, 409, 413, 422]) expect(classify(up(s))).toBe('fatal')
    expect(classify(new GatewayError('MCP_ERR_UPSTREAM_CONNECT', {}))).toBe('retryable')
    expect(classify(new GatewayError('MCP_ERR_UPSTREAM_RESET', {}))).toBe('retryable')
    expect(classify(new GatewayError('MCP_ERR_REQ_ABORTED', {}))).toBe('abort')
    expect(classify(up(400, 'context_length_exceeded'))).toBe('context_length')
    expect(classify(up(400, 'content_filter'))).toBe('content_filter')
    expect(classify(Object.assign(new Error('open'), { code: 'EOPENBREAKER' }))).toBe('circuit_open')
  })

  it('reads Retry-After as seconds or an HTTP date', () => {
    const e = (v: string) => new GatewayError('MCP_ERR_UPSTREAM_ERROR', {}, { headers: { 'retry-after': v } })
    expect(retryAfterMs(e('2'))).toBe(2000)
    const now = Date.parse('2026-01-01T00:00:00Z')
    expect(retryAfterMs(e('Thu, 01 Jan 2026 00:00:05 GMT'), now)).toBe(5000)
    expect(retryAfterMs(new GatewayError('MCP_ERR_UPSTREAM_ERROR', {}))).toBeUndefined()
  })

  it('reads retry-after-ms, the more precise one, when the provider sent it (OpenAI, Azure)', () => {
    const e = (h: Record<string, string>) => new GatewayError('MCP_ERR_UPSTREAM_ERROR', {}, { headers: h })
    expect(retryAfterMs(e({ 'retry-after-ms': '250' }))).toBe(250)
    expect(retryAfterMs(e({ 'retry-after': '1', 'retry-after-ms': '1500' }))).toBe(1500)
  })

  it("a provider's x-should-retry decides over the status: true makes a 4xx retryable", () => {
    const hinted = (status: number, hint: string) => new GatewayError('MCP_ERR_UPSTREAM_ERROR', { provider: 'p', status, reason: 'x' }, { status, headers: { 'x-should-retry': hint } })
    expect(classify(hinted(409, 'true'))).toBe('retryable')
    expect(classify(hinted(400, 'true'))).toBe('retryable')
    // false does not make a failure fatal: another target may take the request (the router keeps this one out).
    expect(classify(hinted(503, 'false'))).toBe('retryable')
    expect(classify(hinted(409, 'yes'))).toBe('fatal')
  })

  it('upstreamError passes x-should-retry on (true or false only) and says false for OpenAI insufficient_quota', () => {
    expect(upstreamError('p', 500, { message: 'm' }, { 'x-should-retry': 'false' }).headers).toEqual({ 'x-should-retry': 'false' })
    expect(upstreamError('p', 409, { message: 'm' }, { 'x-should-retry': 'true' }).headers).toEqual({ 'x-should-retry': 'true' })
    expect(upstreamError('p', 500, { message: 'm' }, { 'x-should-retry': 'maybe' }).headers).toEqual({})
    expect(upstreamError('p', 429, { message: 'm', code: 'insufficient_quota', type: 'insufficient_quota' }, {}).headers).toEqual({ 'x-should-retry': 'false' })
    expect(upstreamError('p', 429, { message: 'm', code: 'rate_limit_exceeded' }, { 'retry-after': '2' }).headers).toEqual({ 'retry-after': '2' })
    // The provider's own word wins.
    expect(upstreamError('p', 429, { message: 'm', code: 'insufficient_quota' }, { 'x-should-retry': 'true' }).headers).toEqual({ 'x-should-retry': 'true' })
  })

  it('clientRetryHint: false on statuses the SDKs retry when no retry can pass soon, else nothing', () => {
    const now = Date.parse('2026-01-01T00:00:00Z')
    const g = (code: 'MCP_ERR_UPSTREAM_ERROR' | 'MCP_ERR_LIMIT_RATE' | 'MCP_ERR_CLIENT_AUTH_BLOCKED', status: number, headers?: Record<string, string>) =>
      new GatewayError(code, {}, { status, ...(headers ? { headers } : {}) })
    // Final refusals.
    expect(clientRetryHint(new GatewayError('MCP_ERR_UPSTREAM_ADDRESS_BLOCKED', { host: 'h', reason: 'r' }), now)).toBe('false')
    expect(clientRetryHint(new GatewayError('MCP_ERR_EXEC_DEPLOYMENT_INACTIVE', { id: 'd', status: 'archived' }), now)).toBe('false')
    // A Retry-After past what the SDKs wait out (seconds, milliseconds or a date); 60 s itself is waited out.
    expect(clientRetryHint(g('MCP_ERR_CLIENT_AUTH_BLOCKED', 429, { 'retry-after': '300' }), now)).toBe('false')
    expect(clientRetryHint(g('MCP_ERR_UPSTREAM_ERROR', 503, { 'retry-after-ms': '90000' }), now)).toBe('false')
    expect(clientRetryHint(g('MCP_ERR_UPSTREAM_ERROR', 429, { 'retry-after': 'Thu, 01 Jan 2026 01:00:00 GMT' }), now)).toBe('false')
    expect(clientRetryHint(g('MCP_ERR_LIMIT_RATE', 429, { 'retry-after': '60' }), now)).toBeUndefined()
    expect(clientRetryHint(g('MCP_ERR_LIMIT_RATE', 429, { 'retry-after': '1' }), now)).toBeUndefined()
    expect(clientRetryHint(g('MCP_ERR_UPSTREAM_ERROR', 502), now)).toBeUndefined()
    // Statuses the SDKs do not retry get no hint, and a provider's own hint is left as it is.
    expect(clientRetryHint(g('MCP_ERR_UPSTREAM_ERROR', 400, { 'retry-after': '300' }), now)).toBeUndefined()
    expect(clientRetryHint(g('MCP_ERR_UPSTREAM_ERROR', 429, { 'retry-after': '300', 'x-should-retry': 'true' }), now)).toBeUndefined()
  })

  it('the retry budget allows max(min, 20% of active) concurrent retries', () => {
    let active = 10
    const b = new RetryBudget(() => active)
    const policy = { ratio: 0.2, min: 3 }
    expect([1, 2, 3, 4].map(() => b.tryAcquire(policy))).toEqual([true, true, true, false])
    active = 100
    let n = 0
    while (b.tryAcquire(policy)) n++
    expect(n + 3).toBe(20)
  })

  it('passive ejection grows and is capped', () => {
    const s = target(9).state
    const now = 1_000_000
    const fail = up(503)
    for (let round = 1; round <= 5; round++) {
      for (let i = 0; i < routing.outlier.consecutiveFailures; i++) s.recordFailure(fail, routing, now)
      expect(s.ejectedUntil - now).toBe(Math.min(routing.outlier.maxEjectionMs, routing.outlier.baseEjectionMs * 2 ** (round - 1)))
    }
    s.recordFailure(up(400), routing, now)
    expect(s.consecutiveFailures).toBe(0)
  })
})
