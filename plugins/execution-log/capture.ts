/**
 * What of a request body goes into execution_logs.request: the canonical body itself when it is under the cap
 * (kept by reference, serialized later by the writer), a redacted copy when it holds a redacted key, or
 * `{truncated, bytes, sha256, head}` when it is over the cap. The size check walks the body with an early exit,
 * so a large body costs at most `maxBytes` of walking unless it is over the cap (then one JSON.stringify).
 *
 * The cap is on the JSON text stored (JSON.stringify's, in UTF-8 bytes), not on the values: a string counts its
 * escapes (a control character 6 bytes, or 2 for \b \t \n \f \r; a quote or backslash 2; a lone surrogate 6) and
 * its characters' UTF-8 bytes, a number the length of its text. Counted raw, 60,000 "\u0001" were 60 KB under a
 * 64 KiB cap and stored 360 KB. The first walk reads only lengths and bounds the size (a string of n UTF-16 units is
 * n to 6n bytes, a number 1 to 24): a body whose upper bound is under the cap (the usual small one) is kept without
 * reading its strings, one whose lower bound is over it is truncated; only in between does a second walk count every
 * string's characters (at most `maxBytes` of them: a string longer than the rest of the cap is over it unread).
 */
import { createHash } from 'node:crypto'
import type { Capture } from './config.ts'

export interface Captured {
  value: unknown
  /** JSON size of `value` (UTF-8 bytes; the cap for a truncated body, an estimate for metadata). */
  bytes: number
}

const MAX_DEPTH = 64
const REDACTED = '[redacted]'
/** Top-level fields that carry content, left out of 'metadata' captures. */
const CONTENT_KEYS = new Set(['input', 'prompt', 'instructions', 'system', 'suffix', 'user'])

/**
 * A walk's running JSON size: `lo` and `hi` bound it (a string of n UTF-16 units is n to 6n bytes of JSON, a number 1
 * to 24), or, when `exact`, both are the size itself.
 */
interface Walk { lo: number; hi: number; exact: boolean; redact: boolean }

/** Extra bytes of a character below 0x80 in JSON text: 5 for \u00XX, 1 for \b \t \n \f \r \" \\, else 0. */
const ASCII_EXTRA = new Uint8Array(128)
for (let c = 0; c < 0x20; c++) ASCII_EXTRA[c] = 5
for (const c of [8, 9, 10, 12, 13, 0x22, 0x5c]) ASCII_EXTRA[c] = 1

/** UTF-8 bytes of JSON.stringify(s), quotes included. One pass over the characters, no allocation. */
export function jsonStringBytes(s: string): number {
  const len = s.length
  let n = len + 2
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) n += ASCII_EXTRA[c]!
    else if (c < 0x800) n += 1
    else if (c < 0xd800 || c > 0xdfff) n += 2
    else if (c <= 0xdbff && i + 1 < len && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) { n += 2; i++ } // a pair: 4 bytes
    else n += 5 // a lone surrogate: \udXXX
  }
  return n
}

function addString(s: string, budget: number, w: Walk): void {
  // Every UTF-16 unit is at least one byte of JSON: a string longer than the rest of the budget is over it unread.
  if (w.exact && s.length + 2 <= budget - w.lo) {
    const n = jsonStringBytes(s)
    w.lo += n
    w.hi += n
  } else {
    w.lo += s.length + 2
    w.hi += 6 * s.length + 2
  }
}

/** Adds the JSON size of `v` (UTF-8 bytes of JSON.stringify(v)) to `w`, stopping once `w.lo` is past `budget`; notes redacted keys. */
function measure(v: unknown, budget: number, redact: ReadonlySet<string>, depth: number, w: Walk): void {
  switch (typeof v) {
    case 'string': addString(v, budget, w); return
    case 'number': {
      // Finite: 1 to 24 characters ('-2.2250738585072014e-308'); NaN and Infinity are written null.
      const n = !Number.isFinite(v) ? 4 : w.exact ? String(v).length : 0
      w.lo += n || 1
      w.hi += n || 24
      return
    }
    case 'boolean': w.lo += v ? 4 : 5; w.hi += v ? 4 : 5; return
    case 'object': {
      if (v === null) { w.lo += 4; w.hi += 4; return }
      if (depth >= MAX_DEPTH) { w.lo = w.hi = Infinity; return }
      if (Array.isArray(v)) {
        const marks = v.length === 0 ? 2 : 1 + v.length // brackets and commas
        w.lo += marks
        w.hi += marks
        for (const x of v) {
          if (x === undefined || typeof x === 'function' || typeof x === 'symbol') { w.lo += 4; w.hi += 4 } // null
          else measure(x, budget, redact, depth + 1, w)
          if (w.lo > budget) return
        }
        return
      }
      let marks = 1 // '{', then ':' and ',' or '}' for each member
      const o = v as Record<string, unknown>
      for (const k in o) {
        const x = o[k]
        if (x === undefined || typeof x === 'function' || typeof x === 'symbol') continue
        marks += 2
        addString(k, budget, w)
        if (redact.has(k)) { w.redact = true; w.lo += REDACTED.length + 2; w.hi += REDACTED.length + 2 }
        else measure(x, budget, redact, depth + 1, w)
        if (w.lo > budget) return
      }
      if (marks === 1) marks = 2
      w.lo += marks
      w.hi += marks
      return
    }
    default:
  }
}

function redactCopy(v: unknown, redact: ReadonlySet<string>): unknown {
  if (v === null || typeof v !== 'object') return v
  if (Array.isArray(v)) return v.map((x) => redactCopy(x, redact))
  const out: Record<string, unknown> = {}
  const o = v as Record<string, unknown>
  for (const k in o) out[k] = redact.has(k) ? REDACTED : redactCopy(o[k], redact)
  return out
}

function truncate(body: unknown, maxBytes: number, redact: ReadonlySet<string>): Captured {
  let json: string
  try {
    json = JSON.stringify(body, redact.size > 0 ? (k: string, v: unknown) => (redact.has(k) ? REDACTED : v) : undefined)
  } catch {
    return { value: { truncated: true, unserializable: true }, bytes: 64 }
  }
  const buf = Buffer.from(json, 'utf8')
  const sha256 = createHash('sha256').update(buf).digest('hex')
  // A string value: always valid JSON, whatever the cut. A character cut in half becomes U+FFFD. Stored as a JSON
  // string, the head is escaped again (`"` and `\\` double): cut further until its escaped form fits.
  const room = Math.max(0, maxBytes - 256)
  let cut = room
  let head = buf.subarray(0, cut).toString('utf8')
  for (let over = Buffer.byteLength(JSON.stringify(head)) - 2 - room; over > 0 && cut > 0; over = Buffer.byteLength(JSON.stringify(head)) - 2 - room) {
    cut = Math.max(0, cut - Math.ceil(over / 2) - 3)
    head = buf.subarray(0, cut).toString('utf8')
  }
  return { value: { truncated: true, bytes: buf.length, sha256, head }, bytes: maxBytes }
}

function metadataOf(body: unknown, redact: ReadonlySet<string>): Captured {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return { value: {}, bytes: 2 }
  const out: Record<string, unknown> = {}
  const o = body as Record<string, unknown>
  for (const k in o) {
    const v = o[k]
    if (redact.has(k)) out[k] = REDACTED
    else if (Array.isArray(v)) out[`${k}_count`] = v.length
    else if (CONTENT_KEYS.has(k)) { if (typeof v === 'string') out[`${k}_count`] = 1 }
    else if (v === null || typeof v === 'number' || typeof v === 'boolean' || (typeof v === 'string' && v.length <= 200)) out[k] = v
  }
  return { value: out, bytes: 512 }
}

/** The stored form of a body under the configured capture mode, cap and redaction. */
export function captureBody(body: unknown, mode: Capture, maxBytes: number, redact: ReadonlySet<string>): Captured {
  if (body === undefined || mode === 'none') return { value: {}, bytes: 2 }
  if (mode === 'metadata') return metadataOf(body, redact)
  // Bounds first (lengths only: most bodies are under the cap however their strings escape), then, only when the
  // bounds straddle the cap, the exact size.
  const w: Walk = { lo: 0, hi: 0, exact: false, redact: false }
  measure(body, maxBytes, redact, 0, w)
  if (w.lo <= maxBytes && w.hi > maxBytes) {
    w.lo = w.hi = 0
    w.exact = true
    measure(body, maxBytes, redact, 0, w)
  }
  if (w.lo <= maxBytes) return { value: w.redact ? redactCopy(body, redact) : body, bytes: w.lo }
  return truncate(body, maxBytes, redact)
}
