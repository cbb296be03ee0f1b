/**
 * Canonical → Ollama's native `/api/chat` and `/api/embed` bodies. Pure: no I/O, no clock.
 *
 * What does not map is a 400 naming the parameter (MCP_ERR_REQ_PARAM_UNSUPPORTED), or is dropped
 * when the provider sets `dropUnsupportedParams: true` (documented in docs/providers.md):
 * `n`, `logprobs`, `top_logprobs`, `logit_bias`, `modalities` at other values than OpenAI's default (shared/inert-defaults.ts),
 * `reasoning_effort` other than none|low|medium|high,
 * `tool_choice` required or a named function, `parallel_tool_calls: false`, `store: true`,
 * `service_tier` other than auto or default, message `name` (a tool message's is its `tool_name`), image URLs that are not base64 data URLs, image
 * `detail` low|high, content parts other than text and images, and any unknown field.
 * `user`, `safety_identifier`, `prompt_cache_key`, `prediction`, `metadata`, `stream_options` and Anthropic's `context_management` are accepted and not forwarded; `tool_choice: 'none'` omits the tools.
 * Anthropic extensions: `top_k` → `options.top_k`, `is_error` tool results say `Error: ` in the text,
 * `cache_control` (a caching hint) is not sent.
 * Reasoning → `think` (Ollama's documented values: true, false, or a level name, which a model without levels
 * answers at its default): `reasoning_effort` low|medium|high → that level, none → false (it wins over `thinking`);
 * Anthropic's `thinking` enabled|adaptive → true, disabled → false.
 */
import { GatewayError } from '../../gateway/errors.ts'
import type { ChatMessage, ChatRequest, ContentPart, EmbeddingRequest, ToolCall, ToolDefinition } from '../types.ts'
import type { UpstreamBody } from '../shared/translation.ts'
import { readThinking } from '../shared/reasoning.ts'
import { fromLegacyFunctions } from '../shared/legacy-functions.ts'
import { unreadMessageField } from '../shared/message-fields.ts'
import { isInertDefault } from '../shared/inert-defaults.ts'
import { checkToolSet, toolCallName, toolResultName } from '../shared/tool-names.ts'
import { table } from '../shared/table.ts'

// ---------- Ollama wire types (request side) ----------

export interface OllamaToolCall {
  id?: string
  function: { index?: number; name: string; arguments: Record<string, unknown> }
}

export interface OllamaMessage {
  role: 'system' | 'user' | 'assistant' | 'tool'
  content: string
  images?: string[]
  tool_calls?: OllamaToolCall[]
  tool_name?: string
}

export interface OllamaChatBody {
  model: string
  messages: OllamaMessage[]
  stream: boolean
  tools?: ToolDefinition[]
  format?: 'json' | Record<string, unknown>
  options?: Record<string, unknown>
  keep_alive?: string | number
  think?: boolean | string
}

export interface OllamaEmbedBody {
  model: string
  input: string | string[]
  dimensions?: number
  keep_alive?: string | number
}

export interface OllamaRequestOptions {
  provider: string
  /** Path prefix of the host URL (usually ''). */
  basePath: string
  dropUnsupported: boolean
  keepAlive?: string | number | undefined
}

// ---------- parameter maps ----------

/** Canonical sampling parameters → keys of Ollama's `options`. Later entries win (max_completion_tokens over max_tokens). */
const OPTION_MAP: readonly (readonly [keyof ChatRequest & string, string])[] = [
  ['temperature', 'temperature'],
  ['top_p', 'top_p'],
  ['top_k', 'top_k'],
  ['max_tokens', 'num_predict'],
  ['max_completion_tokens', 'num_predict'],
  ['stop', 'stop'],
  ['seed', 'seed'],
  ['presence_penalty', 'presence_penalty'],
  ['frequency_penalty', 'frequency_penalty'],
]

/** Translated by dedicated code below. */
const STRUCTURAL = new Set(['model', 'messages', 'stream', 'tools', 'tool_choice', 'response_format', 'reasoning_effort', 'thinking'])

/**
 * No effect on what the model answers: accepted, not forwarded (usage is always streamed; `user` and its successor
 * `safety_identifier` only identify the caller; `prompt_cache_key` is a caching hint, Ollama keeps its own cache;
 * `prediction`, OpenAI's Predicted Outputs, a speculative-decoding hint that makes OpenAI faster, never another answer;
 * `metadata`, OpenAI's stored-completion tags; `context_management`, Anthropic's server-side context editing, which
 * Ollama does not do: the model sees the whole context).
 */
const IGNORED = new Set(['stream_options', 'user', 'safety_identifier', 'prompt_cache_key', 'prediction', 'metadata', 'context_management'])

/** No Ollama equivalent: accepted only at OpenAI's default (shared/inert-defaults.ts), and tool_choice auto|none. */
const DEFAULT_ONLY: Readonly<Record<string, (v: unknown) => boolean>> = table({
  ...Object.fromEntries(['n', 'store', 'service_tier', 'logprobs', 'top_logprobs', 'logit_bias', 'parallel_tool_calls', 'modalities']
    .map((k) => [k, (v: unknown) => isInertDefault(k, v)])),
  tool_choice: (v) => v === 'auto' || v === 'none',
})

const CHAT_KNOWN = new Set<string>([...OPTION_MAP.map(([k]) => k), ...STRUCTURAL, ...IGNORED, ...Object.keys(DEFAULT_ONLY)])

const EMBED_KNOWN = new Set(['model', 'input', 'dimensions', 'encoding_format', 'user'])

const ROLE_MAP: Readonly<Record<ChatMessage['role'], OllamaMessage['role']>> = {
  system: 'system', developer: 'system', user: 'user', assistant: 'assistant', tool: 'tool',
}

// ---------- helpers ----------

function unsupported(o: OllamaRequestOptions, param: string): void {
  if (!o.dropUnsupported) throw new GatewayError('MCP_ERR_REQ_PARAM_UNSUPPORTED', { param, provider: o.provider }, { param, details: 'request.param_unsupported' })
}

function invalid(param: string, reason: string): GatewayError {
  return new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason: `${param} ${reason}` }, { param, details: 'request.body_invalid' })
}

/**
 * Ollama's message content is one string. Text parts are separate pieces of the prompt (a document, then a question;
 * the blocks of an Anthropic client's turn), so they are joined with a line break, as vLLM joins them, never glued
 * into one word ("Hello" + "world" is "Hello\nworld"). Empty parts add nothing.
 */
const PART_SEPARATOR = '\n'

function joinTexts(texts: readonly string[]): string {
  return texts.filter((t) => t !== '').join(PART_SEPARATOR)
}

/** The text of a content; `refusal` (an assistant's) adds its refusal parts and that field: what it said, as text. */
function textOf(content: string | readonly ContentPart[] | null | undefined, refusal?: { refusal?: string | null }): string {
  const said = typeof refusal?.refusal === 'string' && refusal.refusal !== '' ? refusal.refusal : undefined
  if (content == null) return said ?? ''
  if (typeof content === 'string') return said === undefined ? content : joinTexts([content, said])
  const texts: string[] = []
  for (const p of content) {
    if (p.type === 'text' && typeof p['text'] === 'string') texts.push(p['text'])
    else if (refusal && p.type === 'refusal' && typeof p['refusal'] === 'string') texts.push(p['refusal'])
  }
  if (said !== undefined) texts.push(said)
  return joinTexts(texts)
}

/** `data:image/png;base64,AAAA` → `AAAA`; anything else is not something Ollama accepts. */
function base64OfDataUrl(url: string): string | undefined {
  if (!url.startsWith('data:')) return undefined
  const comma = url.indexOf(',')
  if (comma === -1 || !url.slice(0, comma).endsWith(';base64')) return undefined
  return url.slice(comma + 1)
}

function userContent(content: string | ContentPart[], i: number, o: OllamaRequestOptions): { content: string; images?: string[] } {
  if (typeof content === 'string') return { content }
  if (!Array.isArray(content)) throw invalid(`messages[${i}].content`, 'must be a string or an array of content parts')
  const texts: string[] = []
  const images: string[] = []
  content.forEach((p, j) => {
    if (p.type === 'text') { if (typeof p['text'] === 'string') texts.push(p['text']); return }
    if (p.type === 'image_url') {
      const img = p['image_url'] as { url?: unknown; detail?: unknown } | undefined
      const b64 = typeof img?.url === 'string' ? base64OfDataUrl(img.url) : undefined
      if (b64 === undefined) { unsupported(o, `messages[${i}].content[${j}].image_url`); return }
      if (img?.detail !== undefined && img.detail !== 'auto') unsupported(o, `messages[${i}].content[${j}].image_url.detail`)
      images.push(b64)
      return
    }
    unsupported(o, `messages[${i}].content[${j}].${p.type}`)
  })
  const text = joinTexts(texts)
  return images.length > 0 ? { content: text, images } : { content: text }
}

/**
 * A system, developer or tool message's parts are text only (Ollama's `images` are what the user shows): another part
 * is a 400 naming it (`messages[0].content[1].image_url`), or dropped with `dropUnsupportedParams`.
 */
function checkTextOnly(content: unknown, i: number, o: OllamaRequestOptions): void {
  if (Array.isArray(content)) content.forEach((p: { type?: unknown }, j) => { if (p?.type !== 'text') unsupported(o, `messages[${i}].content[${j}].${String(p?.type)}`) })
}

function toolCallOut(tc: ToolCall, name: string, i: number, j: number): OllamaToolCall {
  const param = `messages[${i}].tool_calls[${j}].function.arguments`
  // Missing or blank arguments are a call without arguments, as the anthropic and google translations read them.
  const raw = tc.function.arguments as string | null | undefined
  let args: unknown
  try {
    args = raw == null || raw.trim() === '' ? {} : JSON.parse(raw)
  } catch {
    throw invalid(param, 'is not valid JSON')
  }
  if (args === null || typeof args !== 'object' || Array.isArray(args)) throw invalid(param, 'must be a JSON object')
  return { function: { name, arguments: args as Record<string, unknown> } }
}

/** Messages in order; tool results get `tool_name` from the assistant call with the same id, else from their `name`. */
export function toOllamaMessages(messages: readonly ChatMessage[], o: OllamaRequestOptions): OllamaMessage[] {
  const toolNames = new Map<string, string>()
  const out: OllamaMessage[] = []
  messages.forEach((m, i) => {
    // The schema also admits the deprecated `function` role, which Ollama has no equivalent for.
    const role: OllamaMessage['role'] | undefined = ROLE_MAP[m.role]
    if (role === undefined) { unsupported(o, `messages[${i}].role`); return }
    // A field Ollama's messages have no place for (an assistant's `audio`, `annotations`, a participant's `name`; a tool
    // result's is its function's `tool_name`, below): see shared/message-fields.ts.
    const unread = unreadMessageField(m)
    if (unread !== undefined) unsupported(o, `messages[${i}].${unread}`)
    out.push(toOllamaMessage(m, role, i, o, toolNames))
  })
  return out
}

function toOllamaMessage(m: ChatMessage, role: OllamaMessage['role'], i: number, o: OllamaRequestOptions, toolNames: Map<string, string>): OllamaMessage {
  switch (m.role) {
    case 'user':
      return { role, ...userContent(m.content, i, o) }
    case 'assistant': {
      // Only what the assistant said (text and refusals) has a place in Ollama's assistant content; `images` is the user's.
      if (Array.isArray(m.content)) {
        (m.content as ContentPart[]).forEach((p, j) => { if (p.type !== 'text' && p.type !== 'refusal') unsupported(o, `messages[${i}].content[${j}].${p.type}`) })
      }
      const out: OllamaMessage = { role, content: textOf(m.content, m) }
      if (m.tool_calls && m.tool_calls.length > 0) {
        out.tool_calls = m.tool_calls.map((tc, j) => {
          const name = toolCallName(tc, `messages[${i}].tool_calls[${j}]`, o.provider)
          toolNames.set(tc.id, name)
          return toolCallOut(tc, name, i, j)
        })
      }
      return out
    }
    case 'tool': {
      // `is_error` (Anthropic's tool_result extension): Ollama's tool messages have no error field, so it is said in the text.
      const isError = (m as { is_error?: unknown }).is_error === true
      checkTextOnly(m.content, i, o)
      const out: OllamaMessage = { role, content: isError ? `Error: ${textOf(m.content)}` : textOf(m.content) }
      // The matching call's name, else the message's own `name` (a client that names results the legacy way).
      const name = toolResultName(m, toolNames.get(m.tool_call_id), `messages[${i}]`, o.provider)
      if (name !== undefined) out.tool_name = name
      return out
    }
    default:
      checkTextOnly(m.content, i, o)
      return { role, content: textOf(m.content) }
  }
}

function formatOf(req: ChatRequest, o: OllamaRequestOptions): OllamaChatBody['format'] | undefined {
  const rf = req.response_format
  if (rf == null) return undefined
  switch (rf.type) {
    case 'text': return undefined
    case 'json_object': return 'json'
    case 'json_schema': return rf.json_schema?.schema ?? 'json'
    default: unsupported(o, 'response_format'); return undefined
  }
}

/** `reasoning_effort` → `think`. */
const THINK_BY_EFFORT: Readonly<Record<string, boolean | string>> = table({ none: false, low: 'low', medium: 'medium', high: 'high' })

/** `think` for the request (see the header); undefined to leave it to the model. */
function thinkOf(req: ChatRequest, o: OllamaRequestOptions): boolean | string | undefined {
  const effort = req.reasoning_effort
  if (effort !== undefined && effort !== null) {
    if (typeof effort === 'string' && Object.hasOwn(THINK_BY_EFFORT, effort)) return THINK_BY_EFFORT[effort]
    unsupported(o, 'reasoning_effort')
    return undefined
  }
  if (req['thinking'] === undefined || req['thinking'] === null) return undefined
  return readThinking(req['thinking']).type !== 'disabled'
}

// ---------- bodies ----------

export function toOllamaChat(client: ChatRequest, model: string, stream: boolean, o: OllamaRequestOptions): UpstreamBody {
  const req = fromLegacyFunctions(client, { oneCallAtATime: false, namedChoice: false, unsupported: (p) => unsupported(o, p) })
  for (const key of Object.keys(req)) {
    const v = req[key]
    if (v === undefined || v === null) continue
    if (!CHAT_KNOWN.has(key)) { unsupported(o, key); continue }
    const isDefault = DEFAULT_ONLY[key]
    if (isDefault && !isDefault(v)) unsupported(o, key)
  }
  const options: Record<string, unknown> = {}
  for (const [from, to] of OPTION_MAP) {
    const v = req[from]
    if (v === undefined || v === null) continue
    options[to] = from === 'stop' && typeof v === 'string' ? [v] : v
  }
  const body: OllamaChatBody = { model, messages: toOllamaMessages(req.messages, o), stream }
  if (req.tools && req.tools.length > 0 && req.tool_choice !== 'none') {
    // Each function once (a named tool_choice is unsupported on Ollama, so there is no choice to check).
    checkToolSet(req, o.provider, false)
    body.tools = req.tools.map((t) => {
      const fn: ToolDefinition['function'] = { name: t.function.name }
      if (t.function.description !== undefined) fn.description = t.function.description
      if (t.function.parameters !== undefined) fn.parameters = t.function.parameters
      return { type: 'function', function: fn }
    })
  }
  const format = formatOf(req, o)
  if (format !== undefined) body.format = format
  if (req.reasoning_effort != null || req['thinking'] != null) {
    const think = thinkOf(req, o)
    if (think !== undefined) body.think = think
  }
  if (Object.keys(options).length > 0) body.options = options
  if (o.keepAlive !== undefined) body.keep_alive = o.keepAlive
  return { path: `${o.basePath}/api/chat`, body }
}

export function toOllamaEmbed(req: EmbeddingRequest, model: string, o: OllamaRequestOptions): UpstreamBody {
  for (const key of Object.keys(req)) {
    if (req[key] !== undefined && req[key] !== null && !EMBED_KNOWN.has(key)) unsupported(o, key)
  }
  // encoding_format: Ollama answers floats; base64 is encoded by the gateway (response.ts, fromOllamaEmbed).
  const input = req.input
  const isText = typeof input === 'string' || (Array.isArray(input) && input.every((x) => typeof x === 'string'))
  if (!isText) throw new GatewayError('MCP_ERR_REQ_PARAM_UNSUPPORTED', { param: 'input', provider: o.provider }, { param: 'input', details: 'request.param_unsupported' })
  const body: OllamaEmbedBody = { model, input: input as string | string[] }
  if (req.dimensions !== undefined) body.dimensions = req.dimensions
  if (o.keepAlive !== undefined) body.keep_alive = o.keepAlive
  return { path: `${o.basePath}/api/embed`, body }
}

/** GET /api/tags: the installed models, one page. */
export function ollamaModelsPath(basePath: string): string {
  return `${basePath}/api/tags`
}
