/**
 * Calendar-aligned UTC periods: a day starts at 00:00, a week on Monday 00:00, a month on the 1st
 * 00:00. A budget's counter is keyed by its period's start, so a new period is a new counter: no
 * reset job, nothing to race.
 */
import type { BudgetPeriod } from './config.ts'

export type PeriodUnit = BudgetPeriod | 'hour'

export interface PeriodWindow {
  /** Epoch ms of the period's first instant. */
  readonly start: number
  /** Epoch ms of the next period's first instant. */
  readonly end: number
}

const DAY = 86_400_000

export function periodWindow(unit: PeriodUnit, now: number): PeriodWindow {
  const d = new Date(now)
  const y = d.getUTCFullYear()
  const m = d.getUTCMonth()
  switch (unit) {
    case 'hour': {
      const start = Math.floor(now / 3_600_000) * 3_600_000
      return { start, end: start + 3_600_000 }
    }
    case 'day': {
      const start = Date.UTC(y, m, d.getUTCDate())
      return { start, end: start + DAY }
    }
    case 'week': {
      const day = Date.UTC(y, m, d.getUTCDate())
      // getUTCDay: 0 = Sunday; Monday-based offset.
      const start = day - ((d.getUTCDay() + 6) % 7) * DAY
      return { start, end: start + 7 * DAY }
    }
    case 'month':
      return { start: Date.UTC(y, m, 1), end: Date.UTC(y, m + 1, 1) }
  }
}

/** A compact, sortable label of a period start (used in keys and the admin API): 2026-05-01T00:00Z. */
export function periodLabel(start: number): string {
  return new Date(start).toISOString().slice(0, 16) + 'Z'
}
