/** OpenAI → canonical: a shape check, since the canonical format is OpenAI's. */
import { randomUUID } from 'node:crypto'
import { GatewayError } from '../../gateway/errors.ts'
import { idsOf } from '../shared/translation.ts'
import type { ChatResponse, EmbeddingResponse, FinishReason } from '../types.ts'

/**
 * Finish reasons some openai-compatible servers send instead of OpenAI's (TGI: `eos_token`, `stop_sequence`;
 * older llama.cpp and others: `eos`): all mean the model stopped by itself, OpenAI's `stop`.
 */
const FINISH_ALIASES: Readonly<Record<string, FinishReason>> = { eos: 'stop', eos_token: 'stop', stop_sequence: 'stop' }

/** The canonical finish reason for an upstream one (unchanged unless it is a known alias). */
export function canonicalFinish(reason: string): FinishReason {
  return Object.hasOwn(FINISH_ALIASES, reason) ? FINISH_ALIASES[reason]! : reason as FinishReason
}

/**
 * vLLM names what ended a `stop` finish in `stop_reason`: the stop string it matched (a string), a stop token id (a
 * number) or null. A matched string is the canonical `stop_sequence` (Anthropic's clients read it).
 */
export function stopSequenceOf(c: { finish_reason: FinishReason | null; stop_sequence?: string }): void {
  const s = (c as { stop_reason?: unknown }).stop_reason
  if (c.finish_reason === 'stop' && typeof s === 'string' && s !== '') c.stop_sequence = s
}

export function fromOpenAIChat(json: unknown, provider: string): ChatResponse {
  const r = json as ChatResponse
  if (r === null || typeof r !== 'object' || !Array.isArray(r.choices)) {
    throw new GatewayError('MCP_ERR_UPSTREAM_BAD_RESPONSE', { provider, reason: "no 'choices' in the completion" })
  }
  for (const c of r.choices) {
    if (typeof c?.finish_reason !== 'string') continue
    c.finish_reason = canonicalFinish(c.finish_reason)
    stopSequenceOf(c)
  }
  // Some openai-compatible servers (llama.cpp, TGI) send no id or created.
  if (typeof r.id !== 'string' || r.id === '') r.id = `chatcmpl-${randomUUID().replaceAll('-', '')}`
  if (typeof r.created !== 'number' || r.created <= 0) r.created = Math.floor(Date.now() / 1000)
  return r
}

export function fromOpenAIEmbeddings(json: unknown, provider: string): EmbeddingResponse {
  const r = json as EmbeddingResponse
  if (r === null || typeof r !== 'object' || !Array.isArray(r.data)) {
    throw new GatewayError('MCP_ERR_UPSTREAM_BAD_RESPONSE', { provider, reason: "no 'data' in the embeddings response" })
  }
  return r
}

/** `{object: 'list', data: [{id}]}` → the ids. */
export function fromOpenAIModels(json: unknown): { ids: string[] } {
  return { ids: idsOf((json as { data?: unknown } | null)?.data, 'id') }
}
