/**
 * API keys:
 *   POST /keys · GET /keys (?team, ?owner, ?role, ?status, paginated) · GET /keys/{id} · PATCH /keys/{id}
 *   DELETE /keys/{id} (revoke) · POST /keys/{id}/rotate {overlap_seconds, expires_at}
 *
 * The whole key is in the creation and rotation answers only (`Cache-Control: no-store`); the database keeps
 * sha256(secret). A key never creates, rotates, changes or revokes a key broader than itself (role, scopes, limits,
 * budgets, expiry: admin/keys.ts), and sees only keys of its team (another team's key: 404). A change is in the
 * snapshot before the answer, and on every other instance within a poll (~1 s).
 */
import type { IncomingMessage } from 'node:http'
import { KEY_RECORD_ROUTES, type Principal } from '../../plugins/auth/scopes.ts'
import type { Queryable } from '../../store/types.ts'
import { auditActor, bindAudit } from '../audit.ts'
import type { ControlPlane } from '../control-plane.ts'
import { bodyInvalid, enumParam, notFound, pageOf, queryInvalid, queryOf, requireUuid, sendNoContent, unprocessable } from '../http.ts'
import { checkActOn, checkMint, keyValidators, scopesOf, type KeyCreate } from '../keys.ts'
import { authorize, hidden, isGlobal, readChecked, teamFilter, visible, writeTeam, WRITE_RULES, ROLES } from '../rbac.ts'
import { createKey, findKey, listKeys, powersOf, revokeKey, rotateKey, updateKey, type KeyChange, type KeyView } from '../repo/keys.ts'
import { sendJson, type AdminServer } from '../server.ts'
import { actorLabel } from '../audit.ts'

const BASE = '/api/v1/mcp'
const NO_STORE = { 'cache-control': 'no-store' }
const STATUSES = ['active', 'rotating', 'expired', 'revoked']

function expiry(v: string | null | undefined, field = 'expires_at'): Date | null | undefined {
  if (v === undefined || v === null) return v
  const d = new Date(v)
  // The date-time format admits leap seconds (23:59:60), which no Date holds: refused here, not by the database (a 500).
  if (Number.isNaN(d.getTime())) throw bodyInvalid([`${field}: not a representable date-time (leap seconds are not supported)`])
  // Years 1 to 9999 in UTC, as every date-time of this API (timeQuery): an offset can carry 9999-12-31 into year 10000,
  // which PGlite refused (a 500) and PostgreSQL stored, answered as +010000-…, a string the API's own format refuses.
  const year = d.getUTCFullYear()
  if (year < 1 || year > 9999) throw bodyInvalid([`${field}: the year in UTC must be between 1 and 9999 (${d.toISOString()})`])
  if (d.getTime() <= Date.now()) throw unprocessable(`${field}: must be in the future`, field)
  return d
}

/** Deployment scopes must name deployments the caller can see. */
async function checkDeployments(q: Queryable, p: Principal, ids: readonly string[] | null): Promise<void> {
  if (ids === null || ids.length === 0) return
  const { rows } = await q.query<{ id: string; team: string | null }>(
    `SELECT d.id, p.team FROM deployments d JOIN prompts p ON p.id = d.prompt_id
     WHERE d.id IN (SELECT jsonb_array_elements_text($1::jsonb)::uuid)`,
    [JSON.stringify(ids)],
  )
  const seen = new Map(rows.map((r) => [r.id, r.team]))
  for (const [i, id] of ids.entries()) {
    if (!seen.has(id) || !visible(p, seen.get(id))) throw unprocessable(`deployment ${id} does not exist`, `scopes.deployments[${i}]`)
  }
}

/**
 * Environment scopes must name configured environments (matched exactly, as execute matches them): a key scoped to
 * `prod` where the environment is `production` could never execute anything, and nothing would say why.
 */
function checkEnvironments(names: readonly string[] | null, configured: readonly string[]): void {
  if (names === null) return
  for (const [i, env] of names.entries()) {
    if (!configured.includes(env)) throw unprocessable(`unknown environment '${env}' (configured: ${configured.join(', ')})`, `scopes.environments[${i}]`)
  }
}

/** The key, locked when writing; another team's key is a 404 like a missing one. */
async function loadVisible(q: Queryable, p: Principal, id: string, lock: boolean): Promise<KeyView> {
  const k = await findKey(q, id, lock)
  if (!k) throw notFound('api key', id)
  if (!visible(p, k.team)) throw hidden('api key', id)
  return k
}


/**
 * What of a key's limits and budgets the running pipeline does not hold: a route whose chain authenticates keys
 * (`auth`) but lacks `rate-limit` (limits) or `budget` (budgets) lets the key past them there. One sentence per plugin,
 * naming the routes; empty when every route holds them (the shipped chains do). A chain of the operator's own is
 * valid config, so this warns in the answer instead of refusing the key.
 */
export function unheldWarnings(routes: ReadonlyMap<string, readonly string[]>, limits: Readonly<Record<string, unknown>>, budgets: Readonly<Record<string, unknown>>): string[] {
  const out: string[] = []
  // A key's own limits and budgets apply to model calls only (not GET /v1/models, not count_tokens).
  const lacking = (plugin: string): string[] =>
    [...routes].filter(([name, plugins]) => KEY_RECORD_ROUTES.has(name) && plugins.includes('auth') && !plugins.includes(plugin)).map(([name]) => name).sort()
  if (Object.keys(limits).length > 0) {
    const r = lacking('rate-limit')
    if (r.length > 0) out.push(`limits are not held on route${r.length > 1 ? 's' : ''} ${r.join(', ')}: ${r.length > 1 ? 'their chains have' : 'its chain has'} no rate-limit plugin after auth (docs/rbac.md)`)
  }
  if (Object.keys(budgets).length > 0) {
    const r = lacking('budget')
    if (r.length > 0) out.push(`budgets are not held on route${r.length > 1 ? 's' : ''} ${r.join(', ')}: ${r.length > 1 ? 'their chains have' : 'its chain has'} no budget plugin after auth (docs/rbac.md)`)
  }
  return out
}

/** The key's view with `warnings` when some of its limits or budgets are not held (unheldWarnings). */
function withWarnings<T extends { limits: Readonly<Record<string, unknown>>; budgets: Readonly<Record<string, unknown>> }>(view: T, routes: (() => ReadonlyMap<string, readonly string[]>) | undefined): T & { warnings?: string[] } {
  const w = routes ? unheldWarnings(routes(), view.limits, view.budgets) : []
  return w.length > 0 ? { ...view, warnings: w } : view
}

/**
 * `routes`: each data-plane route's plugin names in the running pipeline, for the warnings of the creation, change and
 * rotation answers (unheldWarnings).
 */
export function registerKeyRoutes(admin: AdminServer, cp: ControlPlane, routes?: () => ReadonlyMap<string, readonly string[]>): void {
  const tx = (req: IncomingMessage, p: Principal, q: Queryable, team?: string | null): Queryable =>
    bindAudit(q, { actor: auditActor(req, p), ...(team !== undefined ? { team } : {}) })

  admin.route('POST', `${BASE}/keys`, async (req, res) => {
    const p = authorize(req, 'keys.write')
    const body: KeyCreate = await readChecked(req, keyValidators.create, WRITE_RULES['POST /keys']!)
    const team = writeTeam(p, body.team)
    const role = body.role ?? 'invoker'
    if (role !== 'admin' && team === null) throw unprocessable('team: every key other than an admin key belongs to a team', 'team')
    const scopes = scopesOf(body.scopes)
    const limits = body.limits ?? {}
    const budgets = body.budgets ?? {}
    const expiresAt = expiry(body.expires_at) ?? null
    checkMint({ role, scopes, limits, budgets, expiresAt: expiresAt?.getTime() ?? null }, p)
    checkEnvironments(scopes.environments, cp.environments)
    const created = await cp.write(async (q) => {
      await checkDeployments(q, p, scopes.deployments)
      return createKey(tx(req, p, q, team), {
        name: body.name ?? null, owner: body.owner ?? actorLabel(p), team, role, scopes, limits, budgets,
        metadata: body.metadata ?? {}, expiresAt, createdBy: auditActor(req, p).keyId,
      })
    })
    sendJson(res, 201, withWarnings({ ...created.view, key: created.key }, routes), { ...NO_STORE, location: `${BASE}/keys/${created.view.id}` })
  })

  admin.route('GET', `${BASE}/keys`, async (req, res) => {
    const p = authorize(req, 'keys.read')
    const q = queryOf(req)
    const page = pageOf(q)
    const status = enumParam(q, 'status', STATUSES)
    const role = enumParam(q, 'role', ROLES)
    const own = teamFilter(p)
    const asked = q.get('team') ?? undefined
    if (own !== undefined && asked !== undefined && asked !== own) { sendJson(res, 200, { data: [], next_cursor: null }); return }
    sendJson(res, 200, await cp.read((db) => listKeys(db, { team: own ?? asked, owner: q.get('owner') ?? undefined, role, status }, page)))
  })

  admin.route('GET', `${BASE}/keys/{id}`, async (req, res, params) => {
    req.resume()
    const p = authorize(req, 'keys.read')
    const id = requireUuid('api key', params['id'])
    sendJson(res, 200, await cp.read((db) => loadVisible(db, p, id, false)))
  })

  admin.route('PATCH', `${BASE}/keys/{id}`, async (req, res, params) => {
    const p = authorize(req, 'keys.write')
    const id = requireUuid('api key', params['id'])
    const body: KeyCreate = await readChecked(req, keyValidators.update, WRITE_RULES['PATCH /keys/{id}']!)
    const after = await cp.write(async (q) => {
      const before = await loadVisible(q, p, id, true)
      checkActOn(powersOf(before), p, 'change', id)
      const change: KeyChange = {}
      if (body.name !== undefined) change.name = body.name
      if (body.owner !== undefined) change.owner = body.owner
      if (body.metadata !== undefined) change.metadata = body.metadata
      if (body.role !== undefined) change.role = body.role
      if (body.team !== undefined) change.team = isGlobal(p) ? body.team : writeTeam(p, body.team)
      if (body.scopes !== undefined) change.scopes = scopesOf(body.scopes)
      if (body.limits !== undefined) change.limits = body.limits
      if (body.budgets !== undefined) change.budgets = body.budgets
      if (body.expires_at !== undefined) change.expiresAt = expiry(body.expires_at) ?? null
      const role = change.role ?? before.role
      const team = change.team !== undefined ? change.team : before.team
      if (role !== 'admin' && team === null) throw unprocessable('team: every key other than an admin key belongs to a team', 'team')
      const scopes = change.scopes ?? before.scopes
      const expiresAt = change.expiresAt !== undefined ? change.expiresAt : before.expires_at
      const ends = [expiresAt, before.rotation_overlap_until].filter((d): d is Date => d !== null).map((d) => d.getTime())
      checkMint({ role, scopes, limits: change.limits ?? before.limits, budgets: change.budgets ?? before.budgets, expiresAt: ends.length > 0 ? Math.min(...ends) : null }, p)
      if (change.scopes) {
        checkEnvironments(scopes.environments, cp.environments)
        await checkDeployments(q, p, scopes.deployments)
      }
      return updateKey(tx(req, p, q, team), before, change)
    })
    sendJson(res, 200, body.limits !== undefined || body.budgets !== undefined ? withWarnings(after, routes) : after)
  })

  admin.route('DELETE', `${BASE}/keys/{id}`, async (req, res, params) => {
    req.resume()
    const p = authorize(req, 'keys.write')
    const id = requireUuid('api key', params['id'])
    await cp.write(async (q) => {
      const before = await loadVisible(q, p, id, true)
      checkActOn(powersOf(before), p, 'revoke', id)
      await revokeKey(tx(req, p, q, before.team), before)
    })
    sendNoContent(res)
  })

  admin.route('POST', `${BASE}/keys/{id}/rotate`, async (req, res, params) => {
    const p = authorize(req, 'keys.write')
    const id = requireUuid('api key', params['id'])
    const body = await readChecked(req, keyValidators.rotate, WRITE_RULES['POST /keys/{id}/rotate']!, true)
    const r = await cp.write(async (q) => {
      const old = await loadVisible(q, p, id, true)
      checkActOn(powersOf(old), p, 'rotate', id)
      const expiresAt = body.expires_at !== undefined ? expiry(body.expires_at) ?? null : old.expires_at
      checkMint({ ...powersOf(old), expiresAt: expiresAt?.getTime() ?? null }, p)
      return rotateKey(tx(req, p, q, old.team), old, body.overlap_seconds ?? 3600, expiresAt, auditActor(req, p).keyId)
    })
    sendJson(res, 201, { ...withWarnings(r.view, routes), key: r.key, rotated: { id: r.old.id, status: r.old.status, rotation_overlap_until: r.old.rotation_overlap_until, revoked_at: r.old.revoked_at } }, { ...NO_STORE, location: `${BASE}/keys/${r.view.id}` })
  })
}
