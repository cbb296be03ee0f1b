/**
 * Canonical (OpenAI Chat Completions / Embeddings) → Gemini API `generateContent`,
 * `streamGenerateContent?alt=sse`, `embedContent` and `batchEmbedContents` bodies. Pure.
 *
 * - system/developer messages → `systemInstruction`; user/assistant → `contents` (roles user/model),
 *   consecutive turns of one role merged; tool messages → `functionResponse` parts in a user turn
 *   (`response: {error: ...}` for a tool message with the Anthropic extension `is_error`).
 * - Anthropic's `cache_control` on parts and tools (a caching hint) is not sent; `top_k` → `topK`.
 * - Parameters are a table (PARAMS); anything not in it is a 400 MCP_ERR_REQ_PARAM_UNSUPPORTED that
 *   names it, unless the provider sets `dropUnsupportedParams`, in which case it is dropped. Fields without an
 *   equivalent are accepted at OpenAI's default only (shared/inert-defaults.ts).
 * - Reasoning (see applyReasoning): `reasoning_effort` → `thinkingConfig.thinkingBudget` (Gemini 2.x, Google's
 *   OpenAI-compatibility budgets) or `thinkingLevel` (Gemini 3); Anthropic's `thinking` → `thinkingBudget`.
 * - Gemini's int32 fields: a token ceiling above 2^31-1 (`max_tokens`, `max_completion_tokens`, `top_k`, a thinking
 *   budget) is sent as 2^31-1, which is the same ceiling (no model writes, and no vocabulary holds, that many tokens);
 *   a `seed` outside 32 bits is a 400 naming it (another seed would be another answer).
 * - JSON Schemas (tool parameters, `response_format.json_schema`) become Gemini's OpenAPI-subset
 *   `Schema` (see toGeminiSchema for what is kept, converted and dropped).
 */
import { GatewayError } from '../../gateway/errors.ts'
import type { ChatMessage, ChatRequest, ContentPart, EmbeddingRequest, ToolCall, ToolChoice } from '../types.ts'
import type { UpstreamBody } from '../shared/translation.ts'
import type { SafetySetting } from './config.ts'
import { EFFORT_BUDGETS, readThinking } from '../shared/reasoning.ts'
import { checkToolNames, checkToolSet, GEMINI_TOOL_NAMES, toolCallName, toolResultName } from '../shared/tool-names.ts'
import { fromLegacyFunctions } from '../shared/legacy-functions.ts'
import { unreadMessageField } from '../shared/message-fields.ts'
import { isInertDefault } from '../shared/inert-defaults.ts'
import { parseDataUrl } from '../shared/data-url.ts'
import { table } from '../shared/table.ts'

// ---------- Gemini wire types (request side) ----------

export interface GeminiPart {
  text?: string
  thought?: boolean
  thoughtSignature?: string
  inlineData?: { mimeType: string; data: string }
  fileData?: { mimeType: string; fileUri: string }
  functionCall?: { name: string; args?: Record<string, unknown>; id?: string }
  functionResponse?: { name: string; response: Record<string, unknown>; id?: string; parts?: GeminiFunctionResponsePart[] }
}

/** Media in a function response (Gemini 3's multimodal function responses): inline bytes only, Gemini's API takes no file URI there. */
export interface GeminiFunctionResponsePart { inlineData: { mimeType: string; data: string } }

export interface GeminiContent { role?: 'user' | 'model'; parts: GeminiPart[] }

export interface GeminiFunctionDeclaration { name: string; description?: string; parameters?: Record<string, unknown> }

export interface GeminiGenerateRequest {
  contents: GeminiContent[]
  systemInstruction?: GeminiContent
  tools?: { functionDeclarations: GeminiFunctionDeclaration[] }[]
  toolConfig?: { functionCallingConfig: { mode: 'AUTO' | 'ANY' | 'NONE'; allowedFunctionNames?: string[] } }
  generationConfig?: Record<string, unknown>
  safetySettings?: SafetySetting[]
}

export interface GoogleRequestOptions {
  /** Provider name, for error messages. */
  provider: string
  /** Path prefix of the base URL ('' for the Google host). */
  basePath: string
  apiVersion: string
  dropUnsupportedParams: boolean
  safetySettings?: readonly SafetySetting[] | undefined
}

/**
 * Google's OpenAI-compatible endpoint carries Gemini's thought signature on a tool call as
 * `extra_content.google.thought_signature`; we do the same so Gemini 3 tool loops survive the
 * round trip through OpenAI-shaped clients that keep the assistant message as they received it.
 */
export interface GoogleToolCallExtra { extra_content?: { google?: { thought_signature?: string } } }

// ---------- errors ----------

/** The 400 for a parameter Gemini cannot honour, naming the parameter (not its value), as every adapter does. */
function unsupported(provider: string, param: string): GatewayError {
  return new GatewayError('MCP_ERR_REQ_PARAM_UNSUPPORTED', { param, provider }, { param, details: 'request.param_unsupported' })
}

/** The 400 for a malformed request, naming the field (OpenAI clients read it as the error's `param`). */
function invalid(reason: string, param: string): GatewayError {
  return new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason }, { param, details: 'request.body_invalid' })
}

// ---------- paths ----------

/** `gemini-2.5-flash` → `models/gemini-2.5-flash`; `models/x` and `tunedModels/x` are kept. */
export function modelResource(model: string): string {
  const slash = model.indexOf('/')
  if (slash !== -1) {
    const kind = model.slice(0, slash)
    if (kind === 'models' || kind === 'tunedModels') return `${kind}/${encodeURIComponent(model.slice(slash + 1))}`
  }
  return `models/${encodeURIComponent(model)}`
}

/**
 * Google's APIs pretty-print JSON answers unless asked not to (the `prettyPrint` system parameter): two-space
 * indentation and a line per array element, which makes an embedding of 3,072 numbers about 1.7 times as many bytes
 * to receive and parse. Every JSON answer is asked for compact (an SSE stream's events are compact already).
 */
const COMPACT = 'prettyPrint=false'

function methodPath(o: GoogleRequestOptions, model: string, method: string, query = COMPACT): string {
  return `${o.basePath}/${o.apiVersion}/${modelResource(model)}:${method}?${query}`
}

// ---------- parameters (data, not if-chains) ----------

type ParamRule =
  /** Translated by its own code below (messages, tools, ...). */
  | { kind: 'handled' }
  /** Accepted and without effect on Gemini (documented here). */
  | { kind: 'ignore' }
  /** Copied to `generationConfig[key]`, optionally transformed; skipped when `unless` is set. */
  | { kind: 'gen'; key: string; map?: (v: unknown, o: GoogleRequestOptions) => unknown; unless?: string }
  /** Accepted only at OpenAI's default, which is Gemini's behaviour too (shared/inert-defaults.ts); any other value is unsupported. */
  | { kind: 'default' }

/** Gemini takes at most 5 stop sequences (OpenAI 4, Anthropic many): more is a 400 naming `stop`, not Gemini's own. */
const MAX_STOP_SEQUENCES = 5

function stopSequences(v: unknown): unknown {
  const list = typeof v === 'string' ? [v] : v
  if (Array.isArray(list) && list.length > MAX_STOP_SEQUENCES) throw invalid(`stop: Gemini takes at most ${MAX_STOP_SEQUENCES} stop sequences, got ${list.length}`, 'stop')
  return list
}

/** Gemini's integer fields are int32 (a larger value is its 400 "Invalid value at 'generation_config.seed' (TYPE_INT32)"). */
const INT32_MAX = 2 ** 31 - 1

/** A token ceiling beyond int32 is the largest Gemini takes: the same ceiling, as no model gets near it. */
function tokenCeiling(v: unknown): unknown {
  return typeof v === 'number' && v > INT32_MAX ? INT32_MAX : v
}

function int32Seed(v: unknown, o: GoogleRequestOptions): unknown {
  if (typeof v === 'number' && (v > INT32_MAX || v < -INT32_MAX - 1)) {
    throw invalid(`seed: provider ${o.provider} takes a seed between ${-INT32_MAX - 1} and ${INT32_MAX} (Gemini's seed is a 32-bit integer), got ${v}`, 'seed')
  }
  return v
}

const PARAMS: Readonly<Record<string, ParamRule>> = table({
  model: { kind: 'handled' },
  messages: { kind: 'handled' },
  stream: { kind: 'handled' },
  tools: { kind: 'handled' },
  tool_choice: { kind: 'handled' },
  response_format: { kind: 'handled' },
  reasoning_effort: { kind: 'handled' },
  thinking: { kind: 'handled' },
  // Gemini always reports usage on the last stream event; the mapper emits it as a usage chunk.
  stream_options: { kind: 'ignore' },
  // An end-user id for abuse monitoring and stored-completion tags: nothing to send to Gemini.
  user: { kind: 'ignore' },
  safety_identifier: { kind: 'ignore' },
  metadata: { kind: 'ignore' },
  // A prompt-caching hint; Gemini caches implicitly, and the answer does not depend on it.
  prompt_cache_key: { kind: 'ignore' },
  // Anthropic's server-side context editing (from /v1/messages): Gemini edits no context; the model sees it all.
  context_management: { kind: 'ignore' },
  // OpenAI's Predicted Outputs (a speculative-decoding hint): faster on OpenAI, never another answer.
  prediction: { kind: 'ignore' },
  temperature: { kind: 'gen', key: 'temperature' },
  top_p: { kind: 'gen', key: 'topP' },
  top_k: { kind: 'gen', key: 'topK', map: tokenCeiling },
  max_tokens: { kind: 'gen', key: 'maxOutputTokens', unless: 'max_completion_tokens', map: tokenCeiling },
  max_completion_tokens: { kind: 'gen', key: 'maxOutputTokens', map: tokenCeiling },
  n: { kind: 'gen', key: 'candidateCount' },
  stop: { kind: 'gen', key: 'stopSequences', map: stopSequences },
  presence_penalty: { kind: 'gen', key: 'presencePenalty' },
  frequency_penalty: { kind: 'gen', key: 'frequencyPenalty' },
  seed: { kind: 'gen', key: 'seed', map: int32Seed },
  // Gemini may return several function calls at once and has no switch to forbid it.
  parallel_tool_calls: { kind: 'default' },
  logprobs: { kind: 'default' },
  top_logprobs: { kind: 'default' },
  logit_bias: { kind: 'default' },
  store: { kind: 'default' },
  service_tier: { kind: 'default' },
  modalities: { kind: 'default' },
})

const TOOL_MODES: Readonly<Record<string, 'AUTO' | 'ANY' | 'NONE'>> = table({ auto: 'AUTO', none: 'NONE', required: 'ANY' })

// ---------- JSON Schema → Gemini Schema ----------

/**
 * Keys of Gemini's `Schema` (an OpenAPI 3.0 subset). Everything else is dropped, notably
 * `additionalProperties`, `$schema`, `$id`, `$comment`, `patternProperties`, `not`, `if/then/else`,
 * `exclusiveMinimum/Maximum`, `multipleOf`, `uniqueItems`, `contentEncoding`, `strict`, which Gemini
 * rejects with INVALID_ARGUMENT. Converted rather than dropped: local `$ref`s (into `$defs` / `definitions`,
 * or any other JSON pointer into the schema, as zod-to-json-schema writes for a reused schema) are inlined
 * (a recursive reference becomes `{type:'object'}`), `allOf` is merged,
 * `oneOf` becomes `anyOf`, `null` in `type` arrays, `anyOf` or `enum` becomes `nullable: true`, an `enum` that is not
 * all strings (Gemini takes string enums on STRING schemas only) is dropped and its values named in the description, a string
 * `const` becomes a one-value `enum`, `examples[0]` becomes `example`, and a `format` Gemini does
 * not know for the type (it accepts only enum/date-time, int32/int64, float/double) is dropped.
 *
 * Gemini also checks each node's keywords against its type, where JSON Schema lets a keyword of another type pass
 * unused (see finishSchema): an ARRAY needs `items` ("items: missing field"), `properties` and `required` are "only
 * allowed for OBJECT type", `items` only for ARRAY, and a `required` name must be one of the node's `properties`
 * ("required[0]: property is not defined"). So: a node without `type` that has `properties` is an object (with `items`,
 * an array); an array without `items` gets `items: {}` (any element, which is what JSON Schema means by leaving it out;
 * Gemini takes the empty schema, and a made-up element type such as STRING would forbid what the client allows); a
 * tuple (`prefixItems`, or `items` as a list) has the `anyOf` of its element schemas as `items`, its length kept in
 * `minItems`/`maxItems`; the keywords of objects or arrays on a node of another single type are dropped (JSON Schema
 * ignores them there); a `type` list's keywords go to the `anyOf` branch of the type they apply to
 * (`type: ['object', 'string']` with `properties` → `anyOf: [{type: 'object', properties}, {type: 'string'}]`); and
 * `required` names without a property are dropped (nothing is known of them, so the model could not write them).
 */
const SCHEMA_SCALARS: readonly string[] = [
  'title', 'description', 'enum', 'maxItems', 'minItems', 'required', 'minProperties', 'maxProperties',
  'minLength', 'maxLength', 'pattern', 'example', 'propertyOrdering', 'default', 'minimum', 'maximum',
]

const FORMATS: Readonly<Record<string, readonly string[]>> = table({
  string: ['enum', 'date-time'],
  integer: ['int32', 'int64'],
  number: ['float', 'double'],
})

type Json = Record<string, unknown>

function isObj(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

/**
 * The most schema nodes one converted schema may have. Inlining `$ref`s copies a definition wherever it is used, so a
 * chain of definitions each used twice doubles with every link: 2 KB of JSON Schema became 64 MB and 7 s of work
 * (exponential in the chain's length). A schema past this is a 400 naming the field, before anything is sent.
 */
export const MAX_SCHEMA_NODES = 20_000

interface SchemaCtx { root: Json; stack: Set<string>; nodes: number; field: string }

/**
 * The schema a local `$ref` (a JSON pointer into the root: `#/$defs/X`, `#/definitions/X`, and the paths
 * zod-to-json-schema writes for a reused schema, e.g. `#/properties/a`) points to; undefined when it is not one.
 */
function resolveRef(root: Json, ref: string): Json | undefined {
  if (ref === '#') return root
  if (!ref.startsWith('#/')) return undefined
  let node: unknown = root
  for (const raw of ref.slice(2).split('/')) {
    let key: string
    try { key = decodeURIComponent(raw).replaceAll('~1', '/').replaceAll('~0', '~') } catch { return undefined }
    if (Array.isArray(node)) node = node[Number(key)]
    else if (isObj(node) && Object.hasOwn(node, key)) node = node[key]
    else return undefined
  }
  return isObj(node) ? node : undefined
}

function isNullSchema(v: unknown): boolean {
  return isObj(v) && v['type'] === 'null'
}

/**
 * Merges converted schemas into `out` (an `allOf`, or an `anyOf` of one): `properties` and `required` united, any other
 * key kept where `out` has it. One copy of each, whatever the number of schemas merged (a copy per schema was
 * quadratic: 10,000 `allOf` entries took 35 s).
 */
function mergeAll(out: Json, adds: readonly Json[]): void {
  let props: Json | undefined
  let required: Set<unknown> | undefined
  for (const add of adds) {
    for (const [k, v] of Object.entries(add)) {
      if (k === 'properties' && isObj(v) && (props !== undefined || isObj(out['properties']))) {
        props ??= { ...(out['properties'] as Json) }
        Object.assign(props, v)
      } else if (k === 'required' && Array.isArray(v) && (required !== undefined || Array.isArray(out['required']))) {
        required ??= new Set(out['required'] as unknown[])
        for (const x of v) required.add(x)
      } else if (!(k in out)) out[k] = v
    }
  }
  if (props !== undefined) out['properties'] = props
  if (required !== undefined) out['required'] = [...required]
}

/**
 * One JSON Schema node → Gemini's. `partial`: a part of a node being merged (an `allOf` entry, the one branch of an
 * `anyOf`), finished with that node rather than on its own (its `required` may name the node's properties).
 */
function convertSchema(node: unknown, ctx: SchemaCtx, partial = false): Json {
  if (!isObj(node)) return {}
  if (++ctx.nodes > MAX_SCHEMA_NODES) {
    throw invalid(`${ctx.field}: more than ${MAX_SCHEMA_NODES} schema nodes once its $refs are inlined (Gemini takes no $ref, so each use of a definition is a copy of it)`, ctx.field)
  }
  const ref = node['$ref']
  if (typeof ref === 'string') {
    const target = resolveRef(ctx.root, ref)
    const { $ref: _ref, ...rest } = node
    if (target === undefined || ctx.stack.has(ref)) {
      const out: Json = { type: 'object' }
      if (typeof rest['description'] === 'string') out['description'] = rest['description']
      return out
    }
    ctx.stack.add(ref)
    const out = convertSchema({ ...target, ...rest }, ctx, partial)
    ctx.stack.delete(ref)
    return out
  }
  const out: Json = {}
  let nullable = node['nullable'] === true
  /** The types of a `type` list (null left out), when more than one: split into `anyOf` branches by finishSchema. */
  let kinds: string[] | undefined

  const type = node['type']
  if (Array.isArray(type)) {
    const named = type.filter((t): t is string => typeof t === 'string' && t !== 'null')
    if (named.length !== type.length) nullable = true
    if (named.length === 1) out['type'] = named[0]
    else if (named.length > 1) kinds = [...new Set(named)]
  } else if (type === 'null') {
    nullable = true
  } else if (typeof type === 'string') {
    out['type'] = type
  }

  const variants = node['anyOf'] ?? node['oneOf']
  if (Array.isArray(variants)) {
    const kept = variants.filter((v) => !isNullSchema(v))
    if (kept.length !== variants.length) nullable = true
    if (kept.length === 1) mergeAll(out, [convertSchema(kept[0], ctx, true)])
    else if (kept.length > 1) out['anyOf'] = kept.map((v) => convertSchema(v, ctx))
  }

  if (isObj(node['properties'])) {
    const props: Json = {}
    for (const [k, v] of Object.entries(node['properties'])) props[k] = convertSchema(v, ctx)
    out['properties'] = props
  }
  const items = node['items']
  if (Array.isArray(items)) out['items'] = tupleItems(items, ctx)
  else if (items !== undefined) out['items'] = convertSchema(items, ctx)
  else if (Array.isArray(node['prefixItems'])) out['items'] = tupleItems(node['prefixItems'], ctx)

  for (const k of SCHEMA_SCALARS) if (node[k] !== undefined && !(k in out)) out[k] = node[k]
  if (Array.isArray(out['enum']) && out['enum'].includes(null)) {
    out['enum'] = out['enum'].filter((v) => v !== null)
    nullable = true
  }
  // Gemini's `enum` is a list of strings, allowed on STRING schemas only: an enum of other values (a request with one is
  // a 400, "Invalid value ... (TYPE_STRING)") is dropped and its values named in the description instead.
  if (Array.isArray(out['enum'])) {
    const values: unknown[] = out['enum']
    if (values.every((v) => typeof v === 'string')) {
      if (out['type'] === undefined && kinds === undefined) out['type'] = 'string'
    } else {
      delete out['enum']
      const list = values.map((v) => JSON.stringify(v)).join(', ')
      out['description'] = typeof out['description'] === 'string' ? `${out['description']} (one of: ${list})` : `One of: ${list}`
    }
  }
  if (typeof node['const'] === 'string' && out['enum'] === undefined) {
    out['enum'] = [node['const']]
    if (out['type'] === undefined && kinds === undefined) out['type'] = 'string'
  }
  if (out['example'] === undefined && Array.isArray(node['examples']) && node['examples'].length > 0) out['example'] = node['examples'][0]
  const format = node['format']
  if (typeof format === 'string' && typeof out['type'] === 'string' && FORMATS[out['type']]?.includes(format)) out['format'] = format

  if (Array.isArray(node['allOf'])) mergeAll(out, node['allOf'].map((sub) => convertSchema(sub, ctx, true)))
  if (nullable) out['nullable'] = true
  if (!partial) finishSchema(out, kinds, format)
  else if (kinds !== undefined && out['type'] === undefined) out['anyOf'] ??= kinds.map((t) => ({ type: t }))
  return out
}

/** A tuple's element schemas (`prefixItems`, or `items` as a list) → one `items` schema: the one, or the `anyOf` of them. */
function tupleItems(list: readonly unknown[], ctx: SchemaCtx): Json {
  const seen = new Map<string, Json>()
  for (const s of list) {
    const c = convertSchema(s, ctx)
    seen.set(JSON.stringify(c), c)
  }
  const distinct = [...seen.values()]
  if (distinct.length === 0 || distinct.some((c) => Object.keys(c).length === 0)) return {}
  return distinct.length === 1 ? distinct[0]! : { anyOf: distinct }
}

/** The keywords that apply to one JSON type only: Gemini refuses them on a node of another type (see toGeminiSchema). */
const OBJECT_KEYWORDS: readonly string[] = ['properties', 'required', 'minProperties', 'maxProperties', 'propertyOrdering']
const ARRAY_KEYWORDS: readonly string[] = ['items', 'minItems', 'maxItems']
const KEYWORDS_BY_TYPE: Readonly<Record<string, readonly string[]>> = table({
  object: OBJECT_KEYWORDS,
  array: ARRAY_KEYWORDS,
  string: ['minLength', 'maxLength', 'pattern', 'enum'],
  number: ['minimum', 'maximum'],
  integer: ['minimum', 'maximum'],
})

/**
 * Makes a converted node one Gemini takes, keeping its meaning (see toGeminiSchema): a type inferred from `properties`
 * or `items`, a `type` list (`kinds`) split into `anyOf` branches each with its own keywords, `items: {}` on an array
 * without, object and array keywords off nodes of another type, `required` cut to the node's properties.
 */
function finishSchema(out: Json, kinds: string[] | undefined, format: unknown): void {
  if (out['type'] === undefined && kinds === undefined) {
    const object = isObj(out['properties'])
    const array = out['items'] !== undefined
    if (object && array) kinds = ['object', 'array']
    else if (object) out['type'] = 'object'
    else if (array) out['type'] = 'array'
  }
  if (kinds !== undefined && out['type'] === undefined) {
    // A node with both a `type` list and an `anyOf` keeps the `anyOf` (the type list is the looser of the two).
    if (out['anyOf'] === undefined) {
      out['anyOf'] = kinds.map((t) => {
        const branch: Json = { type: t }
        for (const k of KEYWORDS_BY_TYPE[t] ?? []) if (out[k] !== undefined) branch[k] = out[k]
        if (typeof format === 'string' && FORMATS[t]?.includes(format)) branch['format'] = format
        finishSchema(branch, undefined, undefined)
        return branch
      })
    }
    for (const t of kinds) for (const k of KEYWORDS_BY_TYPE[t] ?? []) delete out[k]
  }
  const t = out['type']
  if (t !== 'object') for (const k of OBJECT_KEYWORDS) delete out[k]
  if (t !== 'array') for (const k of ARRAY_KEYWORDS) delete out[k]
  if (t === 'array' && out['items'] === undefined) out['items'] = {}
  if (t === 'object' && Array.isArray(out['required'])) {
    const props = isObj(out['properties']) ? out['properties'] : {}
    const known = out['required'].filter((name) => typeof name === 'string' && Object.hasOwn(props, name))
    if (known.length > 0) out['required'] = known
    else delete out['required']
  }
}

/** A JSON Schema (as OpenAI tools and response formats carry it, at `field`) → Gemini's `Schema`. */
export function toGeminiSchema(schema: Record<string, unknown>, field = 'schema'): Record<string, unknown> {
  return convertSchema(schema, { root: schema, stack: new Set(), nodes: 0, field })
}

// ---------- content ----------

const MIME_BY_EXT: Readonly<Record<string, string>> = table({
  png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', webp: 'image/webp',
  heic: 'image/heic', heif: 'image/heif', pdf: 'application/pdf', txt: 'text/plain',
  mp3: 'audio/mp3', wav: 'audio/wav', ogg: 'audio/ogg', flac: 'audio/flac', aac: 'audio/aac',
  mp4: 'video/mp4', mov: 'video/mov', webm: 'video/webm', mpeg: 'video/mpeg',
})

/** Guesses a MIME type from a URL's file extension; `fallback` when there is none we know. */
export function guessMimeType(url: string, fallback: string): string {
  let path = url
  try { path = new URL(url).pathname } catch { /* not a URL: use it as is */ }
  const dot = path.lastIndexOf('.')
  if (dot === -1 || dot < path.lastIndexOf('/')) return fallback
  return MIME_BY_EXT[path.slice(dot + 1).toLowerCase()] ?? fallback
}

/** The texts of a content; with `refusals`, an assistant's refusal parts too (what it said, as text). */
function textOf(content: string | readonly { type: string; text?: unknown; refusal?: unknown }[] | null | undefined, refusals = false): string[] {
  if (content === null || content === undefined) return []
  if (typeof content === 'string') return [content]
  const out: string[] = []
  for (const p of content) {
    if (p.type === 'text' && typeof p.text === 'string') out.push(p.text)
    else if (refusals && p.type === 'refusal' && typeof p.refusal === 'string') out.push(p.refusal)
  }
  return out
}

/**
 * A system or developer message's parts are text only (Gemini's `systemInstruction` carries text): another part is a
 * 400 naming it (`messages[0].content[1].image_url`), or dropped with `dropUnsupportedParams`.
 */
function checkTextOnly(content: unknown, where: string, o: GoogleRequestOptions): void {
  if (!Array.isArray(content) || o.dropUnsupportedParams) return
  content.forEach((p: { type?: unknown }, j) => { if (p?.type !== 'text') throw unsupported(o.provider, `${where}.content[${j}].${String(p?.type)}`) })
}

const AUDIO_MIME: Readonly<Record<string, string>> = table({ wav: 'audio/wav', mp3: 'audio/mp3' })

/**
 * A tool message's media, for its `functionResponse.parts` (Gemini 3 reads images and PDFs a tool returns as it reads a
 * user's): an image or a file as a `data:` URL, inline. An image by http(s) URL is a 400 naming its `image_url.url`
 * (a function response takes no file URI on Gemini's API, and the gateway does not fetch URLs); any other part a
 * 400 naming it. Either is dropped with `dropUnsupportedParams`. Text parts are the response's text (toolResponse).
 */
function toolMedia(content: unknown, where: string, o: GoogleRequestOptions): GeminiFunctionResponsePart[] | undefined {
  if (!Array.isArray(content)) return undefined
  let out: GeminiFunctionResponsePart[] | undefined
  const skip = (param: string): void => { if (!o.dropUnsupportedParams) throw unsupported(o.provider, param) }
  content.forEach((part: unknown, j) => {
    const p = isObj(part) ? part : {}
    const at = `${where}.content[${j}]`
    switch (p['type']) {
      case 'text': return
      case 'image_url': {
        const image = p['image_url']
        const url = isObj(image) ? image['url'] : undefined
        if (typeof url !== 'string') throw invalid(`${at}.image_url.url must be a string`, `${at}.image_url.url`)
        const detail = isObj(image) ? image['detail'] : undefined
        if (detail != null && detail !== 'auto') skip(`${at}.image_url.detail`)
        const inline = parseDataUrl(url, `${at}.image_url.url`)
        if (inline) (out ??= []).push({ inlineData: inline })
        else skip(`${at}.image_url.url`)
        return
      }
      case 'file': {
        const file = p['file']
        const inline = isObj(file) && typeof file['file_data'] === 'string' ? parseDataUrl(file['file_data'], `${at}.file.file_data`) : undefined
        if (inline) (out ??= []).push({ inlineData: inline })
        else skip(`${at}.file`)
        return
      }
      default:
        skip(`${at}.${String(p['type'])}`)
    }
  })
  return out
}

/** One content part; undefined when it is unsupported and `dropUnsupportedParams` drops it. */
function userPart(part: ContentPart, where: string, o: GoogleRequestOptions): GeminiPart | undefined {
  const p = part as Json
  const provider = o.provider
  const skip = (param: string): undefined => { if (o.dropUnsupportedParams) return undefined; throw unsupported(provider, param) }
  switch (part.type) {
    case 'text':
      if (typeof p['text'] !== 'string') throw invalid(`${where}.text must be a string`, `${where}.text`)
      return { text: p['text'] }
    case 'image_url': {
      const image = p['image_url']
      const url = isObj(image) ? image['url'] : undefined
      if (typeof url !== 'string') throw invalid(`${where}.image_url.url must be a string`, `${where}.image_url.url`)
      // `detail` low|high picks the resolution the model sees; Gemini's parts have no such setting (auto is the default).
      const detail = isObj(image) ? image['detail'] : undefined
      if (detail != null && detail !== 'auto') skip(`${where}.image_url.detail`) // when dropping, the image goes without it
      const inline = parseDataUrl(url, `${where}.image_url.url`)
      if (inline) return { inlineData: inline }
      return { fileData: { fileUri: url, mimeType: guessMimeType(url, 'image/jpeg') } }
    }
    case 'input_audio': {
      const audio = p['input_audio']
      const mime = isObj(audio) && typeof audio['format'] === 'string' ? AUDIO_MIME[audio['format']] : undefined
      if (!isObj(audio) || typeof audio['data'] !== 'string' || mime === undefined) return skip(`${where}.input_audio`)
      return { inlineData: { mimeType: mime, data: audio['data'] } }
    }
    case 'file': {
      const file = p['file']
      const inline = isObj(file) && typeof file['file_data'] === 'string' ? parseDataUrl(file['file_data'], `${where}.file.file_data`) : undefined
      if (!inline) return skip(`${where}.file`)
      return { inlineData: inline }
    }
    default:
      return skip(`${where}.${part.type}`)
  }
}

function parseArgs(args: string, where: string): Record<string, unknown> {
  if (args.trim() === '') return {}
  let v: unknown
  try { v = JSON.parse(args) } catch { throw invalid(`${where}.function.arguments is not valid JSON`, `${where}.function.arguments`) }
  if (!isObj(v)) throw invalid(`${where}.function.arguments must be a JSON object`, `${where}.function.arguments`)
  return v
}

/** A tool result → `functionResponse.response`: the JSON object itself, or `{content: text}`. */
export function toolResponse(text: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(text)
    if (isObj(v)) return v
  } catch { /* not JSON */ }
  return { content: text }
}

/** A failed tool call's result → the `error` of `functionResponse.response`: the JSON object itself, or the text. */
function toolError(text: string): unknown {
  const v = toolResponse(text)
  return v['content'] === text && Object.keys(v).length === 1 ? text : v
}

/**
 * What Gemini's documentation gives as the thought signature of a function call that has none (a history from another
 * model or provider, an Anthropic client that cannot carry Google's signature, a compacted trace): Gemini 3 refuses a
 * function call without one (400), and this value tells it to skip the check. A real signature is always sent as it came.
 */
export const SKIP_SIGNATURE = 'skip_thought_signature_validator'

/** Gemini 3 and later validate thought signatures on function calls; 1.x and 2.x do not (and may reject a foreign one). */
export function validatesSignatures(model: string): boolean {
  const m = /^(?:models\/)?gemini-(\d+)(?:[.-]|$)/.exec(model)
  return m !== null && Number(m[1]) >= 3
}

function toContents(messages: readonly ChatMessage[], o: GoogleRequestOptions, model = ''): Pick<GeminiGenerateRequest, 'contents' | 'systemInstruction'> {
  const strict = validatesSignatures(model)
  const system: GeminiPart[] = []
  const contents: GeminiContent[] = []
  const toolNames = new Map<string, string>()
  /** A user message that brought nothing (empty text, or only parts dropped), by the turn it went into. */
  const empty = new Map<GeminiContent, string>()
  const push = (role: 'user' | 'model', parts: GeminiPart[], emptyField?: string): void => {
    const last = contents[contents.length - 1]
    if (last && last.role === role) last.parts.push(...parts)
    else if (parts.length > 0 || emptyField !== undefined) contents.push({ role, parts })
    if (parts.length === 0 && emptyField !== undefined) {
      const into = contents[contents.length - 1]!
      if (!empty.has(into)) empty.set(into, emptyField)
    }
  }
  messages.forEach((m, i) => {
    const where = `messages[${i}]`
    // A field Gemini's contents have no place for (an assistant's `audio`, `annotations`, a participant's `name`; a tool
    // result's is the call's, which Gemini gets): see shared/message-fields.ts.
    const unread = unreadMessageField(m)
    if (unread !== undefined && !o.dropUnsupportedParams) throw unsupported(o.provider, `${where}.${unread}`)
    switch (m.role) {
      case 'system':
      case 'developer':
        checkTextOnly(m.content, where, o)
        for (const t of textOf(m.content)) if (t !== '') system.push({ text: t })
        break
      case 'user': {
        const c = m.content as unknown
        if (typeof c !== 'string' && !Array.isArray(c)) throw invalid(`${where}.content must be a string or an array of parts`, `${where}.content`)
        const parts: (GeminiPart | undefined)[] = typeof c === 'string' ? [{ text: c }] : (c as ContentPart[]).map((p, j) => userPart(p, `${where}.content[${j}]`, o))
        // Gemini rejects empty text parts ("empty text parameter"). A message left with nothing is judged with its turn.
        push('user', parts.filter((p): p is GeminiPart => p !== undefined && p.text !== ''), `${where}.content`)
        break
      }
      case 'assistant': {
        const parts: GeminiPart[] = []
        // A refusal (refusal parts, the `refusal` field) is what the assistant said: its text, as anthropic sends it.
        // Any other part (an image, audio or a file) goes into the model turn as a user's part would: Gemini's model
        // content takes inline and file data (its image models answer with it); a type Gemini has no part for is a 400.
        if (Array.isArray(m.content)) {
          (m.content as ContentPart[]).forEach((p, j) => {
            if (p.type === 'text' || p.type === 'refusal') {
              for (const t of textOf([p], true)) if (t !== '') parts.push({ text: t })
              return
            }
            const part = userPart(p, `${where}.content[${j}]`, o)
            if (part) parts.push(part)
          })
        } else {
          for (const t of textOf(m.content)) if (t !== '') parts.push({ text: t })
        }
        if (typeof m.refusal === 'string' && m.refusal !== '') parts.push({ text: m.refusal })
        m.tool_calls?.forEach((tc: ToolCall & GoogleToolCallExtra, j) => {
          const name = toolCallName(tc, `${where}.tool_calls[${j}]`, o.provider)
          toolNames.set(tc.id, name)
          const part: GeminiPart = { functionCall: { name, args: parseArgs(tc.function.arguments ?? '', `${where}.tool_calls[${j}]`) } }
          const sig = tc.extra_content?.google?.thought_signature
          if (typeof sig === 'string' && sig !== '') part.thoughtSignature = sig
          parts.push(part)
        })
        // Of parallel calls only the first carries a signature (as Gemini sends them): one without any gets the skip value.
        if (strict) {
          const calls = parts.filter((p) => p.functionCall !== undefined)
          if (calls.length > 0 && !calls.some((p) => p.thoughtSignature !== undefined)) calls[0]!.thoughtSignature = SKIP_SIGNATURE
        }
        push('model', parts)
        break
      }
      case 'tool': {
        const name = toolNames.get(m.tool_call_id)
        if (name === undefined) throw invalid(`${where}.tool_call_id '${m.tool_call_id}' matches no earlier assistant tool call`, `${where}.tool_call_id`)
        // A `name` (the legacy way to name the function) must be the call's, which Gemini gets.
        toolResultName(m, name, where, o.provider)
        const media = toolMedia(m.content, where, o)
        // Text parts are separate pieces (a tool's lines, an Anthropic tool_result's blocks): one line break between them,
        // as the ollama translation joins them, never glued into one word.
        const text = textOf(m.content).filter((x) => x !== '').join('\n')
        // A failed call (`is_error`, from Anthropic's tool_result): Gemini reads the response's `error` key as the failure.
        const isError = (m as { is_error?: unknown }).is_error === true
        const response: GeminiPart['functionResponse'] = { name, response: isError ? { error: toolError(text) } : toolResponse(text) }
        if (media) response.parts = media
        push('user', [{ functionResponse: response }])
        break
      }
      default:
        // The deprecated `function` role (the schema admits no other).
        throw unsupported(o.provider, `${where}.role`)
    }
  })
  // Empty texts are dropped (Gemini refuses them): a conversation left with no turn at all is Gemini's 400 "contents is
  // not specified", so it is ours, naming the last message that brought nothing.
  if (contents.every((c) => c.parts.length === 0)) {
    const last = messages.findLastIndex((m) => m.role !== 'system' && m.role !== 'developer')
    const field = last < 0 ? 'messages' : `messages[${last}].content`
    throw invalid(`${field}: no message has content Gemini takes (text that is not empty, an image, a file or a tool call); provider ${o.provider} refuses a conversation without any`, field)
  }
  // A user turn left with nothing (Gemini refuses empty parts): dropping it would leave the turns around it as they are
  // not (the model's answer last, read as the turn to continue; two model turns run together), so it is a 400 naming the
  // message, as the anthropic translation answers. Merged with content of its own turn (tool results, text) it is fine.
  for (const [turn, field] of empty) {
    if (turn.parts.length === 0) throw invalid(`${field}: has no content Gemini takes (text that is not empty, an image, a file or a tool call); provider ${o.provider} refuses an empty turn`, field)
  }
  const out: Pick<GeminiGenerateRequest, 'contents' | 'systemInstruction'> = { contents }
  if (system.length > 0) out.systemInstruction = { parts: system }
  return out
}

// ---------- tools, tool choice, response format ----------

function toTools(req: ChatRequest, o: GoogleRequestOptions): GeminiGenerateRequest['tools'] {
  // Gemini's function names: a letter or an underscore first, then letters, digits, '_', '.', ':', '-'; at most 64.
  checkToolNames(req, GEMINI_TOOL_NAMES, o.provider)
  checkToolSet(req, o.provider)
  if (!req.tools || req.tools.length === 0) return undefined
  const decls: GeminiFunctionDeclaration[] = []
  req.tools.forEach((t, i) => {
    if (t.type !== 'function' || !isObj(t.function)) {
      if (o.dropUnsupportedParams) return
      throw unsupported(o.provider, `tools[${i}].type`)
    }
    const d: GeminiFunctionDeclaration = { name: t.function.name }
    if (t.function.description !== undefined) d.description = t.function.description
    if (t.function.parameters) {
      const params = toGeminiSchema(t.function.parameters, `tools[${i}].function.parameters`)
      // Gemini rejects an OBJECT schema without properties: a function without arguments has none.
      const empty = params['type'] === 'object' && (!isObj(params['properties']) || Object.keys(params['properties']).length === 0)
      if (!empty) d.parameters = params
    }
    decls.push(d)
  })
  return decls.length === 0 ? undefined : [{ functionDeclarations: decls }]
}

function toToolConfig(choice: ToolChoice, o: GoogleRequestOptions): GeminiGenerateRequest['toolConfig'] | null {
  if (typeof choice === 'string') {
    const mode = TOOL_MODES[choice]
    if (mode !== undefined) return { functionCallingConfig: { mode } }
  } else if (isObj(choice) && choice.type === 'function' && isObj(choice.function) && typeof choice.function.name === 'string') {
    return { functionCallingConfig: { mode: 'ANY', allowedFunctionNames: [choice.function.name] } }
  }
  if (o.dropUnsupportedParams) return null
  throw unsupported(o.provider, 'tool_choice')
}

function applyResponseFormat(rf: ChatRequest['response_format'], gen: Json, o: GoogleRequestOptions): void {
  if (!rf || rf.type === 'text') return
  if (rf.type === 'json_object') { gen['responseMimeType'] = 'application/json'; return }
  if (rf.type === 'json_schema') {
    gen['responseMimeType'] = 'application/json'
    const schema = rf.json_schema?.schema
    if (schema) gen['responseSchema'] = toGeminiSchema(schema, 'response_format.json_schema.schema')
    return
  }
  if (!o.dropUnsupportedParams) throw unsupported(o.provider, 'response_format')
}

// ---------- reasoning ----------

/** Gemini 3 and later: thinking is set by level (budgets are still accepted), is dynamic by default and cannot be turned off. */
function thinksByLevel(model: string): boolean {
  return validatesSignatures(model)
}

/** `reasoning_effort` → `thinkingConfig`, per model generation; undefined when Gemini has no equivalent. */
const EFFORT_CONFIG: Readonly<Record<'budget' | 'level', Readonly<Record<string, Json>>>> = {
  budget: {
    none: { thinkingBudget: 0 },
    low: { thinkingBudget: EFFORT_BUDGETS.low },
    medium: { thinkingBudget: EFFORT_BUDGETS.medium },
    high: { thinkingBudget: EFFORT_BUDGETS.high },
  },
  level: {
    minimal: { thinkingLevel: 'minimal' },
    low: { thinkingLevel: 'low' },
    medium: { thinkingLevel: 'medium' },
    high: { thinkingLevel: 'high' },
  },
}

/**
 * `reasoning_effort` (which wins when both are set) or Anthropic's `thinking` → `generationConfig.thinkingConfig`.
 * Thoughts are not requested (`includeThoughts`): the canonical answer has no place for them.
 * - reasoning_effort: Gemini 2.x none/low/medium/high → thinkingBudget 0/1024/8192/24576 (what Google's OpenAI-compatible
 *   endpoint documents); Gemini 3 minimal/low/medium/high → thinkingLevel. Other values are unsupported.
 * - thinking enabled → thinkingBudget = budget_tokens (Gemini 3 accepts budgets too); adaptive → -1 (dynamic) and
 *   disabled → 0 on Gemini 2.x; on Gemini 3, which thinks dynamically by default and cannot stop, nothing is sent.
 */
function applyReasoning(req: ChatRequest, model: string, gen: Json, o: GoogleRequestOptions): void {
  const byLevel = thinksByLevel(model)
  const effort = req.reasoning_effort
  if (effort !== undefined && effort !== null) {
    const table = EFFORT_CONFIG[byLevel ? 'level' : 'budget']
    const config = typeof effort === 'string' && Object.hasOwn(table, effort) ? table[effort] : undefined
    if (config) gen['thinkingConfig'] = { ...config }
    else if (!o.dropUnsupportedParams) throw unsupported(o.provider, 'reasoning_effort')
    return
  }
  if (req['thinking'] === undefined || req['thinking'] === null) return
  const t = readThinking(req['thinking'])
  if (t.type === 'enabled') gen['thinkingConfig'] = { thinkingBudget: tokenCeiling(t.budget) }
  else if (!byLevel) gen['thinkingConfig'] = { thinkingBudget: t.type === 'adaptive' ? -1 : 0 }
}

// ---------- chat ----------

export function toGoogleChat(client: ChatRequest, model: string, stream: boolean, o: GoogleRequestOptions): UpstreamBody {
  if (!Array.isArray(client.messages)) throw invalid("'messages' must be an array", 'messages')
  const req = fromLegacyFunctions(client, { oneCallAtATime: false, namedChoice: true, unsupported: (p) => { if (!o.dropUnsupportedParams) throw unsupported(o.provider, p) } })
  const gen: Json = {}
  for (const [key, value] of Object.entries(req)) {
    if (value === null || value === undefined) continue
    const rule = PARAMS[key]
    if (rule === undefined) {
      if (o.dropUnsupportedParams) continue
      throw unsupported(o.provider, key)
    }
    switch (rule.kind) {
      case 'gen':
        if (rule.unless !== undefined && req[rule.unless] !== null && req[rule.unless] !== undefined) break
        gen[rule.key] = rule.map ? rule.map(value, o) : value
        break
      case 'default':
        if (!isInertDefault(key, value) && !o.dropUnsupportedParams) throw unsupported(o.provider, key)
        break
      default:
        break
    }
  }
  const body: GeminiGenerateRequest = toContents(req.messages, o, model)
  const tools = toTools(req, o)
  if (tools) body.tools = tools
  if (req.tool_choice !== undefined && req.tool_choice !== null) {
    const tc = toToolConfig(req.tool_choice, o)
    if (tc) body.toolConfig = tc
  }
  applyResponseFormat(req.response_format, gen, o)
  if (req.reasoning_effort != null || req['thinking'] != null) applyReasoning(req, model, gen, o)
  if (Object.keys(gen).length > 0) body.generationConfig = gen
  if (o.safetySettings && o.safetySettings.length > 0) body.safetySettings = [...o.safetySettings]
  return { path: stream ? methodPath(o, model, 'streamGenerateContent', 'alt=sse') : methodPath(o, model, 'generateContent'), body }
}

// ---------- embeddings ----------

const EMBEDDING_PARAMS: Readonly<Record<string, 'handled' | 'ignore'>> = table({
  model: 'handled', input: 'handled', dimensions: 'handled',
  // Gemini always answers floats; base64 is encoded by the gateway (response.ts, finishEmbeddings).
  encoding_format: 'handled',
  user: 'ignore',
})

/** The texts of an embeddings request; token-id inputs have no Gemini equivalent. */
export function embeddingTexts(req: EmbeddingRequest, provider: string): string[] {
  const input = req.input
  if (typeof input === 'string') return [input]
  if (!Array.isArray(input) || input.length === 0) throw invalid("'input' must be a string or a non-empty array of strings", 'input')
  if (!input.every((v): v is string => typeof v === 'string')) throw unsupported(provider, 'input')
  return input
}

export function toGoogleEmbeddings(req: EmbeddingRequest, model: string, o: GoogleRequestOptions): UpstreamBody {
  for (const [key, value] of Object.entries(req)) {
    if (value === null || value === undefined || EMBEDDING_PARAMS[key] !== undefined || o.dropUnsupportedParams) continue
    throw unsupported(o.provider, key)
  }
  if (req.encoding_format !== undefined && req.encoding_format !== 'float' && req.encoding_format !== 'base64' && !o.dropUnsupportedParams) {
    throw unsupported(o.provider, 'encoding_format')
  }
  const texts = embeddingTexts(req, o.provider)
  const resource = modelResource(model)
  const one = (text: string): Json => {
    const r: Json = { model: resource, content: { parts: [{ text }] } }
    if (typeof req.dimensions === 'number') r['outputDimensionality'] = req.dimensions
    return r
  }
  if (texts.length === 1) return { path: methodPath(o, model, 'embedContent'), body: one(texts[0]!) }
  return { path: methodPath(o, model, 'batchEmbedContents'), body: { requests: texts.map(one) } }
}

/** GET /{apiVersion}/models, the largest page Gemini serves (1000), at `pageToken`. */
export function googleModelsPath(o: Pick<GoogleRequestOptions, 'basePath' | 'apiVersion'>, pageToken: string | undefined): string {
  return `${o.basePath}/${o.apiVersion}/models?pageSize=1000&${COMPACT}${pageToken === undefined ? '' : `&pageToken=${encodeURIComponent(pageToken)}`}`
}
