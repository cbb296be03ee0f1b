/**
 * Deployment health from the execution logs over a window: calls, errors and error rate, latency percentiles
 * (percentile_cont), cost per call; overall and per prompt version (so a canary can be judged against the stable
 * version).
 *
 * Read from each execution_logs row: `status` ('ok' is a success; 'cancelled', the client leaving, and 'terminated', the
 * gateway's own shutdown, are neither: calls, not errors of the deployment; anything else an error); latency from
 * `metrics.latencyMs` (or `latency_ms`), else `completed_at - created_at`; cost in USD from the first number among
 * `metrics.costUsd`, `cost_usd`, `cost`, `cost.usd`, `cost_micro_usd` / 1e6 (null when none is recorded).
 */
import type { Queryable } from '../../store/types.ts'

export interface HealthStats {
  calls: number
  errors: number
  error_rate: number | null
  latency_ms: { p50: number | null; p95: number | null; p99: number | null }
  cost_per_call_usd: number | null
  cost_total_usd: number | null
}

export interface HealthView extends HealthStats {
  deployment_id: string
  window: string
  from: Date
  to: Date
  by_version: (HealthStats & { prompt_version_id: string | null })[]
}

interface StatsRow { prompt_version_id?: string | null; calls: number; errors: number; p50: number | null; p95: number | null; p99: number | null; cost_avg: number | null; cost_sum: number | null; costed: number }

const AGGREGATES = `count(*)::int AS calls,
  (count(*) FILTER (WHERE status NOT IN ('ok', 'cancelled', 'terminated')))::int AS errors,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY latency) AS p50,
  percentile_cont(0.95) WITHIN GROUP (ORDER BY latency) AS p95,
  percentile_cont(0.99) WITHIN GROUP (ORDER BY latency) AS p99,
  avg(cost) AS cost_avg, sum(cost) AS cost_sum, count(cost)::int AS costed`

const num = (path: string): string => `CASE WHEN jsonb_typeof(${path}) = 'number' THEN (${path})::text::float8 END`

const SOURCE = `(SELECT status, prompt_version_id,
    COALESCE(${num("metrics->'latencyMs'")}, ${num("metrics->'latency_ms'")},
      CASE WHEN completed_at IS NOT NULL THEN EXTRACT(EPOCH FROM (completed_at - created_at)) * 1000 END) AS latency,
    COALESCE(${num("metrics->'costUsd'")}, ${num("metrics->'cost_usd'")}, ${num("metrics->'cost'")}, ${num("metrics->'cost'->'usd'")},
      ${num("metrics->'cost_micro_usd'")} / 1000000) AS cost
  FROM execution_logs WHERE deployment_id = $1 AND created_at >= $2 AND created_at <= $3) x`

function round(v: number | null, digits = 3): number | null {
  if (v === null || v === undefined) return null
  const f = 10 ** digits
  return Math.round(Number(v) * f) / f
}

function stats(r: StatsRow): HealthStats {
  return {
    calls: r.calls,
    errors: r.errors,
    error_rate: r.calls > 0 ? round(r.errors / r.calls, 4) : null,
    latency_ms: { p50: round(r.p50), p95: round(r.p95), p99: round(r.p99) },
    cost_per_call_usd: r.costed > 0 ? round(r.cost_avg, 8) : null,
    cost_total_usd: r.costed > 0 ? round(r.cost_sum, 8) : null,
  }
}

export async function deploymentHealth(q: Queryable, id: string, window: { text: string; seconds: number }, now = new Date()): Promise<HealthView> {
  const from = new Date(now.getTime() - window.seconds * 1000)
  const params = [id, from, now]
  const total = await q.query<StatsRow>(`SELECT ${AGGREGATES} FROM ${SOURCE}`, params)
  const per = await q.query<StatsRow>(`SELECT prompt_version_id, ${AGGREGATES} FROM ${SOURCE} GROUP BY prompt_version_id ORDER BY calls DESC`, params)
  return {
    deployment_id: id,
    window: window.text,
    from,
    to: now,
    ...stats(total.rows[0] ?? { calls: 0, errors: 0, p50: null, p95: null, p99: null, cost_avg: null, cost_sum: null, costed: 0 }),
    by_version: per.rows.map((r) => ({ prompt_version_id: r.prompt_version_id ?? null, ...stats(r) })),
  }
}
