/**
 * Ollama NDJSON stream → canonical chunks. Each line is a partial chat response
 * (`message.content`, `message.tool_calls`); the last one has `done: true`, `done_reason` and the
 * token counts. An `{"error": ...}` line raises; EOF before `done: true` is an interrupted stream.
 * Tool calls arrive whole: each gets the next index, the id `call_<stem>_<n>` as in response.ts (unless Ollama sent one) and
 * its arguments JSON-encoded. After the finish chunk comes a usage chunk with `choices: []`.
 */
import { GatewayError } from '../../gateway/errors.ts'
import type { ChatChunk, ChatChunkChoice, ChunkToolCallDelta, Usage } from '../types.ts'
import type { SseEvent } from '../shared/sse.ts'
import type { StreamMapper } from '../shared/translation.ts'
import { upstreamError } from '../shared/upstream-error.ts'
import { createdOf, finishReason, toCanonicalToolCall, toolCallStem, usageOf, type OllamaChatResponse, type ResponseMeta } from './response.ts'

function malformed(provider: string, reason: string): GatewayError {
  return new GatewayError('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', { provider, reason }, { details: 'upstream.malformed_event' })
}

export function createOllamaStreamMapper(model: string, meta: ResponseMeta): StreamMapper {
  const provider = meta.provider
  let started = false
  let finished = false
  let tools = 0
  let created = meta.now
  let modelName = model
  const stem = toolCallStem(meta.id)

  const chunk = (choices: ChatChunkChoice[], usage?: Usage): ChatChunk => {
    const c: ChatChunk = { id: meta.id, object: 'chat.completion.chunk', created, model: modelName, choices }
    if (usage) c.usage = usage
    return c
  }

  return {
    push(ev: SseEvent): ChatChunk[] | undefined {
      if (finished) return undefined
      let line: OllamaChatResponse
      try {
        line = JSON.parse(ev.data)
      } catch {
        throw malformed(provider, 'malformed line in the stream')
      }
      if (line === null || typeof line !== 'object' || Array.isArray(line)) throw malformed(provider, 'malformed line in the stream')
      if (line.error !== undefined) {
        throw upstreamError(provider, 502, { message: typeof line.error === 'string' ? line.error : JSON.stringify(line.error) }, {})
      }
      if (!started) {
        created = createdOf(line.created_at, meta.now)
        if (typeof line.model === 'string') modelName = line.model
      }
      const out: ChatChunk[] = []
      const msg = line.message
      const delta: ChatChunkChoice['delta'] = {}
      if (!started) { delta.role = 'assistant'; started = true }
      if (msg && typeof msg.content === 'string' && msg.content !== '') delta.content = msg.content
      if (msg && Array.isArray(msg.tool_calls) && msg.tool_calls.length > 0) {
        delta.tool_calls = msg.tool_calls.map((tc): ChunkToolCallDelta => {
          const n = tools++
          const c = toCanonicalToolCall(tc, stem, n)
          return { index: n, id: c.id, type: 'function', function: { name: c.function.name, arguments: c.function.arguments } }
        })
      }
      if (delta.role !== undefined || delta.content !== undefined || delta.tool_calls !== undefined) {
        out.push(chunk([{ index: 0, delta, finish_reason: null }]))
      }
      if (line.done === true) {
        finished = true
        out.push(chunk([{ index: 0, delta: {}, finish_reason: finishReason(line.done_reason, tools > 0) }]))
        out.push(chunk([], usageOf(line)))
      }
      return out
    },
    ended: () => finished,
    end(): ChatChunk[] | undefined {
      if (!finished) {
        throw new GatewayError('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', { provider, reason: "the stream ended before the 'done' line" }, { details: 'upstream.stream_cut' })
      }
      return undefined
    },
  }
}
