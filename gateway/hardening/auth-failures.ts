/**
 * The failed-authentication limiter: after `limit` 401s from one client address within `windowMs`,
 * every request from that address gets 429 for `cooldownMs`, before the pipeline runs (no key
 * lookup, no digest). The listener feeds it from responses carrying an auth error code.
 */
import type { LocalReply } from '../pipeline/types.ts'

interface Entry {
  count: number
  windowStart: number
  blockedUntil: number
}

export class AuthFailureLimiter {
  readonly #limit: number
  readonly #windowMs: number
  readonly #cooldownMs: number
  readonly #max: number
  readonly #entries = new Map<string, Entry>()

  constructor(limit: number, windowMs: number, cooldownMs: number, maxTracked: number) {
    this.#limit = limit
    this.#windowMs = windowMs
    this.#cooldownMs = cooldownMs
    this.#max = maxTracked
  }

  get tracked(): number {
    return this.#entries.size
  }

  /** Seconds the address is still blocked for (Retry-After), 0 when it is not blocked. */
  blockedFor(key: string, now: number = performance.now()): number {
    const e = this.#entries.get(key)
    if (e === undefined || e.blockedUntil <= now) return 0
    return Math.max(1, Math.ceil((e.blockedUntil - now) / 1000))
  }

  /** Records one failed authentication; returns true when it made the address blocked. */
  fail(key: string, now: number = performance.now()): boolean {
    let e = this.#entries.get(key)
    if (e === undefined) {
      if (this.#entries.size >= this.#max) this.#entries.delete(this.#entries.keys().next().value!)
      e = { count: 0, windowStart: now, blockedUntil: 0 }
      this.#entries.set(key, e)
    }
    if (now - e.windowStart >= this.#windowMs) { e.count = 0; e.windowStart = now }
    e.count++
    if (e.count >= this.#limit && e.blockedUntil <= now) {
      e.blockedUntil = now + this.#cooldownMs
      e.count = 0
      e.windowStart = now
      return true
    }
    return false
  }

  /** The same as a local reply: undefined when not blocked, else 429 MCP_ERR_CLIENT_AUTH_BLOCKED with Retry-After. */
  check(key: string, now: number = performance.now()): LocalReply | undefined {
    const wait = this.blockedFor(key, now)
    if (wait === 0) return undefined
    return { code: 'MCP_ERR_CLIENT_AUTH_BLOCKED', params: { retryAfter: wait }, details: 'client.auth_blocked', headers: { 'retry-after': String(wait) } }
  }
}
