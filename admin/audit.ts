/**
 * The audit log (append-only table, 0001 + 0006): who did what to which object, before and after, from where.
 *
 * - Management changes: `audit(tx, entry)` in the write's own transaction, so a change and its row commit or roll
 *   back together. A handler binds its transaction to the request (`bindAudit`): actor key id and label, team,
 *   source IP and request id then travel with every row the repositories write, without threading them through
 *   every call.
 * - Refused admin requests (401, 403, 404 for another team's object) and configuration reloads: `AuditQueue`,
 *   written in the background in small batches, bounded (a full queue drops and counts, never blocks a response).
 * - before / after are the API representations (never credentials, never key digests) and pass through `redact`
 *   anyway: secret-looking fields and anything shaped like an API key are replaced.
 */
import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { Logger } from 'pino'
import type { Metrics } from '../gateway/metrics.ts'
import type { Principal } from '../plugins/auth/scopes.ts'
import type { CopyData, Queryable } from '../store/types.ts'
import { isUuid } from './http.ts'

export interface AuditActor {
  /** api_keys.id, or null for actors without a key row. */
  keyId: string | null
  /** 'bootstrap', 'anonymous', 'system', or `key:<prefix>`. */
  label: string
  team: string | null
  ip: string | null
  requestId: string | null
}

export const SYSTEM_ACTOR: AuditActor = Object.freeze({ keyId: null, label: 'system', team: null, ip: null, requestId: null })

export interface AuditEntry {
  action: string
  objectType: string
  objectId: string
  before?: unknown
  after?: unknown
  requestId?: string | undefined
  /** The object's team; default: the bound context's, else the actor's. */
  team?: string | null | undefined
  actor?: AuditActor | undefined
}

/** What a bound transaction carries; `team` may be set by the handler once it knows the object's team. */
export interface AuditContext {
  actor: AuditActor
  team?: string | null
}

const contexts = new WeakMap<Queryable, AuditContext>()

/** A view of `tx` whose audit rows carry `ctx` (the transaction is the same). */
export function bindAudit(tx: Queryable, ctx: AuditContext): Queryable {
  const bound: Queryable = {
    query: <T,>(sql: string, params?: readonly unknown[]) => tx.query<T>(sql, params),
    exec: (sql: string) => tx.exec(sql),
    copyFrom: (table: string, columns: readonly string[], data: CopyData) => tx.copyFrom(table, columns, data),
  }
  contexts.set(bound, ctx)
  return bound
}

export function auditContextOf(tx: Queryable): AuditContext | undefined {
  return contexts.get(tx)
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/
const requestIds = new WeakMap<IncomingMessage, string>()

/** The request's id: its valid `x-request-id`, else one generated once per request. */
export function adminRequestId(req: IncomingMessage): string {
  let id = requestIds.get(req)
  if (id === undefined) {
    const h = req.headers['x-request-id']
    id = typeof h === 'string' && REQUEST_ID.test(h) ? h : randomUUID()
    requestIds.set(req, id)
  }
  return id
}

export function actorLabel(p: Principal): string {
  return p.prefix !== undefined ? `key:${p.prefix}` : p.keyId
}

export function auditActor(req: IncomingMessage, p: Principal | undefined): AuditActor {
  return {
    keyId: p && isUuid(p.keyId) ? p.keyId : null,
    label: p ? actorLabel(p) : 'unauthenticated',
    team: p?.team ?? null,
    ip: req.socket.remoteAddress ?? null,
    requestId: adminRequestId(req),
  }
}

// ---------- redaction ----------

const SECRET_FIELD = /^(key|key_hash|hash|secret|password|passphrase|token|access_token|refresh_token|api_?key|apikey|authorization|proxy-authorization|cookie|set-cookie|x-api-key|api-key|private_key|client_secret)$/i
const KEY_SHAPED = /mcp_([0-9A-Za-z]{12})_[A-Za-z0-9_-]{43}/g

/** A deep copy with secret-looking fields replaced and API-key-shaped strings cut to their public prefix. */
export function redact(v: unknown, depth = 0): unknown {
  if (typeof v === 'string') return v.replace(KEY_SHAPED, 'mcp_$1_[redacted]')
  if (v === null || typeof v !== 'object' || depth > 20) return v
  if (v instanceof Date) return v.toISOString()
  if (Array.isArray(v)) return v.map((x) => redact(x, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    out[k] = SECRET_FIELD.test(k) && x !== null && (typeof x === 'string' || typeof x === 'object') ? '[redacted]' : redact(x, depth + 1)
  }
  return out
}

// ---------- writing ----------

interface Row {
  actorKeyId: string | null; actor: string; action: string; objectType: string; objectId: string | null
  before: unknown; after: unknown; requestId: string | null; ip: string | null; team: string | null
}

function rowOf(e: AuditEntry, ctx: AuditContext | undefined): Row {
  const actor = e.actor ?? ctx?.actor ?? SYSTEM_ACTOR
  const team = e.team !== undefined ? e.team : ctx?.team !== undefined ? ctx.team : actor.team
  return {
    actorKeyId: actor.keyId, actor: actor.label, action: e.action, objectType: e.objectType, objectId: e.objectId.slice(0, 100),
    before: e.before, after: e.after, requestId: e.requestId ?? actor.requestId, ip: actor.ip, team,
  }
}

const COLUMNS = '(actor_key_id, actor, action, object_type, object_id, before, after, request_id, source_ip, team)'
const json = (v: unknown): string | null => (v === undefined ? null : JSON.stringify(redact(v)))
const params = (r: Row): unknown[] => [r.actorKeyId, r.actor.slice(0, 100), r.action.slice(0, 50), r.objectType.slice(0, 50), r.objectId, json(r.before), json(r.after), r.requestId, r.ip, r.team]

/** One audit row in the caller's transaction. */
export async function audit(tx: Queryable, e: AuditEntry): Promise<void> {
  await tx.query(`INSERT INTO audit_log ${COLUMNS} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::inet, $10)`, params(rowOf(e, auditContextOf(tx))))
}

export interface AuditQueueOptions {
  store: Queryable
  log: Logger
  metrics?: Metrics
  /** Rows waiting at most; more are dropped (counted). Default 1000. */
  maxPending?: number
  /** Default 200 ms. */
  flushIntervalMs?: number
}

/** Background audit rows (refusals, reloads): batched, bounded, never blocking the request that caused them. */
export class AuditQueue {
  readonly #store: Queryable
  readonly #log: Logger
  readonly #max: number
  readonly #interval: number
  #pending: Row[] = []
  #timer: NodeJS.Timeout | undefined
  #flushing: Promise<void> = Promise.resolve()
  #closed = false
  readonly counters = { written: 0, dropped: 0, failed: 0 }
  #countDropped: () => void = () => {}
  #countFailed: (n: number) => void = () => {}

  constructor(o: AuditQueueOptions) {
    this.#store = o.store
    this.#log = o.log
    this.#max = o.maxPending ?? 1000
    this.#interval = o.flushIntervalMs ?? 200
    if (o.metrics) {
      const dropped = o.metrics.counter('mcp_audit_dropped_total', 'Background audit rows (refusals, reloads) dropped: queue full or database unavailable', ['reason'])
      this.#countDropped = () => dropped.labels('queue_full').inc()
      this.#countFailed = (n) => dropped.labels('write_failed').inc(n)
    }
  }

  push(e: AuditEntry): void {
    if (this.#closed) return
    if (this.#pending.length >= this.#max) {
      this.counters.dropped++
      this.#countDropped()
      return
    }
    this.#pending.push(rowOf(e, undefined))
    this.#timer ??= setTimeout(() => { this.#timer = undefined; void this.flush() }, this.#interval)
    this.#timer.unref?.()
  }

  /** Writes what is pending (serialized with earlier flushes). */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(() => this.#write())
    return this.#flushing
  }

  async #write(): Promise<void> {
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0, 100)
      const values: string[] = []
      const args: unknown[] = []
      for (const r of batch) {
        const p = params(r)
        const o = args.length
        values.push(`(${p.map((_, i) => `$${o + i + 1}${i === 8 ? '::inet' : ''}`).join(', ')})`)
        args.push(...p)
      }
      try {
        await this.#store.query(`INSERT INTO audit_log ${COLUMNS} VALUES ${values.join(', ')}`, args)
        this.counters.written += batch.length
      } catch (err) {
        this.counters.failed += batch.length
        this.#countFailed(batch.length)
        this.#log.warn({ err, rows: batch.length }, 'audit: background rows could not be written (dropped)')
      }
    }
  }

  async close(): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    await this.flush()
    this.#closed = true
  }
}
