/**
 * The I/O shell shared by the built-in adapters: it sends what a provider's pure translation
 * builds, maps errors through it, and turns the upstream body into canonical chunks. A provider's
 * `adapter.ts` configures one of these with its translation, auth headers and health check.
 */
import type { Dispatcher } from 'undici'
import { GatewayError } from '../../gateway/errors.ts'
import type {
  ChatChunk, ChatRequest, ChatResponse, ChatStream, EmbeddingRequest, EmbeddingResponse,
  ExecuteParams, HealthStatus, NativeMessagesTarget, PassthroughTarget, ProviderAdapter, ProviderConfig, ProviderMetrics, TextLane,
} from '../types.ts'
import { ChunkAggregator } from './aggregate.ts'
import { DEFAULT_MAX_RESPONSE_BYTES, openHttp, type HttpHead } from './http.ts'
import { credentialsOf, redactCredentials } from './upstream-error.ts'
import { LatencyWindow } from './latency-window.ts'
import { createNdjsonSplitter, createSseParser, feedBounded, type SseEvent, type SseFastEvent } from './sse.ts'
import type { ChatTranslation, CountTokensTranslation, EmbeddingTranslation, ModelListTranslation, StreamMapper } from './translation.ts'

export interface Timeouts {
  /** Time to the upstream's response headers. */
  firstByteMs: number
  /** Longest silence between body chunks. */
  idleMs: number
}

export interface HttpAdapterOptions {
  name: string
  type: string
  config: ProviderConfig
  dispatcher: Dispatcher
  /** Auth and fixed headers for every call; computed once. */
  headers: Readonly<Record<string, string>>
  /** Headers of one call that depend on the request (the anthropic adapter's forwarded betas); none when undefined. */
  callHeaders?: (params: ExecuteParams) => Record<string, string> | undefined
  chat: ChatTranslation
  embeddings?: EmbeddingTranslation
  /** The provider's token counting (ProviderAdapter.countTokens). */
  countTokens?: CountTokensTranslation
  timeouts: Timeouts
  models?: readonly string[]
  /** The provider's model list endpoint (discoverModels). */
  modelList?: ModelListTranslation
  /** Health probe: a cheap GET on the provider (models list, tags). */
  healthPath?: string
  passthrough?: PassthroughTarget
  nativeMessages?: NativeMessagesTarget
  configErrors: (config: unknown) => readonly string[]
}

/** Most pages of a provider's model list read by discoverModels. */
const MAX_MODEL_PAGES = 50

/**
 * The upstream request built by a translation. A translation refuses what the provider cannot take with a
 * GatewayError (a 400 naming the field); anything else it throws is the gateway's own fault, found before a byte was
 * sent: MCP_ERR_INTERNAL, which is not retried and is not counted against the provider (read as the upstream's bad
 * answer, one client's odd request was retried and took the target out of service for everyone).
 */
function translated<T>(build: () => T, params: ExecuteParams): T {
  try {
    return build()
  } catch (e) {
    if (e instanceof GatewayError) throw e
    throw new GatewayError('MCP_ERR_INTERNAL', { requestId: params.requestId }, { cause: e, details: 'gateway.request_translation' })
  }
}

/** Queue depth (chunks) at which the upstream is paused until the consumer catches up. */
const HIGH_WATER = 64

export class HttpAdapter implements ProviderAdapter {
  readonly name: string
  readonly type: string
  readonly passthrough: PassthroughTarget | undefined
  readonly nativeMessages: NativeMessagesTarget | undefined
  readonly #o: HttpAdapterOptions
  #requests = 0
  #inflight = 0
  #errors = 0
  #errorsByCode: Record<string, number> = {}
  #latency = new LatencyWindow(512)
  /** The provider's own credentials, redacted literally from anything an upstream echoes back. */
  readonly #secrets: readonly string[]
  /** The largest non-streamed answer read (the provider's `maxResponseBytes`). */
  readonly #maxBody: number

  constructor(o: HttpAdapterOptions) {
    this.#o = o
    this.name = o.name
    this.type = o.type
    this.passthrough = o.passthrough
    this.nativeMessages = o.nativeMessages
    this.#secrets = credentialsOf(o.headers)
    const max = o.config['maxResponseBytes']
    this.#maxBody = typeof max === 'number' ? max : DEFAULT_MAX_RESPONSE_BYTES
    const count = o.countTokens
    if (count) {
      this.countTokens = async (req, params) => {
        try {
          const up = translated(() => count.toUpstream(req, params.model), params)
          return count.fromUpstream(await this.#json(await this.#open(up.path, up.body, up.headers, params)))
        } catch (e) {
          throw this.#asGatewayError(e)
        }
      }
    }
  }

  /** Present when the provider counts tokens itself (HttpAdapterOptions.countTokens); not counted in the adapter's metrics. */
  readonly countTokens?: (req: ChatRequest, params: ExecuteParams) => Promise<number>

  validateConfig(config: unknown): config is ProviderConfig {
    return this.#o.configErrors(config).length === 0
  }

  configErrors(config: unknown): readonly string[] {
    return this.#o.configErrors(config)
  }

  listModels(): readonly string[] {
    return this.#o.models ?? []
  }

  async discoverModels(signal: AbortSignal): Promise<readonly string[]> {
    const t = this.#o.modelList
    if (!t) return []
    const ids: string[] = []
    let cursor: string | undefined
    // A bound on pages, against a provider whose cursor never ends.
    for (let page = 0; page < MAX_MODEL_PAGES; page++) {
      const head = await openHttp(this.#o.dispatcher, { method: 'GET', path: t.path(cursor), headers: { ...this.#o.headers } }, {
        provider: this.name, signal, headersTimeoutMs: this.#o.timeouts.firstByteMs, bodyTimeoutMs: this.#o.timeouts.idleMs,
      })
      if (head.status >= 300) {
        const text = redactCredentials(await head.text(64 * 1024).catch(() => ''), this.#secrets)
        throw this.#o.chat.toError(head.status, text, head.headers)
      }
      const r = t.fromUpstream(await this.#json(head))
      ids.push(...r.ids)
      if (r.cursor === undefined || r.cursor === cursor) break
      cursor = r.cursor
    }
    return ids
  }

  getMetrics(): ProviderMetrics {
    return {
      requests: this.#requests,
      inflight: this.#inflight,
      errors: this.#errors,
      errorsByCode: { ...this.#errorsByCode },
      latencyMs: { p50: this.#latency.quantile(0.5), p99: this.#latency.quantile(0.99) },
    }
  }

  /** A failure as a GatewayError: anything else (an unreadable answer) is the provider's bad response. */
  #asGatewayError(e: unknown): GatewayError {
    return e instanceof GatewayError ? e : new GatewayError('MCP_ERR_UPSTREAM_BAD_RESPONSE', { provider: this.name, reason: String((e as Error)?.message ?? e) }, { cause: e })
  }

  /** #asGatewayError, counted in the adapter's metrics (the gateway's own failures are not the provider's). */
  #fail(e: unknown): GatewayError {
    const g = this.#asGatewayError(e)
    if (g.code === 'MCP_ERR_INTERNAL') return g
    this.#errors++
    const k = g.providerCode ?? g.code
    this.#errorsByCode[k] = (this.#errorsByCode[k] ?? 0) + 1
    return g
  }

  async #open(path: string, body: unknown, extra: Record<string, string> | undefined, params: ExecuteParams): Promise<HttpHead> {
    const headers: Record<string, string> = { ...this.#o.headers, 'x-request-id': params.requestId }
    if (extra) Object.assign(headers, extra)
    if (params.extraHeaders) Object.assign(headers, params.extraHeaders)
    const call = this.#o.callHeaders?.(params)
    if (call) Object.assign(headers, call)
    const head = await openHttp(this.#o.dispatcher, { method: 'POST', path, headers, body: JSON.stringify(body) }, {
      provider: this.name,
      signal: params.signal,
      headersTimeoutMs: Math.max(1, Math.min(params.timeouts?.firstByteMs ?? this.#o.timeouts.firstByteMs, params.deadline - Date.now())),
      bodyTimeoutMs: params.timeouts?.idleMs ?? this.#o.timeouts.idleMs,
    })
    params.onUpstreamHeaders?.(head.headers)
    if (head.status >= 300) {
      const text = redactCredentials(await head.text(1024 * 1024).catch(() => ''), this.#secrets)
      throw this.#o.chat.toError(head.status, text, head.headers)
    }
    return head
  }

  /** A 2xx body, parsed. Credentials an upstream echoed (a model repeating its prompt) are redacted first, as in streams. */
  async #json(head: HttpHead): Promise<unknown> {
    let text = await head.text(this.#maxBody, `response body larger than ${this.#maxBody} bytes (the provider's maxResponseBytes)`)
    if (this.#secrets.some((x) => text.includes(x))) text = redactCredentials(text, this.#secrets)
    try {
      return JSON.parse(text)
    } catch {
      throw new GatewayError('MCP_ERR_UPSTREAM_BAD_RESPONSE', { provider: this.name, reason: 'invalid JSON body' })
    }
  }

  async execute(req: ChatRequest, params: ExecuteParams): Promise<ChatResponse> {
    const t0 = performance.now()
    this.#requests++
    this.#inflight++
    try {
      const up = translated(() => this.#o.chat.toUpstream(req, params.model, false), params)
      const head = await this.#open(up.path, up.body, up.headers, params)
      const res = this.#o.chat.fromUpstream(await this.#json(head), params.model)
      this.#latency.add(performance.now() - t0)
      return res
    } catch (e) {
      throw this.#fail(e)
    } finally {
      this.#inflight--
    }
  }

  async embed(req: EmbeddingRequest, params: ExecuteParams): Promise<EmbeddingResponse> {
    const t = this.#o.embeddings
    if (!t) throw new GatewayError('MCP_ERR_ROUTE_OPERATION_UNSUPPORTED', { provider: this.name, operation: 'embeddings' }, { param: 'model' })
    this.#requests++
    this.#inflight++
    try {
      const up = translated(() => t.toUpstream(req, params.model), params)
      const head = await this.#open(up.path, up.body, up.headers, params)
      return t.fromUpstream(await this.#json(head), params.model, req)
    } catch (e) {
      throw this.#fail(e)
    } finally {
      this.#inflight--
    }
  }

  async stream(req: ChatRequest, params: ExecuteParams): Promise<ChatStream> {
    this.#requests++
    this.#inflight++
    const t0 = performance.now()
    let head: HttpHead
    try {
      const up = translated(() => this.#o.chat.toUpstream(req, params.model, true), params)
      head = await this.#open(up.path, up.body, up.headers, params)
    } catch (e) {
      this.#inflight--
      throw this.#fail(e)
    }
    const mapper = this.#o.chat.createStreamMapper(params.model, params.requestId, req.stream_options?.include_usage === true)
    return new UpstreamChatStream(this.name, head, mapper, this.#o.chat.streamFormat, this.#secrets, params.textLane === true, (err) => {
      this.#inflight--
      if (err) this.#fail(err)
      else this.#latency.add(performance.now() - t0)
    })
  }

  async healthCheck(): Promise<HealthStatus> {
    const t0 = performance.now()
    const path = this.#o.healthPath
    if (!path) return { ok: true, checkedAt: Date.now(), detail: 'no health probe for this provider' }
    try {
      const head = await openHttp(this.#o.dispatcher, { method: 'GET', path, headers: { ...this.#o.headers } }, {
        provider: this.name, signal: AbortSignal.timeout(5000), headersTimeoutMs: 5000, bodyTimeoutMs: 5000,
      })
      await head.text().catch(() => '')
      const ok = head.status < 500 && head.status !== 401 && head.status !== 403
      return { ok, checkedAt: Date.now(), latencyMs: performance.now() - t0, detail: `HTTP ${head.status}` }
    } catch (e) {
      return { ok: false, checkedAt: Date.now(), latencyMs: performance.now() - t0, detail: (e as Error).message }
    }
  }

  async close(): Promise<void> {
    // Pools are shared per origin and closed by the gateway at shutdown.
  }
}

/**
 * Push-to-pull bridge: upstream bytes → parser → mapper → a small chunk queue, read by the
 * gateway with `for await`. The upstream is paused while the queue is over HIGH_WATER.
 */
class UpstreamChatStream implements ChatStream {
  readonly status: number
  readonly final: Promise<ChatResponse>
  /** Canonical chunks, and text-lane items when the consumer asked for them (see ExecuteParams.textLane). */
  #queue: (ChatChunk | TextLane)[] = []
  #mapper: StreamMapper
  #done = false
  #error: GatewayError | null = null
  #wake: (() => void) | null = null
  #head: HttpHead
  #agg = new ChunkAggregator()
  #settle!: { resolve: (r: ChatResponse) => void; reject: (e: GatewayError) => void }
  #onSettled: (err: GatewayError | null) => void

  constructor(provider: string, head: HttpHead, mapper: StreamMapper, format: 'sse' | 'ndjson', secrets: readonly string[], textLane: boolean, onSettled: (err: GatewayError | null) => void) {
    this.status = head.status
    this.#head = head
    this.#mapper = mapper
    const lane = textLane && mapper.laneText !== undefined && mapper.textChunk !== undefined
    this.#onSettled = onSettled
    this.final = new Promise<ChatResponse>((resolve, reject) => { this.#settle = { resolve, reject } })
    this.final.catch(() => {})
    const emit = (chunks: ChatChunk[] | undefined): void => {
      if (!chunks) return
      for (const c of chunks) { this.#agg.add(c); this.#queue.push(c) }
    }
    // Error events inside a stream may echo credentials: events are redacted before mapping. One search per event
    // and credential (usually there is one), for its first four characters first: a short pattern is a plain scan,
    // where a long one sets up a Boyer-Moore-Horspool table per call (about 200 ns each).
    const one = secrets.length === 1 ? secrets[0]! : undefined
    const oneHead = one?.slice(0, 4) ?? ''
    const leaks = (d: string): boolean => (one !== undefined
      ? d.includes(oneHead) && d.includes(one)
      : secrets.length > 0 && secrets.some((x) => d.includes(x)))
    const onEvent = (ev: SseEvent): void => {
      if (this.#error) return
      const safe = leaks(ev.data) ? { ...ev, data: redactCredentials(ev.data, secrets) } : ev
      if (lane) {
        const text = mapper.laneText!(safe)
        if (text !== undefined) {
          if (text !== '') { this.#agg.addText(text); this.#queue.push(text) }
          return
        }
      }
      try { emit(mapper.push(safe)) } catch (e) { this.#finish(e as GatewayError) }
    }
    // The mapper's whole-event lane: only the text is searched for credentials, which is enough when no secret
    // contains a quote (the text literal is between quotes) or occurs in the rest of the event (its template).
    const laneEvent = mapper.laneEvent
    const fast: SseFastEvent | undefined = lane && laneEvent !== undefined && mapper.laneEventText !== undefined &&
      secrets.every((x) => !x.includes('"') && !laneEvent.template.includes(x))
      ? {
          pattern: laneEvent.pattern,
          onMatch: (s, from, to) => {
            if (this.#error) return true
            const text = mapper.laneEventText!(s, from, to)
            if (text === undefined || leaks(text)) return false
            if (text !== '') { this.#agg.addText(text); this.#queue.push(text) }
            return true
          },
        }
      : undefined
    const parser = format === 'sse' ? createSseParser(onEvent, fast) : createNdjsonSplitter((data) => onEvent({ event: 'message', data }))
    const ended = mapper.ended
    /** The stream is complete (the body's end, or the provider's terminal event before it): its last chunks, the answer. */
    const complete = (): void => {
      try {
        emit(this.#mapper.end())
        this.#finish(null)
      } catch (e) {
        this.#finish(e as GatewayError)
      }
    }
    head.consume({
      onData: (buf) => {
        if (this.#done) {
          // Bytes after the terminal event, or after a failure: the body did not end where it should. Its connection
          // is discarded, not reused (a body that only stays open is discarded by the idle timeout, unheard of).
          if (!this.#error) head.abort()
          return true
        }
        // An event that outgrew the parser's bound: the stream fails here, like a malformed one.
        const tooLarge = feedBounded(parser, buf, provider)
        if (tooLarge) { this.#finish(tooLarge); return true }
        // The provider's terminal event: the answer is complete whether or not the upstream closes its body now. The
        // body is read on (never paused: the consumer resumes only a stream in progress), so that its end frees the
        // connection; anything more aborts it (above).
        if (ended !== undefined && !this.#done && ended()) { complete(); return true }
        this.#notify()
        return this.#queue.length < HIGH_WATER
      },
      onEnd: () => {
        if (this.#done) return
        try {
          parser.end()
          emit(mapper.end())
          this.#finish(null)
        } catch (e) {
          this.#finish(e as GatewayError)
        }
      },
      onError: (err) => this.#finish(err),
    })
  }

  #notify(): void {
    const w = this.#wake
    if (w) { this.#wake = null; w() }
  }

  #finish(err: GatewayError | null): void {
    if (this.#done) return
    this.#done = true
    if (err) {
      this.#error = err instanceof GatewayError ? err : new GatewayError('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', { provider: 'upstream', reason: String(err) })
      this.#head.abort()
      this.#settle.reject(this.#error)
    } else {
      this.#settle.resolve(this.#agg.toResponse())
    }
    this.#onSettled(this.#error)
    this.#notify()
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ChatChunk> {
    for await (const batch of this.batches()) for (const c of batch) yield c
  }

  /** Lane items only exist when the mapper has both laneText and textChunk (see the constructor). */
  textChunk(text: TextLane): ChatChunk {
    return this.#mapper.textChunk!(text)
  }

  /** laneBatches with text-lane items turned into their chunks, for consumers that did not ask for the lane. */
  async *batches(): AsyncGenerator<readonly ChatChunk[]> {
    for await (const batch of this.laneBatches()) {
      let chunks: ChatChunk[] | undefined
      for (let i = 0; i < batch.length; i++) {
        const x = batch[i]!
        if (typeof x === 'string') { chunks ??= batch.slice(0, i) as ChatChunk[]; chunks.push(this.textChunk(x)) } else if (chunks) chunks.push(x)
      }
      yield chunks ?? batch as readonly ChatChunk[]
    }
  }

  async *laneBatches(): AsyncGenerator<readonly (ChatChunk | TextLane)[]> {
    try {
      for (;;) {
        if (this.#queue.length > 0) {
          const batch = this.#queue
          this.#queue = []
          if (!this.#done) this.#head.resume()
          yield batch
          continue
        }
        if (this.#error) throw this.#error
        if (this.#done) return
        await new Promise<void>((r) => { this.#wake = r })
      }
    } finally {
      if (!this.#done) {
        // The consumer stopped early (client went away): stop paying for tokens nobody reads.
        this.#finish(new GatewayError('MCP_ERR_REQ_ABORTED', {}, { details: 'client_abort' }))
      }
    }
  }
}
