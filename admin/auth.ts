/** Admin API authentication: the bootstrap key (MCP_ADMIN_KEY), compared in constant time. */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { presentedKey } from '../plugins/auth/index.ts'

export function createAdminKeyCheck(adminKey: string | undefined): (h: IncomingHttpHeaders) => 'ok' | 'missing' | 'invalid' {
  const expected = adminKey ? createHash('sha256').update(adminKey).digest() : undefined
  return (h) => {
    const key = presentedKey(h)
    if (key === undefined) return 'missing'
    if (!expected) return 'invalid'
    return timingSafeEqual(createHash('sha256').update(key).digest(), expected) ? 'ok' : 'invalid'
  }
}
