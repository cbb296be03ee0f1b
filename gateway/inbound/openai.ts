/** The OpenAI dialect (canonical): errors `{error:{message,type,code,param,request_id}}`, SSE `data:` chunks and `[DONE]`. */
import type { GatewayError } from '../errors.ts'
import type { ChatChunk } from '../../providers/types.ts'
import type { Inbound, StreamEncoder } from './types.ts'

export function openaiErrorBody(e: GatewayError, requestId: string): { error: Record<string, unknown> } {
  return { error: { message: e.message, type: e.type, code: e.providerCode ?? e.code, param: e.param, request_id: requestId } }
}

function keyCount(o: object): number {
  let n = 0
  for (const _ in o) n++
  return n
}

/** Exactly `{role, content}` in that order (the opening chunk of a translated stream, as JSON.stringify writes it). */
function isRoleDelta(d: object): boolean {
  let i = 0
  for (const k in d) {
    if (i === 0 ? k !== 'role' : i === 1 ? k !== 'content' : true) return false
    i++
  }
  return i === 2
}

/**
 * Text deltas (the bulk of every stream), the opening role chunk and the finish chunk, encoded without a full
 * JSON.stringify: the part before the delta is the same for every chunk of a stream and is built once. Only the exact
 * shapes {id, object, created, model, choices: [{index: 0, delta, finish_reason}]} with `delta` {content} and a null
 * finish reason, {role: 'assistant', content: ''} and a null finish reason, or {} and a finish reason take this path;
 * anything else is stringified. Text-lane items reuse the same prefix.
 */
function createFastEncoder(): { chunk: (c: ChatChunk) => string | undefined; text: (text: string) => string | undefined } {
  let id: string | undefined
  let created = -1
  let model: string | undefined
  let prefix = ''
  /** The prefix of chunks with this id, created and model (kept for text-lane items that follow them). */
  const follow = (c: ChatChunk): boolean => {
    if (typeof c.id !== 'string' || typeof c.model !== 'string' || !Number.isFinite(c.created)) return false
    if (c.id !== id || c.created !== created || c.model !== model) {
      id = c.id
      created = c.created
      model = c.model
      prefix = `data: {"id":${JSON.stringify(id)},"object":"chat.completion.chunk","created":${JSON.stringify(created)},"model":${JSON.stringify(model)},"choices":[{"index":0,"delta":`
    }
    return true
  }
  // A text-lane item needs no escaping (see TextLane): the same text JSON.stringify would give.
  const laneText = (t: string): string | undefined => (prefix === '' ? undefined : `${prefix}{"content":"${t}"},"finish_reason":null}]}\n\n`)
  const chunk = (c: ChatChunk): string | undefined => {
    if (c.object !== 'chat.completion.chunk' || !follow(c)) { prefix = ''; id = undefined; return undefined }
    if (c.usage !== undefined || c.choices.length !== 1) return undefined
    const ch = c.choices[0]!
    if (ch.index !== 0 || keyCount(c) !== 5 || keyCount(ch) !== 3) return undefined
    const text = ch.delta.content
    const finish = ch.finish_reason
    if (finish === null && ch.delta.role === 'assistant' && text === '' && isRoleDelta(ch.delta)) {
      return `${prefix}{"role":"assistant","content":""},"finish_reason":null}]}\n\n`
    }
    const isText = typeof text === 'string' && finish === null
    if (!isText && (typeof finish !== 'string' || text !== undefined)) return undefined
    if (keyCount(ch.delta) !== (isText ? 1 : 0)) return undefined
    return isText
      ? `${prefix}{"content":${JSON.stringify(text)}},"finish_reason":null}]}\n\n`
      : `${prefix}{},"finish_reason":${JSON.stringify(finish)}}]}\n\n`
  }
  return { chunk, text: laneText }
}

export const openaiInbound: Inbound = {
  name: 'openai',
  errorBody: openaiErrorBody,
  encodeResponse: (res) => JSON.stringify(res),
  createStreamEncoder(_model: string, includeUsage: boolean): StreamEncoder {
    const fast = createFastEncoder()
    const fastChunk = fast.chunk
    return {
      text: fast.text,
      chunk(c: ChatChunk): string {
        const written = fastChunk(c)
        if (written !== undefined) return written
        // Usage-only chunks the client did not ask for (the gateway asks upstream for metering) are dropped.
        if (!includeUsage) {
          if (c.choices.length === 0) return ''
          if (c.usage != null) { const { usage: _u, ...rest } = c; return `data: ${JSON.stringify(rest)}\n\n` }
        }
        return `data: ${JSON.stringify(c)}\n\n`
      },
      end: () => 'data: [DONE]\n\n',
      error: (e) => `data: ${JSON.stringify(openaiErrorBody(e, ''))}\n\n`,
    }
  },
}
