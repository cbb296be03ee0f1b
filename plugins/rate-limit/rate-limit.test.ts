/**
 * rate-limit: config (unknown keys, io contract), GCRA exactness, rps/rpm/tpm/concurrency, shadow
 * mode, headers and Retry-After, scope isolation, key-record overrides (unit, fake context), and
 * through a real gateway: headers on the wire, 429 bodies, concurrency released on client abort.
 */
import { randomUUID } from 'node:crypto'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RequestCtx } from '../../gateway/context.ts'
import { Metrics } from '../../gateway/metrics.ts'
import { validatePluginConfig } from '../../gateway/pipeline/compile.ts'
import type { LocalReply, PluginDeps, PluginInstance } from '../../gateway/pipeline/types.ts'
import type { Usage } from '../../providers/types.ts'
import { ADMIN_KEY, startGateway, type TestGateway } from '../../test/helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../../test/helpers/openai-mock.ts'
import type { RateLimitConfig } from './config.ts'
import { gcraParams, type GcraCheck } from './gcra.ts'
import { formatDuration } from './headers.ts'
import { rateLimitPlugin } from './index.ts'
import { LocalStore } from './store-local.ts'

function deps(metrics = new Metrics()): PluginDeps {
  return { services: {}, logger: pino({ level: 'silent' }), metrics, env: { adminKey: undefined, production: false } }
}

function config(c: Record<string, unknown>): RateLimitConfig {
  return validatePluginConfig(rateLimitPlugin as never, c, 'plugins.rate-limit') as unknown as RateLimitConfig
}

interface FakeCtx {
  id: string
  slots: Record<string, unknown>
  route: { name: string }
  ip: string
  requestedModel: string
  chat: unknown
  embedding: unknown
  responseHeaders: Record<string, string>
  usage: Usage | undefined
  upstreamStart: number
}

function ctx(o: { key?: string; team?: string; ip?: string; route?: string; model?: string; chat?: unknown; limits?: unknown } = {}): RequestCtx {
  const c: FakeCtx = {
    id: randomUUID(),
    slots: o.key === undefined ? {} : { principal: { keyId: o.key, role: 'user', ...(o.team ? { team: o.team } : {}), ...(o.limits ? { limits: o.limits } : {}) } },
    route: { name: o.route ?? 'chat' },
    ip: o.ip ?? '10.0.0.1',
    requestedModel: o.model ?? '',
    chat: o.chat,
    embedding: undefined,
    responseHeaders: {},
    usage: undefined,
    upstreamStart: 0,
  }
  return c as unknown as RequestCtx
}

type Inst = Required<Pick<PluginInstance, 'onRequestHeaders' | 'onRequestBody' | 'onComplete'>> & PluginInstance

async function make(c: Record<string, unknown>, metrics = new Metrics()): Promise<{ inst: Inst; metrics: Metrics }> {
  const inst = (await rateLimitPlugin.create(config(c), deps(metrics))) as Inst
  return { inst, metrics }
}

/** Runs both admission phases synchronously (local backend: no promise). */
function admitSync(inst: Inst, c: RequestCtx): LocalReply | undefined {
  const h = inst.onRequestHeaders(c)
  if (h instanceof Promise) throw new Error('local admission must be synchronous')
  if (h) return h
  const b = inst.onRequestBody(c)
  if (b instanceof Promise) throw new Error('local admission must be synchronous')
  return b ?? undefined
}

function done(inst: Inst, c: RequestCtx): void {
  void inst.onComplete(c, { status: 200, errorCode: undefined, details: 'ok', aborted: false })
}

function counter(m: Metrics, name: string, labels: string[], values: string[]): number {
  return m.counter(name, '', labels).labels(...values).value
}

function headersOf(inst: PluginInstance, c: RequestCtx): Record<string, string> {
  inst.onResponseHeaders?.(c)
  return c.responseHeaders
}

describe('rate-limit config', () => {
  it('rejects unknown keys, at the top and inside a limit', () => {
    expect(() => config({ limits: [], nope: 1 })).toThrow(/plugins\.rate-limit\.nope: unknown key/)
    expect(() => config({ limits: [{ name: 'a', scope: 'key', rpm: 1, rpd: 5 }] })).toThrow(/limits\[0\]\.rpd: unknown key/)
    expect(() => config({ limits: [{ name: 'a', scope: 'tenant', rpm: 1 }] })).toThrow(/rate-limit/)
    expect(() => config({ limits: [{ name: 'a', scope: 'key', rpm: 0 }] })).toThrow(/rpm/)
  })

  it('rejects a limit without any of rps, rpm, tpm, concurrency', () => {
    expect(() => config({ limits: [{ name: 'a', scope: 'key' }] })).toThrow(/rate-limit/)
  })

  it('is an io plugin whose defaults carry timeoutMs and failMode', () => {
    expect(rateLimitPlugin.sideEffects).toBe('io')
    const c = config({})
    expect(c).toMatchObject({ mode: 'enforce', backend: 'auto', timeoutMs: 50, failMode: 'local', headers: true, keyPrefix: 'mcp:rl:', estimate: { charsPerToken: 4, defaultMaxTokens: 1024 } })
  })

  it('rejects duplicate limit names and backend redis without a Redis service', async () => {
    await expect(make({ limits: [{ name: 'a', scope: 'key', rpm: 1 }, { name: 'a', scope: 'ip', rpm: 1 }] })).rejects.toThrow(/used twice/)
    await expect(make({ backend: 'redis' })).rejects.toThrow(/MCP_REDIS_URL/)
  })
})

describe('GCRA (local store, fake clock)', () => {
  const rpm100: GcraCheck = { kind: 'gcra', key: 'k', ...gcraParams(100, 60_000, 100), cost: 1 }

  it('admits exactly 100 of 300 at once for 100 rpm, then one every 600 ms, with exact retry times', () => {
    let now = 1_000_000
    const s = new LocalStore({ clock: () => now, sweepMs: 0 })
    let ok = 0
    let firstRefusal: number | undefined
    for (let i = 0; i < 300; i++) {
      const v = s.admit([rpm100])
      if (v.ok) ok++
      else firstRefusal ??= v.retryMs
    }
    expect(ok).toBe(100)
    expect(firstRefusal).toBeCloseTo(600, 6)
    now += 599
    expect(s.admit([rpm100]).ok).toBe(false)
    now += 1
    expect(s.admit([rpm100]).ok).toBe(true)
    expect(s.admit([rpm100]).ok).toBe(false)
    // A full period later, the whole burst is available again.
    now += 60_000
    let again = 0
    for (let i = 0; i < 150; i++) if (s.admit([rpm100]).ok) again++
    expect(again).toBe(100)
  })

  it('stays exact over long runs of fractional emission intervals (7 per minute, many periods)', () => {
    let now = 5e9
    const s = new LocalStore({ clock: () => now, sweepMs: 0 })
    const c: GcraCheck = { kind: 'gcra', key: 'k7', ...gcraParams(7, 60_000, 7), cost: 1 }
    let ok = 0
    for (let step = 0; step < 20 * 600; step++) { // 20 minutes in 100 ms steps, offered 10/s
      if (s.admit([c]).ok) ok++
      now += 100
    }
    expect(ok).toBe(7 + 7 * 20 - 1) // the initial burst, then one per T for 20 min (minus the boundary)
  })

  it('burst 1 spaces requests T apart', () => {
    let now = 0
    const s = new LocalStore({ clock: () => now, sweepMs: 0 })
    const c: GcraCheck = { kind: 'gcra', key: 'b', ...gcraParams(10, 1000, 1), cost: 1 }
    expect(s.admit([c]).ok).toBe(true)
    expect(s.admit([c]).ok).toBe(false)
    now += 100
    expect(s.admit([c]).ok).toBe(true)
  })

  it('is all-or-nothing: a failing check consumes nothing from the others', () => {
    const now = 0
    const s = new LocalStore({ clock: () => now, sweepMs: 0 })
    const roomy: GcraCheck = { kind: 'gcra', key: 'roomy', ...gcraParams(1000, 60_000, 1000), cost: 1 }
    const tight: GcraCheck = { kind: 'gcra', key: 'tight', ...gcraParams(1, 60_000, 1), cost: 1 }
    expect(s.admit([roomy, tight]).ok).toBe(true)
    for (let i = 0; i < 10; i++) expect(s.admit([roomy, tight]).ok).toBe(false)
    const v = s.admit([roomy])
    expect(v.remaining[0]).toBe(998) // only the first, admitted request was charged
  })

  it('sweeps idle keys', () => {
    let now = 0
    const s = new LocalStore({ clock: () => now, sweepMs: 0 })
    s.admit([{ ...rpm100, key: 'a' }])
    s.admit([{ ...rpm100, key: 'b' }])
    expect(s.size).toBe(2)
    now += 601
    s.sweep()
    expect(s.size).toBe(0)
  })
})

describe('rate-limit plugin (unit, fake context)', () => {
  it('rpm 100 per key: 100 of 300 admitted in a burst; the rest get 429 with Retry-After and are counted', async () => {
    const { inst, metrics } = await make({ limits: [{ name: 'per-key', scope: 'key', rpm: 100 }] })
    let ok = 0
    let last: LocalReply | undefined
    for (let i = 0; i < 300; i++) {
      const r = admitSync(inst, ctx({ key: 'k1' }))
      if (r) last = r
      else ok++
    }
    expect(ok).toBe(100)
    expect(last).toMatchObject({ code: 'MCP_ERR_LIMIT_RATE', details: 'rate_limit.rpm', params: { limit: 'per-key.rpm', count: 100 } })
    expect(last!.headers!['retry-after']).toBe('1')
    expect(Number(last!.headers!['retry-after-ms'])).toBeGreaterThan(500)
    expect(Number(last!.headers!['retry-after-ms'])).toBeLessThanOrEqual(600)
    expect(counter(metrics, 'mcp_plugin_rate_limit_rejected_total', ['limit', 'mode'], ['per-key.rpm', 'enforce'])).toBe(200)
    inst.close?.()
  })

  it('rps: 5 of 20 at once, Retry-After rounds 200 ms up to 1 s', async () => {
    const { inst } = await make({ limits: [{ name: 'ip', scope: 'ip', rps: 5 }] })
    const replies = Array.from({ length: 20 }, () => admitSync(inst, ctx({ ip: '192.0.2.1' })))
    expect(replies.filter((r) => r === undefined)).toHaveLength(5)
    const r = replies[19]!
    expect(r.headers).toMatchObject({ 'retry-after': '1' })
    expect(Number(r.headers!['retry-after-ms'])).toBeLessThanOrEqual(200)
    inst.close?.()
  })

  it('Retry-After is the whole seconds until the next admission, rounded up', async () => {
    const { inst } = await make({ limits: [{ name: 'slow', scope: 'key', rpm: 2, burst: 1 }] })
    expect(admitSync(inst, ctx({ key: 'a' }))).toBeUndefined()
    const r = admitSync(inst, ctx({ key: 'a' }))!
    expect(r.headers!['retry-after']).toBe('30') // T = 30 s
    expect(Number(r.headers!['retry-after-ms'])).toBeGreaterThan(29_900)
    inst.close?.()
  })

  it('scopes isolate: two keys, two IPs, keyless requests skip key limits', async () => {
    const { inst } = await make({ limits: [{ name: 'k', scope: 'key', rpm: 2 }, { name: 'i', scope: 'ip', rpm: 3 }] })
    const run = (o: Parameters<typeof ctx>[0], n: number): number => Array.from({ length: n }, () => admitSync(inst, ctx(o))).filter((r) => r === undefined).length
    expect(run({ key: 'a', ip: '10.0.0.1' }, 5)).toBe(2)
    expect(run({ key: 'b', ip: '10.0.0.1' }, 5)).toBe(1) // ip budget 3: 2 used by a
    expect(run({ key: 'c', ip: '10.0.0.2' }, 5)).toBe(2)
    expect(run({ ip: '10.0.0.3' }, 5)).toBe(3) // no principal: only the ip limit applies
    inst.close?.()
  })

  it('team, model and route scopes, combined scopes and match', async () => {
    const { inst } = await make({
      limits: [
        { name: 'team', scope: 'team', rpm: 2 },
        { name: 'mini', scope: ['key', 'model'], rpm: 1, match: { model: ['gpt-4o-mini*'] } },
        { name: 'emb', scope: 'route', rpm: 1, match: { route: ['embeddings'] } },
      ],
    })
    expect(admitSync(inst, ctx({ key: 'a', team: 't1' }))).toBeUndefined()
    expect(admitSync(inst, ctx({ key: 'b', team: 't1' }))).toBeUndefined()
    expect(admitSync(inst, ctx({ key: 'c', team: 't1' }))?.params).toMatchObject({ limit: 'team.rpm' })
    expect(admitSync(inst, ctx({ key: 'x', model: 'gpt-4o-mini-2024' }))).toBeUndefined()
    expect(admitSync(inst, ctx({ key: 'x', model: 'gpt-4o-mini-2024' }))?.params).toMatchObject({ limit: 'mini.rpm' })
    expect(admitSync(inst, ctx({ key: 'y', model: 'gpt-4o-mini-2024' }))).toBeUndefined()
    expect(admitSync(inst, ctx({ key: 'x', model: 'gpt-4o' }))).toBeUndefined()
    expect(admitSync(inst, ctx({ route: 'embeddings' }))).toBeUndefined()
    expect(admitSync(inst, ctx({ route: 'embeddings' }))?.params).toMatchObject({ limit: 'emb.rpm' })
    expect(admitSync(inst, ctx({ route: 'chat' }))).toBeUndefined()
    inst.close?.()
  })

  it('request-rate limits are decided before the body; token and model limits after it', async () => {
    const { inst } = await make({ limits: [{ name: 'k', scope: 'key', rpm: 1 }, { name: 'm', scope: 'model', rpm: 1 }] })
    const a = ctx({ key: 'a', model: 'm1' })
    expect(inst.onRequestHeaders(a)).toBeUndefined()
    expect(inst.onRequestBody(a)).toBeUndefined()
    const b = ctx({ key: 'a', model: 'm1' })
    expect(inst.onRequestHeaders(b)).toMatchObject({ details: 'rate_limit.rpm', params: { limit: 'k.rpm' } })
    const c = ctx({ key: 'b', model: 'm1' })
    expect(inst.onRequestHeaders(c)).toBeUndefined()
    expect(inst.onRequestBody(c)).toMatchObject({ params: { limit: 'm.rpm' } })
    inst.close?.()
  })

  it('tpm: charges the estimate at admission, corrects it with the actual usage, refunds requests never sent', async () => {
    const { inst } = await make({ limits: [{ name: 'tok', scope: 'key', tpm: 1000 }] })
    const chat = (max: number): unknown => ({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(400) }], max_tokens: max })
    // 400 chars / 4 = 100, + 4 framing, + 100 max_tokens = 204
    const a = ctx({ key: 'k', chat: chat(100) })
    expect(admitSync(inst, a)).toBeUndefined()
    expect(headersOf(inst, a)).toMatchObject({ 'x-ratelimit-limit-tokens': '1000', 'x-ratelimit-remaining-tokens': '796' })
    ;(a as unknown as FakeCtx).upstreamStart = 1
    ;(a as unknown as FakeCtx).usage = { prompt_tokens: 30, completion_tokens: 20, total_tokens: 50 }
    done(inst, a) // refund 154
    const b = ctx({ key: 'k', chat: chat(100) })
    expect(admitSync(inst, b)).toBeUndefined()
    const remB = Number(headersOf(inst, b)['x-ratelimit-remaining-tokens'])
    expect(remB).toBeGreaterThanOrEqual(745) // 1000 - 50 - 204 (+ refill)
    expect(remB).toBeLessThanOrEqual(748)
    done(inst, b) // never sent upstream (upstreamStart 0): full refund
    const c = ctx({ key: 'k', chat: chat(100) })
    admitSync(inst, c)
    expect(Number(headersOf(inst, c)['x-ratelimit-remaining-tokens'])).toBeGreaterThanOrEqual(remB)
    inst.close?.()
  })

  it('tpm: without usage, the cost meter\'s estimate of what was used corrects the charge; without one the admission estimate stands', async () => {
    const { inst } = await make({ limits: [{ name: 'tok', scope: 'key', tpm: 1000 }] })
    const chat = (): unknown => ({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(400) }], max_tokens: 100 })
    const remaining = (): number => { const p = ctx({ key: 'k', chat: chat() }); admitSync(inst, p); const r = Number(headersOf(inst, p)['x-ratelimit-remaining-tokens']); done(inst, p); return r }
    // A stream the client left: no usage; the cost meter estimated 104 prompt and 6 output tokens (charged 204 at admission).
    const a = ctx({ key: 'k', chat: chat() })
    expect(admitSync(inst, a)).toBeUndefined()
    ;(a as unknown as FakeCtx).upstreamStart = 1
    ;(a as unknown as { cost: unknown }).cost = { pico: 0, usd: 0, inputTokens: 104, cachedTokens: 0, cacheWriteTokens: 0, outputTokens: 6, reasoningTokens: 0, unknown: false, estimated: true }
    done(inst, a)
    const afterA = remaining()
    expect(afterA).toBeGreaterThanOrEqual(1000 - 110 - 204)
    expect(afterA).toBeLessThanOrEqual(1000 - 110 - 204 + 3)
    // No usage and nothing estimated: the 204 of the admission stay charged.
    const b = ctx({ key: 'k', chat: chat() })
    expect(admitSync(inst, b)).toBeUndefined()
    ;(b as unknown as FakeCtx).upstreamStart = 1
    done(inst, b)
    const afterB = remaining()
    expect(afterB).toBeGreaterThanOrEqual(afterA - 204)
    expect(afterB).toBeLessThanOrEqual(afterA - 204 + 3)
    inst.close?.()
  })

  it('tpm: a request over the remaining tokens is refused with the wait for them; one larger than the bucket is charged the bucket', async () => {
    const { inst } = await make({ limits: [{ name: 'tok', scope: 'key', tpm: 600 }] })
    const chat = (max: number): unknown => ({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: max })
    expect(admitSync(inst, ctx({ key: 'k', chat: chat(400) }))).toBeUndefined() // 1 + 4 + 400 = 405
    const r = admitSync(inst, ctx({ key: 'k', chat: chat(400) }))!
    expect(r).toMatchObject({ code: 'MCP_ERR_LIMIT_RATE', details: 'rate_limit.tpm' })
    // 600 tpm = 100 ms per token; 210 tokens short → 21 s
    expect(Number(r.headers!['retry-after-ms'])).toBeGreaterThan(20_900)
    expect(r.headers!['retry-after']).toBe('21')
    const other = ctx({ key: 'other', chat: chat(100_000) })
    expect(admitSync(inst, other)).toBeUndefined()
    expect(headersOf(inst, other)['x-ratelimit-remaining-tokens']).toBe('0')
    inst.close?.()
  })

  it('concurrency: released on completion', async () => {
    const { inst, metrics } = await make({ limits: [{ name: 'par', scope: 'key', concurrency: 2 }] })
    const a = ctx({ key: 'k' })
    const b = ctx({ key: 'k' })
    expect(admitSync(inst, a)).toBeUndefined()
    expect(admitSync(inst, b)).toBeUndefined()
    const c = ctx({ key: 'k' })
    expect(admitSync(inst, c)).toMatchObject({ code: 'MCP_ERR_LIMIT_CONCURRENCY', details: 'rate_limit.concurrency', headers: { 'retry-after': '1' } })
    done(inst, c) // a refused request releases nothing
    expect(admitSync(inst, ctx({ key: 'k' }))).toBeDefined()
    done(inst, a)
    done(inst, a) // twice is harmless
    expect(admitSync(inst, ctx({ key: 'k' }))).toBeUndefined()
    expect(admitSync(inst, ctx({ key: 'k' }))).toBeDefined()
    expect(counter(metrics, 'mcp_plugin_rate_limit_rejected_total', ['limit', 'mode'], ['par.concurrency', 'enforce'])).toBe(3)
    inst.close?.()
  })

  it('shadow mode admits everything, counts would-be rejections, sends no headers', async () => {
    const { inst, metrics } = await make({ mode: 'shadow', limits: [{ name: 'k', scope: 'key', rpm: 2 }] })
    const cs = Array.from({ length: 5 }, () => ctx({ key: 'a' }))
    for (const c of cs) expect(admitSync(inst, c)).toBeUndefined()
    expect(counter(metrics, 'mcp_plugin_rate_limit_rejected_total', ['limit', 'mode'], ['k.rpm', 'shadow'])).toBe(3)
    expect(counter(metrics, 'mcp_plugin_rate_limit_rejected_total', ['limit', 'mode'], ['k.rpm', 'enforce'])).toBe(0)
    expect(headersOf(inst, cs[0]!)).toEqual({})
    inst.close?.()
  })

  it('headers: the tightest request limit, OpenAI names and duration format', async () => {
    const { inst } = await make({ limits: [{ name: 'm', scope: 'key', rpm: 100 }, { name: 's', scope: 'key', rps: 3 }] })
    const a = ctx({ key: 'a' })
    admitSync(inst, a)
    expect(headersOf(inst, a)).toEqual({ 'x-ratelimit-limit-requests': '3', 'x-ratelimit-remaining-requests': '2', 'x-ratelimit-reset-requests': '334ms' })
    for (let i = 0; i < 2; i++) admitSync(inst, ctx({ key: 'a' }))
    const refused = ctx({ key: 'a' })
    expect(admitSync(inst, refused)).toBeDefined()
    expect(headersOf(inst, refused)).toMatchObject({ 'x-ratelimit-limit-requests': '3', 'x-ratelimit-remaining-requests': '0' })
    expect(formatDuration(20)).toBe('20ms')
    expect(formatDuration(1500)).toBe('1.5s')
    expect(formatDuration(360_000)).toBe('6m0s')
    expect(formatDuration(3_723_000)).toBe('1h2m3s')
    inst.close?.()
  })

  it('a key record\'s own limits replace key-scoped values and add missing ones', async () => {
    const { inst } = await make({ limits: [{ name: 'k', scope: 'key', rpm: 2 }] })
    const n = (o: Parameters<typeof ctx>[0], count: number): number => Array.from({ length: count }, () => admitSync(inst, ctx(o))).filter((r) => r === undefined).length
    expect(n({ key: 'big', limits: { rpm: 5 } }, 10)).toBe(5)
    expect(n({ key: 'std' }, 10)).toBe(2)
    const r = admitSync(inst, ctx({ key: 'par', limits: { concurrency: 1 } }))
    expect(r).toBeUndefined()
    expect(admitSync(inst, ctx({ key: 'par', limits: { concurrency: 1 } }))).toMatchObject({ params: { limit: 'principal.concurrency' } })
    inst.close?.()
  })

  it('a key record\'s implicit limits count model calls only: not GET /v1/models, not count_tokens', async () => {
    const { inst } = await make({ limits: [] })
    const call = (route: string): LocalReply | undefined => admitSync(inst, ctx({ key: 'cc', limits: { rpm: 2 }, route }))
    for (let i = 0; i < 5; i++) {
      expect(call('count_tokens')).toBeUndefined()
      expect(call('models')).toBeUndefined()
    }
    expect(call('messages')).toBeUndefined()
    expect(call('chat')).toBeUndefined()
    expect(call('messages')).toMatchObject({ code: 'MCP_ERR_LIMIT_RATE', params: { limit: 'principal.rpm' } })
    expect(call('execute')).toMatchObject({ params: { limit: 'principal.rpm' } })
    // A configured key limit without match.route counts every route, count_tokens included (the operator's choice).
    const { inst: all } = await make({ limits: [{ name: 'k', scope: 'key', rpm: 2 }] })
    const viaRule = (route: string): LocalReply | undefined => admitSync(all, ctx({ key: 'cc2', route }))
    expect(viaRule('count_tokens')).toBeUndefined()
    expect(viaRule('models')).toBeUndefined()
    expect(viaRule('messages')).toMatchObject({ params: { limit: 'k.rpm' } })
    inst.close?.()
    all.close?.()
  })

  it('a refused request-rate key is answered from the deny cache until its retry time', async () => {
    const { inst, metrics } = await make({ limits: [{ name: 'k', scope: 'key', rpm: 1 }] })
    admitSync(inst, ctx({ key: 'a' }))
    const first = admitSync(inst, ctx({ key: 'a' }))!
    const second = admitSync(inst, ctx({ key: 'a' }))!
    expect(second.code).toBe('MCP_ERR_LIMIT_RATE')
    expect(Number(second.headers!['retry-after-ms'])).toBeLessThanOrEqual(Number(first.headers!['retry-after-ms']))
    expect(counter(metrics, 'mcp_plugin_rate_limit_rejected_total', ['limit', 'mode'], ['k.rpm', 'enforce'])).toBe(2)
    inst.close?.()
  })

  // Regression: a refusal from the deny cache said x-ratelimit-reset-requests = its retry time (200 ms here),
  // while the store's refusal just before said when the rule is back to idle (1 s).
  it('a refusal from the deny cache reports the same reset (back to idle) as the store\'s refusal, less the time since', async () => {
    const { inst } = await make({ limits: [{ name: 'k', scope: 'key', rps: 5 }] })
    for (let i = 0; i < 5; i++) expect(admitSync(inst, ctx({ key: 'a' }))).toBeUndefined()
    const fromStore = ctx({ key: 'a' })
    expect(admitSync(inst, fromStore)?.headers?.['retry-after-ms']).toMatch(/^(19\d|200)$/)
    const fromCache = ctx({ key: 'a' })
    expect(admitSync(inst, fromCache)?.code).toBe('MCP_ERR_LIMIT_RATE')
    const reset = (c: RequestCtx): number => durationMs(headersOf(inst, c)['x-ratelimit-reset-requests']!)
    expect(reset(fromStore)).toBeGreaterThan(900)
    expect(reset(fromCache)).toBeLessThanOrEqual(reset(fromStore))
    expect(reset(fromCache)).toBeGreaterThan(reset(fromStore) - 50)
    expect(headersOf(inst, fromCache)['x-ratelimit-remaining-requests']).toBe('0')
    inst.close?.()
  })
})

/** Reads back formatDuration's output ("20ms", "1.5s", "6m0s", "1h2m3s"). */
function durationMs(d: string): number {
  const ms = /^(\d+)ms$/.exec(d)
  if (ms) return Number(ms[1])
  const m = /^(?:(\d+)h)?(?:(\d+)m)?([\d.]+)s$/.exec(d)
  if (!m) throw new Error(`not a duration: ${d}`)
  return (Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3])) * 1000
}

describe('rate-limit through the gateway', () => {
  let mock: OpenAIMock
  let tg: TestGateway

  beforeAll(async () => {
    mock = await startOpenAIMock()
    tg = await startGateway({
      providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-upstream-rl' } },
      plugins: {
        'rate-limit': {
          limits: [
            { name: 'per-key', scope: 'key', rpm: 5, concurrency: 1 },
            { name: 'tokens', scope: 'key', tpm: 100_000 },
          ],
        },
      },
      chains: { default: ['request-id', 'auth', 'rate-limit'] },
    })
  })
  afterAll(async () => {
    await tg?.close()
    await mock?.close()
  })

  function chat(stream = false, signal?: AbortSignal): Promise<Response> {
    return fetch(`${tg.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'hello there' }], max_tokens: 50, stream }),
      ...(signal ? { signal } : {}),
    })
  }

  it('sends x-ratelimit-* headers, and a 429 with Retry-After and the error code once over the limit; concurrency is released on client abort', async () => {
    const r1 = await chat()
    expect(r1.status).toBe(200)
    await r1.json()
    expect(r1.headers.get('x-ratelimit-limit-requests')).toBe('5')
    expect(r1.headers.get('x-ratelimit-remaining-requests')).toBe('4')
    expect(r1.headers.get('x-ratelimit-reset-requests')).toMatch(/^\d+(\.\d+)?s$|^\d+ms$/)
    expect(r1.headers.get('x-ratelimit-limit-tokens')).toBe('100000')
    expect(Number(r1.headers.get('x-ratelimit-remaining-tokens'))).toBeLessThan(100_000)

    // Concurrency 1: a stream in flight holds the slot; aborting it frees the slot.
    mock.fault = 'chunkDelayMs:100'
    const ac = new AbortController()
    const s = await chat(true, ac.signal)
    expect(s.status).toBe(200)
    const reader = s.body!.getReader()
    await reader.read()
    const busy = await chat()
    expect(busy.status).toBe(429)
    expect(busy.headers.get('x-mcp-error-code')).toBe('MCP_ERR_LIMIT_CONCURRENCY')
    expect(busy.headers.get('retry-after')).toBe('1')
    await busy.text()
    ac.abort()
    await mock.waitForAbort(3000)
    mock.fault = null
    let freed = false
    for (let i = 0; i < 50 && !freed; i++) {
      await new Promise((r) => setTimeout(r, 10))
      // Wait (without spending rpm) until the gateway finished the aborted request: in-flight back to 0.
      const m = await (await fetch(`${tg.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).text()
      freed = /^mcp_requests_in_flight 0$/m.test(m)
    }
    expect(freed).toBe(true)
    const after = await chat()
    expect(after.status).toBe(200)
    await after.text()

    // rpm 5, all-or-nothing: the concurrency refusal consumed nothing, so r1, the stream, `after` = 3 so far.
    for (let i = 0; i < 2; i++) {
      const ok = await chat()
      expect(ok.status).toBe(200)
      await ok.text()
    }
    const over = await chat()
    expect(over.status).toBe(429)
    expect(over.headers.get('x-mcp-error-code')).toBe('MCP_ERR_LIMIT_RATE')
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    expect(over.headers.get('x-ratelimit-remaining-requests')).toBe('0')
    const body = await over.json() as { error: { code: string; type: string; message: string } }
    expect(body.error).toMatchObject({ code: 'MCP_ERR_LIMIT_RATE', type: 'rate_limit_error' })
    expect(body.error.message).toContain('per-key.rpm')
  })
})

describe('actualTokens: the tokens a finished request used, from the usage the upstream reported', () => {
  it('the total when positive, else prompt + completion; only non-negative finite numbers count', async () => {
    const { actualTokens } = await import('./tokens.ts')
    const u = (o: Record<string, unknown>): Usage => o as unknown as Usage
    expect(actualTokens(u({ prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 }))).toBe(7)
    expect(actualTokens(u({ prompt_tokens: 5, total_tokens: 0 }))).toBe(5) // embeddings-like, total 0
    expect(actualTokens(u({ prompt_tokens: 5 }))).toBe(5)
    // A negative total would hand tokens back to the limit; strings would be concatenated ("x" + 0).
    expect(actualTokens(u({ prompt_tokens: 2, completion_tokens: 3, total_tokens: -1000 }))).toBe(5)
    expect(actualTokens(u({ prompt_tokens: 'x', completion_tokens: 3, total_tokens: '9' }))).toBe(3)
    expect(actualTokens(u({ prompt_tokens: 'x', total_tokens: 'y' }))).toBeUndefined()
    expect(actualTokens(u({ total_tokens: 0 }))).toBe(0)
    expect(actualTokens(undefined)).toBeUndefined()
  })
})
