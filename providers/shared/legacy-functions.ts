/**
 * OpenAI's deprecated function calling, for the translations that only know tools (anthropic, google, ollama): the
 * request is rewritten into its tool form before it is translated, and the answer back into the legacy form by the
 * OpenAI dialect (gateway/inbound/openai.ts, `legacyResponse` and `legacyChunk`), so a client of the old API gets what OpenAI would send it.
 *
 *   functions: [f, ...]                   → tools: [{type: 'function', function: f}, ...]
 *   function_call: 'none' | 'auto'        → tool_choice: the same
 *   function_call: {name}                 → tool_choice: {type: 'function', function: {name}}
 *   assistant {function_call: {name, arguments}}
 *                                         → assistant {tool_calls: [{id, type: 'function', function: {name, arguments}}]}
 *   {role: 'function', name, content}     → {role: 'tool', tool_call_id: the id given to the earliest call of that
 *                                            name that has no result yet, content}
 *
 * The ids given to the history's calls are `call_fn_<message index>`: the same for every attempt of the request, and
 * never seen by the client (the legacy form has no ids). A legacy answer holds one call, so a rewritten request also
 * asks for one call at a time (`parallel_tool_calls: false`) where the provider can be asked (anthropic); where it
 * cannot, the first call of an answer is the one the client gets. A forced `function_call: {name}` to a provider
 * that cannot force a function (ollama) is unsupported like a `tool_choice` naming one. The two forms mixed in one
 * request (`functions` and `tools`, or `function_call` and `tool_choice`) are a 400 naming the legacy field, and so
 * is a function result without a call of its name before it (every one of these providers keys a result to its call).
 * The definitions themselves (a non-empty string `name`, a string `description`, an object `parameters`) and
 * `function_call`'s form are checked at the edge by the chat schema (gateway/http/schemas.ts), as tools are, before
 * this rewrite or the OpenAI pass-through sees them.
 */
import { GatewayError } from '../../gateway/errors.ts'
import type { ChatMessage, ChatRequest, ToolCall } from '../types.ts'

function invalid(field: string, reason: string): GatewayError {
  return new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason: `${field}: ${reason}` }, { param: field, details: 'request.body_invalid' })
}

const given = (v: unknown): boolean => v !== undefined && v !== null

/** Whether the request uses the legacy form anywhere (its top level, or a message of its history). */
export function usesLegacyFunctions(req: ChatRequest): boolean {
  if (given(req['functions']) || given(req['function_call'])) return true
  const messages: unknown = req.messages
  if (!Array.isArray(messages)) return false
  for (const m of messages as Record<string, unknown>[]) {
    if (m === null || typeof m !== 'object') continue
    if (m['role'] === 'function' || (m['role'] === 'assistant' && given(m['function_call']))) return true
  }
  return false
}

export interface LegacyOptions {
  /** The provider takes `parallel_tool_calls: false` (anthropic: `disable_parallel_tool_use`). */
  oneCallAtATime: boolean
  /** The provider takes a `tool_choice` naming a function (ollama does not). */
  namedChoice: boolean
  /** The provider's answer to a parameter it cannot honour: a 400 naming it, or nothing (`dropUnsupportedParams`). */
  unsupported(param: string): void
}

/** The request in the tool form; the same object when it has nothing legacy. */
export function fromLegacyFunctions(req: ChatRequest, o: LegacyOptions): ChatRequest {
  if (!usesLegacyFunctions(req)) return req
  const out: ChatRequest = { ...req }
  delete out['functions']
  delete out['function_call']

  const functions = req['functions']
  if (given(functions)) {
    if (given(req.tools)) throw invalid('functions', 'give either tools or the deprecated functions, not both')
    if (!Array.isArray(functions)) throw invalid('functions', 'must be an array of function definitions')
    out.tools = functions.map((f: unknown, i) => {
      if (f === null || typeof f !== 'object' || Array.isArray(f)) throw invalid(`functions[${i}]`, 'must be a function definition (an object with a name)')
      return { type: 'function', function: f } as NonNullable<ChatRequest['tools']>[number]
    })
    // A legacy answer carries one call.
    if (o.oneCallAtATime && out.parallel_tool_calls === undefined) out.parallel_tool_calls = false
  }

  const call = req['function_call']
  if (given(call)) {
    if (given(req.tool_choice)) throw invalid('function_call', 'give either tool_choice or the deprecated function_call, not both')
    if (call === 'none' || call === 'auto') out.tool_choice = call
    else if (call !== null && typeof call === 'object' && typeof (call as { name?: unknown }).name === 'string') {
      if (o.namedChoice) out.tool_choice = { type: 'function', function: { name: (call as { name: string }).name } }
      else o.unsupported('function_call')
    } else throw invalid('function_call', "must be 'none', 'auto' or {\"name\": \"...\"}")
  }

  /**
   * Calls of the history: name → their ids, oldest first, and how many results have answered (`next`: a read index,
   * not Array#shift, which moves every id left: quadratic over a long history, 14 s for 70,000 calls).
   */
  const open = new Map<string, { ids: string[]; next: number }>()
  out.messages = req.messages.map((m, i): ChatMessage => {
    const msg = m as Record<string, unknown>
    if (msg['role'] === 'assistant' && given(msg['function_call'])) {
      const fc = msg['function_call'] as { name?: unknown; arguments?: unknown }
      const where = `messages[${i}].function_call`
      if (given(msg['tool_calls'])) throw invalid(where, 'give either tool_calls or the deprecated function_call, not both')
      if (fc === null || typeof fc !== 'object' || typeof fc.name !== 'string' || fc.name === '') throw invalid(`${where}.name`, 'must be the name of the function called')
      const args = fc.arguments ?? '{}'
      if (typeof args !== 'string') throw invalid(`${where}.arguments`, 'must be a string (the arguments as JSON)')
      const id = `call_fn_${i}`
      const calls = open.get(fc.name)
      if (calls) calls.ids.push(id)
      else open.set(fc.name, { ids: [id], next: 0 })
      const { function_call: _legacy, ...rest } = msg
      const toolCall: ToolCall = { id, type: 'function', function: { name: fc.name, arguments: args } }
      return { ...rest, role: 'assistant', tool_calls: [toolCall] } as ChatMessage
    }
    if (msg['role'] === 'function') {
      const name = msg['name']
      if (typeof name !== 'string' || name === '') throw invalid(`messages[${i}].name`, 'a function message must name the function whose result it is')
      const calls = open.get(name)
      const id = calls !== undefined && calls.next < calls.ids.length ? calls.ids[calls.next++] : undefined
      if (id === undefined) throw invalid(`messages[${i}].name`, `no earlier assistant function_call of '${name}' that this result answers`)
      const { name: _name, ...rest } = msg
      return { ...rest, role: 'tool', tool_call_id: id } as ChatMessage
    }
    return m
  })
  return out
}
