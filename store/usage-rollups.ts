/**
 * Usage rollups: counters per (hour | day bucket, key, team, deployment, prompt version, provider, model), small
 * by construction (one row per combination and bucket, not per request).
 *
 * Writing — UsageAggregator: the request path calls `record()` (synchronous, in memory, O(1)); only hour buckets
 * are kept in memory and the day rows are derived from them at flush time. Every `flushIntervalMs` (and at
 * `close()`), the pending rows are written in one multi-row upsert
 *   INSERT ... ON CONFLICT ON CONSTRAINT usage_rollups_bucket_key DO UPDATE SET x = usage_rollups.x + EXCLUDED.x
 * (one transaction; split in statements of 1 000 rows when larger), so any number of instances add into the same
 * rows. A failed flush puts its rows back (added to what arrived meanwhile) and is retried with a doubling delay:
 * while the database is down usage accumulates in memory, bounded by `maxPendingRows` — past it, new combinations
 * lose their key/team/deployment/prompt version (totals stay exact, `overflow`), and past twice that they are
 * dropped (`dropped`). A write whose commit was lost in transit may be counted twice (at-least-once).
 *
 * Cost is integer pico-USD, summed as BigInt in memory and NUMERIC in the database; cost_micro_usd is kept equal
 * to floor(cost_pico_usd / 10^6) in the same statement.
 *
 * Reading — queryUsage: totals over [from, to) at one granularity, grouped by any of bucket and the dimensions,
 * filtered by them; used by GET /api/v1/mcp/usage, its CSV/JSON export, and the billing webhook.
 */
import type { Logger } from 'pino'
import type { CounterChild, Metrics } from '../gateway/metrics.ts'
import type { Queryable, Store } from './types.ts'

export const HOUR_MS = 3_600_000
export const DAY_MS = 86_400_000

/** One finished request, as the cost meter records it. Ids are UUIDs or null; strings are cut to their columns. */
export interface UsageRecord {
  /** Epoch ms of completion. */
  at: number
  keyId: string | null
  team: string | null
  deploymentId: string | null
  promptVersionId: string | null
  provider: string | null
  model: string | null
  error: boolean
  inputTokens: number
  cachedTokens: number
  cacheWriteTokens: number
  outputTokens: number
  reasoningTokens: number
  /** Integer pico-USD (0 when unpriced). */
  pico: number
  estimated: boolean
  unpriced: boolean
  /**
   * Requests this record counts: 1 (the default), or 0 for the part of a resumed stream that a cut attempt used on
   * another provider or model (its tokens and cost are attributed there; the request counts with the answering target).
   */
  requests?: number
}

interface PendingRow {
  bucket: number
  keyId: string | null
  team: string | null
  deploymentId: string | null
  promptVersionId: string | null
  provider: string | null
  model: string | null
  requests: number
  errors: number
  input: number
  cached: number
  cacheWrite: number
  output: number
  reasoning: number
  estimated: number
  unpriced: number
  /** Pico-USD summed as BigInt; picoSmall holds what came since the last carry (a Number stays exact below 2^53). */
  pico: bigint
  picoSmall: number
}

/** picoSmall is carried into pico before it could lose precision (an integer Number is exact up to 2^53). */
const PICO_CARRY = 2 ** 52

/** The row's exact total pico-USD. */
function picoOf(r: PendingRow): bigint {
  return r.picoSmall === 0 ? r.pico : r.pico + BigInt(r.picoSmall)
}

export interface UsageAggregatorOptions {
  store: Store
  logger?: Pick<Logger, 'info' | 'warn' | 'error'>
  metrics?: Metrics
  flushIntervalMs?: number
  maxPendingRows?: number
  maxRetryDelayMs?: number
  retention?: { hourDays: number; dayDays: number }
  now?: () => number
}

export interface UsageAggregatorStats {
  pendingRows: number
  flushes: number
  failedFlushes: number
  consecutiveFailures: number
  rowsWritten: number
  overflow: number
  dropped: number
}

/** What a text column cannot hold: NUL, and surrogates (maybe lone, as a cut through a pair leaves one). */
const TEXT_UNSAFE = /[\0\ud800-\udfff]/

/**
 * A dimension cut to its column, with NUL and lone surrogates as U+FFFD: PostgreSQL refuses them, and one such
 * value (a model name comes from the client) failed the whole multi-row upsert, at every retry, for every row.
 */
function cut(s: string | null, n: number): string | null {
  if (s === null || s === '') return null
  const v = s.length > n ? s.slice(0, n) : s
  return TEXT_UNSAFE.test(v) ? v.toWellFormed().replaceAll('\0', '\ufffd') : v
}

function keyOf(bucket: number, r: { keyId: string | null; team: string | null; deploymentId: string | null; promptVersionId: string | null; provider: string | null; model: string | null }): string {
  return `${bucket}\u0001${r.keyId ?? '\u0000'}\u0001${r.team ?? '\u0000'}\u0001${r.deploymentId ?? '\u0000'}\u0001${r.promptVersionId ?? '\u0000'}\u0001${r.provider ?? '\u0000'}\u0001${r.model ?? '\u0000'}`
}

/** The same rollup dimensions (the time bucket aside). */
function sameDims(a: UsageRecord, b: UsageRecord): boolean {
  return a.keyId === b.keyId && a.model === b.model && a.provider === b.provider && a.team === b.team
    && a.deploymentId === b.deploymentId && a.promptVersionId === b.promptVersionId
}

/** Adds one record's counts to its row. */
function add(row: PendingRow, r: UsageRecord): void {
  row.requests += r.requests ?? 1
  if (r.error) row.errors++
  row.input += r.inputTokens; row.cached += r.cachedTokens; row.cacheWrite += r.cacheWriteTokens
  row.output += r.outputTokens; row.reasoning += r.reasoningTokens
  if (r.estimated) row.estimated++
  if (r.unpriced) row.unpriced++
  if (r.pico > 0 && Number.isFinite(r.pico)) {
    // A BigInt addition allocates; most requests only add to the Number part.
    const p = Math.round(r.pico)
    if (p >= PICO_CARRY || row.picoSmall + p >= PICO_CARRY) { row.pico = picoOf(row) + BigInt(p); row.picoSmall = 0 } else row.picoSmall += p
  }
}

function addInto(to: PendingRow, from: PendingRow): void {
  to.requests += from.requests; to.errors += from.errors
  to.input += from.input; to.cached += from.cached; to.cacheWrite += from.cacheWrite; to.output += from.output; to.reasoning += from.reasoning
  to.estimated += from.estimated; to.unpriced += from.unpriced; to.pico = picoOf(to) + picoOf(from); to.picoSmall = 0
}

export class UsageAggregator {
  readonly #store: Store
  readonly #log: Pick<Logger, 'info' | 'warn' | 'error'> | undefined
  readonly #interval: number
  readonly #maxRows: number
  readonly #maxRetry: number
  readonly #retention: { hourDays: number; dayDays: number } | undefined
  readonly #now: () => number
  #pending = new Map<string, PendingRow>()
  /** The last record's dimensions (as given) and its row: a run of requests with the same ones skips the key. */
  #last: { pending: Map<string, PendingRow>; bucket: number; r: UsageRecord; row: PendingRow } | undefined
  #timer: NodeJS.Timeout | undefined
  #inflight: Promise<boolean> | undefined
  #closed = false
  #lastPurge = 0
  #counters: Record<'ok' | 'failed' | 'rows' | 'overflow' | 'dropped', CounterChild> | undefined
  readonly #stats: UsageAggregatorStats = { pendingRows: 0, flushes: 0, failedFlushes: 0, consecutiveFailures: 0, rowsWritten: 0, overflow: 0, dropped: 0 }

  constructor(opts: UsageAggregatorOptions) {
    this.#store = opts.store
    this.#log = opts.logger
    this.#interval = opts.flushIntervalMs ?? 10_000
    this.#maxRows = opts.maxPendingRows ?? 100_000
    this.#maxRetry = opts.maxRetryDelayMs ?? 60_000
    this.#retention = opts.retention
    this.#now = opts.now ?? Date.now
    if (opts.metrics) this.bindMetrics(opts.metrics)
  }

  bindMetrics(m: Metrics): void {
    m.gauge('mcp_usage_rollup_pending_rows', 'Usage rollup rows waiting in memory for the database', [], (set) => set(this.#pending.size))
    m.gauge('mcp_usage_rollup_flush_failures', 'Consecutive failed usage rollup flushes (0: the last one succeeded)', [], (set) => set(this.#stats.consecutiveFailures))
    const flushes = m.counter('mcp_usage_rollup_flushes_total', 'Usage rollup flushes by outcome', ['outcome'])
    const lost = m.counter('mcp_usage_rollup_records_total', 'Usage records that lost attribution (overflow) or were dropped (memory bound)', ['outcome'])
    this.#counters = {
      ok: flushes.labels('ok'), failed: flushes.labels('failed'),
      rows: m.counter('mcp_usage_rollup_rows_written_total', 'Usage rollup rows upserted (hour and day)').labels(),
      overflow: lost.labels('overflow'), dropped: lost.labels('dropped'),
    }
  }

  /** Adds one request to its hour bucket. Synchronous, never throws, never waits. */
  record(r: UsageRecord): void {
    if (this.#closed) { this.#stats.dropped++; this.#counters?.dropped.inc(); return }
    const bucket = r.at - (r.at % HOUR_MS)
    const last = this.#last
    if (last !== undefined && last.pending === this.#pending && last.bucket === bucket && sameDims(last.r, r)) {
      add(last.row, r)
      return
    }
    const dims = {
      keyId: r.keyId, team: cut(r.team, 100), deploymentId: r.deploymentId, promptVersionId: r.promptVersionId,
      provider: cut(r.provider, 50), model: cut(r.model, 200),
    }
    let key = keyOf(bucket, dims)
    let row = this.#pending.get(key)
    let overflow = false
    if (!row && this.#pending.size >= this.#maxRows) {
      overflow = true
      // Bounded memory: keep the totals, lose the finer attribution.
      dims.keyId = null; dims.team = null; dims.deploymentId = null; dims.promptVersionId = null
      key = keyOf(bucket, dims)
      row = this.#pending.get(key)
      if (!row && this.#pending.size >= 2 * this.#maxRows) { this.#stats.dropped++; this.#counters?.dropped.inc(); return }
      this.#stats.overflow++
      this.#counters?.overflow.inc()
    }
    if (!row) {
      row = { bucket, ...dims, requests: 0, errors: 0, input: 0, cached: 0, cacheWrite: 0, output: 0, reasoning: 0, estimated: 0, unpriced: 0, pico: 0n, picoSmall: 0 }
      this.#pending.set(key, row)
    }
    // Only a row kept under the record's own dimensions (not an overflow row) may take the next one directly.
    this.#last = overflow ? undefined : { pending: this.#pending, bucket, r, row }
    add(row, r)
  }

  stats(): UsageAggregatorStats {
    return { ...this.#stats, pendingRows: this.#pending.size }
  }

  /** Starts the periodic flush (unref'd timer). */
  start(): void {
    if (this.#timer || this.#closed) return
    this.#schedule(this.#interval)
  }

  #schedule(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      void this.flush().then((ok) => {
        if (this.#closed) return
        const f = this.#stats.consecutiveFailures
        this.#schedule(ok ? this.#interval : Math.min(this.#maxRetry, this.#interval * 2 ** Math.min(f, 20)))
      })
    }, ms)
    this.#timer.unref()
  }

  /** Writes the pending rows now (one flush at a time). true when nothing is left pending from before the call. */
  flush(): Promise<boolean> {
    if (this.#inflight) return this.#inflight.then(() => this.flush())
    const p = this.#flushOnce().finally(() => { this.#inflight = undefined })
    this.#inflight = p
    return p
  }

  async #flushOnce(): Promise<boolean> {
    if (this.#pending.size === 0) { await this.#purge(); return true }
    const batch = this.#pending
    this.#pending = new Map()
    try {
      const n = await writeRollups(this.#store, [...batch.values()])
      this.#stats.flushes++
      this.#stats.rowsWritten += n
      this.#counters?.ok.inc()
      this.#counters?.rows.inc(n)
      if (this.#stats.consecutiveFailures > 0) this.#log?.info({ rows: n, after: this.#stats.consecutiveFailures }, 'usage rollups: database writes resumed')
      this.#stats.consecutiveFailures = 0
      await this.#purge()
      return true
    } catch (err) {
      for (const [k, r] of batch) {
        const cur = this.#pending.get(k)
        if (cur) addInto(cur, r)
        else this.#pending.set(k, r)
      }
      this.#stats.failedFlushes++
      this.#counters?.failed.inc()
      if (this.#stats.consecutiveFailures++ === 0) this.#log?.warn({ err, pendingRows: this.#pending.size }, 'usage rollups: flush failed, keeping them in memory and retrying')
      return false
    }
  }

  async #purge(): Promise<void> {
    const r = this.#retention
    const now = this.#now()
    if (!r || now - this.#lastPurge < HOUR_MS) return
    this.#lastPurge = now
    try {
      await purgeUsageRollups(this.#store, r, now)
    } catch (err) {
      this.#log?.warn({ err }, 'usage rollups: retention purge failed')
    }
  }

  /** Stops the timer and writes what is pending (SIGTERM, after the gateway drained). true when nothing was lost. */
  async close(): Promise<boolean> {
    this.#closed = true
    if (this.#timer) { clearTimeout(this.#timer); this.#timer = undefined }
    const ok = await this.flush()
    if (!ok) this.#log?.error({ pendingRows: this.#pending.size }, 'usage rollups: final flush failed, these rows are lost')
    return ok
  }
}

const COLUMNS = ['bucket_start', 'granularity', 'key_id', 'team', 'deployment_id', 'prompt_version_id', 'provider', 'model',
  'requests', 'errors', 'input_tokens', 'cached_tokens', 'cache_write_tokens', 'output_tokens', 'reasoning_tokens',
  'estimated_requests', 'unpriced_requests', 'cost_pico_usd', 'cost_micro_usd'] as const
const CASTS = ['::timestamptz', '', '::uuid', '', '::uuid', '::uuid', '', '', '::bigint', '::bigint', '::bigint', '::bigint', '::bigint',
  '::bigint', '::bigint', '::bigint', '::bigint', '::numeric', '::bigint']
const ADDED = COLUMNS.slice(8, 17)
const ROWS_PER_STATEMENT = 1000

function upsertSql(n: number): string {
  const values: string[] = []
  for (let r = 0; r < n; r++) values.push(`(${CASTS.map((c, i) => `$${r * COLUMNS.length + i + 1}${c}`).join(', ')})`)
  return `INSERT INTO usage_rollups (${COLUMNS.join(', ')}) VALUES ${values.join(', ')}
ON CONFLICT ON CONSTRAINT usage_rollups_bucket_key DO UPDATE SET
  ${ADDED.map((c) => `${c} = usage_rollups.${c} + EXCLUDED.${c}`).join(',\n  ')},
  cost_pico_usd = usage_rollups.cost_pico_usd + EXCLUDED.cost_pico_usd,
  cost_micro_usd = floor((usage_rollups.cost_pico_usd + EXCLUDED.cost_pico_usd) / 1000000),
  updated_at = now()`
}

function params(g: 'hour' | 'day', r: PendingRow): unknown[] {
  return [new Date(r.bucket).toISOString(), g, r.keyId, r.team, r.deploymentId, r.promptVersionId, r.provider, r.model,
    r.requests, r.errors, r.input, r.cached, r.cacheWrite, r.output, r.reasoning, r.estimated, r.unpriced,
    picoOf(r).toString(), (picoOf(r) / 1_000_000n).toString()]
}

/** The rows in the order of their keys. */
function sortedByKey(rows: Iterable<[string, PendingRow]>): PendingRow[] {
  return [...rows].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, r]) => r)
}

/** Upserts hour rows and the day rows derived from them, in one transaction. Returns the number of rows written. */
async function writeRollups(store: Store, pending: readonly PendingRow[]): Promise<number> {
  // In key order, the same on every instance: two instances upserting the same rows in their own (arrival) orders
  // lock them in opposite orders and deadlock, failing a flush that then waits for its retry.
  const hours = sortedByKey(pending.map((r) => [keyOf(r.bucket, r), r]))
  const days = new Map<string, PendingRow>()
  for (const h of hours) {
    const bucket = h.bucket - (h.bucket % DAY_MS)
    const k = keyOf(bucket, h)
    const d = days.get(k)
    if (d) addInto(d, h)
    else days.set(k, { ...h, bucket })
  }
  const all: ['hour' | 'day', PendingRow][] = [...hours.map((h) => ['hour', h] as ['hour', PendingRow]), ...sortedByKey(days).map((d) => ['day', d] as ['day', PendingRow])]
  const statements: { sql: string; params: unknown[] }[] = []
  for (let i = 0; i < all.length; i += ROWS_PER_STATEMENT) {
    const part = all.slice(i, i + ROWS_PER_STATEMENT)
    statements.push({ sql: upsertSql(part.length), params: part.flatMap(([g, r]) => params(g, r)) })
  }
  if (statements.length === 1) await store.query(statements[0]!.sql, statements[0]!.params)
  else if (statements.length > 1) await store.transaction(async (tx) => { for (const s of statements) await tx.query(s.sql, s.params) })
  return all.length
}

/** Deletes hour rows older than `hourDays` and day rows older than `dayDays`. */
export async function purgeUsageRollups(db: Queryable, r: { hourDays: number; dayDays: number }, now = Date.now()): Promise<number> {
  const res = await db.query(
    `DELETE FROM usage_rollups WHERE (granularity = 'hour' AND bucket_start < $1::timestamptz) OR (granularity = 'day' AND bucket_start < $2::timestamptz)`,
    [new Date(now - r.hourDays * DAY_MS).toISOString(), new Date(now - r.dayDays * DAY_MS).toISOString()],
  )
  return res.rowCount
}

// ---------- reading ----------

/** Group-by and filter names of the usage API → columns. */
export const USAGE_DIMENSIONS = {
  key: 'key_id', team: 'team', deployment: 'deployment_id', prompt_version: 'prompt_version_id', provider: 'provider', model: 'model',
} as const
export type UsageDimension = keyof typeof USAGE_DIMENSIONS
export type UsageGroup = 'bucket' | UsageDimension
export const USAGE_GROUPS: readonly UsageGroup[] = ['bucket', 'key', 'team', 'deployment', 'prompt_version', 'provider', 'model']

export interface UsageQuery {
  granularity: 'hour' | 'day'
  /** Buckets starting in [from, to). */
  from: Date
  to: Date
  groupBy: readonly UsageGroup[]
  filters?: Partial<Record<UsageDimension, string>>
  /** Default 10 000. */
  limit?: number
}

export const USAGE_METRICS = ['requests', 'errors', 'input_tokens', 'cached_tokens', 'cache_write_tokens', 'output_tokens', 'reasoning_tokens', 'estimated_requests', 'unpriced_requests'] as const
export type UsageTotals = Record<(typeof USAGE_METRICS)[number], number> & { cost_usd: string; cost_pico_usd: string }
export type UsageRow = UsageTotals & { bucket_start?: string } & Partial<Record<(typeof USAGE_DIMENSIONS)[UsageDimension], string | null>>

export interface UsageResult {
  rows: UsageRow[]
  totals: UsageTotals
  /** More groups than `limit`: rows stop there (totals are over everything). */
  truncated: boolean
}

/** Exact decimal USD of an integer pico-USD amount, 12 decimals ('0.000123450000'). */
export function formatUsd(pico: bigint | string): string {
  const p = typeof pico === 'bigint' ? pico : BigInt(pico)
  const neg = p < 0n
  const a = neg ? -p : p
  const s = `${a / 1_000_000_000_000n}.${(a % 1_000_000_000_000n).toString().padStart(12, '0')}`
  return neg ? `-${s}` : s
}

const AGGREGATES = [...USAGE_METRICS.map((m) => `coalesce(sum(${m}), 0)::text AS ${m}`), 'coalesce(sum(cost_pico_usd), 0)::text AS cost_pico_usd'].join(', ')

function totalsOf(r: Record<string, unknown>): UsageTotals {
  const out = {} as UsageTotals
  for (const m of USAGE_METRICS) out[m] = Number(r[m] ?? 0)
  const pico = String(r['cost_pico_usd'] ?? '0')
  out.cost_pico_usd = pico
  out.cost_usd = formatUsd(pico)
  return out
}

export async function queryUsage(db: Queryable, q: UsageQuery): Promise<UsageResult> {
  const where = ['granularity = $1', 'bucket_start >= $2::timestamptz', 'bucket_start < $3::timestamptz']
  const args: unknown[] = [q.granularity, q.from.toISOString(), q.to.toISOString()]
  for (const [name, col] of Object.entries(USAGE_DIMENSIONS) as [UsageDimension, string][]) {
    const v = q.filters?.[name]
    if (v === undefined) continue
    args.push(v)
    where.push(col.endsWith('_id') ? `${col} = $${args.length}::uuid` : `${col} = $${args.length}`)
  }
  const groups = USAGE_GROUPS.filter((g) => q.groupBy.includes(g))
  const cols = groups.map((g) => (g === 'bucket' ? 'bucket_start' : USAGE_DIMENSIONS[g]))
  const select = cols.map((c) => (c.endsWith('_id') ? `${c}::text AS ${c}` : c))
  const limit = q.limit ?? 10_000
  const whereSql = where.join(' AND ')
  const rowsSql = cols.length === 0
    ? undefined
    : `SELECT ${[...select, AGGREGATES].join(', ')} FROM usage_rollups WHERE ${whereSql}
       GROUP BY ${cols.map((_c, i) => i + 1).join(', ')} ORDER BY ${cols.map((_c, i) => `${i + 1} NULLS FIRST`).join(', ')} LIMIT ${limit + 1}`
  const totalRes = await db.query<Record<string, unknown>>(`SELECT ${AGGREGATES} FROM usage_rollups WHERE ${whereSql}`, args)
  const totals = totalsOf(totalRes.rows[0] ?? {})
  if (rowsSql === undefined) return { rows: [{ ...totals }], totals, truncated: false }
  const res = await db.query<Record<string, unknown>>(rowsSql, args)
  const truncated = res.rows.length > limit
  const rows = res.rows.slice(0, limit).map((r) => {
    const row: Record<string, unknown> = {}
    for (const c of cols) row[c] = c === 'bucket_start' ? (r[c] as Date).toISOString() : (r[c] ?? null)
    return Object.assign(row, totalsOf(r)) as UsageRow
  })
  return { rows, totals, truncated }
}
