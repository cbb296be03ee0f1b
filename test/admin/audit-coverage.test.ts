/**
 * Every mutating admin route writes exactly one audit row (actor, action, object) in its transaction, none when it
 * is refused (4xx) or changes nothing, and no row holds a credential or key material, before/after included.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { startTestMcp, testEngines, type ApiResponse, type TestMcp } from './helpers.ts'

const [pglite] = testEngines('audit coverage')
const SECRETS = ['sk-audit-SECRET-1234', 'org-audit-SECRET', 'sk-audit-SECRET-5678']

describe('audit coverage of mutating routes', () => {
  let t: TestMcp
  let mock: OpenAIMock
  let last = 0

  beforeAll(async () => {
    mock = await startOpenAIMock()
    t = await startTestMcp({
      store: await pglite!.open(),
      override: { providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-test' } }, security: { allowHttpProviderUrls: true, providerUrlAllowlist: ['127.0.0.1'] } },
    })
  }, 60_000)

  afterAll(async () => {
    await t?.close()
    await mock?.close()
  })

  /** Rows written since the last call (background rows, refusals and reloads, left out). */
  const rows = async (): Promise<{ actor: string; action: string; object_id: string; before: unknown; after: unknown }[]> => {
    const { rows } = await t.store.query<{ id: string; actor: string; action: string; object_id: string; before: unknown; after: unknown }>(
      "SELECT id, actor, action, object_id, before, after FROM audit_log WHERE id > $1 AND action NOT IN ('admin.refused', 'config.reload') ORDER BY id", [last])
    for (const r of rows) last = Math.max(last, Number(r.id))
    return rows
  }
  const one = async (r: ApiResponse, status: number, action: string, objectId: string): Promise<void> => {
    expect(r.status, r.text).toBe(status)
    const written = await rows()
    expect(written.map((w) => [w.actor, w.action, w.object_id])).toEqual([['bootstrap', action, objectId]])
  }
  const none = async (r: ApiResponse, status: number): Promise<void> => {
    expect(r.status, r.text).toBe(status)
    expect(await rows()).toEqual([])
  }

  it('one row per change, none for refusals and no-ops, never a secret', async () => {
    const p = await t.api('POST', 'prompts', { name: 'audited' })
    await one(p, 201, 'prompt.create', p.body.id)
    const v1 = await t.api('POST', `prompts/${p.body.id}/versions`, { template: 'one {{x}}', model: 'mock/gpt-4o' })
    await one(v1, 201, 'prompt.version.create', v1.body.id)
    await none(await t.api('POST', `prompts/${p.body.id}/versions`, { template: 'one {{x}}', model: 'mock/gpt-4o' }), 200)
    const v2 = await t.api('POST', `prompts/${p.body.id}/versions`, { template: 'two {{x}}', model: 'mock/gpt-4o' })
    await one(v2, 201, 'prompt.version.create', v2.body.id)
    await none(await t.api('POST', `prompts/${p.body.id}/versions`, { template: 'three', model: 'mock/gpt-4o' }, { 'if-match': '"1"' }), 412)

    const d = await t.api('POST', 'deployments', { prompt_id: p.body.id, environment: 'development', version: 1 })
    await one(d, 201, 'deployment.create', d.body.id)
    await none(await t.api('POST', 'deployments', { prompt_id: p.body.id, environment: 'nowhere' }), 422)
    await one(await t.api('PUT', `deployments/${d.body.id}`, { version: 2 }, { 'if-match': '*' }), 200, 'deployment.update', d.body.id)
    await none(await t.api('PUT', `deployments/${d.body.id}`, { version: 2 }, { 'if-match': '*' }), 200)
    await none(await t.api('PUT', `deployments/${d.body.id}`, { version: 1 }, { 'if-match': '"99"' }), 412)
    await none(await t.api('PUT', `deployments/${d.body.id}`, { version: 1 }), 428)
    await none(await t.api('POST', `deployments/${d.body.id}/rollback`, {}), 428)
    await one(await t.api('POST', `deployments/${d.body.id}/rollback`, {}, { 'if-match': '*' }), 200, 'deployment.rollback', d.body.id)
    const promoted = await t.api('POST', `deployments/${d.body.id}/promote`, {})
    await one(promoted, 201, 'deployment.promote', promoted.body.id)
    await one(await t.api('DELETE', `deployments/${promoted.body.id}`, undefined, { 'if-match': '*' }), 204, 'deployment.delete', promoted.body.id)

    const prov = await t.api('POST', 'providers', { name: 'audited', provider: 'openai', config: { baseUrl: mock.url }, credentials: { apiKey: SECRETS[0], organization: SECRETS[1] } })
    await one(prov, 201, 'provider.create', prov.body.id)
    await one(await t.api('PUT', `providers/${prov.body.id}`, { credentials: { apiKey: SECRETS[2] } }, { 'if-match': '*' }), 200, 'provider.update', prov.body.id)
    await none(await t.api('PUT', `providers/${prov.body.id}`, {}, { 'if-match': '*' }), 200)
    await none(await t.api('PUT', `providers/${prov.body.id}`, { config: { apiKey: 'x' } }, { 'if-match': '*' }), 422)
    await none(await t.api('DELETE', `providers/${prov.body.id}`), 428)
    await one(await t.api('DELETE', `providers/${prov.body.id}`, undefined, { 'if-match': '*' }), 204, 'provider.delete', prov.body.id)

    const k = await t.api('POST', 'keys', { role: 'viewer', team: 'audit' })
    await one(k, 201, 'key.create', k.body.id)
    await none(await t.api('POST', 'keys', { role: 'nobody' }), 400)
    await one(await t.api('PATCH', `keys/${k.body.id}`, { name: 'renamed' }), 200, 'key.update', k.body.id)
    const rotated = await t.api('POST', `keys/${k.body.id}/rotate`, {})
    await one(rotated, 201, 'key.rotate', k.body.id)
    await none(await t.api('POST', `keys/${k.body.id}/rotate`, {}), 409)
    await one(await t.api('DELETE', `keys/${rotated.body.id}`), 204, 'key.revoke', rotated.body.id)
    await none(await t.api('DELETE', `keys/${rotated.body.id}`), 204)

    const { rows: all } = await t.store.query<{ row: string }>('SELECT row_to_json(a)::text AS row FROM audit_log a')
    const text = all.map((r) => r.row).join('\n')
    for (const s of SECRETS) expect(text).not.toContain(s)
    // The secret is what follows `mcp_<12-character prefix>_` (base64url: it may itself hold '_').
    for (const key of [k.body.key as string, rotated.body.key as string]) expect(text).not.toContain(key.slice('mcp_'.length + 13))
    expect(text).not.toMatch(/key_hash/)
  })
})
