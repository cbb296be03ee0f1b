/** A request context with what the budget plugin reads, for driving its hooks without a gateway (a streamed chat to p/gpt-4o). */
import type { RequestCtx } from '../../gateway/context.ts'

export function streamedChatCtx(): RequestCtx {
  return {
    chat: { model: 'p/gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream: true },
    alias: undefined, pipeline: { aliases: new Map() }, adapter: { type: 'openai' },
    slots: {}, stream: true, providerName: 'p', model: 'gpt-4o', requestedModel: 'p/gpt-4o', responseHeaders: {}, attempts: 1, firstChunk: 0,
  } as unknown as RequestCtx
}
