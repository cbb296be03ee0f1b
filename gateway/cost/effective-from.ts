/**
 * `effectiveFrom` of a price entry (the cost meter's `pricing.models`, the budget plugin's `prices`, prices.json):
 * a date (`2027-01-01`, midnight UTC) or a date-time with an offset (`2027-01-01T09:00Z`, `…T09:00:00+02:00`).
 * One definition for every price entry, so the same text always means the same instant:
 *
 *  - a date-time without an offset is refused by the schema (Date.parse reads it in the server's time zone);
 *  - an impossible date or time (`2025-02-30`, `T24:00`) is refused, not rolled over as Date.parse does.
 */
import type { JSONSchema } from '../validate.ts'

export const EFFECTIVE_FROM_PATTERN = '^\\d{4}-\\d{2}-\\d{2}(T\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?(Z|[+-]\\d{2}:\\d{2}))?$'

/** The schema of an `effectiveFrom` field (the syntax; parseEffectiveFrom checks the calendar). */
export function effectiveFromSchema(defaultValue?: string): JSONSchema {
  return defaultValue === undefined ? { type: 'string', pattern: EFFECTIVE_FROM_PATTERN } : { type: 'string', pattern: EFFECTIVE_FROM_PATTERN, default: defaultValue }
}

const SYNTAX = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(?:(Z)|([+-])(\d{2}):(\d{2})))?$/

/** Epoch ms of an `effectiveFrom`, or NaN when it is not one (bad syntax, or a date or time that does not exist). */
export function parseEffectiveFrom(v: string): number {
  const m = SYNTAX.exec(v)
  if (!m) return NaN
  const n = (i: number): number => (m[i] === undefined ? 0 : Number(m[i]))
  const [y, mo, d, h, mi, s, oh, om] = [n(1), n(2), n(3), n(4), n(5), n(6), n(10), n(11)]
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59 || oh > 23 || om > 59) return NaN
  const ms = m[7] === undefined ? 0 : Math.floor(Number(`0.${m[7]}`) * 1000)
  // setUTCFullYear, not Date.UTC: years 0-99 stay themselves.
  const date = new Date(0)
  date.setUTCFullYear(y, mo - 1, d)
  // Day 31 of a 30-day month, Feb 29 of a common year.
  if (date.getUTCDate() !== d) return NaN
  date.setUTCHours(h, mi, s, ms)
  return date.getTime() - (m[9] === '-' ? -1 : 1) * (oh * 60 + om) * 60_000
}

/** `<where>[i].effectiveFrom: not a valid date` for every entry whose date does not exist. */
export function effectiveFromErrors(entries: readonly { readonly effectiveFrom: string }[], where: string): string[] {
  const errors: string[] = []
  for (const [i, e] of entries.entries()) {
    if (Number.isNaN(parseEffectiveFrom(e.effectiveFrom))) errors.push(`${where}[${i}].effectiveFrom: not a valid date (${JSON.stringify(e.effectiveFrom)}; a date, or a date-time with an offset)`)
  }
  return errors
}
