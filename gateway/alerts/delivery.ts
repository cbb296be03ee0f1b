/**
 * Webhook delivery, in the background: a bounded queue (the oldest delivery is dropped when full,
 * counted), at most `concurrency` POSTs in flight, each with its own timeout, retried with exponential
 * backoff and jitter on network errors, 408, 429 and 5xx (other answers are final). The body is the
 * same on every attempt; its signature (sign.ts) is made per attempt with the current time.
 * Scheduling always uses the real clock.
 */
import type { Logger } from 'pino'
import type { Counter } from '../metrics.ts'
import type { AlertsConfig, WebhookConfig } from './config.ts'
import { SIGNATURE_HEADER, signatureHeader } from './sign.ts'
import { retryAfterMs } from '../routing/router.ts'
import { scrubUrl } from '../redact-url.ts'

export interface DeliveryState {
  webhook: string
  status: 'pending' | 'delivered' | 'failed' | 'dropped'
  attempts: number
  lastStatus?: number
  lastError?: string
  deliveredAt?: string
}

export interface Delivery {
  readonly alert: { readonly id: string }
  readonly body: string
  readonly name: string
  readonly hook: WebhookConfig
  readonly state: DeliveryState
  dueAt: number
}

export interface DeliveryCounters { deliveries: Counter; dropped: Counter }

export class DeliveryQueue {
  readonly #config: () => AlertsConfig
  readonly #m: () => DeliveryCounters
  readonly #log: Logger
  readonly #queue: Delivery[] = []
  readonly #idle: (() => void)[] = []
  #inflight = 0
  #timer: NodeJS.Timeout | undefined
  #closed = false

  constructor(config: () => AlertsConfig, counters: () => DeliveryCounters, log: Logger) {
    this.#config = config
    this.#m = counters
    this.#log = log
  }

  /** Deliveries waiting: new ones and retries waiting for their backoff (not those being sent). */
  get length(): number {
    return this.#queue.length
  }

  enqueue(d: Delivery): void {
    if (this.#queue.length >= this.#config().queueSize) {
      const old = this.#queue.shift()!
      old.state.status = 'dropped'
      this.#m().dropped.inc()
    }
    this.#queue.push(d)
    this.#pump()
  }

  #pump(): void {
    if (this.#timer) { clearTimeout(this.#timer); this.#timer = undefined }
    const now = Date.now()
    if (this.#closed && this.#queue.every((d) => d.dueAt > now)) { this.#checkIdle(); return }
    let next = Infinity
    const limit = this.#config().concurrency
    for (let i = 0; i < this.#queue.length && this.#inflight < limit;) {
      const d = this.#queue[i]!
      if (d.dueAt <= now) {
        this.#queue.splice(i, 1)
        this.#inflight++
        void this.#send(d).finally(() => { this.#inflight--; this.#pump() })
      } else {
        next = Math.min(next, d.dueAt)
        i++
      }
    }
    if (next !== Infinity) {
      this.#timer = setTimeout(() => this.#pump(), Math.max(1, next - now))
      this.#timer.unref()
    }
    this.#checkIdle()
  }

  #checkIdle(): void {
    if (this.#queue.length === 0 && this.#inflight === 0) for (const f of this.#idle.splice(0)) f()
  }

  async #send(d: Delivery): Promise<void> {
    const hook = d.hook
    d.state.attempts++
    let retry = false
    /** The receiver's Retry-After (429, 503), when longer than the backoff. */
    let waitMs = 0
    try {
      // The configured headers first, then ours replacing any of the same name in another case (a plain object
      // would send both, joined: 'text/plain, application/json', a signature no receiver can verify).
      const headers = new Headers(hook.headers)
      headers.set('content-type', 'application/json')
      headers.set('user-agent', 'mcp-alerts/1')
      headers.set('x-mcp-alert-id', d.alert.id)
      headers.set('x-mcp-delivery-attempt', String(d.state.attempts))
      headers.set(SIGNATURE_HEADER, signatureHeader(hook.secret, d.body))
      const res = await fetch(hook.url, {
        method: 'POST',
        headers,
        body: d.body,
        redirect: 'manual',
        signal: AbortSignal.timeout(hook.timeoutMs),
      })
      await res.arrayBuffer().catch(() => undefined)
      d.state.lastStatus = res.status
      if (res.status >= 200 && res.status < 300) {
        d.state.status = 'delivered'
        d.state.deliveredAt = new Date().toISOString()
        this.#m().deliveries.labels(d.name, 'delivered').inc()
        return
      }
      retry = res.status === 408 || res.status === 429 || res.status >= 500
      d.state.lastError = `HTTP ${res.status}`
      const ra = res.headers.get('retry-after')
      if (retry && ra !== null) waitMs = retryAfterMs({ headers: { 'retry-after': ra } }) ?? 0
    } catch (e) {
      retry = true
      // fetch's own messages may quote the URL (one with credentials: 'Request cannot be constructed from a URL that
      // includes credentials: <url>'); the state is listed by the alerts API and logged.
      d.state.lastError = scrubUrl((e as Error).message, hook.url)
    }
    if (retry && d.state.attempts <= hook.retries && !this.#closed) {
      this.#m().deliveries.labels(d.name, 'retry').inc()
      const backoff = Math.min(60_000, Math.max(waitMs, hook.backoffMs * 2 ** (d.state.attempts - 1) * (0.75 + Math.random() * 0.5)))
      d.dueAt = Date.now() + backoff
      this.#queue.push(d)
      return
    }
    d.state.status = 'failed'
    this.#m().deliveries.labels(d.name, 'failed').inc()
    this.#log.error({ alert: d.alert.id, webhook: d.name, attempts: d.state.attempts, error: d.state.lastError }, 'alerts: webhook delivery failed')
  }

  /** Resolves when no delivery is queued or in flight. */
  idle(): Promise<void> {
    if (this.#queue.length === 0 && this.#inflight === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }

  /** Sends what is due now (up to `deadlineMs`); retries scheduled later are given up. */
  async close(deadlineMs: number): Promise<void> {
    this.#closed = true
    const now = Date.now()
    for (const d of this.#queue.splice(0)) {
      if (d.dueAt <= now) this.#queue.push(d)
      else { d.state.status = 'failed'; d.state.lastError = 'shut down before retry' }
    }
    this.#pump()
    let t: NodeJS.Timeout | undefined
    await Promise.race([this.idle(), new Promise<void>((r) => { t = setTimeout(r, deadlineMs) })])
    clearTimeout(t)
    if (this.#timer) clearTimeout(this.#timer)
  }
}
