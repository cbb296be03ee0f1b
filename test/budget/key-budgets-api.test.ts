/**
 * GET /api/v1/mcp/budgets lists each API key's own budgets (`budgets.daily_usd`, `budgets.monthly_usd` of its
 * record) with their limit, spent and remaining, as main.ts wires the route (the control plane's keys). Before, it
 * listed configured budgets only: an operator could not see a key's spend against its own limit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { registerBudgetRoutes } from '../../admin/routes/budgets.ts'
import { openStore } from '../../store/index.ts'
import { startStack, type Stack } from '../security/helpers.ts'

let s: Stack

beforeAll(async () => {
  s = await startStack({
    store: await openStore({ dataDir: 'memory://' }),
    adminRoutes: (admin, cp, gw) => registerBudgetRoutes(admin, gw, () => cp.snapshot.keys.values()),
    override: {
      chains: { default: ['request-id', 'auth', 'budget', 'cost-meter'] },
      plugins: { budget: { backend: 'local', budgets: [{ name: 'all', scope: 'global', period: 'month', amountUsd: 100 }] } },
    },
  })
}, 60_000)

afterAll(async () => {
  await s?.close()
})

describe('GET /budgets lists per-key budgets', () => {
  it('each key budget with its key id, period, limit, spent and remaining; never the key secret', async () => {
    const spender = await s.mint({ team: 'blue', role: 'invoker', budgets: { daily_usd: 1.5, monthly_usd: 20 } })
    const idle = await s.mint({ team: 'red', role: 'invoker', budgets: { monthly_usd: 5 } })
    await s.mint({ team: 'red', role: 'invoker' })
    expect((await s.chat(spender.key)).status).toBe(200)

    const r = await s.as(undefined, 'GET', 'budgets')
    expect(r.status).toBe(200)
    const rows = r.body.data as Record<string, any>[]
    const mine = (id: string): Record<string, any>[] => rows.filter((x) => x['scope'] === 'key' && x['id'] === id)
    // The configured budget is still listed.
    expect(rows.some((x) => x['budget'] === 'all' && x['scope'] === 'global')).toBe(true)

    const daily = mine(spender.id).find((x) => x['budget'] === 'principal.daily_usd')!
    expect(daily).toMatchObject({ scope: 'key', id: spender.id, period: 'day', mode: 'hard', limit: { usd: 1.5, tokens: null, requests: null } })
    expect(daily['spent'].usd).toBeGreaterThan(0)
    expect(daily['spent'].requests).toBe(1)
    expect(daily['remaining'].usd).toBeCloseTo(1.5 - daily['spent'].usd, 9)
    expect(mine(spender.id).find((x) => x['budget'] === 'principal.monthly_usd')).toMatchObject({ period: 'month', limit: { usd: 20 } })
    // A key that has not spent yet is listed too, at 0.
    expect(mine(idle.id)).toEqual([expect.objectContaining({ budget: 'principal.monthly_usd', spent: { usd: 0, tokens: 0, requests: 0 }, remaining: { usd: 5, tokens: null, requests: null } })])
    // Keys without budgets have no rows; no secret, hash or prefix anywhere.
    expect(rows.filter((x) => x['scope'] === 'key')).toHaveLength(3)
    for (const k of [spender, idle]) expect(r.text).not.toContain(k.key.slice(4, 16))
    expect(r.text).not.toMatch(/hash|secret/)

    const only = await s.as(undefined, 'GET', 'budgets?budget=principal.daily_usd')
    expect((only.body.data as Record<string, any>[]).map((x) => x['id'])).toEqual([spender.id])
  })
})
