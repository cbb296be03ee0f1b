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
 * A text delta (the bulk of every stream) encoded without a full JSON.stringify: the part before the text is the
 * same for every chunk of a stream and is built once. Only the exact shape {id, object, created, model,
 * choices: [{index: 0, delta: {content}, finish_reason: null}]} takes this path; anything else is stringified.
 */
function createTextDeltaEncoder(): (c: ChatChunk) => string | undefined {
  let id: string | undefined
  let created = -1
  let model: string | undefined
  let prefix = ''
  return (c) => {
    if (c.usage !== undefined || c.choices.length !== 1 || c.object !== 'chat.completion.chunk') return undefined
    const ch = c.choices[0]!
    const text = ch.delta.content
    if (typeof text !== 'string' || ch.index !== 0 || ch.finish_reason !== null) return undefined
    if (typeof c.id !== 'string' || typeof c.model !== 'string' || !Number.isFinite(c.created)) return undefined
    if (keyCount(c) !== 5 || keyCount(ch) !== 3 || keyCount(ch.delta) !== 1) return undefined
    if (c.id !== id || c.created !== created || c.model !== model) {
      id = c.id
      created = c.created
      model = c.model
      prefix = `data: {"id":${JSON.stringify(id)},"object":"chat.completion.chunk","created":${JSON.stringify(created)},"model":${JSON.stringify(model)},"choices":[{"index":0,"delta":{"content":`
    }
    return `${prefix}${JSON.stringify(text)}},"finish_reason":null}]}\n\n`
  }
}

export const openaiInbound: Inbound = {
  name: 'openai',
  errorBody: openaiErrorBody,
  encodeResponse: (res) => JSON.stringify(res),
  createStreamEncoder(_model: string, includeUsage: boolean): StreamEncoder {
    const text = createTextDeltaEncoder()
    return {
      chunk(c: ChatChunk): string {
        const fast = text(c)
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
