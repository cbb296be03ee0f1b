/**
 * Compiles `models.<alias>` once per generation: targets bound to their adapters and live state,
 * the strategy's order function, rule predicates (closures, not interpreted per request), and the
 * sticky key extractor.
 */
import type { ProviderAdapter } from '../../providers/types.ts'
import type { RequestCtx } from '../context.ts'
import type { AliasSettings, RoutingSettings, TargetTimeouts } from './config.ts'
import { createOrder, rendezvous, type Order } from './strategies.ts'
import type { TargetRegistry, TargetState } from './target-state.ts'

export interface CompiledTarget {
  readonly index: number
  readonly provider: string
  readonly model: string
  readonly adapter: ProviderAdapter
  readonly weight: number
  readonly priority: number
  readonly tags: readonly string[]
  readonly timeouts: Readonly<TargetTimeouts>
  readonly maxConcurrent: number
  readonly contextWindow: number
  readonly price: { input: number; output: number } | undefined
  readonly supportsPrefill: boolean
  readonly state: TargetState
}

interface CompiledRule {
  readonly match: (ctx: RequestCtx) => boolean
  readonly targets: readonly CompiledTarget[] | undefined
  /** `targetSetId` of `targets`, built once. */
  readonly targetSetId: string | undefined
  readonly alias: string | undefined
}

export interface CompiledAlias {
  readonly name: string
  readonly settings: AliasSettings
  readonly targets: readonly CompiledTarget[]
  /** `targetSetId` of `targets`, built once. */
  readonly targetSetId: string
  readonly order: Order
  readonly rules: readonly CompiledRule[]
  readonly stickyKey: ((ctx: RequestCtx) => string | undefined) | undefined
}

/** Names a set of targets: provider/model of each, sorted (the strategy's order is not part of it). */
function targetSetId(targets: readonly CompiledTarget[]): string {
  return targets.map((t) => `${t.provider}/${t.model}`).sort().join(',')
}

function asSet(v: string | string[]): ReadonlySet<string> {
  return new Set(Array.isArray(v) ? v : [v])
}

function compileRule(r: AliasSettings['rules'][number], targets: readonly CompiledTarget[]): CompiledRule {
  const checks: ((ctx: RequestCtx) => boolean)[] = []
  for (const [name, v] of Object.entries(r.when.header ?? {})) {
    const allowed = asSet(v)
    const h = name.toLowerCase()
    checks.push((ctx) => { const x = ctx.headers[h]; return typeof x === 'string' && allowed.has(x) })
  }
  for (const [key, v] of Object.entries(r.when.metadata ?? {})) {
    const allowed = asSet(v)
    checks.push((ctx) => { const x = ctx.chat?.metadata?.[key]; return typeof x === 'string' && allowed.has(x) })
  }
  for (const [param, v] of Object.entries(r.when.param ?? {})) {
    const want = JSON.stringify(v)
    checks.push((ctx) => JSON.stringify((ctx.chat as Record<string, unknown> | undefined)?.[param] ?? null) === want)
  }
  const chosen = r.targets?.map((i) => targets[i]!)
  return {
    match: (ctx) => checks.every((c) => c(ctx)),
    targets: chosen,
    targetSetId: chosen ? targetSetId(chosen) : undefined,
    alias: r.alias,
  }
}

function compileSticky(spec: string | undefined): CompiledAlias['stickyKey'] {
  if (spec === undefined) return undefined
  if (spec === 'user') return (ctx) => ctx.chat?.user
  if (spec.startsWith('header:')) {
    const h = spec.slice(7)
    return (ctx) => { const v = ctx.headers[h]; return typeof v === 'string' ? v : undefined }
  }
  const k = spec.slice('metadata:'.length)
  return (ctx) => ctx.chat?.metadata?.[k]
}

/** Validates references and builds the alias; returns errors naming the field instead of throwing. */
export function compileAliases(
  models: Readonly<Record<string, AliasSettings>>,
  providers: ReadonlyMap<string, ProviderAdapter>,
  routing: RoutingSettings,
  registry: TargetRegistry,
  /** Prices (USD per million tokens) of a provider (name and type) and model, as the cost meter or the catalogue has them; config `price` is the fallback. */
  priceOf: (provider: string, providerType: string, model: string) => { input: number; output: number } | undefined = () => undefined,
): { aliases: Map<string, CompiledAlias>; errors: string[] } {
  const errors: string[] = []
  const aliases = new Map<string, CompiledAlias>()
  for (const [name, a] of Object.entries(models)) {
    const targets: CompiledTarget[] = []
    for (const [i, t] of a.targets.entries()) {
      const adapter = providers.get(t.provider)
      if (!adapter) { errors.push(`models.${name}.targets[${i}].provider: no provider named '${t.provider}'`); continue }
      targets.push({
        index: i, provider: t.provider, model: t.model, adapter,
        weight: t.weight, priority: t.priority, tags: t.tags, timeouts: t.timeouts ?? {},
        maxConcurrent: t.maxConcurrent ?? Number.POSITIVE_INFINITY,
        contextWindow: t.contextWindow ?? 0,
        price: priceOf(t.provider, adapter.type, t.model) ?? t.price,
        supportsPrefill: t.supportsPrefill ?? adapter.type === 'anthropic',
        state: registry.get(t.provider, t.model, routing),
      })
    }
    for (const [i, r] of a.rules.entries()) {
      for (const ti of r.targets ?? []) if (ti >= a.targets.length) errors.push(`models.${name}.rules[${i}].targets: no target at index ${ti}`)
      if (r.alias !== undefined && !(r.alias in models)) errors.push(`models.${name}.rules[${i}].alias: no alias named '${r.alias}'`)
      if (r.targets === undefined && r.alias === undefined) errors.push(`models.${name}.rules[${i}]: needs targets or alias`)
    }
    for (const [i, f] of a.fallbacks.entries()) {
      if (!(f in models)) errors.push(`models.${name}.fallbacks[${i}]: no alias named '${f}'`)
      if (f === name) errors.push(`models.${name}.fallbacks[${i}]: an alias cannot fall back to itself`)
    }
    if (errors.length > 0) continue
    aliases.set(name, {
      name, settings: a, targets, targetSetId: targetSetId(targets),
      order: createOrder(a.strategy),
      rules: a.rules.map((r) => compileRule(r, targets)),
      stickyKey: compileSticky(a.sticky),
    })
  }
  return { aliases, errors }
}

interface RuleOutcome {
  /** The alias the request lands on: its own, or the one a matching rule hands it to. */
  readonly alias: CompiledAlias
  /** The targets it may use there (before the strategy orders them), and their `targetSetId`. */
  readonly own: readonly CompiledTarget[]
  readonly ownId: string
}

/** Applies an alias's rules to a request (the first match wins; a rule may hand it to another alias, once each). */
function applyRules(ctx: RequestCtx, alias: CompiledAlias, aliases: ReadonlyMap<string, CompiledAlias>, seen: Set<string>): RuleOutcome {
  seen.add(alias.name)
  for (const r of alias.rules) {
    if (!r.match(ctx)) continue
    if (r.alias !== undefined) {
      const other = aliases.get(r.alias)
      if (other && !seen.has(other.name)) return applyRules(ctx, other, aliases, seen)
    }
    if (r.targets) return { alias, own: r.targets, ownId: r.targetSetId! }
    break
  }
  return { alias, own: alias.targets, ownId: alias.targetSetId }
}

/**
 * What an alias resolves to for this request, for keys that must tell routes apart (the response cache): the
 * alias after its rules and the set of targets they left, e.g. `smart[mock/gpt-4o-mini]`. Not which of those
 * targets the strategy picks, nor the fallbacks.
 */
export function routedSet(ctx: RequestCtx, alias: CompiledAlias, aliases: ReadonlyMap<string, CompiledAlias>): string {
  const r = alias.rules.length === 0 ? undefined : applyRules(ctx, alias, aliases, new Set<string>())
  return r === undefined ? `${alias.name}[${alias.targetSetId}]` : `${r.alias.name}[${r.ownId}]`
}

/** The ordered candidates for one request: rule match or strategy order, then the fallback aliases'. */
export function candidatesFor(ctx: RequestCtx, start: CompiledAlias, aliases: ReadonlyMap<string, CompiledAlias>, seen = new Set<string>()): { target: CompiledTarget; alias: CompiledAlias }[] {
  const { alias, own } = applyRules(ctx, start, aliases, seen)
  const key = alias.stickyKey?.(ctx)
  const ordered = key !== undefined && key !== '' ? rendezvous(own, key) : alias.order(own, key)
  const out = ordered.map((target) => ({ target, alias }))
  for (const f of alias.settings.fallbacks) {
    const fa = aliases.get(f)
    if (fa && !seen.has(fa.name)) out.push(...candidatesFor(ctx, fa, aliases, seen))
  }
  return out
}
