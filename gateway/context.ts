/**
 * RequestCtx: everything one request carries through the pipeline. One object per request,
 * fields filled as the lifecycle advances; plugins read it and write their own `slots`.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import type { ChatRequest, ChatStream, EmbeddingRequest, ProviderAdapter, Usage } from '../providers/types.ts'
import type { CompiledRoute, Pipeline } from './pipeline/pipeline.ts'
import type { CompiledAlias } from './routing/alias.ts'
import type { CostBreakdown } from './cost/catalogue.ts'
import { usageFromBody } from './usage-extract.ts'

/**
 * The top-level `model` of an OpenAI chunk or an Anthropic event, as its serializers write it (`"model":"..."`, no
 * escapes): chunks put it before `choices`, so the first match is the top-level one.
 */
const EVENT_MODEL = /"model":"([^"\\]{1,256})"/
/** The `service_tier` of an OpenAI chunk (every chunk carries it, the usage chunk too). */
const EVENT_TIER = /"service_tier":"([a-z_]{1,32})"/

/** Typed per-request slots; plugins extend this interface by declaration merging. */
export interface CtxSlots {
  principal: { keyId: string; role: string; team?: string }
}

/** One failed upstream attempt. */
export interface AttemptRecord {
  provider: string
  model: string
  error: string
  status: number
  /** The provider's own id of the attempt (its response's request-id header), when it answered with one. */
  upstreamRequestId?: string
  /** A stream cut mid-way and resumed elsewhere: its provider's type (for its prices) and the usage it consumed. */
  providerType?: string
  usage?: Usage
  /** The usage is an estimate (the attempt reported none before the cut). */
  estimated?: boolean
  /** Stream events the attempt gave the client before its cut (part of `streamEvents`). */
  events?: number
}

export type Operation = 'chat' | 'embeddings' | 'models' | 'execute'

export class RequestCtx {
  /** The request id: generated (a UUIDv7), or the client's x-request-id (request-id plugin). */
  id: string
  /**
   * The id the gateway generated for this request (unique; `id` may since have been replaced): also the id of its
   * execution-log row, which the execute route answers as `execution_id`.
   */
  readonly generatedId: string
  readonly route: CompiledRoute
  readonly pipeline: Pipeline
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly startedAt: number
  /**
   * Wall-clock time (epoch ms) the request arrived: the prices in effect then are the ones it is charged at, by the
   * cost meter and by budgets alike, however long it runs (docs/cost.md "Price catalogue").
   */
  readonly arrivedAt: number = Date.now()
  readonly slots: Partial<CtxSlots> = {}
  /** Headers plugins add to the response (lower-case names). */
  readonly responseHeaders: Record<string, string> = {}

  /** Parsed JSON body (chat or embeddings request in canonical form). */
  chat: ChatRequest | undefined
  embedding: EmbeddingRequest | undefined
  stream = false
  /** The inbound dialect the client speaks. */
  inbound: 'openai' | 'anthropic' | 'execute' = 'openai'
  /** The client asked for usage in the stream (stream_options.include_usage). */
  includeUsage = false
  /** The gateway asked the upstream for stream usage the client did not ask for (to be hidden from it). */
  usageForced = false
  /** Headers to send upstream besides the provider's own (trace context). */
  extraUpstreamHeaders: Record<string, string> | undefined
  /** Raw upstream body parts of a pass-through non-streaming answer, parsed lazily for usage. */
  rawBody: Buffer[] | undefined
  /** A pass-through stream's newest event (its data), read lazily for the model and tier that answered (responseModel, servedTier). */
  lastEvent: string | undefined
  /** The model the client asked for, and how it resolved. */
  requestedModel = ''
  providerName = ''
  model = ''
  adapter: ProviderAdapter | undefined
  deadline = 0

  status = 0
  errorCode: string | undefined
  details = 'ok'
  aborted = false
  #usage: Usage | undefined
  #responseModel: string | undefined
  #servedTier: string | undefined
  finishReason: string | null = null
  /** Cost of the answer, set by the cost-meter plugin at completion (pico-USD exact, with the breakdown). */
  cost: CostBreakdown | undefined
  /** performance.now() marks; 0 when not reached. */
  upstreamStart = 0
  upstreamHeaders = 0
  upstreamEnd = 0
  firstChunk = 0
  /**
   * Events of a stream given to the client (pass-through: upstream events; translated: chunks and text deltas). An
   * output estimate (about a token each) for a stream that ends without usage: the budget charges a client that
   * leaves before the usage event for what it received.
   */
  streamEvents = 0
  attempts = 0
  /**
   * The provider's own id of the current (at the end: the answering) upstream attempt, from its response headers
   * (providers/shared/http.ts upstreamRequestIdOf): what to quote to the provider's support. Undefined before an
   * upstream answered, or when it sent none.
   */
  upstreamRequestId: string | undefined
  /** The alias the model resolved to, when it is one (routing, retries, fallbacks). */
  alias: CompiledAlias | undefined
  /** Why the answering target was not the first choice. */
  fallbackReason: string | undefined
  /**
   * Failed upstream attempts: recorded, never billed, except a stream cut mid-way and resumed on another target,
   * which carries the usage its provider billed (gateway/cost/attempt-usage.ts).
   */
  readonly attemptLog: AttemptRecord[] = []
  /** Signal of the current upstream attempt (defaults to the request's own). */
  upstreamSignal: AbortSignal | undefined
  /** Per-target timeout overrides for the current attempt. */
  upstreamTimeouts: { firstByteMs?: number | undefined; idleMs?: number | undefined } | undefined
  /** Continues a stream that failed after its first byte on another target (alias `streamRecovery: resume`). */
  resume: ((delivered: string) => Promise<ChatStream | undefined>) | undefined
  /** The client's messages, before a resume appended the delivered text as a prefill. */
  originalMessages: ChatRequest['messages'] | undefined
  #done: (() => void)[] | undefined

  #abort: AbortController | undefined
  #log: Logger | undefined
  readonly #baseLog: Logger

  constructor(pipeline: Pipeline, route: CompiledRoute, req: IncomingMessage, res: ServerResponse, id: string, log: Logger, startedAt: number) {
    this.pipeline = pipeline
    this.route = route
    this.req = req
    this.res = res
    this.id = id
    this.generatedId = id
    this.#baseLog = log
    this.startedAt = startedAt
  }

  get headers(): IncomingHttpHeaders {
    return this.req.headers
  }

  get ip(): string {
    return this.req.socket.remoteAddress ?? ''
  }

  /** Aborted when the client disconnects or the gateway gives up on the request. */
  get signal(): AbortSignal {
    return (this.#abort ??= new AbortController()).signal
  }

  abort(reason: Error): void {
    if (!this.#abort) this.#abort = new AbortController()
    if (!this.#abort.signal.aborted) this.#abort.abort(reason)
  }

  /** Whether the request was aborted (abort() or the client leaving), without creating its signal. */
  get abortedAlready(): boolean {
    return this.#abort?.signal.aborted === true
  }

  /** Registers work to run once the response is complete (in-flight counters, timers). */
  onDone(fn: () => void): void {
    (this.#done ??= []).push(fn)
  }

  /** Runs the onDone callbacks once. */
  runDone(): void {
    const d = this.#done
    this.#done = undefined
    if (d) for (const fn of d) fn()
  }

  /**
   * Usage of the answer: from the canonical response, the stream's last event, or the pass-through body (read on
   * first access, gateway/usage-extract.ts; the body's finish reason is kept too when none was set).
   */
  get usage(): Usage | undefined {
    if (this.#usage === undefined && this.rawBody !== undefined) {
      const parts = this.rawBody
      this.rawBody = undefined
      const found = usageFromBody(parts)
      this.#usage = found.usage
      if (this.finishReason === null) this.finishReason = found.finishReason
      if (this.#responseModel === undefined && found.model !== null) this.#responseModel = found.model
      if (this.#servedTier === undefined && found.serviceTier !== null) this.#servedTier = found.serviceTier
    }
    return this.#usage
  }

  set usage(u: Usage | undefined) {
    this.#usage = u
  }

  /**
   * The model the upstream's answer says produced it (`gpt-4o-2024-08-06` for `gpt-4o`): from the canonical response,
   * the stream's, the pass-through body (read with the usage), or a pass-through stream's last event (read when
   * asked). Undefined when the answer did not say or there was none.
   */
  get responseModel(): string | undefined {
    if (this.#responseModel === undefined && this.rawBody !== undefined) void this.usage
    if (this.lastEvent !== undefined) this.#readLastEvent()
    return this.#responseModel
  }

  set responseModel(m: string | undefined) {
    this.#responseModel = m === '' ? undefined : m
  }

  /**
   * The processing tier the upstream's answer says served it (OpenAI's `service_tier`: default, flex, priority, scale),
   * from the canonical response, the stream's, the pass-through body or a pass-through stream's last event, as
   * responseModel. Undefined when the answer did not say (the cost meter then prices the tier the request asked for).
   */
  get servedTier(): string | undefined {
    if (this.#servedTier === undefined && this.rawBody !== undefined) void this.usage
    if (this.lastEvent !== undefined) this.#readLastEvent()
    return this.#servedTier
  }

  set servedTier(t: string | null | undefined) {
    this.#servedTier = typeof t === 'string' && t !== '' ? t : undefined
  }

  /** The model and the tier of a pass-through stream's last event, read once. */
  #readLastEvent(): void {
    const e = this.lastEvent!
    this.lastEvent = undefined
    if (this.#responseModel === undefined) { const m = EVENT_MODEL.exec(e); if (m !== null) this.#responseModel = m[1] }
    if (this.#servedTier === undefined) { const t = EVENT_TIER.exec(e); if (t !== null) this.#servedTier = t[1] }
  }

  get log(): Logger {
    return (this.#log ??= this.#baseLog.child({ requestId: this.id }))
  }

  /** Milliseconds since the request arrived. */
  elapsedMs(now = performance.now()): number {
    return now - this.startedAt
  }

  /** Time spent waiting on the upstream, ms (0 if it was never called). */
  upstreamMs(now = performance.now()): number {
    if (this.upstreamStart === 0) return 0
    return (this.upstreamEnd || now) - this.upstreamStart
  }
}
