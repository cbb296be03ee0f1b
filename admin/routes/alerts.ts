/**
 * Fired alerts on the admin API, newest first: rule, kind, threshold, subject, value, period, the
 * message, and (on the instance that fired it) each webhook delivery's state.
 *   GET /api/v1/mcp/alerts             ?limit=1..1000 (default 100); a bad one is a 400 naming `limit`
 */
import type { AlertManager } from '../../gateway/alerts/manager.ts'
import { queryInvalid, queryOf } from '../http.ts'
import { sendJson, type AdminServer } from '../server.ts'

export function registerAlertRoutes(admin: AdminServer, alerts: AlertManager): void {
  admin.route('GET', '/api/v1/mcp/alerts', async (req, res) => {
    req.resume()
    const raw = queryOf(req).get('limit')
    if (raw !== null && (!/^[0-9]{1,4}$/.test(raw) || Number(raw) < 1 || Number(raw) > 1000)) throw queryInvalid('limit', 'must be an integer from 1 to 1000')
    const limit = raw === null ? 100 : Number(raw)
    sendJson(res, 200, { data: await alerts.list(limit) })
  })
}
