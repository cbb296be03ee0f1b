/**
 * OpenAI SSE → canonical chunks (identity, plus the checks that tell a complete stream from a cut
 * one): `data: [DONE]` or a finish reason ends it cleanly; an `error` payload or malformed JSON
 * raises; EOF before either is an interrupted stream. When the request asked for usage
 * (`include_usage`), OpenAI sends the usage chunk after the finish and before [DONE]: EOF after the
 * finish without it (and without [DONE]) is an interrupted stream too. Tool-call deltas without `index` (some
 * openai-compatible servers) are numbered: a new `id` starts the next call, a delta without one
 * continues the last. Finish reasons other servers spell differently (`eos_token`) become OpenAI's; a chunk
 * without `id` or `created` gets the stream's (or `chatcmpl-<request id>` and the current time).
 */
import { randomUUID } from 'node:crypto'
import { GatewayError } from '../../gateway/errors.ts'
import type { ChatChunk } from '../types.ts'
import type { SseEvent } from '../shared/sse.ts'
import type { StreamMapper } from '../shared/translation.ts'
import { openaiErrorFromPayload } from './errors.ts'
import { canonicalFinish, stopSequenceOf } from './response.ts'

type ToolCallDelta = NonNullable<ChatChunk['choices'][number]['delta']['tool_calls']>[number]

/** Per choice: the tool calls numbered so far, and the index each id got (a Map: a stream may bring thousands). */
interface NumberedCalls {
  count: number
  index: Map<unknown, number>
}

/** A new id starts the next call; a delta without one (or with an id seen before) continues that call. */
function numberToolCalls(seen: Map<number, NumberedCalls>, choice: number, calls: ToolCallDelta[]): void {
  let n = seen.get(choice)
  if (!n) { n = { count: 0, index: new Map() }; seen.set(choice, n) }
  for (const t of calls) {
    if (t === null || typeof t !== 'object' || typeof t.index === 'number') continue
    let i = t.id ? n.index.get(t.id) ?? -1 : n.count - 1
    if (i === -1) {
      i = n.count++
      if (t.id) n.index.set(t.id, i)
    }
    t.index = i
  }
}

export function createOpenAIStreamMapper(provider: string, requestId?: string, usageAsked = false): StreamMapper {
  let done = false
  let finished = false
  /** A usage object came (only looked for when it was asked for). */
  let usage = !usageAsked
  /** The stream's id and created as the upstream first sent them, for chunks without (llama.cpp, TGI, Azure's annotations). */
  let id: string | undefined
  let created: number | undefined
  let fallbackId: string | undefined
  let toolIds: Map<number, NumberedCalls> | undefined
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
      if (chunk.error !== undefined) {
        // vLLM and llama.cpp put the HTTP status in `code`; OpenAI's own in-stream errors have none (502).
        const code = (chunk.error as { code?: unknown } | null)?.code
        throw openaiErrorFromPayload(provider, chunk.error, typeof code === 'number' && code >= 400 && code <= 599 ? code : 502, {})
      }
      if (!Array.isArray(chunk.choices)) {
        throw new GatewayError('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', { provider, reason: "event without 'choices'" }, { details: 'upstream.malformed_event' })
      }
      if (!usage && chunk.usage) usage = true
      if (typeof chunk.id === 'string' && chunk.id !== '') id ??= chunk.id
      else chunk.id = id ?? (fallbackId ??= `chatcmpl-${requestId ?? randomUUID()}`)
      if (typeof chunk.created === 'number' && chunk.created > 0) created ??= chunk.created
      else chunk.created = created ?? Math.floor(Date.now() / 1000)
      for (const c of chunk.choices) {
        if (c.finish_reason) { finished = true; c.finish_reason = canonicalFinish(c.finish_reason); stopSequenceOf(c) }
        // A choice without delta (Azure's asynchronous-filter messages, some servers' last chunk) has an empty one.
        if (c.delta === undefined || c.delta === null) c.delta = {}
        const calls = c.delta.tool_calls
        if (calls !== undefined && Array.isArray(calls) && calls.some((t) => typeof t?.index !== 'number')) numberToolCalls(toolIds ??= new Map(), c.index, calls)
      }
      return [chunk]
    },
    ended: () => done,
    end(): ChatChunk[] | undefined {
      if (!done && !finished) {
        throw new GatewayError('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', { provider, reason: 'the stream ended before the completion finished' }, { details: 'upstream.stream_cut' })
      }
      if (!done && !usage) {
        throw new GatewayError('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', { provider, reason: 'the stream ended after the finish without the usage chunk or [DONE]' }, { details: 'upstream.stream_cut' })
      }
      return undefined
    },
  }
}
