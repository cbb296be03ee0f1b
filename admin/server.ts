/**
 * The admin listener: its own port, local by default, every route behind the admin key except the
 * probes. Probes: /healthz (alive), /readyz (config compiled, dependencies reachable; 503 while
 * draining; 200 `degraded` when only non-critical checks fail, e.g. the database). Behind the key: /metrics, GET /api/v1/mcp/config, POST /api/v1/mcp/config/reload.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { GatewayError } from '../gateway/errors.ts'
import type { Gateway } from '../gateway/gateway.ts'
import { writeClientError } from '../gateway/gateway.ts'
import { openaiErrorBody } from '../gateway/inbound/openai.ts'
import { errorAnswerHeaders } from '../gateway/routing/router.ts'
import { ListenerGuard } from '../gateway/hardening/guard.ts'
import { createListener } from '../gateway/hardening/tls.ts'
import type { KeyResolver } from '../plugins/auth/api-key.ts'
import { presentedKey } from '../plugins/auth/index.ts'
import type { Principal } from '../plugins/auth/scopes.ts'
import { adminRequestId, type AuditEntry } from './audit.ts'
import { createAdminAuthenticator } from './auth.ts'
import { bindPrincipal, can, forbidden, routeAction, TEAM_QUERY, teamFilter } from './rbac.ts'

export interface AdminRoute {
  (req: http.IncomingMessage, res: http.ServerResponse, params: Record<string, string>): void | Promise<void>
}

/** A refused admin request (401, 403, or 404 for another team's object), reported for the audit log. */
export interface AdminRefusal {
  req: http.IncomingMessage
  principal: Principal | undefined
  status: number
  code: string
  method: string
  path: string
  /** Machine reason: 'missing_key', 'invalid_key', 'expired_key', 'admin.forbidden', 'admin.not_found_scoped', ... */
  reason: string
  /** The public prefix of a presented API key that failed, never the secret. */
  presentedPrefix?: string
}

export interface AdminAuthOptions {
  /** API keys (the control plane's snapshot); without it only the bootstrap key (MCP_ADMIN_KEY) is accepted. */
  keys?: KeyResolver
  /** Called for every refused request; must not block (the audit queue). */
  onRefusal?: (r: AdminRefusal) => void
  /** Audit rows of changes that are not database writes (breaker states, ...); must not block. */
  onChange?: (e: AuditEntry) => void
}

const REFUSAL_CODES = new Set(['MCP_ERR_AUTH_FORBIDDEN', 'MCP_ERR_ADMIN_FIELD_FORBIDDEN'])

/** The longest an admin request may take to arrive (server.requestTimeoutMs when shorter). */
const ADMIN_REQUEST_TIMEOUT_MS = 60_000

export interface ReadinessCheck {
  name: string
  check(): Promise<boolean> | boolean
  /**
   * Default true: a failure makes /readyz answer 503. false: a failure is reported (`status: "degraded"`,
   * listed in `degraded`) but /readyz stays 200, for dependencies the data plane can serve without (the
   * database: static stability), so a load balancer does not pull every instance at once.
   */
  critical?: boolean
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return
  const text = JSON.stringify(body)
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

export function sendAdminError(res: http.ServerResponse, g: GatewayError, requestId = ''): void {
  if (res.headersSent) { res.destroy(); return }
  sendJson(res, g.status, openaiErrorBody(g, requestId), {
    'x-mcp-error-code': g.code, ...errorAnswerHeaders(g),
    // The announced body was not read: close rather than wait for it.
    ...(g.code === 'MCP_ERR_REQ_BODY_TOO_LARGE' ? { connection: 'close' } : {}),
  })
}

export class AdminServer {
  readonly #gw: Gateway
  readonly #checks: ReadinessCheck[] = []
  readonly #routes = new Map<string, AdminRoute>()
  /** Routes with `{param}` segments, matched in registration order after the exact ones. */
  readonly #patterns: { method: string; re: RegExp; names: string[]; pattern: string; handler: AdminRoute }[] = []
  #server: http.Server | undefined
  #auth: AdminAuthOptions = {}

  constructor(gw: Gateway) {
    this.#gw = gw
    this.route('GET', '/metrics', (_req, res) => {
      const text = gw.metrics.registry.render()
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(text) })
      res.end(text)
    })
    this.route('GET', '/api/v1/mcp/config', (_req, res) => sendJson(res, 200, gw.describe()))
    this.route('POST', '/api/v1/mcp/config/reload', async (req, res) => {
      req.resume()
      const r = await gw.reload('api')
      if (r.ok) sendJson(res, 200, r)
      else sendAdminError(res, new GatewayError('MCP_ERR_CONFIG_INVALID', {}, { message: r.error ?? 'Configuration rejected', details: 'config.invalid' }))
    })
  }

  /**
   * API keys and the refusal callback, before listen(). Every route then needs a key whose role holds the route's
   * action (admin/rbac.ts ROUTE_ACTIONS; routes outside the table: the admin role); the bootstrap key is admin.
   */
  configureAuth(o: AdminAuthOptions): void {
    this.#auth = o
  }

  /** Every registered route as `METHOD pattern` (the route inventory test checks each has an action). */
  routes(): string[] {
    return [...this.#routes.keys(), ...this.#patterns.map((p) => `${p.method} ${p.pattern}`)]
  }

  /** Records a change that has no database transaction of its own (the audit queue; nothing when not configured). */
  auditChange(e: AuditEntry): void {
    try { this.#auth.onChange?.(e) } catch (err) { this.#gw.log.error({ err }, 'admin: recording a change failed') }
  }

  #refuse(r: AdminRefusal): void {
    try { this.#auth.onRefusal?.(r) } catch (e) { this.#gw.log.error({ err: e }, 'admin: recording a refusal failed') }
  }

  /** Registers a route behind the admin key; `{name}` segments become `params.name` (one path segment each). */
  route(method: string, path: string, handler: AdminRoute): void {
    if (!path.includes('{')) { this.#routes.set(`${method} ${path}`, handler); return }
    const names: string[] = []
    const re = new RegExp('^' + path.split('/').map((seg) => {
      const m = /^\{(\w+)\}$/.exec(seg)
      if (!m) return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
      names.push(m[1]!)
      return '([^/]+)'
    }).join('/') + '$')
    this.#patterns.push({ method, re, names, pattern: path, handler })
  }

  /** The route for `method path`; `{ allow }` (the methods registered for the path) when only the method is wrong. */
  #match(method: string, path: string): { handler: AdminRoute; params: Record<string, string>; pattern: string } | { allow: string[] } | undefined {
    const exact = this.#routes.get(`${method} ${path}`)
    if (exact) return { handler: exact, params: {}, pattern: path }
    const allow = new Set<string>()
    for (const p of this.#patterns) {
      const m = p.re.exec(path)
      if (!m) continue
      if (p.method !== method) { allow.add(p.method); continue }
      const params: Record<string, string> = {}
      for (const [i, n] of p.names.entries()) {
        try { params[n] = decodeURIComponent(m[i + 1]!) } catch { params[n] = m[i + 1]! }
      }
      return { handler: p.handler, params, pattern: p.pattern }
    }
    for (const k of this.#routes.keys()) if (k.slice(k.indexOf(' ') + 1) === path) allow.add(k.slice(0, k.indexOf(' ')))
    return allow.size > 0 ? { allow: [...allow].sort() } : undefined
  }

  addReadinessCheck(c: ReadinessCheck): void {
    this.#checks.push(c)
  }

  async #ready(): Promise<{ ok: boolean; checks: Record<string, boolean>; degraded: string[] }> {
    const checks: Record<string, boolean> = { config: this.#gw.holder.current !== undefined, draining: !this.#gw.draining }
    const optional = new Set<string>()
    for (const c of this.#checks) {
      try { checks[c.name] = await c.check() } catch { checks[c.name] = false }
      if (c.critical === false) optional.add(c.name)
    }
    const failed = Object.entries(checks).filter(([, ok]) => !ok).map(([n]) => n)
    return { ok: failed.every((n) => optional.has(n)), checks, degraded: failed.filter((n) => optional.has(n)) }
  }

  listen(host: string, port: number, adminKey: string | undefined): Promise<AddressInfo> {
    const authenticate = createAdminAuthenticator(adminKey, this.#auth.keys)
    const gs = this.#gw.settings
    // Per-address caps and the failed-auth limiter as on the data plane; never load shedding (probes and /metrics stay reachable).
    const guard = new ListenerGuard({ listener: 'admin', limits: gs.server.limits, shedding: undefined, tls: gs.admin.tls !== undefined, registry: this.#gw.metrics.registry, log: this.#gw.log })
    const server = createListener(gs.admin.tls, {
      // The admin port's requests are short: at most a minute; the header timeout within it (Node refuses a longer one).
      maxHeaderSize: 16384, headersTimeout: Math.min(gs.server.headersTimeoutMs, ADMIN_REQUEST_TIMEOUT_MS, gs.server.requestTimeoutMs),
      requestTimeout: Math.min(ADMIN_REQUEST_TIMEOUT_MS, gs.server.requestTimeoutMs), connectionsCheckingInterval: 1000,
      requireHostHeader: false, insecureHTTPParser: false, joinDuplicateHeaders: false,
    }, guard.wrap((req, res) => {
      const url = req.url ?? '/'
      const q = url.indexOf('?')
      const path = q === -1 ? url : url.slice(0, q)
      // HEAD is GET without the body (RFC 9110 9.3.2; Node leaves the body out of a HEAD response): the same route,
      // the same permission.
      const verb = req.method === 'HEAD' ? 'GET' : String(req.method)
      if (verb === 'GET' && path === '/healthz') { sendJson(res, 200, { status: 'ok' }); return }
      if (verb === 'GET' && path === '/readyz') {
        void this.#ready().then((r) => {
          if (r.ok && r.degraded.length > 0) sendJson(res, 200, { status: 'degraded', checks: r.checks, degraded: r.degraded })
          else sendJson(res, r.ok ? 200 : 503, { status: r.ok ? 'ready' : this.#gw.draining ? 'draining' : 'degraded', checks: r.checks })
        })
        return
      }
      const method = String(req.method).slice(0, 16)
      const presented = presentedKey(req.headers)
      const auth = authenticate(presented)
      if (!auth.ok) {
        req.resume()
        const g = new GatewayError(auth.reason === 'missing' ? 'MCP_ERR_AUTH_MISSING' : 'MCP_ERR_AUTH_INVALID', {}, { headers: { 'www-authenticate': 'Bearer' } })
        const prefix = presented === undefined ? undefined : /^mcp_([0-9A-Za-z]{12})_/.exec(presented)?.[1]
        this.#refuse({ req, principal: undefined, status: 401, code: g.code, method, path: path.slice(0, 200), reason: `${auth.reason}_key`, ...(prefix ? { presentedPrefix: prefix } : {}) })
        sendAdminError(res, g)
        return
      }
      const principal = auth.principal
      bindPrincipal(req, principal)
      const match = this.#match(verb, path)
      if (match === undefined) {
        req.resume()
        sendAdminError(res, new GatewayError('MCP_ERR_REQ_NOT_FOUND', { method, path: path.slice(0, 200) }))
        return
      }
      if ('allow' in match) {
        req.resume()
        // RFC 9110 §15.5.6: a 405 names the methods the path does support.
        const allow = match.allow.includes('GET') ? [...match.allow, 'HEAD'].sort() : match.allow
        sendAdminError(res, new GatewayError('MCP_ERR_REQ_METHOD_NOT_ALLOWED', { method, path: path.slice(0, 200) }, { headers: { allow: allow.join(', ') } }))
        return
      }
      const action = routeAction(verb, match.pattern)
      const requestId = adminRequestId(req)
      if (action !== 'invoke') res.setHeader('x-request-id', requestId)
      if (!can(principal, action)) {
        req.resume()
        const g = forbidden(principal, action)
        this.#refuse({ req, principal, status: g.status, code: g.code, method, path: path.slice(0, 200), reason: g.details })
        sendAdminError(res, g, requestId)
        return
      }
      const teamParam = TEAM_QUERY[`${verb} ${match.pattern}`]
      const team = teamFilter(principal)
      if (teamParam !== undefined && team !== undefined) {
        // Handlers that filter by a team parameter: a team-bound caller always gets its own team.
        const u = new URL(url, 'http://admin')
        u.searchParams.set(teamParam, team)
        req.url = u.pathname + u.search
      }
      Promise.resolve()
        .then(() => match.handler(req, res, match.params))
        .catch((e: unknown) => {
          if (!(e instanceof GatewayError)) this.#gw.log.error({ err: e }, 'admin handler failed')
          const g = e instanceof GatewayError ? e : new GatewayError('MCP_ERR_INTERNAL', { requestId })
          if (REFUSAL_CODES.has(g.code) || g.details === 'admin.not_found_scoped') {
            this.#refuse({ req, principal, status: g.status, code: g.code, method, path: path.slice(0, 200), reason: g.details })
          }
          sendAdminError(res, g, requestId)
        })
    }), this.#gw.log)
    guard.attach(server)
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => writeClientError(err, socket as import('node:net').Socket, this.#gw.answerClientError))
    this.#server = server
    return new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => { server.off('error', reject); resolve(server.address() as AddressInfo) })
    })
  }

  async close(): Promise<void> {
    const s = this.#server
    if (!s) return
    await new Promise<void>((r) => { s.close(() => r()); s.closeAllConnections() })
  }
}
