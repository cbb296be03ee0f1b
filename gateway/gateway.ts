/**
 * The data plane's composition root: settings → first pipeline generation → listener. Owns hot
 * reload (file watch, SIGHUP, admin API) and graceful shutdown. Registries (plugins, providers)
 * are reached only from here and from pipeline/compile.ts.
 */
import { watch, type FSWatcher } from 'node:fs'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { Logger } from 'pino'
import { adapterFactory } from '../providers/registry.ts'
import { pluginFactory } from '../plugins/index.ts'
import { GatewayError, isGatewayError } from './errors.ts'
import { createHandler, type RouteSpec } from './handler.ts'
import { openaiErrorBody } from './inbound/openai.ts'
import { compilePipeline, type CompileDeps } from './pipeline/compile.ts'
import { PipelineHolder } from './pipeline/holder.ts'
import type { Inbound } from './inbound/types.ts'
import type { Pipeline } from './pipeline/pipeline.ts'
import type { PluginDeps, PluginFactory, PluginServices } from './pipeline/types.ts'
import { MODEL_PREFIX, modelById, ROUTES } from './routes.ts'
import { configDirs, hashOf, loadSettings, redactSettings, type Settings } from './settings.ts'
import { GatewayMetrics } from './telemetry.ts'
import { openUpstream } from './upstream/open.ts'
import { Pools } from './upstream/pools.ts'
import { guardedConnect } from '../providers/shared/safe-url.ts'
import { createRoutingMetrics } from './routing/metrics.ts'
import { RetryBudget, type RouterDeps } from './routing/router.ts'
import { TargetRegistry } from './routing/target-state.ts'
import { HealthChecker } from './routing/health.ts'
import { Tracing } from './tracing.ts'
import { endSocket, ListenerGuard } from './hardening/guard.ts'
import { createListener } from './hardening/tls.ts'

export interface ReloadResult {
  ok: boolean
  source: string
  at: string
  generation: number
  hash: string
  error?: string
}

export interface GatewayOptions {
  logger: Logger
  /** Load settings (default: node-config files + environment). Called again on every reload. */
  load?: () => Settings
  /** Extra route specs (the Anthropic inbound API, execute) registered by the composition root. */
  routes?: ReadonlyMap<string, RouteSpec>
  plugins?: (name: string) => PluginFactory | undefined
  /** Shared clients for plugins (execution-log sink, Redis, key store). */
  services?: PluginServices
  /**
   * Origins whose connections are checked again at connect time against the SSRF policy (providers
   * that arrived through the admin API): the resolved address must pass, so DNS rebinding is caught.
   */
  guardOrigin?: (origin: string) => boolean
}

/** Settings read only at start; a reload that changes them says so (they apply after a restart). */
const RESTART_ONLY = ['server', 'admin', 'upstream', 'dataDir', 'databaseUrl', 'pglite', 'redisUrl'] as const

/**
 * Shutdown past its deadline: how long the requests ended with MCP_ERR_SERVER_DRAINING get to write their error event
 * or answer and to run onComplete (budget settlement, cost, execution-log row) before the connections close.
 */
const TERMINATE_GRACE_MS = 1000

export class Gateway {
  readonly log: Logger
  readonly metrics: GatewayMetrics
  readonly pools: Pools
  readonly holder: PipelineHolder
  readonly targets: TargetRegistry
  /** OpenTelemetry tracing, when `telemetry.tracing.enabled` (read at start). */
  readonly tracing: Tracing | undefined
  readonly #router: RouterDeps
  readonly #health: HealthChecker
  readonly #load: () => Settings
  readonly #routes: Map<string, RouteSpec>
  /** Path → the methods it serves (the `Allow` header of a 405). */
  readonly #allowed: Map<string, string>
  readonly #compileDeps: CompileDeps
  #server: http.Server | undefined
  readonly #handle: ReturnType<typeof createHandler>
  #watchers: FSWatcher[] | undefined
  #reloading: Promise<ReloadResult> = Promise.resolve({ ok: true, source: 'boot', at: '', generation: 0, hash: '' })
  #generation = 1
  #draining = false
  /** Every route's inbound API by name (an error answer in the request's own API's shape). */
  readonly #inbounds: ReadonlyMap<string, Inbound>
  lastReload: ReloadResult

  private constructor(opts: GatewayOptions, first: Pipeline, deps: CompileDeps, metrics: GatewayMetrics, pools: Pools, tracing: Tracing | undefined) {
    this.targets = deps.targets
    this.tracing = tracing
    this.#router = { budget: new RetryBudget(() => metrics.inflight), metrics: createRoutingMetrics(metrics.registry, deps.targets), tracing: this.tracing }
    this.log = opts.logger
    this.#load = opts.load ?? loadSettings
    this.metrics = metrics
    this.pools = pools
    this.#compileDeps = deps
    this.holder = new PipelineHolder(first, opts.logger)
    this.#routes = new Map([...ROUTES, ...(opts.routes ?? [])])
    const methods = new Map<string, string[]>()
    for (const k of this.#routes.keys()) {
      const path = k.slice(k.indexOf(' ') + 1)
      const method = k.slice(0, k.indexOf(' '))
      methods.set(path, [...(methods.get(path) ?? []), ...(method === 'GET' ? ['GET', 'HEAD'] : [method])])
    }
    this.#allowed = new Map([...methods].map(([path, m]) => [path, m.join(', ')]))
    this.#inbounds = new Map([...this.#routes.values()].flatMap((s) => [s, ...(s.anthropic ? [s.anthropic] : [])]).map((s) => [s.inbound.name, s.inbound]))
    this.#handle = createHandler({ holder: this.holder, log: this.log, metrics: this.metrics, router: this.#router, tracing: this.tracing, inbounds: this.#inbounds })
    this.#health = new HealthChecker(this.holder, opts.logger)
    this.#health.start()
    this.lastReload = { ok: true, source: 'boot', at: new Date().toISOString(), generation: first.generation, hash: first.hash }
  }

  static async create(opts: GatewayOptions): Promise<Gateway> {
    const settings = (opts.load ?? loadSettings)()
    const metrics = new GatewayMetrics()
    const guard = opts.guardOrigin
    const pools = new Pools(settings.upstream, guard
      ? (origin) => guard(origin)
        ? guardedConnect({ allowHttp: settings.security.allowHttpProviderUrls, allowlist: settings.security.providerUrlAllowlist }, { timeout: settings.upstream.connectTimeoutMs })
        : undefined
      : undefined)
    const plugins = opts.plugins ?? pluginFactory
    const deps: CompileDeps = {
      plugin: plugins,
      adapter: adapterFactory,
      dispatcherFor: (origin) => pools.get(origin),
      pluginDeps: (name, s): PluginDeps => ({
        logger: opts.logger.child({ plugin: name }),
        metrics: metrics.registry,
        services: opts.services ?? {},
        env: { adminKey: s.admin.key, production: process.env['NODE_ENV'] === 'production' },
      }),
      terminal: openUpstream,
      targets: new TargetRegistry(),
    }
    const first = await compilePipeline(settings, deps, undefined, 1)
    const t = first.settings.telemetry.tracing
    return new Gateway(opts, first, deps, metrics, pools, t.enabled ? await Tracing.create(t) : undefined)
  }

  get settings(): Settings {
    return this.holder.current.settings
  }

  get draining(): boolean {
    return this.#draining
  }

  /** Builds and validates a new generation from freshly read settings, then swaps it in. Serialised. */
  reload(source: string): Promise<ReloadResult> {
    this.#reloading = this.#reloading.then(() => this.#reloadNow(source))
    return this.#reloading
  }

  async #reloadNow(source: string): Promise<ReloadResult> {
    const prev = this.holder.current
    const at = new Date().toISOString()
    try {
      const settings = this.#load()
      if (hashOf(settings) === prev.hash) {
        this.lastReload = { ok: true, source, at, generation: prev.generation, hash: prev.hash }
        return this.lastReload
      }
      // Read once at start: the listeners, the upstream pools, the store and Redis connections.
      const restartOnly = RESTART_ONLY.filter((k) => hashOf(settings[k] ?? null) !== hashOf(prev.settings[k] ?? null))
      if (restartOnly.length > 0) this.log.warn({ sections: restartOnly }, 'these settings take effect only after a restart')
      const next = await compilePipeline(settings, this.#compileDeps, prev, ++this.#generation)
      this.holder.swap(next, settings.reload.drainTimeoutMs)
      // Targets no alias uses any more leave the registry now (their gauges with them); their breakers are shut
      // down once the previous generation, which may still be calling them, drained.
      const gone = this.targets.retain(new Set([...next.aliases.values()].flatMap((a) => a.targets.map((t) => t.state))))
      if (gone.length > 0) void prev.drained(settings.reload.drainTimeoutMs).then(() => { for (const s of gone) s.close() })
      this.lastReload = { ok: true, source, at, generation: next.generation, hash: next.hash }
      this.log.info({ generation: next.generation, hash: next.hash, source }, 'configuration reloaded')
    } catch (e) {
      const error = isGatewayError(e) ? e.message : `Configuration rejected: ${(e as Error).message}`
      this.lastReload = { ok: false, source, at, generation: prev.generation, hash: prev.hash, error }
      this.log.error({ source, error }, 'configuration reload refused; the running configuration keeps serving')
    }
    return this.lastReload
  }

  /** The running configuration with secrets redacted (GET /api/v1/mcp/config). */
  describe(): Record<string, unknown> {
    const p = this.holder.current
    return {
      generation: p.generation,
      hash: p.hash,
      lastReload: this.lastReload,
      routes: Object.fromEntries([...p.routes].map(([n, r]) => [n, { plugins: r.plugins, passthrough: r.passthrough, ...(r.rewritesRequest !== undefined ? { rewritesRequest: r.rewritesRequest } : {}) }])),
      aliases: [...p.aliases.keys()],
      settings: redactSettings(p.settings),
    }
  }

  watchConfig(): void {
    const s = this.settings
    if (!s.reload.watch || this.#watchers) return
    let timer: NodeJS.Timeout | undefined
    const changed = (): void => {
      clearTimeout(timer)
      timer = setTimeout(() => void this.reload('file'), s.reload.debounceMs)
    }
    this.#watchers = []
    for (const dir of configDirs()) {
      try {
        const w = watch(dir, changed)
        w.on('error', (e) => this.log.error({ err: e, dir }, 'config watcher failed'))
        this.#watchers.push(w)
      } catch (e) {
        this.log.error({ err: e, dir }, 'cannot watch a config directory')
      }
    }
  }

  listen(): Promise<AddressInfo> {
    const s = this.settings.server
    const handle = this.#handle
    const guard = new ListenerGuard({ listener: 'data', limits: s.limits, shedding: s.shedding, tls: s.tls !== undefined, registry: this.metrics.registry, log: this.log })
    const server = createListener(s.tls, {
      maxHeaderSize: s.maxHeaderSize,
      requestTimeout: s.requestTimeoutMs,
      headersTimeout: s.headersTimeoutMs,
      keepAliveTimeout: s.keepAliveTimeoutMs,
      // How often headersTimeout/requestTimeout are enforced (Node's default, 30 s, lets slow clients linger).
      connectionsCheckingInterval: Math.min(1000, s.headersTimeoutMs),
      requireHostHeader: false,
      insecureHTTPParser: false,
      joinDuplicateHeaders: false,
    }, guard.wrap((req, res) => {
      const t0 = performance.now()
      if (this.#draining) res.shouldKeepAlive = false
      const url = req.url ?? '/'
      const q = url.indexOf('?')
      const path = q === -1 ? url : url.slice(0, q)
      // HEAD is GET without the body (Node leaves it out of a HEAD response).
      const method = req.method === 'HEAD' ? 'GET' : req.method
      let spec = this.#routes.get(`${method} ${path}`)
      if (spec === undefined && method === 'GET' && path.startsWith(MODEL_PREFIX)) spec = modelById
      if (spec) {
        if (spec.anthropic !== undefined && req.headers['anthropic-version'] !== undefined) spec = spec.anthropic
        handle(spec, req, res, t0)
        return
      }
      const allow = this.#allowed.get(path) ?? (path.startsWith(MODEL_PREFIX) ? 'GET, HEAD' : undefined)
      const code = allow !== undefined ? 'MCP_ERR_REQ_METHOD_NOT_ALLOWED' : 'MCP_ERR_REQ_NOT_FOUND'
      const g = new GatewayError(code, { method: String(req.method).slice(0, 16), path: path.slice(0, 200) })
      const body = JSON.stringify(openaiErrorBody(g, ''))
      // A 405 names the methods the path serves (RFC 9110 15.5.6).
      res.writeHead(g.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-mcp-error-code': g.code, ...(allow !== undefined ? { allow } : {}) })
      res.end(body)
      req.resume()
    }), this.log)
    guard.attach(server)
    server.keepAliveTimeout = s.keepAliveTimeoutMs
    server.maxRequestsPerSocket = s.maxRequestsPerSocket
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => writeClientError(err, socket, this.answerClientError))
    this.#server = server
    return new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(s.port, s.host, () => { server.off('error', reject); resolve(server.address() as AddressInfo) })
    })
  }

  /**
   * For writeClientError: a request of the pipeline (data plane, or execute on the admin port) whose body was still
   * being read when the parser raised the error is answered through its own error path. False for anything else.
   */
  readonly answerClientError = (res: http.ServerResponse, error: GatewayError): boolean => this.#handle.answerClientError(res, error, this.#inbounds)

  /** Runs one round of active health checks now (the interval runs them anyway; tests and operators). */
  checkHealthNow(): Promise<void> {
    return this.#health.checkNow()
  }

  /**
   * Serves one request through the data-plane pipeline from another listener (the admin port's
   * `POST /api/v1/mcp/execute`). Returns false when no route has that key (`METHOD /path`).
   */
  serve(routeKey: string, req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const spec = this.#routes.get(routeKey)
    if (!spec) return false
    if (this.#draining) res.shouldKeepAlive = false
    this.#handle(spec, req, res, performance.now())
    return true
  }

  /**
   * Graceful shutdown: stop accepting, let in-flight requests and streams finish up to the
   * deadline, then end the rest explicitly (MCP_ERR_SERVER_DRAINING: a stream's error event, a
   * 503 before the headers; their upstream calls aborted), give them TERMINATE_GRACE_MS to write it
   * and to complete, close the connections left and the upstream pools.
   */
  async shutdown(deadlineMs = this.settings.server.shutdownDeadlineMs): Promise<boolean> {
    this.#draining = true
    for (const w of this.#watchers ?? []) w.close()
    const server = this.#server
    const closed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve()
    server?.closeIdleConnections()
    const clean = await this.holder.drainAll(deadlineMs)
    if (!clean) {
      // A stream cut without a word would look complete to an SDK that stops at the end of the body.
      const n = this.#handle.terminate(new GatewayError('MCP_ERR_SERVER_DRAINING', {}, { details: 'server.shutdown_deadline' }), this.#inbounds)
      this.log.warn({ requests: n, deadlineMs }, 'shutdown deadline reached: requests still in flight end with MCP_ERR_SERVER_DRAINING')
      await this.holder.drainAll(TERMINATE_GRACE_MS)
    }
    server?.closeAllConnections()
    await closed
    await this.pools.close()
    for (const a of this.holder.current.providers.values()) await a.close().catch(() => {})
    for (const i of new Set(this.holder.current.instances.values())) await Promise.resolve(i.close?.()).catch(() => {})
    this.metrics.close()
    this.#health.stop()
    this.targets.close()
    await this.tracing?.shutdown().catch(() => {})
    return clean
  }
}

/**
 * Parser-level errors (bad framing, oversize headers, timeouts) get a JSON answer and a closed socket.
 * When a response is already in progress on the connection: if its request is still being read (bad
 * chunking, a slow body) and nobody answered by the next turn, the answer goes through that response:
 * through `answer` when the request is one of the pipeline's (Gateway.answerClientError: its request id,
 * its API's error shape, its error code in metrics, logs and onComplete), else as a bare JSON error;
 * otherwise the connection closes once that response is done.
 */
export function writeClientError(err: NodeJS.ErrnoException, socket: Socket, answer?: (res: http.ServerResponse, error: GatewayError) => boolean): void {
  if (!socket.writable || err.code === 'ECONNRESET') { socket.destroy(); return }
  let g: GatewayError
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW': g = new GatewayError('MCP_ERR_REQ_HEADERS_TOO_LARGE', {}, { details: 'request.headers_too_large' }); break
    case 'ERR_HTTP_REQUEST_TIMEOUT': g = new GatewayError('MCP_ERR_REQ_TIMEOUT', {}, { details: 'request.timeout' }); break
    default: g = new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason: `malformed HTTP request (${err.code ?? 'parse error'})` }, { details: 'request.malformed_http' })
  }
  const body = JSON.stringify(openaiErrorBody(g, ''))
  const res = (socket as Socket & { _httpMessage?: http.ServerResponse | null })._httpMessage
  if (res) {
    // After the handlers that answer within this turn (they go first); before those that wait for the body.
    setImmediate(() => {
      if (!res.headersSent && !res.req.complete) {
        if (answer?.(res, g)) return
        res.shouldKeepAlive = false
        res.writeHead(g.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-mcp-error-code': g.code })
        res.end(body)
      } else if (res.writableFinished) socket.destroy()
      else res.once('finish', () => socket.destroy())
    })
    return
  }
  endSocket(socket, `HTTP/1.1 ${g.status} ${http.STATUS_CODES[g.status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-mcp-error-code: ${g.code}\r\nconnection: close\r\n\r\n${body}`)
}
