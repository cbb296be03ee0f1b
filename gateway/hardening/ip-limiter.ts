/**
 * Pre-authentication request limit per client address: a token bucket (`rate` per second, `burst`
 * deep) kept in process, checked by the listener before the pipeline runs, so a flood costs one map
 * lookup and never reaches auth, the key store or an upstream. The table holds at most `max`
 * addresses; the oldest entry is forgotten first.
 */
import type { LocalReply } from '../pipeline/types.ts'

interface Bucket {
  tokens: number
  at: number
}

export class IpRateLimiter {
  readonly #rate: number
  readonly #burst: number
  readonly #max: number
  readonly #buckets = new Map<string, Bucket>()

  constructor(ratePerSecond: number, burst: number, maxTracked: number) {
    this.#rate = ratePerSecond / 1000
    this.#burst = Math.max(1, burst)
    this.#max = maxTracked
  }

  get tracked(): number {
    return this.#buckets.size
  }

  /** Takes one token for `key`. Returns 0 when allowed, else the seconds until a token is available (Retry-After). */
  take(key: string, now: number = performance.now()): number {
    let b = this.#buckets.get(key)
    if (b === undefined) {
      if (this.#buckets.size >= this.#max) this.#buckets.delete(this.#buckets.keys().next().value!)
      b = { tokens: this.#burst, at: now }
      this.#buckets.set(key, b)
    } else {
      b.tokens = Math.min(this.#burst, b.tokens + (now - b.at) * this.#rate)
      b.at = now
    }
    if (b.tokens >= 1) { b.tokens -= 1; return 0 }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.#rate / 1000))
  }

  /** The same as a local reply: undefined when allowed, else 429 MCP_ERR_CLIENT_RATE_LIMITED with Retry-After. */
  check(key: string, now: number = performance.now()): LocalReply | undefined {
    const wait = this.take(key, now)
    if (wait === 0) return undefined
    return { code: 'MCP_ERR_CLIENT_RATE_LIMITED', params: { retryAfter: wait }, details: 'client.rate_limited', headers: { 'retry-after': String(wait) } }
  }
}
