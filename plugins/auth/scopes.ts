/**
 * Who a request is (the principal) and what an API key may reach (its scopes), with the two rules every part of
 * the gateway applies the same way: `scopeRefusal` (may this request run?) and `scopesWithin` (is a key's scope
 * inside another's? minting, rotation).
 *
 * Scope dimensions; `null` means "not restricted" in that dimension:
 * - models / aliases: a request names a model or an alias. When either list is set, the name must be an alias in
 *   `aliases` or match a pattern of `models` (a null list then counts as empty): restricting one restricts both,
 *   so an alias cannot reach a model the key may not name. Patterns are exact (`openai/gpt-4o`) or end in `*`
 *   (`openai/*`, `*`). Execute is checked with the deployment's model.
 * - deployments: the key may only execute these deployments (and no raw model calls).
 * - environments: the key may only execute deployments of these environments (management writes too).
 */
import type { Role } from './roles.ts'

export interface KeyScopes {
  readonly environments: readonly string[] | null
  readonly models: readonly string[] | null
  readonly aliases: readonly string[] | null
  readonly deployments: readonly string[] | null
}

export const UNRESTRICTED: KeyScopes = Object.freeze({ environments: null, models: null, aliases: null, deployments: null })

/** Per-key request limits (read by the rate-limit plugin from `ctx.slots.principal.limits`). */
export type KeyLimits = Readonly<Partial<Record<'rps' | 'rpm' | 'tpm' | 'concurrency', number>>>
/** Per-key budgets in USD. */
export type KeyBudgets = Readonly<Partial<Record<'daily_usd' | 'monthly_usd', number>>>

/**
 * The routes a key record's own limits and budgets count: the model calls. GET /v1/models and count_tokens are not
 * (Claude Code counts tokens before every turn: with them, an `rpm` of 60 would leave about 30 turns a minute;
 * Anthropic limits token counting apart from messages too). The rate-limit plugin applies its implicit 'principal.*'
 * limits on these routes only; the budget plugin prices chat and embedding requests only, which come on these.
 */
export const KEY_RECORD_ROUTES: ReadonlySet<string> = new Set(['chat', 'embeddings', 'messages', 'execute'])

export const LIMIT_FIELDS = ['rps', 'rpm', 'tpm', 'concurrency'] as const
export const BUDGET_FIELDS = ['daily_usd', 'monthly_usd'] as const

/** The authenticated caller, as `ctx.slots.principal` and on every admin request. */
export interface Principal {
  /** 'bootstrap' (MCP_ADMIN_KEY), 'anonymous' (development without keys), or the api_keys row id. */
  readonly keyId: string
  readonly role: Role
  /** Absent: global (admin role). Every other role belongs to exactly one team. */
  readonly team?: string
  /** The key's public prefix (API keys only). */
  readonly prefix?: string
  readonly scopes: KeyScopes
  readonly limits?: KeyLimits
  readonly budgets?: KeyBudgets
  /** When the key stops working (expiry or the end of a rotation overlap), ms since the epoch. */
  readonly expiresAt?: number
}

function matches(pattern: string, name: string): boolean {
  return pattern.endsWith('*') ? name.startsWith(pattern.slice(0, -1)) : pattern === name
}

/** A pattern `c` is inside a pattern `p` when every name `c` matches, `p` matches. */
function patternWithin(c: string, p: string): boolean {
  if (!p.endsWith('*')) return !c.endsWith('*') && c === p
  return c.startsWith(p.slice(0, -1))
}

export function modelScoped(s: KeyScopes): boolean {
  return s.models !== null || s.aliases !== null
}

/** Whether the key may use the model or alias `name`. */
export function modelAllowed(s: KeyScopes, name: string, isAlias: boolean): boolean {
  if (!modelScoped(s)) return true
  if (isAlias) return (s.aliases ?? []).includes(name)
  return (s.models ?? []).some((p) => matches(p, name))
}

export interface ScopeRequest {
  /** The model or alias the request names (execute: the deployment's). */
  model: string
  isAlias: boolean
  /** Execute only. */
  deploymentId?: string | undefined
  environment?: string | undefined
}

/** Why the request is outside the key's scope (the `{action}` of MCP_ERR_AUTH_FORBIDDEN), or undefined. */
export function scopeRefusal(s: KeyScopes, r: ScopeRequest): { action: string; param: string } | undefined {
  if (s.deployments !== null) {
    if (r.deploymentId === undefined) return { action: 'call models directly (it may only execute its deployments)', param: 'model' }
    if (!s.deployments.includes(r.deploymentId)) return { action: `execute deployment ${r.deploymentId}`, param: 'deployment_id' }
  }
  if (s.environments !== null && r.environment !== undefined && !s.environments.includes(r.environment)) {
    return { action: `execute in environment ${r.environment}`, param: 'environment' }
  }
  if (r.model !== '' && !modelAllowed(s, r.model, r.isAlias)) {
    return { action: `use ${r.isAlias ? 'alias' : 'model'} ${r.model.slice(0, 200)}`, param: 'model' }
  }
  return undefined
}

/** The first dimension in which `child` reaches further than `parent` (`scopes.models`, ...), or undefined. */
export function scopesWithin(child: KeyScopes, parent: KeyScopes): string | undefined {
  for (const d of ['environments', 'deployments'] as const) {
    const p = parent[d]
    if (p === null) continue
    const c = child[d]
    if (c === null || c.some((x) => !p.includes(x))) return `scopes.${d}`
  }
  if (modelScoped(parent)) {
    if (!modelScoped(child)) return 'scopes.models'
    const pm = parent.models ?? []
    if ((child.models ?? []).some((c) => !pm.some((p) => patternWithin(c, p)))) return 'scopes.models'
    const pa = parent.aliases ?? []
    if ((child.aliases ?? []).some((c) => !pa.includes(c))) return 'scopes.aliases'
  }
  return undefined
}

/**
 * The first numeric field in which `child` allows more than `parent` (`limits.rpm`, ...), or undefined. A field the
 * parent sets must be set by the child, at most as high; fields the parent leaves unset are free.
 */
export function numbersWithin(child: Readonly<Record<string, number | undefined>> | undefined, parent: Readonly<Record<string, number | undefined>> | undefined, fields: readonly string[], prefix: string): string | undefined {
  for (const f of fields) {
    const p = parent?.[f]
    if (p === undefined) continue
    const c = child?.[f]
    if (c === undefined || c > p) return `${prefix}.${f}`
  }
  return undefined
}
