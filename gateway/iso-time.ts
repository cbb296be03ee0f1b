/**
 * Epoch ms of the fields of an ISO 8601 date or date-time matched by a caller's pattern, checked against the calendar:
 * not Date.parse, which rolls impossible dates over (Feb 30 is Mar 2) and reads a time without an offset in the
 * server's time zone. Each caller's pattern decides the syntax it accepts (the usage API's query, price entries'
 * `effectiveFrom`); they share this group layout: 1 year, 2 month, 3 day, 4 hour, 5 minute, 6 second, 7 fraction,
 * 8 `Z`, 9 offset sign, 10 offset hours, 11 offset minutes. A missing time is midnight; a missing offset is UTC.
 */
export function epochOfIsoMatch(m: RegExpExecArray): number {
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
