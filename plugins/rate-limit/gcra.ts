/**
 * The checks a store runs at admission, and GCRA (generic cell rate algorithm) in its capacity
 * form, shared by the in-process store and mirrored line for line by lua/admit.lua.
 *
 * A rule "count per period, burst B" has an emission interval T = period / count and a tolerance
 * τ = B·T. The state is one number per key, the theoretical arrival time (TAT). A request of cost n
 * at `now`: tat = max(TAT, now); next = tat + n·T; admitted iff next − now ≤ τ, and then TAT = next.
 * From an idle state exactly B cost units pass at once, then one every T; a rejection's retry time
 * is exact: next − τ − now. Remaining after the decision: floor((τ − (TAT − now)) / T); the state is
 * back to idle ("reset") after TAT − now.
 */

export interface GcraCheck {
  readonly kind: 'gcra'
  /** Store key (without the Redis prefix). */
  readonly key: string
  /** T, ms per unit. */
  readonly emissionMs: number
  /** τ = burst · T, ms. */
  readonly toleranceMs: number
  /** Units this request consumes (1 for request rules, estimated tokens for token rules). */
  readonly cost: number
}

export interface SlotCheck {
  readonly kind: 'slot'
  readonly key: string
  /** Slots (requests in flight) allowed at once. */
  readonly limit: number
  /** A slot not released within this long expires (Redis only; the local store releases exactly). */
  readonly ttlMs: number
}

export type Check = GcraCheck | SlotCheck

/** The outcome of one all-or-nothing admission: nothing is consumed unless every check passes. */
export interface Verdict {
  readonly ok: boolean
  /** Index of the failing check with the longest wait (-1 when ok). */
  readonly failed: number
  /** When `failed` could pass again, ms (0 when ok). Slot checks report 1000 (unknown). */
  readonly retryMs: number
  /** Per check: units left after this decision. */
  readonly remaining: readonly number[]
  /** Per check: ms until the state is back to idle. */
  readonly resetMs: readonly number[]
}

/** Retry hint for a full concurrency check: a slot frees when some request completes. */
export const SLOT_RETRY_MS = 1000

export interface GcraStep {
  /** The new TAT if admitted. */
  readonly next: number
  readonly ok: boolean
  readonly retryMs: number
  readonly remaining: number
  readonly resetMs: number
}

/**
 * Slack for floating-point sums of T (ms): 1 µs. Without it the B-th request of a burst can be
 * refused because B·T summed one by one lands a few ulps above τ. lua/admit.lua uses the same.
 */
export const EPS_MS = 0.001

/** One GCRA decision (pure). `tat` is the stored TAT or 0 when absent. */
export function gcraStep(tat: number, now: number, c: GcraCheck): GcraStep {
  const base = tat > now ? tat : now
  const next = base + c.cost * c.emissionMs
  const diff = next - now
  if (diff > c.toleranceMs + EPS_MS) {
    const held = base - now
    return { next: base, ok: false, retryMs: diff - c.toleranceMs, remaining: Math.max(0, Math.floor((c.toleranceMs - held + EPS_MS) / c.emissionMs)), resetMs: held }
  }
  return { next, ok: true, retryMs: 0, remaining: Math.max(0, Math.floor((c.toleranceMs - diff + EPS_MS) / c.emissionMs)), resetMs: diff }
}

/** GCRA parameters of "count per periodMs, burst". */
export function gcraParams(count: number, periodMs: number, burst: number): { emissionMs: number; toleranceMs: number } {
  const emissionMs = periodMs / count
  return { emissionMs, toleranceMs: burst * emissionMs }
}

/** What completion does to a store: release a concurrency slot, correct a token charge. Never waits. */
export interface StoreWrites {
  /** Moves a GCRA key's TAT by `delta` units (negative = refund), never below idle. */
  adjust(key: string, emissionMs: number, delta: number): void
  /** Frees the slot `member` (the request id) holds on `key`. */
  release(key: string, member: string): void
}
