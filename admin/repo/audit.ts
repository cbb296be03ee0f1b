/** Reading the audit log: newest first, filtered, keyset-paginated on the row id. */
import type { Queryable } from '../../store/types.ts'
import { cursorParts, encodeCursor, type Page } from '../http.ts'
import type { PageResult } from './prompts.ts'

export interface AuditView {
  id: number; created_at: Date; actor_key_id: string | null; actor: string | null; action: string; object_type: string
  object_id: string | null; team: string | null; before: unknown; after: unknown; request_id: string | null; source_ip: string | null
}

export interface AuditFilter {
  actorKeyId?: string | undefined
  actor?: string | undefined
  /** Exact, or a prefix when it ends in `*` (`key.*`). */
  action?: string | undefined
  objectType?: string | undefined
  objectId?: string | undefined
  team?: string | undefined
  from?: string | undefined
  to?: string | undefined
}

export async function listAudit(q: Queryable, f: AuditFilter, page: Page): Promise<PageResult<AuditView>> {
  const c = cursorParts(page.cursor, ['integer'])
  const action = f.action?.endsWith('*') ? undefined : f.action
  const actionPrefix = f.action?.endsWith('*') ? f.action.slice(0, -1) : undefined
  const { rows } = await q.query<AuditView>(
    `SELECT id, created_at, actor_key_id, actor, action, object_type, object_id, team, before, after, request_id, host(source_ip) AS source_ip
     FROM audit_log
     WHERE ($1::uuid IS NULL OR actor_key_id = $1) AND ($2::text IS NULL OR actor = $2)
       AND ($3::text IS NULL OR action = $3) AND ($4::text IS NULL OR starts_with(action, $4))
       AND ($5::text IS NULL OR object_type = $5) AND ($6::text IS NULL OR object_id = $6)
       AND ($7::text IS NULL OR team = $7)
       AND ($8::timestamptz IS NULL OR created_at >= $8) AND ($9::timestamptz IS NULL OR created_at < $9)
       AND ($10::bigint IS NULL OR id < $10)
     ORDER BY id DESC LIMIT $11`,
    [f.actorKeyId ?? null, f.actor ?? null, action ?? null, actionPrefix ?? null, f.objectType ?? null, f.objectId ?? null, f.team ?? null,
      f.from ?? null, f.to ?? null, c?.[0] ?? null, page.limit + 1],
  )
  const more = rows.length > page.limit
  const data = rows.slice(0, page.limit).map((r) => ({ ...r, id: Number(r.id) }))
  const last = data.at(-1)
  return { data, next_cursor: more && last ? encodeCursor([last.id]) : null }
}
