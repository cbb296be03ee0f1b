/** Prometheus series of the router: retries, fallbacks, budget exhaustion, fast 503s, breaker state per target. */
import type { CounterChild, Metrics } from '../metrics.ts'
import type { TargetRegistry } from './target-state.ts'

export interface RoutingMetrics {
  retries(alias: string, reason: string): CounterChild
  fallbacks(alias: string, reason: string): CounterChild
  unavailable(alias: string): CounterChild
  readonly retryBudgetExhausted: CounterChild
}

export function createRoutingMetrics(m: Metrics, registry: TargetRegistry): RoutingMetrics {
  const retries = m.counter('mcp_upstream_retries_total', 'Upstream attempts after the first, by alias and reason', ['alias', 'reason'])
  const fallbacks = m.counter('mcp_fallbacks_total', 'Requests answered by a target other than the first choice, by alias and reason', ['alias', 'reason'])
  const unavailable = m.counter('mcp_alias_unavailable_total', 'Fast 503s because every target of an alias was down', ['alias'])
  const budget = m.counter('mcp_retry_budget_exhausted_total', 'Retries refused by the retry budget')
  const states = { closed: 0, 'half-open': 1, open: 2 } as const
  m.gauge('mcp_breaker_state', 'Circuit breaker state per target: 0 closed, 1 half-open, 2 open', ['target'], (set) => {
    for (const s of registry.all()) set(states[s.breakerState], s.id)
  })
  m.gauge('mcp_target_inflight', 'Requests in flight per target', ['target'], (set) => {
    for (const s of registry.all()) set(s.inflight, s.id)
  })
  m.gauge('mcp_target_healthy', 'Target health: 1 available, 0 ejected, unhealthy or open', ['target'], (set) => {
    const now = Date.now()
    for (const s of registry.all()) set(s.available(now) ? 1 : 0, s.id)
  })
  return {
    retries: (a, r) => retries.labels(a, r),
    fallbacks: (a, r) => fallbacks.labels(a, r),
    unavailable: (a) => unavailable.labels(a),
    retryBudgetExhausted: budget.labels(),
  }
}
