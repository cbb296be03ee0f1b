/**
 * JSON text of the execution-log row's response and metrics, written directly (their shapes are fixed): about a
 * third of JSON.stringify's cost on the object it replaced, and no object per row for the collector. Keys whose
 * value is null are left out of metrics (store/execution-log-rows.ts METRIC_KEYS; readers put them back).
 */
import type { Usage } from '../../providers/types.ts'

/** Strings that need no escaping in JSON (the common case: names, codes, model ids). */
const PLAIN = /^[\w .:/@+~-]*$/

export function str(s: string): string {
  return s.length < 256 && PLAIN.test(s) ? `"${s}"` : JSON.stringify(s)
}

export function num(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null'
}

/** '', '001' .. '999' with trailing zeros trimmed: the fraction of a millisecond value rounded to microseconds. */
const FRACTION: readonly string[] = Array.from({ length: 1000 }, (_, i) => (i === 0 ? '' : String(i).padStart(3, '0').replace(/0+$/, '')))

/** Milliseconds rounded to the microsecond, as JSON: the same text as String(Math.round(v * 1000) / 1000). */
export function msText(v: number): string {
  const us = Math.round(v * 1000)
  if (us < 0 || !Number.isSafeInteger(us)) return num(us / 1000)
  const whole = Math.floor(us / 1000)
  const frac = us - whole * 1000
  return frac === 0 ? String(whole) : `${whole}.${FRACTION[frac]!}`
}

/** Appends `,"key":value` pieces; `value` is JSON text, or null/undefined to leave the key out. */
export class ObjectText {
  #t = ''

  raw(key: string, value: string | null | undefined): this {
    if (value !== null && value !== undefined) this.#t += `,"${key}":${value}`
    return this
  }

  str(key: string, value: string | null | undefined): this {
    if (value !== null && value !== undefined) this.#t += `,"${key}":${str(value)}`
    return this
  }

  num(key: string, value: number | null | undefined): this {
    if (value !== null && value !== undefined) this.#t += `,"${key}":${num(value)}`
    return this
  }

  /** Milliseconds, rounded to the microsecond. */
  ms(key: string, value: number | null | undefined): this {
    if (value !== null && value !== undefined) this.#t += `,"${key}":${msText(value)}`
    return this
  }

  bool(key: string, value: boolean | null | undefined): this {
    if (value !== null && value !== undefined) this.#t += value ? `,"${key}":true` : `,"${key}":false`
    return this
  }

  /** Any JSON value through JSON.stringify (null when it cannot be serialized). */
  any(key: string, value: unknown): this {
    if (value === null || value === undefined) return this
    let s: string | undefined
    try { s = JSON.stringify(value) } catch { s = undefined }
    return this.raw(key, s ?? 'null')
  }

  toString(): string {
    return this.#t === '' ? '{}' : `{${this.#t.slice(1)}}`
  }
}

/** Counters every usage keeps, zero or not. */
const USAGE_TOTALS: ReadonlySet<string> = new Set(['prompt_tokens', 'completion_tokens', 'total_tokens'])

/**
 * The usage as JSON text without its zero-valued detail counters (OpenAI reports eight of them, nested, on every
 * answer: a third of the row's JSON for PostgreSQL to parse, and no information). The three totals stay; any other
 * value is kept as it is.
 */
export function usageText(u: Usage): string {
  let t = ''
  const o = u as unknown as Record<string, unknown>
  for (const k in o) {
    const v = o[k]
    if (v === undefined) continue
    if (typeof v === 'number') {
      if (v !== 0 || USAGE_TOTALS.has(k)) t += `,${str(k)}:${num(v)}`
    } else if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      let d = ''
      const details = v as Record<string, unknown>
      for (const dk in details) {
        const dv = details[dk]
        if (dv === 0 || dv === undefined) continue
        d += `,${str(dk)}:${typeof dv === 'number' ? num(dv) : JSON.stringify(dv) ?? 'null'}`
      }
      if (d !== '') t += `,${str(k)}:{${d.slice(1)}}`
    } else t += `,${str(k)}:${JSON.stringify(v) ?? 'null'}`
  }
  return `{${t.slice(1)}}`
}

/** The response column: status, finish reason, usage and error, every key present. */
export function responseText(status: number, finishReason: string | null, usage: Usage | null | undefined, error: { code: string; details: string | undefined } | null): string {
  let u = 'null'
  if (usage) { try { u = usageText(usage) } catch { /* null */ } }
  const e = error === null ? 'null' : `{"code":${str(error.code)}${error.details === undefined ? '' : `,"details":${str(error.details)}`}}`
  // Keys in jsonb's order (shorter first, then bytewise).
  return `{"error":${e},"usage":${u},"status":${num(status)},"finish_reason":${finishReason === null ? 'null' : str(finishReason)}}`
}
