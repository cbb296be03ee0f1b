/**
 * Which store a request's budget goes to, and what happens when Redis is slow or down (the plugin's
 * `failMode`, docs/budgets.md "Degraded modes"):
 *
 *  - every Redis call races `timeoutMs`; after `breakerFailures` consecutive failures Redis is skipped
 *    for `breakerCooldownMs`, then one request probes it;
 *  - 'closed': the request is refused (MCP_ERR_BUDGET_UNAVAILABLE, 503);
 *  - 'open': the request is admitted without a reservation; its spend is still settled into Redis
 *    later (when Redis is back by then);
 *  - 'local': the in-process counters admit and enforce (per instance), and the spend is settled
 *    into Redis too when it is back.
 *
 * A timed-out admission may still have reserved in Redis: the later settlement of the same id (the
 * request's actual spend, or zero) releases it; failing that, its TTL does.
 */
import type { Counter } from '../../gateway/metrics.ts'
import type { Redis } from '../../gateway/redis.ts'
import type { BudgetConfig } from './config.ts'
import { RedisBudgetStore } from './redis-store.ts'
import { localStoreFor, type AdmitResult, type BudgetStore, type CounterSpec, type CounterState, type LocalBudgetStore, type Units } from './store.ts'

export class BackendTimeout extends Error {
  constructor(ms: number) {
    super(`budget store did not answer within ${ms} ms`)
    this.name = 'BackendTimeout'
  }
}

export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined
  return Promise.race([p, new Promise<never>((_, reject) => { t = setTimeout(() => reject(new BackendTimeout(ms)), ms) })]).finally(() => clearTimeout(t))
}

/** Where a request was admitted: `primary` holds its reservation (none: admitted unmetered), `mirror` also receives its settlement. */
export interface Placement {
  readonly primary: BudgetStore | undefined
  readonly mirror: RedisBudgetStore | undefined
  /** 'redis' | 'local' | 'open' (degraded, unmetered) | 'closed' (degraded, refused). */
  readonly mode: 'redis' | 'local' | 'open' | 'closed'
}

export interface BackendMetrics {
  errors: Counter
  degraded: Counter
  settleFailed: Counter
}

/** Settlement retries (off the request path): the settle marker makes a repeat harmless. */
const SETTLE_RETRY_MS = [0, 250, 1000, 4000, 15_000]

/** What reports read. */
export interface BackendReader {
  readonly reader: BudgetStore
  peek(counters: readonly CounterSpec[], now: number): Promise<readonly CounterState[] | undefined>
}

export class BudgetBackend implements BackendReader {
  readonly local: LocalBudgetStore
  readonly redis: RedisBudgetStore | undefined
  readonly #cfg: BudgetConfig
  readonly #m: BackendMetrics
  /** The placement of every in-process admission (one object, not one per request). */
  readonly #localPlacement: Placement
  #failures = 0
  #openUntil = 0
  #probing = false

  constructor(cfg: BudgetConfig, redis: Redis | undefined, m: BackendMetrics) {
    this.#cfg = cfg
    this.#m = m
    this.local = localStoreFor(cfg.keyPrefix, cfg.reservationTtlMs)
    this.#localPlacement = { primary: this.local, mirror: undefined, mode: 'local' }
    const useRedis = cfg.backend === 'redis' || (cfg.backend === 'auto' && redis !== undefined)
    this.redis = useRedis && redis ? new RedisBudgetStore(redis, cfg.keyPrefix, cfg.reservationTtlMs) : undefined
  }

  /** This instance's reservationTtlMs (the in-process store is shared with instances that may have another). */
  get reservationTtlMs(): number {
    return this.#cfg.reservationTtlMs
  }

  /** The store reports and downgrade decisions read (Redis when configured). */
  get reader(): BudgetStore {
    return this.redis ?? this.local
  }

  /** True when the plugin is configured for Redis but has no client (backend: 'redis' without MCP_REDIS_URL). */
  get missingRedis(): boolean {
    return this.#cfg.backend === 'redis' && this.redis === undefined
  }

  #ok(): void {
    this.#failures = 0
    this.#openUntil = 0
  }

  #fail(now: number, op: string): void {
    this.#m.errors.labels(op).inc()
    if (++this.#failures >= this.#cfg.breakerFailures) this.#openUntil = now + this.#cfg.breakerCooldownMs
  }

  /** Redis with the timeout and breaker; undefined result = Redis unusable (the fail policy applies). */
  async #redisCall<T>(op: string, now: number, fn: (s: RedisBudgetStore) => Promise<T>, ms = this.#cfg.timeoutMs): Promise<{ ok: true; value: T } | { ok: false }> {
    const s = this.redis!
    // Breaker: open for the cooldown after `breakerFailures` consecutive failures, then one probe at a time.
    const probe = this.#failures >= this.#cfg.breakerFailures
    if (probe) {
      if (now < this.#openUntil || this.#probing) return { ok: false }
      this.#probing = true
    }
    try {
      const value = await withTimeout(fn(s), ms)
      this.#ok()
      return { ok: true, value }
    } catch {
      this.#fail(now, op)
      return { ok: false }
    } finally {
      if (probe) this.#probing = false
    }
  }

  /**
   * Admits on the configured store. Returns the placement and the result; a refused result with
   * placement mode 'closed' means the backend failed under failMode 'closed'.
   */
  admit(id: string, counters: readonly CounterSpec[], amount: Units, enforce: boolean, now: number): { placement: Placement; result: AdmitResult | undefined } | Promise<{ placement: Placement; result: AdmitResult | undefined }> {
    if (!this.redis) {
      // In-process: decided synchronously (no promise, no microtask on the request path).
      if (this.missingRedis) return this.#degraded(id, counters, amount, enforce, now)
      return { placement: this.#localPlacement, result: this.local.admitSync(id, counters, amount, enforce, now, this.#cfg.reservationTtlMs) }
    }
    return this.#admitRedis(id, counters, amount, enforce, now)
  }

  async #admitRedis(id: string, counters: readonly CounterSpec[], amount: Units, enforce: boolean, now: number): Promise<{ placement: Placement; result: AdmitResult | undefined }> {
    const r = await this.#redisCall('admit', now, (s) => s.admit(id, counters, amount, enforce, now))
    if (r.ok) return { placement: { primary: this.redis, mirror: undefined, mode: 'redis' }, result: r.value }
    return this.#degraded(id, counters, amount, enforce, now)
  }

  #degraded(id: string, counters: readonly CounterSpec[], amount: Units, enforce: boolean, now: number): { placement: Placement; result: AdmitResult | undefined } {
    const mode = this.#cfg.failMode
    this.#m.degraded.labels(mode).inc()
    const mirror = this.redis
    if (mode === 'closed') {
      // A timed-out admission may have reserved: release it in the background.
      if (mirror) this.settleInBackground({ primary: undefined, mirror, mode: 'closed' }, id, counters, [0, 0, 0])
      return { placement: { primary: undefined, mirror: undefined, mode: 'closed' }, result: undefined }
    }
    if (mode === 'open') return { placement: { primary: undefined, mirror, mode: 'open' }, result: undefined }
    return { placement: { primary: this.local, mirror, mode: 'local' }, result: this.local.admitSync(id, counters, amount, enforce, now, this.#cfg.reservationTtlMs) }
  }

  /**
   * Adds to an admitted request's reservation (stream cut-off). Synchronous for the local store;
   * a promise for Redis. `undefined` result: the store could not answer.
   */
  extend(p: Placement, id: string, counters: readonly CounterSpec[], amount: Units, enforce: boolean, now: number): AdmitResult | Promise<AdmitResult | undefined> | undefined {
    if (!p.primary) return undefined
    if (p.primary.kind === 'local') return (p.primary as LocalBudgetStore).admitSync(id, counters, amount, enforce, now, this.#cfg.reservationTtlMs)
    return this.#redisCall('extend', now, (s) => s.admit(id, counters, amount, enforce, now)).then((r) => (r.ok ? r.value : undefined))
  }

  /**
   * Settles on the primary store now and retries Redis in the background. In-process placements answer
   * synchronously (the primary's states); otherwise a promise of them.
   */
  settle(p: Placement, id: string, counters: readonly CounterSpec[], actual: Units, now: number): readonly CounterState[] | Promise<readonly CounterState[] | undefined> {
    if (p.primary?.kind === 'local' && !p.mirror) return (p.primary as LocalBudgetStore).settleSync(id, counters, actual, now)
    return this.#settle(p, id, counters, actual, now)
  }

  async #settle(p: Placement, id: string, counters: readonly CounterSpec[], actual: Units, now: number): Promise<readonly CounterState[] | undefined> {
    let states: readonly CounterState[] | undefined
    if (p.primary?.kind === 'local') states = (p.primary as LocalBudgetStore).settleSync(id, counters, actual, now)
    if (p.primary?.kind === 'redis') {
      const r = await this.#redisCall('settle', now, (s) => s.settle(id, counters, actual, now), Math.max(this.#cfg.timeoutMs, 1000))
      if (r.ok) states = r.value
      else this.settleInBackground({ primary: undefined, mirror: this.redis, mode: 'redis' }, id, counters, actual, 1)
    }
    if (p.mirror) this.settleInBackground(p, id, counters, actual)
    return states
  }

  /** Settles into Redis with retries, never on a request's path. */
  settleInBackground(p: Placement, id: string, counters: readonly CounterSpec[], actual: Units, from = 0): void {
    const store = p.mirror
    if (!store) return
    const attempt = (i: number): void => {
      if (i >= SETTLE_RETRY_MS.length) { this.#m.settleFailed.inc(); return }
      const t = setTimeout(() => {
        withTimeout(store.settle(id, counters, actual, Date.now()), Math.max(this.#cfg.timeoutMs, 1000))
          .then(() => this.#ok(), () => { this.#m.errors.labels('settle').inc(); attempt(i + 1) })
      }, SETTLE_RETRY_MS[i])
      t.unref()
    }
    attempt(from)
  }

  /** Refreshes the expiry of open Redis reservations (keepalive.ts), with the breaker; throws when Redis failed. */
  async refresh(entries: readonly { id: string; counters: readonly CounterSpec[] }[], now: number): Promise<void> {
    if (!this.redis) return
    const r = await this.#redisCall('refresh', now, (s) => s.refresh(entries, now), Math.max(this.#cfg.timeoutMs, 1000))
    if (!r.ok) throw new Error('budget: refreshing open reservations in Redis failed (they expire reservationTtlMs after their last refresh)')
  }

  /** Counter states from the reader store (reports, downgrade); undefined when Redis fails. */
  async peek(counters: readonly CounterSpec[], now: number): Promise<readonly CounterState[] | undefined> {
    if (!this.redis) return this.local.peekSync(counters, now)
    const r = await this.#redisCall('peek', now, (s) => s.peek(counters, now))
    return r.ok ? r.value : undefined
  }
}
