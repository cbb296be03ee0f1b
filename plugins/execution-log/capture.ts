/**
 * What of a request body goes into execution_logs.request: the canonical body itself when it is under the cap
 * (kept by reference, serialized later by the writer), a redacted copy when it holds a redacted key, or
 * `{truncated, bytes, sha256, head}` when it is over the cap. The size check walks the body with an early exit,
 * so a large body costs at most `maxBytes` of walking unless it is over the cap (then one JSON.stringify).
 */
import { createHash } from 'node:crypto'
import type { Capture } from './config.ts'

export interface Captured {
  value: unknown
  /** Approximate JSON size of `value`. */
  bytes: number
}

const MAX_DEPTH = 64
const REDACTED = '[redacted]'
/** Top-level fields that carry content, left out of 'metadata' captures. */
const CONTENT_KEYS = new Set(['input', 'prompt', 'instructions', 'system', 'suffix', 'user'])

interface Walk { bytes: number; redact: boolean }

/** Adds the approximate JSON size of `v` to `w.bytes`, stopping once past `budget`; notes redacted keys. */
function measure(v: unknown, budget: number, redact: ReadonlySet<string>, depth: number, w: Walk): void {
  switch (typeof v) {
    case 'string': w.bytes += (v.length < 64 ? v.length : Buffer.byteLength(v)) + 2; return
    case 'number': w.bytes += 8; return
    case 'boolean': w.bytes += 5; return
    case 'object': {
      if (v === null) { w.bytes += 4; return }
      if (depth >= MAX_DEPTH) { w.bytes = Infinity; return }
      if (Array.isArray(v)) {
        w.bytes += 2 + v.length
        for (const x of v) { measure(x, budget, redact, depth + 1, w); if (w.bytes > budget) return }
        return
      }
      w.bytes += 2
      const o = v as Record<string, unknown>
      for (const k in o) {
        w.bytes += k.length + 4
        if (redact.has(k)) w.redact = true
        measure(o[k], budget, redact, depth + 1, w)
        if (w.bytes > budget) return
      }
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
  const w: Walk = { bytes: 0, redact: false }
  measure(body, maxBytes, redact, 0, w)
  if (w.bytes <= maxBytes) return { value: w.redact ? redactCopy(body, redact) : body, bytes: w.bytes }
  return truncate(body, maxBytes, redact)
}
