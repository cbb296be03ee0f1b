/**
 * The upstream I/O primitive: one undici `dispatch()` per call with a handler that pauses at the
 * response headers. The caller learns the status first (so retries and breakers can judge it
 * before a byte reaches the client), then `consume()`s the body push-style with backpressure.
 * No Readable, no pipeline, no per-chunk promise.
 */
import type { Dispatcher } from 'undici'
import { GatewayError } from '../../gateway/errors.ts'

export type HeaderMap = Record<string, string | string[] | undefined>

/** Response headers that carry a provider's own id of the request, read in this order (the first one present wins). */
const REQUEST_ID_HEADERS = ['request-id', 'x-request-id', 'apim-request-id'] as const
/** What a request id is taken as: a token of letters, digits and `._:+/=~@-`, at most 200 characters (logs take it as it is). */
const REQUEST_ID = /^[\w.:+/=~@-]{1,200}$/

/**
 * The provider's id of a request, from its response headers: Anthropic's `request-id`, OpenAI's and Azure's
 * `x-request-id`, Azure API Management's `apim-request-id` (what each provider's support asks for). Undefined when
 * there is none, or when it is not a plain token.
 */
export function upstreamRequestIdOf(headers: HeaderMap): string | undefined {
  for (const name of REQUEST_ID_HEADERS) {
    const v = headers[name]
    if (v === undefined) continue
    const id = Array.isArray(v) ? v[0] : v
    return id !== undefined && REQUEST_ID.test(id) ? id : undefined
  }
  return undefined
}

export interface HttpCall {
  method: 'GET' | 'POST'
  path: string
  headers: Record<string, string>
  body?: string | Buffer
}

export interface HttpOptions {
  /** Provider name, for error messages. */
  provider: string
  signal: AbortSignal
  /** Time to response headers (first byte), ms. */
  headersTimeoutMs: number
  /** Longest silence between body chunks, ms. */
  bodyTimeoutMs: number
}

export interface BodySink {
  /** Return false to pause the upstream until `resume()`. */
  onData(chunk: Buffer): boolean
  onEnd(): void
  onError(err: GatewayError): void
}

/**
 * The largest non-streamed answer an adapter reads when its config says nothing (`maxResponseBytes`, the schema's
 * default): embeddings of large batches are tens of megabytes (Gemini's 100 embeddings of 3,072 dimensions are
 * about 4 MB compact, 7 MB pretty-printed; Ollama's, one call for every input, more).
 */
export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024

export interface HttpHead {
  readonly status: number
  readonly headers: HeaderMap
  consume(sink: BodySink): void
  resume(): void
  abort(reason?: Error): void
  /** Reads the whole body (error bodies, non-streaming JSON). */
  text(limit?: number, tooLarge?: string): Promise<string>
}

/** Maps undici / socket errors to gateway errors with the phase in which they happened. */
export function toUpstreamError(err: unknown, provider: string, afterHeaders: boolean): GatewayError {
  if (err instanceof GatewayError) return err
  const e = err as { code?: string; message?: string; name?: string }
  const code = e?.code ?? ''
  const reason = code || e?.message || 'unknown error'
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new GatewayError('MCP_ERR_UPSTREAM_TIMEOUT', { provider, phase: 'connect' }, { details: 'upstream.connect_timeout', cause: err })
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new GatewayError('MCP_ERR_UPSTREAM_TIMEOUT', { provider, phase: 'first byte' }, { details: 'upstream.first_byte_timeout', cause: err })
    case 'UND_ERR_BODY_TIMEOUT':
      return new GatewayError('MCP_ERR_UPSTREAM_TIMEOUT', { provider, phase: 'idle between chunks' }, { details: 'upstream.idle_timeout', cause: err })
    case 'ECONNREFUSED': case 'ENOTFOUND': case 'EAI_AGAIN': case 'EHOSTUNREACH': case 'ENETUNREACH':
      return new GatewayError('MCP_ERR_UPSTREAM_CONNECT', { provider, reason }, { details: 'upstream.connect_error', cause: err })
    // undici refusing the request the gateway built (a header it cannot send, a body not of its Content-Length): the
    // gateway's own fault, found on this side of the wire. Not the provider resetting the connection: not retried, not
    // counted against the provider (it would be the same on every attempt, and take the target out of service).
    case 'UND_ERR_INVALID_ARG': case 'UND_ERR_NOT_SUPPORTED': case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
      return new GatewayError('MCP_ERR_INTERNAL', { requestId: '' }, { details: 'gateway.upstream_request_invalid', cause: err })
    default:
      break
  }
  if (e?.name === 'AbortError' || code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR') {
    return new GatewayError('MCP_ERR_REQ_ABORTED', {}, { details: 'client_abort', cause: err })
  }
  if (afterHeaders) {
    return new GatewayError('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', { provider, reason }, { details: 'upstream.stream_interrupted', cause: err })
  }
  return new GatewayError('MCP_ERR_UPSTREAM_RESET', { provider, reason }, { details: 'upstream.reset', cause: err })
}

class Handler implements Dispatcher.DispatchHandler, HttpHead {
  status = 0
  headers: HeaderMap = {}
  #controller: Dispatcher.DispatchController | null = null
  #sink: BodySink | null = null
  #early: Buffer[] | null = null
  #ended = false
  #error: GatewayError | null = null
  #resolve: (h: HttpHead) => void
  #reject: (e: GatewayError) => void
  #opts: HttpOptions
  #onAbort: (() => void) | null = null

  constructor(opts: HttpOptions, resolve: (h: HttpHead) => void, reject: (e: GatewayError) => void) {
    this.#opts = opts
    this.#resolve = resolve
    this.#reject = reject
    const signal = opts.signal
    this.#onAbort = () => this.abort(signal.reason instanceof Error ? signal.reason : undefined)
    signal.addEventListener('abort', this.#onAbort, { once: true })
  }

  #detach(): void {
    if (this.#onAbort) { this.#opts.signal.removeEventListener('abort', this.#onAbort); this.#onAbort = null }
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller
    if (this.#opts.signal.aborted) controller.abort(this.#opts.signal.reason instanceof Error ? this.#opts.signal.reason : new Error('aborted'))
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: HeaderMap): void {
    this.#controller = controller
    this.status = statusCode
    this.headers = headers
    controller.pause()
    this.#resolve(this)
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const sink = this.#sink
    if (sink === null) { (this.#early ??= []).push(chunk); controller.pause(); return }
    if (!sink.onData(chunk)) controller.pause()
  }

  onResponseEnd(): void {
    this.#ended = true
    this.#detach()
    this.#sink?.onEnd()
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.#detach()
    const mapped = toUpstreamError(this.#opts.signal.aborted ? (this.#opts.signal.reason ?? err) : err, this.#opts.provider, this.status !== 0)
    if (this.status === 0) { this.#reject(mapped); return }
    this.#error = mapped
    this.#sink?.onError(mapped)
  }

  consume(sink: BodySink): void {
    this.#sink = sink
    const early = this.#early
    this.#early = null
    if (early) for (const c of early) sink.onData(c)
    if (this.#error) { sink.onError(this.#error); return }
    if (this.#ended) { sink.onEnd(); return }
    this.#controller?.resume()
  }

  resume(): void {
    if (this.#controller?.paused && this.#sink) this.#controller.resume()
  }

  abort(reason?: Error): void {
    const c = this.#controller
    if (c && !c.aborted && !this.#ended) c.abort(reason ?? new GatewayError('MCP_ERR_REQ_ABORTED', {}, { details: 'client_abort' }))
  }

  text(limit = 4 * 1024 * 1024, tooLarge = `response body larger than ${limit} bytes`): Promise<string> {
    return new Promise((resolve, reject) => {
      const parts: Buffer[] = []
      let size = 0
      this.consume({
        onData: (c) => {
          size += c.length
          if (size > limit) {
            // The upstream is let go with this error as the reason (an abort without one reads as the client's).
            const g = new GatewayError('MCP_ERR_UPSTREAM_BAD_RESPONSE', { provider: this.#opts.provider, reason: tooLarge }, { details: 'upstream.body_too_large' })
            reject(g)
            this.abort(g)
            return true
          }
          parts.push(c)
          return true
        },
        onEnd: () => resolve(parts.length === 1 ? parts[0]!.toString('utf8') : Buffer.concat(parts).toString('utf8')),
        onError: reject,
      })
    })
  }
}

/** Sends one request; resolves at the response headers (any status), rejects on connect/reset/timeout. */
export function openHttp(dispatcher: Dispatcher, call: HttpCall, opts: HttpOptions): Promise<HttpHead> {
  return new Promise<HttpHead>((resolve, reject) => {
    if (opts.signal.aborted) { reject(toUpstreamError(opts.signal.reason, opts.provider, false)); return }
    const handler = new Handler(opts, resolve, reject)
    dispatcher.dispatch(
      {
        method: call.method,
        path: call.path,
        headers: call.headers,
        body: call.body ?? null,
        headersTimeout: opts.headersTimeoutMs,
        bodyTimeout: opts.bodyTimeoutMs,
      },
      handler,
    )
  })
}
