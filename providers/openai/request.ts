/**
 * Canonical → OpenAI: the canonical format is OpenAI's, so the body is forwarded with the model name
 * changed, except for the canonical extensions that only Anthropic's API has (kept by the Anthropic
 * inbound dialect, see gateway/inbound/anthropic.ts), which OpenAI's API rejects as unknown fields:
 * - `cache_control` on content parts, tools and tool messages (a prompt-caching hint; OpenAI caches by itself) is left out;
 * - `is_error` on a tool message (OpenAI's tool messages have no error field) becomes the text
 *   `Error: <content>`;
 * - `thinking_blocks` on an assistant message (Anthropic's extended thinking, signed for Anthropic only) is left out;
 * - a plain-text file part (`data:text/plain`, an Anthropic client's text document) becomes a text part, its filename
 *   (the document's title) on the first line: Chat Completions takes PDF files only, and text is sent as text;
 * - `top_k` is unsupported (400 MCP_ERR_REQ_PARAM_UNSUPPORTED naming it, or dropped with `dropUnsupportedParams`);
 *   it is forwarded to `openai-compatible` servers (vLLM, llama.cpp, LM Studio take it).
 * - `thinking` is not sent: to a reasoning model (o-series, gpt-5, gpt-oss: isReasoningModel) enabled with
 *   `budget_tokens` becomes `reasoning_effort` (effortForBudget) unless the request has one; disabled is left out (no
 *   off setting every model shares: chat models do not reason, o-series cannot stop, gpt-5 and gpt-5.1 differ);
 *   adaptive without an effort, and enabled to any other model (which refuses `reasoning_effort`), are unsupported.
 * - OpenAI's limits (`maxStopSequences`, `toolNames`: OpenAI's own API and Azure; an openai-compatible server has none)
 *   are the gateway's 400 naming the client's field and the provider, before the call, whatever `dropUnsupportedParams`
 *   says: a `/v1/messages` client would otherwise get OpenAI's 400 naming a field it never sent (`stop`,
 *   `tools[0].function.name`).
 * Bodies without these fields are not copied beyond the top level.
 */
import { GatewayError } from '../../gateway/errors.ts'
import type { ChatMessage, ChatRequest, EmbeddingRequest, ToolDefinition } from '../types.ts'
import type { UpstreamBody } from '../shared/translation.ts'
import { effortForBudget, isReasoningModel, readThinking } from '../shared/reasoning.ts'
import { checkToolNames, type ToolNameRule } from '../shared/tool-names.ts'

export interface OpenAIRequestOptions {
  provider: string
  dropUnsupportedParams: boolean
  /** `top_k` is forwarded (openai-compatible servers), not unsupported. */
  forwardTopK: boolean
  /**
   * OpenAI's own API: `max_tokens` is sent as `max_completion_tokens`, its replacement, which every current OpenAI
   * chat model takes and the reasoning models (o-series, gpt-5) require (they refuse `max_tokens`). Off for
   * OpenAI-compatible servers and Azure, where older servers and API versions know only `max_tokens`.
   */
  completionTokens?: boolean
  /** OpenAI's own API and Azure: 4. More is a 400 naming `stop` (leaving some out would change where the answer ends). */
  maxStopSequences?: number
  /** OpenAI's own API and Azure: OPENAI_TOOL_NAMES. A tool or tool_choice named otherwise is a 400 naming it. */
  toolNames?: ToolNameRule
}

type Obj = Record<string, unknown>

/** OpenAI's (and Azure's) limit on `stop`: "Up to 4 sequences". */
export const OPENAI_MAX_STOP = 4

/** A text part's Anthropic `cache_control` left out; the same part when it has none. */
function withoutCacheControl<T>(p: T): T {
  if (p === null || typeof p !== 'object' || !('cache_control' in p)) return p
  const { cache_control: _, ...rest } = p as Obj
  return rest as T
}

function partsWithoutCacheControl<T>(content: T): T {
  if (!Array.isArray(content) || !content.some((p) => p !== null && typeof p === 'object' && ('cache_control' in p || (p as Obj)['type'] === 'file'))) return content
  return content.map((p) => plainTextFile(p) ?? withoutCacheControl(p)) as T
}

/** A `data:` URL of plain text (any parameters, e.g. `;charset=utf-8`), base64 or percent-encoded. */
const PLAIN_TEXT_DATA_URL = /^data:text\/plain[;,]/i

/**
 * A file part holding plain text (`data:text/plain`, an Anthropic client's text document) → a text part: Chat
 * Completions takes PDF files only ("Expected a base64-encoded data URL with an application/pdf MIME type") and its
 * guidance is to send text as text. The filename (the document's title) is its first line, a blank line before the
 * text. Undefined for any other part, and for text in a charset this runtime cannot decode (sent as it came).
 */
function plainTextFile(p: unknown): { type: 'text'; text: string } | undefined {
  if (p === null || typeof p !== 'object' || (p as Obj)['type'] !== 'file') return undefined
  const file = (p as Obj)['file'] as { file_data?: unknown; filename?: unknown } | undefined
  const url = file?.file_data
  if (typeof url !== 'string' || !PLAIN_TEXT_DATA_URL.test(url)) return undefined
  const comma = url.indexOf(',')
  if (comma === -1) return undefined
  const meta = url.slice(5, comma).split(';').slice(1)
  const charset = meta.find((m) => /^charset=/i.test(m))?.slice(8) ?? 'utf-8'
  const base64 = meta.at(-1)?.toLowerCase() === 'base64'
  let text: string
  try {
    const payload = url.slice(comma + 1)
    const bytes = base64 ? Buffer.from(payload, 'base64') : Buffer.from(decodeURIComponent(payload), 'utf8')
    text = base64 ? new TextDecoder(charset).decode(bytes) : bytes.toString('utf8')
  } catch {
    return undefined
  }
  return { type: 'text', text: typeof file?.filename === 'string' && file.filename !== '' ? `${file.filename}\n\n${text}` : text }
}

/** A tool message's text: its text parts one line break apart (separate pieces, never glued into one word), empty ones left out. */
function textOf(content: unknown): string {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) return ''
  const texts: string[] = []
  for (const p of content as Obj[]) if (p?.['type'] === 'text' && typeof p['text'] === 'string' && p['text'] !== '') texts.push(p['text'])
  return texts.join('\n')
}

/** One message without the Anthropic-only keys; the same message when it has none. */
function openaiMessage(m: ChatMessage): ChatMessage {
  if (m.role === 'tool' && ('is_error' in m || 'cache_control' in m)) {
    const { is_error: isError, cache_control: _, ...rest } = m as ChatMessage & Obj
    return { ...(rest as ChatMessage & { role: 'tool' }), content: isError === true ? `Error: ${textOf(m.content)}` : partsWithoutCacheControl(m.content) }
  }
  if (m.role === 'assistant' && 'thinking_blocks' in m) {
    const { thinking_blocks: _, ...rest } = m
    return rest.content === undefined ? rest : { ...rest, content: partsWithoutCacheControl(rest.content) }
  }
  const content = partsWithoutCacheControl(m.content)
  return content === m.content ? m : ({ ...m, content } as ChatMessage)
}

function openaiMessages(messages: ChatMessage[]): ChatMessage[] {
  let out: ChatMessage[] | undefined
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]!
    const t = openaiMessage(m)
    if (t !== m) { out ??= messages.slice(); out[i] = t }
  }
  return out ?? messages
}

/** Throws the 400 naming `param`, unless the provider drops unsupported parameters (the caller then drops it). */
function unsupported(o: OpenAIRequestOptions, param: string): void {
  if (!o.dropUnsupportedParams) throw new GatewayError('MCP_ERR_REQ_PARAM_UNSUPPORTED', { param, provider: o.provider }, { param, details: 'request.param_unsupported' })
}

function invalid(field: string, reason: string): GatewayError {
  return new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason: `${field}: ${reason}` }, { param: field, details: 'request.body_invalid' })
}

/** The limits OpenAI's API sets on a request the gateway can judge before the call (see the header). */
function checkLimits(body: ChatRequest, o: OpenAIRequestOptions): void {
  const max = o.maxStopSequences
  if (max !== undefined && Array.isArray(body.stop) && body.stop.length > max) {
    throw invalid('stop', `provider ${o.provider} takes at most ${max} stop sequences, got ${body.stop.length}`)
  }
  if (o.toolNames !== undefined) checkToolNames(body, o.toolNames, o.provider)
}

/** Anthropic's `thinking` (on a copy of the request) → `reasoning_effort`, see the header; null is no thinking field. */
function thinkingToEffort(body: ChatRequest, o: OpenAIRequestOptions): void {
  const v = body['thinking']
  delete body['thinking']
  if (v === null) return
  const t = readThinking(v)
  if (body.reasoning_effort != null) return
  if (t.type === 'enabled' && isReasoningModel(body.model)) body.reasoning_effort = effortForBudget(t.budget)
  else if (t.type !== 'disabled') unsupported(o, 'thinking')
}

/** A request's `max_tokens` (on a copy) sent as `max_completion_tokens`, unless it has its own (which wins). */
export function useCompletionTokens(body: ChatRequest): void {
  if (body.max_tokens == null || body.max_completion_tokens != null) return
  body.max_completion_tokens = body.max_tokens
  delete body.max_tokens
}

export function toOpenAIChat(req: ChatRequest, model: string, stream: boolean, basePath: string, o?: OpenAIRequestOptions): UpstreamBody {
  const body: ChatRequest = { ...req, model }
  if (stream) body.stream = true
  else delete body.stream
  if (!stream) delete body.stream_options
  if (o !== undefined) {
    if (body['top_k'] !== undefined && !o.forwardTopK) {
      unsupported(o, 'top_k')
      delete body['top_k']
    }
    if (body['thinking'] !== undefined) thinkingToEffort(body, o)
    checkLimits(body, o)
  }
  // Anthropic's server-side context editing (from /v1/messages): OpenAI's API edits no context and refuses the field.
  delete body['context_management']
  if (o?.completionTokens) useCompletionTokens(body)
  if (Array.isArray(body.messages)) body.messages = openaiMessages(body.messages)
  if (Array.isArray(body.tools) && body.tools.some((t) => t !== null && typeof t === 'object' && 'cache_control' in t)) {
    body.tools = body.tools.map((t) => withoutCacheControl<ToolDefinition>(t))
  }
  return { path: `${basePath}/chat/completions`, body }
}

export function toOpenAIEmbeddings(req: EmbeddingRequest, model: string, basePath: string): UpstreamBody {
  return { path: `${basePath}/embeddings`, body: { ...req, model } }
}

/** GET {baseUrl}/models: one page, the whole list (OpenAI and the compatible servers do not paginate it). */
export function openaiModelsPath(basePath: string): string {
  return `${basePath}/models`
}
