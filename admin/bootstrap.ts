/**
 * startMcp: the whole process as main.ts runs it, and as the tests start it. Store → keyring → control plane
 * (first snapshot) → gateway (whose `load` merges the snapshot's providers into the file configuration, and whose
 * routes include POST /api/v1/mcp/execute) → admin API (management routes, execute through the same pipeline,
 * readiness check `database`, non-critical) → listeners → snapshot poller.
 *
 * Access control (docs/rbac.md): API keys live in the snapshot; the key resolver built here serves them to the data
 * plane's auth plugin (`services.keys`) and to the admin gate, and records last use in the background. Refused
 * admin requests and every configuration reload (admin route, SIGHUP, file watch, provider changes: `gw.reload`
 * is wrapped) go to the audit log through a bounded background queue.
 *
 * Provider names: the API refuses a name the files define (409). Should a file later define a name the API
 * already holds, the file's entry wins and a warning is logged.
 */
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import type { RouteSpec } from '../gateway/handler.ts'
import { Gateway, type GatewayOptions } from '../gateway/gateway.ts'
import type { PluginServices } from '../gateway/pipeline/types.ts'
import { deepFreeze, parseSettings, readRawConfig, type Settings } from '../gateway/settings.ts'
import { openStore, type OpenStoreOptions } from '../store/index.ts'
import type { Store } from '../store/types.ts'
import { ControlPlane } from './control-plane.ts'
import type { Keyring } from './crypto.ts'
import { EXECUTE_ROUTE_KEY, executeRouteSpec } from './execute.ts'
import { loadKeyring } from './master-key.ts'
import { buildOpenApi, servedOperations } from './openapi.ts'
import { registerDeploymentRoutes } from './routes/deployments.ts'
import { registerPromptRoutes } from './routes/prompts.ts'
import { apiProviderOrigins } from './provider-url.ts'
import { registerProviderRoutes } from './routes/providers.ts'
import { AdminServer, sendAdminError, sendJson, type AdminRefusal } from './server.ts'
import type { ProviderSettings } from './snapshot.ts'
import { GatewayError } from '../gateway/errors.ts'
import { AuditQueue, auditActor, SYSTEM_ACTOR, type AuditActor } from './audit.ts'
import { SnapshotKeyResolver } from './keys.ts'
import { fleetHashOf, InstanceRegistry, perInstanceOf, registerInstanceRoutes } from './instances.ts'
import { authorize } from './rbac.ts'
import { registerAuditRoutes } from './routes/audit.ts'
import { registerKeyRoutes } from './routes/keys.ts'

export interface StartMcpOptions {
  logger: Logger
  /** The raw configuration (files + environment), read again at every reload. Default: readRawConfig. */
  rawConfig?: () => Record<string, unknown>
  /** An open, migrated store (tests). Default: opened from the settings (databaseUrl, else PGlite under dataDir). */
  store?: Store
  /** Extra options for openStore when the store is opened here. */
  storeOptions?: Partial<OpenStoreOptions>
  /** Default: loadKeyring (MCP_MASTER_KEYS / MCP_MASTER_KEY / development key file). */
  keyring?: Keyring
  environments?: readonly string[]
  pollIntervalMs?: number
  pollTimeoutMs?: number
  plugins?: GatewayOptions['plugins']
  /** Shared clients for plugins, or a function building them from the store (execution-log sink, ...). */
  services?: PluginServices | ((store: Store, cp: ControlPlane) => PluginServices)
  /** More data-plane routes. */
  routes?: ReadonlyMap<string, RouteSpec>
  /** More admin routes, registered after the built-in ones (executions, keys, ...). */
  adminRoutes?: (admin: AdminServer, cp: ControlPlane, gw: Gateway) => void
  /** Runs at shutdown after the data plane drained, before the store closes (final flushes of batched writers). */
  beforeStoreClose?: () => Promise<void>
  /** How often last_used_at of API keys is written, ms. Default 60000. */
  keyUsageFlushMs?: number
  /** How often this instance's row of gateway_instances is written and the fleet read (admin/instances.ts). Default 15 000 ms. */
  instanceHeartbeatMs?: number
}

export interface Mcp {
  gw: Gateway
  admin: AdminServer
  cp: ControlPlane
  store: Store
  data: AddressInfo
  adminAddress: AddressInfo
  url: string
  adminUrl: string
  /** Stops polling, drains the data plane, closes the admin listener and the store. */
  close(deadlineMs?: number): Promise<boolean>
}

/** File settings plus the API's providers; a name the files define wins. */
export function mergeApiProviders(file: Settings, api: ReadonlyMap<string, ProviderSettings>, log?: Logger): Settings {
  if (api.size === 0) return file
  const providers: Settings['providers'] = { ...file.providers }
  const aliases = (file as { models?: Record<string, unknown> }).models ?? {}
  for (const [name, p] of api) {
    if (name in providers || name in aliases) {
      log?.warn({ provider: name }, 'a provider added through the API has the name of a file-configured provider or alias: the file wins')
      continue
    }
    providers[name] = p as Settings['providers'][string]
  }
  return deepFreeze({ ...file, providers })
}

/** GET /config's body with the credential fields of API providers redacted (a name the files define shows the file's entry). */
export function redactApiCredentials(described: Record<string, unknown>, fields: ReadonlyMap<string, readonly string[]>, file: Settings): Record<string, unknown> {
  const settings = described['settings'] as { providers?: Record<string, Record<string, unknown>> } | undefined
  const shown = settings?.providers
  if (!shown || fields.size === 0) return described
  const providers: Record<string, Record<string, unknown>> = { ...shown }
  for (const [name, names] of fields) {
    const p = providers[name]
    if (!p || name in file.providers) continue
    const copy = { ...p }
    for (const f of names) if (f in copy) copy[f] = '[redacted]'
    providers[name] = copy
  }
  return { ...described, settings: { ...settings, providers } }
}

function hostOf(a: AddressInfo): string {
  return a.family === 'IPv6' ? `[${a.address}]` : a.address === '0.0.0.0' ? '127.0.0.1' : a.address
}

function refusalEntry(r: AdminRefusal): Parameters<AuditQueue['push']>[0] {
  return {
    action: 'admin.refused', objectType: 'admin_request', objectId: `${r.method} ${r.path}`,
    after: { status: r.status, code: r.code, reason: r.reason, method: r.method, path: r.path, ...(r.presentedPrefix ? { presented_prefix: r.presentedPrefix } : {}) },
    actor: auditActor(r.req, r.principal),
  }
}

/**
 * Every configuration reload writes an audit row: `gw.reload` is wrapped (SIGHUP, file watch, provider changes:
 * actor `system`); the returned function reloads on behalf of a known actor (the admin route).
 */
function auditReloads(gw: Gateway, queue: AuditQueue): (actor: AuditActor, source: string) => Promise<Awaited<ReturnType<Gateway['reload']>>> {
  const reload = gw.reload.bind(gw)
  const as = async (actor: AuditActor, source: string): Promise<Awaited<ReturnType<Gateway['reload']>>> => {
    const before = gw.lastReload
    const r = await reload(source)
    queue.push({
      action: r.ok ? 'config.reload' : 'config.reload_refused', objectType: 'config', objectId: `generation ${r.generation}`,
      before: { generation: before.generation, hash: before.hash }, after: r, actor,
    })
    return r
  }
  gw.reload = (source: string) => as(SYSTEM_ACTOR, source)
  return as
}

export async function startMcp(opts: StartMcpOptions): Promise<Mcp> {
  const log = opts.logger
  const rawConfig = opts.rawConfig ?? readRawConfig
  let fileSettings = parseSettings(rawConfig())
  const store = opts.store ?? await openStore({
    dataDir: fileSettings.dataDir,
    pgliteSharedBuffers: fileSettings.pglite.sharedBuffers,
    ...(fileSettings.databaseUrl ? { databaseUrl: fileSettings.databaseUrl } : {}),
    onError: (err) => log.warn({ err }, 'store: database client error'),
    ...opts.storeOptions,
  })
  const ownsStore = opts.store === undefined
  try {
    const keyring = opts.keyring ?? await loadKeyring({ dataDir: fileSettings.dataDir, log })
    const cp = new ControlPlane({
      store, keyring, log,
      ...(opts.environments ? { environments: opts.environments } : {}),
      ...(opts.pollIntervalMs !== undefined ? { pollIntervalMs: opts.pollIntervalMs } : {}),
      ...(opts.pollTimeoutMs !== undefined ? { pollTimeoutMs: opts.pollTimeoutMs } : {}),
      fileProviderNames: () => new Set(Object.keys(fileSettings.providers)),
      aliasNames: () => new Set(Object.keys((fileSettings as { models?: Record<string, unknown> }).models ?? {})),
    })
    await cp.init()
    const given = typeof opts.services === 'function' ? opts.services(store, cp) : opts.services
    const keys = new SnapshotKeyResolver({
      keys: () => cp.snapshot.keys, store, log, ...(opts.keyUsageFlushMs !== undefined ? { flushIntervalMs: opts.keyUsageFlushMs } : {}),
    })
    const services = { ...given, keys: given?.keys ?? keys }
    const gw = await Gateway.create({
      logger: log,
      load: () => {
        fileSettings = parseSettings(rawConfig())
        return mergeApiProviders(fileSettings, cp.snapshot.providers, log)
      },
      routes: new Map([[EXECUTE_ROUTE_KEY, executeRouteSpec(() => cp.snapshot, cp.environments)], ...(opts.routes ?? [])]),
      ...(opts.plugins ? { plugins: opts.plugins } : {}),
      services,
      // Providers from the API are checked again at connect time (DNS rebinding): their origins, from the URL the
      // adapter uses (a provider without baseUrl connects to its adapter's default: Ollama's is the loopback address).
      guardOrigin: (origin) => apiProviderOrigins(cp.snapshot.providers.values()).has(origin),
    })
    const auditQueue = new AuditQueue({ store, log, metrics: gw.metrics.registry })
    const reloadAs = auditReloads(gw, auditQueue)
    cp.onProvidersChanged(() => gw.reload('api'))
    cp.attachMetrics(gw.metrics.registry)
    const instances = new InstanceRegistry({
      store, log,
      state: () => ({ configHash: fleetHashOf(gw.holder.current.settings), redis: services.redis !== undefined, perInstance: perInstanceOf(gw.holder.current, services) }),
      ...(opts.instanceHeartbeatMs !== undefined ? { heartbeatMs: opts.instanceHeartbeatMs } : {}),
    })
    instances.bindMetrics(gw.metrics.registry)

    const admin = new AdminServer(gw)
    admin.configureAuth({ keys: services.keys, onRefusal: (r) => auditQueue.push(refusalEntry(r)), onChange: (e) => auditQueue.push(e) })
    // The built-in reload route again, so that its audit row names the caller.
    admin.route('POST', '/api/v1/mcp/config/reload', async (req, res) => {
      req.resume()
      const r = await reloadAs(auditActor(req, authorize(req, 'config.reload')), 'api')
      if (r.ok) sendJson(res, 200, r)
      else sendAdminError(res, new GatewayError('MCP_ERR_CONFIG_INVALID', {}, { message: r.error ?? 'Configuration rejected', details: 'config.invalid' }))
    })
    // The built-in config route again: its redaction goes by field name, but a credential of an API provider is a
    // secret whatever its name (organization, project): every field that came from credentials is redacted too.
    admin.route('GET', '/api/v1/mcp/config', (req, res) => {
      req.resume()
      authorize(req, 'config.read')
      sendJson(res, 200, redactApiCredentials(gw.describe(), cp.snapshot.credentialFields, fileSettings))
    })
    registerPromptRoutes(admin, cp)
    registerDeploymentRoutes(admin, cp)
    registerProviderRoutes(admin, cp, () => ({ allowHttp: gw.settings.security.allowHttpProviderUrls, allowlist: gw.settings.security.providerUrlAllowlist }))
    registerKeyRoutes(admin, cp, () => new Map([...gw.holder.current.routes].map(([name, r]) => [name, r.plugins])))
    registerAuditRoutes(admin, cp)
    registerInstanceRoutes(admin, instances)
    // Built at the first request, when every route is registered: it documents the operations this server serves.
    let openapi: Record<string, unknown> | undefined
    admin.route('GET', '/api/v1/mcp/openapi.json', (req, res) => {
      req.resume()
      openapi ??= buildOpenApi(servedOperations(admin.routes()))
      sendJson(res, 200, openapi)
    })
    admin.route('POST', '/api/v1/mcp/execute', (req, res) => { gw.serve(EXECUTE_ROUTE_KEY, req, res) })
    opts.adminRoutes?.(admin, cp, gw)
    admin.addReadinessCheck({ name: 'database', critical: false, check: () => cp.databaseUp })
    admin.addReadinessCheck({ name: 'shared_limits', critical: false, check: () => !instances.limitsPerInstance })

    const data = await gw.listen()
    const s = gw.settings
    let adminAddress: AddressInfo
    try {
      adminAddress = await admin.listen(s.admin.host, s.admin.port, s.admin.key)
    } catch (e) {
      await gw.shutdown(0)
      throw e
    }
    cp.start()
    instances.start()
    return {
      gw, admin, cp, store, data, adminAddress,
      url: `http://${hostOf(data)}:${data.port}`,
      adminUrl: `http://${hostOf(adminAddress)}:${adminAddress.port}`,
      async close(deadlineMs?: number) {
        cp.stop()
        const clean = await gw.shutdown(deadlineMs)
        await admin.close()
        await keys.close()
        await auditQueue.close()
        await instances.close()
        await opts.beforeStoreClose?.().catch((e: unknown) => log.error({ err: e }, 'final flush before the store closes failed'))
        if (ownsStore) await store.close()
        return clean
      },
    }
  } catch (e) {
    if (ownsStore) await store.close()
    throw e
  }
}
