/**
 * auth: the caller presents a key as `Authorization: Bearer`, `x-api-key` or `api-key`.
 *
 * - The bootstrap key (MCP_ADMIN_KEY) is the admin role, global. API keys (`mcp_<prefix>_<secret>`) come from the
 *   key resolver (`services.keys`, the control plane's in-memory snapshot): no database on the request path.
 *   Digests are compared in constant time (api-key.ts). Unknown, revoked or expired keys: 401.
 * - onRequestHeaders: the role must hold `invoke` (a viewer key is a 403). Sets `ctx.slots.principal` (a
 *   `Principal`: key id, role, team, scopes, limits, budgets).
 * - onRequestBody: execute of another team's deployment by a team-bound key is a 404 (as a missing deployment);
 *   for keys with scopes, the resolved model or alias, and for execute the deployment and its environment, must be
 *   inside them (scopes.ts), else 403 MCP_ERR_AUTH_FORBIDDEN.
 * - allowsModel: GET /v1/models lists only the models and aliases the same rule lets the key call.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { RequestCtx } from '../../gateway/context.ts'
import type { LocalReply, PluginFactory } from '../../gateway/pipeline/types.ts'
import { createAuthenticator } from './api-key.ts'
import { authConfigSchema, type AuthConfig } from './config.ts'
import { roleCan } from './roles.ts'
import { scopeRefusal, UNRESTRICTED, type Principal } from './scopes.ts'

export type { Principal } from './scopes.ts'

/** The key a request presents, from the first of the three accepted headers that is set. */
export function presentedKey(h: IncomingHttpHeaders): string | undefined {
  const auth = h['authorization']
  if (typeof auth === 'string' && auth.length > 7 && auth.slice(0, 7).toLowerCase() === 'bearer ') return auth.slice(7).trim()
  const x = h['x-api-key'] ?? h['api-key']
  return typeof x === 'string' && x !== '' ? x : undefined
}

/** The full principal of a request (the slot's declared type is its summary: key id, role, team). */
export function principalOf(ctx: RequestCtx): Principal | undefined {
  return ctx.slots.principal as Principal | undefined
}

const MISSING: LocalReply = { code: 'MCP_ERR_AUTH_MISSING', details: 'auth.missing_key', headers: { 'www-authenticate': 'Bearer' } }
const INVALID: LocalReply = { code: 'MCP_ERR_AUTH_INVALID', details: 'auth.invalid_key', headers: { 'www-authenticate': 'Bearer' } }
const EXPIRED: LocalReply = { code: 'MCP_ERR_AUTH_INVALID', details: 'auth.expired_key', headers: { 'www-authenticate': 'Bearer' } }
const ANONYMOUS: Principal = Object.freeze({ keyId: 'anonymous', role: 'admin', scopes: UNRESTRICTED })

function unrestricted(p: Principal): boolean {
  const s = p.scopes
  return s === UNRESTRICTED || (s.models === null && s.aliases === null && s.deployments === null && s.environments === null)
}

export const authPlugin: PluginFactory<AuthConfig> = {
  name: 'auth',
  configSchema: authConfigSchema,
  sideEffects: 'none',
  create(config, deps) {
    const adminKey = deps.env.adminKey || undefined
    const keys = deps.services.keys
    const rejected = deps.metrics.counter('mcp_plugin_auth_rejected_total', 'Requests refused by the auth plugin', ['reason'])
    const missing = rejected.labels('missing_key')
    const invalid = rejected.labels('invalid_key')
    const expired = rejected.labels('expired_key')
    const forbidden = rejected.labels('forbidden')
    const scope = rejected.labels('out_of_scope')
    const anonymous = adminKey === undefined && !deps.env.production && config.allowWithoutKeys
    if (adminKey === undefined && !keys && !anonymous) {
      return { onRequestHeaders: () => { missing.inc(); return MISSING } }
    }
    if (anonymous) deps.logger.warn('no MCP_ADMIN_KEY is set: the data plane accepts requests without a key (development only)')
    const authenticate = createAuthenticator({ adminKey, keys })
    return {
      onRequestHeaders(ctx) {
        const key = presentedKey(ctx.headers)
        if (key === undefined && anonymous) { ctx.slots.principal = ANONYMOUS; return undefined }
        const r = authenticate(key)
        if (!r.ok) {
          if (r.reason === 'missing') { missing.inc(); return MISSING }
          if (r.reason === 'expired') { expired.inc(); return EXPIRED }
          invalid.inc()
          return INVALID
        }
        ctx.slots.principal = r.principal
        if (!roleCan(r.principal.role, 'invoke')) {
          forbidden.inc()
          return { code: 'MCP_ERR_AUTH_FORBIDDEN', params: { action: `call the data plane (role ${r.principal.role})` }, details: 'auth.forbidden_role' }
        }
        return undefined
      },
      onRequestBody(ctx) {
        const p = principalOf(ctx)
        if (!p?.scopes) return undefined
        const x = ctx.slots.execution
        // A team-bound key executes its own team's deployments only; another team's answers as a missing one.
        if (x && p.role !== 'admin' && x.team !== undefined && x.team !== (p.team ?? null)) {
          scope.inc()
          return { code: 'MCP_ERR_EXEC_DEPLOYMENT_NOT_FOUND', params: { ref: JSON.stringify(x.deploymentId) }, details: 'auth.deployment_of_another_team', param: 'deployment_id' }
        }
        if (unrestricted(p)) return undefined
        const refusal = scopeRefusal(p.scopes, {
          model: ctx.requestedModel, isAlias: ctx.alias !== undefined, deploymentId: x?.deploymentId, environment: x?.environment,
        })
        if (!refusal) return undefined
        scope.inc()
        return { code: 'MCP_ERR_AUTH_FORBIDDEN', params: { action: refusal.action }, details: 'auth.out_of_scope', param: refusal.param }
      },
      allowsModel(ctx, name, isAlias) {
        const p = principalOf(ctx)
        if (!p?.scopes || unrestricted(p)) return true
        return scopeRefusal(p.scopes, { model: name, isAlias }) === undefined
      },
    }
  },
}
