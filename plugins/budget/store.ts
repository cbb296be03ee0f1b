/**
 * Budget counters and the one admission step, in-process. redis-store.ts runs the same algorithm in
 * Lua (lua/admit.lua, lua/settle.lua) for counters shared by every instance.
 *
 * A counter is (budget, scope id, period start) with, per unit (nano-USD, tokens, requests), what
 * was spent (settled) and what is reserved (admitted, not yet settled). Admission of a request is
 * all-or-nothing over every counter that applies to it: for each hard counter and unit with a
 * limit, spent + reserved + amount ≤ limit must hold, and only then is the amount added to the
 * reserved total of every counter, under the request's reservation id. Settling replaces the
 * reservation by the actual amount, once (in Redis a settle marker makes a second settle a no-op and stops a
 * late admission of the same id). A reservation not settled within its TTL (crashed instance) is
 * dropped at the next admission on its counter; the reservations of requests still running are refreshed
 * before that (keepalive.ts), so only a dead instance's ever expire.
 */

/** [nano-USD, tokens, requests]; integers. */
export type Units = [number, number, number]
export const UNIT_NAMES = ['usd', 'tokens', 'requests'] as const

export interface CounterSpec {
  readonly budget: string
  readonly scopeId: string
  readonly periodStart: number
  readonly periodEnd: number
  readonly hard: boolean
  /** Per unit; -1 = no limit in that unit. */
  readonly limits: Units
}

export interface CounterState {
  spent: Units
  reserved: Units
}

export interface AdmitResult {
  /** ok: reserved. refused: nothing reserved. over: reserved although a hard limit is crossed (not enforced: shadow). settled: the id was already settled. */
  readonly status: 'ok' | 'refused' | 'over' | 'settled'
  /** Index of the first counter that is (or would be) exceeded, -1 if none. */
  readonly failed: number
  /** Its unit index (0 usd, 1 tokens, 2 requests), -1 if none. */
  readonly unit: number
  /** Each counter after the step. */
  readonly states: readonly CounterState[]
}

export interface BudgetStore {
  readonly kind: 'local' | 'redis'
  /** Reserves `amount` on every counter under `id`, or nothing (see file comment). Adds to an existing reservation of the same id. */
  admit(id: string, counters: readonly CounterSpec[], amount: Units, enforce: boolean, now: number): Promise<AdmitResult>
  /** Replaces the reservation of `id` by `actual` on every counter. Undefined when `id` was settled already. */
  settle(id: string, counters: readonly CounterSpec[], actual: Units, now: number): Promise<readonly CounterState[] | undefined>
  /** Current state of counters (expired reservations dropped first). */
  peek(counters: readonly CounterSpec[], now: number): Promise<readonly CounterState[]>
  /** Scope ids that have a counter for this budget and period. */
  scopes(budget: string, periodStart: number): Promise<string[]>
}

/**
 * The most one request reserves or settles in a unit: 2^53 - 1, more than any limit (at most $9,000,000 =
 * 9e15 nano-USD), so a request above it is still refused by every hard limit in that unit. A client's
 * max_tokens has no upper bound: unclamped, its worst case left Redis' 64-bit integers (HINCRBY failed inside
 * lua/admit.lua, a client-made "Redis failure" that opened the breaker for everyone) and JavaScript's exact ones.
 */
export const MAX_UNITS = Number.MAX_SAFE_INTEGER

/** How long a counter outlives its period (the previous period stays listable). */
export const COUNTER_RETENTION_MS = 35 * 86_400_000

export const zero = (): Units => [0, 0, 0]

interface LocalCounter {
  spent: Units
  reserved: Units
  /** reservation id → amount (per unit) and expiry (epoch ms). */
  res: Map<string, Reservation>
  expiresAt: number
  /** Next time orphaned reservations are looked for. */
  nextPurge: number
}

/** One reservation on one counter: its amount per unit, flat (one object, no array). */
interface Reservation { u0: number; u1: number; u2: number; expiresAt: number }

const keys = new WeakMap<CounterSpec, string>()

/** The counter's map key, built once per spec object (the plugin reuses a spec for its whole period). */
function counterKey(c: CounterSpec): string {
  let k = keys.get(c)
  if (k === undefined) { k = `${c.budget}\u0000${c.scopeId}\u0000${c.periodStart}`; keys.set(c, k) }
  return k
}

function release(x: LocalCounter, r: Reservation): void {
  x.reserved[0] -= r.u0
  x.reserved[1] -= r.u1
  x.reserved[2] -= r.u2
}

function snapshot(c: LocalCounter | undefined): CounterState {
  return c ? { spent: [...c.spent], reserved: [...c.reserved] } : { spent: zero(), reserved: zero() }
}

/** The first (counter, unit) where spent + reserved + amount > limit, for hard counters, as counter * 3 + unit; -1 if none. */
export function firstExceeded(counters: readonly CounterSpec[], states: readonly Readonly<CounterState>[], amount: Units): number {
  for (let i = 0; i < counters.length; i++) {
    const c = counters[i]!
    if (!c.hard) continue
    const s = states[i]!
    for (let u = 0; u < 3; u++) {
      const lim = c.limits[u]!
      if (lim >= 0 && amount[u]! > 0 && s.spent[u]! + s.reserved[u]! + amount[u]! > lim) return i * 3 + u
    }
  }
  return -1
}

/**
 * In-process counters with the same semantics as the Redis scripts, but one: no settle marker. The Redis store
 * needs one (admission there is asynchronous, so a release can overtake its admission, and several instances
 * share the counters); here the only caller is this process's budget plugin, whose admission is synchronous and
 * whose request slot settles each reservation exactly once (BudgetSlot.settled). Remembering every settled id
 * for seconds cost more than the rest of the admission (a hash set of tens of thousands of ids, all promoted to
 * the old generation), so settling the same id twice here counts it twice: the caller must not.
 */
export class LocalBudgetStore implements BudgetStore {
  readonly kind = 'local' as const
  readonly #counters = new Map<string, LocalCounter>()
  readonly #scopes = new Map<string, Set<string>>()
  /** #countersOf's answers per counter-spec array. */
  readonly #lists = new WeakMap<readonly CounterSpec[], LocalCounter[]>()
  readonly #ttlMs: number
  #ops = 0

  constructor(reservationTtlMs: number) {
    this.#ttlMs = reservationTtlMs
  }

  #counter(c: CounterSpec, create: boolean): LocalCounter | undefined {
    const k = counterKey(c)
    let x = this.#counters.get(k)
    if (!x && create) {
      x = { spent: zero(), reserved: zero(), res: new Map(), expiresAt: c.periodEnd + COUNTER_RETENTION_MS, nextPurge: 0 }
      this.#counters.set(k, x)
      const sk = `${c.budget}\u0000${c.periodStart}`
      let set = this.#scopes.get(sk)
      if (!set) { set = new Set(); this.#scopes.set(sk, set) }
      set.add(c.scopeId)
    }
    return x
  }

  #purge(x: LocalCounter, now: number): void {
    // Orphans (a caller that never settled) expire after the TTL; looking once a second is enough.
    if (now < x.nextPurge) return
    x.nextPurge = now + 1000
    x.res.forEach((r, id) => {
      if (r.expiresAt > now) return
      release(x, r)
      x.res.delete(id)
    })
  }

  #sweep(now: number): void {
    if (++this.#ops % 1024 !== 0) return
    for (const [k, x] of this.#counters) if (x.expiresAt <= now) this.#counters.delete(k)
    for (const [sk, set] of this.#scopes) {
      const [budget, start] = sk.split('\u0000')
      for (const s of set) if (!this.#counters.has(`${budget}\u0000${s}\u0000${start}`)) set.delete(s)
      if (set.size === 0) this.#scopes.delete(sk)
    }
  }

  /**
   * The live counters of a request's counter specs, in order, created when missing. The plugin passes the same
   * array for every request with the same specs (see the budget plugin's admit), so the answer is kept per array
   * and reused while none of its counters has expired: only #sweep removes a counter, and only an expired one, so
   * an unexpired cached counter is still the one in #counters.
   */
  #countersOf(counters: readonly CounterSpec[], now: number): LocalCounter[] {
    const cached = this.#lists.get(counters)
    if (cached !== undefined) {
      let live = true
      for (let i = 0; i < cached.length; i++) if (cached[i]!.expiresAt <= now) { live = false; break }
      if (live) return cached
    }
    const xs: LocalCounter[] = counters.map((c) => this.#counter(c, true)!)
    this.#lists.set(counters, xs)
    return xs
  }

  /**
   * The states this store returns from admitSync and settleSync are its live counters, not copies: read them before
   * the next call (the budget plugin reads them synchronously), copy them to keep them.
   */
  /**
   * `ttlMs`: the caller's reservationTtlMs. Plugin instances with the same key prefix share this store (a reload keeps
   * the counters), so each reservation expires by the TTL of the instance whose keepalive refreshes it.
   */
  admitSync(id: string, counters: readonly CounterSpec[], amount: Units, enforce: boolean, now: number, ttlMs = this.#ttlMs): AdmitResult {
    this.#sweep(now)
    const xs = this.#countersOf(counters, now)
    for (let i = 0; i < xs.length; i++) this.#purge(xs[i]!, now)
    const at = firstExceeded(counters, xs, amount)
    const failed = at < 0 ? -1 : Math.floor(at / 3)
    const unit = at < 0 ? -1 : at % 3
    if (failed >= 0 && enforce) return { status: 'refused', failed, unit, states: xs }
    const expiresAt = now + ttlMs
    const [a0, a1, a2] = amount
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i]!
      const r = x.res.get(id)
      if (r) { r.u0 += a0; r.u1 += a1; r.u2 += a2; r.expiresAt = expiresAt } else x.res.set(id, { u0: a0, u1: a1, u2: a2, expiresAt })
      x.reserved[0] += a0
      x.reserved[1] += a1
      x.reserved[2] += a2
    }
    return { status: failed >= 0 ? 'over' : 'ok', failed, unit, states: xs }
  }

  settleSync(id: string, counters: readonly CounterSpec[], actual: Units, now: number): CounterState[] {
    const xs = this.#countersOf(counters, now)
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i]!
      const r = x.res.get(id)
      if (r) {
        release(x, r)
        x.res.delete(id)
      }
      for (let u = 0; u < 3; u++) x.spent[u]! += actual[u]!
    }
    return xs
  }

  /** Moves the expiry of `id`'s reservation on these counters to now + TTL (a request still running: keepalive.ts). */
  refreshSync(id: string, counters: readonly CounterSpec[], now: number, ttlMs = this.#ttlMs): void {
    const expiresAt = now + ttlMs
    for (const c of counters) {
      const r = this.#counter(c, false)?.res.get(id)
      if (r !== undefined && r.expiresAt < expiresAt) r.expiresAt = expiresAt
    }
  }

  peekSync(counters: readonly CounterSpec[], now: number): CounterState[] {
    return counters.map((c) => {
      const x = this.#counter(c, false)
      if (x) this.#purge(x, now)
      return snapshot(x)
    })
  }

  admit(id: string, counters: readonly CounterSpec[], amount: Units, enforce: boolean, now: number): Promise<AdmitResult> {
    return Promise.resolve(this.admitSync(id, counters, amount, enforce, now))
  }

  settle(id: string, counters: readonly CounterSpec[], actual: Units, now: number): Promise<readonly CounterState[] | undefined> {
    return Promise.resolve(this.settleSync(id, counters, actual, now))
  }

  peek(counters: readonly CounterSpec[], now: number): Promise<readonly CounterState[]> {
    return Promise.resolve(this.peekSync(counters, now))
  }

  scopes(budget: string, periodStart: number): Promise<string[]> {
    return Promise.resolve([...(this.#scopes.get(`${budget}\u0000${periodStart}`) ?? [])])
  }

  /** Open reservations across all counters (tests, metrics). */
  openReservations(): number {
    let n = 0
    for (const x of this.#counters.values()) n += x.res.size
    return n
  }
}

/** In-process stores by key prefix, shared by plugin instances so counters survive a reload. */
const localStores = new Map<string, LocalBudgetStore>()

export function localStoreFor(prefix: string, reservationTtlMs: number): LocalBudgetStore {
  let s = localStores.get(prefix)
  if (!s) { s = new LocalBudgetStore(reservationTtlMs); localStores.set(prefix, s) }
  return s
}
