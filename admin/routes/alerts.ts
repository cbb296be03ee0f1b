/**
 * Fired alerts on the admin API, newest first: rule, kind, threshold, subject, value, period, the
 * message, and (on the instance that fired it) each webhook delivery's state.
 *   GET /api/v1/mcp/alerts             ?limit=1..1000 (default 100)
 */
import { GatewayError } from '../../gateway/errors.ts'
import type { AlertManager } from '../../gateway/alerts/manager.ts'
import { sendJson, type AdminServer } from '../server.ts'

export function registerAlertRoutes(admin: AdminServer, alerts: AlertManager): void {
  admin.route('GET', '/api/v1/mcp/alerts', async (req, res) => {
    req.resume()
    const q = new URL(req.url ?? '/', 'http://x').searchParams
    const raw = q.get('limit')
    const limit = raw === null ? 100 : Number(raw)
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new GatewayError('MCP_ERR_ADMIN_QUERY_INVALID', { reason: 'limit: must be an integer from 1 to 1000' })
    sendJson(res, 200, { data: await alerts.list(limit) })
  })
}
