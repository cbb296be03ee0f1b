/**
 * Routing targets on the admin API: each target's breaker state, health, in-flight requests,
 * latency EWMA and error rate; operators can force a breaker open or closed, or reset it.
 *   GET  /api/v1/mcp/targets
 *   GET  /api/v1/mcp/targets/{provider}/{model}
 *   POST /api/v1/mcp/targets/{provider}/{model}/breaker   {"state": "open" | "closed" | "auto" | "reset"}
 * Access (docs/rbac.md): targets.read / targets.write, checked here; a breaker change is audited (background row).
 */
import type { Gateway } from '../../gateway/gateway.ts'
import { compileSchema } from '../../gateway/validate.ts'
import { auditActor } from '../audit.ts'
import { notFound, readValid } from '../http.ts'
import { breakerSchema } from '../schemas.ts'
import { authorize } from '../rbac.ts'
import { sendJson, type AdminServer } from '../server.ts'

/** The breaker body is `{"state": ...}`: anything near this size is not one. */
const BREAKER_BODY_LIMIT = 64 * 1024

const validateBreakerBody = compileSchema<{ state: 'open' | 'closed' | 'auto' | 'reset' }>(breakerSchema)

export function registerTargetRoutes(admin: AdminServer, gw: Gateway): void {
  admin.route('GET', '/api/v1/mcp/targets', (req, res) => {
    authorize(req, 'targets.read')
    const now = Date.now()
    const aliases: Record<string, string[]> = {}
    for (const [name, a] of gw.holder.current.aliases) aliases[name] = a.targets.map((t) => t.state.id)
    sendJson(res, 200, { data: gw.targets.all().map((s) => s.snapshot(now)), aliases })
  })
  admin.route('GET', '/api/v1/mcp/targets/{provider}/{model}', (req, res, p) => {
    authorize(req, 'targets.read')
    const s = gw.targets.find(`${p['provider']}/${p['model']}`)
    if (!s) throw notFound('target', `${p['provider']}/${p['model']}`)
    sendJson(res, 200, s.snapshot())
  })
  admin.route('POST', '/api/v1/mcp/targets/{provider}/{model}/breaker', async (req, res, p) => {
    const who = authorize(req, 'targets.write')
    const s = gw.targets.find(`${p['provider']}/${p['model']}`)
    // As every admin body: JSON only (415), errors naming the field (400); at most 64 KiB (413): it is one small enum.
    const json = await readValid(req, validateBreakerBody, false, BREAKER_BODY_LIMIT)
    if (!s) throw notFound('target', `${p['provider']}/${p['model']}`)
    const before = s.mode
    if (json.state === 'reset') s.reset()
    else s.mode = json.state === 'open' ? 'forced-open' : json.state === 'closed' ? 'forced-closed' : 'auto'
    admin.auditChange({ action: 'target.breaker', objectType: 'target', objectId: s.id, before: { mode: before }, after: { mode: s.mode, state: json.state }, actor: auditActor(req, who), team: null })
    gw.log.warn({ target: s.id, state: json.state }, 'breaker state set by an operator')
    sendJson(res, 200, s.snapshot())
  })
}
