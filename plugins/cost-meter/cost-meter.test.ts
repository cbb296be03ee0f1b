/**
 * cost-meter: config (defaults, unknown keys, dates), then the meter on a fake context — price resolution
 * (config by provider name, then by type, wildcard, dated overrides, azure → openai, Gemini resource names),
 * usage hygiene, costOf (computed once, not before the usage is known), the billing rules (no answer = 0,
 * no usage = estimate, unknown model = flagged) — asserting the result and the counters. The integration
 * tests through the running gateway are in test/cost/.
 */
import pino from 'pino'
import { beforeAll, describe, expect, it } from 'vitest'
import type { RequestCtx } from '../../gateway/context.ts'
import { loadCatalogue, PriceCatalogue } from '../../gateway/cost/catalogue.ts'
import { loadTokenizer, tokenizerLoaded } from '../../gateway/cost/estimate.ts'
import { costJson, costOf, CostMeter, normalizeUsage } from '../../gateway/cost/meter.ts'
import { Metrics } from '../../gateway/metrics.ts'
import { validatePluginConfig } from '../../gateway/pipeline/compile.ts'
import type { PluginDeps } from '../../gateway/pipeline/types.ts'
import type { Usage } from '../../providers/types.ts'
import type { UsageRecord } from '../../store/usage-rollups.ts'
import { costMeterPlugin } from './index.ts'

const OPENAI: Usage = { prompt_tokens: 1200, completion_tokens: 300, total_tokens: 1500, prompt_tokens_details: { cached_tokens: 1024 }, completion_tokens_details: { reasoning_tokens: 128 } }

interface FakeCtx {
  id: string
  providerName: string
  model: string
  requestedModel: string
  adapter: { type: string } | undefined
  usage: Usage | undefined
  rawBody: Buffer[] | undefined
  upstreamStart: number
  upstreamHeaders: number
  cost: unknown
  chat: unknown
  embedding: unknown
  slots: Record<string, unknown>
  res: { writableFinished: boolean; destroyed: boolean }
}

function fakeCtx(over: Partial<FakeCtx> = {}): RequestCtx & FakeCtx {
  return {
    id: 'req-1', providerName: 'oa', model: 'gpt-4o', requestedModel: 'oa/gpt-4o', adapter: { type: 'openai' },
    usage: undefined, rawBody: undefined, upstreamStart: 1, upstreamHeaders: 2, cost: undefined,
    chat: { model: 'gpt-4o', messages: [{ role: 'user', content: 'Hello there' }] }, embedding: undefined,
    slots: {}, res: { writableFinished: true, destroyed: false },
    ...over,
  } as unknown as RequestCtx & FakeCtx
}

function meter(opts: Partial<ConstructorParameters<typeof CostMeter>[0]> = {}): { m: CostMeter; metrics: Metrics; warnings: unknown[] } {
  const warnings: unknown[] = []
  const logger = pino({ level: 'warn' }, { write: (s: string) => { warnings.push(JSON.parse(s)) } })
  const metrics = new Metrics()
  return { m: new CostMeter({ metrics, logger, providerTypeMap: { 'azure-openai': 'openai' }, ...opts }), metrics, warnings }
}

beforeAll(async () => { await loadTokenizer() })

describe('cost-meter config', () => {
  it('defaults: no overrides, estimate when usage is missing', () => {
    const cfg = validatePluginConfig(costMeterPlugin, {}, 'plugins.cost-meter')
    expect(cfg).toEqual({ pricing: { models: [] }, providerTypeMap: {}, estimateWhenMissing: true, maxSeries: 1000 })
    expect(Object.isFrozen(cfg)).toBe(true)
  })

  it('a price entry gets effectiveFrom 1970-01-01 unless given', () => {
    const cfg = validatePluginConfig(costMeterPlugin, { pricing: { models: [{ provider: 'ollama', model: '*', input: 0, output: 0 }] } }, 'plugins.cost-meter')
    expect(cfg).toMatchObject({ pricing: { models: [{ provider: 'ollama', model: '*', input: 0, output: 0, effectiveFrom: '1970-01-01' }] } })
  })

  it('rejects unknown keys and bad values, naming the field', () => {
    const v = (c: unknown) => () => validatePluginConfig(costMeterPlugin, c, 'plugins.cost-meter')
    expect(v({ prices: [] })).toThrow(/plugins\.cost-meter\.prices: unknown key/)
    expect(v({ pricing: { models: [{ provider: 'x', model: 'y', input: -1, output: 1 }] } })).toThrow(/pricing\.models\[0\]\.input/)
    expect(v({ pricing: { models: [{ provider: 'x', model: 'y', input: 1 }] } })).toThrow(/pricing\.models\[0\]\.output: is required/)
    expect(v({ pricing: { models: [{ provider: 'x', model: 'y', input: 1, output: 1, cost: 2 }] } })).toThrow(/pricing\.models\[0\]\.cost: unknown key/)
    expect(v({ pricing: { models: [{ provider: 'x', model: 'y', input: 1, output: 1, effectiveFrom: 'soon' }] } })).toThrow(/effectiveFrom/)
    expect(v({ estimateWhenMissing: 'yes' })).toThrow(/estimateWhenMissing/)
  })

  it('create() refuses an impossible date', async () => {
    const deps = { services: {}, logger: pino({ level: 'silent' }), metrics: new Metrics(), env: { adminKey: undefined, production: false } } satisfies PluginDeps
    const cfg = validatePluginConfig(costMeterPlugin, { pricing: { models: [{ provider: 'x', model: 'y', input: 1, output: 1, effectiveFrom: '2025-02-30T99:00Z' }] } }, 'plugins.cost-meter')
    await expect(Promise.resolve(costMeterPlugin.create(cfg as never, deps))).rejects.toThrow(/effectiveFrom: not a valid date/)
    // Date.parse rolls these over (Feb 30 is Mar 2, 24:00 the next day): refused, not moved.
    for (const bad of ['2025-02-30', '2025-02-29', '2025-04-31T10:00:00Z', '2025-01-01T24:00Z']) {
      const c = validatePluginConfig(costMeterPlugin, { pricing: { models: [{ provider: 'x', model: 'y', input: 1, output: 1, effectiveFrom: bad }] } }, 'plugins.cost-meter')
      await expect(Promise.resolve(costMeterPlugin.create(c as never, deps)), bad).rejects.toThrow(/pricing\.models\[0\]\.effectiveFrom: not a valid date/)
    }
  })
})

describe('price resolution', () => {
  const at = Date.parse('2026-01-01')

  it('shipped prices by provider type; azure-openai priced as openai; Gemini resource names', () => {
    const { m } = meter()
    const cat = loadCatalogue()
    expect(m.pricesFor('oa', 'openai', 'gpt-4o', at)).toEqual(cat.lookup('openai', 'gpt-4o', at))
    expect(m.pricesFor('az', 'azure-openai', 'gpt-4o-mini', at)).toEqual(cat.lookup('openai', 'gpt-4o-mini', at))
    expect(m.pricesFor('gg', 'google', 'models/gemini-2.5-flash', at)).toEqual(cat.lookup('google', 'gemini-2.5-flash', at))
    expect(m.pricesFor('oa', 'openai', 'gpt-4o-2024-08-06', at)).toEqual(cat.lookup('openai', 'gpt-4o', at))
    expect(m.pricesFor('ol', 'ollama', 'llama3.2', at)).toBeUndefined()
    expect(m.pricesFor('x', 'openai-compatible', 'gpt-4o', at)).toBeUndefined()
  })

  it('config entries: by provider name first, then by type; `*` prices every model; they win over shipped prices', () => {
    const { m } = meter({
      overrides: [
        { provider: 'ollama', model: '*', input: 0, output: 0, effectiveFrom: '1970-01-01' },
        { provider: 'big-box', model: 'llama3.2', input: 0.3, output: 0.6, effectiveFrom: '1970-01-01' },
        { provider: 'openai', model: 'gpt-4o', input: 2, output: 8, effectiveFrom: '1970-01-01' },
      ],
    })
    expect(m.pricesFor('ol', 'ollama', 'qwen3', at)).toMatchObject({ input: 0, output: 0 })
    expect(m.pricesFor('big-box', 'ollama', 'llama3.2', at)).toMatchObject({ input: 300_000, output: 600_000 })
    expect(m.pricesFor('oa', 'openai', 'gpt-4o', at)).toMatchObject({ input: 2_000_000, cachedInput: 2_000_000, output: 8_000_000, reasoning: 8_000_000 })
  })

  it('a name is priced as a catalogue entry it starts with only when it is a snapshot of it (a date, a number, -latest)', () => {
    const { m } = meter({ overrides: [{ provider: 'openai', model: 'gpt-4o', input: 2, output: 8, effectiveFrom: '1970-01-01' }] })
    const cat = loadCatalogue()
    // Before, the gpt-4o entry priced gpt-4o-mini (16 times its price) because the name starts with 'gpt-4o-'.
    expect(m.pricesFor('oa', 'openai', 'gpt-4o-mini', at)).toEqual(cat.lookup('openai', 'gpt-4o-mini', at))
    expect(m.pricesFor('oa', 'openai', 'gpt-4o-mini', at)!.input).toBeLessThan(2_000_000)
    for (const snapshot of ['gpt-4o-2024-08-06', 'gpt-4o-20240806', 'gpt-4o@20240806', 'gpt-4o-latest']) {
      expect(m.pricesFor('oa', 'openai', snapshot, at), snapshot).toMatchObject({ input: 2_000_000 })
    }
    expect(m.pricesFor('an', 'anthropic', 'claude-sonnet-4-5-20250929', at)).toEqual(cat.lookup('anthropic', 'claude-sonnet-4-5', at))
    expect(m.pricesFor('an', 'anthropic', 'claude-sonnet-4-20250514', at)).toEqual(cat.lookup('anthropic', 'claude-sonnet-4', at))
    // Another model, not a snapshot: unknown (reported), not a sibling's price.
    for (const other of ['gpt-4o-audio-preview', 'gpt-4o-x', 'claude-sonnet-4-6', 'gpt-4o-']) {
      expect(m.pricesFor('oa', other.startsWith('claude') ? 'anthropic' : 'openai', other, at), other).toBeUndefined()
    }
  })

  it('a future-dated config entry applies from its date; before it the shipped price does', () => {
    const { m } = meter({ overrides: [{ provider: 'openai', model: 'gpt-4o', input: 1, output: 4, effectiveFrom: '2030-01-01' }] })
    expect(m.pricesFor('oa', 'openai', 'gpt-4o', at)).toMatchObject({ input: 2_500_000 })
    expect(m.pricesFor('oa', 'openai', 'gpt-4o', Date.parse('2030-06-01'))).toMatchObject({ input: 1_000_000 })
  })

  it('providerTypeMap can undo the azure mapping', () => {
    const { m } = meter({ providerTypeMap: { 'azure-openai': 'azure-openai' } })
    expect(m.pricesFor('az', 'azure-openai', 'gpt-4o', at)).toBeUndefined()
  })
})

describe('usage hygiene', () => {
  it('clamps what a provider reports into non-negative integers, details within totals', () => {
    expect(normalizeUsage({ prompt_tokens: 10.7, completion_tokens: -3, total_tokens: 0, prompt_tokens_details: { cached_tokens: 50 }, completion_tokens_details: { reasoning_tokens: 9 } }))
      .toEqual({ prompt_tokens: 10, completion_tokens: 0, total_tokens: 10, prompt_tokens_details: { cached_tokens: 10, cache_creation_tokens: 0 } })
    expect(normalizeUsage({ prompt_tokens: 'x', completion_tokens: Infinity } as unknown as Usage)).toEqual({ prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 })
  })

  it('a dated price change applies from its date, not up to a minute later; a request is priced as it arrived', () => {
    // Regression: prices were cached per model for 60 s, so answers after a change were priced at the old price for
    // up to a minute (and disagreed with the budget's reservations), and a request was priced when it completed.
    const change = Date.parse('2026-05-01T12:00:00Z')
    let now = change - 10_000
    const { m } = meter({ now: () => now, overrides: [{ provider: 'openai', model: 'gpt-4o', input: 250, output: 1000, effectiveFrom: '2026-05-01T12:00:00Z' }] })
    const usage = { prompt_tokens: 1000, completion_tokens: 0, total_tokens: 1000 } as Usage
    const priced = (arrivedAt: number): number => {
      const ctx = fakeCtx({ usage })
      ;(ctx as unknown as { arrivedAt: number }).arrivedAt = arrivedAt
      ctx.slots['costMeter'] = m
      return costOf(ctx)!.pico
    }
    const old = 1000 * 2_500_000
    expect(priced(now)).toBe(old)
    now = change + 1000
    expect(priced(now)).toBe(1000 * 250_000_000)
    // Arrived before the change, finished after it: the old price.
    expect(priced(change - 1)).toBe(old)
    expect(priced(change)).toBe(1000 * 250_000_000)
    expect(m.nextChangeAfter(change - 1)).toBe(change)
  })

  it('embeddings usage (no completion_tokens) is priced on input', () => {
    const { m } = meter()
    const ctx = fakeCtx({ model: 'text-embedding-3-small', usage: { prompt_tokens: 1000, total_tokens: 1000 } as Usage })
    ctx.slots['costMeter'] = m
    expect(costOf(ctx)).toMatchObject({ inputTokens: 1000, outputTokens: 0, pico: 1000 * 20_000, unknown: false })
  })
})

describe('costOf and the billing rules', () => {
  it('computes once, from the usage, equal to the catalogue; the same object for every reader', () => {
    const { m } = meter()
    const ctx = fakeCtx({ usage: OPENAI })
    expect(costOf(ctx)).toBeUndefined() // no cost meter on the route
    ctx.slots['costMeter'] = m
    const c = costOf(ctx)
    expect(c).toEqual(PriceCatalogue.cost(loadCatalogue().lookup('openai', 'gpt-4o'), OPENAI))
    expect(c?.pico).toBe(4_720_000_000)
    expect(costOf(ctx)).toBe(c)
    expect(ctx.cost).toBe(c)
    expect(costJson(c)).toEqual({ usd: 0.00472, pico: '4720000000', estimated: false, unknown: false, tokens: { input: 176, cached: 1024, cache_write: 0, output: 172, reasoning: 128 } })
  })

  it('is not computed before the usage is known or the response finished', () => {
    const { m } = meter()
    const ctx = fakeCtx({ res: { writableFinished: false, destroyed: false } })
    ctx.slots['costMeter'] = m
    expect(costOf(ctx)).toBeUndefined()
    ctx.usage = OPENAI
    expect(costOf(ctx)?.pico).toBe(4_720_000_000)
  })

  it('no answer (the upstream never reached 2xx): cost 0, not estimated, not unknown, nothing counted', () => {
    const { m, metrics } = meter()
    const ctx = fakeCtx({ upstreamHeaders: 0, model: 'no-such-model' })
    ctx.slots['costMeter'] = m
    const c = costOf(ctx)!
    expect(c).toMatchObject({ pico: 0, estimated: false, unknown: false })
    m.count(ctx, c)
    expect(metrics.render()).not.toMatch(/mcp_cost_unknown_model_total\{/)
  })

  it('no usage: estimated with the tokenizer (prompt; completion from a pass-through body), flagged and counted', () => {
    expect(tokenizerLoaded()).toBe(true)
    const { m, metrics } = meter()
    const body = Buffer.from(JSON.stringify({ choices: [{ message: { content: 'Hi! How can I help?' } }] }))
    const ctx = fakeCtx({ rawBody: [body] })
    ctx.slots['costMeter'] = m
    const c = costOf(ctx)!
    expect(c.estimated).toBe(true)
    expect(c.inputTokens).toBeGreaterThan(3)
    expect(c.outputTokens).toBeGreaterThan(3)
    expect(c.pico).toBe(c.inputTokens * 2_500_000 + c.outputTokens * 10_000_000)
    m.count(ctx, c)
    expect(metrics.render()).toContain('mcp_cost_estimated_total{provider="oa",model="gpt-4o"} 1')
  })

  it('no usage and estimateWhenMissing false: cost unknown, counted as usage missing', () => {
    const { m, metrics } = meter({ estimateWhenMissing: false })
    const ctx = fakeCtx()
    ctx.slots['costMeter'] = m
    const c = costOf(ctx)!
    expect(c).toMatchObject({ unknown: true, estimated: false, pico: 0 })
    m.count(ctx, c)
    expect(metrics.render()).toContain('mcp_cost_usage_missing_total{provider="oa",model="gpt-4o"} 1')
  })

  it('unknown model: tokens counted, cost flagged unknown, metric and one warning per model per interval', () => {
    const { m, metrics, warnings } = meter()
    for (let i = 0; i < 3; i++) {
      const ctx = fakeCtx({ model: 'gpt-9', usage: OPENAI })
      ctx.slots['costMeter'] = m
      const c = costOf(ctx)!
      expect(c).toMatchObject({ unknown: true, pico: 0, usd: 0, inputTokens: 176, cachedTokens: 1024 })
      m.count(ctx, c)
    }
    const text = metrics.render()
    expect(text).toContain('mcp_cost_unknown_model_total{provider="oa",model="gpt-9"} 3')
    expect(text).toContain('mcp_tokens_total{provider="oa",model="gpt-9",type="cached"} 3072')
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatchObject({ provider: 'oa', model: 'gpt-9', providerType: 'openai' })
  })

  it('counters: cost in USD and tokens by type', () => {
    const { m, metrics } = meter()
    const ctx = fakeCtx({ usage: OPENAI })
    ctx.slots['costMeter'] = m
    m.count(ctx, costOf(ctx)!)
    const text = metrics.render()
    expect(text).toContain('mcp_cost_usd_total{provider="oa",model="gpt-4o"} 0.00472')
    for (const [type, n] of [['input', 176], ['cached', 1024], ['output', 172], ['reasoning', 128]] as const) {
      expect(text).toContain(`mcp_tokens_total{provider="oa",model="gpt-4o",type="${type}"} ${n}`)
    }
  })

  it('label cardinality is bounded: past maxSeries, models share model="_other"', () => {
    const { m, metrics } = meter({ maxSeries: 2 })
    for (const model of ['gpt-4o', 'gpt-4o-mini', 'gpt-4.1', 'o3']) {
      const ctx = fakeCtx({ model, usage: OPENAI })
      ctx.slots['costMeter'] = m
      const c = costOf(ctx)!
      expect(c.unknown).toBe(false) // still priced per model
      m.count(ctx, c)
    }
    expect(metrics.render()).toContain('mcp_tokens_total{provider="oa",model="_other",type="input"} 352')
  })

  it('maxSeries bounds the registry\'s label pairs, not one meter\'s: a reload\'s or a route\'s new meter shares it', () => {
    const { m, metrics } = meter({ maxSeries: 2 })
    const other = new CostMeter({ metrics, logger: pino({ level: 'silent' }), maxSeries: 2 })
    const count = (mt: CostMeter, model: string) => {
      const ctx = fakeCtx({ model, usage: OPENAI })
      ctx.slots['costMeter'] = mt
      mt.count(ctx, costOf(ctx)!)
    }
    count(m, 'gpt-4o')
    count(m, 'gpt-4o-mini')
    // The second meter: a pair the first labelled keeps its series, a new one goes to _other.
    count(other, 'gpt-4o')
    count(other, 'gpt-4.1')
    count(other, 'o3')
    const text = metrics.render()
    const models = text.split('\n').filter((l) => l.startsWith('mcp_cost_usd_total{')).map((l) => /model="([^"]*)"/.exec(l)?.[1])
    expect(models.sort()).toEqual(['_other', 'gpt-4o', 'gpt-4o-mini'])
    expect(text).toContain('mcp_tokens_total{provider="oa",model="gpt-4o",type="input"} 352')
    // Another registry has its own bound.
    const fresh = meter({ maxSeries: 2 })
    count(fresh.m, 'o3')
    expect(fresh.metrics.render()).toContain('mcp_cost_usd_total{provider="oa",model="o3"}')
  })

  it('past maxSeries, unknown models still warn at most once per interval (not on every request)', () => {
    const { m, metrics, warnings } = meter({ maxSeries: 1 })
    for (const model of ['gpt-4o', 'gpt-9', 'gpt-9', 'gpt-9', 'gpt-10']) {
      const ctx = fakeCtx({ model, usage: OPENAI })
      ctx.slots['costMeter'] = m
      m.count(ctx, costOf(ctx)!)
    }
    expect(metrics.render()).toContain('mcp_cost_unknown_model_total{provider="oa",model="_other"} 4')
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatchObject({ provider: 'oa', model: 'gpt-9' })
  })
})

describe('the plugin', () => {
  it('records one usage row per routed request, attributed, and nothing for requests that never went upstream', async () => {
    const records: UsageRecord[] = []
    const deps = { services: { usage: { record: (r: UsageRecord) => { records.push(r) } } }, logger: pino({ level: 'silent' }), metrics: new Metrics(), env: { adminKey: undefined, production: false } } satisfies PluginDeps
    const cfg = validatePluginConfig(costMeterPlugin, {}, 'plugins.cost-meter')
    const inst = await costMeterPlugin.create(cfg as never, deps)
    const ctx = fakeCtx({
      usage: OPENAI,
      slots: { principal: { keyId: '7D0C7B1E-4A57-4A51-9A3C-0F0E8A1B2C3D', role: 'user', team: 'growth' }, execution: { deploymentId: 'a1b2c3d4-0000-4000-8000-000000000001', promptVersionId: 'not-a-uuid' } },
    })
    inst.onRequestHeaders!(ctx)
    await inst.onComplete!(ctx, { status: 200, errorCode: undefined, details: 'ok', aborted: false })
    expect(records).toEqual([expect.objectContaining({
      keyId: '7d0c7b1e-4a57-4a51-9a3c-0f0e8a1b2c3d', team: 'growth', deploymentId: 'a1b2c3d4-0000-4000-8000-000000000001', promptVersionId: null,
      provider: 'oa', model: 'gpt-4o', error: false, inputTokens: 176, cachedTokens: 1024, outputTokens: 172, reasoningTokens: 128, pico: 4_720_000_000, estimated: false, unpriced: false,
    })])
    const local = fakeCtx({ upstreamStart: 0, upstreamHeaders: 0 })
    inst.onRequestHeaders!(local)
    await inst.onComplete!(local, { status: 429, errorCode: 'MCP_ERR_RATE_LIMITED', details: 'x', aborted: false })
    expect(records).toHaveLength(1)
  })
})
