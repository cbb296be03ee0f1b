/**
 * The request runner: captures the current pipeline generation, runs the decode hooks (stopping at
 * the first local reply), reads and validates the body, resolves the target, opens the upstream
 * through the composed interceptors, delivers, and runs onComplete after the last byte.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import { RequestCtx } from './context.ts'
import { deliver, runResponseHeaders, toGatewayError } from './deliver.ts'
import { GatewayError } from './errors.ts'
import { uuidv7 } from './uuid7.ts'
import { checkContentType, parseJson, readBody } from './http/body.ts'
import type { Inbound } from './inbound/types.ts'
import type { PipelineHolder } from './pipeline/holder.ts'
import type { HookResult, LocalReply, Outcome } from './pipeline/types.ts'
import { resolveTarget } from './routing/resolve.ts'
import { errorAnswerHeaders, routeAlias, type RouterDeps } from './routing/router.ts'
import type { GatewayMetrics } from './telemetry.ts'
import type { Tracing } from './tracing.ts'
import { REQUEST_DEADLINE } from './routing/target-state.ts'

export interface RouteSpec {
  /** Compiled route name (config `routes.<name>`). */
  readonly route: string
  readonly inbound: Inbound
  /** Turns the parsed body into the canonical request on ctx; throws a 400 GatewayError. Absent: no body (GET). */
  readonly parse?: (json: unknown, ctx: RequestCtx) => void
  /** Answers without an upstream call (GET /v1/models); may be async (it never runs on the chat path). */
  readonly local?: (ctx: RequestCtx, metrics: GatewayMetrics) => unknown
  /** The same route for Anthropic clients (a request with `anthropic-version`): answers and errors in Anthropic's shape. */
  readonly anthropic?: RouteSpec
}

export interface HandlerDeps {
  readonly holder: PipelineHolder
  readonly log: Logger
  readonly metrics: GatewayMetrics
  readonly router: RouterDeps
  /** Present only when tracing is enabled. */
  readonly tracing: Tracing | undefined
  /** The inbound APIs by name: the error shape of a request ended at its deadline before anything answered it. */
  readonly inbounds?: ReadonlyMap<string, Inbound>
}

function isThenable(v: unknown): v is PromiseLike<HookResult> {
  return v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function'
}

export function localReplyError(r: LocalReply): GatewayError {
  const opts: ConstructorParameters<typeof GatewayError>[2] = { details: r.details }
  if (r.status !== undefined) opts.status = r.status
  if (r.message !== undefined) opts.message = r.message
  if (r.headers !== undefined) opts.headers = { ...r.headers }
  if (r.param !== undefined) opts.param = r.param
  return new GatewayError(r.code, r.params ?? {}, opts)
}

export function sendError(ctx: RequestCtx, inbound: Inbound, e: unknown, log: Logger): void {
  const g = toGatewayError(e)
  if (g.code === 'MCP_ERR_INTERNAL') log.error({ err: e, requestId: ctx.id }, 'internal error')
  const res = ctx.res
  // Already answered (a client error the listener answered through this response, a 408): the later failure of what
  // was still running for it (its body read, cut with the connection) is not the request's outcome.
  if (res.writableEnded) return
  ctx.errorCode = g.code
  ctx.details = g.details
  ctx.status = g.status
  if (res.headersSent || res.destroyed) {
    if (!res.writableEnded) res.destroy()
    return
  }
  try { runResponseHeaders(ctx) } catch (he) { log.error({ err: he }, 'onResponseHeaders hook failed') }
  const body = JSON.stringify(inbound.errorBody(g.code === 'MCP_ERR_INTERNAL' ? new GatewayError('MCP_ERR_INTERNAL', { requestId: ctx.id }) : g, ctx.id, ctx))
  const headers: Record<string, string | number> = { ...ctx.responseHeaders, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-mcp-error-code': g.code }
  Object.assign(headers, errorAnswerHeaders(g))
  if (g.code === 'MCP_ERR_REQ_BODY_TOO_LARGE') headers['connection'] = 'close'
  res.writeHead(g.status, headers)
  res.end(body)
}

const CTX = Symbol('mcp.ctx')
type ResponseWithCtx = ServerResponse & { [CTX]?: RequestCtx }

export interface RequestHandler {
  (spec: RouteSpec, req: IncomingMessage, res: ServerResponse, startedAt: number): void
  /**
   * Ends every request still in flight (shutdown past its deadline): their upstream calls are aborted with `reason`,
   * so each ends through its own failure path: a stream with the error event of its inbound API, a request before its
   * headers with `reason` as its answer; onComplete runs as for any failure. `inbounds` (by name) give that answer the
   * request's own API's error shape. Returns how many there were.
   */
  terminate(reason: GatewayError, inbounds: ReadonlyMap<string, Inbound>): number
  /**
   * Answers a client error the HTTP parser raised while this response's request was still being read (its body too
   * slow: 408; bad framing: 400) through the request's own error path: its request id, its inbound API's error shape,
   * the error code in metrics, logs and onComplete; what still runs for it is aborted. False when the response is not
   * one of this handler's requests or its answer has started.
   */
  answerClientError(res: ServerResponse, error: GatewayError, inbounds: ReadonlyMap<string, Inbound>): boolean
}

export function createHandler(deps: HandlerDeps): RequestHandler {
  const { holder, log, metrics, tracing } = deps
  /**
   * For terminate(): the connections that carried a request (added at their first, removed when they close), and
   * each response's ctx on the response itself. Not a set of the requests: a long-lived table holding every request
   * in flight kept their whole object graphs alive through scavenges (measured: GC from 7 to 23 µs a request, the
   * gateway's CPU per request +60 %).
   */
  const sockets = new Set<Socket>()

  /**
   * `server.requestDeadlineMs` over the whole request (every attempt, the body of the answer, a stream to its end): one
   * sweep over the connections in use finds the requests past their deadline and aborts them with MCP_ERR_UPSTREAM_TIMEOUT,
   * as Node's own `requestTimeout` is checked (no timer per request). It runs every 1/20 of the deadline (at most every
   * second, so a request ends at most that late), only while connections are open.
   */
  let sweep: NodeJS.Timeout | undefined
  const scheduleSweep = (): void => {
    const every = Math.min(1000, Math.max(20, Math.floor(holder.current.settings.server.requestDeadlineMs / 20)))
    sweep = setTimeout(sweepDeadlines, every)
    sweep.unref()
  }
  function sweepDeadlines(): void {
    sweep = undefined
    if (sockets.size === 0) return
    const now = Date.now()
    for (const socket of sockets) {
      const res = (socket as Socket & { _httpMessage?: ResponseWithCtx | null })._httpMessage
      const ctx = res?.[CTX]
      if (!ctx || now < ctx.deadline || res!.writableEnded || ctx.abortedAlready) continue
      expire(ctx, res!)
    }
    scheduleSweep()
  }
  /** Ends a request at its deadline: the upstream call is aborted, so the request ends through its failure path. */
  function expire(ctx: RequestCtx, res: ServerResponse): void {
    const g = new GatewayError('MCP_ERR_UPSTREAM_TIMEOUT', { provider: ctx.providerName || ctx.requestedModel, phase: 'request deadline' }, { details: REQUEST_DEADLINE })
    ctx.abort(g)
    // Nothing the abort ends (a plugin still deciding): unless the abort produced the answer, the timeout is the answer.
    const inbound = deps.inbounds?.get(ctx.inbound)
    if (!res.headersSent && inbound) {
      setImmediate(() => {
        if (res.headersSent || res.destroyed) return
        sendError(ctx, inbound, g, log)
      })
    }
  }

  async function run(ctx: RequestCtx, spec: RouteSpec): Promise<void> {
    const route = ctx.route
    for (const h of route.onRequestHeaders) {
      let r = h(ctx)
      if (isThenable(r)) r = await r
      if (r) return sendError(ctx, spec.inbound, localReplyError(r), log)
    }
    if (spec.local) {
      const body = JSON.stringify(await spec.local(ctx, metrics))
      if (ctx.res.destroyed) return
      runResponseHeaders(ctx)
      ctx.status = 200
      ctx.res.writeHead(200, { ...ctx.responseHeaders, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      ctx.res.end(body)
      return
    }
    checkContentType(ctx.req)
    const buf = await readBody(ctx.req, ctx.pipeline.settings.server.bodyLimitBytes)
    spec.parse!(parseJson(buf), ctx)
    resolveTarget(ctx)
    for (const h of route.onRequestBody) {
      let r = h(ctx)
      if (isThenable(r)) r = await r
      if (r) return sendError(ctx, spec.inbound, localReplyError(r), log)
    }
    ctx.upstreamStart = performance.now()
    let up
    if (ctx.alias) up = await routeAlias(ctx, ctx.alias, ctx.pipeline.aliases, deps.router)
    else if (tracing) {
      const end = tracing.startAttempt(ctx)
      up = await route.open(ctx).catch((e: unknown) => { end(e); throw e })
      ctx.onDone(() => end(ctx.errorCode !== undefined && ctx.details.startsWith('upstream') ? { code: ctx.errorCode, message: ctx.details } : undefined))
    } else up = await route.open(ctx)
    ctx.upstreamHeaders = performance.now()
    await deliver(ctx, spec.inbound, up)
  }

  function complete(ctx: RequestCtx): void {
    const res = ctx.res
    if (!res.writableFinished) {
      ctx.aborted = true
      if (ctx.errorCode === undefined) { ctx.errorCode = 'MCP_ERR_REQ_ABORTED'; ctx.details = 'client_abort' }
      // Nobody pays for tokens nobody reads: the upstream call is cancelled.
      ctx.abort(new GatewayError('MCP_ERR_REQ_ABORTED', {}, { details: 'client_abort' }))
    }
    const status = ctx.aborted && !res.headersSent ? 499 : ctx.status || res.statusCode
    const now = performance.now()
    metrics.observe(ctx, status, now)
    const outcome: Outcome = { status, errorCode: ctx.errorCode, details: ctx.details, aborted: ctx.aborted }
    for (const h of ctx.route.onComplete) {
      try {
        const r = h(ctx, outcome)
        if (isThenable(r)) {
          // A hook still working (the cost meter and execution log wait for the tokenizer) holds the generation:
          // a drain (shutdown, reload) waits for it, so the final flush has its record and its plugin is not closed.
          const pipeline = ctx.pipeline
          pipeline.acquire()
          Promise.resolve(r).catch((e: unknown) => log.error({ err: e }, 'onComplete hook failed')).finally(() => pipeline.release())
        }
      } catch (e) {
        log.error({ err: e }, 'onComplete hook failed')
      }
    }
    ctx.runDone()
    if (tracing) tracing.endRequest(ctx, outcome)
    ctx.pipeline.release()
  }

  const handle = (spec: RouteSpec, req: IncomingMessage, res: ServerResponse, startedAt: number): void => {
    const pipeline = holder.current
    pipeline.acquire()
    metrics.inflight++
    const route = pipeline.routes.get(spec.route)!
    // A UUIDv7 (time-ordered): indexes keyed by request id (execution_logs, audit) grow at their right edge.
    const ctx = new RequestCtx(pipeline, route, req, res, uuidv7(), log, startedAt)
    ctx.inbound = spec.inbound.name
    ctx.deadline = ctx.arrivedAt + pipeline.settings.server.requestDeadlineMs
    if (tracing) tracing.startRequest(ctx)
    ;(res as ResponseWithCtx)[CTX] = ctx
    const socket = req.socket
    if (!sockets.has(socket)) {
      sockets.add(socket)
      socket.once('close', () => sockets.delete(socket))
      if (sweep === undefined) scheduleSweep()
    }
    res.once('close', () => { metrics.inflight--; complete(ctx) })
    run(ctx, spec).catch((e: unknown) => sendError(ctx, spec.inbound, e, log))
  }
  return Object.assign(handle, {
    answerClientError(res: ServerResponse, error: GatewayError, inbounds: ReadonlyMap<string, Inbound>): boolean {
      const ctx = (res as ResponseWithCtx)[CTX]
      const inbound = ctx !== undefined ? inbounds.get(ctx.inbound) : undefined
      if (ctx === undefined || inbound === undefined || res.headersSent) return false
      res.shouldKeepAlive = false
      sendError(ctx, inbound, error, log)
      ctx.abort(error)
      return true
    },
    terminate(reason: GatewayError, inbounds: ReadonlyMap<string, Inbound>): number {
      let n = 0
      for (const socket of sockets) {
        // The response being served on the connection (pipelined requests behind it have not started).
        const res = (socket as Socket & { _httpMessage?: ResponseWithCtx | null })._httpMessage
        const ctx = res?.[CTX]
        if (!ctx || res!.writableFinished) continue
        ctx.abort(reason)
        n++
        // A request with nothing the abort ends (its body still arriving from a slow client, a plugin still deciding)
        // would be reset with its connection: unless the abort already produced its answer, the reason is its answer.
        const inbound = inbounds.get(ctx.inbound)
        if (!res!.headersSent && inbound) {
          setImmediate(() => {
            if (res!.headersSent || res!.destroyed) return
            res!.shouldKeepAlive = false
            sendError(ctx, inbound, reason, log)
          })
        }
      }
      return n
    },
  })
}
