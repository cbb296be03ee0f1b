/**
 * Anthropic Message → canonical ChatResponse. Pure.
 *
 * Text blocks are concatenated into `content`; `tool_use` blocks become `tool_calls` (input
 * re-serialised as the arguments string). `thinking` and `redacted_thinking` blocks become the message's
 * `thinking_blocks` extension, in order and unmodified (their signatures must go back as they came); server-tool
 * blocks have no canonical field and are not carried. Anthropic's `msg_…` id is kept.
 */
import { GatewayError } from '../../gateway/errors.ts'
import { idsOf } from '../shared/translation.ts'
import type { ChatChoice, ChatResponse, FinishReason, ThinkingBlock, ToolCall, Usage } from '../types.ts'
import { table } from '../shared/table.ts'

export interface AnthropicUsage {
  input_tokens?: number | null
  output_tokens?: number | null
  cache_read_input_tokens?: number | null
  cache_creation_input_tokens?: number | null
  /** The cache writes by lifetime (cache_control.ttl '5m', the default, or '1h'); they sum to cache_creation_input_tokens. */
  cache_creation?: { ephemeral_5m_input_tokens?: number | null; ephemeral_1h_input_tokens?: number | null } | null
  output_tokens_details?: { thinking_tokens?: number | null } | null
  server_tool_use?: { web_search_requests?: number | null; web_fetch_requests?: number | null } | null
}

export interface AnthropicContentBlock {
  type: string
  text?: string
  id?: string
  name?: string
  input?: unknown
  [k: string]: unknown
}

export interface AnthropicMessage {
  id: string
  type: 'message'
  role: 'assistant'
  model: string
  content: AnthropicContentBlock[]
  stop_reason: string | null
  stop_sequence: string | null
  usage: AnthropicUsage
}

const STOP_REASONS: Readonly<Record<string, FinishReason>> = table({
  end_turn: 'stop',
  stop_sequence: 'stop',
  pause_turn: 'stop',
  max_tokens: 'length',
  model_context_window_exceeded: 'length',
  tool_use: 'tool_calls',
  refusal: 'content_filter',
})

/** The stop reasons the canonical finish reason gives back exactly (gateway/inbound/anthropic.ts STOP_REASON); the others are kept as ChatChoice.anthropic_stop_reason. */
const ROUND_TRIPS: ReadonlySet<string> = new Set(['end_turn', 'stop_sequence', 'max_tokens', 'tool_use', 'refusal'])

/** Anthropic's stop_reason when the finish reason loses it (see ChatChoice.anthropic_stop_reason); else undefined. */
export function nativeStopReason(stopReason: string | null | undefined): string | undefined {
  return typeof stopReason === 'string' && stopReason !== '' && !ROUND_TRIPS.has(stopReason) ? stopReason : undefined
}

/** Unknown future stop reasons read as a normal stop. */
export function toFinishReason(stopReason: string | null | undefined): FinishReason | null {
  if (stopReason == null) return null
  return STOP_REASONS[stopReason] ?? 'stop'
}

const n = (v: number | null | undefined): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0)

/** prompt_tokens counts every input token (uncached + cache reads + cache writes), as OpenAI's does. */
export function toCanonicalUsage(u: AnthropicUsage): Usage {
  const cacheRead = n(u.cache_read_input_tokens)
  const cacheCreation = n(u.cache_creation_input_tokens)
  const prompt = n(u.input_tokens) + cacheRead + cacheCreation
  const completion = n(u.output_tokens)
  const usage: Usage = {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: cacheRead, cache_creation_tokens: cacheCreation },
  }
  // 1-hour cache writes cost more than 5-minute ones (2x and 1.25x the input price): carried apart.
  const write1h = Math.min(cacheCreation, n(u.cache_creation?.ephemeral_1h_input_tokens))
  if (write1h > 0) usage.prompt_tokens_details!.cache_creation_1h_tokens = write1h
  const thinking = u.output_tokens_details?.thinking_tokens
  if (typeof thinking === 'number') usage.completion_tokens_details = { reasoning_tokens: thinking }
  const searches = n(u.server_tool_use?.web_search_requests)
  const fetches = n(u.server_tool_use?.web_fetch_requests)
  if (searches > 0 || fetches > 0) usage.server_tool_use = { web_search_requests: searches, web_fetch_requests: fetches }
  return usage
}

function bad(provider: string, reason: string): GatewayError {
  return new GatewayError('MCP_ERR_UPSTREAM_BAD_RESPONSE', { provider, reason })
}

export function fromAnthropicMessage(json: unknown, provider: string, now = Date.now()): ChatResponse {
  const m = json as AnthropicMessage
  if (m === null || typeof m !== 'object' || !Array.isArray(m.content)) throw bad(provider, "no 'content' in the message")
  const text: string[] = []
  const toolCalls: ToolCall[] = []
  const thinking: ThinkingBlock[] = []
  for (const b of m.content) {
    if (b.type === 'text') text.push(typeof b.text === 'string' ? b.text : '')
    else if (b.type === 'thinking') thinking.push({ type: 'thinking', thinking: String(b['thinking'] ?? ''), signature: String(b['signature'] ?? '') })
    else if (b.type === 'redacted_thinking') thinking.push({ type: 'redacted_thinking', data: String(b['data'] ?? '') })
    else if (b.type === 'tool_use') {
      toolCalls.push({ id: String(b.id ?? ''), type: 'function', function: { name: String(b.name ?? ''), arguments: JSON.stringify(b.input ?? {}) } })
    }
  }
  const message: ChatResponse['choices'][number]['message'] = { role: 'assistant', content: text.length > 0 ? text.join('') : null }
  if (toolCalls.length > 0) message.tool_calls = toolCalls
  if (thinking.length > 0) message.thinking_blocks = thinking
  const choice: ChatChoice = { index: 0, message, finish_reason: toFinishReason(m.stop_reason) ?? 'stop' }
  if (m.stop_reason === 'stop_sequence' && typeof m.stop_sequence === 'string') choice.stop_sequence = m.stop_sequence
  const native = nativeStopReason(m.stop_reason)
  if (native !== undefined) choice.anthropic_stop_reason = native
  const res: ChatResponse = {
    id: String(m.id ?? ''),
    object: 'chat.completion',
    created: Math.floor(now / 1000),
    model: String(m.model ?? ''),
    choices: [choice],
  }
  if (m.usage && typeof m.usage === 'object') res.usage = toCanonicalUsage(m.usage)
  return res
}

/** `{data: [{id}], has_more, last_id}` → the ids, and the cursor of the next page (`last_id`) when `has_more`. */
export function fromAnthropicModels(json: unknown): { ids: string[]; cursor?: string } {
  const j = (json ?? {}) as { data?: unknown; has_more?: unknown; last_id?: unknown }
  const ids = idsOf(j.data, 'id')
  return j.has_more === true && typeof j.last_id === 'string' && j.last_id !== '' ? { ids, cursor: j.last_id } : { ids }
}
