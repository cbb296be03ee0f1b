/**
 * Usage and finish reason of a pass-through (non-streaming) answer. The gateway keeps the raw upstream bytes
 * (`ctx.rawBody`) and its `usage` getter JSON.parses all of them, which for a long answer is the largest cost of
 * recording a request. Past 1 KiB only the `"usage":{...}` object is parsed (found from the end, where
 * OpenAI-style bodies put it) and the finish reason is read in place; anything unexpected falls back to the getter.
 * Belongs in gateway/context.ts eventually (the access log would profit too).
 */
import type { RequestCtx } from '../../gateway/context.ts'
import type { Usage } from '../../providers/types.ts'

const USAGE_KEY = Buffer.from('"usage"')
const FINISH_KEY = Buffer.from('"finish_reason"')
const QUOTE = 0x22
const BACKSLASH = 0x5c

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

function isUsage(v: unknown): v is Usage {
  return typeof v === 'object' && v !== null && typeof (v as Usage).prompt_tokens === 'number' && typeof (v as Usage).completion_tokens === 'number'
}

/** Bodies up to this size are parsed whole (as cheap as finding the usage object, and exact); larger ones are not. */
const PARSE_WHOLE_BYTES = 1024

/** The first finish_reason string (choices[0]'s), or null. */
function finishReasonIn(buf: Buffer): string | null {
  const f = buf.indexOf(FINISH_KEY)
  if (f === -1) return null
  let i = f + FINISH_KEY.length
  while (isSpace(buf[i])) i++
  if (buf[i] !== 0x3a) return null
  i++
  while (isSpace(buf[i])) i++
  if (buf[i] !== QUOTE) return null
  const end = buf.indexOf(QUOTE, i + 1)
  return end !== -1 && end - i < 64 ? buf.toString('latin1', i + 1, end) : null
}

/**
 * ctx.usage, read cheaply from the raw body when there is one; the usage (and the finish reason, which the
 * gateway does not extract from pass-through bodies) are then set on ctx for the other hooks.
 */
export function usageOf(ctx: RequestCtx): Usage | undefined {
  const parts = ctx.rawBody
  if (parts === undefined) return ctx.usage
  const buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts)
  let u: unknown
  let finish: unknown = null
  if (buf.length <= PARSE_WHOLE_BYTES) {
    try {
      const whole = JSON.parse(buf.toString('utf8')) as { usage?: unknown; choices?: { finish_reason?: unknown }[] } | null
      u = whole?.usage
      finish = Array.isArray(whole?.choices) ? whole.choices[0]?.finish_reason ?? null : null
    } catch { /* not JSON: no usage */ }
    ctx.rawBody = undefined
  } else {
    try {
      const slice = usageSlice(buf)
      u = slice === undefined ? undefined : JSON.parse(slice.toString('utf8'))
    } catch { /* fall back below */ }
    if (!isUsage(u)) {
      if (parts.length > 1) ctx.rawBody = [buf]
      return ctx.usage
    }
    finish = finishReasonIn(buf)
    ctx.rawBody = undefined
  }
  if (ctx.finishReason === null && typeof finish === 'string') ctx.finishReason = finish
  if (!isUsage(u)) return undefined
  ctx.usage = u
  return u
}
