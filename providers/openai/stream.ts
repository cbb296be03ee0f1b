/**
 * OpenAI SSE → canonical chunks (identity, plus the checks that tell a complete stream from a cut
 * one): `data: [DONE]` or a finish reason ends it cleanly; an `error` payload or malformed JSON
 * raises; EOF before either is an interrupted stream.
 */
import { GatewayError } from '../../gateway/errors.ts'
import type { ChatChunk } from '../types.ts'
import type { SseEvent } from '../shared/sse.ts'
import type { StreamMapper } from '../shared/translation.ts'
import { openaiErrorFromPayload } from './errors.ts'

export function createOpenAIStreamMapper(provider: string): StreamMapper {
  let done = false
  let finished = false
  return {
    push(ev: SseEvent): ChatChunk[] | undefined {
      if (done) return undefined
      const data = ev.data
      if (data === '[DONE]') { done = true; return undefined }
      let chunk: ChatChunk & { error?: unknown }
      try {
        chunk = JSON.parse(data)
      } catch {
        throw new GatewayError('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', { provider, reason: 'malformed event in the stream' }, { details: 'upstream.malformed_event' })
      }
      if (chunk === null || typeof chunk !== 'object') {
        throw new GatewayError('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', { provider, reason: 'malformed event in the stream' }, { details: 'upstream.malformed_event' })
      }
      if (chunk.error !== undefined) throw openaiErrorFromPayload(provider, chunk.error, 502, {})
      if (!Array.isArray(chunk.choices)) {
        throw new GatewayError('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', { provider, reason: "event without 'choices'" }, { details: 'upstream.malformed_event' })
      }
      for (const c of chunk.choices) if (c.finish_reason) finished = true
      return [chunk]
    },
    end(): ChatChunk[] | undefined {
      if (!done && !finished) {
        throw new GatewayError('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', { provider, reason: 'the stream ended before the completion finished' }, { details: 'upstream.stream_cut' })
      }
      return undefined
    },
  }
}
