/**
 * The execution_logs row: the shape the gateway produces (ExecutionLogRow), the sink contract plugins call, and the
 * line form the writer sends to the database and to the spool.
 *
 * Line form: one row = one line of PostgreSQL's COPY text format, the 13 columns of COPY_COLUMNS separated by tabs:
 *   id, request_id, deployment_id, provider, model, status, key_id, prompt_version_id, created_at, completed_at,
 *   request, response, metrics
 * `\N` is NULL; backslash, tab, newline and carriage return inside a value are written `\\`, `\t`, `\n`, `\r`, so a
 * line never holds a raw tab (other than the 12 separators), newline or CR; times are ISO 8601 UTC with
 * milliseconds ('2026-03-04T05:06:07.089Z', unambiguous whatever the session's DateStyle); request, response and
 * metrics are JSON text (JSON.stringify never writes a raw control character, so only its backslashes are doubled).
 * Serialized once, at enqueue. The same text is a spool line and a line of the batch's
 * `COPY execution_logs (...) FROM STDIN`: PostgreSQL parses each value straight into its column (no intermediate
 * jsonb array, no per-row parameters), and a replayed line goes to the database without being parsed or
 * re-serialized.
 * Values PostgreSQL would refuse are neutralised here, so one odd request cannot poison a batch: \u0000 and lone
 * surrogates become U+FFFD (in the JSON text, where jsonb refuses `\u0000`, and in the varchar columns, where text
 * refuses NUL); malformed UUIDs become NULL; strings are cut to their varchar length; a row id that is not a UUID is
 * replaced by a fresh one.
 *
 * Spool lines written before the COPY form (one JSON array per line, `[id, request_id, ..., created_ms, completed_ms,
 * request, response, metrics]`, inserted through `jsonb_array_elements`) are converted by readSpoolLine.
 */
import { uuidv7 } from '../gateway/uuid7.ts'
import { sqlState } from './types.ts'

/**
 * A JSON value already serialized (JSON text; the writer trusts it to be valid JSON). Plugins that know the shape of
 * what they log build the text directly instead of an object for JSON.stringify to walk.
 */
export class JsonText {
  readonly text: string
  constructor(text: string) { this.text = text }
}

/**
 * The keys of execution_logs.metrics as the execution-log plugin writes them. A key whose value is null is left out
 * of the stored JSON (a third of them are null on a plain request); readers put them back (withMetricKeys), so the
 * API always shows every key.
 */
export const METRIC_KEYS: readonly string[] = [
  'route', 'inbound', 'stream', 'status', 'details', 'errorCode', 'aborted', 'latencyMs', 'ttftMs', 'upstreamMs', 'overheadMs',
  'promptTokens', 'completionTokens', 'cachedTokens', 'reasoningTokens', 'cost', 'attempts', 'failedAttempts', 'fallbackReason',
  'promptVersionId', 'promptId', 'promptVersion', 'environment', 'trafficLabel', 'requestedModel', 'principal', 'upstreamRequestId',
]

/** A stored metrics object of the plugin's shape (it has `route`) with every key of METRIC_KEYS, null where left out. */
export function withMetricKeys(m: unknown): unknown {
  if (m === null || typeof m !== 'object' || Array.isArray(m) || !('route' in m)) return m
  const out: Record<string, unknown> = {}
  for (const k of METRIC_KEYS) out[k] = null
  return Object.assign(out, m)
}

/** One execution_logs row as the gateway produces it. */
export interface ExecutionLogRow {
  /** Row UUID (v7, time-ordered), generated once: it makes replays idempotent. */
  id: string
  requestId: string
  deploymentId: string | null
  provider: string
  model: string | null
  /** ok, error, timeout, cancelled, terminated (plugins/execution-log statusOf). */
  status: string
  keyId: string | null
  promptVersionId: string | null
  /** Request arrival, epoch ms (the partition key). */
  createdAt: number
  completedAt: number | null
  /** JSON values, serialized by the writer at enqueue (JsonText: serialized already). */
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

/** One row as a COPY text-format line (no newline inside). */
export type CopyLine = string

/** The columns of a CopyLine, in order. */
export const COPY_COLUMNS: readonly string[] = [
  'id', 'request_id', 'deployment_id', 'provider', 'model', 'status', 'key_id', 'prompt_version_id',
  'created_at', 'completed_at', 'request', 'response', 'metrics',
]
const COLUMN_LIST = COPY_COLUMNS.join(', ')

const NULL = '\\N'
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
/** \u0000 and lone surrogates as JSON.stringify writes them (paired surrogates are written raw). */
const JSONB_UNSAFE = /(?<!\\)((?:\\\\)*)\\u(?:0000|d[89a-f][0-9a-f]{2})/g
/** What a varchar value cannot hold as it is: COPY's special characters, NUL, surrogates (maybe lone). */
const TEXT_UNSAFE = /[\\\t\n\r\0\ud800-\udfff]/
const TEXT_ESCAPES = /[\\\t\n\r\0]/g
const ESCAPE: Readonly<Record<string, string>> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r', '\0': '\ufffd' }
/**
 * execution_logs.request_id is VARCHAR(128) (migration 0008): the request-id plugin's longest id, so an id the gateway
 * answered with is stored whole.
 */
export const REQUEST_ID_MAX = 128
/** The largest epoch ms a JS Date holds. */
const MAX_DATE_MS = 8.64e15

function uuid(v: string | null): string {
  return typeof v === 'string' && UUID.test(v) ? v : NULL
}

function text(v: string | null, max: number): string {
  if (v === null || v === undefined) return NULL
  const s = typeof v === 'string' ? v : String(v)
  const cut = s.length > max ? s.slice(0, max) : s
  return TEXT_UNSAFE.test(cut) ? cut.toWellFormed().replace(TEXT_ESCAPES, (c) => ESCAPE[c]!) : cut
}

/** '000'..'999'. */
const MS3: readonly string[] = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'))
/** 'YYYY-MM-DDTHH:MM:SS.' of the last two seconds formatted (Date#toISOString costs ~0.5 µs; rows come in order). */
const secondCache = { a: NaN, aText: '', b: NaN, bText: '' }
/** Year 10000: past it, toISOString writes a sign and six digits. */
const ISO_MAX_MS = 253_402_300_800_000

function isoPrefix(second: number): string {
  const c = secondCache
  if (second === c.a) return c.aText
  if (second === c.b) return c.bText
  c.b = c.a
  c.bText = c.aText
  c.a = second
  c.aText = new Date(second * 1000).toISOString().slice(0, 20)
  return c.aText
}

function time(v: number | null): string {
  if (v === null || v === undefined) return NULL
  const ms = Math.round(Number.isFinite(v) ? v : Date.now())
  if (ms >= 0 && ms < ISO_MAX_MS) {
    const second = Math.floor(ms / 1000)
    return `${isoPrefix(second)}${MS3[ms - second * 1000]!}Z`
  }
  // Past what a Date holds: written as the number, which PostgreSQL refuses, so the row is dead-lettered.
  return Math.abs(ms) <= MAX_DATE_MS ? new Date(ms).toISOString() : String(ms)
}

function json(v: unknown, ifAbsent: string): string {
  if (v === undefined || v === null) return ifAbsent
  let s: string | undefined
  if (v instanceof JsonText) s = v.text
  else {
    try {
      s = JSON.stringify(v)
    } catch {
      return '{"unserializable":true}'
    }
  }
  if (s === undefined || !s.includes('\\')) return s ?? ifAbsent
  if (s.includes('\\u0000') || s.includes('\\ud')) s = s.replace(JSONB_UNSAFE, '$1\\ufffd')
  return s.replaceAll('\\', '\\\\')
}

/** The row as its COPY line. Throws only if a JSON value's toJSON throws something JSON.stringify does not catch. */
export function toCopyLine(r: ExecutionLogRow): CopyLine {
  return `${typeof r.id === 'string' && UUID.test(r.id) ? r.id : uuidv7()}\t${text(r.requestId, REQUEST_ID_MAX)}\t${uuid(r.deploymentId)}\t`
    + `${text(r.provider, 50)}\t${text(r.model, 200)}\t${text(r.status, 20)}\t${uuid(r.keyId)}\t${uuid(r.promptVersionId)}\t`
    + `${time(r.createdAt)}\t${time(r.completedAt)}\t${json(r.request, '{}')}\t${json(r.response, NULL)}\t${json(r.metrics, NULL)}`
}

const UNESCAPE: Readonly<Record<string, string>> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' }

/** One COPY text value back to its string (null for `\N`). */
function unescapeValue(v: string): string | null {
  if (v === NULL) return null
  if (!v.includes('\\')) return v
  return v.replace(/\\(.)/gs, (_, c: string) => UNESCAPE[c] ?? c)
}

/** Back from the line form (tests, tooling; the writer itself never needs to parse a line). */
export function fromCopyLine(line: CopyLine): ExecutionLogRow {
  const f = line.split('\t').map(unescapeValue)
  if (f.length !== COPY_COLUMNS.length) throw new SyntaxError(`an execution-log line has ${COPY_COLUMNS.length} columns, this one ${f.length}`)
  const at = (i: number): string | null => f[i] ?? null
  const parse = (i: number): unknown => { const v = at(i); return v === null ? null : JSON.parse(v) as unknown }
  const created = at(8)
  const completed = at(9)
  return {
    id: at(0)!, requestId: at(1)!, deploymentId: at(2), provider: at(3)!, model: at(4), status: at(5)!, keyId: at(6), promptVersionId: at(7),
    createdAt: created === null ? NaN : Date.parse(created), completedAt: completed === null ? null : Date.parse(completed),
    request: parse(10), response: parse(11), metrics: parse(12), bytes: line.length,
  }
}

/** The row id of a line (it always starts with `<uuid>\t`). */
export function copyLineId(line: CopyLine): string {
  return line.slice(0, 36)
}

const LINE_HEAD = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\t/i
/** A backslash that escapes nothing: `\.` (COPY's end-of-data marker) or a backslash ending the line. */
const BARE_BACKSLASH = /(?:^|[^\\])(?:\\\\)*\\(?:\.|$)/

/**
 * True when the line has the shape toCopyLine gives: a UUID, then 12 more columns, no raw CR, no unescaped `\.`
 * (which would end the COPY data early: the rows after it would be silently skipped) and no trailing backslash
 * (which would join it to the next line). Checked on spool lines before they are replayed.
 */
export function isCopyLine(line: string): boolean {
  if (!LINE_HEAD.test(line) || line.includes('\r')) return false
  let tabs = 0
  for (let i = line.indexOf('\t'); i !== -1; i = line.indexOf('\t', i + 1)) tabs++
  return tabs === COPY_COLUMNS.length - 1 && !BARE_BACKSLASH.test(line)
}

type LegacyRow = [string, string, string | null, string, string | null, string, string | null, string | null, number, number | null, unknown, unknown, unknown]

/**
 * A line of the JSON-array form spooled by earlier versions, as a COPY line; undefined when it is not one the old
 * INSERT could have taken (not 13 elements, no UUID id, no numeric created_at): those are dead-lettered as they are.
 */
export function fromLegacyLine(line: string): CopyLine | undefined {
  let a: unknown
  try {
    a = JSON.parse(line)
  } catch {
    return undefined
  }
  if (!Array.isArray(a) || a.length !== 13) return undefined
  const r = a as LegacyRow
  if (typeof r[0] !== 'string' || !UUID.test(r[0]) || typeof r[8] !== 'number') return undefined
  return toCopyLine({
    id: r[0], requestId: r[1], deploymentId: r[2], provider: r[3], model: r[4], status: r[5], keyId: r[6], promptVersionId: r[7],
    createdAt: r[8], completedAt: typeof r[9] === 'number' ? r[9] : null, request: r[10], response: r[11], metrics: r[12],
  })
}

/**
 * A spool line ready for COPY: a current line as it is, a legacy JSON-array line converted; undefined for anything
 * else (a foreign or corrupt line: the writer dead-letters it without sending it).
 */
export function readSpoolLine(line: string): CopyLine | undefined {
  if (line.charCodeAt(0) === 0x5b /* [ */) return fromLegacyLine(line)
  return isCopyLine(line) ? line : undefined
}

/**
 * The slow path, for a batch COPY refused with unique_violation (a replay of committed rows, or a request id
 * another row already holds that day): in one transaction, the lines are copied into a temporary staging table
 * (typed like execution_logs but without constraints, dropped at commit), inserted with ON CONFLICT DO NOTHING, and
 * the rows still absent by (id, created_at) (their request id was taken) are inserted again under
 * `<request id, 63 characters>~<row id>`.
 */
export const STAGING_TABLE = 'mcp_execution_logs_staging'
export const STAGING_DDL = `CREATE TEMP TABLE ${STAGING_TABLE} (
  id uuid, request_id text, deployment_id uuid, provider text, model text, status text, key_id uuid,
  prompt_version_id uuid, created_at timestamptz, completed_at timestamptz, request jsonb, response jsonb, metrics jsonb
) ON COMMIT DROP`
export const MERGE_SQL = `INSERT INTO execution_logs (${COLUMN_LIST})
SELECT ${COLUMN_LIST} FROM ${STAGING_TABLE}
ON CONFLICT DO NOTHING`
export const RENAME_SQL = `INSERT INTO execution_logs (${COLUMN_LIST})
SELECT s.id, left(s.request_id, 63) || '~' || s.id::text, s.deployment_id, s.provider, s.model, s.status, s.key_id,
  s.prompt_version_id, s.created_at, s.completed_at, s.request, s.response, s.metrics
FROM ${STAGING_TABLE} s
WHERE NOT EXISTS (SELECT 1 FROM execution_logs e WHERE e.id = s.id AND e.created_at = s.created_at)
ON CONFLICT DO NOTHING
RETURNING id::text AS id`

/** unique_violation: what a COPY of a replayed row or of a reused request id fails with. */
export const UNIQUE_VIOLATION = '23505'

/** The database refused the rows' content (data exception, constraint): retrying cannot help. */
export function isRowError(e: unknown): boolean {
  const s = sqlState(e)
  return s !== undefined && (s.startsWith('22') || s.startsWith('23'))
}
