/**
 * The execution_logs row: the shape the gateway produces (ExecutionLogRow), the sink contract plugins call, and the
 * wire form the writer sends to the database and to the spool.
 *
 * Wire form: one row = one JSON array text
 *   [id, request_id, deployment_id, provider, model, status, key_id, prompt_version_id, created_ms, completed_ms,
 *    request, response, metrics]
 * serialized once, off the request path. The same text is a spool line (NDJSON) and an element of the single jsonb
 * parameter of the batch INSERT (`jsonb_array_elements($1)`): no per-row bound parameters, no 65,535-parameter
 * limit, and a replayed line goes to the database without being parsed or re-serialized.
 * Values PostgreSQL would refuse are neutralised here (\u0000 and lone surrogates, which jsonb rejects, become
 * U+FFFD; malformed UUIDs become NULL; strings are cut to their varchar length), so one odd request cannot poison
 * a batch.
 */
import { randomUUID } from 'node:crypto'
import { sqlState } from './types.ts'

/** One execution_logs row as the gateway produces it. */
export interface ExecutionLogRow {
  /** Row UUID, generated once: it makes replays idempotent. */
  id: string
  requestId: string
  deploymentId: string | null
  provider: string
  model: string | null
  /** ok, error, timeout, cancelled. */
  status: string
  keyId: string | null
  promptVersionId: string | null
  /** Request arrival, epoch ms (the partition key). */
  createdAt: number
  completedAt: number | null
  /** JSON values, serialized by the writer off the request path. */
  request: unknown
  response: unknown
  metrics: unknown
  /** Approximate serialized size, for the queue's byte bound. Default 1 KiB. */
  bytes?: number
}

/** Where the execution-log plugin hands its rows (PluginServices.executionLog). */
export interface ExecutionLogSink {
  /** Synchronous, O(1), never throws, never waits. */
  enqueue(row: ExecutionLogRow): void
  /** False when a row enqueued now would be dropped. */
  accepting(): boolean
}

/** One row as its JSON array text (no newline inside). */
export type WireRow = string

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
/** \u0000 and lone surrogates as JSON.stringify writes them (paired surrogates are written raw). */
const JSONB_UNSAFE = /(?<!\\)((?:\\\\)*)\\u(?:0000|d[89a-f][0-9a-f]{2})/g

function uuid(v: string | null): string {
  return v !== null && UUID.test(v) ? `"${v}"` : 'null'
}

function str(v: string | null, max: number): string {
  if (v === null) return 'null'
  return JSON.stringify(v.length > max ? v.slice(0, max) : v)
}

function epochMs(v: number | null): string {
  if (v === null) return 'null'
  return String(Math.round(Number.isFinite(v) ? v : Date.now()))
}

function json(v: unknown, ifAbsent: string): string {
  if (v === undefined || v === null) return ifAbsent
  try {
    return JSON.stringify(v) ?? ifAbsent
  } catch {
    return '{"unserializable":true}'
  }
}

export function toWire(r: ExecutionLogRow): WireRow {
  const s = `["${UUID.test(r.id) ? r.id : randomUUID()}",${str(r.requestId, 100)},${uuid(r.deploymentId)},${str(r.provider, 50)},`
    + `${str(r.model, 200)},${str(r.status, 20)},${uuid(r.keyId)},${uuid(r.promptVersionId)},${epochMs(r.createdAt)},`
    + `${epochMs(r.completedAt)},${json(r.request, '{}')},${json(r.response, 'null')},${json(r.metrics, 'null')}]`
  return s.includes('\\u0000') || s.includes('\\ud') ? s.replace(JSONB_UNSAFE, '$1\\ufffd') : s
}

/** Back from the wire form (rows requeued after the spool refused them; conflict resolution). */
export function fromWire(w: WireRow): ExecutionLogRow {
  const a = JSON.parse(w) as [string, string, string | null, string, string | null, string, string | null, string | null, number, number | null, unknown, unknown, unknown]
  return {
    id: a[0], requestId: a[1], deploymentId: a[2], provider: a[3], model: a[4], status: a[5], keyId: a[6], promptVersionId: a[7],
    createdAt: a[8], completedAt: a[9], request: a[10], response: a[11], metrics: a[12], bytes: w.length,
  }
}

/** The row id of a wire row (it always starts with `["<uuid>"`). */
export function wireId(w: WireRow): string {
  return w.slice(2, 38)
}

/** One statement per batch; $1 is the batch as a JSON array of wire rows. */
export const INSERT_SQL = `INSERT INTO execution_logs
  (id, request_id, deployment_id, provider, model, status, key_id, prompt_version_id, created_at, completed_at, request, response, metrics)
SELECT (e->>0)::uuid, e->>1, (e->>2)::uuid, e->>3, e->>4, e->>5, (e->>6)::uuid, (e->>7)::uuid,
  to_timestamp((e->>8)::float8 / 1000), to_timestamp((e->>9)::float8 / 1000),
  e->10, NULLIF(e->11, 'null'::jsonb), NULLIF(e->12, 'null'::jsonb)
FROM jsonb_array_elements($1::jsonb) AS e
ON CONFLICT DO NOTHING`

export function batchParam(rows: readonly WireRow[]): string {
  return `[${rows.join(',')}]`
}

/** The database refused the rows' content (data exception, constraint): retrying cannot help. */
export function isRowError(e: unknown): boolean {
  const s = sqlState(e)
  return s !== undefined && (s.startsWith('22') || s.startsWith('23'))
}
