/**
 * A custom provider built on an official SDK: an in-house service that speaks the OpenAI Chat
 * Completions API, reached through the `openai` client. It shows what a real adapter needs beyond
 * the echo example: a credential read from the environment (never from the config file), the
 * gateway's own connection pools, the client's signal and deadline, tools and streamed tool calls
 * passed through, usage asked for on streams, and upstream errors mapped to the gateway's error
 * shape with their status, code and Retry-After kept.
 *
 *   providers:
 *     inhouse:
 *       type: custom
 *       module: ./examples/custom-provider/openai-sdk-adapter.ts
 *       options: { baseUrl: 'https://llm.internal.example/v1', apiKeyEnv: INHOUSE_LLM_KEY, models: [house-large] }
 *
 * See docs/providers.md (`custom`).
 */
import OpenAI from 'openai'
import { fetch as undiciFetch } from 'undici'
import { GatewayError } from '../../gateway/errors.ts'
import { upstreamError } from '../../providers/shared/upstream-error.ts'
import type { CustomAdapter, CustomAdapterContext } from '../../providers/custom/adapter.ts'
import type { ChatChunk, ChatRequest, ChatResponse, ExecuteParams, HealthStatus, ProviderMetrics } from '../../providers/types.ts'

interface Options {
  /** The service's base URL, up to and including `/v1`. */
  baseUrl: string
  /** Name of the environment variable that holds the API key (absent: no key is sent). */
  apiKeyEnv?: string
  /** Models this provider serves (for GET /v1/models). */
  models?: string[]
  /** Time to the response headers, ms (default 60 000). */
  timeoutMs?: number
}

const KEYS = new Set(['baseUrl', 'apiKeyEnv', 'models', 'timeoutMs'])

function optionErrors(options: unknown): string[] {
  if (options === null || typeof options !== 'object') return ['options: must be an object']
  const o = options as Record<string, unknown>
  const errors: string[] = []
  for (const k of Object.keys(o)) if (!KEYS.has(k)) errors.push(`options.${k}: unknown key`)
  if (typeof o['baseUrl'] !== 'string' || !/^https?:\/\/[^/]/.test(o['baseUrl'])) errors.push('options.baseUrl: must be an http(s) URL')
  if (o['apiKeyEnv'] !== undefined && (typeof o['apiKeyEnv'] !== 'string' || !/^[A-Z_][A-Z0-9_]*$/.test(o['apiKeyEnv']))) errors.push('options.apiKeyEnv: must be an environment variable name')
  if (o['models'] !== undefined && !(Array.isArray(o['models']) && o['models'].every((m) => typeof m === 'string'))) errors.push('options.models: must be a list of model names')
  if (o['timeoutMs'] !== undefined && !(Number.isInteger(o['timeoutMs']) && (o['timeoutMs'] as number) > 0)) errors.push('options.timeoutMs: must be a positive integer')
  return errors
}

export default function createOpenAISdkAdapter(options: Readonly<Record<string, unknown>>, ctx: CustomAdapterContext): CustomAdapter {
  const o = options as unknown as Options
  const origin = new URL(o.baseUrl).origin
  const dispatcher = ctx.dispatcherFor(origin)
  const apiKey = o.apiKeyEnv ? process.env[o.apiKeyEnv] : undefined
  const client = new OpenAI({
    apiKey: apiKey ?? 'unused',
    baseURL: o.baseUrl,
    maxRetries: 0, // retries and fallbacks are the gateway's (routing), not the SDK's
    timeout: o.timeoutMs ?? 60_000,
    // The gateway's pooled keep-alive connections (and its egress policy) instead of the SDK's own.
    fetch: ((url: string, init: Record<string, unknown>) => undiciFetch(url, { ...init, dispatcher } as never)) as never,
    ...(apiKey === undefined ? { defaultHeaders: { authorization: null } } : {}),
  })
  const metrics = { requests: 0, inflight: 0, errors: 0, errorsByCode: {} as Record<string, number> }
  const latencies: number[] = []

  /** The SDK's errors as the gateway's: status, provider code, message and Retry-After kept. */
  function mapError(e: unknown): GatewayError {
    let g: GatewayError
    if (e instanceof GatewayError) g = e
    else if (e instanceof OpenAI.APIUserAbortError) g = new GatewayError('MCP_ERR_REQ_ABORTED', {}, { details: 'client_abort' })
    else if (e instanceof OpenAI.APIConnectionTimeoutError) g = new GatewayError('MCP_ERR_UPSTREAM_TIMEOUT', { provider: ctx.name, phase: 'first byte' }, { details: 'upstream.first_byte_timeout' })
    else if (e instanceof OpenAI.APIError && typeof e.status === 'number') {
      const body = (e.error ?? {}) as { message?: unknown; type?: unknown; code?: unknown; param?: unknown }
      const headers: Record<string, string> = {}
      e.headers?.forEach((v: string, k: string) => { headers[k] = v })
      g = upstreamError(ctx.name, e.status, {
        message: typeof body.message === 'string' ? body.message : e.message,
        ...(typeof body.type === 'string' ? { type: body.type } : {}),
        ...(typeof body.code === 'string' ? { code: body.code } : {}),
        ...(typeof body.param === 'string' ? { param: body.param } : {}),
      }, headers)
    } else g = new GatewayError('MCP_ERR_UPSTREAM_CONNECT', { provider: ctx.name, reason: (e as Error)?.message ?? String(e) }, { details: 'upstream.connect_error' })
    metrics.errors++
    metrics.errorsByCode[g.code] = (metrics.errorsByCode[g.code] ?? 0) + 1
    return g
  }

  function requestOptions(params: ExecuteParams): OpenAI.RequestOptions {
    const left = Math.max(1, params.deadline - Date.now())
    return {
      signal: params.signal,
      timeout: Math.min(params.timeouts?.firstByteMs ?? o.timeoutMs ?? 60_000, left),
      headers: { 'x-request-id': params.requestId, ...params.extraHeaders },
    }
  }

  function observe(t0: number): void {
    latencies.push(performance.now() - t0)
    if (latencies.length > 1000) latencies.splice(0, latencies.length - 1000)
  }

  return {
    async execute(req: ChatRequest, params: ExecuteParams): Promise<ChatResponse> {
      metrics.requests++
      metrics.inflight++
      const t0 = performance.now()
      try {
        const body = { ...req, model: params.model, stream: false } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming
        const r = await client.chat.completions.create(body, requestOptions(params))
        observe(t0)
        return r as unknown as ChatResponse
      } catch (e) {
        throw mapError(e)
      } finally {
        metrics.inflight--
      }
    },

    async *stream(req: ChatRequest, params: ExecuteParams): AsyncGenerator<ChatChunk> {
      metrics.requests++
      metrics.inflight++
      const t0 = performance.now()
      try {
        // Usage is always asked for: the gateway meters it (and hides it from clients that did not ask).
        const body = { ...req, model: params.model, stream: true, stream_options: { include_usage: true } } as OpenAI.Chat.ChatCompletionCreateParamsStreaming
        const s = await client.chat.completions.create(body, requestOptions(params))
        for await (const chunk of s) yield chunk as unknown as ChatChunk
        observe(t0)
      } catch (e) {
        throw mapError(e)
      } finally {
        metrics.inflight--
      }
    },

    validateConfig(options: unknown): boolean {
      return optionErrors(options).length === 0
    },

    configErrors: optionErrors,

    getMetrics(): ProviderMetrics {
      const sorted = [...latencies].sort((a, b) => a - b)
      const at = (q: number): number => sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
      return { ...metrics, errorsByCode: { ...metrics.errorsByCode }, latencyMs: { p50: at(0.5), p99: at(0.99) } }
    },

    async healthCheck(): Promise<HealthStatus> {
      const t0 = performance.now()
      try {
        await client.models.list({ timeout: 5000 })
        return { ok: true, checkedAt: Date.now(), latencyMs: performance.now() - t0 }
      } catch (e) {
        return { ok: false, checkedAt: Date.now(), latencyMs: performance.now() - t0, detail: (e as Error)?.message ?? String(e) }
      }
    },

    listModels(): readonly string[] {
      return o.models ?? []
    },
  }
}
