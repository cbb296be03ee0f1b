/**
 * The cost meter: prices the answer of one request from its usage and the price catalogue, in exact integer
 * pico-USD, and reports unknown models and estimates. One meter per cost-meter plugin instance (its config: price
 * overrides, provider type map, estimation).
 *
 * `costOf(ctx)` is how anything reads the cost of a request. The cost-meter plugin puts its meter in
 * `ctx.slots.costMeter` when the request arrives; the first reader after the usage is known (the execute dialect
 * encoding its answer, the execution log, the cost meter's own completion hook, whichever comes first) computes it
 * once into `ctx.cost`. So the order of plugins in a chain does not matter: onComplete hooks run in reverse config
 * order, and the execution log may run before or after the cost meter and still record the same cost.
 *
 * Billing rules (docs/cost.md):
 * - Only the usage of the answering target counts; failed attempts before it are never billed. A stream cut mid-way
 *   and resumed on another target is the exception: its provider billed it, so its usage (in `ctx.attemptLog`,
 *   included in `ctx.usage`) is priced at its own provider and model and added (gateway/cost/attempt-usage.ts).
 * - No answer (no upstream reached 2xx): cost 0, not estimated, not unknown.
 * - An answer without usage (the provider reports none, a stream cut before its usage event, a client that
 *   disconnected mid-stream): estimated with the tokenizer from the prompt and the delivered text, flagged
 *   `estimated` — what the provider bills for a cut stream is at least the prompt and what was generated.
 * - A model missing from the catalogue: tokens counted, `unknown: true`, pico 0 — reported by a metric and a
 *   rate-limited warning, never silently free.
 */
import type { Logger } from 'pino'
import type { AttemptRecord, RequestCtx } from '../context.ts'
import type { Counter, CounterChild, Metrics } from '../metrics.ts'
import type { Usage } from '../../providers/types.ts'
import { PriceCatalogue, pricedTier, type CostBreakdown, type PriceEntry, type ServiceTier, type TokenPrices } from './catalogue.ts'
import { Pricing } from './pricing.ts'
import { completionTextOfBody, estimateUsage, loadTokenizer, tokenizerSettled } from './estimate.ts'
import { answerEvents, answerPart, billedAttempts, normalizeUsage } from './attempt-usage.ts'

export { normalizeUsage }

declare module '../context.ts' {
  interface CtxSlots {
    /** Set by the cost-meter plugin when the request arrives; read through costOf(). */
    costMeter: CostMeter
  }
}

export interface CostMeterOptions {
  /** Config price entries: by provider type (`openai`) or by provider name (`providers.<name>`); model `*` prices every model. */
  overrides?: readonly PriceEntry[]
  /** Provider type → the type whose prices apply (`azure-openai` → `openai`). */
  providerTypeMap?: Readonly<Record<string, string>>
  /** Estimate tokens with the tokenizer when an answer has no usage (else the cost is unknown). */
  estimateWhenMissing?: boolean
  metrics: Metrics
  logger: Logger
  /**
   * Distinct (provider, model) label pairs, counted over every meter on `metrics` (reloads, per-route overrides), before
   * further ones share model="_other". Default 1000.
   */
  maxSeries?: number
  /** Minimum time between two warnings for the same unknown model. Default 10 min. */
  warnIntervalMs?: number
  now?: () => number
}

/** Nothing to count: no tokens, no cost, and the price known. */
function nothing(c: CostBreakdown): boolean {
  return !c.unknown && c.pico === 0 && c.inputTokens + c.cachedTokens + c.cacheWriteTokens + c.outputTokens + c.reasoningTokens === 0
}

/** One target's part of a resumed stream's cost (CostMeter.parts). */
export interface CostPart {
  provider: string
  providerType: string
  model: string
  cost: CostBreakdown
}

const ZERO: Usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }
/** Zero prices for an answer that never came: cost 0 and known. */
const ZERO_PRICES: TokenPrices = { input: 0, cachedInput: 0, cacheWrite: 0, cacheWrite1h: 0, output: 0, reasoning: 0, effectiveFrom: 0 }
const PRICES_TTL_MS = 60_000
const OVERFLOW = '_other'

/**
 * The (provider, model) label pairs that have their own series in a registry, shared by every CostMeter counting into
 * it (keyed by its mcp_cost_usd_total counter). A reload that changes the cost-meter config builds a new meter and a
 * per-route override another, while the registry keeps every child they made: maxSeries bounds this set, not one
 * meter's own count (which restarted at 0 with each meter: five reloads took a bound of 50 to 267 series).
 */
const LABELLED = new WeakMap<Counter, Set<string>>()

interface Series {
  readonly provider: string
  readonly model: string
  prices: TokenPrices | undefined
  /** `prices` are those in effect from pricedAt until pricedUntil (the next scheduled change, at most PRICES_TTL_MS). */
  pricedAt: number
  pricedUntil: number
  lastWarn: number
  readonly cost: CounterChild
  readonly input: CounterChild
  readonly cached: CounterChild
  readonly cacheWrite: CounterChild
  readonly output: CounterChild
  readonly reasoning: CounterChild
  readonly estimated: CounterChild
  readonly unknown: CounterChild
  readonly missing: CounterChild
}

/**
 * When a request is priced: its arrival (ctx.arrivedAt; the prices then in effect apply however long it runs), by the
 * cost meter and by budgets alike, so what a request settles never exceeds what its reservation assumed; `now` for a
 * context without one.
 */
export function pricedAt(ctx: RequestCtx, now: () => number = Date.now): number {
  const t = (ctx as { arrivedAt?: unknown }).arrivedAt
  return typeof t === 'number' ? t : now()
}

export class CostMeter {
  /** The shipped catalogue plus the config overrides. */
  readonly catalogue: PriceCatalogue
  readonly #pricing: Pricing
  readonly #estimate: boolean
  readonly #log: Logger
  readonly #now: () => number
  readonly #maxSeries: number
  readonly #warnMs: number
  readonly #series = new Map<string, Map<string, Series>>()
  /** provider → the series of its models past maxSeries (model="_other"). */
  readonly #overflow = new Map<string, Series>()
  /** The registry's label pairs with a series of their own (LABELLED), this meter's included. */
  readonly #labelled: Set<string>
  readonly #m: {
    cost: ReturnType<Metrics['counter']>
    tokens: ReturnType<Metrics['counter']>
    estimated: ReturnType<Metrics['counter']>
    unknown: ReturnType<Metrics['counter']>
    missing: ReturnType<Metrics['counter']>
  }

  constructor(opts: CostMeterOptions) {
    this.#pricing = new Pricing({ overrides: opts.overrides, providerTypeMap: opts.providerTypeMap })
    this.catalogue = this.#pricing.catalogue
    this.#estimate = opts.estimateWhenMissing ?? true
    this.#log = opts.logger
    this.#now = opts.now ?? Date.now
    this.#maxSeries = opts.maxSeries ?? 1000
    this.#warnMs = opts.warnIntervalMs ?? 600_000
    const m = opts.metrics
    this.#m = {
      cost: m.counter('mcp_cost_usd_total', 'Cost of answers in USD, from the price catalogue (estimates included)', ['provider', 'model']),
      tokens: m.counter('mcp_tokens_total', 'Tokens of answers by type (input excludes cached and cache writes; output excludes reasoning)', ['provider', 'model', 'type']),
      estimated: m.counter('mcp_cost_estimated_total', 'Answers without usage from the provider, priced from a tokenizer estimate', ['provider', 'model']),
      unknown: m.counter('mcp_cost_unknown_model_total', 'Answers from a model missing from the price catalogue (cost unknown)', ['provider', 'model']),
      missing: m.counter('mcp_cost_usage_missing_total', 'Answers without usage, not estimated (estimateWhenMissing: false): cost unknown', ['provider', 'model']),
    }
    let labelled = LABELLED.get(this.#m.cost)
    if (!labelled) { labelled = new Set(); LABELLED.set(this.#m.cost, labelled) }
    this.#labelled = labelled
  }

  /** The prices that apply to a provider (name and type) and model at `at`, or undefined (unknown model). */
  pricesFor(providerName: string, providerType: string, model: string, at: number = this.#now()): TokenPrices | undefined {
    return this.#pricing.pricesFor(providerName, providerType, model, at)
  }

  /** The first time after `at` when some price changes (an entry's effectiveFrom), Infinity when none is scheduled. */
  nextChangeAfter(at: number): number {
    return this.#pricing.nextChangeAfter(at)
  }

  #seriesOf(ctx: RequestCtx, now: number): Series {
    return this.#seriesFor(ctx.providerName, ctx.adapter?.type ?? '', ctx.model || ctx.requestedModel, now)
  }

  #seriesFor(provider: string, providerType: string, model: string, now: number): Series {
    let byModel = this.#series.get(provider)
    if (!byModel) { byModel = new Map(); this.#series.set(provider, byModel) }
    let s = byModel.get(model)
    if (!s) {
      // A pair another meter of the registry already labelled keeps its series; a new one takes a place if any is left.
      const pair = `${provider}\u0000${model}`
      if (this.#labelled.has(pair) || this.#labelled.size < this.#maxSeries) {
        this.#labelled.add(pair)
        s = this.#newSeries(provider, model)
        byModel.set(model, s)
      } else {
        // One overflow series per provider, kept: its unknown-model warnings are rate-limited like any other series'
        // (a new object per request warned on every request).
        s = this.#overflow.get(provider)
        if (!s) { s = this.#newSeries(provider, OVERFLOW); this.#overflow.set(provider, s) }
      }
    }
    // The overflow series is shared: its prices are looked up per request. Others are cached for a minute, and never
    // past the next scheduled price change (from its date on, the new price applies).
    // `now` is the time the request is priced at (its arrival), so the cache holds for an interval, not an age.
    if (s.model === OVERFLOW || now < s.pricedAt || now >= s.pricedUntil) {
      s.prices = this.pricesFor(provider, providerType, model, now)
      s.pricedAt = now
      s.pricedUntil = s.model === OVERFLOW ? now : Math.min(now + PRICES_TTL_MS, this.nextChangeAfter(now))
    }
    return s
  }

  #newSeries(provider: string, model: string): Series {
    const t = this.#m.tokens
    return {
      provider, model, prices: undefined, pricedAt: -Infinity, pricedUntil: -Infinity, lastWarn: -Infinity,
      cost: this.#m.cost.labels(provider, model),
      input: t.labels(provider, model, 'input'),
      cached: t.labels(provider, model, 'cached'),
      cacheWrite: t.labels(provider, model, 'cache_write'),
      output: t.labels(provider, model, 'output'),
      reasoning: t.labels(provider, model, 'reasoning'),
      estimated: this.#m.estimated.labels(provider, model),
      unknown: this.#m.unknown.labels(provider, model),
      missing: this.#m.missing.labels(provider, model),
    }
  }

  /**
   * The cost of a finished request (pure but for the price cache; no counters). Use costOf(ctx), which
   * computes it once.
   */
  /** Answers without usage are estimated (config estimateWhenMissing). */
  get estimates(): boolean {
    return this.#estimate
  }

  price(ctx: RequestCtx): CostBreakdown {
    const parts = this.parts(ctx)
    if (parts === undefined) return this.#priceAnswer(ctx, billedAttempts(ctx))
    let sum = parts[0]!.cost
    for (let i = 1; i < parts.length; i++) {
      const c = parts[i]!.cost
      const pico = sum.pico + c.pico
      sum = {
        pico, usd: pico / 1e12,
        inputTokens: sum.inputTokens + c.inputTokens, cachedTokens: sum.cachedTokens + c.cachedTokens,
        cacheWriteTokens: sum.cacheWriteTokens + c.cacheWriteTokens, outputTokens: sum.outputTokens + c.outputTokens,
        reasoningTokens: sum.reasoningTokens + c.reasoningTokens,
        // A part at an unknown price makes the total unknown (never silently lower).
        unknown: sum.unknown || c.unknown, estimated: sum.estimated || c.estimated,
      }
    }
    return sum
  }

  /**
   * A resumed stream's cost by target: the answering one first (its own part of the usage), then each cut attempt at
   * its own provider and model. Undefined for every other request (one target answered; price() is its cost).
   */
  parts(ctx: RequestCtx): CostPart[] | undefined {
    const attempts = billedAttempts(ctx)
    if (attempts.length === 0) return undefined
    const now = pricedAt(ctx, this.#now)
    const out: CostPart[] = [{ provider: ctx.providerName, providerType: ctx.adapter?.type ?? '', model: ctx.model || ctx.requestedModel, cost: this.#priceAnswer(ctx, attempts) }]
    for (const a of attempts) {
      const providerType = a.providerType ?? ''
      out.push({ provider: a.provider, providerType, model: a.model, cost: PriceCatalogue.cost(this.pricesFor(a.provider, providerType, a.model, now), a.usage!, a.estimated === true, requestedTierOf(ctx)) })
    }
    return out
  }

  /** The answering target's part of the cost. */
  #priceAnswer(ctx: RequestCtx, attempts: readonly AttemptRecord[]): CostBreakdown {
    // The pass-through body is consumed by the usage getter: keep it for an estimate of the completion.
    const raw = ctx.rawBody
    const usage = ctx.usage
    if (usage != null) {
      // With resumed streams, ctx.usage is the sum over the attempts: each is priced at its own model.
      return PriceCatalogue.cost(this.#seriesOf(ctx, pricedAt(ctx, this.#now)).prices, attempts.length === 0 ? normalizeUsage(usage) : answerPart(usage, attempts), false, pricingTierOf(ctx))
    }
    if (ctx.upstreamHeaders === 0) return PriceCatalogue.cost(ZERO_PRICES, ZERO)
    if (!this.#estimate) return PriceCatalogue.cost(undefined, ZERO)
    const proposed = (ctx as { completionText?: unknown }).completionText
    const text = typeof proposed === 'string' ? proposed : raw ? completionTextOfBody(raw) : ''
    const est = estimateUsage(ctx, text)
    // A stream's text is not kept: what it gave the client counts as about a token per event (as the budget charges),
    // its own events only (a resumed stream's cut attempts are priced from their own usage).
    const events = ctx.stream ? answerEvents(ctx, attempts) : 0
    if (events > est.completion_tokens) {
      est.completion_tokens = events
      est.total_tokens = est.prompt_tokens + events
    }
    return PriceCatalogue.cost(this.#seriesOf(ctx, pricedAt(ctx, this.#now)).prices, est, true, pricingTierOf(ctx))
  }

  /** Counters for one priced request (the cost meter's completion hook, once per request); `parts`: this.parts(ctx). */
  count(ctx: RequestCtx, c: CostBreakdown, parts: readonly CostPart[] | undefined = this.parts(ctx)): void {
    const now = this.#now()
    if (parts === undefined) {
      if (!nothing(c)) this.#countIn(this.#seriesOf(ctx, now), c, ctx, now, ctx.providerName, ctx.adapter?.type, ctx.model || ctx.requestedModel)
      return
    }
    // A resumed stream: each target's tokens and cost under its own provider and model.
    for (const p of parts) {
      if (!nothing(p.cost)) this.#countIn(this.#seriesFor(p.provider, p.providerType, p.model, now), p.cost, ctx, now, p.provider, p.providerType, p.model)
    }
  }

  #countIn(s: Series, c: CostBreakdown, ctx: RequestCtx, now: number, provider: string, providerType: string | undefined, model: string): void {
    if (c.pico !== 0) s.cost.inc(c.pico / 1e12)
    if (c.inputTokens !== 0) s.input.inc(c.inputTokens)
    if (c.cachedTokens !== 0) s.cached.inc(c.cachedTokens)
    if (c.cacheWriteTokens !== 0) s.cacheWrite.inc(c.cacheWriteTokens)
    if (c.outputTokens !== 0) s.output.inc(c.outputTokens)
    if (c.reasoningTokens !== 0) s.reasoning.inc(c.reasoningTokens)
    if (c.estimated) s.estimated.inc()
    if (!c.unknown) return
    // Unknown because the answer had no usage and estimation is off, rather than because of the model.
    if (!c.estimated && ctx.usage == null) { s.missing.inc(); return }
    s.unknown.inc()
    if (now - s.lastWarn >= this.#warnMs) {
      s.lastWarn = now
      this.#log.warn(
        { provider, providerType, model, requestId: ctx.id },
        'cost-meter: model not in the price catalogue, cost unknown (add it under plugins.cost-meter.pricing.models)',
      )
    }
  }
}

/**
 * The processing tier a request's tokens are priced at (flex, priority; undefined: the standard rates): the one its
 * answer says served it (`service_tier`: a priority request the provider served at the default tier pays the default
 * rates), else, when the answer did not say, the one it asked for.
 */
export function pricingTierOf(ctx: RequestCtx): ServiceTier | undefined {
  const served = ctx.servedTier
  return served !== undefined ? pricedTier(served) : requestedTierOf(ctx)
}

/** The priced tier a request asked for (a cut attempt's answer is gone: priced at it). */
export function requestedTierOf(ctx: RequestCtx): ServiceTier | undefined {
  return pricedTier(ctx.chat?.service_tier)
}

/**
 * The cost of a request, computed once into `ctx.cost` by whoever asks first once it is known: as soon as the
 * usage is in (a JSON answer before it is encoded, a stream after its last event), or when the response is
 * finished (an answer without usage is then estimated). Undefined without a cost meter on the route, or before.
 */
export function costOf(ctx: RequestCtx): CostBreakdown | undefined {
  if (ctx.cost !== undefined) return ctx.cost
  const meter = ctx.slots.costMeter
  if (meter === undefined) return undefined
  if (ctx.rawBody === undefined && ctx.usage == null && !(ctx.res.writableFinished || ctx.res.destroyed)) return undefined
  // An estimate waits for the tokenizer rather than being computed from a rougher count.
  if (!tokenizerSettled() && costReady(ctx) !== undefined) return undefined
  return (ctx.cost = meter.price(ctx))
}

/**
 * A promise when the cost of this finished request is an estimate (no usage reported) and the tokenizer is not
 * loaded yet: the first such request after start loads it (about 200 ms), and costOf(ctx) is undefined until
 * then. Undefined otherwise (costOf(ctx) is final now). onComplete hooks that record the cost wait for it.
 */
export function costReady(ctx: RequestCtx): Promise<void> | undefined {
  if (ctx.cost !== undefined || tokenizerSettled()) return undefined
  const meter = ctx.slots.costMeter
  if (meter === undefined || !meter.estimates || ctx.upstreamHeaders === 0) return undefined
  // The usage getter consumes the pass-through body; it is put back for whoever reads it next (the execution
  // log's finish reason, the estimate of the completion).
  const raw = ctx.rawBody
  const usage = ctx.usage
  if (raw !== undefined) ctx.rawBody = raw
  if (usage != null) return undefined
  return loadTokenizer().catch(() => { /* estimates fall back to ~4 characters a token */ })
}

/** The cost as stored in an execution log's metrics (`cost.usd` is what health reports read). */
export function costJson(c: CostBreakdown | undefined): Record<string, unknown> | null {
  if (c === undefined) return null
  return {
    usd: c.unknown ? null : c.usd,
    pico: c.unknown ? null : String(c.pico),
    estimated: c.estimated,
    unknown: c.unknown,
    tokens: { input: c.inputTokens, cached: c.cachedTokens, cache_write: c.cacheWriteTokens, output: c.outputTokens, reasoning: c.reasoningTokens },
    ...(c.serviceTier !== undefined ? { service_tier: c.serviceTier } : {}),
  }
}
