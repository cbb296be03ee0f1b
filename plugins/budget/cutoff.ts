/**
 * Stream cut-off (a hard budget with `streamCutoff: true`): a stream whose output is not capped by
 * its reservation (no max_tokens, `capMaxTokens: false`) counts its output as it goes (characters of
 * content, refusals and tool calls / charsPerToken) and, half a step before it has used what it
 * reserved, asks the store for `extendTokens` more, atomically, like an admission. When the store
 * refuses and the stream goes past its reservation, the hook throws MCP_ERR_BUDGET_EXCEEDED: the
 * gateway's stream delivery ends the stream with that error as its final event (never `[DONE]`),
 * cancels the upstream, and the request settles what it streamed.
 *
 * In-process the extension is synchronous (exact); on Redis it is asynchronous: the stream runs on
 * while it is in flight, so it may pass its reservation by what arrives during one round trip.
 *
 * When Redis cannot answer an extension (down, slow, breaker open), failMode decides, as at admission
 * (docs/budgets.md "Degraded modes"): `open` and `local` let the stream run on (its use is settled when Redis
 * is back); `closed` asks again on the next chunks and, if the stream passes its reservation meanwhile, ends
 * it with MCP_ERR_BUDGET_UNAVAILABLE (counted in mcp_budget_degraded_total{mode="closed"}) — not a budget
 * cut-off: the budget is not exhausted, its backend is unavailable.
 */
import type { RequestCtx } from '../../gateway/context.ts'
import { GatewayError } from '../../gateway/errors.ts'
import type { CounterChild, Counter } from '../../gateway/metrics.ts'
import type { ChatChunk } from '../../providers/types.ts'
import type { BudgetBackend } from './backend.ts'
import type { BudgetConfig } from './config.ts'
import { outputTokensOf, worstCostNano } from './estimate.ts'
import type { BudgetSlot } from './index.ts'
import type { Units } from './store.ts'

export interface CutoffDeps {
  backend: BudgetBackend
  config: BudgetConfig
  cutoffNames: ReadonlySet<string>
  clock: () => number
  enforce: boolean
  cutoffs: Counter
  /** mcp_budget_degraded_total (a stream ended because Redis could not extend it, failMode closed). */
  degraded: Counter
}

export function createCutoffHook(d: CutoffDeps): (ctx: RequestCtx, chunk: ChatChunk) => void {
  const { backend, config, cutoffNames, clock, enforce } = d
  const est = config.estimate
  const counted = new Map<string, CounterChild>()
  const count = (name: string, shadow: boolean): void => {
    const k = shadow ? `${name}\u0000shadow` : name
    let c = counted.get(k)
    if (!c) { c = d.cutoffs.labels(name, shadow ? 'true' : 'false'); counted.set(k, c) }
    c.inc()
  }

  let degradedClosed: CounterChild | undefined

  const extend = (ctx: RequestCtx, s: BudgetSlot): void => {
    const step = config.extendTokens
    const amount: Units = [worstCostNano(0, step, s.worst, s.tier), step, 0]
    // Only budgets with streamCutoff may end the stream.
    const cs = s.counters.map((c, i) => (cutoffNames.has(s.rules[i]!.name) ? c : { ...c, hard: false }))
    const done = (r: { status: string } | undefined): void => {
      s.extending = false
      if (r === undefined) {
        // The store could not answer: fail-closed budgets end the stream if it passes its reservation before an
        // extension succeeds (asked again on the next chunks); the others let it run.
        if (config.failMode === 'closed') s.extensionUnavailable = true
        else s.grantedOut += step
        return
      }
      s.extensionUnavailable = false
      if (r.status === 'refused') { s.extensionRefused = true; return }
      for (let u = 0; u < 3; u++) s.amount[u]! += amount[u]!
      // Shadow mode: reserved, but a refusal had it been enforced. Where the stream passes what it was granted
      // before, it is counted as a cut-off (shadow="true") and left to run.
      if (r.status === 'over') { s.extensionRefused = true; s.shadowCut = true; return }
      s.grantedOut += step
    }
    s.extending = true
    const r = backend.extend(s.placement!, s.id, cs, amount, enforce, clock())
    if (r instanceof Promise) void r.then(done, () => done(undefined))
    else done(r)
  }

  return (ctx, chunk) => {
    const s = ctx.slots.budget
    if (!s?.cutoff || s.settled) return
    // A resumed stream's next attempt: what came before is the cut attempts' (settled from their own usage).
    if (ctx.attemptLog.length !== s.seenAttempts) { s.seenAttempts = ctx.attemptLog.length; s.cutChars = s.outChars }
    for (const c of chunk.choices) {
      const dl = c.delta
      if (typeof dl.content === 'string') s.outChars += dl.content.length
      if (typeof dl.refusal === 'string') s.outChars += dl.refusal.length
      if (dl.tool_calls) for (const t of dl.tool_calls) s.outChars += (t.function?.arguments?.length ?? 0) + (t.function?.name?.length ?? 0)
    }
    const out = outputTokensOf(s.outChars, est)
    // Ask for more ahead of need (half a step early), so a Redis round trip rarely delays the decision.
    if (!s.extending && !s.extensionRefused && out + Math.ceil(config.extendTokens / 2) >= s.grantedOut) extend(ctx, s)
    if (out <= s.grantedOut) return
    if (!s.extensionRefused) {
      if (!s.extensionUnavailable || !enforce) return
      // failMode closed, Redis down: the budget cannot be checked (not exhausted). Not resumed elsewhere either.
      s.cutoff = false
      degradedClosed ??= d.degraded.labels('closed')
      degradedClosed.inc()
      ctx.resume = undefined
      throw new GatewayError('MCP_ERR_BUDGET_UNAVAILABLE', {}, { details: 'budget.backend_unavailable' })
    }
    const i = Math.max(0, s.rules.findIndex((r) => cutoffNames.has(r.name)))
    const rule = s.rules[i]!
    const c = s.counters[i]!
    count(rule.name, s.shadowCut)
    s.cutoff = false
    if (s.shadowCut) return
    // Never resumed on another target: the budget, not the provider, ended it.
    ctx.resume = undefined
    throw new GatewayError('MCP_ERR_BUDGET_EXCEEDED', { budget: rule.name, who: rule.scope === 'global' ? '' : ` of ${rule.scope} '${c.scopeId}'`, unit: 'usd', period: rule.period, reset: new Date(c.periodEnd).toISOString() }, {
      providerCode: 'budget_exceeded', details: 'budget.stream_cutoff',
    })
  }
}
