/**
 * Usage, finish reason and model of a pass-through (non-streaming) answer, from its raw bytes (`ctx.rawBody`; read once by
 * RequestCtx's `usage` getter). Bodies up to 1 KiB are parsed whole (as cheap as searching them, and exact). Past
 * that only the `"usage":{...}` object is parsed (found from the end, where OpenAI-style bodies put it) and the
 * finish reason of the first choice, the model (the first `"model"` key: the top-level one, near the start) and the
 * service tier (the last `"service_tier"` key, after the choices) are read in place; when no usable usage object is
 * found that way, the whole body is parsed.
 */
import type { Usage } from '../providers/types.ts'

const USAGE_KEY = Buffer.from('"usage"')
const FINISH_KEY = Buffer.from('"finish_reason"')
const MODEL_KEY = Buffer.from('"model"')
const TIER_KEY = Buffer.from('"service_tier"')
const QUOTE = 0x22
const BACKSLASH = 0x5c
/** Bodies up to this size are parsed whole. */
const PARSE_WHOLE_BYTES = 1024

export interface BodyUsage {
  usage: Usage | undefined
  finishReason: string | null
  /** The model the upstream says answered (gen_ai.response.model), or null. */
  model: string | null
  /** The processing tier that served it (OpenAI's top-level `service_tier`), or null. */
  serviceTier: string | null
}

function isSpace(c: number | undefined): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09
}

/** The `{...}` value after the last `"usage"` key, or undefined. */
function usageSlice(buf: Buffer): Buffer | undefined {
  const at = buf.lastIndexOf(USAGE_KEY)
  if (at === -1) return undefined
  let i = at + USAGE_KEY.length
  while (isSpace(buf[i])) i++
  if (buf[i] !== 0x3a) return undefined // ':'
  i++
  while (isSpace(buf[i])) i++
  if (buf[i] !== 0x7b) return undefined // '{'
  const start = i
  let depth = 0
  for (; i < buf.length; i++) {
    const c = buf[i]
    if (c === QUOTE) {
      for (i++; i < buf.length && buf[i] !== QUOTE; i++) if (buf[i] === BACKSLASH) i++
    } else if (c === 0x7b) depth++
    else if (c === 0x7d && --depth === 0) return buf.subarray(start, i + 1)
  }
  return undefined
}

/** A usage object as OpenAI-style bodies carry it (embeddings report no completion_tokens). */
function isUsage(v: unknown): v is Usage {
  return typeof v === 'object' && v !== null && typeof (v as Usage).prompt_tokens === 'number'
}

/** The string value of the first `key` (at most `max` bytes, no escapes), or null. */
function stringIn(buf: Buffer, key: Buffer, max: number): string | null {
  const f = buf.indexOf(key)
  if (f === -1) return null
  let i = f + key.length
  while (isSpace(buf[i])) i++
  if (buf[i] !== 0x3a) return null
  i++
  while (isSpace(buf[i])) i++
  if (buf[i] !== QUOTE) return null
  const end = buf.indexOf(QUOTE, i + 1)
  if (end === -1 || end - i >= max) return null
  const value = buf.subarray(i + 1, end)
  return value.includes(BACKSLASH) ? null : value.toString('utf8')
}

/** The string value of the last `key` (at most `max` bytes, no escapes), or null. */
function lastStringIn(buf: Buffer, key: Buffer, max: number): string | null {
  const f = buf.lastIndexOf(key)
  return f === -1 ? null : stringIn(buf.subarray(f), key, max)
}

function parseWhole(buf: Buffer): BodyUsage {
  try {
    const whole = JSON.parse(buf.toString('utf8')) as { usage?: unknown; model?: unknown; service_tier?: unknown; choices?: { finish_reason?: unknown }[] } | null
    const finish = Array.isArray(whole?.choices) ? whole.choices[0]?.finish_reason : undefined
    const usage = whole?.usage
    const tier = whole?.service_tier
    return {
      usage: typeof usage === 'object' && usage !== null ? usage as Usage : undefined,
      finishReason: typeof finish === 'string' ? finish : null,
      model: typeof whole?.model === 'string' && whole.model !== '' ? whole.model : null,
      serviceTier: typeof tier === 'string' && tier !== '' ? tier : null,
    }
  } catch {
    return { usage: undefined, finishReason: null, model: null, serviceTier: null } // not JSON: no usage
  }
}

export function usageFromBody(parts: readonly Buffer[]): BodyUsage {
  const buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts)
  if (buf.length <= PARSE_WHOLE_BYTES) return parseWhole(buf)
  let u: unknown
  try {
    const slice = usageSlice(buf)
    u = slice === undefined ? undefined : JSON.parse(slice.toString('utf8'))
  } catch { /* the full parse below */ }
  if (!isUsage(u)) return parseWhole(buf)
  // The tier follows the choices in OpenAI's bodies: searched from the end, like the usage.
  return { usage: u, finishReason: stringIn(buf, FINISH_KEY, 64), model: stringIn(buf, MODEL_KEY, 256), serviceTier: lastStringIn(buf, TIER_KEY, 32) }
}

/** A pass-through body up to this size is kept whole for usageFromBody (its exact fallback, the whole parse, included). */
export const KEEP_WHOLE_BYTES = 1 << 20
/** Past KEEP_WHOLE_BYTES, this much of the body's start and of its end is kept. */
export const KEEP_END_BYTES = 64 * 1024
/** Tail pieces gathered before they are joined into one (many tiny reads would otherwise make a long list). */
const TAIL_PIECES = 64

/**
 * The bytes of a pass-through (non-streamed) answer that usageFromBody reads, kept while the answer goes by. An
 * embeddings answer (`bounded`): all of it up to KEEP_WHOLE_BYTES, past that only its first and last KEEP_END_BYTES,
 * where OpenAI-style bodies carry what is read (the model near the start, the usage at the end). Such an answer of a
 * hundred megabytes (2,048 embeddings of 3,072 dimensions) used to be kept whole until the request completed, and
 * copied once more to be searched. A chat answer is kept whole: when it carries no usage, its text is what the
 * completion's estimate counts (gateway/cost/estimate.ts), and chat answers are small.
 */
export class BodyKeeper {
  readonly #bounded: boolean
  #parts: Buffer[] = []
  #size = 0
  /** The body's first KEEP_END_BYTES, once it is past KEEP_WHOLE_BYTES. */
  #head: Buffer | undefined
  #tail: Buffer[] = []
  #tailSize = 0

  constructor(bounded: boolean) {
    this.#bounded = bounded
  }

  /** One read, in order. The keeper copies what it keeps past KEEP_WHOLE_BYTES; below it, it keeps the read. */
  add(chunk: Buffer): void {
    if (this.#head === undefined) {
      this.#parts.push(chunk)
      this.#size += chunk.length
      if (this.#size <= KEEP_WHOLE_BYTES || !this.#bounded) return
      const all = Buffer.concat(this.#parts, this.#size)
      this.#parts = []
      this.#head = Buffer.from(all.subarray(0, KEEP_END_BYTES))
      this.#tail = [Buffer.from(all.subarray(all.length - KEEP_END_BYTES))]
      this.#tailSize = KEEP_END_BYTES
      return
    }
    this.#tail.push(chunk)
    this.#tailSize += chunk.length
    // Drop whole pieces from the front while the rest still covers KEEP_END_BYTES; join many small ones into one.
    let drop = 0
    while (this.#tailSize - this.#tail[drop]!.length >= KEEP_END_BYTES) this.#tailSize -= this.#tail[drop++]!.length
    if (drop > 0) this.#tail = this.#tail.slice(drop)
    if (this.#tail.length > TAIL_PIECES) {
      const joined = Buffer.concat(this.#tail, this.#tailSize)
      this.#tail = [Buffer.from(joined.subarray(joined.length - KEEP_END_BYTES))]
      this.#tailSize = KEEP_END_BYTES
    }
  }

  /** What usageFromBody reads: the whole body, or its head and tail (then not JSON as a whole). */
  parts(): Buffer[] {
    return this.#head === undefined ? this.#parts : [this.#head, ...this.#tail]
  }

  /** The bytes kept now. */
  get kept(): number {
    return this.#head === undefined ? this.#size : this.#head.length + this.#tailSize
  }
}
