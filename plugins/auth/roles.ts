/**
 * Roles and the permission matrix, as data: one table that the data plane (auth plugin: `invoke`), the admin API
 * (admin/rbac.ts: every handler) and docs/rbac.md (generated from it, checked by a test) all read.
 *
 * A role is the set of actions it may perform. "Narrower or equal" between roles is set inclusion, so a key can
 * mint, rotate or revoke only keys whose role's actions are a subset of its own (a developer may mint viewer and
 * invoker keys, never an operator key).
 */

export const ROLES = ['admin', 'operator', 'developer', 'viewer', 'invoker'] as const
export type Role = typeof ROLES[number]

/** Every action, with what it covers (the doc's second column). */
export const ACTIONS = {
  'invoke': 'Call the data plane (/v1/*) and POST /execute',
  'prompts.read': 'GET prompts and their versions',
  'prompts.write': 'Create prompts and versions',
  'deployments.read': 'GET deployments, environments, history, health',
  'deployments.write': 'Create, update, delete, roll back, promote deployments',
  'providers.read': 'GET providers (credentials are never returned)',
  'providers.write': 'Create, update, delete providers and their credentials',
  'keys.read': 'GET API keys (never their secrets or hashes)',
  'keys.write': 'Create, revoke and rotate API keys (never broader than the caller)',
  'audit.read': 'GET the audit log',
  'config.read': 'GET /config (secrets redacted), GET /instances',
  'config.reload': 'POST /config/reload',
  'metrics.read': 'GET /metrics',
  'targets.read': 'GET routing targets (breakers, health)',
  'targets.write': 'Force a breaker open, closed or reset it',
  'executions.read': 'GET execution logs (bodies included)',
  'usage.read': 'GET usage and its export',
  'budgets.read': 'GET budget counters',
  'alerts.read': 'GET fired alerts',
  'openapi.read': 'GET the OpenAPI document',
} as const
export type Action = keyof typeof ACTIONS

const READS: readonly Action[] = ['prompts.read', 'deployments.read', 'providers.read', 'keys.read', 'openapi.read']

/** The matrix: role → actions. Admin may do everything. */
export const MATRIX: Readonly<Record<Role, readonly Action[]>> = {
  admin: Object.keys(ACTIONS) as Action[],
  operator: [
    'invoke', ...READS, 'prompts.write', 'deployments.write', 'keys.write', 'audit.read', 'config.read', 'config.reload',
    'metrics.read', 'targets.read', 'targets.write', 'usage.read',
  ],
  developer: ['invoke', ...READS, 'prompts.write', 'deployments.write', 'keys.write'],
  viewer: [...READS],
  invoker: ['invoke'],
}

const SETS: ReadonlyMap<Role, ReadonlySet<Action>> = new Map(ROLES.map((r) => [r, new Set(MATRIX[r])]))

export function isRole(s: unknown): s is Role {
  return typeof s === 'string' && (ROLES as readonly string[]).includes(s)
}

/** Whether `role` may perform `action` (unknown roles may do nothing). */
export function roleCan(role: string, action: Action): boolean {
  return isRole(role) && SETS.get(role)!.has(action)
}

/** Whether every action of `child` is an action of `parent` (a key may only hand out what it holds). */
export function roleWithin(child: Role, parent: Role): boolean {
  const p = SETS.get(parent)!
  for (const a of SETS.get(child)!) if (!p.has(a)) return false
  return true
}

/** Roles within `role`, in table order. */
export function rolesWithin(role: Role): Role[] {
  return ROLES.filter((r) => roleWithin(r, role))
}
