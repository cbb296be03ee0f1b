/**
 * Ollama → canonical, non-streaming: `/api/chat` and `/api/embed` answers. Pure: the id and the
 * clock come from the adapter.
 */
import { GatewayError } from '../../gateway/errors.ts'
import { idsOf } from '../shared/translation.ts'
import type { ChatResponse, EmbeddingResponse, FinishReason, ToolCall, Usage } from '../types.ts'
import { embeddingsProblem, encodeEmbeddings } from '../shared/embeddings.ts'
import type { OllamaToolCall } from './request.ts'
import { table } from '../shared/table.ts'

// ---------- Ollama wire types (response side) ----------

export interface OllamaChatResponse {
  model?: string
  created_at?: string
  message?: { role?: string; content?: string; thinking?: string; tool_calls?: OllamaToolCall[] }
  done?: boolean
  done_reason?: string
  prompt_eval_count?: number
  eval_count?: number
  error?: string
}

export interface OllamaEmbedResponse {
  model?: string
  embeddings?: number[][]
  prompt_eval_count?: number
}

/** Where a response's id and timestamp come from (impure, so supplied by the adapter). */
export interface ResponseMeta {
  provider: string
  id: string
  /** Epoch seconds, used when the upstream sends no parseable `created_at`. */
  now: number
}

/** Ollama's done_reason → the canonical finish reason; a turn with tool calls is 'tool_calls' whatever Ollama said. */
export const FINISH_MAP: Readonly<Record<string, FinishReason>> = table({
  stop: 'stop',
  length: 'length',
  load: 'stop',
  unload: 'stop',
})

export function finishReason(doneReason: string | undefined, hadToolCalls: boolean): FinishReason {
  if (hadToolCalls) return 'tool_calls'
  return (doneReason !== undefined ? FINISH_MAP[doneReason] : undefined) ?? 'stop'
}

/**
 * The stem of a response's tool-call ids: its id without `chatcmpl-` and dashes (`chatcmpl-<uuid>` →
 * 32 hex digits). Ollama sends no ids, and `call_<n>` alone would repeat on every turn of a conversation.
 */
export function toolCallStem(responseId: string): string {
  return (responseId.startsWith('chatcmpl-') ? responseId.slice(9) : responseId).replaceAll('-', '')
}

/** Canonical id of the n-th tool call of a response (`call_<stem>_<n>`), unless Ollama sent one. */
export function toolCallId(tc: OllamaToolCall, stem: string, n: number): string {
  return typeof tc.id === 'string' && tc.id !== '' ? tc.id : `call_${stem}_${n}`
}

export function toCanonicalToolCall(tc: OllamaToolCall, stem: string, n: number): ToolCall {
  const args = tc.function?.arguments
  return {
    id: toolCallId(tc, stem, n),
    type: 'function',
    function: { name: tc.function?.name ?? '', arguments: typeof args === 'string' ? args : JSON.stringify(args ?? {}) },
  }
}

export function usageOf(r: { prompt_eval_count?: number; eval_count?: number }): Usage {
  const prompt = r.prompt_eval_count ?? 0
  const completion = r.eval_count ?? 0
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }
}

export function createdOf(createdAt: string | undefined, now: number): number {
  const t = createdAt === undefined ? NaN : Date.parse(createdAt)
  return Number.isFinite(t) ? Math.floor(t / 1000) : now
}

function bad(provider: string, reason: string): GatewayError {
  return new GatewayError('MCP_ERR_UPSTREAM_BAD_RESPONSE', { provider, reason })
}

export function fromOllamaChat(json: unknown, model: string, meta: ResponseMeta): ChatResponse {
  const r = json as OllamaChatResponse
  if (r === null || typeof r !== 'object' || r.message === null || typeof r.message !== 'object') throw bad(meta.provider, "no 'message' in the chat response")
  const calls = Array.isArray(r.message.tool_calls) ? r.message.tool_calls.map((tc, n) => toCanonicalToolCall(tc, toolCallStem(meta.id), n)) : []
  const content = typeof r.message.content === 'string' ? r.message.content : ''
  const message: ChatResponse['choices'][number]['message'] = {
    role: 'assistant',
    content: content === '' && calls.length > 0 ? null : content,
  }
  if (calls.length > 0) message.tool_calls = calls
  return {
    id: meta.id,
    object: 'chat.completion',
    created: createdOf(r.created_at, meta.now),
    model: typeof r.model === 'string' ? r.model : model,
    choices: [{ index: 0, message, finish_reason: finishReason(r.done_reason, calls.length > 0) }],
    usage: usageOf(r),
  }
}

/** `encodingFormat` is the request's: base64 (the openai SDKs' default) is encoded here from Ollama's floats. */
export function fromOllamaEmbed(json: unknown, model: string, provider: string, encodingFormat?: unknown, inputs?: number): EmbeddingResponse {
  const r = json as OllamaEmbedResponse
  if (r === null || typeof r !== 'object' || !Array.isArray(r.embeddings)) throw bad(provider, "no 'embeddings' in the embed response")
  const problem = embeddingsProblem(r.embeddings, inputs)
  if (problem !== undefined) throw bad(provider, problem)
  const prompt = r.prompt_eval_count ?? 0
  return {
    object: 'list',
    data: encodeEmbeddings(r.embeddings.map((embedding, index) => ({ object: 'embedding', index, embedding })), encodingFormat),
    model: typeof r.model === 'string' ? r.model : model,
    usage: { prompt_tokens: prompt, total_tokens: prompt },
  }
}

/** `{models: [{name}]}` → the names (`llama3.2:latest`). */
export function fromOllamaModels(json: unknown): { ids: string[] } {
  return { ids: idsOf((json as { models?: unknown } | null)?.models, 'name') }
}
