/**
 * Anthropic Messages SSE → canonical chunks. State lives in the closure.
 *
 *   message_start        → role chunk (id, model kept); input usage remembered
 *   content_block_start  → text: nothing (or its initial text); tool_use: first tool_call delta
 *                          (index, id, name, arguments ''); thinking: a `thinking_blocks` delta (its index
 *                          counts thinking blocks, thinking ''); redacted_thinking: the whole block as one
 *   content_block_delta  → text_delta: content; input_json_delta: arguments of that tool's index;
 *                          thinking_delta / signature_delta: `thinking_blocks` delta with that thinking text /
 *                          signature fragment; citations_delta: not carried
 *   content_block_stop   → nothing; for a tool_use block that had no argument text (a tool without
 *                          parameters), an arguments delta '{}' (what the non-streamed answer says)
 *   message_delta        → finish chunk (stop_reason mapped; a matched stop sequence kept as the choice's
 *                          `stop_sequence` extension), then a usage chunk with choices: []
 *                          (like OpenAI's include_usage); usage counters there are cumulative
 *   message_stop         → complete;  ping → ignored;  error → the mapped GatewayError
 *
 * EOF before message_stop, or an event that is not JSON, is MCP_ERR_UPSTREAM_STREAM_INTERRUPTED.
 * Unknown event and block types are ignored (Anthropic's versioning policy allows new ones).
 */
import { GatewayError } from '../../gateway/errors.ts'
import type { ChatChunk, ChatChunkChoice, ThinkingBlockDelta, Usage } from '../types.ts'
import type { SseEvent } from '../shared/sse.ts'
import type { StreamMapper } from '../shared/translation.ts'
import { anthropicStreamError } from './errors.ts'
import { nativeStopReason, toCanonicalUsage, toFinishReason, type AnthropicUsage } from './response.ts'

interface StreamEvent {
  type?: string
  index?: number
  message?: { id?: string; model?: string; usage?: AnthropicUsage }
  content_block?: { type?: string; id?: string; name?: string; text?: string; thinking?: string; signature?: string; data?: string }
  delta?: {
    type?: string; text?: string; partial_json?: string; thinking?: string; signature?: string
    stop_reason?: string | null; stop_sequence?: string | null
  }
  usage?: AnthropicUsage
  error?: unknown
}

/**
 * A text delta in Anthropic's own serialization: the index, and the text's string literal (escapes allowed).
 * One compiled regular expression reads it several times faster than comparing prefixes in JavaScript.
 */
const TEXT_DELTA = /^\{"type":"content_block_delta","index":(\d{1,9}),"delta":\{"type":"text_delta","text":("(?:[^"\\\x00-\x1f]|\\.)*")\}\}$/
/** Anthropic's documented ping is `{"type": "ping"}` (with the space); both spellings. */
const PINGS: ReadonlySet<string> = new Set(['{"type":"ping"}', '{"type": "ping"}'])
/** The longer ping: longer data is not looked up (a set lookup hashes the whole string). */
const PING_MAX = 16
const MESSAGE_STOP = '{"type":"message_stop"}'
const BLOCK_STOP = /^\{"type":"content_block_stop","index":[0-9]{1,9}\}$/
/** The start of a text block with no initial text (how every text block starts): nothing to map. */
const EMPTY_TEXT_START = /^\{"type":"content_block_start","index":[0-9]{1,9},"content_block":\{"type":"text","text":""\}\}$/

/** A JSON object value with at most one level of nested objects (Anthropic's usage), for the two patterns below. */
const USAGE_OBJECT = String.raw`(\{(?:[^{}"]|"[^"\\]*"|\{[^{}]*\})*\})`
/**
 * message_start and message_delta in Anthropic's own serialization (one of each per stream, the largest events
 * after the text): read without parsing the whole object; only the usage object is parsed. Any other shape or key
 * order takes the full JSON.parse, with the same result.
 */
const MESSAGE_START = new RegExp(String.raw`^\{"type":"message_start","message":\{"id":"([^"\\\x00-\x1f]*)","type":"message","role":"assistant",(?:"content":\[\],)?"model":"([^"\\\x00-\x1f]*)",(?:"content":\[\],)?"stop_reason":null,"stop_sequence":null,"usage":${USAGE_OBJECT}\}\}$`)
const MESSAGE_DELTA = new RegExp(String.raw`^\{"type":"message_delta","delta":\{"stop_reason":(?:"([a-z_]{1,40})"|null),"stop_sequence":("(?:[^"\\\x00-\x1f]|\\.)*"|null)\},"usage":${USAGE_OBJECT}\}$`)

/** The usage object text of a fast-path match, parsed; undefined when it is not an object (the full parse decides). */
function usageOf(text: string): AnthropicUsage | undefined {
  try {
    const u = JSON.parse(text) as unknown
    return u !== null && typeof u === 'object' && !Array.isArray(u) ? u as AnthropicUsage : undefined
  } catch {
    return undefined
  }
}

/**
 * A text delta event in Anthropic's own serialization (the bulk of every stream), read without parsing the
 * whole object: only the text's string literal is parsed. Any other shape or order (extra keys included)
 * returns undefined and takes the full JSON.parse.
 */
export function fastTextDelta(data: string): { index: number; text: string } | undefined {
  const text = fastText(data)
  return text === undefined ? undefined : { index: Number(TEXT_DELTA.exec(data)![1]), text }
}

/** Where the text literal starts in a TEXT_DELTA match: after the index digits, this much further (past its quote). */
const TEXT_AFTER_INDEX = ',"delta":{"type":"text_delta","text":"'.length
const TEXT_HEAD = '{"type":"content_block_delta","index":'.length

/**
 * The text of a text delta when its literal has no escapes (then its characters are the text, and they need no
 * escaping in JSON either); undefined for anything else, escapes included. The pattern is tested, not executed
 * (no match object): its shape gives where the literal is.
 */
export function laneTextOf(data: string): string | undefined {
  if (!TEXT_DELTA.test(data)) return undefined
  const from = data.indexOf(',', TEXT_HEAD) + TEXT_AFTER_INDEX
  const text = data.slice(from, data.length - 3)
  return text.includes('\\') ? undefined : text
}

/**
 * A whole text-delta SSE event as Anthropic sends it (event line, data line, blank line) with a text that has no
 * escapes: the parser's fast lane (SseFastEvent). The text is then s[indexOf(',', from + LANE_HEAD) + TEXT_AFTER_INDEX,
 * to - LANE_TAIL).
 */
const LANE_EVENT = /event: content_block_delta\ndata: \{"type":"content_block_delta","index":\d{1,4},"delta":\{"type":"text_delta","text":"[^"\\\x00-\x1f]*"\}\}\n\n/y
const LANE_HEAD = 'event: content_block_delta\ndata: {"type":"content_block_delta","index":'.length
const LANE_TAIL = '"}}\n\n'.length
export const ANTHROPIC_LANE_EVENT = {
  pattern: LANE_EVENT,
  template: 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}\n\n',
} as const

/** The text of a LANE_EVENT match s[from, to). */
export function laneEventTextOf(s: string, from: number, to: number): string {
  return s.slice(s.indexOf(',', from + LANE_HEAD) + TEXT_AFTER_INDEX, to - LANE_TAIL)
}

/** fastTextDelta's text alone (what the mapper needs: the block index does not matter for text). */
function fastText(data: string): string | undefined {
  const plain = laneTextOf(data)
  if (plain !== undefined) return plain
  // Not a text delta in this serialization, or its text has escapes: the literal through JSON.parse.
  const m = TEXT_DELTA.exec(data)
  if (m === null) return undefined
  let text: unknown
  try {
    text = JSON.parse(m[2]!)
  } catch {
    return undefined
  }
  return typeof text === 'string' ? text : undefined
}

/** The value of a JSON string literal matched above ('null' gives undefined); one without escapes is its characters. */
function stringLiteral(literal: string): string | undefined {
  if (literal === 'null') return undefined
  if (!literal.includes('\\')) return literal.slice(1, -1)
  try { return JSON.parse(literal) as string } catch { return undefined }
}

function interrupted(provider: string, reason: string, details: string): GatewayError {
  return new GatewayError('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', { provider, reason }, { details })
}

export function createAnthropicStreamMapper(provider: string, model: string, now: () => number = Date.now): StreamMapper {
  let id = ''
  let upstreamModel = model
  let created = 0
  let done = false
  const usage: AnthropicUsage = {}
  /** Content block index → canonical tool call index (tool_use blocks only). */
  const toolIndexOfBlock = new Map<number, number>()
  /** Content block indexes of tool_use blocks that have had no argument text yet. */
  const argless = new Set<number>()
  let tools = 0
  /** Content block index → canonical thinking block index (thinking blocks only). */
  const thinkingIndexOfBlock = new Map<number, number>()
  let thinkingBlocks = 0

  const chunk = (choices: ChatChunkChoice[], u?: Usage): ChatChunk => {
    const c: ChatChunk = { id, object: 'chat.completion.chunk', created, model: upstreamModel, choices }
    if (u) c.usage = u
    return c
  }
  const delta = (d: ChatChunkChoice['delta']): ChatChunk => chunk([{ index: 0, delta: d, finish_reason: null }])

  const mergeUsage = (u: AnthropicUsage | undefined): void => {
    if (!u) return
    // Counters in message_delta are cumulative totals, present only when they apply: overwrite, never add.
    for (const k of ['input_tokens', 'output_tokens', 'cache_read_input_tokens', 'cache_creation_input_tokens', 'cache_creation', 'output_tokens_details'] as const) {
      if (u[k] != null) (usage as Record<string, unknown>)[k] = u[k]
    }
  }

  const messageStart = (messageId: string, model: unknown, u: AnthropicUsage | undefined): ChatChunk[] => {
    id = messageId
    if (typeof model === 'string' && model !== '') upstreamModel = model
    created = Math.floor(now() / 1000)
    mergeUsage(u)
    return [delta({ role: 'assistant', content: '' })]
  }
  const messageDelta = (stopReason: string | null | undefined, u: AnthropicUsage | undefined, stopSequence: unknown): ChatChunk[] => {
    mergeUsage(u)
    const out: ChatChunk[] = []
    const finish = toFinishReason(stopReason)
    if (finish) {
      const c: ChatChunkChoice = { index: 0, delta: {}, finish_reason: finish }
      if (stopReason === 'stop_sequence' && typeof stopSequence === 'string') c.stop_sequence = stopSequence
      const native = nativeStopReason(stopReason)
      if (native !== undefined) c.anthropic_stop_reason = native
      out.push(chunk([c]))
    }
    if (u) out.push(chunk([], toCanonicalUsage(usage)))
    return out
  }

  return {
    laneText(ev: SseEvent): string | undefined {
      return done ? undefined : laneTextOf(ev.data)
    },
    textChunk(text: string): ChatChunk {
      return delta({ content: text })
    },
    laneEvent: ANTHROPIC_LANE_EVENT,
    laneEventText(s: string, from: number, to: number): string | undefined {
      return done ? undefined : laneEventTextOf(s, from, to)
    },
    push(ev: SseEvent): ChatChunk[] | undefined {
      if (done) return undefined
      const data = ev.data
      // The exact serializations below each mean what the full parse would make of them, whatever the event's name;
      // the name only says which one to try (one pattern per event instead of all of them in turn).
      // An event without a name ('message') tries every shape.
      const name = ev.event
      const any = name === 'message'
      if (any || name === 'content_block_delta') {
        const fast = fastText(data)
        if (fast !== undefined) return fast !== '' ? [delta({ content: fast })] : undefined
      }
      // Events that carry nothing to map, in their exact serialization, need no parse either.
      if ((any || name === 'ping') && data.length <= PING_MAX && PINGS.has(data)) return undefined
      if ((any || name === 'content_block_stop') && argless.size === 0 && BLOCK_STOP.test(data)) return undefined
      if ((any || name === 'content_block_start') && EMPTY_TEXT_START.test(data)) return undefined
      if ((any || name === 'message_stop') && data === MESSAGE_STOP) { done = true; return undefined }
      if (any || name === 'message_start') {
        const start = MESSAGE_START.exec(data)
        if (start !== null) { const u = usageOf(start[3]!); if (u) return messageStart(start[1]!, start[2]!, u) }
      }
      if (any || name === 'message_delta') {
        const md = MESSAGE_DELTA.exec(data)
        if (md !== null) { const u = usageOf(md[3]!); if (u) return messageDelta(md[1] ?? null, u, md[1] === 'stop_sequence' ? stringLiteral(md[2]!) : undefined) }
      }
      let e: StreamEvent
      try {
        e = JSON.parse(ev.data) as StreamEvent
      } catch {
        throw interrupted(provider, 'malformed event in the stream', 'upstream.malformed_event')
      }
      if (e === null || typeof e !== 'object') throw interrupted(provider, 'malformed event in the stream', 'upstream.malformed_event')
      switch (e.type ?? ev.event) {
        case 'message_start': {
          const m = e.message ?? {}
          return messageStart(String(m.id ?? ''), m.model, m.usage)
        }
        case 'content_block_start': {
          const b = e.content_block ?? {}
          const index = e.index ?? 0
          if (b.type === 'tool_use') {
            const t = tools++
            toolIndexOfBlock.set(index, t)
            argless.add(index)
            return [delta({ tool_calls: [{ index: t, id: String(b.id ?? ''), type: 'function', function: { name: String(b.name ?? ''), arguments: '' } }] })]
          }
          if (b.type === 'text' && typeof b.text === 'string' && b.text !== '') return [delta({ content: b.text })]
          if (b.type === 'thinking') {
            const t = thinkingBlocks++
            thinkingIndexOfBlock.set(index, t)
            const th: ThinkingBlockDelta = { index: t, type: 'thinking', thinking: typeof b.thinking === 'string' ? b.thinking : '' }
            if (typeof b.signature === 'string' && b.signature !== '') th.signature = b.signature
            return [delta({ thinking_blocks: [th] })]
          }
          if (b.type === 'redacted_thinking') return [delta({ thinking_blocks: [{ index: thinkingBlocks++, type: 'redacted_thinking', data: String(b.data ?? '') }] })]
          return undefined
        }
        case 'content_block_delta': {
          const d = e.delta ?? {}
          if (d.type === 'text_delta') return typeof d.text === 'string' && d.text !== '' ? [delta({ content: d.text })] : undefined
          if (d.type === 'input_json_delta') {
            const t = toolIndexOfBlock.get(e.index ?? -1)
            if (t === undefined || typeof d.partial_json !== 'string' || d.partial_json === '') return undefined
            argless.delete(e.index ?? -1)
            return [delta({ tool_calls: [{ index: t, function: { arguments: d.partial_json } }] })]
          }
          if (d.type === 'thinking_delta' || d.type === 'signature_delta') {
            const t = thinkingIndexOfBlock.get(e.index ?? -1)
            const part = d.type === 'thinking_delta' ? d.thinking : d.signature
            if (t === undefined || typeof part !== 'string' || part === '') return undefined
            return [delta({ thinking_blocks: [d.type === 'thinking_delta' ? { index: t, type: 'thinking', thinking: part } : { index: t, type: 'thinking', signature: part }] })]
          }
          return undefined // citations_delta
        }
        case 'content_block_stop': {
          const index = e.index ?? -1
          const t = toolIndexOfBlock.get(index)
          if (t === undefined || !argless.delete(index)) return undefined
          return [delta({ tool_calls: [{ index: t, function: { arguments: '{}' } }] })]
        }
        case 'message_delta':
          return messageDelta(e.delta?.stop_reason, e.usage, e.delta?.stop_sequence)
        case 'message_stop':
          done = true
          return undefined
        case 'error':
          throw anthropicStreamError(provider, e.error)
        default:
          return undefined // ping, and event types added later
      }
    },
    ended: () => done,
    end(): ChatChunk[] | undefined {
      if (!done) throw interrupted(provider, 'the stream ended before message_stop', 'upstream.stream_cut')
      return undefined
    },
  }
}
