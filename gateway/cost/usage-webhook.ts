/**
 * The billing export hook: every `intervalMs`, the hour buckets that closed since the last successful export are
 * POSTed to `usage.webhook.url`, one bucket per request, as JSON:
 *
 *   { type: 'mcp.usage', idempotency_key, granularity: 'hour', from, to, generated_at, currency: 'USD',
 *     rows: [{ bucket_start, key_id, team, deployment_id, prompt_version_id, provider, model, requests, errors,
 *              input_tokens, cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens,
 *              estimated_requests, unpriced_requests, cost_usd, cost_pico_usd }],
 *     totals: { ...same counters } }
 *
 * Headers: `idempotency-key` (the same for every delivery of a bucket: `mcp-usage:hour:<bucket start ISO>`) and
 * `x-mcp-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` (Stripe's scheme: the receiver
 * recomputes it over the raw body and rejects old timestamps to stop replays).
 *
 * Delivery is at-least-once: a bucket is retried with exponential backoff (`maxAttempts` per run, then again at
 * the next run) and the watermark (usage_exports.last_bucket_end) only moves past it after a 2xx, so a crash
 * between the 2xx and the watermark update re-sends it with the same idempotency key. Buckets without usage are
 * skipped. A bucket is "closed" `closeDelayMs` after its end, once every instance has flushed into it; usage that
 * reaches the database after its bucket was exported (an instance cut off from the database for longer) is in
 * the CSV/JSON export but is not re-sent. One instance exports at a time (a lease row in usage_exports).
 */
import { createHmac, randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { Metrics } from '../metrics.ts'
import type { Store } from '../../store/types.ts'
import { HOUR_MS, queryUsage, USAGE_GROUPS } from '../../store/usage-rollups.ts'
import type { UsageWebhookSettings } from './usage-settings.ts'

export interface UsageWebhookOptions {
  store: Store
  settings: UsageWebhookSettings
  logger?: Pick<Logger, 'info' | 'warn' | 'error'>
  metrics?: Metrics
  /** usage_exports.name; default 'webhook'. */
  name?: string
  now?: () => number
  fetch?: typeof fetch
}

export type ExportOutcome = 'ok' | 'idle' | 'leased' | 'failed' | 'stopped'

/** `t=<unix seconds>,v1=<hex>` over `${t}.${body}`. */
export function signUsageBody(secret: string, body: string, t: number): string {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`
}

export function usageIdempotencyKey(bucketStart: Date): string {
  return `mcp-usage:hour:${bucketStart.toISOString()}`
}

const LEASE_MS = 10 * 60_000

export class UsageWebhook {
  readonly #store: Store
  readonly #s: UsageWebhookSettings
  readonly #log: Pick<Logger, 'info' | 'warn' | 'error'> | undefined
  readonly #name: string
  readonly #owner = randomUUID()
  readonly #now: () => number
  readonly #fetch: typeof fetch
  readonly #stop = new AbortController()
  #timer: NodeJS.Timeout | undefined
  #running: Promise<ExportOutcome> | undefined
  #watermark = 0
  #c: { ok: { inc(n?: number): void }; failed: { inc(n?: number): void }; buckets: { inc(n?: number): void } } | undefined

  constructor(opts: UsageWebhookOptions) {
    this.#store = opts.store
    this.#s = opts.settings
    this.#log = opts.logger
    this.#name = opts.name ?? 'webhook'
    this.#now = opts.now ?? Date.now
    this.#fetch = opts.fetch ?? fetch
    if (opts.metrics) this.bindMetrics(opts.metrics)
  }

  bindMetrics(m: Metrics): void {
    const posts = m.counter('mcp_usage_webhook_posts_total', 'Usage webhook POST attempts by outcome', ['outcome'])
    this.#c = {
      ok: posts.labels('ok'),
      failed: posts.labels('failed'),
      buckets: m.counter('mcp_usage_webhook_buckets_total', 'Hour buckets delivered to the usage webhook').labels(),
    }
    m.gauge('mcp_usage_webhook_lag_seconds', 'Time since the end of the last hour bucket delivered to the usage webhook', [], (set) => {
      if (this.#watermark !== 0) set((this.#now() - this.#watermark) / 1000)
    })
  }

  start(): void {
    if (this.#timer || this.#stop.signal.aborted) return
    const tick = (): void => {
      this.#timer = setTimeout(() => { void this.runOnce().finally(() => { if (!this.#stop.signal.aborted) tick() }) }, this.#s.intervalMs)
      this.#timer.unref()
    }
    tick()
  }

  async stop(): Promise<void> {
    this.#stop.abort()
    if (this.#timer) { clearTimeout(this.#timer); this.#timer = undefined }
    await this.#running?.catch(() => undefined)
  }

  /** One export run (the timer calls it; tests too). Never throws. */
  runOnce(): Promise<ExportOutcome> {
    this.#running ??= this.#run().catch((err: unknown) => {
      this.#log?.warn({ err }, 'usage webhook: export run failed')
      return 'failed' as const
    }).finally(() => { this.#running = undefined })
    return this.#running
  }

  async #run(): Promise<ExportOutcome> {
    const closedEnd = Math.floor((this.#now() - this.#s.closeDelayMs) / HOUR_MS) * HOUR_MS
    const lease = await this.#claim()
    if (lease === undefined) return 'leased'
    try {
      let start = lease
      if (start === null) {
        const first = await this.#nextBucket(0, closedEnd)
        if (first === undefined) return 'idle'
        start = first
      }
      let sent = 0
      while (start < closedEnd) {
        if (this.#stop.signal.aborted) return 'stopped'
        const next = await this.#nextBucket(start, closedEnd)
        if (next === undefined) { await this.#advance(closedEnd); break }
        const end = next + HOUR_MS
        if (!(await this.#deliver(next, end))) return this.#stop.signal.aborted ? 'stopped' : 'failed'
        await this.#advance(end)
        this.#c?.buckets.inc()
        sent++
        start = end
      }
      return sent > 0 ? 'ok' : 'idle'
    } finally {
      await this.#store.query('UPDATE usage_exports SET lease_owner = NULL, lease_until = NULL WHERE name = $1 AND lease_owner = $2', [this.#name, this.#owner]).catch(() => undefined)
    }
  }

  /** The watermark (epoch ms, null before the first export) if this instance holds the lease, else undefined. */
  async #claim(): Promise<number | null | undefined> {
    await this.#store.query('INSERT INTO usage_exports (name) VALUES ($1) ON CONFLICT (name) DO NOTHING', [this.#name])
    const { rows } = await this.#store.query<{ last_bucket_end: Date | null }>(
      `UPDATE usage_exports SET lease_owner = $2, lease_until = now() + $3::interval, updated_at = now()
       WHERE name = $1 AND (lease_until IS NULL OR lease_until < now() OR lease_owner = $2) RETURNING last_bucket_end`,
      [this.#name, this.#owner, `${LEASE_MS} milliseconds`],
    )
    const row = rows[0]
    if (!row) return undefined
    const t = row.last_bucket_end?.getTime() ?? null
    if (t !== null) this.#watermark = t
    return t
  }

  async #nextBucket(from: number, to: number): Promise<number | undefined> {
    const { rows } = await this.#store.query<{ b: Date | null }>(
      `SELECT min(bucket_start) AS b FROM usage_rollups WHERE granularity = 'hour' AND bucket_start >= $1::timestamptz AND bucket_start < $2::timestamptz`,
      [new Date(from).toISOString(), new Date(to).toISOString()],
    )
    const b = rows[0]?.b
    return b ? b.getTime() : undefined
  }

  async #advance(end: number): Promise<void> {
    await this.#store.query(
      `UPDATE usage_exports SET last_bucket_end = $3::timestamptz, lease_until = now() + $4::interval, updated_at = now()
       WHERE name = $1 AND lease_owner = $2`,
      [this.#name, this.#owner, new Date(end).toISOString(), `${LEASE_MS} milliseconds`],
    )
    this.#watermark = end
  }

  async #deliver(start: number, end: number): Promise<boolean> {
    const from = new Date(start)
    const result = await queryUsage(this.#store, { granularity: 'hour', from, to: new Date(end), groupBy: USAGE_GROUPS, limit: 1_000_000 })
    const key = usageIdempotencyKey(from)
    const body = JSON.stringify({
      type: 'mcp.usage', idempotency_key: key, granularity: 'hour', from: from.toISOString(), to: new Date(end).toISOString(),
      generated_at: new Date(this.#now()).toISOString(), currency: 'USD', rows: result.rows, totals: result.totals,
    })
    const s = this.#s
    for (let attempt = 1; attempt <= s.maxAttempts; attempt++) {
      if (this.#stop.signal.aborted) return false
      const t = Math.floor(this.#now() / 1000)
      let why: string
      try {
        const res = await this.#fetch(s.url, {
          method: 'POST',
          body,
          headers: { 'content-type': 'application/json', 'idempotency-key': key, 'x-mcp-signature': signUsageBody(s.secret, body, t), 'user-agent': 'mcp-usage-webhook/1' },
          signal: AbortSignal.any([AbortSignal.timeout(s.timeoutMs), this.#stop.signal]),
          redirect: 'manual',
        })
        await res.arrayBuffer().catch(() => undefined)
        if (res.status >= 200 && res.status < 300) { this.#c?.ok.inc(); return true }
        why = `HTTP ${res.status}`
      } catch (err) {
        why = err instanceof Error ? err.message : String(err)
      }
      this.#c?.failed.inc()
      this.#log?.warn({ bucket: from.toISOString(), attempt, reason: why }, 'usage webhook: delivery failed')
      if (attempt < s.maxAttempts) await this.#sleep(Math.min(60_000, s.backoffMs * 2 ** (attempt - 1)) * (0.8 + Math.random() * 0.4))
    }
    return false
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const sig = this.#stop.signal
      // Stopped during the POST: the abort event has fired already and would never end this wait.
      if (sig.aborted) { resolve(); return }
      const t = setTimeout(done, ms)
      function done(): void { clearTimeout(t); sig.removeEventListener('abort', done); resolve() }
      sig.addEventListener('abort', done)
    })
  }
}
