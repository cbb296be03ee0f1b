/**
 * The Anthropic Messages dialect (`POST /v1/messages`): request → canonical, canonical → Message,
 * canonical chunks → Anthropic SSE, errors `{type:'error', error:{type, message}, request_id}`.
 * Pure functions; the listener does the I/O.
 *
 * Decisions where the APIs differ:
 * - `top_k` and `thinking` have no canonical field: kept as extension fields of the canonical request
 *   (the `anthropic` provider forwards them; google and ollama map `top_k`, openai-compatible forwards
 *   it, otherwise it is unsupported; every provider maps `thinking`, see providers/shared/reasoning.ts).
 * - `cache_control` on text, image, document and tool_result blocks and on tools, and `is_error` on tool results, are
 *   kept as extension keys on the canonical parts/tools/messages; `cache_control` elsewhere is not carried. The other
 *   providers leave `cache_control` out and translate `is_error` (docs/providers.md).
 * - Extended thinking: `thinking` / `redacted_thinking` blocks of an assistant message in the history become its
 *   `thinking_blocks` extension, in order and unmodified (Anthropic checks their signatures and requires them back
 *   in the turn whose tool use a request continues); the `anthropic` provider sends them first in that message,
 *   the other providers leave them out. An answer's thinking blocks come first in the Message's content, and in
 *   a stream as thinking blocks (thinking_delta, signature_delta) before the blocks that follow them.
 * - Images and documents in a `tool_result` (canonical tool messages carry text only) become user content
 *   right after the turn's tool results.
 * - `output_config.format` → `response_format: json_schema` (name 'output'); `output_config.effort`
 *   → `reasoning_effort`. `max_tokens` → canonical `max_tokens`.
 * - A streamed request asks upstream for usage (`stream_options.include_usage`), so `message_delta`
 *   always carries usage; input usage is only known at the end, so `message_start` reports 0.
 */
import { GatewayError } from '../errors.ts'
import type {
  ChatChunk, ChatMessage, ChatRequest, ChatResponse, ContentPart, FinishReason, TextPart, ThinkingBlock, ThinkingBlockDelta, ToolCall,
  ToolDefinition, Usage,
} from '../../providers/types.ts'
import type { RequestCtx } from '../context.ts'
import { MODEL_NAME_MAX } from '../http/schemas.ts'
import { hasControlChars, NO_CONTROL_MESSAGE } from '../validate.ts'
import { clientPaths, rememberClientBody, rememberNativeOnly, type NativeOnly } from './anthropic-paths.ts'
import type { Inbound, StreamEncoder } from './types.ts'
import { table } from '../../providers/shared/table.ts'

type Obj = Record<string, unknown>

function fail(field: string, reason: string): never {
  throw new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason: `${field}: ${reason}` }, { param: field, details: 'request.body_invalid' })
}
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v)
function obj(v: unknown, field: string): Obj { if (!isObj(v)) fail(field, 'must be an object'); return v }
function arr(v: unknown, field: string): unknown[] { if (!Array.isArray(v)) fail(field, 'must be an array'); return v }
function str(v: unknown, field: string): string { if (typeof v !== 'string') fail(field, 'must be a string'); return v }
function num(v: unknown, field: string, min: number, max: number, integer = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) fail(field, `must be ${integer ? 'an integer' : 'a number'}`)
  if (v < min || v > max) fail(field, `must be between ${min} and ${max}`)
  return v
}
/**
 * The first part of the body being converted that has no canonical form (a server tool, a server tool's blocks in the
 * history, citations, a field this gateway does not know): set while anthropicToCanonical runs (it is synchronous).
 * Such a part is left out of the canonical request and the request is marked native-only (rememberNativeOnly): an
 * Anthropic provider gets the client's body as it came (gateway/upstream/native-messages.ts), any other provider
 * refuses it with a 400 naming this field.
 */
let nativeNeed: NativeOnly | undefined
function nativeOnly(field: string, reason: string): void {
  nativeNeed ??= { field, reason }
}
function onlyKeys(o: Obj, allowed: ReadonlySet<string>, path: string): void {
  for (const k of Object.keys(o)) if (!allowed.has(k)) nativeOnly(path === '' ? k : `${path}.${k}`, 'is not supported by this gateway')
}
const keys = (...k: string[]): ReadonlySet<string> => new Set(k)

// ---------- request → canonical ----------

const TOP_KEYS = keys('model', 'messages', 'max_tokens', 'system', 'stop_sequences', 'stream', 'temperature', 'top_p', 'top_k', 'metadata', 'tools', 'tool_choice', 'thinking', 'output_config', 'context_management', 'service_tier')
const TEXT_KEYS = keys('type', 'text', 'cache_control', 'citations')
const TOOL_KEYS = keys('type', 'name', 'description', 'input_schema', 'cache_control', 'strict')
const THINKING_KEYS = keys('type', 'thinking', 'signature')
const IMAGE_KEYS = keys('type', 'source', 'cache_control')
const DOCUMENT_KEYS = keys('type', 'source', 'title', 'cache_control', 'citations')
const REDACTED_THINKING_KEYS = keys('type', 'data')

/** A history thinking block, with its strings as they came (the signature authenticates them). */
function thinkingBlock(b: Obj, path: string): ThinkingBlock {
  if (b['type'] === 'redacted_thinking') {
    onlyKeys(b, REDACTED_THINKING_KEYS, path)
    return { type: 'redacted_thinking', data: str(b['data'], `${path}.data`) }
  }
  onlyKeys(b, THINKING_KEYS, path)
  return { type: 'thinking', thinking: str(b['thinking'], `${path}.thinking`), signature: str(b['signature'], `${path}.signature`) }
}

function textPart(b: Obj, path: string): TextPart {
  onlyKeys(b, TEXT_KEYS, path)
  const part: TextPart & Obj = { type: 'text', text: str(b['text'], `${path}.text`) }
  if (b['cache_control'] !== undefined) part['cache_control'] = b['cache_control']
  return part
}

/** A block's `cache_control` (a prompt-caching hint) kept on its canonical part, for the Anthropic adapter. */
function withCacheControl(part: ContentPart, b: Obj): ContentPart {
  if (b['cache_control'] !== undefined) (part as unknown as Obj)['cache_control'] = b['cache_control']
  return part
}

/** The only image types Anthropic takes in a base64 source (its API refuses any other `media_type`). */
const IMAGE_MEDIA_TYPES: ReadonlySet<string> = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp'])

function imagePart(b: Obj, path: string): ContentPart | undefined {
  onlyKeys(b, IMAGE_KEYS, path)
  const src = obj(b['source'], `${path}.source`)
  if (src['type'] === 'base64') {
    const mediaType = str(src['media_type'], `${path}.source.media_type`)
    if (!IMAGE_MEDIA_TYPES.has(mediaType)) fail(`${path}.source.media_type`, "must be one of 'image/jpeg', 'image/png', 'image/gif', 'image/webp'")
    return withCacheControl({ type: 'image_url', image_url: { url: `data:${mediaType};base64,${str(src['data'], `${path}.source.data`)}` } }, b)
  }
  if (src['type'] === 'url') return withCacheControl({ type: 'image_url', image_url: { url: str(src['url'], `${path}.source.url`) } }, b)
  // A Files API reference (`file`) and the like: Anthropic's own.
  if (typeof src['type'] === 'string') { nativeOnly(`${path}.source.type`, `image source '${src['type']}' is not translated (base64 and url are)`); return undefined }
  return fail(`${path}.source.type`, 'must be base64 or url')
}

/**
 * A document block → an OpenAI file part: a base64 PDF as it is, a plain-text document (`source.type: text`) as a
 * `data:text/plain` URL (base64 of its UTF-8), which the Anthropic adapter turns back into a text document.
 */
function documentPart(b: Obj, path: string): ContentPart | undefined {
  onlyKeys(b, DOCUMENT_KEYS, path)
  // Citations would come back in the answer's text blocks, which the canonical answer does not carry: refused, not
  // silently answered without them.
  if (isObj(b['citations']) && b['citations']['enabled'] === true) nativeOnly(`${path}.citations`, 'citations are not carried by the gateway\'s translation (an answer\'s citations would be lost)')
  const src = obj(b['source'], `${path}.source`)
  let fileData: string
  if (src['type'] === 'base64' && src['media_type'] === 'application/pdf') fileData = `data:application/pdf;base64,${str(src['data'], `${path}.source.data`)}`
  else if (src['type'] === 'text' && src['media_type'] === 'text/plain') fileData = `data:text/plain;base64,${Buffer.from(str(src['data'], `${path}.source.data`), 'utf8').toString('base64')}`
  else { nativeOnly(`${path}.source`, 'only base64 PDF and plain-text documents are translated'); return undefined }
  const file: Obj = { file_data: fileData }
  if (typeof b['title'] === 'string') file['filename'] = b['title']
  return withCacheControl({ type: 'file', file } as ContentPart, b)
}

/** A tool_result → a tool message with its text; its images and documents go to `media` (see convertMessage). */
function toolResult(b: Obj, path: string, media: ContentPart[]): ChatMessage {
  const id = str(b['tool_use_id'], `${path}.tool_use_id`)
  const c = b['content']
  let content: string | TextPart[] = ''
  if (typeof c === 'string') content = c
  else if (c !== undefined) {
    const texts: TextPart[] = []
    arr(c, `${path}.content`).forEach((x, k) => {
      const p = `${path}.content[${k}]`
      const xb = obj(x, p)
      if (xb['type'] === 'text') texts.push(textPart(xb, p))
      else if (xb['type'] === 'image') pushPart(media, imagePart(xb, p))
      else if (xb['type'] === 'document') pushPart(media, documentPart(xb, p))
      else if (typeof xb['type'] === 'string') nativeOnly(`${p}.type`, `tool result block type '${xb['type']}' is not translated`)
      else fail(`${p}.type`, 'must be text, image or document')
    })
    // No text (only media, or no blocks at all) is '': an empty array of parts is an OpenAI 400.
    content = texts.length === 0 ? '' : texts
  }
  const m: ChatMessage & Obj = { role: 'tool', tool_call_id: id, content }
  if (b['is_error'] === true) m['is_error'] = true
  // Claude Code's cache breakpoint is the last block of the turn, often a tool result: kept for the Anthropic adapter.
  if (b['cache_control'] !== undefined) m['cache_control'] = b['cache_control']
  return m
}

function pushPart(to: ContentPart[], part: ContentPart | undefined): void {
  if (part !== undefined) to.push(part)
}

/**
 * A block with no canonical form (`server_tool_use`, `web_search_tool_result`, `search_result`, `container_upload`, a
 * block type newer than this gateway): left out, the request native-only. A block without a string type is malformed.
 */
function unknownBlock(b: Obj, path: string): void {
  if (typeof b['type'] !== 'string') fail(`${path}.type`, 'must be a string')
  nativeOnly(`${path}.type`, `content block type '${b['type']}' is not translated`)
}

/**
 * One Anthropic message → one or more canonical messages (tool results become `tool` messages). `last`: it is the
 * request's last message. As in Anthropic's API, a system prompt is the top-level `system`, never a message, and every
 * message has content (`""` and `[]` are a 400) except a last assistant message (a prefill, which may be empty):
 * an empty user turn left out would leave the turn before it last (an assistant's answer read as a prefill), or no
 * messages at all.
 */
function convertMessage(raw: unknown, i: number, out: ChatMessage[], last: boolean): void {
  const path = `messages[${i}]`
  const m = obj(raw, path)
  onlyKeys(m, keys('role', 'content'), path)
  const role = m['role']
  const content = m['content']
  if (role !== 'user' && role !== 'assistant') fail(`${path}.role`, `must be 'user' or 'assistant'${role === 'system' ? ' (a system prompt is the top-level system field)' : ''}`)
  const blocks = typeof content === 'string' ? content : arr(content, `${path}.content`)
  if (blocks.length === 0 && !(last && role === 'assistant')) fail(`${path}.content`, 'must not be empty (every message needs content, except a final assistant message)')
  if (typeof blocks === 'string') { out.push({ role, content: blocks }); return }
  if (role === 'assistant') {
    const texts: TextPart[] = []
    const calls: ToolCall[] = []
    const thinking: ThinkingBlock[] = []
    blocks.forEach((x, j) => {
      const p = `${path}.content[${j}]`
      const b = obj(x, p)
      switch (b['type']) {
        case 'text': texts.push(textPart(b, p)); break
        case 'tool_use':
          if (!isObj(b['input'])) fail(`${p}.input`, 'must be an object')
          calls.push({ id: str(b['id'], `${p}.id`), type: 'function', function: { name: str(b['name'], `${p}.name`), arguments: JSON.stringify(b['input']) } })
          break
        case 'thinking': case 'redacted_thinking': thinking.push(thinkingBlock(b, p)); break
        default: unknownBlock(b, p)
      }
    })
    const plain = texts.every((t) => !('cache_control' in t))
    // content null only beside tool calls, as OpenAI takes it (an empty turn, or thinking alone, is '').
    const msg: ChatMessage = { role: 'assistant', content: texts.length === 0 ? (calls.length > 0 ? null : '') : plain ? texts.map((t) => t.text).join('') : texts }
    if (calls.length > 0) msg.tool_calls = calls
    if (thinking.length > 0) msg.thinking_blocks = thinking
    out.push(msg)
    return
  }
  let parts: ContentPart[] = []
  // Images and documents inside tool results: a canonical (OpenAI) tool message carries text only, and
  // OpenAI wants the tool messages right after the assistant's tool calls, so they follow the tool
  // results as user content, ahead of the turn's own blocks.
  const media: ContentPart[] = []
  const flush = (): void => { if (parts.length > 0) { out.push({ role: 'user', content: parts }); parts = [] } }
  const takeMedia = (): void => { if (media.length > 0) parts.push(...media.splice(0)) }
  blocks.forEach((x, j) => {
    const p = `${path}.content[${j}]`
    const b = obj(x, p)
    if (b['type'] !== 'tool_result') takeMedia()
    switch (b['type']) {
      case 'text': parts.push(textPart(b, p)); break
      case 'image': pushPart(parts, imagePart(b, p)); break
      case 'document': pushPart(parts, documentPart(b, p)); break
      case 'tool_result': flush(); out.push(toolResult(b, p, media)); break
      default: unknownBlock(b, p)
    }
  })
  takeMedia()
  flush()
}

/** A client tool → a canonical function; a server tool (web search, code execution, ...) → undefined, native-only. */
function convertTool(raw: unknown, i: number): ToolDefinition | undefined {
  const path = `tools[${i}]`
  const t = obj(raw, path)
  if (t['type'] !== undefined && t['type'] !== 'custom') {
    if (typeof t['type'] !== 'string') fail(`${path}.type`, 'must be a string')
    nativeOnly(`${path}.type`, `server tool '${t['type']}' runs at Anthropic`)
    return undefined
  }
  onlyKeys(t, TOOL_KEYS, path)
  const fn: ToolDefinition['function'] = { name: str(t['name'], `${path}.name`), parameters: obj(t['input_schema'], `${path}.input_schema`) }
  if (t['description'] !== undefined) fn.description = str(t['description'], `${path}.description`)
  if (typeof t['strict'] === 'boolean') fn.strict = t['strict']
  const def: ToolDefinition & Obj = { type: 'function', function: fn }
  if (t['cache_control'] !== undefined) def['cache_control'] = t['cache_control']
  return def
}

const TOOL_CHOICE: Readonly<Record<string, 'auto' | 'required' | 'none'>> = table({ auto: 'auto', any: 'required', none: 'none' })

export function anthropicToCanonical(body: unknown): ChatRequest {
  nativeNeed = undefined
  try {
    const req = convertRequest(body)
    if (nativeNeed !== undefined) rememberNativeOnly(req, nativeNeed)
    return req
  } finally {
    nativeNeed = undefined
  }
}

function convertRequest(body: unknown): ChatRequest {
  const b = obj(body, '(root)')
  onlyKeys(b, TOP_KEYS, '')
  const model = str(b['model'], 'model')
  if (model === '') fail('model', 'must not be empty')
  if (model.length > MODEL_NAME_MAX) fail('model', `must NOT have more than ${MODEL_NAME_MAX} characters`)
  if (hasControlChars(model)) fail('model', NO_CONTROL_MESSAGE)
  if (b['max_tokens'] === undefined) fail('max_tokens', 'is required')
  const messages: ChatMessage[] = []
  const system = b['system']
  if (typeof system === 'string') messages.push({ role: 'system', content: system })
  else if (system !== undefined) {
    const blocks = arr(system, 'system').map((x, j) => {
      const b = obj(x, `system[${j}]`)
      if (b['type'] !== 'text') fail(`system[${j}].type`, "must be 'text' (the system prompt takes text blocks only)")
      return textPart(b, `system[${j}]`)
    })
    // No blocks is no system prompt (an empty array of parts is an OpenAI 400).
    if (blocks.length > 0) messages.push({ role: 'system', content: blocks })
  }
  const rawMessages = arr(b['messages'], 'messages')
  if (rawMessages.length === 0) fail('messages', 'must contain at least one message')
  rawMessages.forEach((m, i) => convertMessage(m, i, messages, i === rawMessages.length - 1))

  const req: ChatRequest = { model, messages, max_tokens: num(b['max_tokens'], 'max_tokens', 1, Number.MAX_SAFE_INTEGER, true) }
  if (b['temperature'] !== undefined) req.temperature = num(b['temperature'], 'temperature', 0, 1)
  if (b['top_p'] !== undefined) req.top_p = num(b['top_p'], 'top_p', 0, 1)
  if (b['top_k'] !== undefined) req['top_k'] = num(b['top_k'], 'top_k', 0, Number.MAX_SAFE_INTEGER, true)
  if (b['stop_sequences'] !== undefined) req.stop = arr(b['stop_sequences'], 'stop_sequences').map((s, k) => str(s, `stop_sequences[${k}]`))
  if (b['metadata'] !== undefined) {
    const md = obj(b['metadata'], 'metadata')
    onlyKeys(md, keys('user_id'), 'metadata')
    if (md['user_id'] != null) req.user = str(md['user_id'], 'metadata.user_id')
  }
  if (b['stream'] !== undefined) {
    if (typeof b['stream'] !== 'boolean') fail('stream', 'must be a boolean')
    req.stream = b['stream']
    if (b['stream']) req.stream_options = { include_usage: true }
  }
  if (b['tools'] !== undefined) {
    const tools = arr(b['tools'], 'tools').map(convertTool).filter((t) => t !== undefined)
    // Only server tools: no canonical tools (an empty array is an OpenAI 400); the request is native-only anyway.
    if (tools.length > 0 || nativeNeed === undefined) req.tools = tools
  }
  if (b['tool_choice'] !== undefined) {
    const tc = obj(b['tool_choice'], 'tool_choice')
    onlyKeys(tc, keys('type', 'name', 'disable_parallel_tool_use'), 'tool_choice')
    const type = tc['type']
    if (type === 'tool') req.tool_choice = { type: 'function', function: { name: str(tc['name'], 'tool_choice.name') } }
    else if (typeof type === 'string' && TOOL_CHOICE[type]) req.tool_choice = TOOL_CHOICE[type]
    else fail('tool_choice.type', "must be one of 'auto', 'any', 'tool', 'none'")
    if (tc['disable_parallel_tool_use'] === true) req.parallel_tool_calls = false
  }
  if (b['thinking'] !== undefined) req['thinking'] = obj(b['thinking'], 'thinking')
  // Anthropic's `standard_only` is OpenAI's `default` (standard processing); `auto` is both APIs' default.
  if (b['service_tier'] !== undefined) {
    if (b['service_tier'] === 'standard_only') req.service_tier = 'default'
    else if (b['service_tier'] !== 'auto') fail('service_tier', "must be 'auto' or 'standard_only'")
  }
  // Server-side context editing (Claude Code sends it, with its beta): Anthropic's; the other providers leave it out.
  if (b['context_management'] !== undefined) req['context_management'] = obj(b['context_management'], 'context_management')
  if (b['output_config'] !== undefined) {
    const oc = obj(b['output_config'], 'output_config')
    onlyKeys(oc, keys('format', 'effort'), 'output_config')
    if (oc['format'] != null) {
      const f = obj(oc['format'], 'output_config.format')
      if (f['type'] !== 'json_schema') fail('output_config.format.type', "must be 'json_schema'")
      req.response_format = { type: 'json_schema', json_schema: { name: 'output', schema: obj(f['schema'], 'output_config.format.schema') } }
    }
    if (oc['effort'] != null) req.reasoning_effort = str(oc['effort'], 'output_config.effort')
  }
  rememberClientBody(req, b)
  return req
}

// ---------- canonical → Message ----------

const STOP_REASON: Readonly<Record<FinishReason, string>> = {
  stop: 'end_turn', length: 'max_tokens', tool_calls: 'tool_use', function_call: 'tool_use', content_filter: 'refusal',
}

/** Anthropic's stop_reason; a finish reason outside OpenAI's set (a server's own, e.g. vLLM's `abort`) ends the turn. */
function stopReason(f: FinishReason | null | undefined): string {
  return (f && Object.hasOwn(STOP_REASON, f) ? STOP_REASON[f] : undefined) ?? 'end_turn'
}

function anthropicUsage(u: Usage | null | undefined): Obj {
  const cacheRead = u?.prompt_tokens_details?.cached_tokens ?? 0
  const cacheCreation = u?.prompt_tokens_details?.cache_creation_tokens ?? 0
  return {
    input_tokens: Math.max(0, (u?.prompt_tokens ?? 0) - cacheRead - cacheCreation),
    cache_creation_input_tokens: cacheCreation,
    cache_read_input_tokens: cacheRead,
    output_tokens: u?.completion_tokens ?? 0,
  }
}

export function canonicalToAnthropic(res: ChatResponse, requestModel: string): object {
  const choice = res.choices[0]
  const content: Obj[] = []
  const m = choice?.message
  const calls = m?.tool_calls ?? []
  for (const b of m?.thinking_blocks ?? []) content.push(b.type === 'thinking' ? { type: 'thinking', thinking: b.thinking, signature: b.signature } : { type: 'redacted_thinking', data: b.data })
  if (typeof m?.content === 'string' && (m.content !== '' || calls.length === 0)) content.push({ type: 'text', text: m.content })
  if (typeof m?.refusal === 'string' && m.refusal !== '') content.push({ type: 'text', text: m.refusal })
  for (const tc of calls) {
    let input: unknown
    try { input = tc.function.arguments.trim() === '' ? {} : JSON.parse(tc.function.arguments) } catch { input = undefined }
    // Cut by max_tokens mid-arguments: the block is kept with no input, as a stream's client reassembles it.
    if (input === undefined && choice?.finish_reason === 'length') input = {}
    if (!isObj(input)) throw new GatewayError('MCP_ERR_UPSTREAM_BAD_RESPONSE', { provider: res.model, reason: `tool call ${tc.id} has arguments that are not a JSON object` })
    content.push({ type: 'tool_use', id: tc.id, name: tc.function.name, input })
  }
  const stopSequence = choice?.finish_reason === 'stop' ? choice.stop_sequence : undefined
  return {
    id: res.id,
    type: 'message',
    role: 'assistant',
    model: requestModel,
    content,
    stop_reason: stopSequence !== undefined ? 'stop_sequence' : choice?.anthropic_stop_reason ?? stopReason(choice?.finish_reason),
    stop_sequence: stopSequence ?? null,
    usage: anthropicUsage(res.usage),
  }
}

// ---------- errors ----------

/**
 * Anthropic's error types by status. Anthropic answers 529 when it is overloaded and documents no 503; a 503
 * (the gateway overloaded or draining, no provider available, an upstream's own 503 "overloaded/unavailable")
 * means the same to a client, retry later, so it is `overloaded_error` too. The status itself is kept.
 */
const ERROR_TYPE_BY_STATUS: Readonly<Record<number, string>> = {
  400: 'invalid_request_error', 401: 'authentication_error', 402: 'billing_error', 403: 'permission_error', 404: 'not_found_error',
  409: 'conflict_error', 413: 'request_too_large', 422: 'invalid_request_error', 429: 'rate_limit_error', 500: 'api_error',
  502: 'api_error', 503: 'overloaded_error', 504: 'timeout_error', 529: 'overloaded_error',
}
const ANTHROPIC_ERROR_TYPES: ReadonlySet<string> = new Set(Object.values(ERROR_TYPE_BY_STATUS))

export function anthropicErrorType(e: GatewayError): string {
  return ERROR_TYPE_BY_STATUS[e.status] ?? (ANTHROPIC_ERROR_TYPES.has(e.type) ? e.type : e.status >= 500 ? 'api_error' : 'invalid_request_error')
}

/**
 * A provider translation judges the canonical request, so its 400s name canonical (OpenAI) fields: the Messages
 * fields they came from. Fields of one name in both APIs need no entry. `messages[...]` paths are rewritten from the
 * client's own body (anthropic-paths.ts: system and tool results move the indexes).
 */
const ANTHROPIC_FIELD: readonly (readonly [RegExp, string])[] = [
  [/^parallel_tool_calls\b/, 'tool_choice.disable_parallel_tool_use'],
  [/^reasoning_effort\b/, 'output_config.effort'],
  [/^response_format(?:\.json_schema\.schema)?\b/, 'output_config.format'],
  [/^stop\b/, 'stop_sequences'],
  [/^user\b/, 'metadata.user_id'],
  [/^(tools\[\d+\])\.function\.parameters\b/, '$1.input_schema'],
  [/^(tools\[\d+\])\.function\b/, '$1'],
  [/^tool_choice\.function\b/, 'tool_choice'],
]
const REQUEST_CODES: ReadonlySet<string> = new Set(['MCP_ERR_REQ_BODY_INVALID', 'MCP_ERR_REQ_PARAM_UNSUPPORTED'])

/**
 * The error's message with the canonical fields it names written as the Messages fields the client sent; `chat` is the
 * canonical request the error is about (its client body gives the `messages[...]` paths).
 */
function messageOf(e: GatewayError, chat?: ChatRequest): string {
  // A native-only refusal names the client's own field already (gateway/upstream/native-messages.ts).
  if (!REQUEST_CODES.has(e.code) || e.details === 'request.native_only') return e.message
  let message = e.message
  const param = e.param
  if (param !== null) {
    for (const [from, to] of ANTHROPIC_FIELD) {
      if (!from.test(param)) continue
      const renamed = param.replace(from, to)
      // Where the message names it: quoted, or after "body: " (not the same word in the prose, "5 stop sequences").
      const named = new RegExp(`(?<=^|'|: )${param.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=['\\]:.[]|$)`, 'g')
      message = message.replace(named, () => renamed)
      break
    }
  }
  return clientPaths(chat)?.(message) ?? message
}

export function anthropicErrorBody(e: GatewayError, requestId: string, ctx?: RequestCtx): object {
  return { type: 'error', error: { type: anthropicErrorType(e), message: messageOf(e, ctx?.chat) }, request_id: requestId }
}

// ---------- canonical chunks → Anthropic SSE ----------

const sse = (event: string, data: object): string => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`

/**
 * Canonical chunks of choice 0 → message_start, content_block_start/delta/stop (text and
 * tool_use with input_json_delta), message_delta (stop_reason, usage), message_stop. A new block
 * closes the open one. Finish and usage are held until end(), as usage arrives after the finish.
 *
 * Anthropic's blocks are sequential (a closed block takes no more deltas), where OpenAI's tool calls are
 * fragments tagged with an index, and a server may interleave them (two calls started, then arguments for
 * each). So once a tool_use block is open it stays open until the finish: fragments of the other tool calls,
 * and text that comes after a tool call started, are held and written whole (one block each, in the order
 * they began) when it closes. The first tool call streams as it comes; the others arrive complete at the
 * finish, which costs a client nothing it could act on earlier (a tool call runs once its input is whole).
 * Except when text comes while nothing is held and the open tool call's input is already a whole JSON object
 * (Gemini's calls arrive whole): the call is over, so its block closes and the text streams in its own block.
 * Either way the blocks keep the order in which they began.
 *
 * Thinking blocks (`thinking_blocks` deltas, only from the `anthropic` provider, whose blocks are sequential too)
 * are written as they come: a new one closes the open block (a tool_use included, its input then complete), opens
 * {type: 'thinking', thinking: ''} and takes thinking_delta and signature_delta events; a redacted one is written
 * whole.
 */
export function createAnthropicStreamEncoder(model: string, chat?: ChatRequest, requestId = ''): StreamEncoder {
  let started = false
  let ended = false
  let block = -1
  let open: 'text' | 'tool' | 'thinking' | null = null
  const toolBlocks = new Map<number, number>()
  /** Canonical thinking block index → content block index. */
  const thinkingBlocks = new Map<number, number>()
  let finish: FinishReason | null = null
  /** The stop sequence that ended the turn, when the provider said (ChatChunkChoice.stop_sequence). */
  let stopSequence: string | undefined
  /** Anthropic's own stop_reason when the finish reason cannot say it (ChatChunkChoice.anthropic_stop_reason). */
  let nativeStop: string | undefined
  let usage: Usage | null | undefined
  /** Tool calls (and text) that began while a tool_use block was open, in the order they began. */
  const held: ({ id: string; name: string; args: string } | { text: string })[] = []
  const heldTools = new Map<number, { id: string; name: string; args: string }>()
  let heldText: { text: string } | undefined
  /** The input of the open tool_use block so far. */
  let openArgs = ''

  const start = (id: string): string => {
    started = true
    return sse('message_start', {
      type: 'message_start',
      message: { id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 0, output_tokens: 0 } },
    })
  }
  const close = (): string => {
    if (open === null) return ''
    open = null
    return sse('content_block_stop', { type: 'content_block_stop', index: block })
  }
  const openBlock = (kind: 'text' | 'tool' | 'thinking', contentBlock: object): string => {
    const s = close()
    block++
    open = kind
    return s + sse('content_block_start', { type: 'content_block_start', index: block, content_block: contentBlock })
  }
  const textDelta = (t: string): string => sse('content_block_delta', { type: 'content_block_delta', index: block, delta: { type: 'text_delta', text: t } })
  /** The open tool call's input is a whole JSON object: no fragment of a call that goes on could complete it so. */
  const openToolWhole = (): boolean => {
    if (openArgs.charCodeAt(openArgs.length - 1) !== 125 /* '}' */) return false
    try { const v: unknown = JSON.parse(openArgs); return v !== null && typeof v === 'object' && !Array.isArray(v) } catch { return false }
  }
  const text = (t: string): string => {
    if (open === 'tool') {
      if (held.length === 0 && openToolWhole()) return close() + openBlock('text', { type: 'text', text: '' }) + textDelta(t)
      if (!heldText) { heldText = { text: '' }; held.push(heldText) }
      heldText.text += t
      return ''
    }
    return (open === 'text' ? '' : openBlock('text', { type: 'text', text: '' })) + textDelta(t)
  }
  /** Closes the open block, then writes what was held, one whole block each. */
  const closeAll = (): string => {
    let s = close()
    for (const h of held) {
      if ('text' in h) {
        s += openBlock('text', { type: 'text', text: '' }) + textDelta(h.text)
      } else {
        s += openBlock('tool', { type: 'tool_use', id: h.id, name: h.name, input: {} })
        if (h.args !== '') s += sse('content_block_delta', { type: 'content_block_delta', index: block, delta: { type: 'input_json_delta', partial_json: h.args } })
      }
      s += close()
    }
    held.length = 0
    heldTools.clear()
    heldText = undefined
    return s
  }

  const thinking = (t: ThinkingBlockDelta): string => {
    let s = ''
    let index = thinkingBlocks.get(t.index)
    if (index === undefined) {
      s += closeAll()
      if (t.type === 'redacted_thinking') {
        s += openBlock('thinking', { type: 'redacted_thinking', data: t.data }) + close()
        thinkingBlocks.set(t.index, block)
        return s
      }
      s += openBlock('thinking', { type: 'thinking', thinking: '' })
      index = block
      thinkingBlocks.set(t.index, index)
    }
    if (t.type === 'redacted_thinking') return s
    if (t.thinking) s += sse('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'thinking_delta', thinking: t.thinking } })
    if (t.signature) s += sse('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'signature_delta', signature: t.signature } })
    return s
  }

  return {
    chunk(c: ChatChunk): string {
      if (ended) return ''
      let s = started ? '' : start(c.id)
      if (c.usage) usage = c.usage
      const choice = c.choices.find((x) => x.index === 0)
      if (!choice) return s
      const d = choice.delta
      if (d.thinking_blocks) for (const t of d.thinking_blocks) s += thinking(t)
      if (typeof d.content === 'string' && d.content !== '') s += text(d.content)
      if (typeof d.refusal === 'string' && d.refusal !== '') s += text(d.refusal)
      for (const t of d.tool_calls ?? []) {
        const args = t.function?.arguments
        const h = heldTools.get(t.index)
        if (h) { if (args) h.args += args; continue }
        let index = toolBlocks.get(t.index)
        if (index === undefined) {
          if (open === 'tool') {
            // Another tool call began while one is open: held until the open one closes (see above).
            const n = { id: t.id ?? '', name: t.function?.name ?? '', args: args ?? '' }
            heldTools.set(t.index, n)
            held.push(n)
            // Text after this call is held after it, not joined to text held before it.
            heldText = undefined
            continue
          }
          s += openBlock('tool', { type: 'tool_use', id: t.id ?? '', name: t.function?.name ?? '', input: {} })
          index = block
          toolBlocks.set(t.index, index)
          openArgs = ''
        }
        if (args && index === block) openArgs += args
        if (args) s += sse('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: args } })
      }
      if (choice.finish_reason) { finish = choice.finish_reason; stopSequence = choice.stop_sequence; nativeStop = choice.anthropic_stop_reason; s += closeAll() }
      return s
    },
    end(): string {
      if (ended) return ''
      ended = true
      let s = started ? '' : start('')
      s += closeAll()
      const seq = finish === 'stop' ? stopSequence : undefined
      s += sse('message_delta', { type: 'message_delta', delta: { stop_reason: seq !== undefined ? 'stop_sequence' : nativeStop ?? stopReason(finish), stop_sequence: seq ?? null }, usage: anthropicUsage(usage) })
      return s + sse('message_stop', { type: 'message_stop' })
    },
    error(e: GatewayError): string {
      ended = true
      return sse('error', { type: 'error', error: { type: anthropicErrorType(e), message: messageOf(e, chat) }, request_id: requestId })
    },
  }
}

export const anthropicInbound: Inbound = {
  name: 'anthropic',
  errorBody: anthropicErrorBody,
  encodeResponse: (res, requestModel) => JSON.stringify('choices' in res ? canonicalToAnthropic(res, requestModel) : res),
  createStreamEncoder: (requestModel, _includeUsage, ctx) => createAnthropicStreamEncoder(requestModel, ctx?.chat, ctx?.id),
}
