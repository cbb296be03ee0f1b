/**
 * Config limits → rules (one per metric of a limit), settled once per plugin instance, and the
 * per-request selection: which rules apply in a phase (cached per route), their scope values and
 * store keys, and the checks a store runs.
 *
 * Phase: a rule is decided in onRequestHeaders (before the body is read) unless it needs the body:
 * a tpm rule, a `model` scope, or a `match.model`; those are decided in onRequestBody.
 */
import type { RequestCtx } from '../../gateway/context.ts'
import { KEY_RECORD_ROUTES } from '../auth/scopes.ts'
import type { Check } from './gcra.ts'
import { gcraParams } from './gcra.ts'
import type { LimitConfig, Scope } from './config.ts'

export type Metric = 'rps' | 'rpm' | 'tpm' | 'concurrency'
export type Phase = 'headers' | 'body'
const METRICS: readonly Metric[] = ['rps', 'rpm', 'tpm', 'concurrency']
const PERIOD_MS: Readonly<Record<Metric, number>> = { rps: 1000, rpm: 60_000, tpm: 60_000, concurrency: 0 }

export interface Rule {
  /** `<limit name>.<metric>`: the `limit` metric label, and the head of its store keys. */
  readonly id: string
  readonly name: string
  readonly metric: Metric
  readonly scopes: readonly Scope[]
  readonly phase: Phase
  readonly routes: ReadonlySet<string> | undefined
  readonly model: ((m: string) => boolean) | undefined
  readonly count: number
  /** Configured burst (rps/rpm only); undefined = the rule's count. */
  readonly burst: number | undefined
  /** Exactly scope 'key' with no match: a key's own limits (principal.limits) replace its count. */
  readonly keyOnly: boolean
}

/** Limits a key record may carry (`ctx.slots.principal.limits`), applied over the config. */
export type KeyLimits = Partial<Record<Metric, number>>

/** The principal's own limits, when the auth plugin put valid ones on it. */
export function keyLimitsOf(ctx: RequestCtx): KeyLimits | undefined {
  const p = ctx.slots.principal as { limits?: unknown } | undefined
  const l = p?.limits
  if (l === null || typeof l !== 'object') return undefined
  const out: KeyLimits = {}
  let any = false
  for (const m of METRICS) {
    const v = (l as Record<string, unknown>)[m]
    if (typeof v === 'number' && Number.isInteger(v) && v > 0) { out[m] = v; any = true }
  }
  return any ? out : undefined
}

function modelMatcher(patterns: readonly string[]): (m: string) => boolean {
  const exact = new Set(patterns.filter((p) => !p.endsWith('*')))
  const prefixes = patterns.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1))
  return (m) => exact.has(m) || prefixes.some((p) => m.startsWith(p))
}

function makeRule(l: LimitConfig, metric: Metric, count: number): Rule {
  const scopes: readonly Scope[] = Array.isArray(l.scope) ? [...l.scope] : [l.scope]
  const model = l.match?.model ? modelMatcher(l.match.model) : undefined
  const needsBody = metric === 'tpm' || scopes.includes('model') || model !== undefined
  return Object.freeze({
    id: `${l.name}.${metric}`,
    name: l.name,
    metric,
    scopes,
    phase: needsBody ? 'body' : 'headers',
    routes: l.match?.route ? new Set(l.match.route) : undefined,
    model,
    count,
    burst: metric === 'rps' || metric === 'rpm' ? l.burst : undefined,
    keyOnly: scopes.length === 1 && scopes[0] === 'key' && l.match === undefined,
  })
}

export function compileRules(limits: readonly LimitConfig[]): Rule[] {
  const out: Rule[] = []
  for (const l of limits) for (const m of METRICS) if (l[m] !== undefined) out.push(makeRule(l, m, l[m]))
  return out
}

/** Implicit key rules for metrics a key record sets but no key-only config rule covers. */
export const PRINCIPAL_LIMIT = 'principal'

export interface RuleSet {
  /** Rules of a route and phase (cached). */
  forRoute(route: string, phase: Phase): readonly Rule[]
  /** Key-record metrics that no key-only rule covers get an implicit rule named 'principal'. */
  implicit(metric: Metric, count: number): Rule | undefined
}

export function createRuleSet(rules: readonly Rule[]): RuleSet {
  const cache: Record<Phase, Map<string, readonly Rule[]>> = { headers: new Map(), body: new Map() }
  const implicitCache = new Map<string, Rule>()
  const covered = new Set(rules.filter((r) => r.keyOnly).map((r) => r.metric))
  return {
    forRoute(route, phase) {
      let list = cache[phase].get(route)
      if (!list) {
        list = rules.filter((r) => r.phase === phase && (r.routes === undefined || r.routes.has(route)))
        cache[phase].set(route, list)
      }
      return list
    },
    implicit(metric, count) {
      if (covered.has(metric)) return undefined
      const k = `${metric}:${count}`
      let r = implicitCache.get(k)
      if (!r) {
        if (implicitCache.size > 1000) implicitCache.clear()
        r = makeRule({ name: PRINCIPAL_LIMIT, scope: 'key' }, metric, count)
        implicitCache.set(k, r)
      }
      return r
    },
  }
}

/** The value of one scope for this request, or undefined when it has none (the rule then does not apply). */
function scopeValue(s: Scope, ctx: RequestCtx): string | undefined {
  switch (s) {
    case 'key': return ctx.slots.principal?.keyId
    case 'team': return ctx.slots.principal?.team
    case 'model': return ctx.requestedModel || undefined
    case 'ip': return ctx.ip || undefined
    case 'route': return ctx.route.name
    case 'global': return '*'
  }
}

/** One rule as applied to one request. */
export interface Applied {
  readonly rule: Rule
  /** Effective count (a key record may override it). */
  readonly count: number
  readonly check: Check
}

export interface CheckOptions {
  readonly slotTtlMs: number
  /** Estimated tokens of this request (tpm rules); computed lazily by the caller. */
  tokens(): number
}

function apply(rule: Rule, count: number, ctx: RequestCtx, o: CheckOptions): Applied | undefined {
  if (rule.model && !rule.model(ctx.requestedModel)) return undefined
  let value: string
  if (rule.scopes.length === 1) {
    const v = scopeValue(rule.scopes[0]!, ctx)
    if (v === undefined) return undefined
    value = v
  } else {
    const parts: string[] = []
    for (const s of rule.scopes) {
      const v = scopeValue(s, ctx)
      if (v === undefined) return undefined
      parts.push(v)
    }
    value = parts.join('|')
  }
  const key = `${rule.id}:${value}`
  if (rule.metric === 'concurrency') return { rule, count, check: { kind: 'slot', key, limit: count, ttlMs: o.slotTtlMs } }
  const burst = rule.metric === 'tpm' ? count : rule.burst ?? count
  const { emissionMs, toleranceMs } = gcraParams(count, PERIOD_MS[rule.metric], burst)
  // A request larger than the whole bucket could never pass: it is charged the full bucket instead.
  const cost = rule.metric === 'tpm' ? Math.max(1, Math.min(o.tokens(), count)) : 1
  return { rule, count, check: { kind: 'gcra', key, emissionMs, toleranceMs, cost } }
}

/**
 * The rules of this phase that apply to the request, with their checks. A key record's implicit limits
 * ('principal.*') only on KEY_RECORD_ROUTES; configured limits on what their `match.route` says, every route by default.
 */
export function applicable(set: RuleSet, ctx: RequestCtx, phase: Phase, o: CheckOptions): Applied[] {
  const rules = set.forRoute(ctx.route.name, phase)
  const own = keyLimitsOf(ctx)
  const out: Applied[] = []
  for (const r of rules) {
    const count = own !== undefined && r.keyOnly ? own[r.metric] ?? r.count : r.count
    const a = apply(r, count, ctx, o)
    if (a) out.push(a)
  }
  if (own !== undefined && KEY_RECORD_ROUTES.has(ctx.route.name)) {
    for (const m of METRICS) {
      const c = own[m]
      if (c === undefined || (m === 'tpm') !== (phase === 'body')) continue
      const r = set.implicit(m, c)
      const a = r && apply(r, c, ctx, o)
      if (a) out.push(a)
    }
  }
  return out
}
