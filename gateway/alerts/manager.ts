/**
 * The alert manager: turns budget usage (reported by the budget plugin) and target states (polled on
 * a timer) into alerts that fire once per threshold and period, and delivers them to webhooks in the
 * background, never on a request's path.
 *
 * Once per period: an alert's dedup key is rule + threshold + subject + period start. With Redis it
 * is claimed with `SET NX PXAT <period end + a day>`, so across every instance exactly one fires it; without
 * Redis (or when Redis fails: then an alert may fire once per instance rather than never) an
 * in-process map does the same. A local memo in front of Redis keeps repeated reports cheap.
 *
 * Delivery (delivery.ts): a JSON body signed with HMAC-SHA256 (sign.ts), POSTed from a bounded
 * background queue, retried with exponential backoff. A bounded history (and, with Redis, a shared
 * list) for the admin API.
 */
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { Redis } from '../redis.ts'
import { Metrics, type Counter } from '../metrics.ts'
import type { TargetState } from '../routing/target-state.ts'
import { parseAlertsConfig, type AlertKind, type AlertPeriod, type AlertRule, type AlertsConfig } from './config.ts'
import { DeliveryQueue, type DeliveryState } from './delivery.ts'

declare module '../pipeline/types.ts' {
  interface PluginServices {
    /** The alert manager (gateway/alerts): budget thresholds are reported to it. */
    alerts?: AlertManager
  }
}

export interface BudgetUsageEvent {
  budget: string
  scope: string
  scopeId: string
  period: string
  periodStart: number
  periodEnd: number
  /**
   * Highest used share over the budget's units, in percent: settled spend / limit, or, when `refused`, spend and open
   * reservations / limit (what a refusal saw committed).
   */
  percent: number
  /**
   * Reported for a refused request (or a would-be refusal in shadow mode). A refusal says nothing about usage by itself
   * (one request's worst case may exceed the whole budget): only thresholds that `percent` reaches fire.
   */
  refused: boolean
  spentUsd?: number | undefined
  limitUsd?: number | undefined
  spentTokens?: number | undefined
  limitTokens?: number | undefined
  spentRequests?: number | undefined
  limitRequests?: number | undefined
}

export type { DeliveryState } from './delivery.ts'

export interface FiredAlert {
  id: string
  rule: string
  kind: AlertKind
  threshold: number | null
  subject: Record<string, string>
  value: number
  period: { start: string; end: string }
  firedAt: string
  message: string
  /** The instance that fired it (only it knows the deliveries). */
  deliveries?: DeliveryState[]
}

export interface AlertManagerOptions {
  logger: Logger
  redis?: Redis | undefined
  metrics?: Metrics | undefined
  now?: () => number
  /** Redis command budget for a dedup claim, ms. */
  redisTimeoutMs?: number
}

const MINUTE = 60_000

/**
 * How long a dedup marker outlives its period. A request admitted before a period ended settles after it and reports
 * the old period's counters: a marker gone at the period's end let every such settlement fire that period's passed
 * thresholds again. A day is far longer than any request runs (server.requestDeadlineMs is at most 10 minutes).
 */
const DEDUP_GRACE_MS = 86_400_000

interface AlertCounters { fired: Counter; deliveries: Counter; dropped: Counter; dedupErrors: Counter }

function windowOf(unit: AlertPeriod, now: number): { start: number; end: number } {
  const d = new Date(now)
  const y = d.getUTCFullYear()
  const m = d.getUTCMonth()
  switch (unit) {
    case 'hour': { const s = Math.floor(now / 3_600_000) * 3_600_000; return { start: s, end: s + 3_600_000 } }
    case 'day': { const s = Date.UTC(y, m, d.getUTCDate()); return { start: s, end: s + 86_400_000 } }
    case 'week': { const day = Date.UTC(y, m, d.getUTCDate()); const s = day - ((d.getUTCDay() + 6) % 7) * 86_400_000; return { start: s, end: s + 7 * 86_400_000 } }
    case 'month': return { start: Date.UTC(y, m, 1), end: Date.UTC(y, m + 1, 1) }
  }
}

function timeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined
  return Promise.race([p, new Promise<never>((_, reject) => { t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms) })]).finally(() => clearTimeout(t))
}

const fmtUsd = (v: number): string => `$${v.toFixed(2)}`

/** The dedup key of one alert: rule, threshold, subject and period. */
function alertKey(rule: AlertRule, threshold: number | null, subject: readonly string[], start: number): string {
  return `${rule.name}:${threshold ?? '-'}:${subject.join('/')}:${start}`
}

export class AlertManager {
  readonly #log: Logger
  readonly #redis: Redis | undefined
  /** Periods, dedup expiry and timestamps (injectable); delivery scheduling always uses the real clock. */
  readonly #now: () => number
  readonly #redisTimeoutMs: number
  #parsed: AlertsConfig
  /** Where the raw `alerts:` block comes from: a fixed value, or a getter re-read on use (the running settings). */
  #source: (() => unknown) | undefined
  #raw: unknown
  /** dedup key → period end + DEDUP_GRACE_MS (local memo, and the only record without Redis). */
  readonly #fired = new Map<string, number>()
  readonly #history: FiredAlert[] = []
  readonly #deliveries: DeliveryQueue
  #watch: NodeJS.Timeout | undefined
  #closed = false
  /** target id → (time, requests) samples over the last minute, for error_rate's minimum. */
  readonly #samples = new Map<string, { at: number; requests: number }[]>()
  #m: AlertCounters

  /**
   * `config`: the `alerts:` block, or a getter of it (`() => gw.settings.alerts`), re-read on use so a
   * reload needs no wiring; a getter that throws (the gateway not built yet) means the defaults until it answers.
   */
  constructor(config: unknown, opts: AlertManagerOptions) {
    this.#log = opts.logger
    this.#redis = opts.redis
    this.#now = opts.now ?? Date.now
    this.#redisTimeoutMs = opts.redisTimeoutMs ?? 250
    this.#source = typeof config === 'function' ? (config as () => unknown) : undefined
    this.#raw = this.#source ? this.#read() : config
    this.#parsed = parseAlertsConfig(this.#raw ?? {})
    this.#deliveries = new DeliveryQueue(() => this.#config, () => this.#m, this.#log)
    this.#m = this.#counters(opts.metrics ?? new Metrics())
  }

  #counters(metrics: Metrics): AlertCounters {
    const queue = this.#deliveries
    metrics.gauge('mcp_alerts_queue_length', 'Webhook deliveries waiting in the queue (new, and retries waiting for their backoff)', [], (set) => set(queue.length))
    return {
      fired: metrics.counter('mcp_alerts_fired_total', 'Alerts fired (once per rule, threshold, subject and period)', ['rule', 'kind']),
      deliveries: metrics.counter('mcp_alerts_deliveries_total', 'Webhook delivery attempts by result', ['webhook', 'result']),
      dropped: metrics.counter('mcp_alerts_queue_dropped_total', 'Deliveries dropped because the queue was full'),
      dedupErrors: metrics.counter('mcp_alerts_dedup_errors_total', 'Dedup claims that failed in Redis (the alert fired on local dedup)'),
    }
  }

  /** Registers the counters in the gateway's registry (the manager is built before the gateway that owns it). */
  bindMetrics(metrics: Metrics): void {
    this.#m = this.#counters(metrics)
  }

  /** The rules and webhooks in effect: with a getter, re-read (and re-validated) whenever the settings object changed. */
  get #config(): AlertsConfig {
    if (this.#source) {
      const raw = this.#read()
      if (raw !== this.#raw) {
        this.#raw = raw
        try { this.#parsed = parseAlertsConfig(raw ?? {}) } catch (e) { this.#log.error({ err: (e as Error).message }, 'alerts: invalid configuration; the previous one stays in effect') }
      }
    }
    return this.#parsed
  }

  #read(): unknown {
    try { return this.#source!() } catch { return undefined }
  }

  get config(): AlertsConfig {
    return this.#config
  }

  /** Replaces rules and webhooks; throws on an invalid config and keeps the old one. Stops following a getter. */
  configure(config: unknown): void {
    this.#parsed = parseAlertsConfig(config)
    this.#source = undefined
    this.#raw = config
  }

  // ---------------------------------------------------------------- inputs

  #floors: { config: AlertsConfig; byBudget: Map<string, number> } | undefined

  /**
   * The lowest threshold (percent) of the budget rules that watch `budget`, Infinity when none does: usage below
   * it cannot fire anything, so callers skip budgetUsage (the budget plugin asks on every request).
   */
  budgetFloor(budget: string): number {
    if (this.#closed) return Infinity
    const config = this.#config
    if (this.#floors?.config !== config) this.#floors = { config, byBudget: new Map() }
    let floor = this.#floors.byBudget.get(budget)
    if (floor === undefined) {
      floor = Infinity
      for (const r of config.rules) {
        if (r.kind !== 'budget' || (r.budget !== undefined && r.budget !== budget)) continue
        for (const th of r.thresholds) floor = Math.min(floor, th)
      }
      if (this.#floors.byBudget.size < 10_000) this.#floors.byBudget.set(budget, floor)
    }
    return floor
  }

  /** Budget usage after an admission or settlement. Synchronous; the work happens in the background. */
  budgetUsage(ev: BudgetUsageEvent): void {
    if (this.#closed) return
    const pct = ev.percent
    for (const r of this.#config.rules) {
      if (r.kind !== 'budget' || (r.budget !== undefined && r.budget !== ev.budget)) continue
      for (const th of r.thresholds) {
        if (pct < th) continue
        // Fired already this period (by this instance): nothing to build. Usage past a threshold is checked on
        // every request until the period ends.
        if ((this.#fired.get(alertKey(r, th, [ev.budget, ev.scope, ev.scopeId], ev.periodStart)) ?? 0) > this.#now()) continue
        const parts: string[] = []
        if (ev.limitUsd !== undefined) parts.push(`${fmtUsd(ev.spentUsd ?? 0)} of ${fmtUsd(ev.limitUsd)}`)
        if (ev.limitTokens !== undefined) parts.push(`${ev.spentTokens ?? 0} of ${ev.limitTokens} tokens`)
        if (ev.limitRequests !== undefined) parts.push(`${ev.spentRequests ?? 0} of ${ev.limitRequests} requests`)
        const who = ev.scope === 'global' ? '' : ` for ${ev.scope} '${ev.scopeId}'`
        const message = `Budget '${ev.budget}'${who} reached ${th}% (${pct.toFixed(1)}%${ev.refused ? ' spent and reserved, a request was refused' : ''}): ${parts.join(', ')} this ${ev.period}`
        void this.#fire(r, th, { budget: ev.budget, scope: ev.scope, scopeId: ev.scopeId }, { start: ev.periodStart, end: ev.periodEnd }, pct, message)
      }
    }
  }

  /** One check of target states for error_rate and provider_down rules. */
  checkTargets(states: readonly TargetState[]): void {
    if (this.#closed) return
    const now = this.#now()
    const rules = this.#config.rules
    // Attempts per target over the last minute, from samples of the lifetime counter.
    for (const s of states) {
      let list = this.#samples.get(s.id)
      if (!list) { list = []; this.#samples.set(s.id, list) }
      list.push({ at: now, requests: s.requests })
      while (list.length > 1 && now - list[0]!.at > MINUTE) list.shift()
    }
    for (const r of rules) {
      if (r.kind === 'error_rate') {
        for (const s of states) {
          if (r.provider !== undefined && s.provider !== r.provider) continue
          const list = this.#samples.get(s.id) ?? []
          const attempts = list.length > 0 ? s.requests - list[0]!.requests : 0
          const rate = s.errorRate(now) * 100
          if ((attempts >= r.minRequests || (list.length <= 1 && s.requests >= r.minRequests)) && rate >= r.threshold) {
            void this.#fire(r, r.threshold, { target: s.id, provider: s.provider, model: s.model }, windowOf(r.period, now), rate,
              `Target ${s.id}: ${rate.toFixed(1)}% of upstream attempts failed over the last minute (threshold ${r.threshold}%)`)
          }
        }
      } else if (r.kind === 'provider_down') {
        const byProvider = new Map<string, TargetState[]>()
        for (const s of states) {
          if (r.provider !== undefined && s.provider !== r.provider) continue
          const l = byProvider.get(s.provider) ?? []
          l.push(s)
          byProvider.set(s.provider, l)
        }
        for (const [provider, ts] of byProvider) {
          const down = ts.filter((t) => t.breakerState === 'open' || !t.healthy || t.ejectedUntil > now)
          if (down.length === ts.length) {
            const why = ts.map((t) => `${t.model}: ${t.breakerState === 'open' ? 'circuit open' : !t.healthy ? 'unhealthy' : 'ejected'}`).join(', ')
            void this.#fire(r, null, { provider }, windowOf(r.period, now), 100, `Provider ${provider} is down (${why})`)
          }
        }
      }
    }
  }

  /** Polls target states every `intervalMs` (unref'd timer). */
  watchTargets(source: () => readonly TargetState[]): void {
    if (this.#watch) clearInterval(this.#watch)
    this.#watch = setInterval(() => {
      try { this.checkTargets(source()) } catch (e) { this.#log.error({ err: e }, 'alerts: target check failed') }
    }, this.#config.intervalMs)
    this.#watch.unref()
  }

  // ---------------------------------------------------------------- firing

  async #claim(key: string, periodEnd: number): Promise<boolean> {
    const now = this.#now()
    if ((this.#fired.get(key) ?? 0) > now) return false
    const end = periodEnd + DEDUP_GRACE_MS
    this.#fired.set(key, end)
    if (this.#fired.size > 10_000) for (const [k, e] of this.#fired) if (e <= now) this.#fired.delete(k)
    if (!this.#redis) return true
    try {
      const r = await timeout(this.#redis.set(`${this.#config.keyPrefix}d:${key}`, '1', 'PXAT', Math.max(end, now + 1000), 'NX'), this.#redisTimeoutMs)
      return r === 'OK'
    } catch (e) {
      this.#m.dedupErrors.inc()
      this.#log.warn({ err: (e as Error).message, key }, 'alerts: Redis dedup failed; firing on local dedup')
      return true
    }
  }

  async #fire(rule: AlertRule, threshold: number | null, subject: Record<string, string>, window: { start: number; end: number }, value: number, message: string): Promise<void> {
    const key = alertKey(rule, threshold, Object.values(subject), window.start)
    if (!(await this.#claim(key, window.end))) return
    const alert: FiredAlert = {
      id: randomUUID(),
      rule: rule.name,
      kind: rule.kind,
      threshold,
      subject,
      value: Math.round(value * 100) / 100,
      period: { start: new Date(window.start).toISOString(), end: new Date(window.end).toISOString() },
      firedAt: new Date(this.#now()).toISOString(),
      message,
      deliveries: [],
    }
    this.#m.fired.labels(rule.name, rule.kind).inc()
    this.#log.warn({ alert: alert.id, rule: rule.name, kind: rule.kind, threshold, subject }, message)
    this.#history.unshift(alert)
    if (this.#history.length > this.#config.history) this.#history.length = this.#config.history
    void this.#share(alert)
    const { deliveries: _d, ...payload } = alert
    const body = JSON.stringify({ ...payload, type: 'mcp.alert' })
    for (const name of rule.webhooks) {
      const hook = this.#config.webhooks[name]
      if (!hook) continue
      const state: DeliveryState = { webhook: name, status: 'pending', attempts: 0 }
      alert.deliveries!.push(state)
      this.#deliveries.enqueue({ alert: { id: alert.id }, body, name, hook, state, dueAt: 0 })
    }
  }

  /** Shares fired alerts across instances (best effort) for the admin listing. */
  async #share(alert: FiredAlert): Promise<void> {
    if (!this.#redis) return
    const key = `${this.#config.keyPrefix}log`
    const { deliveries: _d, ...rest } = alert
    try {
      await timeout(this.#redis.multi().lpush(key, JSON.stringify(rest)).ltrim(key, 0, this.#config.history - 1).exec(), this.#redisTimeoutMs * 4)
    } catch { /* the local history still has it */ }
  }

  // ---------------------------------------------------------------- outputs

  /** Fired alerts, newest first: the shared list (Redis) merged with this instance's delivery states. */
  async list(limit = 100): Promise<FiredAlert[]> {
    const local = new Map(this.#history.map((a) => [a.id, a]))
    if (this.#redis) {
      try {
        const rows = await timeout(this.#redis.lrange(`${this.#config.keyPrefix}log`, 0, limit - 1), this.#redisTimeoutMs * 4)
        const out: FiredAlert[] = []
        const seen = new Set<string>()
        for (const r of rows) {
          try {
            const a = JSON.parse(r) as FiredAlert
            seen.add(a.id)
            out.push(local.get(a.id) ?? a)
          } catch { /* skip a malformed row */ }
        }
        for (const a of this.#history) if (!seen.has(a.id)) out.push(a)
        return out.sort((a, b) => b.firedAt.localeCompare(a.firedAt)).slice(0, limit)
      } catch { /* fall back to the local history */ }
    }
    return this.#history.slice(0, limit)
  }

  /** Resolves when no delivery is queued or in flight (tests, shutdown). */
  idle(): Promise<void> {
    return this.#deliveries.idle()
  }

  /** Stops the timers; waits up to `deadlineMs` for deliveries due now (retries scheduled later are given up). */
  async close(deadlineMs = 2000): Promise<void> {
    this.#closed = true
    if (this.#watch) clearInterval(this.#watch)
    await this.#deliveries.close(deadlineMs)
  }
}
