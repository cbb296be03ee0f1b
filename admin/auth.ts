/**
 * Admin API authentication: the bootstrap key (MCP_ADMIN_KEY, the admin role) and, when the control plane provides
 * them, API keys from its snapshot. Both are compared in constant time (plugins/auth/api-key.ts). What the key may
 * then do is admin/rbac.ts's business.
 */
import { createAuthenticator, type AuthOutcome, type KeyResolver } from '../plugins/auth/api-key.ts'

export function createAdminAuthenticator(adminKey: string | undefined, keys?: KeyResolver): (presented: string | undefined) => AuthOutcome {
  return createAuthenticator({ adminKey: adminKey || undefined, keys })
}
