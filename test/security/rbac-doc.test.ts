/**
 * docs/rbac.md shows exactly the tables the code enforces (generated section), and every route the admin port
 * serves has an action in the route table (a route without one is admin-only, but should be listed on purpose).
 */
import { readFile } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROUTE_ACTIONS, renderRbacTables, routeAction } from '../../admin/rbac.ts'
import { registerBudgetRoutes } from '../../admin/routes/budgets.ts'
import { registerExecutionRoutes } from '../../admin/routes/executions.ts'
import { registerTargetRoutes } from '../../admin/routes/targets.ts'
import { registerUsageRoutes } from '../../admin/routes/usage.ts'
import { ACTIONS, MATRIX, ROLES } from '../../plugins/auth/roles.ts'
import { startTestMcp, testEngines, type TestMcp } from '../admin/helpers.ts'

const [pglite] = testEngines('rbac doc')

describe('docs/rbac.md', () => {
  it('contains the generated tables exactly', async () => {
    const doc = await readFile(new URL('../../docs/rbac.md', import.meta.url), 'utf8')
    const m = /<!-- GENERATED:rbac START -->\n([\s\S]*?)\n<!-- GENERATED:rbac END -->/.exec(doc)
    expect(m, 'generated markers').not.toBeNull()
    expect(m![1]).toBe(renderRbacTables())
  })

  it('the matrix names known actions only, and every action is held by the admin role', () => {
    for (const r of ROLES) for (const a of MATRIX[r]) expect(Object.keys(ACTIONS)).toContain(a)
    expect([...MATRIX.admin].sort()).toEqual(Object.keys(ACTIONS).sort())
  })
})

describe('route inventory', () => {
  let t: TestMcp

  beforeAll(async () => {
    const store = await pglite!.open()
    t = await startTestMcp({
      store,
      adminRoutes: (admin, _cp, gw) => {
        registerTargetRoutes(admin, gw)
        registerExecutionRoutes(admin, store)
        registerUsageRoutes(admin, store)
        registerBudgetRoutes(admin, gw)
      },
    })
  }, 60_000)

  afterAll(async () => {
    await t?.close()
  })

  it('every registered admin route has an action; no action entry names a route that does not exist', () => {
    const routes = t.mcp.admin.routes()
    const missing = routes.filter((r) => ROUTE_ACTIONS[r] === undefined)
    expect(missing).toEqual([])
    const registered = new Set(routes)
    const stale = Object.keys(ROUTE_ACTIONS).filter((r) => !registered.has(r) && r !== 'GET /api/v1/mcp/alerts')
    expect(stale).toEqual([])
    expect(routeAction('GET', '/api/v1/mcp/not-in-the-table')).toBe('admin')
  })
})
