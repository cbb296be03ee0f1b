/** The OpenAI dialect (canonical): errors `{error:{message,type,code,param,request_id}}`, SSE `data:` chunks and `[DONE]`. */
import type { GatewayError } from '../errors.ts'
import type { ChatChunk } from '../../providers/types.ts'
import type { Inbound, StreamEncoder } from './types.ts'

export function openaiErrorBody(e: GatewayError, requestId: string): { error: Record<string, unknown> } {
  return { error: { message: e.message, type: e.type, code: e.providerCode ?? e.code, param: e.param, request_id: requestId } }
}

export const openaiInbound: Inbound = {
  name: 'openai',
  errorBody: openaiErrorBody,
  encodeResponse: (res) => JSON.stringify(res),
  createStreamEncoder(_model: string, includeUsage: boolean): StreamEncoder {
    return {
      chunk(c: ChatChunk): string {
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
