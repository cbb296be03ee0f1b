/**
 * The function names each provider takes, as it documents them. A tool definition, or a `tool_choice` naming a function,
 * with a name the provider would refuse is the gateway's 400 naming the client's field and the provider, before the
 * call, whatever `dropUnsupportedParams` says (without the tool the model could not do what the client asked). Names are
 * never rewritten: the model's calls would come back under a name the client does not know.
 */
import { GatewayError } from '../../gateway/errors.ts'
import type { ChatRequest } from '../types.ts'

export interface ToolNameRule {
  readonly pattern: RegExp
  /** The rule in words, for the 400. */
  readonly says: string
}

/** OpenAI (and Azure OpenAI): a-z, A-Z, 0-9, underscores and dashes, at most 64. Anthropic's `^[a-zA-Z0-9_-]{1,64}$` is the same. */
export const OPENAI_TOOL_NAMES: ToolNameRule = {
  pattern: /^[a-zA-Z0-9_-]{1,64}$/,
  says: 'of letters (a-z, A-Z), digits, underscores and dashes, at most 64 characters',
}

export const ANTHROPIC_TOOL_NAMES: ToolNameRule = OPENAI_TOOL_NAMES

/** Gemini's `FunctionDeclaration.name`: a letter or an underscore first; letters, digits, underscores, dots, colons and dashes; at most 64. */
export const GEMINI_TOOL_NAMES: ToolNameRule = {
  pattern: /^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$/,
  says: 'that start with a letter or an underscore, of letters (a-z, A-Z), digits, underscores, dots, colons and dashes, at most 64 characters',
}

function check(name: string, field: string, rule: ToolNameRule, provider: string): void {
  if (rule.pattern.test(name)) return
  throw new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason: `${field}: provider ${provider} takes function names ${rule.says}, got ${JSON.stringify(name)}` }, { param: field, details: 'request.body_invalid' })
}

/** Throws the 400 for the first function name of `tools` or `tool_choice` the provider refuses. */
export function checkToolNames(req: ChatRequest, rule: ToolNameRule, provider: string): void {
  const tools: unknown = req.tools
  if (Array.isArray(tools)) {
    tools.forEach((t: { function?: { name?: unknown } } | null, i) => {
      const name = t?.function?.name
      if (typeof name === 'string') check(name, `tools[${i}].function.name`, rule, provider)
    })
  }
  const tc = req.tool_choice as { type?: unknown; function?: { name?: unknown } } | string | null | undefined
  if (tc !== null && typeof tc === 'object' && tc.type === 'function' && typeof tc.function?.name === 'string') {
    check(tc.function.name, 'tool_choice.function.name', rule, provider)
  }
}

/**
 * The tool set the anthropic, google and ollama translations send, checked as those providers check it: each function
 * name once (Anthropic: "Tool names must be unique"; Gemini: "Duplicate function declaration found"), a 400 naming the
 * later `tools[i].function.name`; and, with `choice`, a `tool_choice` naming a function the request's tools define (a
 * 400 naming `tool_choice.function.name`: Anthropic's `{type: 'tool', name}` and Gemini's `allowedFunctionNames` name a
 * tool of the request). Whatever `dropUnsupportedParams` says: nothing can be dropped without changing what was asked.
 * OpenAI's own API, reached as the client sent it, answers for itself.
 */
export function checkToolSet(req: ChatRequest, provider: string, choice = true): void {
  const tools: unknown = req.tools
  const names = new Map<string, number>()
  if (Array.isArray(tools)) {
    tools.forEach((t: { type?: unknown; function?: { name?: unknown } } | null, i) => {
      const name = t?.type === 'function' ? t.function?.name : undefined
      if (typeof name !== 'string') return
      const first = names.get(name)
      if (first === undefined) { names.set(name, i); return }
      const param = `tools[${i}].function.name`
      throw new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason: `${param}: provider ${provider} takes each function name once, and tools[${first}] is also named ${JSON.stringify(name)}` }, { param, details: 'request.body_invalid' })
    })
  }
  const tc = req.tool_choice as { type?: unknown; function?: { name?: unknown } } | string | null | undefined
  if (!choice || tc === null || typeof tc !== 'object' || tc.type !== 'function' || typeof tc.function?.name !== 'string') return
  const name = tc.function.name
  if (names.has(name)) return
  const param = 'tool_choice.function.name'
  throw new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason: `${param}: ${JSON.stringify(name)} is not the name of any of the request's tools; provider ${provider} can be made to call only a function it is given` }, { param, details: 'request.body_invalid' })
}

/**
 * The function name of a tool call in an assistant message of the history (`field` is `messages[i].tool_calls[j]`).
 * The anthropic, google and ollama translations key the call by it (Anthropic's `tool_use.name`, Gemini's
 * `functionCall.name`, Ollama's call and `tool_name`) and none of those APIs takes a call without one: a missing or
 * empty name is the 400 naming `<field>.function.name`, whatever `dropUnsupportedParams` says (nothing to drop).
 */
export function toolCallName(tc: { function?: { name?: unknown } | null } | null | undefined, field: string, provider: string): string {
  const name = tc?.function?.name
  if (typeof name === 'string' && name !== '') return name
  const param = `${field}.function.name`
  throw new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason: `${param}: provider ${provider} needs the name of the function a tool call called, got ${JSON.stringify(name ?? null)}` }, { param, details: 'request.body_invalid' })
}

/**
 * The function a tool message (`m`, at `where` = `messages[i]`) is the result of, for the anthropic, google and ollama
 * translations. Its `name` is the legacy, OpenAI-compatible way some clients name that function: the name of the
 * assistant's call with the same `tool_call_id` (`callName`) wins when there is one, and a `name` that is not that
 * call's contradicts the history: the 400 naming `<where>.name`. Without a matching call the message's own name is the
 * answer (undefined when it has none; an empty name is none). Anthropic's tool results carry no name (checked only);
 * Gemini's take the call's; Ollama's `tool_name` takes the answer.
 */
export function toolResultName(m: object, callName: string | undefined, where: string, provider: string): string | undefined {
  const name = (m as { name?: unknown }).name
  const own = typeof name === 'string' && name !== '' ? name : undefined
  if (callName === undefined || own === undefined || own === callName) return callName ?? own
  const param = `${where}.name`
  throw new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason: `${param}: ${JSON.stringify(own)} is not the name of the call its tool_call_id answers (${JSON.stringify(callName)}); provider ${provider} takes the call's` }, { param, details: 'request.body_invalid' })
}
