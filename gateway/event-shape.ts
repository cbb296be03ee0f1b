/**
 * The pass-through tap's fallback for OpenAI events that are not compact JSON. The tap (gateway/deliver.ts) finds a
 * finish reason, a usage object and the usage-only chunk by searching an event's text for the keys as compact JSON
 * spells them (`"finish_reason":"`, `"usage":{`, `"choices":[]`): exact for compact JSON, blind to other
 * serializations of the same event (Python's json.dumps: `"finish_reason": "stop"`; pretty-printed events sent as
 * several data lines). The functions here are only called where those searches failed, so a compact stream never
 * reaches them: they tell whether an event may be in another serialization, and read it by parsing.
 */
import type { FinishReason, Usage } from '../providers/types.ts'

/** JSON's whitespace: space, LF, CR, tab. */
function isJsonSpace(c: number): boolean {
  return c === 32 || c === 10 || c === 13 || c === 9
}

/**
 * The event looks like compact JSON (`{"id":"…`: a key right after the brace, its colon followed by no whitespace),
 * where the tap's key searches are exact: parsing it would learn nothing more. Anything else is parsed.
 */
export function looksCompact(d: string): boolean {
  if (d.charCodeAt(1) !== 34 /* '"' */) return false
  const i = d.indexOf('":')
  return i !== -1 && !isJsonSpace(d.charCodeAt(i + 2))
}

/**
 * `d[at]` starts the value of key `name` (quoted), with whitespace allowed around the colon (`"choices" : []`). A
 * quote inside a JSON string is escaped, so only a real key matches.
 */
export function spacedKeyBefore(d: string, at: number, name: string): boolean {
  let j = at - 1
  while (j >= 0 && isJsonSpace(d.charCodeAt(j))) j--
  if (d.charCodeAt(j) !== 58 /* ':' */) return false
  j--
  while (j >= 0 && isJsonSpace(d.charCodeAt(j))) j--
  return j + 1 >= name.length && d.startsWith(name, j + 1 - name.length)
}

export interface EventFacts {
  /** The newest string finish_reason among its choices, if any. */
  finish: FinishReason | undefined
  /** Its usage object, if it has one (not null). */
  usage: Usage | undefined
}

/** What the tap's searches look for, read by parsing the event; undefined when it is not a JSON object. */
export function parseEventFacts(d: string): EventFacts | undefined {
  let o: unknown
  try { o = JSON.parse(d) } catch { return undefined }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return undefined
  const { choices, usage } = o as { choices?: unknown; usage?: unknown }
  let finish: FinishReason | undefined
  if (Array.isArray(choices)) {
    for (const c of choices as unknown[]) {
      const f = (c as { finish_reason?: unknown } | null)?.finish_reason
      if (typeof f === 'string') finish = f as FinishReason
    }
  }
  return { finish, usage: usage !== null && typeof usage === 'object' && !Array.isArray(usage) ? usage as Usage : undefined }
}

/** The event's usage object when it is not compact JSON (hasUsageObject, the compact search, found none). */
export function spacedUsage(d: string): boolean {
  return !looksCompact(d) && parseEventFacts(d)?.usage !== undefined
}
