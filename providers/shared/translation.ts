/**
 * What a provider folder contributes besides its adapter: pure translation between the canonical
 * (OpenAI Chat Completions) format and the provider's wire format. No I/O in here.
 */
import type { GatewayError } from '../../gateway/errors.ts'
import type { ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse } from '../types.ts'
import type { HeaderMap } from './http.ts'
import type { SseEvent } from './sse.ts'

export interface UpstreamBody {
  path: string
  body: unknown
  /** Extra headers for this call (beyond auth and content-type). */
  headers?: Record<string, string>
}

/** Turns upstream stream events into canonical chunks; state lives in the closure. */
export interface StreamMapper {
  /**
   * One upstream event (an SSE event, or one NDJSON line as `{event:'message', data}`).
   * Returns the canonical chunks it produces. Throws a GatewayError on an error event or a
   * malformed event.
   */
  push(ev: SseEvent): ChatChunk[] | undefined
  /**
   * Optional text lane (ExecuteParams.textLane): when `ev` is a text delta of choice 0 with text that needs no
   * escaping in JSON and no other effect, that text ('' for an empty delta: nothing to send), without building the
   * chunk; undefined otherwise (then push(ev) maps it). textChunk(text) is the chunk push would have returned.
   */
  laneText?(ev: SseEvent): string | undefined
  textChunk?(text: string): ChatChunk
  /**
   * Optional, with laneText: the same lane for a whole SSE event in the provider's exact serialization, matched in
   * the parser's input without splitting it into lines (see SseFastEvent). `pattern` is sticky and shared; a secret
   * that occurs in `template` (the event with an empty text) or contains a quote turns the lane off (see
   * UpstreamChatStream: only the text is searched for credentials). laneEventText(s, from, to) is laneText of the
   * event s[from, to), or undefined to read it the usual way.
   */
  readonly laneEvent?: { readonly pattern: RegExp; readonly template: string }
  laneEventText?(s: string, from: number, to: number): string | undefined
  /**
   * Optional: the provider's documented terminal event came (OpenAI's `[DONE]`, Anthropic's `message_stop`, Ollama's
   * `done: true` line): the answer is complete, and the stream ends there whether or not the upstream closes its body
   * (UpstreamChatStream). A provider without one (Gemini) leaves it out and ends at EOF.
   */
  ended?(): boolean
  /**
   * The upstream body ended. Returns any last chunks. Throws MCP_ERR_UPSTREAM_STREAM_INTERRUPTED
   * when the stream ended before the provider said it was complete.
   */
  end(): ChatChunk[] | undefined
}

export interface ChatTranslation {
  readonly streamFormat: 'sse' | 'ndjson'
  toUpstream(req: ChatRequest, model: string, stream: boolean): UpstreamBody
  fromUpstream(json: unknown, model: string): ChatResponse
  /** `usageAsked`: the upstream request asked for a usage chunk (OpenAI's `stream_options.include_usage`). */
  createStreamMapper(model: string, requestId: string, usageAsked?: boolean): StreamMapper
  toError(status: number, body: string, headers: HeaderMap): GatewayError
}

/** A provider's token-counting endpoint (Anthropic's `POST /v1/messages/count_tokens`). */
export interface CountTokensTranslation {
  toUpstream(req: ChatRequest, model: string): UpstreamBody
  /** The count from the upstream's JSON; throws when it holds none. */
  fromUpstream(json: unknown): number
}

export interface EmbeddingTranslation {
  toUpstream(req: EmbeddingRequest, model: string): UpstreamBody
  /** `req` is the canonical request (for what the answer depends on besides the upstream JSON, e.g. encoding_format). */
  fromUpstream(json: unknown, model: string, req: EmbeddingRequest): EmbeddingResponse
}

/**
 * The provider's model list endpoint, for providers configured without `models` (GET /v1/models): the path of a
 * page (`cursor` undefined for the first), and a page's model ids with the cursor of the next page, if any.
 */
export interface ModelListTranslation {
  path(cursor: string | undefined): string
  fromUpstream(json: unknown): { ids: string[]; cursor?: string | undefined }
}

/** The string `key` of each object in `list` (a model list page's entries); anything else is skipped. */
export function idsOf(list: unknown, key: string): string[] {
  if (!Array.isArray(list)) return []
  const ids: string[] = []
  for (const x of list) {
    const v = x !== null && typeof x === 'object' ? (x as Record<string, unknown>)[key] : undefined
    if (typeof v === 'string' && v !== '') ids.push(v)
  }
  return ids
}
