/**
 * Gemini `GenerateContentResponse` / `EmbedContentResponse` / `BatchEmbedContentsResponse` →
 * canonical. Pure.
 *
 * - candidates → choices (by `index`); non-thought text parts are joined; `functionCall` parts become
 *   tool calls with ids `call_<responseId>_<n>`, n counting the response's function calls in order,
 *   so one response always yields the same ids (Gemini has no call ids of its own on most models).
 * - A prompt blocked by safety (`promptFeedback.blockReason`, no candidates) is an error: status
 *   400, provider code `content_filter`, the block reason in the message.
 */
import { GatewayError } from '../../gateway/errors.ts'
import type { ChatChoice, ChatResponse, EmbeddingRequest, EmbeddingResponse, FinishReason, ToolCall, Usage } from '../types.ts'
import { embeddingsProblem, encodeEmbeddings } from '../shared/embeddings.ts'
import { upstreamError } from '../shared/upstream-error.ts'
import type { GeminiPart, GoogleToolCallExtra } from './request.ts'
import { table } from '../shared/table.ts'

// ---------- Gemini wire types (response side) ----------

export interface GeminiCandidate {
  content?: { role?: string; parts?: GeminiPart[] }
  finishReason?: string
  index?: number
  safetyRatings?: unknown[]
}

export interface GeminiUsage {
  promptTokenCount?: number
  candidatesTokenCount?: number
  totalTokenCount?: number
  cachedContentTokenCount?: number
  thoughtsTokenCount?: number
  toolUsePromptTokenCount?: number
}

export interface GeminiGenerateResponse {
  candidates?: GeminiCandidate[]
  promptFeedback?: { blockReason?: string; blockReasonMessage?: string; safetyRatings?: unknown[] }
  usageMetadata?: GeminiUsage
  modelVersion?: string
  responseId?: string
}

// ---------- shared by response.ts and stream.ts ----------

/** Gemini `finishReason` → canonical; reasons not listed (OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL...) → 'stop'. */
const FINISH: Readonly<Record<string, FinishReason>> = table({
  STOP: 'stop',
  MAX_TOKENS: 'length',
  SAFETY: 'content_filter',
  RECITATION: 'content_filter',
  BLOCKLIST: 'content_filter',
  PROHIBITED_CONTENT: 'content_filter',
  SPII: 'content_filter',
  IMAGE_SAFETY: 'content_filter',
  IMAGE_PROHIBITED_CONTENT: 'content_filter',
  IMAGE_RECITATION: 'content_filter',
})

export function finishReason(reason: string, hasToolCalls: boolean): FinishReason {
  const r = FINISH[reason] ?? 'stop'
  return r === 'stop' && hasToolCalls ? 'tool_calls' : r
}

export function toUsage(u: GeminiUsage): Usage {
  const prompt = u.promptTokenCount ?? 0
  const completion = (u.candidatesTokenCount ?? 0) + (u.thoughtsTokenCount ?? 0)
  const usage: Usage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: u.totalTokenCount ?? prompt + completion }
  if (u.cachedContentTokenCount !== undefined) usage.prompt_tokens_details = { cached_tokens: u.cachedContentTokenCount }
  if (u.thoughtsTokenCount !== undefined) usage.completion_tokens_details = { reasoning_tokens: u.thoughtsTokenCount }
  return usage
}

export function toolCallId(responseId: string, n: number): string {
  return `call_${responseId}_${n}`
}

/** Visible text of a candidate's parts (thought summaries and signature-only parts left out). */
export function partsText(parts: readonly GeminiPart[] | undefined): string | undefined {
  if (!parts) return undefined
  let text: string | undefined
  for (const p of parts) if (typeof p.text === 'string' && p.thought !== true && p.text !== '') text = (text ?? '') + p.text
  return text
}

/** One `functionCall` part → a canonical tool call; the thought signature rides in `extra_content`. */
export function toToolCall(p: GeminiPart & { functionCall: NonNullable<GeminiPart['functionCall']> }, id: string): ToolCall & GoogleToolCallExtra {
  const tc: ToolCall & GoogleToolCallExtra = { id, type: 'function', function: { name: p.functionCall.name, arguments: JSON.stringify(p.functionCall.args ?? {}) } }
  if (typeof p.thoughtSignature === 'string' && p.thoughtSignature !== '') tc.extra_content = { google: { thought_signature: p.thoughtSignature } }
  return tc
}

export function hasFunctionCall(p: GeminiPart): p is GeminiPart & { functionCall: NonNullable<GeminiPart['functionCall']> } {
  return p.functionCall !== undefined && p.functionCall !== null && typeof p.functionCall.name === 'string'
}

export function blockedPromptError(provider: string, feedback: NonNullable<GeminiGenerateResponse['promptFeedback']>): GatewayError {
  const reason = feedback.blockReason ?? 'BLOCK_REASON_UNSPECIFIED'
  const extra = feedback.blockReasonMessage ? `: ${feedback.blockReasonMessage}` : ''
  return upstreamError(provider, 400, { message: `The prompt was blocked by Gemini (blockReason ${reason})${extra}`, code: 'content_filter' }, {})
}

function badResponse(provider: string, reason: string): GatewayError {
  return new GatewayError('MCP_ERR_UPSTREAM_BAD_RESPONSE', { provider, reason })
}

// ---------- chat ----------

export function fromGoogleChat(json: unknown, model: string, provider: string): ChatResponse {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw badResponse(provider, 'the body is not a GenerateContentResponse')
  const r = json as GeminiGenerateResponse
  const candidates = Array.isArray(r.candidates) ? r.candidates : []
  if (candidates.length === 0) {
    if (r.promptFeedback?.blockReason) throw blockedPromptError(provider, r.promptFeedback)
    throw badResponse(provider, "no 'candidates' in the response")
  }
  const rid = typeof r.responseId === 'string' && r.responseId !== '' ? r.responseId : crypto.randomUUID().replaceAll('-', '')
  let n = 0
  const choices = candidates.map((c, pos): ChatChoice => {
    const parts = c.content?.parts ?? []
    const tools: ToolCall[] = []
    for (const p of parts) if (hasFunctionCall(p)) tools.push(toToolCall(p, toolCallId(rid, n++)))
    const message: ChatChoice['message'] = { role: 'assistant', content: partsText(parts) ?? null }
    if (tools.length > 0) message.tool_calls = tools
    return { index: c.index ?? pos, message, finish_reason: c.finishReason ? finishReason(c.finishReason, tools.length > 0) : null }
  })
  const res: ChatResponse = {
    id: `chatcmpl-${rid}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: r.modelVersion ?? model,
    choices,
  }
  if (r.usageMetadata) res.usage = toUsage(r.usageMetadata)
  return res
}

// ---------- embeddings ----------

interface GeminiEmbedding { values?: number[] }

export function fromGoogleEmbeddings(json: unknown, model: string, provider: string, inputs?: number): EmbeddingResponse {
  const r = (json ?? {}) as { embedding?: GeminiEmbedding; embeddings?: GeminiEmbedding[]; usageMetadata?: { promptTokenCount?: number } }
  const list = Array.isArray(r.embeddings) ? r.embeddings : r.embedding ? [r.embedding] : undefined
  if (!list) throw badResponse(provider, "no 'embedding' or 'embeddings' in the response")
  const data = list.map((e, index) => {
    if (!Array.isArray(e?.values)) throw badResponse(provider, `embedding ${index} has no 'values'`)
    return { object: 'embedding' as const, index, embedding: e.values }
  })
  const problem = embeddingsProblem(data.map((d) => d.embedding), inputs)
  if (problem !== undefined) throw badResponse(provider, problem)
  // The Gemini API reports no token counts for embeddings (Vertex does, as usageMetadata): 0 here,
  // and finishEmbeddings() replaces it with an estimate once the request is known.
  const tokens = r.usageMetadata?.promptTokenCount ?? 0
  return { object: 'list', data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } }
}

/**
 * Rough token count of embedding inputs: one token per 4 UTF-8 bytes, rounded up per input.
 * An ESTIMATE, used only because Gemini returns none, so that budgets and usage are not zero.
 */
export function estimateEmbeddingTokens(texts: readonly string[]): number {
  let n = 0
  for (const t of texts) n += Math.ceil(Buffer.byteLength(t, 'utf8') / 4)
  return n
}

/**
 * What needs the request besides the body: base64 encoding when asked for, and the token estimate
 * when Gemini reported none. `texts` are the request's inputs (request.ts, embeddingTexts).
 */
export function finishEmbeddings(res: EmbeddingResponse, req: EmbeddingRequest, texts: readonly string[]): EmbeddingResponse {
  const out: EmbeddingResponse = { ...res }
  out.data = encodeEmbeddings(res.data, req.encoding_format)
  if (res.usage.prompt_tokens === 0) {
    const n = estimateEmbeddingTokens(texts)
    out.usage = { prompt_tokens: n, total_tokens: n }
  }
  return out
}

/** What a listed Gemini model must support to be callable through the gateway (chat, embeddings). */
const CALLABLE_METHODS: ReadonlySet<string> = new Set(['generateContent', 'embedContent'])

/**
 * `{models: [{name: 'models/<id>', supportedGenerationMethods}], nextPageToken}` → the ids of the models that
 * generate content or embed (not the ones that only count tokens or answer questions), and the next page's token.
 */
export function fromGoogleModels(json: unknown): { ids: string[]; cursor?: string } {
  const j = (json ?? {}) as { models?: unknown; nextPageToken?: unknown }
  const ids: string[] = []
  for (const m of Array.isArray(j.models) ? j.models as unknown[] : []) {
    const x = (m ?? {}) as { name?: unknown; supportedGenerationMethods?: unknown }
    if (typeof x.name !== 'string' || !Array.isArray(x.supportedGenerationMethods)) continue
    if (!x.supportedGenerationMethods.some((g) => typeof g === 'string' && CALLABLE_METHODS.has(g))) continue
    const id = x.name.startsWith('models/') ? x.name.slice('models/'.length) : x.name
    if (id !== '') ids.push(id)
  }
  return typeof j.nextPageToken === 'string' && j.nextPageToken !== '' ? { ids, cursor: j.nextPageToken } : { ids }
}
