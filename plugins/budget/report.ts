/**
 * The budgets as the admin API lists them (GET /api/v1/mcp/budgets): per budget and scope id with a
 * counter in the current period, its limits, spent, reserved and remaining, read from the store the
 * plugin uses (Redis: every instance's spending; expired reservations dropped first).
 */
import type { BackendReader } from './backend.ts'
import type { BudgetRule } from './config.ts'
import { nanoToUsd } from './estimate.ts'
import { periodWindow } from './period.ts'
import { MAX_UNITS, type CounterSpec, type CounterState, type Units } from './store.ts'

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

/** Highest committed share of a counter, percent: settled spend and open reservations (what an admission checks). */
export function committedPercent(c: CounterSpec, s: CounterState): number {
  let p = 0
  for (let u = 0; u < 3; u++) {
    const lim = c.limits[u]!
    const used = s.spent[u]! + s.reserved[u]!
    if (lim > 0) p = Math.max(p, (used / lim) * 100)
    else if (lim === 0 && used > 0) p = Math.max(p, 100)
  }
  return p
}

/** A key record's own budget as the report lists it: the rule it is enforced under and the record field of its amount. */
export interface KeyBudgetRule { readonly field: 'daily_usd' | 'monthly_usd'; readonly rule: BudgetRule }

/** An API key with budgets of its own (its id and amounts in USD; never its secret). */
export interface KeyBudgetOwner { readonly id: string; readonly budgets: Readonly<Partial<Record<'daily_usd' | 'monthly_usd', number>>> }

/**
 * The report: each configured budget per scope id with a counter in the current period, then each key record's own
 * budgets (`keys`, enforced under `keyRules`), one row per key and budget, counter or not.
 */
export async function buildReport(
  budgets: readonly BudgetRule[], backend: BackendReader, now: number,
  keys: readonly KeyBudgetOwner[] = [], keyRules: readonly KeyBudgetRule[] = [],
): Promise<{ rows: BudgetReportRow[]; errors: string[] }> {
  const rows: BudgetReportRow[] = []
  const errors: string[] = []
  const reader = backend.reader
  const add = async (r: BudgetRule, cs: readonly CounterSpec[]): Promise<void> => {
    if (cs.length === 0) return
    const states = await backend.peek(cs, now)
    if (!states) { errors.push(`${r.name}: the budget store did not answer`); return }
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
  for (const r of budgets) {
    const w = periodWindow(r.period, now)
    let ids: string[]
    try {
      ids = r.scope === 'global' ? ['*'] : r.id !== '*' ? [r.id] : (await reader.scopes(r.name, w.start)).sort()
    } catch (e) { errors.push(`${r.name}: ${(e as Error).message}`); continue }
    await add(r, ids.map((id) => ({ budget: r.name, scopeId: id, periodStart: w.start, periodEnd: w.end, hard: r.mode === 'hard', limits: limitsOf(r) })))
  }
  for (const { field, rule } of keyRules) {
    const w = periodWindow(rule.period, now)
    const cs: CounterSpec[] = []
    for (const k of keys) {
      const amount = keyBudgetLimit(k.budgets[field])
      if (amount !== undefined) cs.push({ budget: rule.name, scopeId: k.id, periodStart: w.start, periodEnd: w.end, hard: true, limits: [amount, -1, -1] })
    }
    await add(rule, cs)
  }
  return { rows, errors }
}

/** A key record's budget amount (USD) as its counter's limit in nano-USD, or undefined when it has none. */
export function keyBudgetLimit(usd: unknown): number | undefined {
  if (typeof usd !== 'number' || !Number.isFinite(usd) || usd < 0) return undefined
  return Math.min(Math.round(usd * 1e9), MAX_UNITS)
}
