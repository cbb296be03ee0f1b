/**
 * What every management endpoint shares: JSON bodies validated against the API's schemas (400 naming the field),
 * query parameters, keyset pagination cursors, ETag / If-Match, and ids (a malformed UUID is a 404, never a 500).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { GatewayError } from '../gateway/errors.ts'
import { checkContentType, parseJson, readBody } from '../gateway/http/body.ts'
import { epochOfIsoMatch } from '../gateway/iso-time.ts'
import type { Validator } from '../gateway/validate.ts'
import { sendJson } from './server.ts'

export const BODY_LIMIT = 1024 * 1024

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export function isUuid(s: string): boolean {
  return UUID.test(s)
}

export function notFound(object: string, id: string): GatewayError {
  return new GatewayError('MCP_ERR_ADMIN_NOT_FOUND', { object, id: JSON.stringify(id.slice(0, 100)) }, { details: 'admin.not_found' })
}

/** The id of a path, or a 404 when it cannot be one. */
export function requireUuid(object: string, id: string | undefined): string {
  if (id === undefined || !isUuid(id)) throw notFound(object, id ?? '')
  return id.toLowerCase()
}

export function unprocessable(reason: string, param?: string): GatewayError {
  return new GatewayError('MCP_ERR_ADMIN_UNPROCESSABLE', { reason }, { details: 'admin.unprocessable', ...(param !== undefined ? { param } : {}) })
}

export function conflict(reason: string, param?: string): GatewayError {
  return new GatewayError('MCP_ERR_ADMIN_CONFLICT', { reason }, { details: 'admin.conflict', ...(param !== undefined ? { param } : {}) })
}

export function bodyInvalid(reasons: readonly string[]): GatewayError {
  const first = reasons[0] ?? '(root): invalid'
  return new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason: reasons.slice(0, 5).join('; ') }, { param: first.split(':', 1)[0]!, details: 'request.body_invalid' })
}

/**
 * What PostgreSQL text and jsonb cannot store: U+0000, and a lone surrogate (`\ud800` without its pair: not
 * Unicode, so not UTF-8; jsonb refuses the escape, a text column would get U+FFFD in its place).
 */
function unstorable(s: string): string | undefined {
  if (s.includes('\0')) return 'must not contain NUL (\\u0000) characters'
  if (!s.isWellFormed()) return 'must be well-formed Unicode (it holds a lone surrogate, \\ud800 to \\udfff without its pair)'
  return undefined
}

/** The path (`metadata.k[1]`) of the first string or key PostgreSQL cannot store (unstorable), and why. */
function unstorablePath(v: unknown, path: string): string | undefined {
  if (typeof v === 'string') { const why = unstorable(v); return why === undefined ? undefined : `${path === '' ? '(root)' : path}: ${why}` }
  if (v === null || typeof v !== 'object') return undefined
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) { const p = unstorablePath(x, `${path}[${i}]`); if (p !== undefined) return p }
    return undefined
  }
  for (const [k, x] of Object.entries(v)) {
    const why = unstorable(k)
    if (why !== undefined) return `${path === '' ? '(root)' : path}: a key ${why}`
    const p = unstorablePath(x, path === '' ? k : `${path}.${k}`)
    if (p !== undefined) return p
  }
  return undefined
}

/**
 * A parsed body with a NUL character or a lone surrogate anywhere is a 400 naming the field. JSON can carry either only
 * as an escape (`\u0000`, `\ud800`: invalid UTF-8 bytes decode to U+FFFD), so bodies without one are not walked.
 */
export function checkStorable(buf: Buffer, json: unknown): void {
  if (!buf.includes('\\u0000') && !buf.includes('\\ud') && !buf.includes('\\uD')) return
  const reason = unstorablePath(json, '')
  if (reason !== undefined) throw bodyInvalid([reason])
}

/** Reads, parses and validates a JSON body. An empty body counts as `{}` when `emptyOk`. */
export async function readValid<T>(req: IncomingMessage, v: Validator<T>, emptyOk = false, limit = BODY_LIMIT): Promise<T> {
  checkContentType(req)
  const buf = await readBody(req, limit)
  const json = emptyOk && buf.length === 0 ? {} : parseJson(buf)
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw bodyInvalid(['(root): must be a JSON object'])
  if (!v(json)) throw bodyInvalid(v.errors())
  checkStorable(buf, json)
  return json
}

/** The query; a NUL character in a name or value is a 400 naming the parameter (PostgreSQL cannot compare it). */
export function queryOf(req: IncomingMessage): URLSearchParams {
  const url = req.url ?? '/'
  const q = url.indexOf('?')
  const params = new URLSearchParams(q === -1 ? '' : url.slice(q + 1))
  for (const [k, v] of params) {
    if (k.includes('\0') || v.includes('\0')) throw queryInvalid(k.replaceAll('\0', '\\u0000').slice(0, 100), 'must not contain NUL (\\u0000) characters')
  }
  return params
}

/** The query parameter `name` if it is one of `values`, undefined when absent; anything else is a 400 naming it. */
export function enumParam<T extends string>(q: URLSearchParams, name: string, values: readonly T[]): T | undefined {
  const v = q.get(name)
  if (v === null) return undefined
  if (!(values as readonly string[]).includes(v)) throw queryInvalid(name, `must be one of ${values.join(', ')}`)
  return v as T
}

export function queryInvalid(param: string, reason: string): GatewayError {
  return new GatewayError('MCP_ERR_ADMIN_QUERY_INVALID', { reason: `${param}: ${reason}` }, { param, details: 'admin.query_invalid' })
}

export interface Page {
  limit: number
  cursor: unknown[] | undefined
}

export const DEFAULT_LIMIT = 50
export const MAX_LIMIT = 200

/** `?limit=` (1..200, default 50) and `?cursor=` (opaque, as returned in `next_cursor`). */
export function pageOf(q: URLSearchParams): Page {
  const l = q.get('limit')
  let limit = DEFAULT_LIMIT
  if (l !== null) {
    if (!/^[0-9]{1,4}$/.test(l) || Number(l) < 1 || Number(l) > MAX_LIMIT) throw queryInvalid('limit', `must be an integer from 1 to ${MAX_LIMIT}`)
    limit = Number(l)
  }
  const c = q.get('cursor')
  let cursor: unknown[] | undefined
  if (c !== null && c !== '') {
    try {
      const parsed: unknown = JSON.parse(Buffer.from(c, 'base64url').toString('utf8'))
      if (!Array.isArray(parsed)) throw new Error('not a list')
      cursor = parsed
    } catch {
      throw queryInvalid('cursor', 'not a cursor issued by this API')
    }
  }
  return { limit, cursor }
}

export function encodeCursor(parts: readonly unknown[]): string {
  return Buffer.from(JSON.stringify(parts), 'utf8').toString('base64url')
}

/** `timestamptz::text` as PostgreSQL writes it (`2026-01-02 03:04:05.123456+00`). */
const PG_TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.\d{1,6})?[+-](?:0\d|1[0-5])(?::[0-5]\d){0,2}$/

/** A calendar date and time PostgreSQL accepts (no February 30th, no hour 25), in the form it writes them. */
function isPgTimestamp(s: string): boolean {
  const m = PG_TIMESTAMP.exec(s)
  if (!m) return false
  const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number]
  const t = new Date(Date.UTC(y, mo - 1, d, h, mi, se))
  return t.getUTCFullYear() === y && t.getUTCMonth() === mo - 1 && t.getUTCDate() === d && t.getUTCHours() === h && t.getUTCMinutes() === mi && t.getUTCSeconds() === se
}

const INT4_MAX = 2_147_483_647

/**
 * Cursor parts checked against their expected types, so a tampered cursor is a 400, not a SQL error (500):
 * `timestamp` is a `timestamptz::text`, `int4` a 32-bit integer column (version numbers), `integer` a bigint.
 */
export function cursorParts(c: unknown[] | undefined, shape: readonly ('timestamp' | 'uuid' | 'integer' | 'int4')[]): unknown[] | undefined {
  if (c === undefined) return undefined
  const ok = c.length === shape.length && shape.every((t, i) => {
    const v = c[i]
    if (t === 'integer') return Number.isSafeInteger(v)
    if (t === 'int4') return Number.isSafeInteger(v) && Math.abs(v as number) <= INT4_MAX
    if (typeof v !== 'string') return false
    return t === 'uuid' ? isUuid(v) : isPgTimestamp(v)
  })
  if (!ok) throw queryInvalid('cursor', 'not a cursor issued by this API')
  return c
}

export function etag(revision: number): string {
  return `"${revision}"`
}

/**
 * If-Match against the current revision. PUT and DELETE require it (428 without); actions (rollback, promote,
 * new versions) check it only when sent. `*` matches anything; weak tags (`W/"3"`) compare by their value.
 */
export function checkIfMatch(req: IncomingMessage, current: number, object: string, required: boolean, alternative?: string): void {
  const h = req.headers['if-match']
  if (h === undefined || h.trim() === '') {
    if (!required) return
    const e = new GatewayError('MCP_ERR_ADMIN_PRECONDITION_REQUIRED', { method: String(req.method), object }, { details: 'admin.if_match_missing' })
    if (alternative === undefined) throw e
    throw new GatewayError('MCP_ERR_ADMIN_PRECONDITION_REQUIRED', {}, { details: 'admin.if_match_missing', message: `${e.message}, ${alternative}` })
  }
  const tags = h.split(',').map((t) => t.trim().replace(/^W\//, ''))
  if (tags.includes('*') || tags.includes(etag(current))) return
  throw new GatewayError('MCP_ERR_ADMIN_PRECONDITION_FAILED', { given: h.slice(0, 100), current: etag(current), object }, { details: 'admin.if_match_failed' })
}

/** Whether an If-None-Match header lists `tag` (weak comparison, RFC 9110 13.1.2) or is `*`. */
function noneMatch(h: string, tag: string): boolean {
  return h.split(',').some((t) => { const v = t.trim(); return v === '*' || v.replace(/^W\//, '') === tag })
}

/** A JSON answer with the object's ETag; a GET whose If-None-Match holds it is a 304 without a body. */
export function sendWithEtag(res: ServerResponse, status: number, body: unknown, revision: number, headers: Record<string, string> = {}): void {
  const tag = etag(revision)
  const inm = res.req?.headers['if-none-match']
  if (status === 200 && (res.req?.method === 'GET' || res.req?.method === 'HEAD') && typeof inm === 'string' && noneMatch(inm, tag)) {
    if (res.headersSent) return
    res.writeHead(304, { ...headers, etag: tag })
    res.end()
    return
  }
  sendJson(res, status, body, { ...headers, etag: tag })
}

export function sendNoContent(res: ServerResponse): void {
  res.writeHead(204)
  res.end()
}

/** `?window=` as `<n>s|m|h|d`, at most 30 days; seconds. */
export function windowSeconds(q: URLSearchParams, def = '1h'): { text: string; seconds: number } {
  const text = q.get('window') ?? def
  const m = /^([1-9][0-9]{0,6})([smhd])$/.exec(text)
  const unit = { s: 1, m: 60, h: 3600, d: 86_400 } as const
  const seconds = m ? Number(m[1]) * unit[m[2] as keyof typeof unit] : NaN
  if (!m || seconds > 30 * 86_400) throw queryInvalid('window', 'must be <n>s, <n>m, <n>h or <n>d, at most 30d')
  return { text, seconds }
}

/** JSON with object keys sorted: jsonb does not keep the order a client sent (a no-op PUT compares values with it). */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (x !== null && typeof x === 'object' && !Array.isArray(x)
    ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    : x))
}

/** A date, optionally a time (`T` or space) with seconds, a fraction and an offset (`Z`, `+02:00`, `+0200`). */
const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:([Zz])|([+-])(\d{2}):?(\d{2}))?)?$/

/**
 * A time query parameter (`from`, `to` of the audit, executions and usage routes) as epoch ms; absent or empty:
 * undefined. ISO 8601, fields checked against the calendar (Feb 30 is a 400, not March 2), a missing offset is UTC.
 * Years 1 to 9999 only: year 0 parses but PostgreSQL refuses it, and past 9999 (through an offset) toISOString()
 * writes +010000-…, which PostgreSQL does not read: a 400 here, not a 500 from the query.
 */
export function timeQuery(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name)
  if (v === null || v === '') return undefined
  const m = ISO_TIME.exec(v)
  const t = m ? epochOfIsoMatch(m) : NaN
  const year = Number.isNaN(t) ? 0 : new Date(t).getUTCFullYear()
  if (year < 1 || year > 9999) throw queryInvalid(name, 'must be an ISO 8601 timestamp (2026-01-02T03:04:05Z)')
  return t
}
