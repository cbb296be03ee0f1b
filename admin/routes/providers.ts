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
import type { ProviderUrlPolicy } from '../../providers/shared/safe-url.ts'
import { auditActor, bindAudit } from '../audit.ts'
import type { ControlPlane } from '../control-plane.ts'
import { checkProviderBaseUrl } from '../provider-url.ts'
import { checkIfMatch, enumParam, pageOf, queryOf, requireUuid, sendNoContent, sendWithEtag } from '../http.ts'
import { authorize, readChecked, WRITE_RULES } from '../rbac.ts'
import { createProvider, deleteProvider, getProvider, listProviders, updateProvider, type ProviderWriteContext } from '../repo/providers.ts'
import { PROVIDER_STATUSES, validators } from '../schemas.ts'
import { sendJson, type AdminServer } from '../server.ts'
import { requestIdOf } from './deployments.ts'

const BASE = '/api/v1/mcp'

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
    // The URL the adapter will use: the config's baseUrl, else the adapter's default (docs/security.md).
    await checkProviderBaseUrl(body.provider, body.config ?? {}, policy())
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
    // A config sent replaces the stored one: its effective URL is checked (a config without baseUrl means the adapter's
    // default). The type never changes, so reading it before the write's transaction is safe. No config sent keeps the
    // stored one: not checked again, so a provider can always be disabled (the connect-time guard judges it meanwhile).
    if (body.config !== undefined) {
      const current = await cp.read((db) => getProvider(db, id))
      await checkProviderBaseUrl(current.provider, body.config, policy())
    }
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
