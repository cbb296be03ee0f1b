/**
 * The admin listener: its own port, local by default, every route behind the admin key except the
 * probes. Probes: /healthz (alive), /readyz (config compiled, dependencies reachable; 503 while
 * draining). Behind the key: /metrics, GET /api/v1/mcp/config, POST /api/v1/mcp/config/reload.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { GatewayError } from '../gateway/errors.ts'
import type { Gateway } from '../gateway/gateway.ts'
import { writeClientError } from '../gateway/gateway.ts'
import { openaiErrorBody } from '../gateway/inbound/openai.ts'
import { createAdminKeyCheck } from './auth.ts'

export interface AdminRoute {
  (req: http.IncomingMessage, res: http.ServerResponse, params: Record<string, string>): void | Promise<void>
}

export interface ReadinessCheck {
  name: string
  check(): Promise<boolean> | boolean
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

export function sendAdminError(res: http.ServerResponse, g: GatewayError, requestId = ''): void {
  if (res.headersSent) { res.destroy(); return }
  sendJson(res, g.status, openaiErrorBody(g, requestId), { 'x-mcp-error-code': g.code, ...(g.headers ?? {}) })
}

export class AdminServer {
  readonly #gw: Gateway
  readonly #checks: ReadinessCheck[] = []
  readonly #routes = new Map<string, AdminRoute>()
  /** Routes with `{param}` segments, matched in registration order after the exact ones. */
  readonly #patterns: { method: string; re: RegExp; names: string[]; pattern: string; handler: AdminRoute }[] = []
  #server: http.Server | undefined

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

  #match(method: string, path: string): { handler: AdminRoute; params: Record<string, string> } | 'method' | undefined {
    const exact = this.#routes.get(`${method} ${path}`)
    if (exact) return { handler: exact, params: {} }
    let other = false
    for (const p of this.#patterns) {
      const m = p.re.exec(path)
      if (!m) continue
      if (p.method !== method) { other = true; continue }
      const params: Record<string, string> = {}
      for (const [i, n] of p.names.entries()) {
        try { params[n] = decodeURIComponent(m[i + 1]!) } catch { params[n] = m[i + 1]! }
      }
      return { handler: p.handler, params }
    }
    if (other || [...this.#routes.keys()].some((k) => k.slice(k.indexOf(' ') + 1) === path)) return 'method'
    return undefined
  }

  addReadinessCheck(c: ReadinessCheck): void {
    this.#checks.push(c)
  }

  async #ready(): Promise<{ ok: boolean; checks: Record<string, boolean> }> {
    const checks: Record<string, boolean> = { config: this.#gw.holder.current !== undefined, draining: !this.#gw.draining }
    for (const c of this.#checks) {
      try { checks[c.name] = await c.check() } catch { checks[c.name] = false }
    }
    return { ok: Object.values(checks).every(Boolean), checks }
  }

  listen(host: string, port: number, adminKey: string | undefined): Promise<AddressInfo> {
    const check = createAdminKeyCheck(adminKey)
    const server = http.createServer({ maxHeaderSize: 16384, headersTimeout: 10_000, requestTimeout: 60_000 }, (req, res) => {
      const url = req.url ?? '/'
      const q = url.indexOf('?')
      const path = q === -1 ? url : url.slice(0, q)
      if (req.method === 'GET' && path === '/healthz') { sendJson(res, 200, { status: 'ok' }); return }
      if (req.method === 'GET' && path === '/readyz') {
        void this.#ready().then((r) => sendJson(res, r.ok ? 200 : 503, { status: r.ok ? 'ready' : this.#gw.draining ? 'draining' : 'degraded', checks: r.checks }))
        return
      }
      const auth = check(req.headers)
      if (auth !== 'ok') {
        req.resume()
        sendAdminError(res, new GatewayError(auth === 'missing' ? 'MCP_ERR_AUTH_MISSING' : 'MCP_ERR_AUTH_INVALID', {}, { headers: { 'www-authenticate': 'Bearer' } }))
        return
      }
      const match = this.#match(String(req.method), path)
      if (match === undefined || match === 'method') {
        req.resume()
        sendAdminError(res, new GatewayError(match === 'method' ? 'MCP_ERR_REQ_METHOD_NOT_ALLOWED' : 'MCP_ERR_REQ_NOT_FOUND', { method: String(req.method).slice(0, 16), path: path.slice(0, 200) }))
        return
      }
      Promise.resolve()
        .then(() => match.handler(req, res, match.params))
        .catch((e: unknown) => {
          if (!(e instanceof GatewayError)) this.#gw.log.error({ err: e }, 'admin handler failed')
          sendAdminError(res, e instanceof GatewayError ? e : new GatewayError('MCP_ERR_INTERNAL', { requestId: '' }))
        })
    })
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => writeClientError(err, socket as import('node:net').Socket))
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
