/**
 * Gemini `streamGenerateContent?alt=sse` → canonical chunks. Each SSE `data:` is a whole
 * GenerateContentResponse; there is no `[DONE]`, the stream is complete once a candidate carried a
 * `finishReason`.
 *
 * - text parts → content deltas (the first delta of a choice carries `role: 'assistant'`);
 * - `functionCall` parts arrive whole → one tool_call delta each, with id (`call_<responseId>_<n>`),
 *   name and the full arguments;
 * - `finishReason` → a finish chunk (empty delta) after the content of that event;
 * - `usageMetadata` (Gemini repeats it, cumulative, on every event) → one usage chunk with
 *   `choices: []` when the stream ends, from the last one seen;
 * - an `error` event raises it; malformed JSON or EOF before any `finishReason` →
 *   MCP_ERR_UPSTREAM_STREAM_INTERRUPTED.
 */
import { GatewayError } from '../../gateway/errors.ts'
import type { ChatChunk, ChatChunkChoice, ChunkToolCallDelta, Usage } from '../types.ts'
import type { SseEvent } from '../shared/sse.ts'
import type { StreamMapper } from '../shared/translation.ts'
import { googleErrorFromPayload } from './errors.ts'
import { blockedPromptError, finishReason, hasFunctionCall, partsText, toToolCall, toolCallId, toUsage, type GeminiGenerateResponse } from './response.ts'

interface ChoiceState { roleSent: boolean; tools: number }

function malformed(provider: string, reason: string): GatewayError {
  return new GatewayError('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', { provider, reason }, { details: 'upstream.malformed_event' })
}

export function createGoogleStreamMapper(provider: string, model: string, requestId: string): StreamMapper {
  const created = Math.floor(Date.now() / 1000)
  const choices = new Map<number, ChoiceState>()
  let rid = ''
  let id = ''
  let modelName = model
  let calls = 0
  let finished = false
  let usage: Usage | undefined

  const chunk = (list: ChatChunkChoice[]): ChatChunk => ({ id, object: 'chat.completion.chunk', created, model: modelName, choices: list })

  return {
    push(ev: SseEvent): ChatChunk[] | undefined {
      let r: GeminiGenerateResponse & { error?: unknown }
      try {
        r = JSON.parse(ev.data)
      } catch {
        throw malformed(provider, 'malformed event in the stream')
      }
      if (r === null || typeof r !== 'object' || Array.isArray(r)) throw malformed(provider, 'event is not a GenerateContentResponse')
      if (r.error !== undefined) {
        const code = (r.error as { code?: unknown } | null)?.code
        throw googleErrorFromPayload(provider, r.error, typeof code === 'number' && code >= 400 && code <= 599 ? code : 502, {})
      }
      if (id === '') {
        rid = typeof r.responseId === 'string' && r.responseId !== '' ? r.responseId : requestId
        id = `chatcmpl-${rid}`
        if (typeof r.modelVersion === 'string' && r.modelVersion !== '') modelName = r.modelVersion
      }
      if (r.usageMetadata) usage = toUsage(r.usageMetadata)
      const candidates = Array.isArray(r.candidates) ? r.candidates : []
      if (candidates.length === 0 && r.promptFeedback?.blockReason) throw blockedPromptError(provider, r.promptFeedback)

      const deltas: ChatChunkChoice[] = []
      const finishes: ChatChunkChoice[] = []
      candidates.forEach((c, pos) => {
        const index = c.index ?? pos
        let st = choices.get(index)
        if (!st) { st = { roleSent: false, tools: 0 }; choices.set(index, st) }
        const delta: ChatChunkChoice['delta'] = {}
        const text = partsText(c.content?.parts)
        if (text !== undefined) delta.content = text
        for (const p of c.content?.parts ?? []) {
          if (!hasFunctionCall(p)) continue
          const tc = toToolCall(p, toolCallId(rid, calls++))
          const d: ChunkToolCallDelta & Pick<typeof tc, 'extra_content'> = { index: st.tools++, id: tc.id, type: 'function', function: tc.function }
          if (tc.extra_content) d.extra_content = tc.extra_content
          ;(delta.tool_calls ??= []).push(d)
        }
        if (delta.content !== undefined || delta.tool_calls) {
          if (!st.roleSent) { st.roleSent = true; deltas.push({ index, delta: { role: 'assistant', ...delta }, finish_reason: null }) }
          else deltas.push({ index, delta, finish_reason: null })
        }
        if (c.finishReason) {
          finished = true
          const fd: ChatChunkChoice['delta'] = {}
          if (!st.roleSent) { st.roleSent = true; fd.role = 'assistant' }
          finishes.push({ index, delta: fd, finish_reason: finishReason(c.finishReason, st.tools > 0) })
        }
      })
      const out: ChatChunk[] = []
      if (deltas.length > 0) out.push(chunk(deltas))
      if (finishes.length > 0) out.push(chunk(finishes))
      return out.length > 0 ? out : undefined
    },
    end(): ChatChunk[] | undefined {
      if (!finished) {
        throw new GatewayError('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', { provider, reason: 'the stream ended before the completion finished' }, { details: 'upstream.stream_cut' })
      }
      if (!usage) return undefined
      const last = chunk([])
      last.usage = usage
      return [last]
    },
  }
}
