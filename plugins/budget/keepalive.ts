/**
 * Keeps the reservations of this plugin instance's open requests from expiring. A reservation carries an expiry
 * (`reservationTtlMs`) so that a crashed instance's reservations are dropped by the next admission on their
 * counters; a request that is still running (a long stream without cut-off) must not lose its reservation that
 * way, or other requests are admitted past a hard limit until it settles.
 *
 * One timer per plugin instance (unref'd), every TTL / 4: each open reservation's expiry is moved to now + TTL,
 * in-process synchronously, on Redis in one round trip (one `ZADD XX` per counter, pipelined). Nothing per request
 * but linking the request's slot into a list at admission and unlinking it at settlement: no allocation, no timer,
 * no promise, no I/O on the request path.
 */
import type { BudgetBackend, Placement } from './backend.ts'
import type { CounterSpec } from './store.ts'

/** What the keepalive reads and links on a request's budget slot (BudgetSlot). */
export interface Held {
  readonly id: string
  readonly counters: readonly CounterSpec[]
  placement: Placement | undefined
  /** Neighbours in the list of open reservations; `held` says whether it is in the list. */
  heldPrev: Held | undefined
  heldNext: Held | undefined
  held: boolean
}

/** Refresh period for a reservation TTL: a refresh that fails once still leaves the reservation TTL / 2 or more. */
export function refreshIntervalMs(ttlMs: number): number {
  return Math.max(100, Math.floor(ttlMs / 4))
}

export class ReservationKeepalive {
  readonly #backend: BudgetBackend
  readonly #clock: () => number
  readonly #onError: (e: unknown) => void
  #head: Held | undefined
  #size = 0
  #timer: NodeJS.Timeout | undefined
  #running = false

  constructor(backend: BudgetBackend, clock: () => number, onError: (e: unknown) => void) {
    this.#backend = backend
    this.#clock = clock
    this.#onError = onError
  }

  get size(): number {
    return this.#size
  }

  start(intervalMs: number): void {
    if (this.#timer) return
    this.#timer = setInterval(() => { void this.refresh() }, intervalMs)
    this.#timer.unref()
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** Links an admitted request's reservation (O(1), no allocation). */
  add(s: Held): void {
    if (s.held) return
    s.held = true
    s.heldPrev = undefined
    s.heldNext = this.#head
    if (this.#head) this.#head.heldPrev = s
    this.#head = s
    this.#size++
  }

  /** Unlinks it at settlement (O(1)). */
  remove(s: Held): void {
    if (!s.held) return
    s.held = false
    if (s.heldPrev) s.heldPrev.heldNext = s.heldNext
    else this.#head = s.heldNext
    if (s.heldNext) s.heldNext.heldPrev = s.heldPrev
    s.heldPrev = undefined
    s.heldNext = undefined
    this.#size--
  }

  /** Moves the expiry of every open reservation to now + TTL (the periodic sweep; tests call it directly). */
  async refresh(): Promise<void> {
    if (this.#running || this.#head === undefined) return
    this.#running = true
    try {
      const now = this.#clock()
      const remote: { id: string; counters: readonly CounterSpec[] }[] = []
      for (let s: Held | undefined = this.#head; s !== undefined; s = s.heldNext) {
        const p = s.placement?.primary
        if (p === undefined) continue
        if (p.kind === 'local') this.#backend.local.refreshSync(s.id, s.counters, now, this.#backend.reservationTtlMs)
        else remote.push({ id: s.id, counters: s.counters })
      }
      if (remote.length > 0) await this.#backend.refresh(remote, now)
    } catch (e) {
      this.#onError(e)
    } finally {
      this.#running = false
    }
  }
}
