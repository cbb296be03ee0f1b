/**
 * auth: the caller presents a key as `Authorization: Bearer`, `x-api-key` or `api-key`; it is
 * compared in constant time against the bootstrap key (MCP_ADMIN_KEY). 401 otherwise.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import type { PluginFactory, LocalReply } from '../../gateway/pipeline/types.ts'
import { authConfigSchema, type AuthConfig } from './config.ts'

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

/** The key a request presents, from the first of the three accepted headers that is set. */
export function presentedKey(h: IncomingHttpHeaders): string | undefined {
  const auth = h['authorization']
  if (typeof auth === 'string' && auth.length > 7 && auth.slice(0, 7).toLowerCase() === 'bearer ') return auth.slice(7).trim()
  const x = h['x-api-key'] ?? h['api-key']
  return typeof x === 'string' && x !== '' ? x : undefined
}

const MISSING: LocalReply = { code: 'MCP_ERR_AUTH_MISSING', details: 'auth.missing_key', headers: { 'www-authenticate': 'Bearer' } }
const INVALID: LocalReply = { code: 'MCP_ERR_AUTH_INVALID', details: 'auth.invalid_key', headers: { 'www-authenticate': 'Bearer' } }

export const authPlugin: PluginFactory<AuthConfig> = {
  name: 'auth',
  configSchema: authConfigSchema,
  sideEffects: 'none',
  create(config, deps) {
    const adminKey = deps.env.adminKey
    const rejected = deps.metrics.counter('mcp_plugin_auth_rejected_total', 'Requests refused by the auth plugin', ['reason'])
    const missing = rejected.labels('missing_key')
    const invalid = rejected.labels('invalid_key')
    if (adminKey === undefined || adminKey === '') {
      if (deps.env.production || !config.allowWithoutKeys) {
        return { onRequestHeaders: () => { missing.inc(); return MISSING } }
      }
      deps.logger.warn('no MCP_ADMIN_KEY is set: the data plane accepts requests without a key (development only)')
      return { onRequestHeaders(ctx) { ctx.slots.principal = { keyId: 'anonymous', role: 'admin' } } }
    }
    const expected = digest(adminKey)
    return {
      onRequestHeaders(ctx) {
        const key = presentedKey(ctx.headers)
        if (key === undefined) { missing.inc(); return MISSING }
        if (!timingSafeEqual(digest(key), expected)) { invalid.inc(); return INVALID }
        ctx.slots.principal = { keyId: 'bootstrap', role: 'admin' }
        return undefined
      },
    }
  },
}
