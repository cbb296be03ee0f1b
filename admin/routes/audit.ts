/**
 * GET /api/v1/mcp/audit: the audit log, newest first.
 *   ?actor=<key id | bootstrap | system | key:<prefix>> ?action=<exact | prefix*> ?object_type= ?object_id=
 *   ?team= (admin; a team-bound reader always gets its own team) ?from= ?to= (ISO 8601, [from, to))
 *   ?limit=1..200 ?cursor=<next_cursor>
 * Unknown parameters are a 400 naming them. before/after were redacted when written.
 */
import type { ControlPlane } from '../control-plane.ts'
import { isUuid, pageOf, queryInvalid, queryOf, timeQuery } from '../http.ts'
import { authorize, teamFilter } from '../rbac.ts'
import { listAudit } from '../repo/audit.ts'
import { sendJson, type AdminServer } from '../server.ts'

const KNOWN = new Set(['actor', 'action', 'object_type', 'object_id', 'team', 'from', 'to', 'limit', 'cursor'])

/** A time filter as the ISO string the query binds (admin/http.ts timeQuery). */
function time(q: URLSearchParams, name: string): string | undefined {
  const t = timeQuery(q, name)
  return t === undefined ? undefined : new Date(t).toISOString()
}

function text(q: URLSearchParams, name: string, max: number): string | undefined {
  const v = q.get(name)
  if (v === null || v === '') return undefined
  if (v.length > max) throw queryInvalid(name, `at most ${max} characters`)
  return v
}

export function registerAuditRoutes(admin: AdminServer, cp: ControlPlane): void {
  admin.route('GET', '/api/v1/mcp/audit', async (req, res) => {
    req.resume()
    const p = authorize(req, 'audit.read')
    const q = queryOf(req)
    for (const k of q.keys()) if (!KNOWN.has(k)) throw queryInvalid(k, 'unknown parameter')
    const page = pageOf(q)
    const actor = text(q, 'actor', 100)
    const own = teamFilter(p)
    const asked = text(q, 'team', 100)
    if (own !== undefined && asked !== undefined && asked !== own) { sendJson(res, 200, { data: [], next_cursor: null }); return }
    const filter = {
      ...(actor !== undefined ? (isUuid(actor) ? { actorKeyId: actor.toLowerCase() } : { actor }) : {}),
      action: text(q, 'action', 50), objectType: text(q, 'object_type', 50), objectId: text(q, 'object_id', 100),
      team: own ?? asked, from: time(q, 'from'), to: time(q, 'to'),
    }
    sendJson(res, 200, await cp.read((db) => listAudit(db, filter, page)))
  })
}
