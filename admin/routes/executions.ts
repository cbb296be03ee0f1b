/**
 * Execution logs on the admin API (read-only):
 *   GET /api/v1/mcp/executions        newest first; filters deployment_id, provider, model, status, key_id,
 *                                     prompt_version_id, request_id, upstream_request_id, from, to (created_at,
 *                                     ISO 8601, [from, to));
 *                                     keyset pagination: limit (1..200, default 50), cursor = next_cursor.
 *                                     Items carry the metrics but not the request and response bodies.
 *   GET /api/v1/mcp/executions/{id}   one execution, bodies included, by row id or by request id.
 * Unknown or malformed ids are 404; a malformed filter or cursor is 400; an unreachable database is 503.
 * `executions.read` (admin role only: rows carry request bodies and have no team to scope them by).
 * GET /executions/{id} also answers for the `execution_id` and `x-mcp-execution-id` of /execute (the row id). A row id
 * wins over a request id that happens to equal it (a client may send any UUID as its x-request-id); among rows sharing
 * a request id, the newest.
 * Queries go through execution_logs_created_at_idx (and the deployment/key partial indexes), with created_at in
 * the WHERE clause whenever a time bound or a cursor gives one, so partitions are pruned.
 */
import { REQUEST_ID_MAX, withMetricKeys } from '../../store/execution-log-rows.ts'
import type { Store } from '../../store/types.ts'
import { sqlState } from '../../store/types.ts'
import { isUnavailableError, storeUnavailable } from '../control-plane.ts'
import { cursorParts, encodeCursor, isUuid, notFound, pageOf, queryInvalid, queryOf, timeQuery } from '../http.ts'
import { authorize } from '../rbac.ts'
import { sendJson, type AdminServer } from '../server.ts'

interface ExecutionRow {
  id: string
  request_id: string
  deployment_id: string | null
  provider: string
  model: string | null
  status: string
  key_id: string | null
  prompt_version_id: string | null
  created_at: Date
  completed_at: Date | null
  cursor_ts: string
  metrics: unknown
  request?: unknown
  response?: unknown
}

const SUMMARY = `id::text AS id, request_id, deployment_id::text AS deployment_id, provider, model, status, key_id::text AS key_id,
  prompt_version_id::text AS prompt_version_id, created_at, completed_at, created_at::text AS cursor_ts, metrics`

/** Filter → column, and whether the value must be a UUID, and its column's length. */
const FILTERS: readonly { param: string; column: string; uuid: boolean; max: number }[] = [
  { param: 'deployment_id', column: 'deployment_id', uuid: true, max: 36 },
  { param: 'key_id', column: 'key_id', uuid: true, max: 36 },
  { param: 'prompt_version_id', column: 'prompt_version_id', uuid: true, max: 36 },
  { param: 'provider', column: 'provider', uuid: false, max: 50 },
  { param: 'model', column: 'model', uuid: false, max: 200 },
  { param: 'status', column: 'status', uuid: false, max: 20 },
  { param: 'request_id', column: 'request_id', uuid: false, max: REQUEST_ID_MAX },
  // The provider's own id of the answering call (the access log's upstreamRequestId): no index of its own, like
  // provider, model and status; bound it with from/to to keep the scan to a few partitions.
  { param: 'upstream_request_id', column: `metrics->>'upstreamRequestId'`, uuid: false, max: 200 },
]

/** created_at::text in a UTC session: '2026-01-02 03:04:05.678+00'. */
const PG_TIMESTAMP = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}(:\d{2})?$/

/** A time filter as the ISO string the query binds (admin/http.ts timeQuery). */
function timeParam(q: URLSearchParams, name: string): string | undefined {
  const t = timeQuery(q, name)
  return t === undefined ? undefined : new Date(t).toISOString()
}

function present(r: ExecutionRow): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: r.id, request_id: r.request_id, deployment_id: r.deployment_id, provider: r.provider, model: r.model, status: r.status,
    key_id: r.key_id, prompt_version_id: r.prompt_version_id,
    created_at: r.created_at.toISOString(), completed_at: r.completed_at?.toISOString() ?? null, metrics: withMetricKeys(r.metrics),
  }
  if ('request' in r) out['request'] = r.request
  if ('response' in r) out['response'] = r.response
  return out
}

async function query(store: Store, sql: string, params: unknown[]): Promise<ExecutionRow[]> {
  try {
    return (await store.query<ExecutionRow>(sql, params)).rows
  } catch (e) {
    if (isUnavailableError(e)) throw storeUnavailable(e)
    // A value PostgreSQL refused (a cursor timestamp out of range): the client's input, not a server fault.
    if (sqlState(e)?.startsWith('22')) throw queryInvalid('cursor', 'not a cursor issued by this API')
    throw e
  }
}

export function registerExecutionRoutes(admin: AdminServer, store: Store): void {
  admin.route('GET', '/api/v1/mcp/executions', async (req, res) => {
    req.resume()
    // The gate already checked the route's action (admin/rbac.ts); checked again here (authorize in the handler).
    // Rows have no team: executions are for global principals until a team filter exists (docs/rbac.md).
    authorize(req, 'executions.read')
    const q = queryOf(req)
    const page = pageOf(q)
    const where: string[] = []
    const params: unknown[] = []
    for (const f of FILTERS) {
      const v = q.get(f.param)
      if (v === null || v === '') continue
      if (f.uuid ? !isUuid(v) : v.length > f.max) throw queryInvalid(f.param, f.uuid ? 'must be a UUID' : `must be at most ${f.max} characters`)
      params.push(f.uuid ? v.toLowerCase() : v)
      where.push(`${f.column} = $${params.length}${f.uuid ? '::uuid' : ''}`)
    }
    const from = timeParam(q, 'from')
    const to = timeParam(q, 'to')
    if (from !== undefined) { params.push(from); where.push(`created_at >= $${params.length}::timestamptz`) }
    if (to !== undefined) { params.push(to); where.push(`created_at < $${params.length}::timestamptz`) }
    const cursor = cursorParts(page.cursor, ['timestamp', 'uuid'])
    if (cursor !== undefined) {
      const [ts, id] = cursor as [string, string]
      if (!PG_TIMESTAMP.test(ts)) throw queryInvalid('cursor', 'not a cursor issued by this API')
      params.push(ts, id)
      const t = `$${params.length - 1}::timestamptz`
      where.push(`created_at <= ${t} AND (created_at < ${t} OR id < $${params.length}::uuid)`)
    }
    params.push(page.limit + 1)
    const rows = await query(store, `SELECT ${SUMMARY} FROM execution_logs ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY created_at DESC, id DESC LIMIT $${params.length}`, params)
    const more = rows.length > page.limit
    const data = more ? rows.slice(0, page.limit) : rows
    const last = data.at(-1)
    sendJson(res, 200, { data: data.map(present), next_cursor: more && last ? encodeCursor([last.cursor_ts, last.id]) : null })
  })

  admin.route('GET', '/api/v1/mcp/executions/{id}', async (req, res, p) => {
    req.resume()
    authorize(req, 'executions.read')
    const id = p['id'] ?? ''
    if (id === '' || id.length > REQUEST_ID_MAX) throw notFound('execution', id)
    const byUuid = isUuid(id)
    const rows = await query(store, `SELECT ${SUMMARY}, request, response FROM execution_logs
      WHERE ${byUuid ? 'id = $1::uuid OR request_id = $2' : 'request_id = $1'}
      ORDER BY ${byUuid ? '(id = $1::uuid) DESC, ' : ''}created_at DESC LIMIT 1`,
    byUuid ? [id.toLowerCase(), id] : [id])
    const row = rows[0]
    if (!row) throw notFound('execution', id)
    sendJson(res, 200, present(row))
  })
}
