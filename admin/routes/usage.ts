/**
 * Usage on the admin API (read-only, from usage_rollups):
 *   GET /api/v1/mcp/usage          totals per bucket and dimension, JSON (default) or CSV
 *   GET /api/v1/mcp/usage/export   the same for billing, as a download (CSV by default, or JSON), every dimension
 *
 * Query parameters (anything else is a 400 naming it):
 *   granularity  hour | day (default hour)
 *   from, to     ISO 8601; buckets starting in [from, to). Default: the last 24 hours (hour) or 30 days (day).
 *                At most 93 days of hour buckets, 3660 days of day buckets.
 *   group_by     comma-separated: bucket, key, team, deployment, prompt_version, provider, model.
 *                Default `bucket` (/usage) or all of them (/export); empty = one total row.
 *   key_id, team, deployment_id, prompt_version_id, provider, model   filters (exact match)
 *   format       json | csv
 *   limit        1..100000 rows (default 10000); `truncated: true` when there were more (totals cover all)
 *
 * Cost is exact: `cost_usd` a decimal string with 12 decimals, `cost_pico_usd` an integer string (10^-12 USD).
 * `unpriced_requests` counts answers whose model is not in the price catalogue (their cost is not included), and
 * `estimated_requests` answers priced from a tokenizer estimate. The last `flushIntervalMs` of usage may not be
 * written yet. An unreachable database is a 503.
 */
import type { ServerResponse } from 'node:http'
import type { Store } from '../../store/types.ts'
import { DAY_MS, queryUsage, USAGE_GROUPS, USAGE_METRICS, type UsageDimension, type UsageGroup, type UsageQuery, type UsageResult } from '../../store/usage-rollups.ts'
import { isUnavailableError, storeUnavailable } from '../control-plane.ts'
import { isUuid, queryInvalid, queryOf, timeQuery } from '../http.ts'
import { sendJson, type AdminServer } from '../server.ts'

const FILTERS: readonly { param: string; dim: UsageDimension; uuid: boolean; max: number }[] = [
  { param: 'key_id', dim: 'key', uuid: true, max: 36 },
  { param: 'team', dim: 'team', uuid: false, max: 100 },
  { param: 'deployment_id', dim: 'deployment', uuid: true, max: 36 },
  { param: 'prompt_version_id', dim: 'prompt_version', uuid: true, max: 36 },
  { param: 'provider', dim: 'provider', uuid: false, max: 50 },
  { param: 'model', dim: 'model', uuid: false, max: 200 },
]
const KNOWN = new Set(['granularity', 'from', 'to', 'group_by', 'format', 'limit', ...FILTERS.map((f) => f.param)])
/** 0001-01-01T00:00:00Z, the earliest time timeQuery accepts. */
const YEAR_1 = -62_135_596_800_000
const MAX_SPAN_MS = { hour: 93 * DAY_MS, day: 3660 * DAY_MS } as const
const DEFAULT_SPAN_MS = { hour: DAY_MS, day: 30 * DAY_MS } as const
const GROUP_COLUMN: Readonly<Record<UsageGroup, string>> = {
  bucket: 'bucket_start', key: 'key_id', team: 'team', deployment: 'deployment_id', prompt_version: 'prompt_version_id', provider: 'provider', model: 'model',
}

export interface ParsedUsageQuery {
  query: UsageQuery
  format: 'json' | 'csv'
  filters: Record<string, string>
}

/** Validates the query string of the usage routes; a 400 names the first bad parameter. */
export function parseUsageQuery(q: URLSearchParams, defaults: { groupBy: readonly UsageGroup[]; format: 'json' | 'csv' }, now = Date.now()): ParsedUsageQuery {
  for (const k of q.keys()) if (!KNOWN.has(k)) throw queryInvalid(k, `unknown parameter (known: ${[...KNOWN].join(', ')})`)
  const g = q.get('granularity') ?? 'hour'
  if (g !== 'hour' && g !== 'day') throw queryInvalid('granularity', 'must be hour or day')
  const to = timeQuery(q, 'to') ?? now
  // The default range starts no earlier than year 1 (a day before 0001-01-01T05:00Z is in year 0, which PostgreSQL refuses).
  const from = timeQuery(q, 'from') ?? Math.max(to - DEFAULT_SPAN_MS[g], YEAR_1)
  if (from >= to) throw queryInvalid('from', 'must be before to')
  if (to - from > MAX_SPAN_MS[g]) throw queryInvalid('from', `the range is at most ${MAX_SPAN_MS[g] / DAY_MS} days at granularity ${g}`)

  let groupBy: UsageGroup[] = [...defaults.groupBy]
  const gb = q.get('group_by')
  if (gb !== null) {
    groupBy = []
    for (const part of gb.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
      if (!(USAGE_GROUPS as readonly string[]).includes(part)) throw queryInvalid('group_by', `unknown group '${part.slice(0, 50)}' (one of ${USAGE_GROUPS.join(', ')})`)
      if (!groupBy.includes(part as UsageGroup)) groupBy.push(part as UsageGroup)
    }
  }
  const filters: Partial<Record<UsageDimension, string>> = {}
  const echo: Record<string, string> = {}
  for (const f of FILTERS) {
    const v = q.get(f.param)
    if (v === null || v === '') continue
    if (f.uuid ? !isUuid(v) : v.length > f.max) throw queryInvalid(f.param, f.uuid ? 'must be a UUID' : `must be at most ${f.max} characters`)
    filters[f.dim] = f.uuid ? v.toLowerCase() : v
    echo[f.param] = filters[f.dim]!
  }
  const fmt = q.get('format') ?? defaults.format
  if (fmt !== 'json' && fmt !== 'csv') throw queryInvalid('format', 'must be json or csv')
  let limit = 10_000
  const l = q.get('limit')
  if (l !== null) {
    if (!/^[0-9]{1,6}$/.test(l) || Number(l) < 1 || Number(l) > 100_000) throw queryInvalid('limit', 'must be an integer from 1 to 100000')
    limit = Number(l)
  }
  return { query: { granularity: g, from: new Date(from), to: new Date(to), groupBy, filters, limit }, format: fmt, filters: echo }
}

/** A CSV cell (RFC 4180): quoted when needed; a text cell that a spreadsheet would run as a formula gets a leading '. */
export function csvCell(v: unknown): string {
  if (v === null || v === undefined) return ''
  let s = String(v)
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

export function usageColumns(groupBy: readonly UsageGroup[]): string[] {
  return [...USAGE_GROUPS.filter((g) => groupBy.includes(g)).map((g) => GROUP_COLUMN[g]), ...USAGE_METRICS, 'cost_usd', 'cost_pico_usd']
}

/** Header row, then one line per row, CRLF line ends. */
export function usageCsv(result: UsageResult, groupBy: readonly UsageGroup[]): string {
  const cols = usageColumns(groupBy)
  const lines = [cols.join(',')]
  for (const r of result.rows) lines.push(cols.map((c) => csvCell((r as Record<string, unknown>)[c])).join(','))
  return lines.join('\r\n') + '\r\n'
}

export function usageJson(p: ParsedUsageQuery, result: UsageResult): Record<string, unknown> {
  return {
    object: 'usage',
    granularity: p.query.granularity,
    from: p.query.from.toISOString(),
    to: p.query.to.toISOString(),
    group_by: USAGE_GROUPS.filter((g) => p.query.groupBy.includes(g)),
    filters: p.filters,
    currency: 'USD',
    rows: result.rows,
    totals: result.totals,
    truncated: result.truncated,
  }
}

async function run(store: Store, q: UsageQuery): Promise<UsageResult> {
  try {
    return await queryUsage(store, q)
  } catch (e) {
    if (isUnavailableError(e)) throw storeUnavailable(e)
    throw e
  }
}

function stamp(d: Date): string {
  return d.toISOString().slice(0, 16).replace(/[-:]/g, '')
}

function send(res: ServerResponse, p: ParsedUsageQuery, result: UsageResult, download: boolean): void {
  const name = `mcp-usage-${p.query.granularity}-${stamp(p.query.from)}-${stamp(p.query.to)}.${p.format}`
  const headers: Record<string, string> = download ? { 'content-disposition': `attachment; filename="${name}"` } : {}
  if (p.format === 'json') { sendJson(res, 200, usageJson(p, result), headers); return }
  const text = usageCsv(result, p.query.groupBy)
  res.writeHead(200, {
    ...headers,
    'content-type': 'text/csv; charset=utf-8; header=present',
    'content-length': Buffer.byteLength(text),
    ...(result.truncated ? { 'x-mcp-truncated': 'true' } : {}),
  })
  res.end(text)
}

export function registerUsageRoutes(admin: AdminServer, store: Store): void {
  admin.route('GET', '/api/v1/mcp/usage', async (req, res) => {
    req.resume()
    const p = parseUsageQuery(queryOf(req), { groupBy: ['bucket'], format: 'json' })
    send(res, p, await run(store, p.query), false)
  })
  admin.route('GET', '/api/v1/mcp/usage/export', async (req, res) => {
    req.resume()
    const p = parseUsageQuery(queryOf(req), { groupBy: USAGE_GROUPS, format: 'csv' })
    send(res, p, await run(store, p.query), true)
  })
}
