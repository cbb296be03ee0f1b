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

/**
 * A text delta (the bulk of every stream), and the finish chunk, encoded without a full JSON.stringify: the part
 * before the delta is the same for every chunk of a stream and is built once. Only the exact shapes {id, object,
 * created, model, choices: [{index: 0, delta: {content}, finish_reason: null}]} and the same with `delta: {}` and a
 * finish reason take this path; anything else is stringified.
 */
function createFastEncoder(): (c: ChatChunk) => string | undefined {
  let id: string | undefined
  let created = -1
  let model: string | undefined
  let prefix = ''
  return (c) => {
    if (c.usage !== undefined || c.choices.length !== 1 || c.object !== 'chat.completion.chunk') return undefined
    const ch = c.choices[0]!
    if (ch.index !== 0) return undefined
    const text = ch.delta.content
    const finish = ch.finish_reason
    const isText = typeof text === 'string' && finish === null
    if (!isText && (typeof finish !== 'string' || text !== undefined)) return undefined
    if (typeof c.id !== 'string' || typeof c.model !== 'string' || !Number.isFinite(c.created)) return undefined
    if (keyCount(c) !== 5 || keyCount(ch) !== 3 || keyCount(ch.delta) !== (isText ? 1 : 0)) return undefined
    if (c.id !== id || c.created !== created || c.model !== model) {
      id = c.id
      created = c.created
      model = c.model
      prefix = `data: {"id":${JSON.stringify(id)},"object":"chat.completion.chunk","created":${JSON.stringify(created)},"model":${JSON.stringify(model)},"choices":[{"index":0,"delta":`
    }
    return isText
      ? `${prefix}{"content":${JSON.stringify(text)}},"finish_reason":null}]}\n\n`
      : `${prefix}{},"finish_reason":${JSON.stringify(finish)}}]}\n\n`
  }
}

export const openaiInbound: Inbound = {
  name: 'openai',
  errorBody: openaiErrorBody,
  encodeResponse: (res) => JSON.stringify(res),
  createStreamEncoder(_model: string, includeUsage: boolean): StreamEncoder {
    const fastChunk = createFastEncoder()
    return {
      chunk(c: ChatChunk): string {
        const fast = fastChunk(c)
        if (fast !== undefined) return fast
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
