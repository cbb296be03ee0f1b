/**
 * `effectiveFrom` of a price entry (the cost meter's `pricing.models`, the budget plugin's `prices`, prices.json):
 * a date (`2027-01-01`, midnight UTC) or a date-time with an offset (`2027-01-01T09:00Z`, `…T09:00:00+02:00`).
 * One definition for every price entry, so the same text always means the same instant:
 *
 *  - a date-time without an offset is refused by the schema (Date.parse reads it in the server's time zone);
 *  - an impossible date or time (`2025-02-30`, `T24:00`) is refused, not rolled over as Date.parse does.
 */
import { epochOfIsoMatch } from '../iso-time.ts'
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
  return m ? epochOfIsoMatch(m) : NaN
}

/** `<where>[i].effectiveFrom: not a valid date` for every entry whose date does not exist. */
export function effectiveFromErrors(entries: readonly { readonly effectiveFrom: string }[], where: string): string[] {
  const errors: string[] = []
  for (const [i, e] of entries.entries()) {
    if (Number.isNaN(parseEffectiveFrom(e.effectiveFrom))) errors.push(`${where}[${i}].effectiveFrom: not a valid date (${JSON.stringify(e.effectiveFrom)}; a date, or a date-time with an offset)`)
  }
  return errors
}
