/**
 * MCP_ENVIRONMENTS at start: environments are matched exactly (case-sensitively), so a repeated name, or two names
 * that differ only by case (`prod,Prod`), would make deployments and executes that look alike go to different
 * environments. Such a configuration is refused at start (MCP_ERR_CONFIG_INVALID naming the duplicate). A key's
 * environment scopes name configured environments.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { openStore } from '../../store/index.ts'
import type { Store } from '../../store/types.ts'
import { startTestMcp } from './helpers.ts'

describe('MCP_ENVIRONMENTS', () => {
  let store: Store
  beforeAll(async () => { store = await openStore({ dataDir: 'memory://' }) })
  afterAll(async () => { await store?.close() })
  afterEach(() => { vi.unstubAllEnvs() })

  it.each([
    ['dev,prod,Prod', "'Prod' and 'prod'"],
    ['dev, qa ,dev', "'dev' twice"],
  ])('refuses %s at start, naming the duplicate', async (value, named) => {
    vi.stubEnv('MCP_ENVIRONMENTS', value)
    const e = await startTestMcp({ store, ownStore: false }).then(async (t) => { await t.close(); return undefined }, (err: unknown) => err)
    expect(e).toMatchObject({ code: 'MCP_ERR_CONFIG_INVALID' })
    expect((e as Error).message).toContain('MCP_ENVIRONMENTS')
    expect((e as Error).message).toContain(named)
  })

  it('refuses the same in the environments option', async () => {
    const e = await startTestMcp({ store, ownStore: false, environments: ['qa', 'QA'] }).then(async (t) => { await t.close(); return undefined }, (err: unknown) => err)
    expect(e).toMatchObject({ code: 'MCP_ERR_CONFIG_INVALID' })
    expect((e as Error).message).toContain("'QA' and 'qa'")
  })

  it('accepts distinct names and serves them in order', async () => {
    vi.stubEnv('MCP_ENVIRONMENTS', 'dev,qa,prod')
    const t = await startTestMcp({ store, ownStore: false })
    try {
      const r = await t.api('GET', 'environments')
      expect(r.body.data.map((e: { name: string }) => e.name)).toEqual(['dev', 'qa', 'prod'])
    } finally { await t.close() }
  })
})

describe('API keys scoped to environments', () => {
  let store: Store
  beforeAll(async () => { store = await openStore({ dataDir: 'memory://' }) })
  afterAll(async () => { await store?.close() })

  it('name configured environments, matched exactly: another name is a 422 naming it (the key could never execute)', async () => {
    const t = await startTestMcp({ store, ownStore: false, environments: ['dev', 'prod'] })
    try {
      for (const environments of [['prod', 'production'], ['Prod']]) {
        const r = await t.api('POST', 'keys', { name: 'scoped', role: 'invoker', team: 'blue', scopes: { environments } })
        expect(r.status, r.text).toBe(422)
        expect(r.body.error.param).toBe(`scopes.environments[${environments.length - 1}]`)
        expect(r.body.error.message).toContain('dev, prod')
      }
      const ok = await t.api('POST', 'keys', { name: 'scoped', role: 'invoker', team: 'blue', scopes: { environments: ['prod'] } })
      expect(ok.status, ok.text).toBe(201)
      const patched = await t.api('PATCH', `keys/${ok.body.id}`, { scopes: { environments: ['staging'] } })
      expect(patched.status, patched.text).toBe(422)
      expect(patched.body.error.param).toBe('scopes.environments[0]')
      const kept = await t.api('GET', `keys/${ok.body.id}`)
      expect(kept.body.scopes.environments).toEqual(['prod'])
    } finally { await t.close() }
  })
})
