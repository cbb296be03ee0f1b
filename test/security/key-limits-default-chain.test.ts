/**
 * A key's own limits and budgets (set through the admin API) hold with the shipped config, no chain configured:
 * config/default.yaml's `default` and `recorded` chains carry rate-limit and budget after auth. Before, both chains
 * lacked them, so a key minted with `limits.rpm` or `budgets.daily_usd` was accepted by the admin API and then not
 * held to either (the "$10 key spending $217" failure of other gateways, by omission).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadSettings } from '../../gateway/settings.ts'
import { seedPrompt } from '../admin/helpers.ts'
import { openStore } from '../../store/index.ts'
import { bearer, startStack, type Stack } from './helpers.ts'

let s: Stack

beforeAll(async () => {
  s = await startStack({ store: await openStore({ dataDir: 'memory://' }) })
}, 60_000)

afterAll(async () => {
  await s?.close()
})

describe('the shipped chains hold keys to their own limits and budgets', () => {
  it('config/default.yaml: rate-limit and budget after auth in the default and recorded chains', () => {
    const chains = loadSettings().chains
    for (const name of ['default', 'recorded']) {
      const names = (chains[name] ?? []).map((p) => (typeof p === 'string' ? p : p.name))
      expect(names.indexOf('rate-limit'), name).toBeGreaterThan(names.indexOf('auth'))
      expect(names.indexOf('budget'), name).toBeGreaterThan(names.indexOf('auth'))
    }
  })

  it('a key minted with limits.rpm is refused past it (429) on /v1, with the rate-limit headers', async () => {
    const k = await s.mint({ team: 'blue', role: 'invoker', limits: { rpm: 2 } })
    const first = await s.chat(k.key)
    expect(first.status, first.text).toBe(200)
    expect(first.headers.get('x-ratelimit-limit-requests')).toBe('2')
    expect(first.headers.get('x-ratelimit-remaining-requests')).toBe('1')
    expect((await s.chat(k.key)).status).toBe(200)
    const third = await s.chat(k.key)
    expect(third.status).toBe(429)
    expect(third.body.error).toMatchObject({ code: 'MCP_ERR_LIMIT_RATE' })
    expect(third.body.error.message).toContain('principal.rpm')
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0)
  })

  it('a key minted with budgets.daily_usd is refused once it cannot cover a request (402 budget_exceeded)', async () => {
    const before = s.mock.requests.length
    const k = await s.mint({ team: 'blue', role: 'invoker', budgets: { daily_usd: 0.000001 } })
    const r = await s.chat(k.key)
    expect(r.status, r.text).toBe(402)
    expect(r.body.error).toMatchObject({ code: 'budget_exceeded', type: 'insufficient_quota' })
    expect(r.headers.get('x-mcp-budget')).toBe('principal.daily_usd')
    expect(s.mock.requests.length).toBe(before) // refused before the provider was called

    const rich = await s.mint({ team: 'blue', role: 'invoker', budgets: { daily_usd: 100 } })
    const ok = await s.chat(rich.key)
    expect(ok.status, ok.text).toBe(200)
    expect(Number(ok.headers.get('x-mcp-budget-remaining-usd'))).toBeLessThan(100)
  })

  it('a key without limits or budgets is not limited and gets no limit or budget headers', async () => {
    const k = await s.mint({ team: 'blue', role: 'invoker' })
    for (let i = 0; i < 5; i++) {
      const r = await s.chat(k.key)
      expect(r.status, r.text).toBe(200)
      expect(r.headers.get('x-ratelimit-limit-requests')).toBeNull()
      expect(r.headers.get('x-mcp-budget-remaining-usd')).toBeNull()
    }
  })

  it('execute (the recorded chain) holds the key to its limits too', async () => {
    const { promptId } = await seedPrompt(s.t, 'default-chain-limits', [{ template: 'echo hi', model: 'mock/gpt-4o-mini' }])
    await s.t.store.query("UPDATE prompts SET team = 'blue' WHERE id = $1", [promptId]) // the key's team may execute it
    const dep = await s.as(undefined, 'POST', 'deployments', { prompt_id: promptId, environment: 'staging' })
    expect(dep.status, dep.text).toBe(201)
    const k = await s.mint({ role: 'invoker', team: 'blue', limits: { rpm: 1 } })
    const exec = (): Promise<{ status: number; body: any }> => s.t.data('POST', '/api/v1/mcp/execute', { deployment_id: dep.body.id }, bearer(k.key))
    expect((await exec()).status).toBe(200)
    const second = await exec()
    expect(second.status).toBe(429)
    expect(second.body.error.code).toBe('MCP_ERR_LIMIT_RATE')
  })
})

describe('a key whose limits or budgets a chain would not hold says so', () => {
  it('the shipped chains: no warnings', async () => {
    const k = await s.mint({ team: 'blue', role: 'invoker', limits: { rpm: 5 }, budgets: { monthly_usd: 5 } })
    expect(k.body.warnings).toBeUndefined()
  })

  it('chains of the operator\'s own without rate-limit or budget: creation, change and rotation answers name the routes', async () => {
    const own = await startStack({
      store: await openStore({ dataDir: 'memory://' }),
      override: { chains: { default: ['request-id', 'auth', 'cost-meter'], recorded: ['request-id', 'auth', 'rate-limit', 'budget', 'execution-log'] } },
    })
    try {
      const k = await own.mint({ team: 'blue', role: 'invoker', limits: { rpm: 1 }, budgets: { daily_usd: 1 } })
      expect(k.body.warnings).toEqual([
        'limits are not held on routes chat, embeddings, messages: their chains have no rate-limit plugin after auth (docs/rbac.md)',
        'budgets are not held on routes chat, embeddings, messages: their chains have no budget plugin after auth (docs/rbac.md)',
      ])
      // What the warning says: the key's rpm of 1 does not stop a second call.
      expect((await own.chat(k.key)).status).toBe(200)
      expect((await own.chat(k.key)).status).toBe(200)
      // Only what the key carries is warned about; a change that sets neither says nothing.
      const plain = await own.mint({ team: 'blue', role: 'invoker', budgets: { daily_usd: 1 } })
      expect(plain.body.warnings).toEqual(['budgets are not held on routes chat, embeddings, messages: their chains have no budget plugin after auth (docs/rbac.md)'])
      const renamed = await own.as(undefined, 'PATCH', `keys/${plain.id}`, { name: 'renamed' })
      expect(renamed.status, renamed.text).toBe(200)
      expect(renamed.body.warnings).toBeUndefined()
      const dropped = await own.as(undefined, 'PATCH', `keys/${plain.id}`, { budgets: {} })
      expect(dropped.status, dropped.text).toBe(200)
      expect(dropped.body.warnings).toBeUndefined()
      const rotated = await own.as(undefined, 'POST', `keys/${k.id}/rotate`, { overlap_seconds: 0 })
      expect(rotated.status, rotated.text).toBe(201)
      expect(rotated.body.warnings).toHaveLength(2)
      // Never stored: the key read back has no warnings.
      expect((await own.as(undefined, 'GET', `keys/${k.id}`)).body.warnings).toBeUndefined()
    } finally {
      await own.close()
    }
  }, 60_000)
})
