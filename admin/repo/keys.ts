/**
 * api_keys: creation (the whole key is returned once, only sha256(secret) is stored), reads (never the digest),
 * update, revocation (rows are never deleted: records outlive keys) and rotation with an overlap window. Every
 * change writes its audit row in the same transaction, and bumps control_plane_version (0006 trigger), so every
 * instance's snapshot follows within a poll.
 */
import { generateKey } from '../../plugins/auth/api-key.ts'
import type { Role } from '../../plugins/auth/roles.ts'
import type { KeyBudgets, KeyLimits, KeyScopes } from '../../plugins/auth/scopes.ts'
import type { Queryable } from '../../store/types.ts'
import { audit } from '../audit.ts'
import type { KeyPowers } from '../keys.ts'
import { conflict, cursorParts, encodeCursor, type Page } from '../http.ts'
import type { PageResult } from './prompts.ts'

export type KeyStatus = 'active' | 'rotating' | 'expired' | 'revoked'

export interface KeyView {
  id: string; prefix: string; name: string | null; owner: string; team: string | null; role: Role
  scopes: KeyScopes; limits: KeyLimits; budgets: KeyBudgets; metadata: Record<string, unknown>
  expires_at: Date | null; revoked_at: Date | null; rotated_from_id: string | null; rotation_overlap_until: Date | null
  last_used_at: Date | null; created_by: string | null; created_at: Date; updated_at: Date; status: KeyStatus
}

interface Row {
  id: string; prefix: string; name: string | null; owner: string; team: string | null; role: Role
  environments: string[] | null; allowed_models: string[] | null; allowed_aliases: string[] | null; allowed_deployments: string[] | null
  limits: KeyLimits | null; budgets: KeyBudgets | null; metadata: Record<string, unknown> | null
  expires_at: Date | null; revoked_at: Date | null; rotated_from_id: string | null; rotation_overlap_until: Date | null
  last_used_at: Date | null; created_by: string | null; created_at: Date; updated_at: Date; status: KeyStatus; cursor_at: string
}

const STATUS = `CASE WHEN revoked_at IS NOT NULL THEN 'revoked'
  WHEN (expires_at IS NOT NULL AND expires_at <= now()) OR (rotation_overlap_until IS NOT NULL AND rotation_overlap_until <= now()) THEN 'expired'
  WHEN rotation_overlap_until IS NOT NULL THEN 'rotating' ELSE 'active' END`

const COLUMNS = `id, prefix, name, owner, team, role, environments::text[] AS environments, allowed_models::text[] AS allowed_models,
  allowed_aliases::text[] AS allowed_aliases, allowed_deployments::text[] AS allowed_deployments, limits, budgets, metadata,
  expires_at, revoked_at, rotated_from_id, rotation_overlap_until, last_used_at, created_by, created_at, updated_at,
  ${STATUS} AS status, created_at::text AS cursor_at`

export function keyView(r: Row): KeyView {
  return {
    id: r.id, prefix: r.prefix, name: r.name, owner: r.owner, team: r.team, role: r.role,
    scopes: { environments: r.environments, models: r.allowed_models, aliases: r.allowed_aliases, deployments: r.allowed_deployments },
    limits: r.limits ?? {}, budgets: r.budgets ?? {}, metadata: r.metadata ?? {},
    expires_at: r.expires_at, revoked_at: r.revoked_at, rotated_from_id: r.rotated_from_id, rotation_overlap_until: r.rotation_overlap_until,
    last_used_at: r.last_used_at, created_by: r.created_by, created_at: r.created_at, updated_at: r.updated_at, status: r.status,
  }
}

export function powersOf(v: KeyView): KeyPowers {
  const ends = [v.expires_at, v.rotation_overlap_until].filter((d): d is Date => d !== null).map((d) => d.getTime())
  return { role: v.role, scopes: v.scopes, limits: v.limits, budgets: v.budgets, expiresAt: ends.length > 0 ? Math.min(...ends) : null }
}

export interface NewKeyInput {
  name: string | null; owner: string; team: string | null; role: Role; scopes: KeyScopes; limits: KeyLimits; budgets: KeyBudgets
  metadata: Record<string, unknown>; expiresAt: Date | null; createdBy: string | null; rotatedFromId?: string
}

const arr = (v: readonly string[] | null): string | null => (v === null ? null : JSON.stringify(v))

/** A jsonb list parameter as a SQL array: NULL stays NULL (unrestricted), [] stays an empty array (nothing allowed). */
function sqlArray(n: number, type: 'text' | 'uuid'): string {
  return `CASE WHEN $${n}::jsonb IS NULL THEN NULL ELSE COALESCE((SELECT array_agg(x::${type} ORDER BY i) FROM jsonb_array_elements_text($${n}::jsonb) WITH ORDINALITY t(x, i)), '{}'::${type}[]) END`
}

async function insertKey(tx: Queryable, k: NewKeyInput): Promise<{ view: KeyView; key: string }> {
  for (;;) {
    const g = generateKey()
    const { rows } = await tx.query<Row>(
      `INSERT INTO api_keys (prefix, key_hash, name, owner, team, role, environments, allowed_models, allowed_aliases, allowed_deployments,
         limits, budgets, metadata, expires_at, created_by, rotated_from_id)
       VALUES ($1, $2, $3, $4, $5, $6, ${sqlArray(7, 'text')}, ${sqlArray(8, 'text')}, ${sqlArray(9, 'text')}, ${sqlArray(10, 'uuid')},
         $11, $12, $13, $14, $15, $16)
       ON CONFLICT (prefix) DO NOTHING RETURNING ${COLUMNS}`,
      [g.prefix, g.hashHex, k.name, k.owner, k.team, k.role, arr(k.scopes.environments), arr(k.scopes.models), arr(k.scopes.aliases),
        arr(k.scopes.deployments), JSON.stringify(k.limits), JSON.stringify(k.budgets), JSON.stringify(k.metadata), k.expiresAt,
        k.createdBy, k.rotatedFromId ?? null],
    )
    // A taken prefix (about 2^-71 per pair of keys): draw again.
    if (rows[0]) return { view: keyView(rows[0]), key: g.key }
  }
}

export async function createKey(tx: Queryable, k: NewKeyInput): Promise<{ view: KeyView; key: string }> {
  const created = await insertKey(tx, k)
  await audit(tx, { action: 'key.create', objectType: 'api_key', objectId: created.view.id, after: created.view, team: created.view.team })
  return created
}

export async function findKey(q: Queryable, id: string, lock = false): Promise<KeyView | undefined> {
  const { rows } = await q.query<Row>(`SELECT ${COLUMNS} FROM api_keys WHERE id = $1${lock ? ' FOR UPDATE' : ''}`, [id])
  return rows[0] ? keyView(rows[0]) : undefined
}

export interface KeyFilter { team?: string | undefined; owner?: string | undefined; role?: string | undefined; status?: string | undefined }

export async function listKeys(q: Queryable, f: KeyFilter, page: Page): Promise<PageResult<KeyView>> {
  const c = cursorParts(page.cursor, ['timestamp', 'uuid'])
  const { rows } = await q.query<Row>(
    `SELECT * FROM (SELECT ${COLUMNS} FROM api_keys) k
     WHERE ($1::text IS NULL OR team = $1) AND ($2::text IS NULL OR owner = $2) AND ($3::text IS NULL OR role = $3)
       AND ($4::text IS NULL OR status = $4)
       AND ($5::timestamptz IS NULL OR (created_at, id) < ($5::timestamptz, $6::uuid))
     ORDER BY created_at DESC, id DESC LIMIT $7`,
    [f.team ?? null, f.owner ?? null, f.role ?? null, f.status ?? null, c?.[0] ?? null, c?.[1] ?? null, page.limit + 1],
  )
  const more = rows.length > page.limit
  const data = rows.slice(0, page.limit)
  const last = data.at(-1)
  return { data: data.map(keyView), next_cursor: more && last ? encodeCursor([last.cursor_at, last.id]) : null }
}

export interface KeyChange {
  name?: string | null; owner?: string; team?: string | null; role?: Role; scopes?: KeyScopes; limits?: KeyLimits; budgets?: KeyBudgets
  metadata?: Record<string, unknown>; expiresAt?: Date | null
}

export async function updateKey(tx: Queryable, before: KeyView, c: KeyChange): Promise<KeyView> {
  const s = c.scopes ?? before.scopes
  const { rows } = await tx.query<Row>(
    `UPDATE api_keys SET name = $2, owner = $3, team = $4, role = $5,
       environments = ${sqlArray(6, 'text')}, allowed_models = ${sqlArray(7, 'text')},
       allowed_aliases = ${sqlArray(8, 'text')}, allowed_deployments = ${sqlArray(9, 'uuid')},
       limits = $10, budgets = $11, metadata = $12, expires_at = $13, updated_at = now()
     WHERE id = $1 RETURNING ${COLUMNS}`,
    [before.id, c.name !== undefined ? c.name : before.name, c.owner ?? before.owner, c.team !== undefined ? c.team : before.team, c.role ?? before.role,
      arr(s.environments), arr(s.models), arr(s.aliases), arr(s.deployments),
      JSON.stringify(c.limits ?? before.limits), JSON.stringify(c.budgets ?? before.budgets), JSON.stringify(c.metadata ?? before.metadata),
      c.expiresAt !== undefined ? c.expiresAt : before.expires_at],
  )
  const after = keyView(rows[0]!)
  await audit(tx, { action: 'key.update', objectType: 'api_key', objectId: before.id, before, after, team: after.team })
  return after
}

/** Revokes at once; an already revoked key is left as it is (false). */
export async function revokeKey(tx: Queryable, before: KeyView): Promise<boolean> {
  if (before.revoked_at !== null) return false
  const { rows } = await tx.query<Row>(`UPDATE api_keys SET revoked_at = now(), updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`, [before.id])
  await audit(tx, { action: 'key.revoke', objectType: 'api_key', objectId: before.id, before, after: keyView(rows[0]!), team: before.team })
  return true
}

/**
 * A new key with the old one's attributes; the old one keeps working for `overlapSeconds` (0: revoked now).
 * A revoked key, or one already rotated, cannot be rotated (409): rotate its successor.
 */
export async function rotateKey(tx: Queryable, old: KeyView, overlapSeconds: number, expiresAt: Date | null, createdBy: string | null): Promise<{ view: KeyView; key: string; old: KeyView }> {
  if (old.revoked_at !== null || old.status === 'expired') throw conflict(`key ${old.id} is ${old.revoked_at !== null ? 'revoked' : 'expired'}: create a new key instead`)
  if (old.rotation_overlap_until !== null) throw conflict(`key ${old.id} was already rotated: rotate its successor`)
  const created = await insertKey(tx, {
    name: old.name, owner: old.owner, team: old.team, role: old.role, scopes: old.scopes, limits: old.limits, budgets: old.budgets,
    metadata: old.metadata, expiresAt, createdBy, rotatedFromId: old.id,
  })
  const { rows } = overlapSeconds === 0
    ? await tx.query<Row>(`UPDATE api_keys SET revoked_at = now(), updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`, [old.id])
    : await tx.query<Row>(`UPDATE api_keys SET rotation_overlap_until = now() + make_interval(secs => $2), updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`, [old.id, overlapSeconds])
  const oldAfter = keyView(rows[0]!)
  await audit(tx, { action: 'key.rotate', objectType: 'api_key', objectId: old.id, before: old, after: { old: oldAfter, new: created.view }, team: old.team })
  return { ...created, old: oldAfter }
}
