/**
 * Live state of one routing target (provider + model), kept across reloads: in-flight count,
 * EWMA of time to first token, a rolling error rate, passive outlier ejection with growing
 * ejection time, active health, and an opossum circuit breaker that judges the upstream call up
 * to its response headers only (its own timeout is off; undici's timeouts rule).
 */
import CircuitBreaker from 'opossum'
import type { GatewayError } from '../errors.ts'
import type { RoutingSettings } from './config.ts'

export type BreakerMode = 'auto' | 'forced-open' | 'forced-closed'

/** The details of a `service_tier: flex` request's 429 (router.ts flexRefusal): flex capacity was short. */
export const FLEX_UNAVAILABLE = 'upstream.flex_unavailable'

/**
 * The details of the MCP_ERR_UPSTREAM_TIMEOUT a request gets when `server.requestDeadlineMs` ran out (handler.ts): the
 * request's own time is up, which says nothing of the target that was answering (no failure, no retry).
 */
export const REQUEST_DEADLINE = 'upstream.request_deadline'

/**
 * Errors that say nothing about the upstream's health: the gateway's own refusals, client aborts, 4xx but 408/429, and
 * a flex request's refusal for want of flex capacity.
 */
export function countsAsUpstreamFailure(e: unknown): boolean {
  const g = e as GatewayError
  if (!g || typeof g.code !== 'string') return true
  if (g.code === 'MCP_ERR_REQ_ABORTED' || g.details === REQUEST_DEADLINE) return false
  if (!g.code.startsWith('MCP_ERR_UPSTREAM_')) return false
  // A flex request refused for want of flex capacity says nothing of the target's standard capacity.
  if (g.code === 'MCP_ERR_UPSTREAM_ERROR') return (g.status >= 500 || g.status === 408 || g.status === 429) && g.details !== FLEX_UNAVAILABLE
  return true
}

export class TargetState {
  readonly id: string
  readonly provider: string
  readonly model: string
  inflight = 0
  /** EWMA of time to first byte/token, ms (0 until measured). */
  ttftEwma = 0
  requests = 0
  failures = 0
  consecutiveFailures = 0
  ejections = 0
  ejectedUntil = 0
  /** Set by a 429's Retry-After: the target is not asked again before this time. */
  coolingUntil = 0
  healthy = true
  lastHealth: { ok: boolean; checkedAt: number; detail?: string | undefined } | undefined
  mode: BreakerMode = 'auto'
  #breaker: CircuitBreaker<[() => Promise<unknown>], unknown>
  #breakerKey: string
  #routing: RoutingSettings
  #window: { at: number; ok: boolean }[] = []

  constructor(provider: string, model: string, routing: RoutingSettings) {
    this.provider = provider
    this.model = model
    this.id = `${provider}/${model}`
    this.#breakerKey = ''
    this.#routing = routing
    this.#breaker = this.#makeBreaker(routing)
  }

  #makeBreaker(routing: RoutingSettings): CircuitBreaker<[() => Promise<unknown>], unknown> {
    const b = routing.breaker
    this.#breakerKey = JSON.stringify(b)
    return new CircuitBreaker((fn: () => Promise<unknown>) => fn(), {
      timeout: false,
      errorThresholdPercentage: b.errorThresholdPercentage,
      volumeThreshold: b.volumeThreshold,
      rollingCountTimeout: b.rollingWindowMs,
      rollingCountBuckets: 10,
      resetTimeout: b.resetTimeoutMs,
      errorFilter: (e: unknown) => !countsAsUpstreamFailure(e),
    })
  }

  /** Applies new breaker settings on reload (a new breaker only when they changed). */
  reconfigure(routing: RoutingSettings): void {
    this.#routing = routing
    if (JSON.stringify(routing.breaker) !== this.#breakerKey) {
      this.#breaker.shutdown()
      this.#breaker = this.#makeBreaker(routing)
    }
  }

  /** Forgets failures, ejections, cool-downs and the breaker's window (operator reset). */
  reset(): void {
    this.#breaker.shutdown()
    this.#breaker = this.#makeBreaker(this.#routing)
    this.consecutiveFailures = 0
    this.ejections = 0
    this.ejectedUntil = 0
    this.coolingUntil = 0
    this.mode = 'auto'
    this.#window = []
  }

  get breakerState(): 'closed' | 'open' | 'half-open' {
    if (this.mode === 'forced-open') return 'open'
    if (this.mode === 'forced-closed') return 'closed'
    return this.#breaker.halfOpen ? 'half-open' : this.#breaker.opened ? 'open' : 'closed'
  }

  /** Whether a new attempt may go to this target now. */
  available(now: number): boolean {
    if (this.mode === 'forced-open') return false
    if (this.mode === 'forced-closed') return true
    if (this.ejectedUntil > now || this.coolingUntil > now) return false
    if (!this.healthy) return false
    // A half-open breaker admits its one probe through fire(); an open one refuses.
    return !this.#breaker.opened || this.#breaker.halfOpen
  }

  /** Why `available()` is false: the fallback reason a response reports. */
  unavailableReason(now: number): string {
    if (this.mode === 'forced-open' || (this.#breaker.opened && !this.#breaker.halfOpen)) return 'circuit_open'
    if (this.ejectedUntil > now) return 'ejected'
    if (this.coolingUntil > now) return 'rate_limited'
    if (!this.healthy) return 'unhealthy'
    return 'unavailable'
  }

  /** Runs an attempt through the breaker (unless forced closed). Rejects with code EOPENBREAKER when open. */
  fire<T>(fn: () => Promise<T>): Promise<T> {
    if (this.mode === 'forced-closed') return fn()
    if (this.mode === 'forced-open') return Promise.reject(Object.assign(new Error('Breaker is forced open'), { code: 'EOPENBREAKER' }))
    return this.#breaker.fire(fn) as Promise<T>
  }

  recordSuccess(ttftMs: number): void {
    this.requests++
    this.consecutiveFailures = 0
    this.ejections = 0
    this.ttftEwma = this.ttftEwma === 0 ? ttftMs : this.ttftEwma * 0.8 + ttftMs * 0.2
    this.#push(true)
  }

  recordFailure(e: unknown, routing: RoutingSettings, now: number): void {
    this.requests++
    if (!countsAsUpstreamFailure(e)) return
    this.failures++
    this.consecutiveFailures++
    this.#push(false)
    const o = routing.outlier
    if (this.consecutiveFailures >= o.consecutiveFailures) {
      this.ejections++
      this.ejectedUntil = now + Math.min(o.maxEjectionMs, o.baseEjectionMs * 2 ** (this.ejections - 1))
      this.consecutiveFailures = 0
    }
  }

  #push(ok: boolean): void {
    const w = this.#window
    w.push({ at: Date.now(), ok })
    if (w.length > 200) w.splice(0, w.length - 200)
  }

  /** Error rate over the last minute (0..1). */
  errorRate(now = Date.now()): number {
    let n = 0
    let bad = 0
    for (const x of this.#window) if (now - x.at < 60_000) { n++; if (!x.ok) bad++ }
    return n === 0 ? 0 : bad / n
  }

  snapshot(now = Date.now()): Record<string, unknown> {
    return {
      id: this.id, provider: this.provider, model: this.model,
      breaker: this.breakerState, mode: this.mode,
      healthy: this.healthy, lastHealth: this.lastHealth,
      ejected: this.ejectedUntil > now, ejectedForMs: Math.max(0, this.ejectedUntil - now),
      coolingForMs: Math.max(0, this.coolingUntil - now),
      inflight: this.inflight, ttftEwmaMs: Math.round(this.ttftEwma * 100) / 100,
      errorRate: Math.round(this.errorRate(now) * 1000) / 1000,
      requests: this.requests, failures: this.failures,
    }
  }

  close(): void {
    this.#breaker.shutdown()
  }
}

/** Target states by id, owned by the Gateway so they survive pipeline generations. */
export class TargetRegistry {
  readonly #states = new Map<string, TargetState>()

  get(provider: string, model: string, routing: RoutingSettings): TargetState {
    const id = `${provider}/${model}`
    let s = this.#states.get(id)
    if (!s) { s = new TargetState(provider, model, routing); this.#states.set(id, s) }
    else s.reconfigure(routing)
    return s
  }

  find(id: string): TargetState | undefined {
    return this.#states.get(id)
  }

  all(): TargetState[] {
    return [...this.#states.values()]
  }

  /**
   * Forgets every state not in `keep` (the targets of the generation just swapped in), so metrics and the admin
   * listing stop showing removed targets; returns them for the caller to close once older generations drained.
   */
  retain(keep: ReadonlySet<TargetState>): TargetState[] {
    const gone: TargetState[] = []
    for (const [id, s] of this.#states) if (!keep.has(s)) { this.#states.delete(id); gone.push(s) }
    return gone
  }

  close(): void {
    for (const s of this.#states.values()) s.close()
  }
}
