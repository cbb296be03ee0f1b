/**
 * Budgets on the admin API: each budget of the running configuration, per scope id that has a counter
 * in the current period, then each API key's own budgets (`budgets.daily_usd`, `budgets.monthly_usd` of its
 * record: `principal.daily_usd`, `principal.monthly_usd` of scope `key`, id the key's id), with their limits,
 * spent, reserved (admitted, not yet settled) and remaining.
 *   GET /api/v1/mcp/budgets            ?budget=<name> filters
 * Read from the budget store (Redis when the plugin uses it: every instance's spending). A team-bound caller sees
 * only its team's rows (its team's budget, its team's keys).
 */
import type { Gateway } from '../../gateway/gateway.ts'
import type { KeyRecord } from '../../plugins/auth/api-key.ts'
import type { BudgetInstance, BudgetReportRow, KeyBudgetOwner } from '../../plugins/budget/index.ts'
import { authorize, teamFilter } from '../rbac.ts'
import { sendJson, type AdminServer } from '../server.ts'

function budgetInstances(gw: Gateway): BudgetInstance[] {
  const out = new Set<BudgetInstance>()
  for (const [key, inst] of gw.holder.current.instances) {
    if (key.startsWith('budget:') && typeof (inst as Partial<BudgetInstance>).budgetReport === 'function') out.add(inst as BudgetInstance)
  }
  return [...out]
}

/**
 * `keys`: the API keys that can authenticate (the control plane's snapshot); without it only configured budgets
 * are listed.
 */
export function registerBudgetRoutes(admin: AdminServer, gw: Gateway, keys?: () => Iterable<KeyRecord>): void {
  admin.route('GET', '/api/v1/mcp/budgets', async (req, res) => {
    req.resume()
    const team = teamFilter(authorize(req, 'budgets.read'))
    const q = new URL(req.url ?? '/', 'http://x').searchParams
    const only = q.get('budget')
    // Keys with budgets of their own, and the team of every key (for a team-bound caller's key-scoped rows).
    const owners: KeyBudgetOwner[] = []
    const teamOf = new Map<string, string | null>()
    for (const k of keys?.() ?? []) {
      teamOf.set(k.id, k.team)
      if ((k.budgets.daily_usd !== undefined || k.budgets.monthly_usd !== undefined) && (team === undefined || k.team === team)) {
        owners.push({ id: k.id, budgets: k.budgets })
      }
    }
    const visible = (row: BudgetReportRow): boolean =>
      team === undefined || (row.scope === 'team' && row.id === team) || (row.scope === 'key' && teamOf.get(row.id) === team)
    const rows: BudgetReportRow[] = []
    const errors: string[] = []
    const seen = new Set<string>()
    for (const inst of budgetInstances(gw)) {
      const r = await inst.budgetReport(owners)
      errors.push(...r.errors)
      for (const row of r.rows) {
        // Route overrides may share budgets (same names, same store): list each counter once.
        const k = `${row.budget}\u0000${row.id}\u0000${row.periodStart}`
        if (seen.has(k) || (only !== null && row.budget !== only) || !visible(row)) continue
        seen.add(k)
        rows.push(row)
      }
    }
    sendJson(res, 200, { data: rows, ...(errors.length > 0 ? { errors } : {}) })
  })
}
