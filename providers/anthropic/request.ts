/**
 * Canonical (OpenAI Chat Completions) → Anthropic Messages API request. Pure.
 *
 * Every top-level canonical field is in PARAMS: translated, accepted when it holds the OpenAI
 * default (an inert value), or unsupported — a 400 MCP_ERR_REQ_PARAM_UNSUPPORTED naming it, or a
 * drop when the provider is configured with `dropUnsupportedParams`. Unknown fields are unsupported.
 *
 * Decisions where the APIs differ:
 * - `response_format: json_schema` → `output_config.format` (Anthropic structured outputs);
 *   `json_object` has no schema-less equivalent → unsupported; `text` is the default.
 * - `reasoning_effort` low|medium|high|xhigh|max → `output_config.effort`; none|minimal → unsupported.
 * - `service_tier: default` (standard processing) → `standard_only`; `auto` is Anthropic's default too.
 * - `seed`, and `n`, `logprobs`, `top_logprobs`, penalties, `logit_bias`, `store`, `service_tier`,
 *   `modalities` at other values than OpenAI's default (shared/inert-defaults.ts), a non-tool message's `name`, image `detail`
 *   low|high → unsupported.
 * - `user` and `safety_identifier` → `metadata.user_id`; `prompt_cache_key` (a caching hint) and `prediction` (a
 *   latency hint: OpenAI's Predicted Outputs) and OpenAI's `metadata` (stored-completion tags) are accepted, not sent.
 * - Extensions kept by the Anthropic inbound dialect pass through: `top_k`, `thinking`, `context_management`, and
 *   `cache_control` on text, image and file parts, on tools and on tool messages, `is_error` on tool messages.
 * - A tool (or `tool_choice`) name Anthropic refuses (`^[a-zA-Z0-9_-]{1,64}$`) is a 400 naming it (shared/tool-names.ts).
 * - An assistant message's `thinking_blocks` (extended thinking) open its content, in order, each block rebuilt
 *   with exactly Anthropic's fields and its text, signature or data unmodified (Anthropic checks the signature).
 * - Tool call ids Anthropic refuses (outside `^[a-zA-Z0-9_-]+$`, e.g. Kimi's `functions.get_weather:0`) are rewritten,
 *   the same way in the call and in its result (toolUseIds). A tool result must answer a call of the assistant turn
 *   right before it (else a 400 naming its `tool_call_id`), and goes ahead of the user's text in that turn, as
 *   Anthropic requires (resultsFirst).
 */
import { GatewayError } from '../../gateway/errors.ts'
import type { ChatMessage, ChatRequest, ContentPart, ThinkingBlock, ToolCall, ToolDefinition } from '../types.ts'
import type { UpstreamBody } from '../shared/translation.ts'
import { ANTHROPIC_TOOL_NAMES, checkToolNames, checkToolSet, toolCallName, toolResultName } from '../shared/tool-names.ts'
import { fromLegacyFunctions } from '../shared/legacy-functions.ts'
import { unreadMessageField } from '../shared/message-fields.ts'
import { isInertDefault } from '../shared/inert-defaults.ts'
import { parseDataUrl } from '../shared/data-url.ts'
import { table } from '../shared/table.ts'

export interface AnthropicRequestOptions {
  /** Provider name, for error messages. */
  provider: string
  /** Path prefix of the base URL ('' for the default host). */
  basePath: string
  defaultMaxTokens: number
  dropUnsupportedParams: boolean
}

export type AnthropicBlock = Record<string, unknown>

export interface AnthropicMessageParam {
  role: 'user' | 'assistant'
  content: string | AnthropicBlock[]
}

export interface AnthropicRequest {
  model: string
  max_tokens: number
  messages: AnthropicMessageParam[]
  system?: string | AnthropicBlock[]
  stream?: boolean
  temperature?: number
  top_p?: number
  top_k?: number
  stop_sequences?: string[]
  metadata?: { user_id: string }
  tools?: AnthropicBlock[]
  tool_choice?: AnthropicBlock
  output_config?: { format?: { type: 'json_schema'; schema: Record<string, unknown> }; effort?: string }
  thinking?: unknown
  context_management?: unknown
  service_tier?: 'standard_only'
}

interface Ctx {
  readonly opts: AnthropicRequestOptions
  /** Tool call ids Anthropic would refuse → the ids sent instead (toolUseIds); undefined when every id is fine. */
  readonly ids?: ReadonlyMap<string, string> | undefined
}

/**
 * Throws the 400 for an unsupported parameter (or value: then `message` says why), or returns (the caller then drops
 * it) when configured to drop.
 */
function unsupported(ctx: Ctx, param: string, message?: string): void {
  if (ctx.opts.dropUnsupportedParams) return
  throw new GatewayError('MCP_ERR_REQ_PARAM_UNSUPPORTED', { param, provider: ctx.opts.provider }, { param, details: 'request.param_unsupported', ...(message !== undefined ? { message } : {}) })
}

function invalid(field: string, reason: string): GatewayError {
  return new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason: `${field}: ${reason}` }, { param: field, details: 'request.body_invalid' })
}

type Rule = (value: unknown, out: AnthropicRequest, ctx: Ctx, key: string) => void

/** Translated outside the table (they depend on each other). */
const together: Rule = () => {}

/** Accepted and not sent: the answer does not depend on it (the reason is beside each key). */
const ignored: Rule = () => {}

/** Accepted only at OpenAI's default, which is also Anthropic's behaviour (shared/inert-defaults.ts). */
const inert: Rule = (v, _out, ctx, key) => { if (!isInertDefault(key, v)) unsupported(ctx, key) }

/** No equivalent at any value. */
const refused: Rule = (_v, _out, ctx, key) => unsupported(ctx, key)

/**
 * Anthropic refuses a text block that is empty or only whitespace (400 "text content blocks must contain
 * non-whitespace text"), in messages, tool results and the system prompt alike: such text carries nothing and is left out.
 */
const blank = (text: string): boolean => text.trim() === ''

const EFFORTS: ReadonlySet<string> = new Set(['low', 'medium', 'high', 'xhigh', 'max'])

const PARAMS: Readonly<Record<string, Rule>> = table({
  model: together,
  messages: together,
  stream: together,
  stream_options: together, // Anthropic streams always carry usage
  max_tokens: together,
  max_completion_tokens: together,
  tools: together,
  tool_choice: together,
  parallel_tool_calls: together,
  temperature: (v, out, ctx, key) => {
    if (typeof v !== 'number' || v < 0 || v > 1) {
      throw new GatewayError('MCP_ERR_REQ_PARAM_UNSUPPORTED', { param: key, provider: ctx.opts.provider }, {
        param: key, details: 'request.param_out_of_range',
        message: `Parameter '${key}' must be between 0 and 1 for provider ${ctx.opts.provider}, got ${String(v)}`,
      })
    }
    out.temperature = v
  },
  top_p: (v, out) => { out.top_p = v as number },
  top_k: (v, out) => { out.top_k = v as number },
  stop: (v, out, ctx, key) => {
    // Anthropic refuses an empty or whitespace-only stop sequence ("each stop sequence must contain non-whitespace").
    const stops = (typeof v === 'string' ? [v] : (v as string[])).filter((x) => typeof x !== 'string' || !blank(x))
    if (stops.length !== (typeof v === 'string' ? 1 : (v as string[]).length)) {
      unsupported(ctx, key, `Parameter '${key}' has a stop sequence that is empty or only whitespace, which provider ${ctx.opts.provider} does not support`)
    }
    if (stops.length > 0) out.stop_sequences = stops
  },
  // An end-user id for abuse detection: Anthropic's `metadata.user_id`. `safety_identifier` (OpenAI's successor to
  // `user` for that purpose) wins when both are set.
  user: (v, out) => { out.metadata ??= { user_id: String(v) } },
  safety_identifier: (v, out) => { out.metadata = { user_id: String(v) } },
  // A prompt-caching hint (OpenAI routes requests sharing it to the same cache); Anthropic caches by `cache_control`
  // blocks, and the answer does not depend on it: accepted, not sent.
  prompt_cache_key: ignored,
  // OpenAI's Predicted Outputs: text the answer is expected to repeat, for speculative decoding. It makes OpenAI faster
  // (and bills rejected tokens), never changes what the model answers: accepted, not sent, like prompt_cache_key.
  prediction: ignored,
  // OpenAI's `metadata`: tags for stored completions (`store: true` is unsupported) and its dashboard; Anthropic's own
  // `metadata` takes only user_id (from `user`, above). The answer does not depend on it: accepted, not sent.
  metadata: ignored,
  response_format: (v, out, ctx, key) => {
    const rf = v as { type?: string; json_schema?: { schema?: Record<string, unknown> } }
    if (rf.type === 'text') return
    if (rf.type === 'json_schema' && rf.json_schema?.schema) {
      out.output_config = { ...out.output_config, format: { type: 'json_schema', schema: rf.json_schema.schema } }
      return
    }
    unsupported(ctx, rf.type === 'json_schema' ? `${key}.json_schema.schema` : key)
  },
  reasoning_effort: (v, out, ctx, key) => {
    if (typeof v === 'string' && EFFORTS.has(v)) out.output_config = { ...out.output_config, effort: v }
    else unsupported(ctx, key)
  },
  thinking: (v, out) => { out.thinking = v },
  // Server-side context editing, from /v1/messages (its beta header comes with it): sent as it came.
  context_management: (v, out) => { out.context_management = v },
  n: inert,
  presence_penalty: inert,
  frequency_penalty: inert,
  logprobs: inert,
  top_logprobs: inert,
  logit_bias: inert,
  store: inert,
  // Anthropic's own tiers: `auto` (its default: priority capacity when the account has it) and `standard_only`, which is
  // OpenAI's `default` (standard processing; /v1/messages sends `standard_only` as it). flex, priority and scale: unsupported.
  service_tier: (v, out, ctx, key) => {
    if (v === 'default') out.service_tier = 'standard_only'
    else if (v !== 'auto') unsupported(ctx, key)
  },
  modalities: inert,
  seed: refused,
})

// ---------- messages ----------

const TEXT_ROLES: ReadonlySet<string> = new Set(['system', 'developer'])


function textBlock(text: string, part?: Record<string, unknown>): AnthropicBlock {
  return withCacheControl({ type: 'text', text }, part)
}

/** A part's Anthropic `cache_control` (an extension key, from /v1/messages) on its block. */
function withCacheControl(b: AnthropicBlock, part: Record<string, unknown> | undefined): AnthropicBlock {
  if (part?.['cache_control'] !== undefined) b['cache_control'] = part['cache_control']
  return b
}

const DATA_URL = /^data:([^;,]+)((?:;[^;,]+)*);base64,/

/** The only image media types Anthropic takes (base64 images of any other type are a 400). */
const IMAGE_MEDIA_TYPES: ReadonlySet<string> = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp'])

/** The longest header (`data:<media-type>;<params>;base64,`) a data: URL is searched for: the regex overflowed V8's stack on a 10 MB one. */
const DATA_URL_HEAD = 1024

function base64DataUrl(url: string, field: string): { mediaType: string; data: string } {
  const m = DATA_URL.exec(url.length > DATA_URL_HEAD ? url.slice(0, DATA_URL_HEAD) : url)
  if (!m) throw invalid(field, 'a data: URL must be base64-encoded (data:<media-type>;base64,<data>)')
  return { mediaType: m[1]!, data: url.slice(m[0].length) }
}

/** A `data:` URL of plain text (any parameters, e.g. `;charset=utf-8`), base64 or percent-encoded. */
const PLAIN_TEXT_DATA_URL = /^data:text\/plain[;,]/i


function partToBlock(part: ContentPart, path: string, ctx: Ctx): AnthropicBlock | undefined {
  const p = part as Record<string, unknown>
  switch (part.type) {
    case 'text': {
      const text = String(p['text'] ?? '')
      return blank(text) ? undefined : textBlock(text, p)
    }
    case 'image_url': {
      const img = p['image_url'] as { url?: unknown; detail?: unknown } | undefined
      const url = typeof img?.url === 'string' ? img.url : ''
      if (img?.detail !== undefined && img.detail !== 'auto') { unsupported(ctx, `${path}.image_url.detail`) }
      if (url.startsWith('data:')) {
        const field = `${path}.image_url.url`
        const { mediaType, data } = base64DataUrl(url, field)
        // Media types are case-insensitive; Anthropic takes them in lower case only.
        const type = mediaType.toLowerCase()
        if (!IMAGE_MEDIA_TYPES.has(type)) {
          unsupported(ctx, field, `Parameter '${field}' is an image of type ${mediaType}; provider ${ctx.opts.provider} takes image/jpeg, image/png, image/gif and image/webp`)
          return undefined
        }
        return withCacheControl({ type: 'image', source: { type: 'base64', media_type: type, data } }, p)
      }
      if (/^https?:\/\//i.test(url)) return withCacheControl({ type: 'image', source: { type: 'url', url } }, p)
      throw invalid(`${path}.image_url.url`, 'must be a data: URL or an http(s) URL')
    }
    case 'file': {
      const file = p['file'] as { file_data?: unknown; file_id?: unknown; filename?: unknown } | undefined
      const fileData = typeof file?.file_data === 'string' ? file.file_data : undefined
      let b: AnthropicBlock | undefined
      if (fileData?.startsWith('data:application/pdf;')) {
        const { mediaType, data } = base64DataUrl(fileData, `${path}.file.file_data`)
        b = { type: 'document', source: { type: 'base64', media_type: mediaType, data } }
      } else if (fileData !== undefined && PLAIN_TEXT_DATA_URL.test(fileData)) {
        // Anthropic's plain-text document: the text itself, not base64.
        const inline = parseDataUrl(fileData, `${path}.file.file_data`)
        if (inline) b = { type: 'document', source: { type: 'text', media_type: 'text/plain', data: Buffer.from(inline.data, 'base64').toString('utf8') } }
      }
      if (b) {
        if (typeof file!.filename === 'string') b['title'] = file!.filename
        return withCacheControl(b, p)
      }
      unsupported(ctx, file?.file_id !== undefined ? `${path}.file.file_id` : `${path}.file.file_data`)
      return undefined
    }
    default:
      unsupported(ctx, `${path}.type`)
      return undefined
  }
}

function partsToBlocks(content: string | ContentPart[] | null | undefined, path: string, ctx: Ctx): AnthropicBlock[] {
  if (content == null) return []
  if (typeof content === 'string') return blank(content) ? [] : [textBlock(content)]
  const out: AnthropicBlock[] = []
  content.forEach((part, j) => {
    const b = partToBlock(part, `${path}.content[${j}]`, ctx)
    if (b) out.push(b)
  })
  return out
}

function parseArguments(args: string, field: string): unknown {
  if (args.trim() === '') return {}
  let v: unknown
  try { v = JSON.parse(args) } catch { throw invalid(field, 'is not valid JSON') }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalid(field, 'must be a JSON object')
  return v
}

function toolUseBlock(tc: ToolCall, path: string, ctx: Ctx): AnthropicBlock {
  return { type: 'tool_use', id: toolUseId(tc.id, ctx), name: toolCallName(tc, path, ctx.opts.provider), input: parseArguments(tc.function.arguments ?? '', `${path}.function.arguments`) }
}

/** Anthropic's `tool_use.id` and `tool_result.tool_use_id`: "String should match pattern '^[a-zA-Z0-9_-]+$'". */
const TOOL_USE_ID = /^[a-zA-Z0-9_-]+$/

/** The id Anthropic gets for a call (or result) of the history with id `id`. */
function toolUseId(id: string, ctx: Ctx): string {
  return ctx.ids?.get(id) ?? id
}

/**
 * The history's tool call ids that Anthropic refuses (other providers' ids: Kimi's and Moonshot's
 * `functions.get_weather:0`, ids with dots, colons, slashes or pipes), each → an id it takes: its other characters kept,
 * the rest `_` (an empty id is `id`), and `_2`, `_3`, ... added while that is another id of the request. Calls and
 * results are rewritten alike, so each result still answers its call; the answer's calls are Anthropic's own ids.
 */
function toolUseIds(messages: readonly ChatMessage[]): Map<string, string> | undefined {
  const all: string[] = []
  for (const m of messages) {
    if (m?.role === 'assistant') { for (const tc of m.tool_calls ?? []) if (typeof tc?.id === 'string') all.push(tc.id) }
    else if (m?.role === 'tool' && typeof m.tool_call_id === 'string') all.push(m.tool_call_id)
  }
  let ids: Map<string, string> | undefined
  let taken: Set<string> | undefined
  for (const id of all) {
    if (TOOL_USE_ID.test(id) || ids?.has(id)) continue
    taken ??= new Set(all.filter((x) => TOOL_USE_ID.test(x)))
    const base = id.replace(/[^a-zA-Z0-9_-]/g, '_') || 'id'
    let out = base
    for (let n = 2; taken.has(out); n++) out = `${base}_${n}`
    taken.add(out)
    ;(ids ??= new Map()).set(id, out)
  }
  return ids
}

/** A thinking block with Anthropic's fields only (an OpenAI client may have sent more); the strings as they came. */
function thinkingBlock(b: ThinkingBlock, path: string): AnthropicBlock {
  if (b?.type === 'thinking' && typeof b.thinking === 'string' && typeof b.signature === 'string') return { type: 'thinking', thinking: b.thinking, signature: b.signature }
  if (b?.type === 'redacted_thinking' && typeof b.data === 'string') return { type: 'redacted_thinking', data: b.data }
  throw invalid(path, "must be {type: 'thinking', thinking, signature} or {type: 'redacted_thinking', data}")
}

interface Translated {
  system: AnthropicBlock[]; systemIsString: boolean; messages: AnthropicMessageParam[]
  /** A user message that brought no content, by the Anthropic message it went into (judged once all are merged). */
  empty?: Map<AnthropicMessageParam, string>
  /** The function names of the history's tool calls, by id (a tool message's `name` must agree). */
  calls?: Map<string, string>
  /** The ids of the calls of the last assistant turn: a tool result must answer one of them. */
  turnCalls?: Set<string>
}

/** One canonical message → the Anthropic message it contributes (before merging), or system blocks. */
function translateMessage(m: ChatMessage, i: number, ctx: Ctx, t: Translated): void {
  const path = `messages[${i}]`
  // A field Anthropic's messages have no place for (an assistant's `audio`, `annotations`, a participant's `name`; a
  // tool result's name must be its call's, checked below): see shared/message-fields.ts.
  const unread = unreadMessageField(m)
  if (unread !== undefined) unsupported(ctx, `${path}.${unread}`)
  if (TEXT_ROLES.has(m.role)) {
    const c = (m as { content: string | ContentPart[] }).content
    if (typeof c !== 'string') t.systemIsString = false
    // Anthropic's system prompt takes text blocks only (an image or a document there is its own 400, naming `system`).
    let parts = c
    if (Array.isArray(c) && c.some((p) => p?.type !== 'text')) {
      c.forEach((p, j) => { if (p?.type !== 'text') unsupported(ctx, `${path}.content[${j}].type`) })
      parts = c.filter((p) => p?.type === 'text') // dropUnsupportedParams
    }
    t.system.push(...partsToBlocks(parts, path, ctx))
    return
  }
  switch (m.role) {
    case 'user': {
      const content = typeof m.content === 'string' && !blank(m.content) ? m.content : partsToBlocks(m.content, path, ctx)
      push(t.messages, 'user', content)
      if (content.length === 0) { const into = t.messages[t.messages.length - 1]!; if (!(t.empty ??= new Map()).has(into)) t.empty.set(into, `${path}.content`) }
      return
    }
    case 'assistant': {
      const calls = m.tool_calls ?? []
      const refusal = typeof m.refusal === 'string' && m.refusal !== '' ? m.refusal : undefined
      const thinking = Array.isArray(m.thinking_blocks) ? m.thinking_blocks : []
      if (typeof m.content === 'string' && !blank(m.content) && calls.length === 0 && !refusal && thinking.length === 0) {
        if (t.messages[t.messages.length - 1]?.role !== 'assistant') t.turnCalls = new Set()
        push(t.messages, 'assistant', m.content)
        return
      }
      const blocks = thinking.map((b, j) => thinkingBlock(b, `${path}.thinking_blocks[${j}]`))
      // OpenAI's assistant content may hold refusal parts ({type: 'refusal', refusal}): text, like the refusal field.
      const content = Array.isArray(m.content)
        ? (m.content as ContentPart[]).map((p): ContentPart => (p.type === 'refusal' ? { type: 'text', text: String((p as { refusal?: unknown }).refusal ?? '') } : p))
        : m.content
      blocks.push(...partsToBlocks(content, path, ctx))
      if (refusal) blocks.push(textBlock(refusal))
      calls.forEach((tc, j) => {
        const block = toolUseBlock(tc, `${path}.tool_calls[${j}]`, ctx)
        ;(t.calls ??= new Map()).set(tc.id, block['name'] as string)
        blocks.push(block)
      })
      // An assistant turn with nothing in it (or only whitespace) carries nothing, and Anthropic rejects empty content.
      if (blocks.length === 0) return
      // A new assistant turn (consecutive assistant messages are one) brings the calls its tool results answer.
      if (t.messages[t.messages.length - 1]?.role !== 'assistant') t.turnCalls = new Set()
      for (const tc of calls) t.turnCalls!.add(tc.id)
      push(t.messages, 'assistant', blocks)
      return
    }
    case 'tool': {
      // Anthropic takes a tool_result only in the user turn right after the assistant turn with its call ("Each
      // `tool_result` block must have a corresponding `tool_use` block in the previous message").
      const id = m.tool_call_id
      const callName = t.calls?.get(id)
      if (callName === undefined) throw invalid(`${path}.tool_call_id`, `${JSON.stringify(id)} matches no earlier assistant tool call; provider ${ctx.opts.provider} takes a tool result only as the answer to a call`)
      if (!t.turnCalls?.has(id)) {
        throw invalid(`${path}.tool_call_id`, `${JSON.stringify(id)} answers a call of an earlier assistant turn, not of the one right before it; provider ${ctx.opts.provider} takes a tool result only in the turn after its call`)
      }
      // Anthropic's tool_result has no name: a `name` (the legacy way to name the function) must be the call's.
      toolResultName(m, callName, path, ctx.opts.provider)
      const result: AnthropicBlock = { type: 'tool_result', tool_use_id: toolUseId(id, ctx) }
      const content = typeof m.content === 'string' ? (blank(m.content) ? [] : m.content) : partsToBlocks(m.content, path, ctx)
      if (content.length > 0) result['content'] = content
      if ((m as { is_error?: unknown }).is_error === true) result['is_error'] = true
      const cache = (m as { cache_control?: unknown }).cache_control
      if (cache !== undefined) result['cache_control'] = cache
      push(t.messages, 'user', [result])
      return
    }
    default:
      unsupported(ctx, `${path}.role`)
  }
}

function asBlocks(c: string | AnthropicBlock[]): AnthropicBlock[] {
  return typeof c === 'string' ? (blank(c) ? [] : [textBlock(c)]) : c
}

/** Appends, merging consecutive same-role messages as Anthropic requires alternation. */
function push(out: AnthropicMessageParam[], role: 'user' | 'assistant', content: string | AnthropicBlock[]): void {
  const prev = out[out.length - 1]
  if (prev && prev.role === role) {
    prev.content = [...asBlocks(prev.content), ...asBlocks(content)]
    return
  }
  out.push({ role, content })
}

// ---------- tools ----------

const TOOL_CHOICE: Readonly<Record<string, AnthropicBlock>> = table({
  none: { type: 'none' },
  auto: { type: 'auto' },
  required: { type: 'any' },
})

function translateTools(req: ChatRequest, out: AnthropicRequest, ctx: Ctx): void {
  checkToolNames(req, ANTHROPIC_TOOL_NAMES, ctx.opts.provider)
  checkToolSet(req, ctx.opts.provider)
  if (req.tools != null) {
    const tools: AnthropicBlock[] = []
    req.tools.forEach((t: ToolDefinition, i) => {
      if (t.type !== 'function') { unsupported(ctx, `tools[${i}].type`); return }
      const f = t.function
      const tool: AnthropicBlock = { name: f.name }
      if (f.description !== undefined) tool['description'] = f.description
      tool['input_schema'] = f.parameters ?? { type: 'object', properties: {} }
      if (f.strict !== undefined) tool['strict'] = f.strict
      const cache = (t as unknown as Record<string, unknown>)['cache_control']
      if (cache !== undefined) tool['cache_control'] = cache
      tools.push(tool)
    })
    out.tools = tools
  }
  const tc = req.tool_choice
  let choice: AnthropicBlock | undefined
  if (typeof tc === 'string') {
    choice = TOOL_CHOICE[tc]
    if (!choice) unsupported(ctx, 'tool_choice')
  } else if (tc != null) {
    if (tc.type === 'function' && typeof tc.function?.name === 'string') choice = { type: 'tool', name: tc.function.name }
    else unsupported(ctx, 'tool_choice')
  }
  if (req.parallel_tool_calls === false && out.tools !== undefined && choice?.['type'] !== 'none') {
    choice = { ...(choice ?? { type: 'auto' }), disable_parallel_tool_use: true }
  }
  if (choice) out.tool_choice = { ...choice }
}

// ---------- entry point ----------

/**
 * Anthropic wants a turn's tool_result blocks first in the user message that follows the calls, any text after them
 * (otherwise "`tool_use` ids were found without `tool_result` blocks immediately after"). A user message between the
 * calls and their results (merged with the results into one turn) is moved after them, in its order.
 */
function resultsFirst(messages: AnthropicMessageParam[]): void {
  for (const m of messages) {
    if (m.role !== 'user' || typeof m.content === 'string') continue
    const isResult = (b: AnthropicBlock): boolean => b['type'] === 'tool_result'
    const firstOther = m.content.findIndex((b) => !isResult(b))
    if (firstOther === -1 || !m.content.slice(firstOther).some(isResult)) continue
    m.content = [...m.content.filter(isResult), ...m.content.filter((b) => !isResult(b))]
  }
}

/**
 * A last assistant message is a prefill: the answer continues from it. Anthropic refuses one that ends in whitespace
 * (400 "final assistant content cannot end with trailing whitespace"), which OpenAI clients send freely (`"Answer: "`);
 * its trailing whitespace is trimmed, as Anthropic's documentation advises. Whitespace-only text is already left out.
 */
function trimPrefill(messages: AnthropicMessageParam[]): void {
  const last = messages[messages.length - 1]
  if (last?.role !== 'assistant') return
  if (typeof last.content === 'string') { last.content = last.content.trimEnd(); return }
  const block = last.content[last.content.length - 1]
  if (block?.['type'] === 'text' && typeof block['text'] === 'string') last.content[last.content.length - 1] = { ...block, text: block['text'].trimEnd() }
}


export function toAnthropicRequest(client: ChatRequest, model: string, stream: boolean, opts: AnthropicRequestOptions): AnthropicRequest {
  const legacy: Ctx = { opts }
  const req = fromLegacyFunctions(client, { oneCallAtATime: true, namedChoice: true, unsupported: (p) => unsupported(legacy, p) })
  const ctx: Ctx = { opts, ids: toolUseIds(req.messages) }
  const t: Translated = { system: [], systemIsString: true, messages: [] }
  req.messages.forEach((m, i) => translateMessage(m, i, ctx, t))
  resultsFirst(t.messages)
  // A user turn with nothing in it (whitespace-only text is left out): Anthropic refuses it ("all messages must have
  // non-empty content"); merged with other user content (tool results) it carries nothing and is fine.
  if (t.empty) for (const [msg, field] of t.empty) if (msg.content.length === 0) throw invalid(field, `has no content Anthropic takes (text that is not only whitespace, an image or a file); provider ${opts.provider} refuses empty messages`)

  trimPrefill(t.messages)

  const out: AnthropicRequest = {
    model,
    max_tokens: req.max_completion_tokens ?? req.max_tokens ?? opts.defaultMaxTokens,
    messages: t.messages,
  }
  if (t.system.length > 0) {
    const only = t.system[0]!
    out.system = t.systemIsString && t.system.length === 1 && only['cache_control'] === undefined ? String(only['text']) : t.system
  }
  for (const key of Object.keys(req)) {
    const v = req[key]
    if (v === undefined || v === null) continue
    const rule = PARAMS[key]
    if (rule) rule(v, out, ctx, key)
    else unsupported(ctx, key)
  }
  translateTools(req, out, ctx)
  if (stream) out.stream = true
  return out
}

export function toAnthropicChat(req: ChatRequest, model: string, stream: boolean, opts: AnthropicRequestOptions): UpstreamBody {
  return { path: `${opts.basePath}/v1/messages`, body: toAnthropicRequest(req, model, stream, opts) }
}

/** What `POST /v1/messages/count_tokens` takes of a Messages request (it refuses the rest, `max_tokens` included). */
const COUNT_FIELDS = ['model', 'messages', 'system', 'tools', 'tool_choice', 'thinking'] as const

/** Anthropic's token count of a request: the Messages body it would send, cut to what count_tokens takes. */
export function toAnthropicCountTokens(req: ChatRequest, model: string, opts: AnthropicRequestOptions): UpstreamBody {
  const full = toAnthropicRequest(req, model, false, opts) as unknown as Record<string, unknown>
  const body: Record<string, unknown> = {}
  for (const k of COUNT_FIELDS) if (full[k] !== undefined) body[k] = full[k]
  return { path: `${opts.basePath}/v1/messages/count_tokens`, body }
}

/** `{input_tokens}` of a count_tokens answer. */
export function fromAnthropicCountTokens(json: unknown): number {
  const n = json !== null && typeof json === 'object' ? (json as { input_tokens?: unknown }).input_tokens : undefined
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw new Error('count_tokens answered without input_tokens')
  return n
}

/** GET /v1/models, the largest page Anthropic serves (1000), from after `afterId`. */
export function anthropicModelsPath(basePath: string, afterId: string | undefined): string {
  return `${basePath}/v1/models?limit=1000${afterId === undefined ? '' : `&after_id=${encodeURIComponent(afterId)}`}`
}
