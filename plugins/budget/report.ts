/**
 * The budgets as the admin API lists them (GET /api/v1/mcp/budgets): per budget and scope id with a
 * counter in the current period, its limits, spent, reserved and remaining, read from the store the
 * plugin uses (Redis: every instance's spending; expired reservations dropped first).
 */
import type { BackendReader } from './backend.ts'
import type { BudgetRule } from './config.ts'
import { nanoToUsd } from './estimate.ts'
import { periodWindow } from './period.ts'
import type { CounterSpec, CounterState, Units } from './store.ts'

export interface BudgetReportRow {
  budget: string
  scope: string
  id: string
  mode: 'hard' | 'soft'
  period: string
  periodStart: string
  periodEnd: string
  limit: { usd: number | null; tokens: number | null; requests: number | null }
  spent: { usd: number; tokens: number; requests: number }
  reserved: { usd: number; tokens: number; requests: number }
  remaining: { usd: number | null; tokens: number | null; requests: number | null }
  percent: number
  backend: 'redis' | 'local'
}

/** A rule's limits per unit (nano-USD, tokens, requests); -1 = none. */
export function limitsOf(r: BudgetRule): Units {
  return [r.amountUsd !== undefined ? Math.round(r.amountUsd * 1e9) : -1, r.tokens ?? -1, r.requests ?? -1]
}

/** Highest used share of a counter, percent (settled spend). */
export function usedPercent(c: CounterSpec, s: CounterState): number {
  let p = 0
  for (let u = 0; u < 3; u++) {
    const lim = c.limits[u]!
    if (lim > 0) p = Math.max(p, (s.spent[u]! / lim) * 100)
    else if (lim === 0 && s.spent[u]! > 0) p = Math.max(p, 100)
  }
  return p
}

export async function buildReport(budgets: readonly BudgetRule[], backend: BackendReader, now: number): Promise<{ rows: BudgetReportRow[]; errors: string[] }> {
  const rows: BudgetReportRow[] = []
  const errors: string[] = []
  const reader = backend.reader
  for (const r of budgets) {
    const w = periodWindow(r.period, now)
    let ids: string[]
    try {
      ids = r.scope === 'global' ? ['*'] : r.id !== '*' ? [r.id] : (await reader.scopes(r.name, w.start)).sort()
    } catch (e) { errors.push(`${r.name}: ${(e as Error).message}`); continue }
    const cs: CounterSpec[] = ids.map((id) => ({ budget: r.name, scopeId: id, periodStart: w.start, periodEnd: w.end, hard: r.mode === 'hard', limits: limitsOf(r) }))
    const states = await backend.peek(cs, now)
    if (!states) { errors.push(`${r.name}: the budget store did not answer`); continue }
    for (const [i, c] of cs.entries()) {
      const s = states[i]!
      const lim = (u: number): number | null => (c.limits[u]! >= 0 ? c.limits[u]! : null)
      const left = (u: number): number | null => (c.limits[u]! >= 0 ? Math.max(0, c.limits[u]! - s.spent[u]! - s.reserved[u]!) : null)
      const usd = (v: number | null): number | null => (v === null ? null : nanoToUsd(v))
      rows.push({
        budget: r.name, scope: r.scope, id: c.scopeId, mode: r.mode, period: r.period,
        periodStart: new Date(c.periodStart).toISOString(), periodEnd: new Date(c.periodEnd).toISOString(),
        limit: { usd: usd(lim(0)), tokens: lim(1), requests: lim(2) },
        spent: { usd: nanoToUsd(s.spent[0]), tokens: s.spent[1], requests: s.spent[2] },
        reserved: { usd: nanoToUsd(s.reserved[0]), tokens: s.reserved[1], requests: s.reserved[2] },
        remaining: { usd: usd(left(0)), tokens: left(1), requests: left(2) },
        percent: Math.round(usedPercent(c, s) * 100) / 100,
        backend: reader.kind,
      })
    }
  }
  return { rows, errors }
}
