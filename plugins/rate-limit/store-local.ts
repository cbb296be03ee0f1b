/**
 * In-process store: GCRA TATs and concurrency counters in two Maps, no I/O, synchronous. Used as
 * the backend when there is no Redis, and as the insurance limiter while Redis is slow or down
 * (failMode 'local'). Idle keys (TAT in the past, no slot held) are swept periodically, so memory
 * follows the number of recently active keys.
 */
import { gcraStep, SLOT_RETRY_MS, type Check, type StoreWrites, type Verdict } from './gcra.ts'

export interface LocalStoreOptions {
  /** Monotonic ms clock (tests inject a fake one). Default performance.now. */
  clock?: () => number
  /** Sweep period, ms (0 = no timer; call sweep() yourself). Default 10 s. */
  sweepMs?: number
}

export class LocalStore implements StoreWrites {
  readonly #tat = new Map<string, number>()
  readonly #slots = new Map<string, number>()
  readonly #clock: () => number
  readonly #timer: NodeJS.Timeout | undefined

  constructor(opts: LocalStoreOptions = {}) {
    this.#clock = opts.clock ?? (() => performance.now())
    const every = opts.sweepMs ?? 10_000
    if (every > 0) {
      this.#timer = setInterval(() => this.sweep(), every)
      this.#timer.unref()
    }
  }

  /** All-or-nothing: evaluates every check, commits only if all pass. */
  admit(checks: readonly Check[]): Verdict {
    const now = this.#clock()
    const n = checks.length
    const remaining = new Array<number>(n)
    const resetMs = new Array<number>(n)
    const next = new Array<number>(n)
    let failed = -1
    let retryMs = 0
    for (let i = 0; i < n; i++) {
      const c = checks[i]!
      if (c.kind === 'gcra') {
        const s = gcraStep(this.#tat.get(c.key) ?? 0, now, c)
        remaining[i] = s.remaining
        resetMs[i] = s.resetMs
        next[i] = s.next
        if (!s.ok && s.retryMs > retryMs) { failed = i; retryMs = s.retryMs }
      } else {
        const used = this.#slots.get(c.key) ?? 0
        const ok = used < c.limit
        remaining[i] = ok ? c.limit - used - 1 : 0
        resetMs[i] = 0
        next[i] = used + 1
        if (!ok && SLOT_RETRY_MS > retryMs) { failed = i; retryMs = SLOT_RETRY_MS }
      }
    }
    if (failed >= 0) return { ok: false, failed, retryMs, remaining, resetMs }
    for (let i = 0; i < n; i++) {
      const c = checks[i]!
      if (c.kind === 'gcra') this.#tat.set(c.key, next[i]!)
      else this.#slots.set(c.key, next[i]!)
    }
    return { ok: true, failed: -1, retryMs: 0, remaining, resetMs }
  }

  adjust(key: string, emissionMs: number, delta: number): void {
    if (delta === 0) return
    const now = this.#clock()
    const cur = this.#tat.get(key) ?? 0
    const next = (cur > now ? cur : now) + delta * emissionMs
    if (next <= now) this.#tat.delete(key)
    else this.#tat.set(key, next)
  }

  release(key: string): void {
    const n = this.#slots.get(key)
    if (n === undefined) return
    if (n <= 1) this.#slots.delete(key)
    else this.#slots.set(key, n - 1)
  }

  /** Drops keys whose state is idle again. */
  sweep(): void {
    const now = this.#clock()
    for (const [k, tat] of this.#tat) if (tat <= now) this.#tat.delete(k)
  }

  /** Keys currently held (for tests and the sweep's effect). */
  get size(): number {
    return this.#tat.size + this.#slots.size
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer)
  }
}
