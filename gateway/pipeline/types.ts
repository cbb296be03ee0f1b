/**
 * The plugin contract. A plugin is a factory validated once per config; its instance contributes
 * hooks to the phases of the request lifecycle (docs/lifecycle.md):
 *
 *   ▶ onRequestHeaders   before the body is read: cheap rejects (auth, per-IP/key limits)   config order
 *   ▶ onRequestBody      canonical request known: routing, budgets, token limits             config order
 *   ▶ interceptUpstream  composed once at compile time around the upstream open call
 *   ◀ onResponseHeaders  reverse order: add headers before the status line is written
 *   ◀ onResponseChunk    reverse order, synchronous, per canonical chunk (not in pass-through)
 *   ◀ onComplete         after the last byte, never delaying the client
 */
import type { Logger } from 'pino'
import type { ErrorCode, ErrorParams, GatewayError } from '../errors.ts'
import type { RequestCtx } from '../context.ts'
import type { ChatChunk, ChatResponse, ChatStream, EmbeddingResponse } from '../../providers/types.ts'
import type { Metrics } from '../metrics.ts'
import type { JSONSchema } from '../validate.ts'

/** Answer from the gateway instead of calling upstream. `details` is the machine reason ('auth.missing_key'). */
export interface LocalReply {
  status?: number
  code: ErrorCode
  params?: ErrorParams
  message?: string
  details: string
  headers?: Readonly<Record<string, string>>
  param?: string
}

export type HookResult = undefined | LocalReply | void

/** What the upstream open call resolved with: status known and 2xx, body not yet delivered. */
export type UpstreamResponse =
  | { kind: 'json'; response: ChatResponse | EmbeddingResponse }
  | { kind: 'stream'; stream: ChatStream }
  | { kind: 'raw'; raw: RawUpstream }

/** A pass-through upstream answer: the body is written to the client byte for byte. */
export interface RawUpstream {
  readonly status: number
  readonly headers: Record<string, string | string[] | undefined>
  /** Starts delivery; `onData` returns false to apply backpressure until `resume()` is called. */
  consume(sink: RawSink): void
  resume(): void
  abort(reason?: Error): void
}
export interface RawSink {
  onData(chunk: Buffer): boolean
  onEnd(): void
  onError(err: GatewayError): void
}

export type UpstreamOpen = (ctx: RequestCtx) => Promise<UpstreamResponse>

export interface Outcome {
  readonly status: number
  /** Error code when the request failed (local reply, upstream error, abort). */
  readonly errorCode: string | undefined
  /** Machine reason ('ok', 'auth.invalid_key', 'client_abort', ...). */
  readonly details: string
  /** True when the client went away before the response was complete. */
  readonly aborted: boolean
}

export interface PluginInstance {
  onRequestHeaders?(ctx: RequestCtx): HookResult | Promise<HookResult>
  onRequestBody?(ctx: RequestCtx): HookResult | Promise<HookResult>
  interceptUpstream?(next: UpstreamOpen): UpstreamOpen
  onResponseHeaders?(ctx: RequestCtx): void
  onResponseChunk?(ctx: RequestCtx, chunk: ChatChunk): void
  onComplete?(ctx: RequestCtx, outcome: Outcome): void | Promise<void>
  /**
   * Whether this request may call the model `<provider>/<model>` or the alias `name` (GET /v1/models lists only
   * those). Asked after onRequestHeaders; the same rule the plugin enforces on calls (auth: the key's scopes).
   */
  allowsModel?(ctx: RequestCtx, name: string, isAlias: boolean): boolean
  /** Called once the pipeline generation that owned this instance drained and did not carry it over. */
  close?(): void | Promise<void>
}

/**
 * Shared clients the composition root (main.ts) hands to plugins: the execution-log sink, Redis,
 * the key store. Owners add their fields by declaration merging; every field is optional.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface PluginServices {}

export interface PluginDeps {
  readonly services: Readonly<PluginServices>
  readonly logger: Logger
  readonly metrics: Metrics
  /** Settings that plugins may read (admin key, environment). */
  readonly env: Readonly<{ adminKey: string | undefined; production: boolean }>
}

export interface PluginFactory<C = Record<string, unknown>> {
  /** Config key, metric prefix, log field and folder name. */
  readonly name: string
  /** JSON Schema of the plugin's config: additionalProperties false, defaults inside. */
  readonly configSchema: JSONSchema
  /** 'io' plugins must declare a timeout and a fail mode in their schema. */
  readonly sideEffects: 'none' | 'io'
  /** The plugin reads the answer's usage: streams on its routes ask the upstream for usage (hidden from clients that did not). */
  readonly needsUsage?: boolean
  /**
   * The plugin changes the request in its body hooks (ctx.chat: a redaction, a guardrail, an injected system prompt).
   * `/v1/messages` requests on its routes are then sent from the canonical form, so the change reaches the provider,
   * instead of going to an Anthropic provider as the client wrote them (gateway/upstream/native-messages.ts); one that
   * holds what only Anthropic takes (a server tool, citations) is refused there with a 400 naming this plugin.
   */
  readonly rewritesRequest?: boolean
  create(config: Readonly<C>, deps: PluginDeps): PluginInstance | Promise<PluginInstance>
  /**
   * A plugin that prices requests (cost-meter) gives its prices to the router: the lowest-cost strategy orders
   * targets by them when a route's chain has this plugin. Called at compile time with the validated config.
   */
  pricing?(config: Readonly<C>): { pricesFor(providerName: string, providerType: string, model: string, at: number): { input: number; output: number } | undefined }
}
