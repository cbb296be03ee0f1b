/**
 * OpenTelemetry tracing with the GenAI semantic conventions: a SERVER span per request and a CLIENT
 * span per upstream attempt (`chat gpt-4o`), W3C trace context accepted from the client and passed
 * upstream (`traceparent` of the attempt span), OTLP/HTTP export in batches. When tracing is off,
 * no provider exists and every hook is a single `undefined` check: nothing measurable. The SDK
 * (about 25 MB of RSS) is loaded only when tracing is on (`Tracing.create`).
 */
import { context, SpanKind, SpanStatusCode, trace, type Context, type Span, type Tracer } from '@opentelemetry/api'
import type { W3CTraceContextPropagator } from '@opentelemetry/core'
import type { TracerProvider } from '@opentelemetry/sdk-trace'
import type { IncomingHttpHeaders } from 'node:http'
import type { RequestCtx } from './context.ts'
import type { Outcome } from './pipeline/types.ts'
import type { JSONSchema } from './validate.ts'
import { table } from '../providers/shared/table.ts'

export interface TracingSettings {
  enabled: boolean
  /** OTLP/HTTP traces endpoint, e.g. http://collector:4318/v1/traces. */
  endpoint: string
  headers: Record<string, string>
  serviceName: string
  /** Fraction of new traces sampled (a sampled parent is always followed). */
  sampleRatio: number
}

export const tracingSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    enabled: { type: 'boolean', default: false },
    endpoint: { type: 'string', pattern: '^https?://', default: 'http://127.0.0.1:4318/v1/traces' },
    headers: { type: 'object', additionalProperties: { type: 'string' }, default: {} },
    serviceName: { type: 'string', default: 'mcp-gateway' },
    sampleRatio: { type: 'number', minimum: 0, maximum: 1, default: 1 },
  },
}

/** GenAI attribute names (OpenTelemetry semantic conventions), in one place. */
export const GENAI = {
  operation: 'gen_ai.operation.name',
  provider: 'gen_ai.provider.name',
  requestModel: 'gen_ai.request.model',
  responseModel: 'gen_ai.response.model',
  responseId: 'gen_ai.response.id',
  finishReasons: 'gen_ai.response.finish_reasons',
  inputTokens: 'gen_ai.usage.input_tokens',
  outputTokens: 'gen_ai.usage.output_tokens',
  maxTokens: 'gen_ai.request.max_tokens',
  temperature: 'gen_ai.request.temperature',
  stream: 'gen_ai.request.stream',
} as const

/** Our adapter types → the conventions' `gen_ai.provider.name` values. */
const PROVIDER_NAME: Readonly<Record<string, string>> = table({
  openai: 'openai', 'azure-openai': 'azure.ai.openai', anthropic: 'anthropic', google: 'gcp.gemini',
  ollama: 'ollama', 'openai-compatible': 'openai', custom: 'custom',
})

const headerGetter = {
  keys: (h: IncomingHttpHeaders) => Object.keys(h),
  get: (h: IncomingHttpHeaders, k: string) => h[k],
}

function setResponseAttributes(span: Span, ctx: RequestCtx): void {
  const u = ctx.usage
  if (u) {
    span.setAttribute(GENAI.inputTokens, u.prompt_tokens)
    span.setAttribute(GENAI.outputTokens, u.completion_tokens)
  }
  if (ctx.finishReason) span.setAttribute(GENAI.finishReasons, [ctx.finishReason])
  // What the provider's answer names (a dated snapshot of the requested model), never the requested name: unset when unknown.
  const m = ctx.responseModel
  if (m !== undefined) span.setAttribute(GENAI.responseModel, m)
}

export class Tracing {
  readonly #provider: TracerProvider
  readonly #tracer: Tracer
  readonly #propagator: W3CTraceContextPropagator
  readonly #requestSpans = new WeakMap<RequestCtx, { span: Span; ctx: Context }>()

  /** Loads the OpenTelemetry SDK and starts the provider (only ever called when tracing is on). */
  static async create(s: TracingSettings): Promise<Tracing> {
    const [{ W3CTraceContextPropagator }, { OTLPTraceExporter }, { resourceFromAttributes }, { BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider }] = await Promise.all([
      import('@opentelemetry/core'), import('@opentelemetry/exporter-trace-otlp-http'), import('@opentelemetry/resources'), import('@opentelemetry/sdk-trace'),
    ])
    const provider = new TracerProvider({
      resource: resourceFromAttributes({ 'service.name': s.serviceName }),
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(s.sampleRatio) }),
      spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: s.endpoint, headers: s.headers }), scheduledDelayMillis: 1000 })],
    })
    return new Tracing(provider, new W3CTraceContextPropagator())
  }

  private constructor(provider: TracerProvider, propagator: W3CTraceContextPropagator) {
    this.#provider = provider
    this.#propagator = propagator
    this.#tracer = provider.getTracer('mcp-gateway')
  }

  /** The SERVER span of a request, child of the client's `traceparent` when it sent one. */
  startRequest(ctx: RequestCtx): void {
    const parent = this.#propagator.extract(context.active(), ctx.headers, headerGetter)
    // The data plane's routes have no parameters: the matched route is the path (HTTP conventions: `{method} {http.route}`).
    const route = (ctx.req.url ?? '').split('?', 1)[0]!
    const span = this.#tracer.startSpan(`${ctx.req.method} ${route}`, {
      kind: SpanKind.SERVER,
      attributes: { 'http.request.method': ctx.req.method ?? '', 'http.route': route, 'url.path': route, 'mcp.route': ctx.route.name, 'mcp.request_id': ctx.id },
    }, parent)
    this.#requestSpans.set(ctx, { span, ctx: trace.setSpan(parent, span) })
  }

  /**
   * The CLIENT span of one upstream attempt; its context goes upstream as `traceparent`.
   * Returns the function that ends it with the attempt's result.
   */
  startAttempt(ctx: RequestCtx): (err?: unknown) => void {
    const parent = this.#requestSpans.get(ctx)
    if (!parent) return () => {}
    const op = ctx.embedding ? 'embeddings' : 'chat'
    const span = this.#tracer.startSpan(`${op} ${ctx.model}`, {
      kind: SpanKind.CLIENT,
      attributes: {
        [GENAI.operation]: op,
        [GENAI.provider]: PROVIDER_NAME[ctx.adapter?.type ?? ''] ?? ctx.adapter?.type ?? '',
        [GENAI.requestModel]: ctx.model,
        'mcp.provider': ctx.providerName,
        'mcp.attempt': ctx.attempts + 1,
        ...(ctx.stream ? { [GENAI.stream]: true } : {}),
        ...(typeof ctx.chat?.max_tokens === 'number' ? { [GENAI.maxTokens]: ctx.chat.max_tokens } : {}),
        ...(typeof ctx.chat?.temperature === 'number' ? { [GENAI.temperature]: ctx.chat.temperature } : {}),
      },
    }, parent.ctx)
    const carrier: Record<string, string> = {}
    this.#propagator.inject(trace.setSpan(parent.ctx, span), carrier, { set: (c, k, v) => { c[k] = v } })
    ctx.extraUpstreamHeaders = { ...(ctx.extraUpstreamHeaders ?? {}), ...carrier }
    return (err?: unknown) => {
      // The provider's own id of this attempt (its response's request-id header), failed attempts included.
      if (ctx.upstreamRequestId !== undefined) span.setAttribute('mcp.upstream.request_id', ctx.upstreamRequestId)
      if (err !== undefined) {
        const e = err as { code?: string; status?: number; message?: string }
        span.setAttribute('error.type', e.code ?? 'error')
        if (e.status !== undefined) span.setAttribute('http.response.status_code', e.status)
        span.setStatus({ code: SpanStatusCode.ERROR, message: e.message ?? String(err) })
      } else if (span.isRecording()) {
        // The answering attempt is the conventions' inference span: usage and finish reasons belong on it.
        setResponseAttributes(span, ctx)
      }
      span.end()
    }
  }

  endRequest(ctx: RequestCtx, outcome: Outcome): void {
    const r = this.#requestSpans.get(ctx)
    if (!r) return
    this.#requestSpans.delete(ctx)
    const span = r.span
    span.setAttribute('http.response.status_code', outcome.status)
    // The model the gateway sent upstream (the routed target's); the response model is the answer's own (below).
    if (ctx.model) span.setAttribute(GENAI.requestModel, ctx.model)
    if (ctx.providerName) span.setAttribute('mcp.provider', ctx.providerName)
    if (ctx.attempts) span.setAttribute('mcp.attempts', ctx.attempts)
    if (ctx.fallbackReason) span.setAttribute('mcp.fallback_reason', ctx.fallbackReason)
    setResponseAttributes(span, ctx)
    if (outcome.errorCode !== undefined) {
      span.setAttribute('error.type', outcome.errorCode)
      span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.details })
    }
    span.end()
  }

  async flush(): Promise<void> {
    await this.#provider.forceFlush()
  }

  async shutdown(): Promise<void> {
    await this.#provider.shutdown()
  }
}

