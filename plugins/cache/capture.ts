/**
 * Reading an upstream answer for the cache without changing how it is delivered, and replaying a
 * cached answer. Only complete answers are captured: JSON with every choice finished, a translated
 * stream whose `final` resolved, or pass-through bytes that ended (a stream: with a finish reason).
 * Errors never reach here (they reject the upstream call before any answer exists).
 */
import type { RawUpstream, UpstreamResponse } from '../../gateway/pipeline/types.ts'
import { ChunkAggregator } from '../../providers/shared/aggregate.ts'
import { createSseParser } from '../../providers/shared/sse.ts'
import { fromAnthropicMessage } from '../../providers/anthropic/response.ts'
import { createAnthropicStreamMapper } from '../../providers/anthropic/stream.ts'
import type { ChatChunk, ChatResponse, ChatStream } from '../../providers/types.ts'

/** A response worth caching: a chat completion whose every choice finished. */
export function complete(r: unknown): r is ChatResponse {
  if (r === null || typeof r !== 'object') return false
  const o = r as { object?: unknown; choices?: unknown }
  if (o.object !== 'chat.completion' || !Array.isArray(o.choices) || o.choices.length === 0) return false
  return (o.choices as { finish_reason?: unknown; message?: unknown }[]).every((c) => typeof c.finish_reason === 'string' && c.message !== undefined)
}

/** Wraps a pass-through answer so its bytes are also seen by `onData`/`onEnd` (delivery unchanged). */
function tapRaw(raw: RawUpstream, onData: (b: Buffer) => void, onEnd: () => void): RawUpstream {
  return {
    status: raw.status,
    headers: raw.headers,
    consume(sink) {
      raw.consume({
        onData(c) { onData(c); return sink.onData(c) },
        onEnd() { onEnd(); sink.onEnd() },
        onError(e) { sink.onError(e) },
      })
    },
    resume: () => raw.resume(),
    abort: (r) => raw.abort(r),
  }
}

/**
 * Calls `store` with the answer once it is complete; returns the upstream response to deliver (maybe wrapped).
 * `anthropic`: pass-through bytes are Anthropic's own Message or Messages stream (a `/v1/messages` request sent as it
 * came, gateway/upstream/native-messages.ts), stored in the canonical form as the anthropic adapter reads it.
 */
export function capture(up: UpstreamResponse, stream: boolean, maxBytes: number, store: (r: ChatResponse) => void, anthropic = false): UpstreamResponse {
  switch (up.kind) {
    case 'json':
      if (complete(up.response)) store(up.response)
      return up
    case 'stream':
      up.stream.final.then((r) => { if (complete(r)) store(r) }, () => { /* failed or cut: nothing to cache */ })
      return up
    case 'raw': {
      if (up.raw.status < 200 || up.raw.status >= 300) return up
      let bytes = 0
      let over = false
      if (!stream) {
        const parts: Buffer[] = []
        return {
          kind: 'raw',
          raw: tapRaw(up.raw, (b) => {
            if (over) return
            bytes += b.length
            if (bytes > maxBytes) { over = true; parts.length = 0; return }
            parts.push(b)
          }, () => {
            if (over) return
            try {
              const json = JSON.parse(Buffer.concat(parts).toString('utf8')) as unknown
              const r = anthropic ? fromAnthropicMessage(json, 'cache') : json
              if (complete(r)) store(r)
            } catch { /* not JSON, or not a Message: not cached */ }
          }),
        }
      }
      const agg = new ChunkAggregator()
      let done = false
      let bad = false
      const mapper = anthropic ? createAnthropicStreamMapper('cache', '') : undefined
      const parser = createSseParser((ev) => {
        if (bad) return
        if (mapper) {
          // Anthropic's events through the adapter's own mapper (an error event throws: not cached).
          try { for (const c of mapper.push(ev) ?? []) agg.add(c) } catch { bad = true }
          if (ev.event === 'message_stop') done = true
          return
        }
        if (ev.data === '[DONE]') { done = true; return }
        try { agg.add(JSON.parse(ev.data) as ChatChunk) } catch { bad = true }
      })
      return {
        kind: 'raw',
        raw: tapRaw(up.raw, (b) => {
          if (over || bad) return
          bytes += b.length
          if (bytes > maxBytes) { over = true; return }
          try { parser.feed(b) } catch { bad = true } // an event past the parser's bound: not cached
        }, () => {
          if (over || bad) return
          parser.end()
          const r = agg.toResponse()
          if ((done || agg.finishReason !== null) && complete(r)) store(r)
        }),
      }
    }
  }
}

/** A cached answer as a canonical chunk stream: role, thinking blocks, content, tool calls, finish, then usage. */
export function replayStream(r: ChatResponse): ChatStream {
  const base = { id: r.id, object: 'chat.completion.chunk' as const, created: r.created, model: r.model, ...(r.system_fingerprint !== undefined ? { system_fingerprint: r.system_fingerprint } : {}) }
  const chunks: ChatChunk[] = []
  for (const c of r.choices) {
    const m = c.message
    chunks.push({ ...base, choices: [{ index: c.index, delta: { role: 'assistant', content: '' }, finish_reason: null }] })
    if (m.thinking_blocks && m.thinking_blocks.length > 0) {
      chunks.push({ ...base, choices: [{ index: c.index, delta: { thinking_blocks: m.thinking_blocks.map((b, i) => ({ ...b, index: i })) }, finish_reason: null }] })
    }
    if (typeof m.content === 'string' && m.content !== '') chunks.push({ ...base, choices: [{ index: c.index, delta: { content: m.content }, finish_reason: null }] })
    if (typeof m.refusal === 'string' && m.refusal !== '') chunks.push({ ...base, choices: [{ index: c.index, delta: { refusal: m.refusal }, finish_reason: null }] })
    if (m.tool_calls && m.tool_calls.length > 0) {
      chunks.push({ ...base, choices: [{ index: c.index, delta: { tool_calls: m.tool_calls.map((t, i) => ({ index: i, id: t.id, type: 'function' as const, function: { name: t.function.name, arguments: t.function.arguments } })) }, finish_reason: null }] })
    }
    chunks.push({ ...base, choices: [{ index: c.index, delta: {}, finish_reason: c.finish_reason }] })
  }
  if (r.usage) chunks.push({ ...base, choices: [], usage: r.usage })
  return {
    status: 200,
    final: Promise.resolve(r),
    async *[Symbol.asyncIterator](): AsyncIterator<ChatChunk> {
      for (const c of chunks) yield c
    },
  }
}
