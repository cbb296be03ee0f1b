/**
 * Gemini API wire-format mock (node:http only) on 127.0.0.1, for the `google` adapter's tests.
 *
 * Endpoints ({v} = v1 | v1beta | v1alpha):
 *   POST /{v}/models/{m}:generateContent                GenerateContentResponse
 *   POST /{v}/models/{m}:streamGenerateContent?alt=sse  SSE, one GenerateContentResponse per `data:`
 *        (without alt=sse: the JSON array of the same objects, as Google sends it)
 *   POST /{v}/models/{m}:embedContent                   {embedding:{values}}; 8 floats or outputDimensionality
 *   POST /{v}/models/{m}:batchEmbedContents             {embeddings:[{values}]}; each request's model must be models/{m};
 *        at most 100 requests (Google's limit: more is a 400 INVALID_ARGUMENT)
 *   GET  /{v}/models (pageSize, pageToken; nextPageToken; `maxPageSize` caps a page), GET /{v}/models/{m}
 * JSON bodies (answers and errors) are pretty-printed with two-space indentation, as Google's APIs answer by default,
 * unless the query has `prettyPrint=false` (or `$prettyPrint=false`, the system parameter's other spelling).
 * Errors in Google's shape `{error:{code, message, status, details?}}`. The key must come in
 * `x-goog-api-key`: missing → 403 PERMISSION_DENIED; not `opts.apiKey` → 400 INVALID_ARGUMENT
 * (ErrorInfo API_KEY_INVALID); stricter than Google, a `key=` query parameter → 400, since the gateway
 * must never put the key in a URL. Bodies are checked like Google does: unknown top-level fields,
 * empty `contents` / `parts`, JSON-Schema keys Gemini's `Schema` does not know (additionalProperties,
 * $schema, ...), OBJECT parameters without properties, keywords of another type than the node's (an ARRAY without `items`:
 * "items: missing field"; `properties` or `required` on a node that is not an OBJECT: "only allowed for OBJECT type"; `items`
 * on one that is not an ARRAY), a `required` name that is not one of the node's properties ("required[0]: property is not
 * defined"), two function declarations of one name ("Duplicate function declaration found: <name>"), an
 * `allowedFunctionNames` entry that is no declared function (the mock's words), and a function name Gemini refuses (a letter or an underscore first;
 * letters, digits, '_', '.', ':', '-'; at most 64) → 400 INVALID_ARGUMENT; an int32 field of generationConfig
 * (maxOutputTokens, seed, candidateCount, topK, thinkingConfig.thinkingBudget) that is not an integer of 32 bits → 400
 * "Invalid value at 'generation_config.seed' (TYPE_INT32), 3000000000", as Google answers.
 *
 * Deterministic replies, from the last `contents` turn:
 *   - its last part is a functionResponse  → "tool result: <response.content, or the response JSON>"
 *   - a text part contains "blocked"        → prompt blocked: promptFeedback.blockReason SAFETY, no candidates
 *   - last text starts with "echo "         → "echo: <rest>"
 *   - tools declared, mode not NONE, last text contains "call tool"
 *                                           → functionCall of the first (or first allowed) function, args {"city":"Paris"}
 *   - otherwise "tok0 tok1 ... tok{N-1}", N = header `x-mock-tokens` (default 12), capped by
 *     generationConfig.maxOutputTokens (then finishReason MAX_TOKENS).
 *   candidateCount n → n identical candidates. promptTokenCount = ceil(chars of all text / 4), min 1;
 *   candidatesTokenCount = number of pieces (function call: ceil((name + args JSON) / 4)).
 *   Thinking (generationConfig.thinkingConfig): a thinkingBudget other than 0, or a thinkingLevel, adds
 *   usageMetadata.thoughtsTokenCount = THOUGHT_TOKENS (in totalTokenCount, not in candidatesTokenCount, as Google
 *   counts them); both set → 400, and thinkingLevel on a model before Gemini 3 → 400, as Google answers.
 *   Streaming: one event per piece ("tok0", " tok1", ...; a function call is one event), then a
 *   final event with an empty text part, the finishReason and the full usageMetadata (earlier
 *   events carry the prompt count only, as Google does).
 *
 * FAULTS, as in openai-mock.ts: `mock.fault = <spec>` (subsequent requests) or header
 * `x-mock-fault: <spec>` (one request; wins over the property). A spec is a GeminiFault object, a
 * JSON object string, or the DSL: items separated by ',' ';' or whitespace, each `key:value`,
 * `key=value` or a bare flag; a bare 3-digit number means `status:<n>`.
 *   status:<4xx|5xx>   Google error body; `status` string from the HTTP code (429 RESOURCE_EXHAUSTED...)
 *   code:<STATUS>      Google status string (RESOURCE_EXHAUSTED, INVALID_ARGUMENT, UNAVAILABLE...);
 *                      alone it implies the HTTP status. Also message:<word> (JSON form for spaces).
 *   retryAfter:<s>     `Retry-After` header and a google.rpc.RetryInfo detail `"<s>s"` (implies 429)
 *   times:<n>          the next n matching requests only (header form: counted per header value)
 *   path:<substr>      only requests whose path contains it
 *   delayMs:<ms>       wait before the headers
 *   reset              destroy the socket (TCP RST) before any headers
 *   hang               never answer (close() destroys the socket)
 *   cutAfter:<k>       stream: k content events, then close the socket (no finishReason)
 *   stallAfter:<k>     stream: k content events, then silence
 *   malformedAfter:<k> stream: after k content events a `data: {not json` event, then continue
 *   errorAfter:<k>     stream: after k content events a `data: {"error":{...}}` event (code, default
 *                      INTERNAL), then end
 *   noFinish           stream: everything, but the final event has no finishReason
 *   chunkDelayMs:<ms>  stream: delay between events (also header x-mock-chunk-delay-ms)
 *   k larger than the number of content events means after the last one (still before the finish).
 * An unparseable x-mock-fault header gets a 400 INVALID_ARGUMENT.
 */
import { createServer } from 'node:http'
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

export interface GeminiMockRequestRecord {
  method: string
  /** Path and query, as received. */
  path: string
  headers: IncomingHttpHeaders
  body: any
  aborted: boolean
  receivedAt: number
  closedAt?: number
  status?: number
}

export interface GeminiFault {
  status?: number
  code?: string
  message?: string
  retryAfter?: number
  times?: number
  path?: string
  delayMs?: number
  reset?: boolean
  hang?: boolean
  cutAfter?: number
  stallAfter?: number
  malformedAfter?: number
  errorAfter?: number
  noFinish?: boolean
  chunkDelayMs?: number
}

/** A GeminiFault object or its string form (DSL or JSON). */
export type GeminiFaultSpec = GeminiFault | string

export interface GeminiMock {
  /** The host, e.g. http://127.0.0.1:PORT: the API version is part of each path. */
  readonly url: string
  readonly port: number
  readonly requests: GeminiMockRequestRecord[]
  get fault(): GeminiFault | null
  set fault(spec: GeminiFaultSpec | null)
  /** Clears requests, fault and header-fault counters. */
  reset(): void
  /** Destroys all sockets (hung and stalled included) and stops listening. */
  close(): Promise<void>
}

export interface StartGeminiMockOptions {
  port?: number
  host?: string
  /** When set, `x-goog-api-key` must equal it (any non-empty key otherwise). */
  apiKey?: string
  /** default true */
  record?: boolean
  /** Model ids listed by GET /{v}/models. */
  models?: string[]
  /** The most models one page of GET /{v}/models holds, whatever `pageSize` asks (Gemini: 1000). */
  maxPageSize?: number
}

const MODELS: readonly string[] = ['gemini-2.5-flash', 'gemini-2.5-pro', 'gemini-2.0-flash', 'gemini-embedding-001']
const TOOL_ARGS = { city: 'Paris' }

export const STATUS_BY_HTTP: Readonly<Record<number, string>> = {
  400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND', 409: 'ABORTED',
  429: 'RESOURCE_EXHAUSTED', 499: 'CANCELLED', 500: 'INTERNAL', 501: 'NOT_IMPLEMENTED', 503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED',
}
const HTTP_BY_STATUS: Readonly<Record<string, number>> = {
  ...Object.fromEntries(Object.entries(STATUS_BY_HTTP).map(([h, s]) => [s, Number(h)])),
  FAILED_PRECONDITION: 400, OUT_OF_RANGE: 400, ALREADY_EXISTS: 409, UNKNOWN: 500, DATA_LOSS: 500,
}
const DEFAULT_MESSAGES: Readonly<Record<string, string>> = {
  INVALID_ARGUMENT: 'Request contains an invalid argument.',
  FAILED_PRECONDITION: 'User location is not supported for the API use.',
  PERMISSION_DENIED: 'The caller does not have permission.',
  NOT_FOUND: 'Requested entity was not found.',
  RESOURCE_EXHAUSTED: 'You exceeded your current quota, please check your plan and billing details. (mock)',
  INTERNAL: 'An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting',
  UNAVAILABLE: 'The model is overloaded. Please try again later.',
  DEADLINE_EXCEEDED: 'Deadline expired before operation could complete.',
}

const REQUEST_FIELDS = new Set(['contents', 'systemInstruction', 'tools', 'toolConfig', 'generationConfig', 'safetySettings', 'cachedContent'])
const SCHEMA_FIELDS = new Set([
  'type', 'format', 'title', 'description', 'nullable', 'enum', 'maxItems', 'minItems', 'properties', 'required', 'minProperties',
  'maxProperties', 'minLength', 'maxLength', 'pattern', 'example', 'anyOf', 'propertyOrdering', 'default', 'items', 'minimum', 'maximum',
])

// ---------- faults ----------

const NUMERIC = new Set(['status', 'retryAfter', 'times', 'delayMs', 'cutAfter', 'stallAfter', 'malformedAfter', 'errorAfter', 'chunkDelayMs'])
const FLAGS = new Set(['reset', 'hang', 'noFinish'])
const STRINGS = new Set(['code', 'message', 'path'])

/** Parses a fault spec (object, JSON string or DSL string). Throws on invalid input. */
export function parseGeminiFault(spec: GeminiFaultSpec): GeminiFault {
  if (typeof spec !== 'string') return checkFault({ ...spec })
  const s = spec.trim()
  if (s.startsWith('{')) {
    const o: unknown = JSON.parse(s)
    if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new Error('fault JSON must be an object')
    return checkFault({ ...(o as GeminiFault) })
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
  return checkFault(out as GeminiFault)
}

function checkFault(f: GeminiFault): GeminiFault {
  for (const k of Object.keys(f)) if (!NUMERIC.has(k) && !FLAGS.has(k) && !STRINGS.has(k)) throw new Error(`unknown fault key "${k}"`)
  if (f.status !== undefined && (!Number.isInteger(f.status) || f.status < 400 || f.status > 599)) throw new Error(`fault status must be 4xx/5xx, got ${String(f.status)}`)
  if (f.status === undefined && f.errorAfter === undefined) {
    if (f.code !== undefined) f.status = HTTP_BY_STATUS[f.code] ?? 400
    else if (f.retryAfter !== undefined) f.status = 429
  }
  return f
}

/** Google's error object for an HTTP status / status string. */
function googleError(httpStatus: number, code?: string, message?: string, details?: unknown[]): Record<string, unknown> {
  const status = code ?? STATUS_BY_HTTP[httpStatus] ?? (httpStatus >= 500 ? 'INTERNAL' : 'INVALID_ARGUMENT')
  const error: Record<string, unknown> = { code: httpStatus, message: message ?? DEFAULT_MESSAGES[status] ?? 'Error (mock).', status }
  if (details && details.length > 0) error['details'] = details
  return { error }
}

// ---------- request checks ----------

class MockError extends Error {
  readonly httpStatus: number
  readonly details: unknown[] | undefined
  constructor(httpStatus: number, message: string, details?: unknown[]) {
    super(message)
    this.httpStatus = httpStatus
    this.details = details
  }
}

function checkSchema(s: unknown, at: string, top: boolean): void {
  if (s === null || typeof s !== 'object') return
  for (const [k, v] of Object.entries(s)) {
    if (!SCHEMA_FIELDS.has(k)) throw new MockError(400, `Invalid JSON payload received. Unknown name "${k}" at '${at}': Cannot find field.`)
    if (k === 'properties' && v && typeof v === 'object') for (const [p, sub] of Object.entries(v)) checkSchema(sub, `${at}.properties[${p}].value`, false)
    if (k === 'items') checkSchema(v, `${at}.items`, false)
    if (k === 'anyOf' && Array.isArray(v)) v.forEach((sub, i) => checkSchema(sub, `${at}.any_of[${i}]`, false))
  }
  const o = s as { type?: unknown; properties?: unknown; required?: unknown; items?: unknown }
  const type = typeof o.type === 'string' ? o.type.toLowerCase() : undefined
  if (top && type === 'object' && (!o.properties || Object.keys(o.properties).length === 0)) {
    throw new MockError(400, `* GenerateContentRequest.${at}.properties: should be non-empty for OBJECT type`)
  }
  // Keywords checked against the node's type, as Gemini does (JSON Schema would let them pass unused).
  if (type === 'array' && o.items === undefined) throw new MockError(400, `* GenerateContentRequest.${at}.items: missing field.`)
  if (o.items !== undefined && type !== 'array') throw new MockError(400, `* GenerateContentRequest.${at}.items: field predicate failed: $type == Type.ARRAY`)
  if (o.properties !== undefined && type !== 'object') throw new MockError(400, `* GenerateContentRequest.${at}.properties: only allowed for OBJECT type`)
  if (o.required !== undefined && type !== 'object') throw new MockError(400, `* GenerateContentRequest.${at}.required: only allowed for OBJECT type`)
  if (Array.isArray(o.required)) {
    const props = o.properties !== null && typeof o.properties === 'object' ? o.properties : {}
    o.required.forEach((name, k) => {
      if (typeof name !== 'string' || !Object.hasOwn(props, name)) throw new MockError(400, `* GenerateContentRequest.${at}.required[${k}]: property is not defined`)
    })
  }
}

/** What the thinking models of this mock spend on thoughts, when thinking is on. */
export const THOUGHT_TOKENS = 16

function thinks(body: any): boolean {
  const t = body.generationConfig?.thinkingConfig
  return t !== undefined && ((typeof t.thinkingBudget === 'number' && t.thinkingBudget !== 0) || t.thinkingLevel !== undefined)
}

function checkThinking(body: any, model: string): void {
  const t = body.generationConfig?.thinkingConfig
  if (t === undefined) return
  if (t.thinkingBudget !== undefined && t.thinkingLevel !== undefined) {
    throw new MockError(400, 'thinking_budget and thinking_level are not supported together.')
  }
  if (t.thinkingLevel !== undefined && !/^gemini-(?:[3-9]|\d{2,})/.test(model)) throw new MockError(400, 'Thinking level is not supported for this model.')
}

/** generationConfig's int32 fields, by their proto names (Google names those in its errors). */
const INT32_FIELDS: readonly (readonly [string, (g: any) => unknown])[] = [
  ['max_output_tokens', (g) => g.maxOutputTokens], ['seed', (g) => g.seed], ['candidate_count', (g) => g.candidateCount],
  ['top_k', (g) => g.topK], ['thinking_config.thinking_budget', (g) => g.thinkingConfig?.thinkingBudget],
]

function checkInt32(gen: any): void {
  if (gen === null || typeof gen !== 'object') return
  for (const [name, get] of INT32_FIELDS) {
    const v = get(gen)
    if (v !== undefined && (!Number.isInteger(v) || (v as number) < -(2 ** 31) || (v as number) > 2 ** 31 - 1)) {
      throw new MockError(400, `Invalid value at 'generation_config.${name}' (TYPE_INT32), ${JSON.stringify(v)}`)
    }
  }
}

function checkGenerate(body: any): void {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new MockError(400, 'Invalid JSON payload received.')
  for (const k of Object.keys(body)) if (!REQUEST_FIELDS.has(k)) throw new MockError(400, `Invalid JSON payload received. Unknown name "${k}": Cannot find field.`)
  if (!Array.isArray(body.contents) || body.contents.length === 0) throw new MockError(400, '* GenerateContentRequest.contents: contents is not specified')
  body.contents.forEach((c: any, i: number) => {
    if (c?.role !== undefined && c.role !== 'user' && c.role !== 'model') throw new MockError(400, 'Please use a valid role: user, model.')
    if (!Array.isArray(c?.parts) || c.parts.length === 0) throw new MockError(400, `* GenerateContentRequest.contents[${i}].parts: contents.parts must not be empty.`)
  })
  const declared = new Set<unknown>()
  for (const [i, t] of (Array.isArray(body.tools) ? body.tools : []).entries()) {
    for (const [j, d] of (t?.functionDeclarations ?? []).entries()) {
      if (declared.has(d?.name)) throw new MockError(400, `Duplicate function declaration found: ${String(d?.name)}`)
      declared.add(d?.name)
      if (typeof d?.name !== 'string' || !/^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$/.test(d.name)) {
        throw new MockError(400, `* GenerateContentRequest.tools[${i}].function_declarations[${j}].name: Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of 64.`)
      }
      if (d?.parameters !== undefined) checkSchema(d.parameters, `tools[${i}].function_declarations[${j}].parameters`, true)
    }
  }
  const allowed = body.toolConfig?.functionCallingConfig?.allowedFunctionNames
  if (Array.isArray(allowed)) {
    allowed.forEach((name: unknown, k: number) => {
      if (!declared.has(name)) throw new MockError(400, `* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names[${k}]: function ${JSON.stringify(name)} is not declared`)
    })
  }
  checkInt32(body.generationConfig)
  if (body.generationConfig?.responseSchema) checkSchema(body.generationConfig.responseSchema, 'generation_config.response_schema', false)
}

// ---------- replies ----------

type Plan =
  | { kind: 'text'; pieces: string[]; finish: 'STOP' | 'MAX_TOKENS' }
  | { kind: 'call'; name: string }
  | { kind: 'blocked' }

function words(text: string): string[] {
  return text === '' ? [] : text.split(' ').map((w, i) => (i === 0 ? w : ' ' + w))
}

function textParts(c: any): string[] {
  return (Array.isArray(c?.parts) ? c.parts : []).filter((p: any) => typeof p?.text === 'string').map((p: any) => p.text as string)
}

function planReply(body: any, tokens: number): Plan {
  const contents: any[] = body.contents
  const last = contents[contents.length - 1]
  const parts: any[] = last?.parts ?? []
  const lastPart = parts[parts.length - 1]
  if (lastPart?.functionResponse) {
    const r = lastPart.functionResponse.response ?? {}
    const keys = Object.keys(r)
    const shown = keys.length === 1 && keys[0] === 'content' && typeof r.content === 'string' ? r.content : JSON.stringify(r)
    return { kind: 'text', pieces: words('tool result: ' + shown), finish: 'STOP' }
  }
  const texts = last?.role === 'model' ? [] : textParts(last)
  const text = texts[texts.length - 1] ?? ''
  if (texts.some((t) => t.includes('blocked'))) return { kind: 'blocked' }
  if (text.startsWith('echo ')) return { kind: 'text', pieces: words('echo: ' + text.slice(5)), finish: 'STOP' }
  const decls: any[] = (Array.isArray(body.tools) ? body.tools : []).flatMap((t: any) => t?.functionDeclarations ?? [])
  const fcc = body.toolConfig?.functionCallingConfig
  if (decls.length > 0 && fcc?.mode !== 'NONE' && text.includes('call tool')) {
    const name = fcc?.allowedFunctionNames?.[0] ?? decls[0]?.name
    return { kind: 'call', name: typeof name === 'string' ? name : 'tool' }
  }
  let n = tokens
  let finish: 'STOP' | 'MAX_TOKENS' = 'STOP'
  const cap = body.generationConfig?.maxOutputTokens
  if (typeof cap === 'number' && cap >= 0 && cap < n) { n = Math.floor(cap); finish = 'MAX_TOKENS' }
  return { kind: 'text', pieces: Array.from({ length: n }, (_, i) => (i === 0 ? 'tok0' : ` tok${i}`)), finish }
}

function promptTokens(body: any): number {
  let chars = 0
  for (const c of [...body.contents, ...(body.systemInstruction ? [body.systemInstruction] : [])]) for (const t of textParts(c)) chars += t.length
  return Math.max(1, Math.ceil(chars / 4))
}

/** FNV-1a 32-bit, then xorshift32: deterministic unit vectors, as in openai-mock. */
function embeddingFor(text: string, dims: number): number[] {
  let x = 0x811c9dc5
  for (let i = 0; i < text.length; i++) x = Math.imul(x ^ text.charCodeAt(i), 0x01000193)
  x = x >>> 0 || 1
  const v: number[] = []
  let norm = 0
  for (let i = 0; i < dims; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5; x >>>= 0
    const f = x / 0xffffffff - 0.5
    v.push(f)
    norm += f * f
  }
  norm = Math.sqrt(norm) || 1
  return v.map((f) => Math.fround(f / norm))
}

function embedOne(req: any, at: string): { values: number[] } {
  const parts = req?.content?.parts
  if (!Array.isArray(parts) || parts.length === 0) throw new MockError(400, `* ${at}.content.parts: must not be empty`)
  const dims = req.outputDimensionality ?? 8
  if (!Number.isInteger(dims) || dims < 1 || dims > 3072) throw new MockError(400, `* ${at}.output_dimensionality: must be between 1 and 3072`)
  return { values: embeddingFor(parts.map((p: any) => p?.text ?? '').join(''), dims) }
}

const headerOf = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v)

/** A JSON body as Google writes it: pretty-printed (two spaces) unless the request said `prettyPrint=false`. */
function jsonText(rec: GeminiMockRequestRecord, body: unknown): string {
  const q = new URL(rec.path, 'http://mock').searchParams
  const pretty = (q.get('prettyPrint') ?? q.get('$prettyPrint')) !== 'false'
  return pretty ? JSON.stringify(body, null, 2) : JSON.stringify(body)
}

// ---------- server ----------

export function startGeminiMock(opts: StartGeminiMockOptions = {}): Promise<GeminiMock> {
  const host = opts.host ?? '127.0.0.1'
  const record = opts.record ?? true
  const models = opts.models ?? MODELS
  const requests: GeminiMockRequestRecord[] = []
  const sockets = new Set<Socket>()
  const timers = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>()
  const headerUses = new Map<string, number>()
  let propFault: GeminiFault | null = null
  let closing = false
  let seq = 0

  const nextId = (): string => `mock${(++seq).toString(36).padStart(6, '0')}`
  const sleep = (ms: number): Promise<void> => {
    if (!(ms > 0) || closing) return Promise.resolve()
    return new Promise((resolve) => {
      const t = { timer: setTimeout(() => { timers.delete(t); resolve() }, ms), resolve }
      timers.add(t)
    })
  }

  function selectFault(path: string, header: string | undefined): GeminiFault | Error | null {
    if (header !== undefined && header.trim() !== '') {
      let f: GeminiFault
      try { f = parseGeminiFault(header) } catch (e) { return e as Error }
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

  function sendJson(res: ServerResponse, rec: GeminiMockRequestRecord, status: number, body: unknown, extra?: Record<string, string>): void {
    if (res.destroyed) return
    const text = jsonText(rec, body)
    rec.status = status
    res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', 'content-length': Buffer.byteLength(text), ...extra })
    res.end(text)
  }

  function response(model: string, plan: Exclude<Plan, { kind: 'blocked' }>, prompt: number, n: number, thoughts = 0): Record<string, unknown> {
    const parts = plan.kind === 'call' ? [{ functionCall: { name: plan.name, args: TOOL_ARGS } }] : [{ text: plan.pieces.join('') }]
    const completion = plan.kind === 'call' ? Math.max(1, Math.ceil((plan.name.length + JSON.stringify(TOOL_ARGS).length) / 4)) : plan.pieces.length
    const usageMetadata = thoughts > 0
      ? { promptTokenCount: prompt, candidatesTokenCount: completion, thoughtsTokenCount: thoughts, totalTokenCount: prompt + completion + thoughts }
      : { promptTokenCount: prompt, candidatesTokenCount: completion, totalTokenCount: prompt + completion }
    return {
      candidates: Array.from({ length: n }, (_, index) => ({ content: { parts, role: 'model' }, finishReason: plan.kind === 'call' ? 'STOP' : plan.finish, index })),
      usageMetadata,
      modelVersion: model,
      responseId: nextId(),
    }
  }

  function blocked(model: string, prompt: number): Record<string, unknown> {
    return {
      promptFeedback: { blockReason: 'SAFETY', safetyRatings: [{ category: 'HARM_CATEGORY_DANGEROUS_CONTENT', probability: 'HIGH', blocked: true }] },
      usageMetadata: { promptTokenCount: prompt, totalTokenCount: prompt },
      modelVersion: model,
      responseId: nextId(),
    }
  }

  /** The stream's events: content events, then the finish event (see the header comment). */
  function events(model: string, plan: Plan, prompt: number, n: number, thoughts: number): { content: unknown[]; final: Record<string, any> } {
    if (plan.kind === 'blocked') return { content: [], final: blocked(model, prompt) }
    const whole = response(model, plan, prompt, n, thoughts)
    const base = { modelVersion: model, responseId: whole['responseId'] }
    const cands = (parts: unknown[]): unknown[] => Array.from({ length: n }, (_, index) => ({ content: { parts, role: 'model' }, index }))
    const pieces = plan.kind === 'call' ? [[{ functionCall: { name: plan.name, args: TOOL_ARGS } }]] : plan.pieces.map((p) => [{ text: p }])
    const content = pieces.map((parts) => ({ candidates: cands(parts), usageMetadata: { promptTokenCount: prompt, totalTokenCount: prompt }, ...base }))
    const finishReason = plan.kind === 'call' ? 'STOP' : plan.finish
    const final = {
      candidates: Array.from({ length: n }, (_, index) => ({ content: { parts: [{ text: '' }], role: 'model' }, finishReason, index })),
      usageMetadata: whole['usageMetadata'],
      ...base,
    }
    return { content, final }
  }

  async function stream(res: ServerResponse, rec: GeminiMockRequestRecord, ev: { content: unknown[]; final: Record<string, any> }, sse: boolean, f: GeminiFault | null, delay: number, onServerClose: () => void): Promise<void> {
    rec.status = 200
    if (!sse) {
      const all = [...ev.content, ev.final]
      const text = jsonText(rec, all)
      res.writeHead(200, { 'content-type': 'application/json; charset=UTF-8', 'content-length': Buffer.byteLength(text) })
      res.end(text)
      return
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    let first = true
    const emit = async (s: string): Promise<boolean> => {
      if (delay > 0 && !first) await sleep(delay)
      first = false
      if (res.destroyed || closing) return false
      if (!res.write(s)) await new Promise<void>((r) => { res.once('drain', r); res.once('close', r) })
      return !res.destroyed && !closing
    }
    const data = (o: unknown): string => `data: ${JSON.stringify(o)}\r\n\r\n`
    const total = ev.content.length
    const at = (k: number | undefined, sent: number): boolean => k !== undefined && Math.min(k, total) === sent
    let malformedDone = false
    /** false: stop here */
    const checkpoint = async (sent: number): Promise<boolean> => {
      if (!f) return true
      if (!malformedDone && at(f.malformedAfter, sent)) {
        malformedDone = true
        if (!(await emit('data: {not json\r\n\r\n'))) return false
      }
      if (at(f.errorAfter, sent)) {
        const code = f.code ?? 'INTERNAL'
        await emit(data(googleError(HTTP_BY_STATUS[code] ?? 500, code, f.message)))
        res.end()
        return false
      }
      if (at(f.cutAfter, sent)) { onServerClose(); const s = res.socket; if (s && !s.destroyed) s.end(() => s.destroy()); else res.destroy(); return false }
      if (at(f.stallAfter, sent)) return false
      return true
    }
    if (!(await checkpoint(0))) return
    for (let i = 0; i < total; i++) {
      if (!(await emit(data(ev.content[i])))) return
      if (!(await checkpoint(i + 1))) return
    }
    const final = f?.noFinish ? { ...ev.final, candidates: (ev.final['candidates'] as object[] | undefined)?.map((c) => ({ ...c, finishReason: undefined })) } : ev.final
    if (!(await emit(data(final)))) return
    res.end()
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET'
    const raw = req.url ?? '/'
    const url = new URL(raw, 'http://mock')
    const path = url.pathname
    const rec: GeminiMockRequestRecord = { method, path: raw, headers: record ? req.headers : {}, body: undefined, aborted: false, receivedAt: Date.now() }
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
    let body: any
    let badJson = false
    if (text !== '') {
      try { body = JSON.parse(text) } catch { badJson = true }
      if (record) rec.body = badJson ? text : body
    }
    const fail = (e: MockError): void => sendJson(res, rec, e.httpStatus, googleError(e.httpStatus, undefined, e.message, e.details))

    const f = selectFault(path, headerOf(req.headers['x-mock-fault']))
    if (f instanceof Error) { fail(new MockError(400, `invalid x-mock-fault: ${f.message}`)); return }
    if (f) {
      if (f.delayMs) { await sleep(f.delayMs); if (res.destroyed || closing) return }
      if (f.reset) { serverClosed = true; const s = req.socket; if (typeof s.resetAndDestroy === 'function') s.resetAndDestroy(); else s.destroy(); return }
      if (f.hang) return
      if (f.status !== undefined) {
        const extra: Record<string, string> = {}
        const details: unknown[] = []
        if (f.status === 429) {
          details.push({ '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [{ quotaMetric: 'generativelanguage.googleapis.com/generate_content_requests', quotaId: 'GenerateRequestsPerMinutePerProjectPerModel' }] })
        }
        if (f.retryAfter !== undefined) {
          extra['retry-after'] = String(f.retryAfter)
          details.push({ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${f.retryAfter}s` })
        }
        sendJson(res, rec, f.status, googleError(f.status, f.code, f.message, details), extra)
        return
      }
    }

    try {
      if (url.searchParams.has('key')) throw new MockError(400, 'mock: the API key must be sent in x-goog-api-key, not in the URL')
      const key = headerOf(req.headers['x-goog-api-key'])
      if (!key) {
        throw new MockError(403, "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.")
      }
      if (opts.apiKey !== undefined && key !== opts.apiKey) {
        throw new MockError(400, 'API key not valid. Please pass a valid API key.', [
          { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com', metadata: { service: 'generativelanguage.googleapis.com' } },
        ])
      }
      const model = (id: string): Record<string, unknown> => ({
        name: `models/${id}`, version: '001', displayName: id,
        supportedGenerationMethods: id.includes('embedding') ? ['embedContent'] : id.startsWith('aqa') ? ['generateAnswer'] : ['generateContent', 'countTokens'],
      })
      if (method === 'GET') {
        const m = /^\/(?:v1|v1beta|v1alpha)\/models(?:\/([^/:]+))?$/.exec(path)
        if (!m) throw new MockError(404, `mock: no route for GET ${path}`)
        if (m[1] === undefined) {
          // Paginated as Gemini documents: `pageSize` (default 50, at most 1000), `pageToken` from the last `nextPageToken`.
          const size = Math.min(Number(url.searchParams.get('pageSize') ?? 50) || 50, 1000, opts.maxPageSize ?? 1000)
          const token = url.searchParams.get('pageToken')
          const from = token === null ? 0 : Number(Buffer.from(token, 'base64url').toString())
          if (!Number.isInteger(from) || from < 0) throw new MockError(400, 'Invalid page token.')
          const next = from + size < models.length ? { nextPageToken: Buffer.from(String(from + size)).toString('base64url') } : {}
          sendJson(res, rec, 200, { models: models.slice(from, from + size).map(model), ...next })
          return
        }
        const id = decodeURIComponent(m[1])
        if (!models.includes(id)) throw new MockError(404, `models/${id} is not found for API version v1beta, or is not supported for generateContent.`)
        sendJson(res, rec, 200, model(id))
        return
      }
      const m = /^\/(?:v1|v1beta|v1alpha)\/models\/([^/:]+):([A-Za-z]+)$/.exec(path)
      if (method !== 'POST' || !m) throw new MockError(404, `mock: no route for ${method} ${path}`)
      if (badJson || body === undefined) throw new MockError(400, 'Invalid JSON payload received.')
      const id = decodeURIComponent(m[1]!)
      switch (m[2]) {
        case 'generateContent':
        case 'streamGenerateContent': {
          checkGenerate(body)
          checkThinking(body, id)
          const thoughts = thinks(body) ? THOUGHT_TOKENS : 0
          const tokens = Math.min(100_000, Number.parseInt(headerOf(req.headers['x-mock-tokens']) ?? '12', 10) || 12)
          const plan = planReply(body, tokens)
          const prompt = promptTokens(body)
          const n = Math.max(1, Number(body.generationConfig?.candidateCount ?? 1))
          if (m[2] === 'generateContent') {
            sendJson(res, rec, 200, plan.kind === 'blocked' ? blocked(id, prompt) : response(id, plan, prompt, n, thoughts))
            return
          }
          const delay = f?.chunkDelayMs ?? (Number.parseInt(headerOf(req.headers['x-mock-chunk-delay-ms']) ?? '0', 10) || 0)
          await stream(res, rec, events(id, plan, prompt, n, thoughts), url.searchParams.get('alt') === 'sse', f, delay, () => { serverClosed = true })
          return
        }
        case 'embedContent':
          sendJson(res, rec, 200, { embedding: embedOne(body, 'EmbedContentRequest') })
          return
        case 'batchEmbedContents': {
          if (!Array.isArray(body.requests) || body.requests.length === 0) throw new MockError(400, '* BatchEmbedContentsRequest.requests: must not be empty')
          if (body.requests.length > 100) throw new MockError(400, '* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch')
          const embeddings = body.requests.map((r: any, i: number) => {
            if (r?.model !== `models/${id}`) throw new MockError(400, `* BatchEmbedContentsRequest.requests[${i}].model: must be models/${id}, got ${String(r?.model)}`)
            return embedOne(r, `BatchEmbedContentsRequest.requests[${i}]`)
          })
          sendJson(res, rec, 200, { embeddings })
          return
        }
        default:
          throw new MockError(404, `mock: unknown method ${m[2]}`)
      }
    } catch (e) {
      if (e instanceof MockError) { fail(e); return }
      throw e
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(500, { 'content-type': 'application/json; charset=UTF-8' })
        res.end(JSON.stringify(googleError(500, 'INTERNAL', `mock internal error: ${String(err)}`)))
      } else res.destroy()
    })
  })
  server.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  server.on('clientError', (_e, s) => { if (!s.destroyed) s.destroy() })

  return new Promise<GeminiMock>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject)
      const port = (server.address() as AddressInfo).port
      let closed: Promise<void> | undefined
      resolve({
        url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
        port,
        requests,
        get fault(): GeminiFault | null { return propFault },
        set fault(spec: GeminiFaultSpec | null) { propFault = spec === null ? null : parseGeminiFault(spec) },
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
      })
    })
  })
}
