/**
 * Anthropic Messages API wire-format mock server (node:http only) for the gateway's tests and
 * benchmarks. Listens on 127.0.0.1 by default; `url` is the host form (http://127.0.0.1:PORT),
 * like the official SDK's baseURL. Same conventions as test/helpers/openai-mock.ts.
 *
 * Endpoints:
 *   POST /v1/messages        non-streaming `message`, or SSE (message_start, content_block_start,
 *                            ping, content_block_delta…, content_block_stop, message_delta, message_stop)
 *   GET  /v1/models (limit, after_id; has_more, last_id; `maxPageSize` caps a page), GET /v1/models/:id
 *   POST /v1/messages/count_tokens  {input_tokens} (the same count as a message's input_tokens); a field count_tokens
 *                            does not take (max_tokens, stream, temperature, ...) → 400 "Extra inputs are not permitted"
 * Anything else → 404 not_found_error. Errors: `{type:'error', error:{type, message}, request_id}`.
 * Every request needs an API key in `x-api-key` (or `Authorization: Bearer`, which SDK 1.x sends),
 * non-empty or equal to `opts.apiKey` when given → else 401 authentication_error, and
 * `anthropic-version` → else 400. Invalid JSON, missing `model`,
 * `max_tokens` or `messages` → 400 invalid_request_error naming the field.
 *
 * Deterministic replies:
 *   - last user message holds a tool_result      → text "tool result: <its content>"
 *   - last user text starts with "echo "          → text "echo: <rest>"
 *   - `tools` present (tool_choice not none) and the last user text contains "call tool"
 *                                                 → tool_use of tools[0], input {"city": "Paris"},
 *                                                   stop_reason tool_use; streamed as input_json_delta
 *                                                   fragments '{"ci', 'ty": "Pa', 'ris"}'
 *   - otherwise "tok0 tok1 … tok{N-1}", N = header `x-mock-tokens` (default 12), capped by
 *     max_tokens (then stop_reason max_tokens). Stream deltas join to exactly that text.
 *   input_tokens = ceil(chars of system + message text / 4), min 1.
 *   Cache writes: header `x-mock-cache-creation: <5m>,<1h>` reports that many tokens written to the 5-minute and
 *   the 1-hour cache, as Anthropic does for `cache_control` blocks (ttl '5m', the default, or '1h'): usage
 *   `cache_creation_input_tokens` (their sum) and `cache_creation: {ephemeral_5m_input_tokens,
 *   ephemeral_1h_input_tokens}`, in the JSON answer and in a stream's message_start (as Anthropic sends them).
 *
 * Web search (a server tool): `tools` holding a `web_search_*` tool and the last user text containing "search"
 *                                                 → server_tool_use {query: the text after "search "},
 *                                                   web_search_tool_result (one result), then a text block with one
 *                                                   web_search_result_location citation; usage.server_tool_use
 *                                                   {web_search_requests: 1}, and input_tokens 500 more than the
 *                                                   prompt's (the results are read as input). Streamed as Anthropic
 *                                                   does: the server_tool_use input as input_json_delta, the result
 *                                                   block whole in its content_block_start, the text block started
 *                                                   with `citations: []`, a citations_delta, then text_delta; the
 *                                                   message_start reports the prompt's input_tokens and the final
 *                                                   message_delta the whole message's (input_tokens, server_tool_use).
 *   Server-tool blocks in the history (server_tool_use, web_search_tool_result) and text citations are taken.
 *
 * A custom tool whose name does not match `^[a-zA-Z0-9_-]{1,64}$` → 400 "tools.<i>.custom.name: String should match
 * pattern ...", as Anthropic answers; two tools of one name → 400 "tools: Tool names must be unique."; a tool_choice
 * `{type: 'tool', name}` naming none of the tools → 400 (in the mock's words).
 * Tool histories Anthropic refuses (400, its wording): a tool_use id or tool_result tool_use_id outside
 * `^[a-zA-Z0-9_-]+$`, a tool_result whose tool_use_id is no tool_use of the message right before ("unexpected
 * `tool_use_id` found in `tool_result` blocks"), a tool_result after other blocks of its message (the results come first).
 * Content Anthropic refuses (400 invalid_request_error, Anthropic's messages): an empty or whitespace-only text block
 * (in messages, tool results or system; a string content is one text block), a message other than a final assistant
 * one with no content, a base64 image whose media type is not image/jpeg, png, gif or webp, an empty or
 * whitespace-only stop sequence, a final assistant message (a prefill) whose text ends in whitespace.
 *
 * Extended thinking (`thinking.type` enabled or adaptive): the reply opens with a thinking block, "Thinking about:
 * <the reply's first words>", signed with an HMAC of its text (`thinkingSignature`); streamed as content_block_start
 * {type: 'thinking', thinking: ''}, thinking_delta fragments, one signature_delta, content_block_stop, the reply's
 * block at index 1. The request is then checked as Anthropic does: a thinking block in the history whose signature
 * is not its text's → 400 "Invalid `signature` in `thinking` block"; the last assistant message, when it has a
 * tool_use, must start with a thinking or redacted_thinking block → else 400 "messages.<i>.content.0.type: Expected
 * `thinking` or `redacted_thinking`, but found `<type>`. When `thinking` is enabled, a final `assistant` message
 * must start with a thinking block …". Redacted blocks are not checked.
 *
 * FAULTS: `mock.fault = <spec>` (subsequent requests) or header `x-mock-fault: <spec>` (one
 * request; wins over the property). A spec is an object, a JSON string, or the DSL: items
 * separated by ',' ';' or spaces, `key:value` / `key=value` / bare flag; a bare 3-digit number is
 * `status:<n>`.
 *   status:<4xx|5xx>   error reply; type by status (400 invalid_request_error, 401
 *                      authentication_error, 403 permission_error, 404 not_found_error, 413
 *                      request_too_large, 429 rate_limit_error, 500 api_error, 529 overloaded_error)
 *   type:<error type>  the error type; alone it implies its status (overloaded_error → 529, …)
 *   message:<word>     error message (JSON form for spaces)
 *   retryAfter:<s>     `retry-after` header (implies 429 when no status)
 *   shouldRetry:<true|false>  `x-should-retry` header (the official SDKs obey it over their own retry rules)
 *   times:<n>          only the next n matching requests (per header value for the header form)
 *   path:<substr>      only paths containing <substr>
 *   delayMs:<ms>       wait before the headers
 *   reset              TCP RST before any headers;  hang  never answer
 *   cutAfter:<k>       stream: close the socket after k content deltas (no message_stop)
 *   stallAfter:<k>     stream: silence after k content deltas
 *   malformedAfter:<k> stream: a `data: {not json` event after k content deltas, then continue
 *   errorAfter:<k>     stream: an `event: error` (type, default overloaded_error) after k deltas, then end
 *   noStop             stream: everything but message_stop
 *   chunkDelayMs:<ms>  stream: delay between events (also header x-mock-chunk-delay-ms)
 * An unparseable x-mock-fault header gets a 400.
 */
import { createHmac } from 'node:crypto'
import { createServer } from 'node:http'
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

export interface AnthropicMockRequestRecord {
  method: string
  path: string
  headers: IncomingHttpHeaders
  body: any
  aborted: boolean
  receivedAt: number
  closedAt?: number
  status?: number
}

export interface AnthropicFault {
  status?: number
  type?: string
  message?: string
  retryAfter?: number
  /** `x-should-retry` header ('true' or 'false'), the hint the official SDKs obey over their own retry rules. */
  shouldRetry?: string
  times?: number
  path?: string
  delayMs?: number
  reset?: boolean
  hang?: boolean
  cutAfter?: number
  stallAfter?: number
  malformedAfter?: number
  errorAfter?: number
  noStop?: boolean
  chunkDelayMs?: number
}

export type AnthropicFaultSpec = AnthropicFault | string

export interface AnthropicMock {
  /** Host form, e.g. http://127.0.0.1:PORT (the SDK appends /v1/messages). */
  readonly url: string
  readonly port: number
  readonly requests: AnthropicMockRequestRecord[]
  get fault(): AnthropicFault | null
  set fault(spec: AnthropicFaultSpec | null)
  /** Clears requests, fault and header-fault counters. */
  reset(): void
  /** Destroys all sockets (hung and stalled included) and stops listening. */
  close(): Promise<void>
}

export interface StartAnthropicMockOptions {
  port?: number
  host?: string
  /** When set, `x-api-key` must equal it. */
  apiKey?: string
  /** default true */
  record?: boolean
  /** The most models one page of GET /v1/models holds, whatever `limit` asks (Anthropic: 1000). */
  maxPageSize?: number
}

const MODELS: readonly string[] = ['claude-sonnet-4-5-20250929', 'claude-haiku-4-5-20251001', 'claude-opus-4-1-20250805']
const TOOL_FRAGMENTS: readonly string[] = ['{"ci', 'ty": "Pa', 'ris"}']
const TOOL_INPUT = { city: 'Paris' }

export const ERROR_TYPE_BY_STATUS: Readonly<Record<number, string>> = {
  400: 'invalid_request_error', 401: 'authentication_error', 402: 'billing_error', 403: 'permission_error',
  404: 'not_found_error', 413: 'request_too_large', 429: 'rate_limit_error', 500: 'api_error', 504: 'timeout_error',
  529: 'overloaded_error',
}
const STATUS_BY_TYPE: Readonly<Record<string, number>> = Object.fromEntries(Object.entries(ERROR_TYPE_BY_STATUS).map(([s, t]) => [t, Number(s)]))
const DEFAULT_MESSAGES: Readonly<Record<string, string>> = {
  invalid_request_error: 'Invalid request (mock).',
  authentication_error: 'invalid x-api-key',
  permission_error: 'Your API key does not have permission to use the specified resource. (mock)',
  not_found_error: 'Not found (mock).',
  request_too_large: 'Request exceeds the maximum allowed number of bytes. (mock)',
  rate_limit_error: 'This request would exceed the rate limit for your organization (mock).',
  api_error: 'Internal server error (mock).',
  overloaded_error: 'Overloaded',
}

// ---------- faults ----------

const NUMERIC = new Set(['status', 'retryAfter', 'times', 'delayMs', 'cutAfter', 'stallAfter', 'malformedAfter', 'errorAfter', 'chunkDelayMs'])
const FLAGS = new Set(['reset', 'hang', 'noStop'])
const STRINGS = new Set(['type', 'message', 'path', 'shouldRetry'])

export function parseAnthropicFault(spec: AnthropicFaultSpec): AnthropicFault {
  if (typeof spec !== 'string') return checkFault({ ...spec })
  const s = spec.trim()
  if (s.startsWith('{')) {
    const o: unknown = JSON.parse(s)
    if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new Error('fault JSON must be an object')
    return checkFault({ ...(o as AnthropicFault) })
  }
  const out: Record<string, unknown> = {}
  for (const item of s.split(/[,;\s]+/)) {
    if (item === '') continue
    if (/^\d{3}$/.test(item)) { out['status'] = Number(item); continue }
    const m = /^([A-Za-z]+)(?:[:=](.*))?$/.exec(item)
    if (!m) throw new Error(`bad fault item "${item}"`)
    const key = m[1]!
    const value = m[2]
    if (FLAGS.has(key)) out[key] = value === undefined || value === '' || value === 'true' || value === '1'
    else if (NUMERIC.has(key)) {
      const n = Number(value)
      if (value === undefined || value === '' || !Number.isFinite(n)) throw new Error(`fault "${key}" needs a number`)
      out[key] = n
    } else if (STRINGS.has(key)) {
      if (value === undefined) throw new Error(`fault "${key}" needs a value`)
      out[key] = value
    } else throw new Error(`unknown fault key "${key}"`)
  }
  return checkFault(out as AnthropicFault)
}

function checkFault(f: AnthropicFault): AnthropicFault {
  for (const k of Object.keys(f)) if (!NUMERIC.has(k) && !FLAGS.has(k) && !STRINGS.has(k)) throw new Error(`unknown fault key "${k}"`)
  if (f.status !== undefined && (!Number.isInteger(f.status) || f.status < 400 || f.status > 599)) throw new Error(`fault status must be 4xx/5xx, got ${String(f.status)}`)
  if (f.shouldRetry !== undefined && f.shouldRetry !== 'true' && f.shouldRetry !== 'false') throw new Error(`fault shouldRetry must be true or false, got ${String(f.shouldRetry)}`)
  if (f.status === undefined && f.errorAfter === undefined) {
    if (f.type !== undefined) f.status = STATUS_BY_TYPE[f.type] ?? 400
    else if (f.retryAfter !== undefined) f.status = 429
  }
  return f
}

// ---------- replies ----------

function textOf(content: unknown): string {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) return ''
  let s = ''
  for (const b of content) if (b && typeof b === 'object' && typeof (b as { text?: unknown }).text === 'string') s += (b as { text: string }).text
  return s
}

type Plan = (
  | { kind: 'text'; pieces: string[]; stop: 'end_turn' | 'max_tokens' }
  | { kind: 'tool'; name: string }
) & { thinking?: string[] }

/** The signature the mock gives a thinking text (and checks when it comes back). */
export function thinkingSignature(thinking: string): string {
  return createHmac('sha256', 'anthropic-mock-thinking').update(thinking).digest('base64')
}

const thinkingEnabled = (body: Record<string, unknown>): boolean => {
  const t = body['thinking'] as { type?: unknown } | undefined
  return t?.type === 'enabled' || t?.type === 'adaptive'
}

const IMAGE_MEDIA_TYPES: ReadonlySet<string> = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp'])

/** A text block's refusal, as Anthropic words it (empty, then whitespace-only text), or undefined. */
function textRefusal(where: string, text: unknown): string | undefined {
  if (typeof text !== 'string' || text === '') return `${where}: text content blocks must be non-empty`
  if (text.trim() === '') return `${where}: text content blocks must contain non-whitespace text`
  return undefined
}

/** Checks the blocks of a message, a tool result or the system prompt (see the header); the error message, or undefined. */
function blocksRefusal(where: string, path: string, blocks: unknown[]): string | undefined {
  for (let j = 0; j < blocks.length; j++) {
    const b = blocks[j] as { type?: unknown; text?: unknown; source?: { type?: unknown; media_type?: unknown }; content?: unknown }
    if (b?.type === 'text') { const r = textRefusal(where, b.text); if (r) return r }
    if (b?.type === 'image' && b.source?.type === 'base64' && !IMAGE_MEDIA_TYPES.has(String(b.source.media_type))) {
      return `${path}.${j}.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'`
    }
    if (b?.type === 'tool_result') {
      if (typeof b.content === 'string' && b.content.trim() === '' && b.content !== '') return textRefusal(where, b.content)
      if (Array.isArray(b.content)) { const r = blocksRefusal(where, `${path}.${j}.content`, b.content); if (r) return r }
    }
  }
  return undefined
}

/**
 * A custom tool's name Anthropic refuses (400, its wording), two tools of one name ("tools: Tool names must be unique."),
 * or a `tool_choice` of type tool naming none of the tools (the mock's wording); undefined when none.
 */
function toolError(body: Record<string, unknown>): string | undefined {
  const tools = body['tools']
  const names = new Set<unknown>()
  if (Array.isArray(tools)) {
    for (let i = 0; i < tools.length; i++) {
      const t = tools[i] as { type?: unknown; name?: unknown } | null
      if ((t?.type === undefined || t.type === 'custom') && (typeof t?.name !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(t.name))) {
        return `tools.${i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'`
      }
      if (names.has(t?.name)) return 'tools: Tool names must be unique.'
      names.add(t?.name)
    }
  }
  const choice = body['tool_choice'] as { type?: unknown; name?: unknown } | undefined
  if (choice?.type === 'tool' && !names.has(choice.name)) return `tool_choice.name: tool ${JSON.stringify(choice.name)} is not one of the request's tools`
  return undefined
}

/**
 * What Anthropic refuses in a request's content and stop sequences (400 invalid_request_error), or undefined:
 * empty or whitespace-only text blocks (a string content is one text block), a message with no content, an image
 * whose media type is not jpeg, png, gif or webp, a stop sequence that is empty or whitespace-only.
 */
function contentError(body: Record<string, unknown>): string | undefined {
  const stops = body['stop_sequences']
  if (Array.isArray(stops)) {
    for (const s of stops) {
      if (typeof s !== 'string' || s === '') return 'stop_sequences: each stop sequence must be non-empty'
      if (s.trim() === '') return 'stop_sequences: each stop sequence must contain non-whitespace'
    }
  }
  const system = body['system']
  if (typeof system === 'string' && system !== '' && system.trim() === '') return textRefusal('system', system)
  if (Array.isArray(system)) { const r = blocksRefusal('system', 'system', system); if (r) return r }
  const messages = body['messages'] as { role?: unknown; content?: unknown }[]
  for (let i = 0; i < messages.length; i++) {
    const c = messages[i]?.content
    const final = i === messages.length - 1 && messages[i]?.role === 'assistant'
    if ((c === '' || (Array.isArray(c) && c.length === 0)) && !final) return `messages.${i}: all messages must have non-empty content except for the optional final assistant message`
    if (typeof c === 'string' && c !== '') { const r = textRefusal('messages', c); if (r) return r }
    if (Array.isArray(c)) { const r = blocksRefusal('messages', `messages.${i}.content`, c); if (r) return r }
    if (final) {
      const last = Array.isArray(c) ? (c.at(-1) as { type?: unknown; text?: unknown } | undefined) : { type: 'text', text: c }
      if (last?.type === 'text' && typeof last.text === 'string' && last.text !== last.text.trimEnd()) return 'messages: final assistant content cannot end with trailing whitespace'
    }
  }
  return undefined
}

const TOOL_USE_ID = /^[a-zA-Z0-9_-]+$/

/**
 * Anthropic's checks of tool_use and tool_result blocks (see the header); the error message, or undefined: ids outside
 * `^[a-zA-Z0-9_-]+$`, a tool_result whose tool_use_id is not a tool_use of the message before it, and a tool_result
 * after other content in the message that answers a tool_use turn (the results come first).
 */
function toolUseError(body: Record<string, unknown>): string | undefined {
  const messages = body['messages'] as { role?: unknown; content?: unknown }[]
  for (let i = 0; i < messages.length; i++) {
    const c = messages[i]?.content
    if (!Array.isArray(c)) continue
    const prev = messages[i - 1]
    const calls = new Set<unknown>(prev?.role === 'assistant' && Array.isArray(prev.content)
      ? prev.content.filter((b) => (b as { type?: unknown })?.type === 'tool_use').map((b) => (b as { id?: unknown }).id)
      : [])
    let other = false
    for (let j = 0; j < c.length; j++) {
      const b = c[j] as { type?: unknown; id?: unknown; tool_use_id?: unknown }
      if (b?.type === 'tool_use' && (typeof b.id !== 'string' || !TOOL_USE_ID.test(b.id))) return `messages.${i}.content.${j}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'`
      if (b?.type !== 'tool_result') { other = true; continue }
      if (typeof b.tool_use_id !== 'string' || !TOOL_USE_ID.test(b.tool_use_id)) return `messages.${i}.content.${j}.tool_result.tool_use_id: String should match pattern '^[a-zA-Z0-9_-]+$'`
      if (!calls.has(b.tool_use_id)) return `messages.${i}.content.${j}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${b.tool_use_id}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`
      if (other) return `messages.${i - 1}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${[...calls].join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`
    }
  }
  return undefined
}

/** Anthropic's checks of thinking blocks in the history (see the header); the error message, or undefined. */
function thinkingError(body: Record<string, unknown>): string | undefined {
  const messages = body['messages'] as { role?: unknown; content?: unknown }[]
  let last = -1
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]
    if (m?.role !== 'assistant') continue
    last = i
    if (!Array.isArray(m.content)) continue
    for (let j = 0; j < m.content.length; j++) {
      const b = m.content[j] as { type?: unknown; thinking?: unknown; signature?: unknown }
      if (b?.type === 'thinking' && (typeof b.thinking !== 'string' || b.signature !== thinkingSignature(b.thinking))) {
        return `messages.${i}.content.${j}: Invalid \`signature\` in \`thinking\` block`
      }
    }
  }
  if (!thinkingEnabled(body) || last < 0) return undefined
  const content = messages[last]!.content
  if (!Array.isArray(content) || !content.some((b) => (b as { type?: unknown })?.type === 'tool_use')) return undefined
  const first = (content[0] as { type?: unknown } | undefined)?.type
  if (first === 'thinking' || first === 'redacted_thinking') return undefined
  return `messages.${last}.content.0.type: Expected \`thinking\` or \`redacted_thinking\`, but found \`${String(first)}\`. When \`thinking\` is enabled, a final \`assistant\` message must start with a thinking block (preceeding the lastmost set of \`tool_use\` and \`tool_result\` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable \`thinking\`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking`
}

function words(text: string): string[] {
  return text === '' ? [] : text.split(' ').map((w, i) => (i === 0 ? w : ' ' + w))
}

function planReply(body: Record<string, unknown>, tokens: number): Plan {
  const plan = planContent(body, tokens)
  if (thinkingEnabled(body)) plan.thinking = words(`Thinking about: ${plan.kind === 'tool' ? `calling ${plan.name}` : plan.pieces.slice(0, 3).join('')}`)
  return plan
}

function planContent(body: Record<string, unknown>, tokens: number): Plan {
  const messages = body['messages'] as { role?: unknown; content?: unknown }[]
  const last = messages[messages.length - 1]
  if (last?.role === 'user') {
    const blocks = Array.isArray(last.content) ? (last.content as { type?: unknown; content?: unknown }[]) : []
    const result = blocks.filter((b) => b?.type === 'tool_result').pop()
    if (result) return { kind: 'text', pieces: words('tool result: ' + textOf(result.content)), stop: 'end_turn' }
    const text = textOf(last.content)
    if (text.startsWith('echo ')) return { kind: 'text', pieces: words('echo: ' + text.slice(5)), stop: 'end_turn' }
    const tools = body['tools']
    const choice = body['tool_choice'] as { type?: unknown } | undefined
    if (Array.isArray(tools) && tools.length > 0 && choice?.type !== 'none' && text.includes('call tool')) {
      const name = (tools[0] as { name?: unknown })?.name
      return { kind: 'tool', name: typeof name === 'string' ? name : 'tool' }
    }
  }
  let n = tokens
  let stop: 'end_turn' | 'max_tokens' = 'end_turn'
  const cap = body['max_tokens']
  if (typeof cap === 'number' && cap >= 0 && cap < n) { n = Math.floor(cap); stop = 'max_tokens' }
  return { kind: 'text', pieces: Array.from({ length: n }, (_, i) => (i === 0 ? 'tok0' : ` tok${i}`)), stop }
}

/** The query of a web search the request asks for (see the header), or undefined. */
function webSearchQuery(body: Record<string, unknown>): string | undefined {
  const tools = body['tools']
  if (!Array.isArray(tools) || !tools.some((t) => typeof (t as { type?: unknown })?.type === 'string' && (t as { type: string }).type.startsWith('web_search_'))) return undefined
  const messages = body['messages'] as { role?: unknown; content?: unknown }[]
  const last = messages[messages.length - 1]
  if (last?.role !== 'user') return undefined
  const text = textOf(last.content)
  const at = text.indexOf('search')
  return at === -1 ? undefined : text.slice(at + 'search'.length).trim() || 'anything'
}

export const WEB_RESULT = { type: 'web_search_result', url: 'https://example.com/mcp', title: 'MCP, the Master Control Program', encrypted_content: 'EqgfCioIARgBIiQ3YTAwMjY1Mi1mZjM5LTQ1NGUtODgxNC1kNjNjNTk1ZWI3Y2MSDBzfAKE', page_age: 'November 24, 2026' }
export const WEB_CITATION = { type: 'web_search_result_location', url: WEB_RESULT.url, title: WEB_RESULT.title, encrypted_index: 'Eo8BCioIAhgBIiQyYjQ0OWJmZi1lNm', cited_text: 'MCP is an open-source LLM gateway.' }
const WEB_TEXT = 'MCP is an open-source LLM gateway.'
/** What reading the search results adds to the input (the final usage's input_tokens exceeds message_start's). */
const WEB_INPUT_TOKENS = 500

function webSearchMessage(id: string, model: string, query: string, input: number, toolId: string): Record<string, unknown> {
  return {
    id, type: 'message', role: 'assistant', model,
    content: [
      { type: 'server_tool_use', id: toolId, name: 'web_search', input: { query } },
      { type: 'web_search_tool_result', tool_use_id: toolId, content: [WEB_RESULT] },
      { type: 'text', text: WEB_TEXT, citations: [WEB_CITATION] },
    ],
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage: { input_tokens: input + WEB_INPUT_TOKENS, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 9, server_tool_use: { web_search_requests: 1 } },
  }
}

function inputTokens(body: Record<string, unknown>): number {
  let chars = textOf(body['system']).length
  for (const m of body['messages'] as { content?: unknown }[]) chars += textOf(m?.content).length
  return Math.max(1, Math.ceil(chars / 4))
}

const headerOf = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v)

/** Tokens an answer reports written to the 5-minute and the 1-hour prompt cache (header x-mock-cache-creation). */
interface CacheWrites { readonly m5: number; readonly h1: number }
const NO_CACHE_WRITES: CacheWrites = { m5: 0, h1: 0 }
function cacheWritesOf(h: string | undefined): CacheWrites {
  if (h === undefined) return NO_CACHE_WRITES
  const [m5, h1] = h.split(',').map((x) => Number.parseInt(x.trim(), 10) || 0)
  return { m5: m5 ?? 0, h1: h1 ?? 0 }
}
/** Anthropic's usage fields for cache writes: the total, and (when there are any) the breakdown by lifetime. */
function cacheUsage(c: CacheWrites): Record<string, unknown> {
  if (c.m5 === 0 && c.h1 === 0) return { cache_creation_input_tokens: 0 }
  return { cache_creation_input_tokens: c.m5 + c.h1, cache_creation: { ephemeral_5m_input_tokens: c.m5, ephemeral_1h_input_tokens: c.h1 } }
}

// ---------- server ----------

export function startAnthropicMock(opts: StartAnthropicMockOptions = {}): Promise<AnthropicMock> {
  const host = opts.host ?? '127.0.0.1'
  const record = opts.record ?? true
  const requests: AnthropicMockRequestRecord[] = []
  const sockets = new Set<Socket>()
  const timers = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>()
  const headerUses = new Map<string, number>()
  let propFault: AnthropicFault | null = null
  let closing = false
  let seq = 0

  const nextId = (): string => (++seq).toString(36).padStart(6, '0')
  const sleep = (ms: number): Promise<void> => {
    if (!(ms > 0) || closing) return Promise.resolve()
    return new Promise((resolve) => {
      const t = { timer: setTimeout(() => { timers.delete(t); resolve() }, ms), resolve }
      timers.add(t)
    })
  }

  function selectFault(path: string, header: string | undefined): AnthropicFault | Error | null {
    if (header !== undefined && header.trim() !== '') {
      let f: AnthropicFault
      try { f = parseAnthropicFault(header) } catch (e) { return e as Error }
      if (f.path !== undefined && !path.includes(f.path)) return null
      if (f.times !== undefined) {
        const used = headerUses.get(header) ?? 0
        if (used >= f.times) return null
        headerUses.set(header, used + 1)
      }
      return f
    }
    const f = propFault
    if (f === null || (f.path !== undefined && !path.includes(f.path))) return null
    if (f.times !== undefined) {
      f.times -= 1
      if (f.times <= 0) propFault = null
    }
    return f
  }

  function sendJson(res: ServerResponse, rec: AnthropicMockRequestRecord, status: number, body: object, extra?: Record<string, string>): void {
    if (res.destroyed) return
    const text = JSON.stringify(body)
    rec.status = status
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'request-id': `req_mock${nextId()}`, ...extra })
    res.end(text)
  }

  function sendError(res: ServerResponse, rec: AnthropicMockRequestRecord, status: number, type: string, message?: string, extra?: Record<string, string>): void {
    sendJson(res, rec, status, { type: 'error', error: { type, message: message ?? DEFAULT_MESSAGES[type] ?? 'Error (mock).' }, request_id: `req_mock${nextId()}` }, extra)
  }

  function message(model: string, plan: Plan, input: number, cache: CacheWrites = NO_CACHE_WRITES): Record<string, unknown> {
    const tool = plan.kind === 'tool'
    return {
      id: `msg_mock${nextId()}`,
      type: 'message',
      role: 'assistant',
      model,
      content: [
        ...(plan.thinking ? [{ type: 'thinking', thinking: plan.thinking.join(''), signature: thinkingSignature(plan.thinking.join('')) }] : []),
        tool ? { type: 'tool_use', id: `toolu_mock${nextId()}`, name: plan.name, input: TOOL_INPUT } : { type: 'text', text: plan.pieces.join('') },
      ],
      stop_reason: tool ? 'tool_use' : plan.stop,
      stop_sequence: null,
      usage: { input_tokens: input, ...cacheUsage(cache), cache_read_input_tokens: 0, output_tokens: tool ? 8 : plan.pieces.length },
    }
  }

  async function stream(res: ServerResponse, rec: AnthropicMockRequestRecord, model: string, plan: Plan, input: number, f: AnthropicFault | null, delay: number, onServerClose: () => void, cache: CacheWrites = NO_CACHE_WRITES): Promise<void> {
    const msg = message(model, plan, input, cache)
    const ev = (type: string, data: object): string => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`
    const tool = plan.kind === 'tool'
    const content = msg['content'] as { id: string; signature: string }[]
    /** The reply's block: after the thinking block, when there is one. */
    const at0 = plan.thinking ? 1 : 0
    const startBlock = tool ? { type: 'tool_use', id: content[at0]!.id, name: plan.name, input: {} } : { type: 'text', text: '' }
    const deltas = tool
      ? TOOL_FRAGMENTS.map((p) => ev('content_block_delta', { index: at0, delta: { type: 'input_json_delta', partial_json: p } }))
      : plan.pieces.map((p) => ev('content_block_delta', { index: at0, delta: { type: 'text_delta', text: p } }))
    rec.status = 200
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'request-id': `req_mock${nextId()}` })

    let first = true
    // Without a delay the events leave in one write, as the OpenAI mock sends them (benchmarks compare the
    // two); what is pending is written before a cut, a stall or the end.
    let pending = ''
    const flush = (): void => {
      if (pending !== '' && !res.destroyed) res.write(pending)
      pending = ''
    }
    const emit = async (s: string): Promise<boolean> => {
      if (delay > 0 && !first) await sleep(delay)
      first = false
      if (res.destroyed || closing) return false
      if (delay === 0) { pending += s; return true }
      if (!res.write(s)) await new Promise<void>((r) => { res.once('drain', r); res.once('close', r) })
      return !res.destroyed && !closing
    }
    const total = deltas.length
    const at = (k: number | undefined, sent: number): boolean => k !== undefined && Math.min(k, total) === sent
    /** false: stop here */
    const checkpoint = async (sent: number): Promise<boolean> => {
      if (!f) return true
      if (at(f.malformedAfter, sent) && !(await emit('event: content_block_delta\ndata: {not json\n\n'))) return false
      if (at(f.errorAfter, sent)) {
        const type = f.type ?? 'overloaded_error'
        await emit(ev('error', { error: { type, message: f.message ?? DEFAULT_MESSAGES[type] ?? 'Error (mock).' } }))
        flush()
        res.end()
        return false
      }
      if (at(f.cutAfter, sent) || at(f.stallAfter, sent)) flush()
      if (at(f.cutAfter, sent)) { onServerClose(); const s = res.socket; if (s && !s.destroyed) s.end(() => s.destroy()); else res.destroy(); return false }
      if (at(f.stallAfter, sent)) return false
      return true
    }

    const startMsg = { ...msg, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: input, ...cacheUsage(cache), cache_read_input_tokens: 0, output_tokens: 1 } }
    if (!(await emit(ev('message_start', { message: startMsg })))) return
    if (plan.thinking) {
      if (!(await emit(ev('content_block_start', { index: 0, content_block: { type: 'thinking', thinking: '' } })))) return
      for (const p of plan.thinking) if (!(await emit(ev('content_block_delta', { index: 0, delta: { type: 'thinking_delta', thinking: p } })))) return
      if (!(await emit(ev('content_block_delta', { index: 0, delta: { type: 'signature_delta', signature: content[0]!.signature } })))) return
      if (!(await emit(ev('content_block_stop', { index: 0 })))) return
    }
    if (!(await emit(ev('content_block_start', { index: at0, content_block: startBlock })))) return
    if (!(await emit(ev('ping', {})))) return
    if (tool && !(await emit(ev('content_block_delta', { index: at0, delta: { type: 'input_json_delta', partial_json: '' } })))) return
    if (!(await checkpoint(0))) return
    for (let i = 0; i < total; i++) {
      if (!(await emit(deltas[i]!))) return
      if (!(await checkpoint(i + 1))) return
    }
    if (!(await emit(ev('content_block_stop', { index: at0 })))) return
    const usage = msg['usage'] as { output_tokens: number }
    if (!(await emit(ev('message_delta', { delta: { stop_reason: msg['stop_reason'], stop_sequence: null }, usage: { output_tokens: usage.output_tokens } })))) return
    if (!f?.noStop && !(await emit(ev('message_stop', {})))) return
    flush()
    res.end()
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET'
    const raw = req.url ?? '/'
    const path = raw.split('?')[0]!
    const rec: AnthropicMockRequestRecord = { method, path: raw, headers: record ? req.headers : {}, body: undefined, aborted: false, receivedAt: Date.now() }
    if (record) requests.push(rec)
    let serverClosed = false
    res.on('close', () => {
      rec.closedAt = Date.now()
      if (!res.writableFinished && !serverClosed && !closing) rec.aborted = true
    })
    let text = ''
    if (method !== 'GET' && method !== 'HEAD') {
      const chunks: Buffer[] = []
      try { for await (const c of req) chunks.push(c as Buffer) } catch { return }
      text = Buffer.concat(chunks).toString('utf8')
    }
    let body: unknown
    let badJson = false
    if (text !== '') {
      try { body = JSON.parse(text) } catch { badJson = true }
      if (record) rec.body = badJson ? text : body
    }

    const f = selectFault(path, headerOf(req.headers['x-mock-fault']))
    if (f instanceof Error) { sendError(res, rec, 400, 'invalid_request_error', `invalid x-mock-fault: ${f.message}`); return }
    if (f) {
      if (f.delayMs) { await sleep(f.delayMs); if (res.destroyed || closing) return }
      if (f.reset) { serverClosed = true; const s = req.socket; if (typeof s.resetAndDestroy === 'function') s.resetAndDestroy(); else s.destroy(); return }
      if (f.hang) return
      if (f.status !== undefined) {
        const extra: Record<string, string> = {}
        if (f.retryAfter !== undefined) extra['retry-after'] = String(f.retryAfter)
        if (f.shouldRetry !== undefined) extra['x-should-retry'] = f.shouldRetry
        const type = f.type ?? ERROR_TYPE_BY_STATUS[f.status] ?? (f.status >= 500 ? 'api_error' : 'invalid_request_error')
        sendError(res, rec, f.status, type, f.message, extra)
        return
      }
    }

    // API keys travel in x-api-key (the documented header) or, as newer SDKs send them, as a Bearer token.
    const bearer = /^Bearer\s+(\S+)/i.exec(headerOf(req.headers['authorization']) ?? '')?.[1]
    const key = headerOf(req.headers['x-api-key']) || bearer
    if (!key) { sendError(res, rec, 401, 'authentication_error', 'x-api-key header is required'); return }
    if (opts.apiKey !== undefined && key !== opts.apiKey) { sendError(res, rec, 401, 'authentication_error', 'invalid x-api-key'); return }
    if (!headerOf(req.headers['anthropic-version'])) { sendError(res, rec, 400, 'invalid_request_error', 'anthropic-version: header is required'); return }

    if (method === 'GET' && path === '/v1/models') {
      // Paginated as Anthropic documents: `limit` (default 20, 1..1000), `after_id` / `before_id`; has_more, first_id, last_id.
      const q = new URLSearchParams(raw.slice(path.length + 1))
      const limit = Math.min(Number(q.get('limit') ?? 20) || 20, 1000, opts.maxPageSize ?? 1000)
      const after = q.get('after_id')
      const from = after === null ? 0 : MODELS.indexOf(after) + 1
      if (after !== null && from === 0) { sendError(res, rec, 400, 'invalid_request_error', `after_id: unknown model ${after}`); return }
      const page = MODELS.slice(from, from + limit)
      const data = page.map((id) => ({ type: 'model', id, display_name: id, created_at: '2025-09-29T00:00:00Z' }))
      sendJson(res, rec, 200, { data, has_more: from + limit < MODELS.length, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null })
      return
    }
    if (method === 'GET' && path.startsWith('/v1/models/')) {
      const id = decodeURIComponent(path.slice('/v1/models/'.length))
      if (MODELS.includes(id)) sendJson(res, rec, 200, { type: 'model', id, display_name: id, created_at: '2025-09-29T00:00:00Z' })
      else sendError(res, rec, 404, 'not_found_error', `model: ${id}`)
      return
    }
    if (method === 'POST' && path === '/v1/messages/count_tokens') {
      // Token counting: a Messages body without max_tokens (and without what only generation takes), answered {input_tokens}.
      if (badJson || body === null || typeof body !== 'object' || Array.isArray(body)) { sendError(res, rec, 400, 'invalid_request_error', 'The request body is not valid JSON.'); return }
      const b = body as Record<string, unknown>
      for (const k of Object.keys(b)) {
        if (!['model', 'messages', 'system', 'tools', 'tool_choice', 'thinking', 'mcp_servers'].includes(k)) { sendError(res, rec, 400, 'invalid_request_error', `${k}: Extra inputs are not permitted`); return }
      }
      if (typeof b['model'] !== 'string' || !Array.isArray(b['messages'])) { sendError(res, rec, 400, 'invalid_request_error', 'model, messages: Field required'); return }
      sendJson(res, rec, 200, { input_tokens: inputTokens(b) })
      return
    }
    if (method !== 'POST' || path !== '/v1/messages') { sendError(res, rec, 404, 'not_found_error', `Not Found: ${method} ${path}`); return }
    if (badJson || body === null || typeof body !== 'object' || Array.isArray(body)) { sendError(res, rec, 400, 'invalid_request_error', 'The request body is not valid JSON.'); return }
    const b = body as Record<string, unknown>
    for (const [field, ok] of [['model', typeof b['model'] === 'string' && b['model'] !== ''], ['max_tokens', typeof b['max_tokens'] === 'number'], ['messages', Array.isArray(b['messages'])]] as const) {
      if (!ok) { sendError(res, rec, 400, 'invalid_request_error', `${field}: Field required`); return }
    }
    const refused = toolError(b) ?? contentError(b) ?? toolUseError(b) ?? thinkingError(b)
    if (refused !== undefined) { sendError(res, rec, 400, 'invalid_request_error', refused); return }
    const tokens = Math.min(100_000, Number.parseInt(headerOf(req.headers['x-mock-tokens']) ?? '12', 10) || 12)
    const plan = planReply(b, tokens)
    const input = inputTokens(b)
    const cache = cacheWritesOf(headerOf(req.headers['x-mock-cache-creation']))
    const query = webSearchQuery(b)
    if (query !== undefined) {
      const msg = webSearchMessage(`msg_mock${nextId()}`, b['model'] as string, query, input, `srvtoolu_mock${nextId()}`)
      if (b['stream'] !== true) { sendJson(res, rec, 200, msg); return }
      const ev = (type: string, data: object): string => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`
      const [use, result, text] = msg['content'] as Record<string, unknown>[]
      const usage = msg['usage'] as Record<string, unknown>
      const q = JSON.stringify({ query })
      const events = [
        ev('message_start', { message: { ...msg, content: [], stop_reason: null, usage: { input_tokens: input, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 } } }),
        ev('content_block_start', { index: 0, content_block: { ...use, input: {} } }),
        ev('content_block_delta', { index: 0, delta: { type: 'input_json_delta', partial_json: q.slice(0, 9) } }),
        ev('content_block_delta', { index: 0, delta: { type: 'input_json_delta', partial_json: q.slice(9) } }),
        ev('content_block_stop', { index: 0 }),
        ev('content_block_start', { index: 1, content_block: result! }),
        ev('content_block_stop', { index: 1 }),
        ev('content_block_start', { index: 2, content_block: { type: 'text', text: '', citations: [] } }),
        ev('content_block_delta', { index: 2, delta: { type: 'citations_delta', citation: WEB_CITATION } }),
        ...words(String(text!['text'])).map((w) => ev('content_block_delta', { index: 2, delta: { type: 'text_delta', text: w } })),
        ev('content_block_stop', { index: 2 }),
        ev('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { input_tokens: usage['input_tokens'], cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: usage['output_tokens'], server_tool_use: usage['server_tool_use'] } }),
        ev('message_stop', {}),
      ]
      rec.status = 200
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'request-id': `req_mock${nextId()}` })
      // cutAfter:<k> / errorAfter:<k> count events here: the stream is cut (or ends with an error event) after k of them.
      const cut = f?.cutAfter ?? f?.errorAfter
      if (cut !== undefined && cut < events.length) {
        res.write(events.slice(0, cut).join(''))
        if (f?.errorAfter !== undefined) { res.end(ev('error', { error: { type: f.type ?? 'overloaded_error', message: f.message ?? 'Overloaded' } })); return }
        serverClosed = true
        const sock = res.socket
        if (sock && !sock.destroyed) sock.end(() => sock.destroy()); else res.destroy()
        return
      }
      res.end(events.join(''))
      return
    }
    if (b['stream'] === true) {
      const delay = f?.chunkDelayMs ?? (Number.parseInt(headerOf(req.headers['x-mock-chunk-delay-ms']) ?? '0', 10) || 0)
      await stream(res, rec, b['model'] as string, plan, input, f, delay, () => { serverClosed = true }, cache)
    } else {
      sendJson(res, rec, 200, message(b['model'] as string, plan, input, cache))
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(500, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ type: 'error', error: { type: 'api_error', message: `mock internal error: ${String(err)}` } }))
      } else res.destroy()
    })
  })
  server.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  server.on('clientError', (_e, s) => { if (!s.destroyed) s.destroy() })

  return new Promise<AnthropicMock>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject)
      const port = (server.address() as AddressInfo).port
      let closed: Promise<void> | undefined
      const mock: AnthropicMock = {
        url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
        port,
        requests,
        get fault(): AnthropicFault | null { return propFault },
        set fault(spec: AnthropicFaultSpec | null) { propFault = spec === null ? null : parseAnthropicFault(spec) },
        reset() { requests.length = 0; propFault = null; headerUses.clear() },
        close() {
          if (closed) return closed
          closing = true
          for (const t of timers) { clearTimeout(t.timer); t.resolve() }
          timers.clear()
          closed = new Promise<void>((r) => {
            server.close(() => r())
            server.closeAllConnections()
            for (const s of sockets) s.destroy()
            sockets.clear()
          })
          return closed
        },
      }
      resolve(mock)
    })
  })
}
