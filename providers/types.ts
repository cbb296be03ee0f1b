/**
 * The canonical format is OpenAI Chat Completions. Every inbound API is translated to these types
 * and every provider translates from them. Fields are the wire names, so an OpenAI body is already
 * canonical and passes through untouched.
 */
import type { Dispatcher } from 'undici'
import type { GatewayError } from '../gateway/errors.ts'

// ---------- requests ----------

export interface TextPart { type: 'text'; text: string }
export interface ImagePart { type: 'image_url'; image_url: { url: string; detail?: 'auto' | 'low' | 'high' } }
export type ContentPart = TextPart | ImagePart | { type: string; [k: string]: unknown }

export interface ToolCall {
  id: string
  type: 'function'
  function: { name: string; arguments: string }
}

/**
 * Extension (Anthropic extended thinking): a thinking block as Anthropic sent it, in the order it came. Anthropic
 * requires the blocks back, unmodified (the signature authenticates the text), in the assistant turn whose tool
 * use a request continues; only the `anthropic` provider sends them, the others leave them out.
 */
export type ThinkingBlock =
  | { type: 'thinking'; thinking: string; signature: string }
  | { type: 'redacted_thinking'; data: string }

/**
 * A fragment of a streamed ThinkingBlock: `index` counts the message's thinking blocks from 0 (as a tool call
 * delta's index counts its tool calls); the `thinking` and `signature` fragments of one index concatenate. A
 * redacted block comes whole.
 */
export type ThinkingBlockDelta =
  | { index: number; type: 'thinking'; thinking?: string; signature?: string }
  | { index: number; type: 'redacted_thinking'; data: string }

export type ChatMessage =
  | { role: 'system' | 'developer'; content: string | TextPart[]; name?: string }
  | { role: 'user'; content: string | ContentPart[]; name?: string }
  | {
      role: 'assistant'
      content?: string | TextPart[] | null
      name?: string
      tool_calls?: ToolCall[]
      refusal?: string | null
      /** Extension: see ThinkingBlock. */
      thinking_blocks?: ThinkingBlock[]
    }
  | { role: 'tool'; content: string | TextPart[]; tool_call_id: string }

export interface ToolDefinition {
  type: 'function'
  function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean }
}

export type ToolChoice =
  | 'none'
  | 'auto'
  | 'required'
  | { type: 'function'; function: { name: string } }

export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | { type: 'json_schema'; json_schema: { name: string; schema?: Record<string, unknown>; strict?: boolean; description?: string } }

export interface ChatRequest {
  model: string
  messages: ChatMessage[]
  stream?: boolean
  stream_options?: { include_usage?: boolean } | null
  temperature?: number | null
  top_p?: number | null
  max_tokens?: number | null
  max_completion_tokens?: number | null
  n?: number | null
  stop?: string | string[] | null
  presence_penalty?: number | null
  frequency_penalty?: number | null
  seed?: number | null
  user?: string
  metadata?: Record<string, string>
  tools?: ToolDefinition[]
  tool_choice?: ToolChoice
  parallel_tool_calls?: boolean
  response_format?: ResponseFormat
  logprobs?: boolean | null
  top_logprobs?: number | null
  reasoning_effort?: string
  [k: string]: unknown
}

export interface EmbeddingRequest {
  model: string
  input: string | string[] | number[] | number[][]
  encoding_format?: 'float' | 'base64'
  dimensions?: number
  user?: string
  [k: string]: unknown
}

// ---------- responses ----------

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter' | 'function_call'

export interface Usage {
  prompt_tokens: number
  completion_tokens: number
  total_tokens: number
  /**
   * `cache_creation_1h_tokens` (extension): the part of `cache_creation_tokens` written to Anthropic's 1-hour cache
   * (`cache_control.ttl: '1h'`), billed at its own rate (PriceEntry.cacheWrite1h); absent when none.
   */
  prompt_tokens_details?: { cached_tokens?: number; audio_tokens?: number; cache_creation_tokens?: number; cache_creation_1h_tokens?: number }
  completion_tokens_details?: { reasoning_tokens?: number; audio_tokens?: number }
  /**
   * Extension: server-tool calls an Anthropic answer made (its `usage.server_tool_use`), present only when it made
   * some. Web searches carry a fee per search (PriceEntry.webSearch); fetches cost only their tokens.
   */
  server_tool_use?: { web_search_requests?: number; web_fetch_requests?: number }
}

export interface ChatChoice {
  index: number
  message: {
    role: 'assistant'
    content: string | null
    tool_calls?: ToolCall[]
    refusal?: string | null
    /** Extension: see ThinkingBlock. */
    thinking_blocks?: ThinkingBlock[]
  }
  finish_reason: FinishReason | null
  logprobs?: unknown
  /** Extension: the stop sequence that ended the turn (finish_reason 'stop'), when the provider says which (Anthropic). */
  stop_sequence?: string
  /**
   * Extension: Anthropic's own stop_reason when the finish reason cannot say it (`pause_turn`, `model_context_window_exceeded`,
   * one added later), so that /v1/messages clients get it back as Anthropic sent it.
   */
  anthropic_stop_reason?: string
}

export interface ChatResponse {
  id: string
  object: 'chat.completion'
  created: number
  model: string
  choices: ChatChoice[]
  usage?: Usage
  system_fingerprint?: string | null
  service_tier?: string | null
}

export interface ChunkToolCallDelta {
  index: number
  id?: string
  type?: 'function'
  function?: { name?: string; arguments?: string }
}

export interface ChatChunkChoice {
  index: number
  delta: {
    role?: 'assistant'
    content?: string | null
    tool_calls?: ChunkToolCallDelta[]
    refusal?: string | null
    /** Extension: see ThinkingBlockDelta. */
    thinking_blocks?: ThinkingBlockDelta[]
  }
  finish_reason: FinishReason | null
  logprobs?: unknown
  /** Extension: as ChatChoice.stop_sequence, on the chunk with the finish reason. */
  stop_sequence?: string
  /** Extension: as ChatChoice.anthropic_stop_reason, on the chunk with the finish reason. */
  anthropic_stop_reason?: string
}

export interface ChatChunk {
  id: string
  object: 'chat.completion.chunk'
  created: number
  model: string
  choices: ChatChunkChoice[]
  usage?: Usage | null
  system_fingerprint?: string | null
  /** The processing tier serving the stream (OpenAI sends it on every chunk). */
  service_tier?: string | null
}

export interface EmbeddingResponse {
  object: 'list'
  data: { object: 'embedding'; index: number; embedding: number[] | string }[]
  model: string
  usage: { prompt_tokens: number; total_tokens: number }
}

export interface ModelInfo { id: string; object: 'model'; created: number; owned_by: string }

// ---------- adapters ----------

/** What one call to an adapter needs besides the canonical body. */
export interface ExecuteParams {
  /** The provider-side model name (already stripped of the `<provider>/` prefix). */
  model: string
  /** Aborts the upstream call: client disconnect, deadline, or the gateway giving up. */
  signal: AbortSignal
  /** Epoch ms after which the call must fail with MCP_ERR_UPSTREAM_TIMEOUT. */
  deadline: number
  /** Request id, forwarded upstream as x-request-id. */
  requestId: string
  /** Headers to add upstream (trace context); never the client's credentials. */
  extraHeaders?: Readonly<Record<string, string>>
  /**
   * The client's `anthropic-beta` header (Anthropic's feature flags, e.g. `context-1m-2025-08-07`), as it came. Only the
   * anthropic adapter sends it on, merged with its config's, unless its config says `forwardClientBetas: false`.
   */
  anthropicBeta?: string
  /** Per-call overrides of the provider's time to first byte and idle limits (routing targets). */
  timeouts?: { firstByteMs?: number | undefined; idleMs?: number | undefined }
  /**
   * The consumer reads `ChatStream.laneBatches` and writes OpenAI SSE itself (gateway/deliver.ts): plain text deltas
   * may come as their text instead of canonical chunks (see TextLane). A hint: adapters may ignore it.
   */
  textLane?: boolean
  /** Told the upstream's response headers as soon as they arrive, whatever the status (the gateway reads the provider's request id). */
  onUpstreamHeaders?: (headers: Readonly<Record<string, string | string[] | undefined>>) => void
}

/**
 * A stream item of the text lane: the text of a content delta of choice 0 that needs no escaping in JSON (no
 * quote, backslash or control character), standing for the chunk `ChatStream.textChunk(text)` would make. Saves
 * the canonical chunk's five objects and its generic encoding on the bulk of a translated stream.
 */
export type TextLane = string

/** A stream of canonical chunks. Resolved once the upstream answered with a 2xx status. */
export interface ChatStream extends AsyncIterable<ChatChunk> {
  readonly status: number
  /** Aggregated result (usage, finish reason) once the stream ended; rejects if it failed. */
  readonly final: Promise<ChatResponse>
  /**
   * Optional: the same chunks, grouped as they became available (everything one upstream read produced), so
   * the gateway can write them to the client in one write instead of one per chunk. Iterate one or the other.
   */
  batches?(): AsyncIterable<readonly ChatChunk[]>
  /**
   * Optional: batches() with text-lane items (see ExecuteParams.textLane), for a consumer that asked for them.
   * Iterate this or one of the others.
   */
  laneBatches?(): AsyncIterable<readonly (ChatChunk | TextLane)[]>
  /** The canonical chunk a text-lane item stands for (with laneBatches). */
  textChunk?(text: TextLane): ChatChunk
}

export interface ProviderMetrics {
  requests: number
  inflight: number
  errors: number
  errorsByCode: Readonly<Record<string, number>>
  latencyMs: { p50: number; p99: number }
}

export interface HealthStatus { ok: boolean; checkedAt: number; latencyMs?: number; detail?: string }

/** Everything a provider entry in config may carry; each adapter validates its own fields. */
export interface ProviderConfig {
  type: string
  baseUrl?: string
  apiKey?: string
  [k: string]: unknown
}

/**
 * The spec's interface (execute, validateConfig, getMetrics, healthCheck) plus streaming,
 * embeddings and model listing. `adapter.ts` in each provider folder is the only file doing I/O.
 */
export interface ProviderAdapter {
  /** The provider's name in config (`providers.<name>`). */
  readonly name: string
  /** The adapter type (`openai`, `anthropic`, ...). */
  readonly type: string
  execute(req: ChatRequest, params: ExecuteParams): Promise<ChatResponse>
  stream(req: ChatRequest, params: ExecuteParams): Promise<ChatStream>
  embed?(req: EmbeddingRequest, params: ExecuteParams): Promise<EmbeddingResponse>
  /** The prompt tokens of a request as the provider counts them (Anthropic's `count_tokens`); absent: the provider has no such endpoint. */
  countTokens?(req: ChatRequest, params: ExecuteParams): Promise<number>
  /** The models declared in config (`models`): routable by their bare name. */
  listModels?(): readonly string[]
  /**
   * The models the provider serves, from its own list endpoint (one request per page). Only asked by
   * GET /v1/models, for a provider with nothing declared; throws a GatewayError when the upstream fails.
   */
  discoverModels?(signal: AbortSignal): Promise<readonly string[]>
  validateConfig(config: unknown): config is ProviderConfig
  configErrors(config: unknown): readonly string[]
  getMetrics(): ProviderMetrics
  healthCheck(): Promise<HealthStatus>
  close(): Promise<void>
  /**
   * Optional fast path: the adapter speaks the OpenAI wire format upstream, so the gateway may
   * forward the canonical body and stream the upstream bytes straight to the client.
   */
  readonly passthrough?: PassthroughTarget | undefined
  /**
   * Optional: the adapter speaks the Anthropic Messages API upstream, so a `/v1/messages` request the canonical form
   * cannot carry (server tools, citations, block types it does not know) goes there as the client sent it.
   */
  readonly nativeMessages?: NativeMessagesTarget | undefined
}

/** Where a Messages API body can be forwarded as the client sent it (gateway/upstream/native-messages.ts). */
export interface NativeMessagesTarget {
  readonly dispatcher: Dispatcher
  /** `POST` paths under the base URL: the Messages API and its token counting. */
  readonly messagesPath: string
  readonly countTokensPath: string
  readonly timeouts: Readonly<{ firstByteMs: number; idleMs: number }>
  /** Upstream headers (auth, `anthropic-version`, the config's). Computed once per config. */
  readonly headers: Readonly<Record<string, string>>
  /** The call's `anthropic-beta` header (the config's betas and the client's merged), undefined when the client sent none. */
  betaHeaders(clientBeta: string | undefined): Record<string, string> | undefined
  /** Every `/v1/messages` request it can take goes as sent, not only those the canonical form cannot carry (config `nativeMessages`). */
  readonly always: boolean
  /** Whether a request may give the provider this server tool type (config `serverTools`). */
  serverToolAllowed(type: string): boolean
  /** Maps an upstream error body to a GatewayError with the provider's code kept. */
  toError(status: number, body: string, headers: Record<string, string | string[] | undefined>): GatewayError
}

/** Where an OpenAI-shaped request can be forwarded byte for byte. */
export interface PassthroughTarget {
  readonly dispatcher: Dispatcher
  readonly origin: string
  /** Path for an operation, e.g. chat → '/v1/chat/completions'. */
  path(op: 'chat' | 'embeddings', model: string): string
  /** Time to first byte and longest silence between chunks, ms. */
  readonly timeouts: Readonly<{ firstByteMs: number; idleMs: number }>
  /** Upstream headers (auth included). Computed once per config. */
  readonly headers: Readonly<Record<string, string>>
  /** Maps an upstream error body to a GatewayError with the provider's code kept. */
  toError(status: number, body: string, headers: Record<string, string | string[] | undefined>): GatewayError
}

export interface AdapterDeps {
  /** Shared undici pools, one per origin. */
  dispatcherFor(origin: string): Dispatcher
}

export interface AdapterFactory {
  readonly type: string
  configErrors(config: unknown): readonly string[]
  /** Async work before `create` at config compile (loading a custom module); returns errors naming the field. */
  prepare?(config: ProviderConfig): Promise<readonly string[]>
  create(name: string, config: ProviderConfig, deps: AdapterDeps): ProviderAdapter
}
