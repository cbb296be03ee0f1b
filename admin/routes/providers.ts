/**
 * Providers: GET /providers (?provider, ?status, paginated) · POST /providers · GET /providers/{id}
 * PUT /providers/{id} (If-Match required) · DELETE /providers/{id} (If-Match required).
 * Credentials are never returned: a fingerprint and the last four characters. A change reaches the running
 * pipeline before the response (snapshot refresh, then gateway reload).
 *
 * Access (docs/rbac.md): providers are global (not team-owned); providers.read / providers.write, checked here.
 */
import type { IncomingMessage } from 'node:http'
import type { Principal } from '../../plugins/auth/scopes.ts'
import type { Queryable } from '../../store/types.ts'
import { GatewayError } from '../../gateway/errors.ts'
import { checkProviderUrl, type ProviderUrlPolicy } from '../../providers/shared/safe-url.ts'
import { auditActor, bindAudit } from '../audit.ts'
import type { ControlPlane } from '../control-plane.ts'
import { checkIfMatch, enumParam, pageOf, queryOf, requireUuid, sendNoContent, sendWithEtag } from '../http.ts'
import { authorize, readChecked, WRITE_RULES } from '../rbac.ts'
import { createProvider, deleteProvider, getProvider, listProviders, updateProvider, type ProviderWriteContext } from '../repo/providers.ts'
import { PROVIDER_STATUSES, validators } from '../schemas.ts'
import { sendJson, type AdminServer } from '../server.ts'
import { requestIdOf } from './deployments.ts'

const BASE = '/api/v1/mcp'

/**
 * SSRF guard for provider URLs arriving through the API: https only unless allowed, no credentials or
 * fragments, no private, loopback, link-local or metadata addresses unless the operator allowlist permits
 * (docs/security.md). A 422 names `config.baseUrl`.
 */
async function checkBaseUrl(body: unknown, policy: () => ProviderUrlPolicy): Promise<void> {
  const url = (body as { config?: { baseUrl?: unknown } } | null)?.config?.baseUrl
  if (typeof url !== 'string') return
  // A name that does not resolve from here is accepted: every connection is checked again by the connect-time guard.
  const errors = await checkProviderUrl(url, { ...policy(), allowUnresolvable: true })
  if (errors.length > 0) {
    throw new GatewayError('MCP_ERR_ADMIN_UNPROCESSABLE', { reason: `config.baseUrl: ${errors.join('; ')}` }, { param: 'config.baseUrl', details: 'admin.provider_url_refused' })
  }
}

export function registerProviderRoutes(admin: AdminServer, cp: ControlPlane, policy: () => ProviderUrlPolicy = () => ({})): void {
  const ctx = (req: IncomingMessage): ProviderWriteContext => ({
    keyring: cp.keyring, fileProviderNames: cp.fileProviderNames(), aliasNames: cp.aliasNames(), requestId: requestIdOf(req),
  })
  const bound = (req: IncomingMessage, p: Principal, tx: Queryable): Queryable => bindAudit(tx, { actor: auditActor(req, p), team: null })

  admin.route('GET', `${BASE}/providers`, async (req, res) => {
    authorize(req, 'providers.read')
    const q = queryOf(req)
    const page = pageOf(q)
    sendJson(res, 200, await cp.read((db) => listProviders(db, { provider: q.get('provider') ?? undefined, status: enumParam(q, 'status', PROVIDER_STATUSES) }, page)))
  })

  admin.route('POST', `${BASE}/providers`, async (req, res) => {
    const who = authorize(req, 'providers.write')
    const body = await readChecked(req, validators.providerCreate, WRITE_RULES['POST /providers']!)
    await checkBaseUrl(body, policy)
    const p = await cp.write((tx) => createProvider(bound(req, who, tx), body, ctx(req)))
    sendWithEtag(res, 201, p, p.revision, { location: `${BASE}/providers/${p.id}` })
  })

  admin.route('GET', `${BASE}/providers/{id}`, async (req, res, params) => {
    req.resume()
    authorize(req, 'providers.read')
    const id = requireUuid('provider', params['id'])
    const p = await cp.read((db) => getProvider(db, id))
    sendWithEtag(res, 200, p, p.revision)
  })

  admin.route('PUT', `${BASE}/providers/{id}`, async (req, res, params) => {
    const who = authorize(req, 'providers.write')
    const id = requireUuid('provider', params['id'])
    const body = await readChecked(req, validators.providerUpdate, WRITE_RULES['PUT /providers/{id}']!)
    await checkBaseUrl(body, policy)
    const p = await cp.write((tx) => updateProvider(bound(req, who, tx), id, body, (rev) => checkIfMatch(req, rev, `provider ${id}`, true), ctx(req)))
    sendWithEtag(res, 200, p, p.revision)
  })

  admin.route('DELETE', `${BASE}/providers/{id}`, async (req, res, params) => {
    req.resume()
    const who = authorize(req, 'providers.write')
    const id = requireUuid('provider', params['id'])
    await cp.write((tx) => deleteProvider(bound(req, who, tx), id, (rev) => checkIfMatch(req, rev, `provider ${id}`, true), ctx(req)))
    sendNoContent(res)
  })
}
