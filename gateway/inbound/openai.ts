/** The OpenAI dialect (canonical): errors `{error:{message,type,code,param,request_id}}`, SSE `data:` chunks and `[DONE]`. */
import type { GatewayError } from '../errors.ts'
import type { ChatChunk, ChatResponse } from '../../providers/types.ts'
import type { RequestCtx } from '../context.ts'
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

/**
 * A client of OpenAI's deprecated function calling (it sent `functions`) gets its answer in that form, as OpenAI would
 * answer it: the first tool call as the message's `function_call` ({name, arguments}, no id), `finish_reason`
 * 'function_call'. The translations rewrote its request into tools (providers/shared/legacy-functions.ts); an
 * OpenAI-style provider got it as it was and answers in the legacy form itself, which passes unchanged.
 */
function legacyClient(ctx: RequestCtx | undefined): boolean {
  const functions = ctx?.chat?.['functions']
  return functions !== undefined && functions !== null
}

type Json = Record<string, unknown>

function legacyResponse(res: ChatResponse): ChatResponse {
  if (!res.choices.some((c) => c.finish_reason === 'tool_calls' || (c.message.tool_calls?.length ?? 0) > 0)) return res
  return {
    ...res,
    choices: res.choices.map((c) => {
      const calls = c.message.tool_calls
      if (!calls || calls.length === 0) return c.finish_reason === 'tool_calls' ? { ...c, finish_reason: 'function_call' } : c
      const { tool_calls: _calls, ...message } = c.message
      const first = calls[0]!
      return { ...c, message: { ...message, function_call: { name: first.function.name, arguments: first.function.arguments } } as typeof c.message, finish_reason: c.finish_reason === 'tool_calls' ? 'function_call' : c.finish_reason }
    }),
  }
}

/** A stream chunk in the legacy form: the deltas of the first tool call as `function_call` deltas; the others' left out. */
function legacyChunk(c: ChatChunk): ChatChunk {
  let changed = false
  const choices = c.choices.map((ch) => {
    const calls = ch.delta.tool_calls
    if (calls === undefined && ch.finish_reason !== 'tool_calls') return ch
    changed = true
    const { tool_calls: _calls, ...delta } = ch.delta
    const first = calls?.find((t) => t.index === 0)
    if (first?.function !== undefined) {
      const fc: Json = {}
      if (first.function.name !== undefined) fc['name'] = first.function.name
      if (first.function.arguments !== undefined) fc['arguments'] = first.function.arguments
      ;(delta as Json)['function_call'] = fc
    }
    return { ...ch, delta, finish_reason: ch.finish_reason === 'tool_calls' ? 'function_call' as const : ch.finish_reason }
  })
  return changed ? { ...c, choices } : c
}

export const openaiInbound: Inbound = {
  name: 'openai',
  errorBody: openaiErrorBody,
  encodeResponse: (res, _model, ctx) => JSON.stringify(legacyClient(ctx) && 'choices' in res ? legacyResponse(res) : res),
  createStreamEncoder(_model: string, includeUsage: boolean, ctx?: RequestCtx): StreamEncoder {
    const fast = createFastEncoder()
    const fastChunk = fast.chunk
    const legacy = legacyClient(ctx)
    return {
      text: fast.text,
      chunk(chunk: ChatChunk): string {
        const c = legacy ? legacyChunk(chunk) : chunk
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
      error: (e) => `data: ${JSON.stringify(openaiErrorBody(e, ctx?.id ?? ''))}\n\n`,
    }
  },
}
