/**
 * budget: amounts (USD), token and request quotas per key, team, prompt deployment, model or
 * globally, per calendar day/week/month (UTC); hard (refused with budget_exceeded before the provider
 * is called) or soft (admitted, counted, alerted). Exact under concurrency and across instances:
 *
 *   onRequestBody   budget-aware downgrade; the request's worst-case cost reserved atomically on
 *                   every budget that applies, in one step (store.ts, lua/admit.lua)
 *   onResponseChunk only when a hard budget has `streamCutoff`: an uncapped stream's running output
 *                   extends its reservation; refused, the stream ends with an explicit error event
 *   onComplete      the reservation replaced by the actual cost, exactly once (client aborts and
 *                   errors included: what was not used is released)
 *
 * See docs/budgets.md for the algorithm, the exactness argument and the degraded modes.
 */
import { randomBytes } from 'node:crypto'
import { GatewayError } from '../../gateway/errors.ts'
import type { AttemptRecord, RequestCtx } from '../../gateway/context.ts'
import { PriceCatalogue, tierFor, type ServiceTier } from '../../gateway/cost/catalogue.ts'
import { effectiveFromErrors } from '../../gateway/cost/effective-from.ts'
import { loadTokenizer } from '../../gateway/cost/estimate.ts'
import { answerEvents, answerPart, billedAttempts } from '../../gateway/cost/attempt-usage.ts'
import { costOf, normalizeUsage, pricedAt, pricingTierOf, requestedTierOf } from '../../gateway/cost/meter.ts'
import type { Metrics } from '../../gateway/metrics.ts'
import type { PluginFactory, PluginInstance } from '../../gateway/pipeline/types.ts'
import type { Usage } from '../../providers/types.ts'
import { BudgetBackend, type Placement } from './backend.ts'
import { budgetConfigErrors, budgetConfigSchema, type BudgetConfig, type BudgetRule } from './config.ts'
import { createCutoffHook } from './cutoff.ts'
import { refreshIntervalMs, ReservationKeepalive, type Held } from './keepalive.ts'
import { applyDowngrade } from './downgrade.ts'
import {
  capWebSearches, choices, maxWebSearches, nanoToUsd, outputTokensOf, ownPricing, picoToNano, pricingOf, promptTokens, requestedMaxOutput, requestTier, usageTokens, worstCostNano, worstPrices,
  type Pricing, type WorstPrices,
} from './estimate.ts'
import { periodWindow } from './period.ts'
import { buildReport, committedPercent, keyBudgetLimit, limitsOf, usedPercent, type BudgetReportRow, type KeyBudgetOwner, type KeyBudgetRule } from './report.ts'
import { MAX_UNITS, UNIT_NAMES, type AdmitResult, type CounterSpec, type CounterState, type Units } from './store.ts'

export { usedPercent, type BudgetReportRow, type KeyBudgetOwner } from './report.ts'

/** Per-request budget state. */
/** Reservation ids: this process's random id and a counter (unique across replicas sharing Redis). */
const INSTANCE = randomBytes(9).toString('base64url')
let reservations = 0

export interface BudgetSlot extends Held {
  /**
   * The reservation's id in the budget store: unique per request and process, never the request id (a client
   * can send the same x-request-id twice, and a settled id is not charged again).
   */
  readonly id: string
  readonly counters: readonly CounterSpec[]
  readonly rules: readonly BudgetRule[]
  placement: Placement | undefined
  /** Reserved so far (extensions included). */
  readonly amount: Units
  readonly promptTokens: number
  readonly worst: Readonly<WorstPrices>
  /** The processing tier the request is reserved at (estimate.ts requestTier); undefined: the standard rates. */
  readonly tier: ServiceTier | undefined
  readonly cacheHit: boolean
  admitting: boolean
  completed: boolean
  settled: boolean
  /** Stream cut-off armed (an uncapped stream under a hard budget with streamCutoff). */
  cutoff: boolean
  grantedOut: number
  /** Output characters counted by the cut-off (every attempt of a resumed stream). */
  outChars: number
  /** outChars when the current attempt began (a resumed stream: the cut attempts' part, billed from their own usage). */
  cutChars: number
  /** ctx.attemptLog's length the cut-off last saw (a new entry: a resumed stream's new attempt). */
  seenAttempts: number
  extending: boolean
  extensionRefused: boolean
  /** The last extension could not reach the store (failMode closed: the stream ends if it passes its reservation). */
  extensionUnavailable: boolean
  /** The refused extension was only a would-be refusal (shadow mode): counted, never cut. */
  shadowCut: boolean
}

declare module '../../gateway/context.ts' {
  interface CtxSlots {
    budget: BudgetSlot
  }
}

/** What the admin route reads from a budget plugin instance. */
export interface BudgetInstance extends PluginInstance {
  /** The budgets, then the own budgets of `keys` (API keys with budgets: the admin API passes those it may show). */
  budgetReport(keys?: readonly KeyBudgetOwner[]): Promise<{ rows: BudgetReportRow[]; errors: string[] }>
}

export interface BudgetPluginOptions {
  /** Clock (tests: month boundaries). */
  now?: () => number
}

/** Slots another plugin owns, read without depending on its declaration. */
function slot(ctx: RequestCtx, name: string): Readonly<Record<string, unknown>> | undefined {
  const v = (ctx.slots as Readonly<Record<string, unknown>>)[name]
  return v !== null && typeof v === 'object' ? (v as Readonly<Record<string, unknown>>) : undefined
}

function scopeValue(rule: BudgetRule, ctx: RequestCtx): string | undefined {
  switch (rule.scope) {
    case 'global': return '*'
    case 'key': return ctx.slots.principal?.keyId
    case 'team': return ctx.slots.principal?.team
    case 'deployment': { const d = slot(ctx, 'execution')?.['deploymentId']; return typeof d === 'string' ? d : undefined }
    case 'model': return ctx.requestedModel || undefined
  }
}

/** Counter specs per rule and scope id for the current period: one object per counter, not per request. */
const specCache = new WeakMap<BudgetRule, Map<string, CounterSpec>>()
const SPEC_CACHE_MAX = 10_000

function counterFor(rule: BudgetRule, ctx: RequestCtx, now: number): CounterSpec | undefined {
  const v = scopeValue(rule, ctx)
  if (v === undefined || v === '') return undefined
  if (rule.scope !== 'global' && rule.id !== '*' && rule.id !== v) return undefined
  return specFor(rule, v, now)
}

/**
 * The cached spec of `rule`'s counter for scope id `v` in the period of `now`. `keyLimit`: a key record's own amount
 * (nano-USD), which may change between requests (the spec is rebuilt when it does); else the rule's limits.
 */
function specFor(rule: BudgetRule, v: string, now: number, keyLimit?: number): CounterSpec {
  let specs = specCache.get(rule)
  if (!specs) { specs = new Map(); specCache.set(rule, specs) }
  const cached = specs.get(v)
  if (cached && now >= cached.periodStart && now < cached.periodEnd && (keyLimit === undefined || cached.limits[0] === keyLimit)) return cached
  const w = periodWindow(rule.period, now)
  const limits: Units = keyLimit === undefined ? limitsOf(rule) : [keyLimit, -1, -1]
  const spec: CounterSpec = { budget: rule.name, scopeId: v, periodStart: w.start, periodEnd: w.end, hard: rule.mode === 'hard', limits }
  if (specs.size >= SPEC_CACHE_MAX) specs.clear()
  specs.set(v, spec)
  return spec
}

/**
 * A key record's own budgets (`budgets.daily_usd`, `budgets.monthly_usd` of the admin API's keys, on
 * `ctx.slots.principal.budgets`): hard USD budgets of that key, enforced like configured ones under these names.
 */
const KEY_BUDGETS: readonly KeyBudgetRule[] = [
  { field: 'daily_usd', rule: Object.freeze({ name: 'principal.daily_usd', scope: 'key', id: '*', period: 'day', mode: 'hard', streamCutoff: false }) },
  { field: 'monthly_usd', rule: Object.freeze({ name: 'principal.monthly_usd', scope: 'key', id: '*', period: 'month', mode: 'hard', streamCutoff: false }) },
]

/** The counter of a key record's budget of `usd` (its spec rebuilt when the record's amount changed). */
function keyCounterFor(rule: BudgetRule, ctx: RequestCtx, usd: unknown, now: number): CounterSpec | undefined {
  const limit = keyBudgetLimit(usd)
  if (limit === undefined) return undefined
  const v = ctx.slots.principal?.keyId
  if (v === undefined || v === '') return undefined
  return specFor(rule, v, now, limit)
}

/** The prices of a target's model (the answering one by default): the catalogue's, else the alias target's own `price`. */
function pricesAt(
  ctx: RequestCtx, pricing: Pricing, at: number,
  provider: string = ctx.providerName, providerType: string = ctx.adapter?.type ?? '', model: string = ctx.model,
): ReturnType<Pricing['pricesFor']> {
  const p = pricing.pricesFor(provider, providerType, model, at)
  if (p || !ctx.alias) return p
  const t = ctx.alias.targets.find((x) => x.provider === provider && x.model === model)
  return t?.price ? { input: t.price.input * 1e6, cachedInput: t.price.input * 1e6, cacheWrite: t.price.input * 1e6, cacheWrite1h: 2 * t.price.input * 1e6, output: t.price.output * 1e6, reasoning: t.price.output * 1e6, effectiveFrom: 0 } : undefined
}


/**
 * pico-USD of a request's usage without the cost meter's figure: the answering target's part at its prices, and a
 * resumed stream's cut attempts (their usage is part of `usage`) each at its own target's, as the cost meter does.
 */
function ownCostPico(ctx: RequestCtx, pricing: Pricing, usage: Usage): number {
  const at = pricedAt(ctx)
  const attempts = billedAttempts(ctx)
  const tier = pricingTierOf(ctx)
  if (attempts.length === 0) return PriceCatalogue.cost(pricesAt(ctx, pricing, at), usage, false, tier).pico
  return PriceCatalogue.cost(pricesAt(ctx, pricing, at), answerPart(usage, attempts), false, tier).pico + attemptsPico(ctx, pricing, at, attempts)
}

/** pico-USD of a resumed stream's cut attempts, each at its own target's prices. */
function attemptsPico(ctx: RequestCtx, pricing: Pricing, at: number, attempts: readonly AttemptRecord[]): number {
  let pico = 0
  const tier = requestedTierOf(ctx)
  for (const a of attempts) pico += PriceCatalogue.cost(pricesAt(ctx, pricing, at, a.provider, a.providerType ?? '', a.model), a.usage!, false, tier).pico
  return pico
}

/** '000000000'..: nano-USD digits after the point. */
const pad9 = (n: number): string => { const s = String(n); return s.length >= 9 ? s : '000000000'.slice(s.length) + s }

/** Whole nano-USD as dollars with nine decimals (the text of nanoToUsd(nano).toFixed(9), without toFixed's cost). */
export function fmtUsd(nano: number): string {
  if (!Number.isSafeInteger(nano) || nano < 0) return nanoToUsd(nano).toFixed(9)
  const whole = Math.floor(nano / 1e9)
  return `${whole}.${pad9(nano - whole * 1e9)}`
}

const openByRegistry = new WeakMap<Metrics, { n: number }>()

export function createBudgetPlugin(opts: BudgetPluginOptions = {}): PluginFactory<BudgetConfig> {
  const clock = opts.now ?? Date.now
  return {
    name: 'budget',
    configSchema: budgetConfigSchema,
    sideEffects: 'io',
    // Settlement prices streams by their usage (budget); stored entries carry it (cache).
    needsUsage: true,
    async create(config, deps) {
      const errs = budgetConfigErrors(config)
      if (errs.length > 0) throw new GatewayError('MCP_ERR_PLUGIN_CONFIG_INVALID', { plugin: 'budget', reason: errs.join('; ') }, { details: 'config.plugin_invalid' })
      const dates = effectiveFromErrors(config.prices, 'prices')
      if (dates.length > 0) throw new GatewayError('MCP_ERR_PLUGIN_CONFIG_INVALID', { plugin: 'budget', reason: dates.join('; ') }, { details: 'config.plugin_invalid' })
      if (config.estimate.method === 'tokenizer') await loadTokenizer()
      const m = deps.metrics
      const metrics = {
        refused: m.counter('mcp_budget_refused_total', 'Requests refused by a hard budget (shadow="true": would have been)', ['budget', 'shadow']),
        spent: m.counter('mcp_budget_spent_usd_total', 'USD settled into budgets by this instance', ['budget']),
        downgrades: m.counter('mcp_budget_downgrades_total', 'Requests re-pointed to a cheaper target by a budget downgrade rule', ['alias', 'to']),
        cutoffs: m.counter('mcp_budget_stream_cutoffs_total', 'Streams ended with budget_exceeded (shadow="true": would have been)', ['budget', 'shadow']),
        unpriced: m.counter('mcp_budget_unpriced_total', 'Requests to a model without a price under an amount budget'),
        errors: m.counter('mcp_budget_backend_errors_total', 'Budget store (Redis) failures and timeouts', ['op']),
        degraded: m.counter('mcp_budget_degraded_total', 'Admissions decided by the fail policy because Redis failed', ['mode']),
        settleFailed: m.counter('mcp_budget_settle_failed_total', 'Settlements given up after retries (the reservation expires by TTL)'),
      }
      // One gauge per registry, shared by every instance on it (a reload creates new instances).
      let held = openByRegistry.get(m)
      if (!held) {
        const h = { n: 0 }
        held = h
        openByRegistry.set(m, h)
        m.gauge('mcp_budget_reservations_open', 'Requests of this instance holding a budget reservation', [], (set) => set(h.n))
      }
      const open = held
      /** mcp_budget_spent_usd_total per budget, bound once (labels() joins its arguments on every call). */
      const spentChildren = new Map<string, ReturnType<typeof metrics.spent.labels>>()
      const spentOf = (budget: string): ReturnType<typeof metrics.spent.labels> => {
        let c = spentChildren.get(budget)
        if (!c) { c = metrics.spent.labels(budget); spentChildren.set(budget, c) }
        return c
      }
      const backend = new BudgetBackend(config, deps.services.redis, metrics)
      // Open requests' reservations outlive reservationTtlMs while they run (a long stream): keepalive.ts.
      const keepalive = new ReservationKeepalive(backend, clock, (e) => deps.logger.warn({ err: e }, 'budget: refreshing open reservations failed'))
      if (backend.missingRedis) deps.logger.warn(`budget: backend 'redis' but no Redis client (MCP_REDIS_URL); failMode '${config.failMode}' applies to every request`)
      const alerts = deps.services.alerts
      const own: Pricing = ownPricing(config.prices)
      const est = config.estimate
      const budgets = config.budgets
      const byName = new Map(budgets.map((b) => [b.name, b]))
      const cutoffNames = new Set(budgets.filter((b) => b.mode === 'hard' && b.streamCutoff).map((b) => b.name))
      const enforce = !config.shadow
      /** Last known state per counter (downgrade decisions), with the time it was read. */
      const known = new Map<string, { at: number; state: CounterState }>()
      const keyOf = (c: CounterSpec): string => `${c.budget}\u0000${c.scopeId}\u0000${c.periodStart}`
      const remember = (cs: readonly CounterSpec[], states: readonly CounterState[], at: number): void => {
        // Only the budget-aware downgrade reads what is remembered.
        if (config.downgrade.length === 0) return
        // Copies: the in-process store's states are its live counters.
        for (const [i, c] of cs.entries()) { const s = states[i]; if (s) known.set(keyOf(c), { at, state: { spent: [...s.spent], reserved: [...s.reserved] } }) }
        if (known.size > 50_000) known.clear()
      }

      /**
       * Usage to the alert manager after a settlement, or a refusal (`refusedIdx`: the counter that refused). A refusal
       * reports what it saw committed (spend and open reservations), never more: the request's own worst case may be
       * larger than the whole budget, and says nothing about how much of it is used.
       */
      const report = (cs: readonly CounterSpec[], rules: readonly BudgetRule[], states: readonly CounterState[], refusedIdx: number): void => {
        if (!alerts) return
        for (let i = 0; i < cs.length; i++) {
          const c = cs[i]!
          const s = states[i]
          const r = rules[i]!
          if (!s) continue
          const percent = i === refusedIdx ? committedPercent(c, s) : usedPercent(c, s)
          // Below every threshold watching this budget nothing can fire: no event built (the common case).
          if (percent < alerts.budgetFloor(c.budget)) continue
          alerts.budgetUsage({
            budget: c.budget, scope: r.scope, scopeId: c.scopeId, period: r.period, periodStart: c.periodStart, periodEnd: c.periodEnd,
            percent, refused: i === refusedIdx,
            spentUsd: c.limits[0] >= 0 ? nanoToUsd(s.spent[0]) : undefined, limitUsd: c.limits[0] >= 0 ? nanoToUsd(c.limits[0]) : undefined,
            spentTokens: c.limits[1] >= 0 ? s.spent[1] : undefined, limitTokens: c.limits[1] >= 0 ? c.limits[1] : undefined,
            spentRequests: c.limits[2] >= 0 ? s.spent[2] : undefined, limitRequests: c.limits[2] >= 0 ? c.limits[2] : undefined,
          })
        }
      }

      /** The actual use of a finished request (see docs/budgets.md "Settlement"). */
      const actualOf = (ctx: RequestCtx, s: BudgetSlot): Units => {
        if (s.cacheHit || slot(ctx, 'cache')?.['status'] === 'hit') return [0, 0, 1]
        const requests = ctx.attempts > 0 ? 1 : 0
        const reported = ctx.usage
        // Embeddings report no completion_tokens; providers may send odd numbers: priced as normalised.
        const usage = reported ? normalizeUsage(reported) : undefined
        if (usage) {
          const metered = costOf(ctx)
          const pico = metered && !metered.unknown ? metered.pico : ownCostPico(ctx, pricingOf(ctx, own), usage)
          return [picoToNano(pico), usageTokens(usage), requests]
        }
        // No usage (a client that left before the usage event, a cut stream): a stream is charged its prompt and
        // its output, counted (cut-off) or about a token per event it delivered; anything else nothing (released in full).
        // A resumed stream's cut attempts are charged their own usage at their own prices, and the answer only its
        // own output and its own prompt (the client's messages and the delivered text as a prefill).
        const attempts = billedAttempts(ctx)
        if (attempts.length > 0 && s.seenAttempts !== ctx.attemptLog.length) s.cutChars = s.outChars
        const out = Math.max(outputTokensOf(s.outChars - s.cutChars, est), ctx.stream ? answerEvents(ctx, attempts) : 0)
        if (out > 0 || (ctx.stream && ctx.firstChunk > 0)) {
          const pricing = pricingOf(ctx, own)
          const at = pricedAt(ctx)
          const prompt = attempts.length === 0 ? s.promptTokens : promptTokens(ctx.chat, undefined, est)
          const p = pricesAt(ctx, pricing, at)
          const t = p ? tierFor(p, prompt, pricingTierOf(ctx)) : undefined
          const pico = (t ? prompt * t.input + out * t.output : 0) + attemptsPico(ctx, pricing, at, attempts)
          let tokens = prompt + out
          for (const a of attempts) tokens += usageTokens(a.usage!)
          return [picoToNano(pico), tokens, requests]
        }
        return [0, 0, requests]
      }

      const settle = (ctx: RequestCtx, s: BudgetSlot): void => {
        if (s.settled || !s.placement) return
        s.settled = true
        open.n--
        keepalive.remove(s)
        const actual = actualOf(ctx, s)
        for (let u = 0; u < 3; u++) { const v = actual[u]!; actual[u] = Number.isFinite(v) && v > 0 ? Math.min(Math.ceil(v), MAX_UNITS) : 0 }
        if (actual[0] > 0) for (const c of s.counters) spentOf(c.budget).inc(nanoToUsd(actual[0]))
        const states = backend.settle(s.placement, s.id, s.counters, actual, clock())
        if (states instanceof Promise) states.then((st) => { afterSettle(s, st) }, (e: unknown) => deps.logger.error({ err: e }, 'budget: settlement failed'))
        else {
          try { afterSettle(s, states) } catch (e) { deps.logger.error({ err: e }, 'budget: settlement report failed') }
        }
      }

      const afterSettle = (s: BudgetSlot, states: readonly CounterState[] | undefined): void => {
        if (!states) return
        remember(s.counters, states, clock())
        report(s.counters, s.rules, states, -1)
      }

      const refuse = (rule: BudgetRule, c: CounterSpec, unit: number, shadow: boolean): GatewayError | undefined => {
        metrics.refused.labels(rule.name, shadow ? 'true' : 'false').inc()
        if (shadow) return undefined
        const resetS = Math.max(1, Math.ceil((c.periodEnd - clock()) / 1000))
        const who = rule.scope === 'global' ? '' : ` of ${rule.scope} '${c.scopeId}'`
        return new GatewayError('MCP_ERR_BUDGET_EXCEEDED', { budget: rule.name, who, unit: UNIT_NAMES[unit] ?? 'usd', period: rule.period, reset: new Date(c.periodEnd).toISOString() }, {
          providerCode: 'budget_exceeded',
          details: 'budget.exceeded',
          headers: { 'retry-after': String(resetS), 'x-mcp-budget': rule.name },
        })
      }

      const setHeaders = (ctx: RequestCtx, cs: readonly CounterSpec[], states: readonly CounterState[]): void => {
        if (!config.headers) return
        // The least left of each unit across the request's counters (-1: no counter limits it).
        let usd = -1
        let tokens = -1
        let requests = -1
        for (let i = 0; i < cs.length; i++) {
          const c = cs[i]!
          const s = states[i]
          if (!s) continue
          const l = c.limits
          if (l[0] >= 0) { const left = Math.max(0, l[0] - s.spent[0] - s.reserved[0]); usd = usd < 0 ? left : Math.min(usd, left) }
          if (l[1] >= 0) { const left = Math.max(0, l[1] - s.spent[1] - s.reserved[1]); tokens = tokens < 0 ? left : Math.min(tokens, left) }
          if (l[2] >= 0) { const left = Math.max(0, l[2] - s.spent[2] - s.reserved[2]); requests = requests < 0 ? left : Math.min(requests, left) }
        }
        if (usd >= 0) ctx.responseHeaders['x-mcp-budget-remaining-usd'] = fmtUsd(usd)
        if (tokens >= 0) ctx.responseHeaders['x-mcp-budget-remaining-tokens'] = String(tokens)
        if (requests >= 0) ctx.responseHeaders['x-mcp-budget-remaining-requests'] = String(requests)
      }

      const percentOf = async (c: CounterSpec, now: number): Promise<number> => {
        const k = known.get(keyOf(c))
        if (k && now - k.at <= config.downgradeRefreshMs) return usedPercent(c, k.state)
        const states = await backend.peek([c], now)
        if (states?.[0]) { remember([c], states, now); return usedPercent(c, states[0]) }
        return k ? usedPercent(c, k.state) : 0
      }

      /**
       * Requests reading a counter for the downgrade: the only wait before an admission creates its slot. One that
       * completes meanwhile (the client left) is moved to `finished`, and its admission releases at once. Requests
       * no budget applies to enter neither set: a weak-set entry for each of them cost about 3 µs of CPU a request.
       */
      const reading = new WeakSet<RequestCtx>()
      const finished = new WeakSet<RequestCtx>()

      /** Budget-aware downgrade first: the reservation prices the target actually used. */
      const downgradeThenAdmit = async (ctx: RequestCtx, alias: NonNullable<RequestCtx['alias']>, now: number): Promise<void> => {
        for (const d of config.downgrade) {
          if (d.alias !== alias.name) continue
          const c = counterFor(byName.get(d.whenBudget)!, ctx, now)
          if (!c) continue
          reading.add(ctx)
          let percent: number
          try { percent = await percentOf(c, now) } finally { reading.delete(ctx) }
          if (percent < d.atPercent) continue
          if (applyDowngrade(ctx, d.to, deps.logger)) metrics.downgrades.labels(d.alias, d.to).inc()
          break
        }
        await admit(ctx, now)
      }

      /** Synchronous unless a downgrade rule must read a counter or the store is Redis (no promise on the in-process path). */
      const admission = (ctx: RequestCtx): void | Promise<void> => {
        if (!ctx.chat && !ctx.embedding) return
        const now = clock()
        if (config.downgrade.length > 0 && ctx.alias) return downgradeThenAdmit(ctx, ctx.alias, now)
        return admit(ctx, now)
      }

      /**
       * The request's counters and their rules. Most requests of an instance apply the same counter specs (a global
       * or team budget: one spec object per period), so the last pair of arrays is reused when the specs are the
       * same, and the store keeps its lookups per array (LocalBudgetStore). Nobody writes to these arrays.
       */
      const scratch: (CounterSpec | undefined)[] = []
      const scratchRules: BudgetRule[] = []
      let lastCounters: readonly CounterSpec[] = []
      let lastRules: readonly BudgetRule[] = []
      const countersOf = (ctx: RequestCtx, now: number): number => {
        let n = 0
        for (const r of budgets) { const c = counterFor(r, ctx, now); if (c) { scratchRules[n] = r; scratch[n++] = c } }
        // The auth plugin's principal carries them (plugins/auth Principal); read without depending on its declaration.
        const keyBudgets = (ctx.slots.principal as { budgets?: Readonly<Record<string, unknown>> } | undefined)?.budgets
        if (keyBudgets != null) {
          for (const k of KEY_BUDGETS) {
            const v = keyBudgets[k.field]
            if (v === undefined) continue
            const c = keyCounterFor(k.rule, ctx, v, now)
            if (c) { scratchRules[n] = k.rule; scratch[n++] = c }
          }
        }
        let same = n === lastCounters.length
        for (let i = 0; same && i < n; i++) same = scratch[i] === lastCounters[i]
        if (!same && n > 0) {
          lastCounters = scratch.slice(0, n) as CounterSpec[]
          lastRules = scratchRules.slice(0, n)
        }
        // Scratch holds no spec past this call (a spec of an ended period would otherwise stay reachable).
        scratch.fill(undefined, 0, n)
        return n
      }

      const admit = (ctx: RequestCtx, now: number): void | Promise<void> => {
        if (countersOf(ctx, now) === 0) return
        const counters = lastCounters
        const rules = lastRules

        const cacheHit = slot(ctx, 'cache')?.['status'] === 'hit'
        const hardAmount = counters.some((c) => c.hard && (c.limits[0] >= 0 || c.limits[1] >= 0))
        const chat = ctx.chat
        if (!cacheHit && chat && config.capMaxTokens && hardAmount && requestedMaxOutput(chat) === undefined) chat.max_completion_tokens = est.defaultMaxTokens
        // Web searches (a Messages request sent as sent) are billed per search, in USD: bounded where a hard USD amount is
        // at stake, before the estimate (which counts the body as it will be sent). One comparison for any other request.
        if (ctx.inbound === 'anthropic' && chat && !cacheHit && config.capWebSearches && counters.some((c) => c.hard && c.limits[0] >= 0)) capWebSearches(chat, est.webSearchesWithoutMaxUses)
        const prompt = promptTokens(chat, ctx.embedding, est)
        const requested = requestedMaxOutput(chat)
        const maxOut = chat ? requested ?? est.defaultMaxTokens * choices(chat) : 0
        const worst = worstPrices(ctx, pricingOf(ctx, own), pricedAt(ctx))
        if (worst.unpriced && counters.some((c) => c.limits[0] >= 0)) {
          metrics.unpriced.inc()
          if (config.unpriced === 'refuse' && !cacheHit) {
            const i = counters.findIndex((c) => c.hard && c.limits[0] >= 0)
            if (i >= 0 && enforce) {
              throw new GatewayError('MCP_ERR_BUDGET_EXCEEDED', {}, {
                providerCode: 'budget_exceeded', details: 'budget.unpriced',
                message: `Budget '${rules[i]!.name}' cannot be enforced: model '${ctx.requestedModel}' has no price (budget plugin unpriced: refuse)`,
              })
            }
          }
        }
        // Server tools' web searches (a native-only Messages request) at the highest fee a candidate charges.
        const searches = chat && worst.webSearch !== undefined ? maxWebSearches(chat, est.webSearchesWithoutMaxUses) : 0
        const tier = worst.tiers !== undefined ? requestTier(chat, est, ctx.alias?.settings.flexFallback === true) : undefined
        const usd = worstCostNano(prompt, maxOut, worst, tier) + (searches > 0 ? picoToNano(searches * worst.webSearch!) : 0)
        const amount: Units = cacheHit ? [0, 0, 1] : [Math.min(usd, MAX_UNITS), Math.min(prompt + maxOut, MAX_UNITS), 1]
        const s: BudgetSlot = {
          id: `${INSTANCE}:${(++reservations).toString(36)}`, counters, rules, placement: undefined, amount, promptTokens: prompt, worst, tier, cacheHit,
          admitting: true, completed: false, settled: false,
          cutoff: false, grantedOut: maxOut, outChars: 0, cutChars: 0, seenAttempts: 0, extending: false, extensionRefused: false, extensionUnavailable: false, shadowCut: false,
          heldPrev: undefined, heldNext: undefined, held: false,
        }
        ctx.slots.budget = s
        const admitted = backend.admit(s.id, counters, amount, enforce, now)
        if (admitted instanceof Promise) return admitted.then(({ placement, result }) => afterAdmit(ctx, s, requested, now, placement, result))
        afterAdmit(ctx, s, requested, now, admitted.placement, admitted.result)
      }

      /** The rest of an admission once the store answered. */
      const afterAdmit = (ctx: RequestCtx, s: BudgetSlot, requested: number | undefined, now: number, placement: Placement, result: AdmitResult | undefined): void => {
        const { counters, rules, cacheHit } = s
        s.admitting = false
        // Refusals are thrown (not returned as a LocalReply) to carry `code: budget_exceeded` in the body;
        // if the client already left, sendError only closes the socket, and the provider is never called.
        if (placement.mode === 'closed') throw new GatewayError('MCP_ERR_BUDGET_UNAVAILABLE', {}, { details: 'budget.backend_unavailable', headers: { 'retry-after': '1' } })
        if (result?.status === 'refused') {
          report(counters, rules, result.states, result.failed)
          throw refuse(rules[result.failed]!, counters[result.failed]!, result.unit, false)!
        }
        s.placement = placement
        open.n++
        if (placement.primary) keepalive.add(s)
        if (s.completed || finished.has(ctx)) {
          // The client left while the admission (or the downgrade's read) was in flight: release now, and do not call the provider.
          settle(ctx, s)
          throw new GatewayError('MCP_ERR_REQ_ABORTED', {}, { details: 'client_abort' })
        }
        if (result) {
          remember(counters, result.states, now)
          if (result.status === 'over') {
            refuse(rules[result.failed]!, counters[result.failed]!, result.unit, true)
            report(counters, rules, result.states, result.failed)
          }
          setHeaders(ctx, counters, result.states)
        }
        // An uncapped stream under a hard cut-off budget may outgrow its reservation: watch it.
        s.cutoff = ctx.stream && !cacheHit && requested === undefined && placement.primary !== undefined && rules.some((r) => cutoffNames.has(r.name))
      }

      const onResponseChunk = createCutoffHook({ backend, config, cutoffNames, clock, enforce, cutoffs: metrics.cutoffs, degraded: metrics.degraded })

      const budgetReport = (keys: readonly KeyBudgetOwner[] = []): Promise<{ rows: BudgetReportRow[]; errors: string[] }> =>
        buildReport(budgets, backend, clock(), keys, KEY_BUDGETS)

      const instance: BudgetInstance = {
        budgetReport,
        onRequestBody(ctx) {
          return admission(ctx)
        },
        onComplete(ctx) {
          const s = ctx.slots.budget
          if (!s) { if (reading.has(ctx)) finished.add(ctx); return }
          s.completed = true
          // An admission still in flight settles itself when it returns (see admission()).
          if (!s.admitting) settle(ctx, s)
        },
      }
      keepalive.start(refreshIntervalMs(config.reservationTtlMs))
      // After the generation that owned this instance drained: none of its requests holds a reservation any more.
      instance.close = () => { keepalive.stop() }
      // Decided once: a chunk hook costs the route its byte pass-through, so only when a budget cuts streams.
      if (cutoffNames.size > 0) instance.onResponseChunk = onResponseChunk
      return instance
    },
  }
}

export const budgetPlugin: PluginFactory<BudgetConfig> = createBudgetPlugin()
