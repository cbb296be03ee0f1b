/**
 * Access control of the management API (docs/rbac.md is generated from the tables here; a test checks it).
 *
 * - Roles × actions: plugins/auth/roles.ts (MATRIX), shared with the data plane (`invoke`).
 * - Routes → actions: ROUTE_ACTIONS. The admin gate refuses a principal whose role lacks the route's action
 *   before the handler runs (403); a route missing from the table is admin-only (fail closed). Every handler of
 *   prompts, deployments, providers, targets, keys and audit checks its action again (`authorize`), and scopes
 *   what it touches to the caller's team.
 * - Teams: the admin role is global; every other principal belongs to one team and sees only objects of that team
 *   (prompts by their `team`, deployments by their prompt's, keys by theirs, audit rows by theirs). Another team's
 *   object answers exactly as a missing one: 404 (never 403, so ids cannot be probed). Providers, targets,
 *   config and metrics are global (not team-owned): their write actions are held by global-minded roles only.
 * - Fields: WRITE_RULES per body kind. Read-only fields are a 422 naming the field; fields the caller's role may
 *   not set are a 403 naming it (no mass assignment of role, team, scopes, limits, budgets).
 */
import type { IncomingMessage } from 'node:http'
import { GatewayError } from '../gateway/errors.ts'
import { checkContentType, parseJson, readBody } from '../gateway/http/body.ts'
import type { Validator } from '../gateway/validate.ts'
import { ACTIONS, MATRIX, ROLES, roleCan, type Action } from '../plugins/auth/roles.ts'
import type { Principal } from '../plugins/auth/scopes.ts'
import { BODY_LIMIT, bodyInvalid, checkStorable } from './http.ts'

export { ACTIONS, MATRIX, ROLES, roleCan, roleWithin, type Action, type Role } from '../plugins/auth/roles.ts'
export type { Principal } from '../plugins/auth/scopes.ts'

const BASE = '/api/v1/mcp'

/** `<METHOD> <path pattern>` → the action it needs. */
export const ROUTE_ACTIONS: Readonly<Record<string, Action>> = {
  'GET /metrics': 'metrics.read',
  [`GET ${BASE}/config`]: 'config.read',
  [`GET ${BASE}/instances`]: 'config.read',
  [`POST ${BASE}/config/reload`]: 'config.reload',
  [`GET ${BASE}/openapi.json`]: 'openapi.read',
  [`POST ${BASE}/execute`]: 'invoke',
  [`POST ${BASE}/prompts`]: 'prompts.write',
  [`GET ${BASE}/prompts`]: 'prompts.read',
  [`GET ${BASE}/prompts/{id}`]: 'prompts.read',
  [`POST ${BASE}/prompts/{id}/versions`]: 'prompts.write',
  [`GET ${BASE}/prompts/{id}/versions`]: 'prompts.read',
  [`GET ${BASE}/prompts/{id}/versions/{version}`]: 'prompts.read',
  [`GET ${BASE}/environments`]: 'deployments.read',
  [`POST ${BASE}/deployments`]: 'deployments.write',
  [`GET ${BASE}/deployments`]: 'deployments.read',
  [`GET ${BASE}/deployments/{id}`]: 'deployments.read',
  [`PUT ${BASE}/deployments/{id}`]: 'deployments.write',
  [`DELETE ${BASE}/deployments/{id}`]: 'deployments.write',
  [`POST ${BASE}/deployments/{id}/rollback`]: 'deployments.write',
  [`POST ${BASE}/deployments/{id}/promote`]: 'deployments.write',
  [`GET ${BASE}/deployments/{id}/history`]: 'deployments.read',
  [`GET ${BASE}/deployments/{id}/health`]: 'deployments.read',
  [`GET ${BASE}/providers`]: 'providers.read',
  [`POST ${BASE}/providers`]: 'providers.write',
  [`GET ${BASE}/providers/{id}`]: 'providers.read',
  [`PUT ${BASE}/providers/{id}`]: 'providers.write',
  [`DELETE ${BASE}/providers/{id}`]: 'providers.write',
  [`POST ${BASE}/keys`]: 'keys.write',
  [`GET ${BASE}/keys`]: 'keys.read',
  [`GET ${BASE}/keys/{id}`]: 'keys.read',
  [`PATCH ${BASE}/keys/{id}`]: 'keys.write',
  [`DELETE ${BASE}/keys/{id}`]: 'keys.write',
  [`POST ${BASE}/keys/{id}/rotate`]: 'keys.write',
  [`GET ${BASE}/audit`]: 'audit.read',
  [`GET ${BASE}/targets`]: 'targets.read',
  [`GET ${BASE}/targets/{provider}/{model}`]: 'targets.read',
  [`POST ${BASE}/targets/{provider}/{model}/breaker`]: 'targets.write',
  [`GET ${BASE}/executions`]: 'executions.read',
  [`GET ${BASE}/executions/{id}`]: 'executions.read',
  [`GET ${BASE}/usage`]: 'usage.read',
  [`GET ${BASE}/usage/export`]: 'usage.read',
  [`GET ${BASE}/budgets`]: 'budgets.read',
  [`GET ${BASE}/alerts`]: 'alerts.read',
}

/**
 * Routes whose handlers their owners have not scoped to teams yet, but which filter by team through a query
 * parameter: the gate forces it to the caller's team for team-bound principals.
 */
export const TEAM_QUERY: Readonly<Record<string, string>> = {
  [`GET ${BASE}/usage`]: 'team',
  [`GET ${BASE}/usage/export`]: 'team',
}

/** The action of a route (`METHOD pattern`); routes outside the table need the admin role. */
export function routeAction(method: string, pattern: string): Action | 'admin' {
  return ROUTE_ACTIONS[`${method} ${pattern}`] ?? 'admin'
}

export function can(p: Principal, action: Action | 'admin'): boolean {
  return action === 'admin' ? p.role === 'admin' : roleCan(p.role, action)
}

// ---------- the principal of an admin request ----------

const principals = new WeakMap<IncomingMessage, Principal>()

/** Set by the admin gate once the key is verified. */
export function bindPrincipal(req: IncomingMessage, p: Principal): void {
  principals.set(req, p)
}

export function principalOf(req: IncomingMessage): Principal {
  const p = principals.get(req)
  if (!p) throw new GatewayError('MCP_ERR_AUTH_MISSING', {}, { details: 'admin.no_principal' })
  return p
}

export function forbidden(p: Principal, action: Action | 'admin'): GatewayError {
  return new GatewayError('MCP_ERR_AUTH_FORBIDDEN', { action: `perform ${action === 'admin' ? 'admin-only operations' : action} (role ${p.role})` }, { details: 'admin.forbidden' })
}

/** The handler-level check: the request's principal, when its role holds `action`; 403 otherwise. */
export function authorize(req: IncomingMessage, action: Action): Principal {
  const p = principalOf(req)
  if (!can(p, action)) throw forbidden(p, action)
  return p
}

// ---------- teams ----------

/** true for principals that see every team (the admin role). */
export function isGlobal(p: Principal): boolean {
  return p.role === 'admin'
}

/**
 * The team a list must be restricted to, or undefined (global). A team-bound role without a team (a row written
 * outside the API) gets '' which no object has: it sees nothing rather than everything.
 */
export function teamFilter(p: Principal): string | undefined {
  return isGlobal(p) ? undefined : p.team ?? ''
}

export function visible(p: Principal, team: string | null | undefined): boolean {
  return isGlobal(p) || (team !== null && team !== undefined && team === p.team)
}

/** A 404 for an object of another team: the same answer as a missing object (details differ, for the audit). */
export function hidden(object: string, id: string): GatewayError {
  return new GatewayError('MCP_ERR_ADMIN_NOT_FOUND', { object, id: JSON.stringify(id.slice(0, 100)) }, { details: 'admin.not_found_scoped' })
}

export function fieldForbidden(field: string, reason: string): GatewayError {
  return new GatewayError('MCP_ERR_ADMIN_FIELD_FORBIDDEN', { field, reason }, { param: field, details: 'admin.field_forbidden' })
}

export function fieldReadOnly(field: string): GatewayError {
  return new GatewayError('MCP_ERR_ADMIN_FIELD_READ_ONLY', { field, reason: 'the server sets it' }, { param: field, details: 'admin.field_read_only' })
}

/** The team an object created by `p` belongs to: team-bound principals may only name their own. */
export function writeTeam(p: Principal, requested: string | undefined): string | null {
  if (isGlobal(p)) return requested ?? null
  if (p.team === undefined) throw fieldForbidden('team', `this ${p.role} key has no team`)
  if (requested !== undefined && requested !== p.team) throw fieldForbidden('team', `a ${p.role} key creates objects of its own team (${p.team}) only`)
  return p.team ?? null
}

/** Management writes in an environment are limited by the key's environment scope. */
export function checkEnvironment(p: Principal, environment: string, field = 'environment'): void {
  const envs = p.scopes.environments
  if (envs !== null && !envs.includes(environment)) throw fieldForbidden(field, `the key is limited to the environments ${envs.join(', ') || '(none)'}`)
}

// ---------- field-level write rules ----------

/** Who may set a field: 'any' (whoever holds the action), 'admin' (the admin role only). */
export type FieldRule = 'any' | 'admin'

export interface WriteRules {
  /** Fields nobody may write. */
  readOnly: readonly string[]
  /** Fields with a role restriction beyond the action; fields not listed are 'any'. */
  fields: Readonly<Record<string, FieldRule>>
  /** Free-text notes for the documentation (value rules checked in the handler). */
  notes: readonly string[]
}

const KEY_READ_ONLY = ['id', 'created_at', 'updated_at', 'created_by', 'prefix', 'key', 'key_hash', 'secret', 'revoked_at', 'last_used_at', 'rotated_from_id', 'rotation_overlap_until', 'status']

export const WRITE_RULES: Readonly<Record<string, WriteRules>> = {
  // Bodies of prompts, deployments and providers have no privileged fields besides `team`: anything their schema
  // does not list (id, revision, environment on PUT, ...) is a 400 naming the field, as before access control.
  'POST /prompts': { readOnly: [], fields: {}, notes: ['`team`: a team-bound key may only name its own team (default: its team)'] },
  'POST /prompts/{id}/versions': { readOnly: [], fields: {}, notes: [] },
  'POST /deployments': { readOnly: [], fields: {}, notes: ['`prompt_id` must be a prompt of the key\'s team (else 422 unknown prompt)', '`environment` must be inside the key\'s environment scope (403)'] },
  'PUT /deployments/{id}': { readOnly: [], fields: {}, notes: ['also rollback and promote: the environments written must be inside the key\'s environment scope (403)'] },
  'POST /providers': { readOnly: [], fields: {}, notes: ['`credentials` are write-only: never returned, never audited'] },
  'PUT /providers/{id}': { readOnly: [], fields: {}, notes: [] },
  'POST /keys': {
    readOnly: KEY_READ_ONLY,
    fields: {},
    notes: [
      '`role`: a role whose actions are a subset of the caller\'s',
      '`team`: the caller\'s own (team-bound callers; default: their team); the admin role names any team, and non-admin keys need one',
      '`scopes.*`: inside the caller\'s scopes', '`limits.*`, `budgets.*`: every value the caller has, at most as high',
      '`expires_at`: no later than the caller\'s own expiry',
    ],
  },
  'PATCH /keys/{id}': {
    readOnly: KEY_READ_ONLY,
    fields: { role: 'admin', team: 'admin', scopes: 'admin', limits: 'admin', budgets: 'admin' },
    notes: ['the key changed must be inside the caller (role, scopes, limits, budgets)', '`expires_at`: no later than the caller\'s own expiry'],
  },
  'POST /keys/{id}/rotate': { readOnly: KEY_READ_ONLY, fields: {}, notes: ['the key rotated must be inside the caller: rotation hands out a new secret with the same powers'] },
}

/** Throws 422 for a read-only field, 403 for a field the principal's role may not set. */
export function checkFields(p: Principal, body: Record<string, unknown>, rules: WriteRules): void {
  for (const f of Object.keys(body)) {
    if (rules.readOnly.includes(f)) throw fieldReadOnly(f)
    if (rules.fields[f] === 'admin' && p.role !== 'admin') throw fieldForbidden(f, `only the admin role may change ${f}`)
  }
}

/** Reads a JSON body, applies the field rules (before the schema, so the named field is the forbidden one), validates. */
export async function readChecked<T>(req: IncomingMessage, v: Validator<T>, rules: WriteRules, emptyOk = false): Promise<T> {
  const p = principalOf(req)
  checkContentType(req)
  const buf = await readBody(req, BODY_LIMIT)
  const json = emptyOk && buf.length === 0 ? {} : parseJson(buf)
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw bodyInvalid(['(root): must be a JSON object'])
  checkFields(p, json as Record<string, unknown>, rules)
  if (!v(json)) throw bodyInvalid(v.errors())
  checkStorable(buf, json)
  return json
}

// ---------- documentation ----------

/** The markdown of docs/rbac.md's generated sections (between the GENERATED markers). */
export function renderRbacTables(): string {
  const actions = Object.keys(ACTIONS) as Action[]
  const lines: string[] = []
  lines.push(`| action | what | ${ROLES.join(' | ')} |`, `| --- | --- | ${ROLES.map(() => ':-:').join(' | ')} |`)
  for (const a of actions) lines.push(`| \`${a}\` | ${ACTIONS[a]} | ${ROLES.map((r) => (MATRIX[r].includes(a) ? '✓' : '—')).join(' | ')} |`)
  lines.push('', '| route | action |', '| --- | --- |')
  for (const [route, a] of Object.entries(ROUTE_ACTIONS)) lines.push(`| \`${route}\` | \`${a}\` |`)
  lines.push('', '| body | read-only (422) | admin role only (403 otherwise) | rules on values |', '| --- | --- | --- | --- |')
  for (const [route, r] of Object.entries(WRITE_RULES)) {
    const admin = Object.entries(r.fields).filter(([, v]) => v === 'admin').map(([k]) => `\`${k}\``)
    lines.push(`| \`${route}\` | ${r.readOnly.map((f) => `\`${f}\``).join(', ') || '—'} | ${admin.join(', ') || '—'} | ${r.notes.join('; ') || '—'} |`)
  }
  return lines.join('\n')
}
