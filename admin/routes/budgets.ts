/**
 * Budgets on the admin API: each budget of the running configuration, per scope id that has a counter
 * in the current period, with its limits, spent, reserved (admitted, not yet settled) and remaining.
 *   GET /api/v1/mcp/budgets            ?budget=<name> filters
 * Read from the budget store (Redis when the plugin uses it: every instance's spending).
 */
import type { Gateway } from '../../gateway/gateway.ts'
import type { BudgetInstance, BudgetReportRow } from '../../plugins/budget/index.ts'
import { sendJson, type AdminServer } from '../server.ts'

function budgetInstances(gw: Gateway): BudgetInstance[] {
  const out = new Set<BudgetInstance>()
  for (const [key, inst] of gw.holder.current.instances) {
    if (key.startsWith('budget:') && typeof (inst as Partial<BudgetInstance>).budgetReport === 'function') out.add(inst as BudgetInstance)
  }
  return [...out]
}

export function registerBudgetRoutes(admin: AdminServer, gw: Gateway): void {
  admin.route('GET', '/api/v1/mcp/budgets', async (req, res) => {
    req.resume()
    const q = new URL(req.url ?? '/', 'http://x').searchParams
    const only = q.get('budget')
    const rows: BudgetReportRow[] = []
    const errors: string[] = []
    const seen = new Set<string>()
    for (const inst of budgetInstances(gw)) {
      const r = await inst.budgetReport()
      errors.push(...r.errors)
      for (const row of r.rows) {
        // Route overrides may share budgets (same names, same store): list each counter once.
        const k = `${row.budget}\u0000${row.id}\u0000${row.periodStart}`
        if (seen.has(k) || (only !== null && row.budget !== only)) continue
        seen.add(k)
        rows.push(row)
      }
    }
    sendJson(res, 200, { data: rows, ...(errors.length > 0 ? { errors } : {}) })
  })
}
