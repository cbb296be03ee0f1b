/**
 * The listener guard: what a listener checks before a request reaches its router and pipeline.
 *
 *   connection ── global cap (503) ── per-address cap (429)                       conn-limit.ts
 *   request    ── overloaded (503) ── per-address rate (429) ── auth-blocked (429)  shed.ts, ip-limiter.ts, auth-failures.ts
 *   response   ── a 401 carrying an auth error code feeds the failed-auth limiter
 *
 * Each check is O(1) on the request path: one boolean, one map lookup, one token bucket. Answers are
 * JSON errors in the API's shape (Anthropic's on /v1/messages, OpenAI's elsewhere) with Retry-After.
 * It also answers what Node would otherwise answer without JSON or not at all: CONNECT (405, closed)
 * and an unknown `Expect` (417).
 */
import { randomUUID } from 'node:crypto'
import http from 'node:http'
import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import { AddressSet } from '../../providers/shared/safe-url.ts'
import { GatewayError } from '../errors.ts'
import { localReplyError } from '../handler.ts'
import { anthropicErrorBody } from '../inbound/anthropic.ts'
import { openaiErrorBody } from '../inbound/openai.ts'
import type { CounterChild, Gauge, Metrics } from '../metrics.ts'
import { errorAnswerHeaders } from '../routing/router.ts'
import { clientKey } from './address.ts'
import { AuthFailureLimiter } from './auth-failures.ts'
import type { LimitSettings, SheddingSettings } from './config.ts'
import { ConnectionLimiter, type ConnectionRefusal } from './conn-limit.ts'
import { IpRateLimiter } from './ip-limiter.ts'
import { LoadShedder } from './shed.ts'
import type { RequestHandler } from './tls.ts'

export interface ListenerGuardOptions {
  /** Metric label: 'data' or 'admin'. */
  readonly listener: string
  readonly limits: LimitSettings
  /** Undefined: this listener never sheds (the admin listener stays reachable under overload). */
  readonly shedding: SheddingSettings | undefined
  /** TLS listeners close refused connections without an answer. */
  readonly tls: boolean
  readonly registry: Metrics
  readonly log: Logger
}

const AUTH_CODES = new Set(['MCP_ERR_AUTH_INVALID', 'MCP_ERR_AUTH_MISSING'])
const AUTH_CODE_IN_HEAD = /\r\nx-mcp-error-code: MCP_ERR_AUTH_(INVALID|MISSING)\r\n/i

/**
 * Whether a finished 401 is the gateway's own auth refusal (not a provider's 401 passed on). Headers
 * given to `writeHead(status, object)` are not kept for getHeader(), so the sent head is read too.
 */
function isAuthError(res: http.ServerResponse): boolean {
  const code = res.getHeader('x-mcp-error-code')
  if (code !== undefined) return AUTH_CODES.has(String(code))
  const head = (res as http.ServerResponse & { _header?: string | null })._header
  return typeof head === 'string' && AUTH_CODE_IN_HEAD.test(head)
}

function errorBody(path: string, g: GatewayError, requestId: string): string {
  return JSON.stringify(path.startsWith('/v1/messages') ? anthropicErrorBody(g, requestId) : openaiErrorBody(g, requestId))
}

/** A complete raw HTTP/1.1 answer with a JSON error body; the connection closes after it. */
export function rawErrorResponse(g: GatewayError, extra: Record<string, string> = {}): string {
  const body = JSON.stringify(openaiErrorBody(g, ''))
  let head = `HTTP/1.1 ${g.status} ${http.STATUS_CODES[g.status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-mcp-error-code: ${g.code}\r\nconnection: close\r\n`
  for (const [k, v] of Object.entries({ ...g.headers, ...extra })) head += `${k}: ${v}\r\n`
  return `${head}\r\n${body}`
}

/**
 * Sends a last answer and closes: FIN after the answer, then the socket is destroyed after `graceMs`
 * whatever the client does (a half-open server socket would otherwise stay open as long as a slow
 * client keeps sending).
 */
export function endSocket(socket: Socket, text: string, graceMs = 1000): void {
  socket.on('error', () => {})
  socket.end(text)
  const t = setTimeout(() => socket.destroy(), graceMs)
  t.unref()
  socket.once('close', () => clearTimeout(t))
}

export class ListenerGuard {
  readonly shedder: LoadShedder | undefined
  readonly connections: ConnectionLimiter
  readonly #o: ListenerGuardOptions
  readonly #rate: IpRateLimiter | undefined
  readonly #auth: AuthFailureLimiter | undefined
  readonly #exempt: AddressSet
  /** Per socket: its limiter key, or null when its address is exempt. */
  readonly #keys = new WeakMap<Socket, string | null>()
  readonly #refused: Readonly<Record<'connections_per_ip' | 'connections' | 'requests_per_ip' | 'auth_failures' | 'overloaded', CounterChild>>
  readonly #open: Gauge
  readonly #onFinish: (this: http.ServerResponse) => void

  constructor(o: ListenerGuardOptions) {
    this.#o = o
    const l = o.limits
    this.#exempt = new AddressSet(l.exempt)
    const refused = o.registry.counter('mcp_listener_refused_total', 'Connections and requests refused by a listener before the pipeline, by reason', ['listener', 'reason'])
    this.#refused = {
      connections_per_ip: refused.labels(o.listener, 'connections_per_ip'),
      connections: refused.labels(o.listener, 'connections'),
      requests_per_ip: refused.labels(o.listener, 'requests_per_ip'),
      auth_failures: refused.labels(o.listener, 'auth_failures'),
      overloaded: refused.labels(o.listener, 'overloaded'),
    }
    this.#open = o.registry.gauge('mcp_listener_connections', 'Open client connections, by listener', ['listener'])
    this.#rate = l.requestsPerSecondPerIp > 0 ? new IpRateLimiter(l.requestsPerSecondPerIp, l.burstPerIp, l.trackedAddresses) : undefined
    this.#auth = l.authFailures > 0 ? new AuthFailureLimiter(l.authFailures, l.authFailureWindowMs, l.authFailureCooldownMs, l.trackedAddresses) : undefined
    this.connections = new ConnectionLimiter({
      perIp: l.connectionsPerIp,
      global: l.connections,
      exempt: (a) => this.#exempt.has(a),
      ...(o.tls ? {} : { answer: (r: ConnectionRefusal) => rawErrorResponse(r === 'connections' ? this.#overloaded() : new GatewayError('MCP_ERR_CLIENT_TOO_MANY_CONNECTIONS', { limit: l.connectionsPerIp }, { details: 'client.too_many_connections', headers: { 'retry-after': '1' } })) }),
      onRefuse: (r) => this.#refused[r].inc(),
    })
    if (o.shedding?.enabled) {
      const overloaded = o.registry.gauge('mcp_overloaded', 'Whether the gateway sheds new requests (1) and why', ['reason'])
      this.shedder = new LoadShedder(o.shedding, {
        onChange: (over, reason, m) => {
          overloaded.set(over ? 1 : 0, over ? reason : 'none')
          if (over) o.log.warn({ reason, ...m }, 'overloaded: shedding new requests with 503')
          else o.log.info({ ...m }, 'load back under the thresholds: accepting requests again')
        },
      })
    }
    const auth = this.#auth
    const keys = this.#keys
    this.#onFinish = function (this: http.ServerResponse) {
      if (this.statusCode !== 401 || !isAuthError(this)) return
      const key = keys.get(this.req.socket)
      if (key && auth!.fail(key)) { o.log.warn({ client: key, listener: o.listener }, 'too many failed authentications: client blocked') }
    }
  }

  #overloaded(): GatewayError {
    return new GatewayError('MCP_ERR_SERVER_OVERLOADED', {}, { details: 'server.overloaded', headers: { 'retry-after': String(this.#o.shedding?.retryAfterSeconds ?? 10) } })
  }

  #keyOf(socket: Socket): string | null {
    let k = this.#keys.get(socket)
    if (k === undefined) {
      const remote = socket.remoteAddress ?? 'unknown'
      k = this.#exempt.has(remote) ? null : clientKey(remote)
      this.#keys.set(socket, k)
    }
    return k
  }

  /** Answers a refused request with a JSON error; closes the connection when a body was announced. */
  #reply(req: http.IncomingMessage, res: http.ServerResponse, g: GatewayError): void {
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const id = randomUUID()
    const body = errorBody(q === -1 ? url : url.slice(0, q), g, id)
    const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-mcp-error-code': g.code, 'x-request-id': id, ...errorAnswerHeaders(g) }
    const te = req.headers['transfer-encoding']
    const cl = req.headers['content-length']
    if (te !== undefined || (cl !== undefined && cl !== '0')) res.shouldKeepAlive = false
    res.writeHead(g.status, headers)
    res.end(body)
  }

  /** The listener's request handler, with the pre-pipeline checks in front. */
  wrap(handler: RequestHandler): RequestHandler {
    const shedder = this.shedder
    const rate = this.#rate
    const auth = this.#auth
    const connections = this.connections
    const onFinish = this.#onFinish
    return (req, res) => {
      const socket = req.socket
      if (connections.isRefused(socket)) { res.destroy(); req.resume(); return }
      if (shedder?.overloaded) { this.#refused.overloaded.inc(); this.#reply(req, res, this.#overloaded()); return }
      if (rate || auth) {
        const key = this.#keyOf(socket)
        if (key !== null) {
          const limited = rate?.check(key)
          if (limited) { this.#refused.requests_per_ip.inc(); this.#reply(req, res, localReplyError(limited)); return }
          if (auth) {
            const blocked = auth.check(key)
            if (blocked) { this.#refused.auth_failures.inc(); this.#reply(req, res, localReplyError(blocked)); return }
            res.once('finish', onFinish)
          }
        }
      }
      handler(req, res)
    }
  }

  /**
   * Installs the connection caps, the CONNECT and Expect answers, the connection gauge, and starts
   * the load sampler; everything stops when the server closes.
   */
  attach(server: http.Server): void {
    this.connections.attach(server)
    const open = this.#open
    const listener = this.#o.listener
    server.on('connection', (socket: Socket) => {
      open.inc(1, listener)
      socket.once('close', () => open.dec(1, listener))
    })
    server.on('connect', (req: http.IncomingMessage, socket: Socket) => {
      const g = new GatewayError('MCP_ERR_REQ_METHOD_NOT_ALLOWED', { method: 'CONNECT', path: String(req.url).slice(0, 200) }, { details: 'request.method_not_allowed' })
      endSocket(socket, rawErrorResponse(g))
    })
    server.on('checkExpectation', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const g = new GatewayError('MCP_ERR_REQ_EXPECTATION_FAILED', { expect: JSON.stringify(String(req.headers['expect']).slice(0, 100)) }, { details: 'request.expectation_failed' })
      this.#reply(req, res, g)
    })
    this.shedder?.start()
    server.once('close', () => this.close())
  }

  close(): void {
    this.shedder?.stop()
  }
}
