/**
 * Deployments (the spec's four, and around them):
 *   POST /deployments · GET /deployments (?prompt_id, ?prompt (name), ?environment, ?status, paginated) · GET /deployments/{id}
 *   PUT /deployments/{id} (If-Match required) · DELETE /deployments/{id} (If-Match required)
 *   POST /deployments/{id}/rollback (If-Match required unless a version is named) · POST /deployments/{id}/promote
 *   GET /deployments/{id}/history (paginated) · GET /deployments/{id}/health (?window=1h)
 *   GET /environments
 *
 * Access (docs/rbac.md): deployments.read / deployments.write, checked here. A deployment belongs to its prompt's
 * team: a team-bound key sees and changes its team's deployments only (another team's is a 404, its prompt an
 * unknown prompt), and writes only in environments of its key's environment scope.
 */
import type { IncomingMessage } from 'node:http'
import type { Principal } from '../../plugins/auth/scopes.ts'
import type { Queryable } from '../../store/types.ts'
import { auditActor, bindAudit } from '../audit.ts'
import type { ControlPlane } from '../control-plane.ts'
import { checkIfMatch, enumParam, isUuid, pageOf, queryInvalid, queryOf, requireUuid, sendNoContent, sendWithEtag, unprocessable, windowSeconds } from '../http.ts'
import { authorize, checkEnvironment, hidden, isGlobal, readChecked, teamFilter, visible, WRITE_RULES } from '../rbac.ts'
import { createDeployment, deleteDeployment, deploymentHistory, getDeployment, listDeployments, promoteDeployment, rollbackDeployment, updateDeployment, type WriteContext } from '../repo/deployments.ts'
import { deploymentHealth } from '../repo/health.ts'
import { DEPLOYMENT_STATUSES, validators } from '../schemas.ts'
import { sendJson, type AdminServer } from '../server.ts'

const BASE = '/api/v1/mcp'
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

export function requestIdOf(req: IncomingMessage): string | undefined {
  const v = req.headers['x-request-id']
  return typeof v === 'string' && REQUEST_ID.test(v) ? v : undefined
}

interface Owner { team: string | null; environment: string; promptId: string }

/**
 * The deployment's team and environment when the principal may see it; another team's deployment is a 404 (as a
 * missing one). A missing deployment returns undefined (the repository answers its own 404); for a team-bound
 * principal it is a 404 at once (a deleted deployment's history has no team to check against).
 */
async function deploymentFor(q: Queryable, p: Principal, id: string): Promise<Owner | undefined> {
  const { rows } = await q.query<{ team: string | null; environment: string; prompt_id: string }>(
    'SELECT p.team, d.environment, d.prompt_id FROM deployments d JOIN prompts p ON p.id = d.prompt_id WHERE d.id = $1', [id],
  )
  const r = rows[0]
  if (!r) {
    if (!isGlobal(p)) throw hidden('deployment', id)
    return undefined
  }
  if (!visible(p, r.team)) throw hidden('deployment', id)
  return { team: r.team, environment: r.environment, promptId: r.prompt_id }
}

export function registerDeploymentRoutes(admin: AdminServer, cp: ControlPlane): void {
  const ctx = (req: IncomingMessage): WriteContext => ({ environments: cp.environments, requestId: requestIdOf(req) })
  const location = (id: string): Record<string, string> => ({ location: `${BASE}/deployments/${id}` })
  const bound = (req: IncomingMessage, p: Principal, tx: Queryable, team: string | null | undefined): Queryable =>
    bindAudit(tx, { actor: auditActor(req, p), ...(team !== undefined ? { team } : {}) })
  /** Locates, scopes and environment-checks the deployment of a write. */
  const writable = async (tx: Queryable, p: Principal, id: string): Promise<Owner | undefined> => {
    const o = await deploymentFor(tx, p, id)
    if (o) checkEnvironment(p, o.environment)
    return o
  }

  admin.route('GET', `${BASE}/environments`, (req, res) => {
    req.resume()
    authorize(req, 'deployments.read')
    sendJson(res, 200, { data: cp.environments.map((name, i) => ({ name, next: cp.environments[i + 1] ?? null })) })
  })

  admin.route('POST', `${BASE}/deployments`, async (req, res) => {
    const p = authorize(req, 'deployments.write')
    const body = await readChecked(req, validators.deploymentCreate, WRITE_RULES['POST /deployments']!)
    checkEnvironment(p, body.environment)
    const d = await cp.write(async (tx) => {
      const { rows } = await tx.query<{ team: string | null }>('SELECT team FROM prompts WHERE id = $1', [body.prompt_id])
      if (rows[0] && !visible(p, rows[0].team)) throw unprocessable(`prompt ${body.prompt_id} does not exist`, 'prompt_id')
      return createDeployment(bound(req, p, tx, rows[0]?.team), body, ctx(req))
    })
    sendWithEtag(res, 201, d, d.revision, location(d.id))
  })

  admin.route('GET', `${BASE}/deployments`, async (req, res) => {
    const p = authorize(req, 'deployments.read')
    const q = queryOf(req)
    const page = pageOf(q)
    const promptId = q.get('prompt_id') ?? undefined
    if (promptId !== undefined && !isUuid(promptId)) throw queryInvalid('prompt_id', 'must be a prompt id (UUID); filter by name with ?prompt=')
    const filter = { promptId, promptName: q.get('prompt') ?? undefined, environment: q.get('environment') ?? undefined, status: enumParam(q, 'status', DEPLOYMENT_STATUSES), team: teamFilter(p) }
    sendJson(res, 200, await cp.read((db) => listDeployments(db, filter, page)))
  })

  admin.route('GET', `${BASE}/deployments/{id}`, async (req, res, params) => {
    req.resume()
    const p = authorize(req, 'deployments.read')
    const id = requireUuid('deployment', params['id'])
    const d = await cp.read(async (db) => { await deploymentFor(db, p, id); return getDeployment(db, id) })
    sendWithEtag(res, 200, d, d.revision)
  })

  admin.route('PUT', `${BASE}/deployments/{id}`, async (req, res, params) => {
    const p = authorize(req, 'deployments.write')
    const id = requireUuid('deployment', params['id'])
    const body = await readChecked(req, validators.deploymentUpdate, WRITE_RULES['PUT /deployments/{id}']!)
    const d = await cp.write(async (tx) => {
      const o = await writable(tx, p, id)
      return updateDeployment(bound(req, p, tx, o?.team), id, body, (rev) => checkIfMatch(req, rev, `deployment ${id}`, true), ctx(req))
    })
    sendWithEtag(res, 200, d, d.revision)
  })

  admin.route('DELETE', `${BASE}/deployments/{id}`, async (req, res, params) => {
    req.resume()
    const p = authorize(req, 'deployments.write')
    const id = requireUuid('deployment', params['id'])
    await cp.write(async (tx) => {
      const o = await writable(tx, p, id)
      await deleteDeployment(bound(req, p, tx, o?.team), id, (rev) => checkIfMatch(req, rev, `deployment ${id}`, true), ctx(req))
    })
    sendNoContent(res)
  })

  admin.route('POST', `${BASE}/deployments/{id}/rollback`, async (req, res, params) => {
    const p = authorize(req, 'deployments.write')
    const id = requireUuid('deployment', params['id'])
    const body = await readChecked(req, validators.rollback, WRITE_RULES['PUT /deployments/{id}']!, true)
    const d = await cp.write(async (tx) => {
      const o = await writable(tx, p, id)
      // Rolling back to "the previous version" is relative to what serves now: a retried or double-clicked one would
      // undo the first, so it needs If-Match. One that names its version is idempotent and may go without.
      const named = body.version !== undefined || body.prompt_version_id !== undefined
      const precondition = (rev: number): void => checkIfMatch(req, rev, `deployment ${id}`, !named, 'or name the version to roll back to ({"version": n})')
      return rollbackDeployment(bound(req, p, tx, o?.team), id, body, precondition, ctx(req))
    })
    sendWithEtag(res, 200, d, d.revision)
  })

  admin.route('POST', `${BASE}/deployments/{id}/promote`, async (req, res, params) => {
    const p = authorize(req, 'deployments.write')
    const id = requireUuid('deployment', params['id'])
    const body = await readChecked(req, validators.promote, WRITE_RULES['PUT /deployments/{id}']!, true)
    const r = await cp.write(async (tx) => {
      const o = await deploymentFor(tx, p, id)
      if (o) {
        const target = body.to_environment ?? cp.environments[cp.environments.indexOf(o.environment) + 1]
        if (target !== undefined) checkEnvironment(p, target, 'to_environment')
      }
      return promoteDeployment(bound(req, p, tx, o?.team), id, body.to_environment, ctx(req))
    })
    sendWithEtag(res, r.created ? 201 : 200, r.view, r.view.revision, location(r.view.id))
  })

  admin.route('GET', `${BASE}/deployments/{id}/history`, async (req, res, params) => {
    const p = authorize(req, 'deployments.read')
    const id = requireUuid('deployment', params['id'])
    const page = pageOf(queryOf(req))
    sendJson(res, 200, await cp.read(async (db) => { await deploymentFor(db, p, id); return deploymentHistory(db, id, page) }))
  })

  admin.route('GET', `${BASE}/deployments/{id}/health`, async (req, res, params) => {
    const p = authorize(req, 'deployments.read')
    const id = requireUuid('deployment', params['id'])
    const window = windowSeconds(queryOf(req))
    sendJson(res, 200, await cp.read(async (db) => {
      await deploymentFor(db, p, id)
      await getDeployment(db, id)
      return deploymentHealth(db, id, window)
    }))
  })
}
