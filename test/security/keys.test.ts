/**
 * API keys through the admin API, end to end: shown once and stored as sha256(secret); usable on the data plane and
 * the admin API at once; revocation, rotation with an overlap window and expiry take effect at once on the
 * writing instance and within a second on another one (two instances on one PostgreSQL); last_used_at written in
 * the background without reloading anybody; scopes enforced on the data plane; the audit log (in the change's
 * transaction, refusals and reloads in the background, filters, team scoping).
 */
import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEFAULT_POLL_INTERVAL_MS } from '../../admin/control-plane.ts'
import { parseKey } from '../../plugins/auth/api-key.ts'
import { seedPrompt, testEngines, type Engine } from '../admin/helpers.ts'
import { bearer, startStack, waitUntil, type Stack } from './helpers.ts'

const engines = testEngines('security keys')

async function auditRows(s: Stack, where = 'true', params: unknown[] = []): Promise<Record<string, any>[]> {
  const { rows } = await s.t.store.query<Record<string, any>>(`SELECT * FROM audit_log WHERE ${where} ORDER BY id`, params)
  return rows
}

for (const engine of engines) {
  describe(`API keys on ${engine.name}`, () => {
    let s: Stack

    beforeAll(async () => {
      s = await startStack({ store: await engine.open(), keyUsageFlushMs: 200 })
    }, 60_000)

    afterAll(async () => {
      await s?.close()
    })

    it('POST /keys shows the key once, stores sha256(secret) only, and the key works at once on both planes', async () => {
      const r = await s.as(undefined, 'POST', 'keys', { name: 'ci', team: 'blue', role: 'developer', owner: 'ada@example.com', limits: { rpm: 100 } })
      expect(r.status, r.text).toBe(201)
      expect(r.headers.get('cache-control')).toBe('no-store')
      expect(r.body).toMatchObject({ name: 'ci', team: 'blue', role: 'developer', owner: 'ada@example.com', status: 'active', limits: { rpm: 100 }, scopes: { models: null } })
      const key = r.body.key as string
      const { prefix, secret } = parseKey(key)!
      expect(r.body.prefix).toBe(prefix)
      const { rows } = await s.t.store.query<Record<string, unknown>>('SELECT * FROM api_keys WHERE id = $1', [r.body.id])
      expect(String(rows[0]!['key_hash']).trim()).toBe(createHash('sha256').update(secret).digest('hex'))
      expect(JSON.stringify(rows[0])).not.toContain(secret)

      const got = await s.as(undefined, 'GET', `keys/${r.body.id}`)
      expect(got.status).toBe(200)
      expect(got.body.key).toBeUndefined()
      expect(got.text).not.toContain(secret)
      expect(got.text).not.toContain(String(rows[0]!['key_hash']).trim())
      const list = await s.as(undefined, 'GET', 'keys?team=blue')
      expect(list.body.data.map((k: { id: string }) => k.id)).toContain(r.body.id)
      expect(list.text).not.toContain(secret)

      expect((await s.chat(key)).status).toBe(200)
      expect((await s.as(key, 'GET', 'prompts')).status).toBe(200)
      expect((await s.as(key, 'GET', 'audit')).status).toBe(403)
    })

    it('DELETE revokes at once; the row stays, the audit row is written with it', async () => {
      const k = await s.mint({ team: 'blue', role: 'invoker' })
      expect((await s.chat(k.key)).status).toBe(200)
      const del = await s.as(undefined, 'DELETE', `keys/${k.id}`)
      expect(del.status).toBe(204)
      const refused = await s.chat(k.key)
      expect(refused.status).toBe(401)
      expect(refused.body.error.code).toBe('MCP_ERR_AUTH_INVALID')
      expect((await s.as(k.key, 'GET', 'openapi.json')).status).toBe(401)
      expect((await s.as(undefined, 'GET', `keys/${k.id}`)).body).toMatchObject({ status: 'revoked' })
      expect((await s.as(undefined, 'DELETE', `keys/${k.id}`)).status).toBe(204) // idempotent
      const rows = await auditRows(s, "object_id = $1 AND action = 'key.revoke'", [k.id])
      expect(rows).toHaveLength(1)
      expect(rows[0]).toMatchObject({ actor: 'bootstrap', actor_key_id: null, object_type: 'api_key', team: 'blue' })
      expect(rows[0]!['request_id']).toBeTruthy()
    })

    it('rotation: a new key at once, the old one until the overlap ends; overlap 0 revokes it; a rotated key cannot be rotated again', async () => {
      const k = await s.mint({ team: 'blue', role: 'invoker', name: 'svc' })
      const r = await s.as(undefined, 'POST', `keys/${k.id}/rotate`, { overlap_seconds: 1 })
      expect(r.status, r.text).toBe(201)
      expect(r.body).toMatchObject({ name: 'svc', team: 'blue', role: 'invoker', rotated_from_id: k.id, rotated: { id: k.id, status: 'rotating' } })
      expect(r.body.key).not.toBe(k.key)
      expect((await s.chat(r.body.key)).status).toBe(200)
      expect((await s.chat(k.key)).status).toBe(200)
      expect((await s.as(undefined, 'POST', `keys/${k.id}/rotate`, {})).status).toBe(409)
      const ms = await waitUntil(async () => (await s.chat(k.key)).status === 401, 3000, 50)
      expect(ms).toBeGreaterThanOrEqual(0)
      expect((await s.chat(r.body.key)).status).toBe(200)

      const now = await s.as(undefined, 'POST', `keys/${r.body.id}/rotate`, { overlap_seconds: 0 })
      expect(now.status).toBe(201)
      expect(now.body.rotated.status).toBe('revoked')
      expect((await s.chat(r.body.key)).status).toBe(401)
      expect((await s.chat(now.body.key)).status).toBe(200)
      const rows = await auditRows(s, "action = 'key.rotate' AND object_id = $1", [k.id])
      expect(rows).toHaveLength(1)
      expect(JSON.stringify(rows[0])).not.toContain(parseKey(r.body.key)!.secret)
    })

    it('an expired key is refused (expiry checked per request against the clock)', async () => {
      const k = await s.mint({ team: 'blue', role: 'invoker', expires_at: new Date(Date.now() + 1200).toISOString() })
      expect((await s.chat(k.key)).status).toBe(200)
      const ms = await waitUntil(async () => (await s.chat(k.key)).status === 401, 3000, 50)
      expect(ms).toBeGreaterThanOrEqual(0)
      expect((await s.as(undefined, 'POST', 'keys', { team: 'blue', expires_at: new Date(Date.now() - 1000).toISOString() })).status).toBe(422)
    })

    it('an expires_at the date-time format allows but no Date holds (a leap second) is a 400 naming it on create, change and rotation', async () => {
      const leap = '2030-12-31T23:59:60Z'
      const k = await s.mint({ team: 'blue', role: 'invoker' })
      for (const [method, path] of [['POST', 'keys'], ['PATCH', `keys/${k.id}`], ['POST', `keys/${k.id}/rotate`]] as const) {
        const r = await s.as(undefined, method, path, { ...(method === 'POST' && path === 'keys' ? { team: 'blue' } : {}), expires_at: leap })
        expect(r.status, `${method} ${path}: ${r.text}`).toBe(400)
        expect(r.body.error).toMatchObject({ code: 'MCP_ERR_REQ_BODY_INVALID', param: 'expires_at' })
      }
      expect((await s.as(undefined, 'GET', `keys/${k.id}`)).body).toMatchObject({ status: 'active', expires_at: null })
    })

    it('an expires_at past year 9999 once normalised to UTC (9999-12-31T23:59:59-23:59) is a 400 naming it on create, change and rotation, never a 500 or a stored +010000 date', async () => {
      const k = await s.mint({ team: 'blue', role: 'invoker' })
      for (const late of ['9999-12-31T23:59:59-23:59', '9999-12-31T23:00:00-01:00']) {
        for (const [method, path] of [['POST', 'keys'], ['PATCH', `keys/${k.id}`], ['POST', `keys/${k.id}/rotate`]] as const) {
          const r = await s.as(undefined, method, path, { ...(method === 'POST' && path === 'keys' ? { team: 'blue' } : {}), expires_at: late })
          expect(r.status, `${method} ${path} ${late}: ${r.text}`).toBe(400)
          expect(r.body.error).toMatchObject({ code: 'MCP_ERR_REQ_BODY_INVALID', param: 'expires_at' })
          expect(r.body.error.message).toMatch(/year/)
        }
      }
      expect((await s.as(undefined, 'GET', `keys/${k.id}`)).body).toMatchObject({ status: 'active', expires_at: null })
      // The last instant that is still year 9999 in UTC is accepted, and answered in the API's own format.
      const last = await s.as(undefined, 'POST', 'keys', { team: 'blue', expires_at: '9999-12-31T23:59:59+01:00' })
      expect(last.status, last.text).toBe(201)
      expect(last.body.expires_at).toBe('9999-12-31T22:59:59.000Z')
    })

    it('last_used_at is written in the background, without bumping control_plane_version', async () => {
      const k = await s.mint({ team: 'blue', role: 'invoker' })
      const version = async (): Promise<number> => Number((await s.t.store.query<{ version: number }>('SELECT version FROM control_plane_version')).rows[0]!.version)
      const before = await version()
      expect((await s.chat(k.key)).status).toBe(200)
      const ms = await waitUntil(async () => (await s.as(undefined, 'GET', `keys/${k.id}`)).body.last_used_at !== null, 3000, 50)
      expect(ms).toBeGreaterThanOrEqual(0)
      expect(await version()).toBe(before)
    })

    it('scopes hold on the data plane: models, aliases, deployments, environments, and the key\'s team', async () => {
      const m = await s.mint({ team: 'blue', role: 'invoker', scopes: { models: ['mock/gpt-4o-mini'], aliases: ['cheap'] } })
      expect((await s.chat(m.key, 'mock/gpt-4o-mini')).status).toBe(200)
      expect((await s.chat(m.key, 'cheap')).status).toBe(200)
      const no = await s.chat(m.key, 'mock/gpt-4o')
      expect(no.status).toBe(403)
      expect(no.body.error).toMatchObject({ code: 'MCP_ERR_AUTH_FORBIDDEN', param: 'model' })
      expect((await s.chat(m.key, 'smart')).status).toBe(403)

      const { promptId } = await seedPrompt(s.t, `scoped-${engine.name}`, [{ template: 'echo hi', model: 'mock/gpt-4o-mini' }])
      const { rows } = await s.t.store.query<{ id: string }>("UPDATE prompts SET team = 'blue' WHERE id = $1 RETURNING id", [promptId])
      expect(rows).toHaveLength(1)
      const dep = await s.as(undefined, 'POST', 'deployments', { prompt_id: promptId, environment: 'staging' })
      expect(dep.status, dep.text).toBe(201)
      const exec = (key: string): Promise<{ status: number; body: any }> => s.t.data('POST', '/api/v1/mcp/execute', { deployment_id: dep.body.id }, bearer(key))
      const d = await s.mint({ team: 'blue', role: 'invoker', scopes: { deployments: [dep.body.id] } })
      expect((await exec(d.key)).status).toBe(200)
      expect((await s.chat(d.key, 'mock/gpt-4o-mini')).status).toBe(403) // deployment-scoped: no direct calls
      const e = await s.mint({ team: 'blue', role: 'invoker', scopes: { environments: ['production'] } })
      expect((await exec(e.key)).body.error.param).toBe('environment')
      const red = await s.mint({ team: 'red', role: 'invoker' })
      const other = await exec(red.key)
      expect(other.status).toBe(404)
      expect(other.body.error.code).toBe('MCP_ERR_EXEC_DEPLOYMENT_NOT_FOUND')
      expect((await s.mint({ team: 'blue', role: 'invoker', scopes: { deployments: ['00000000-0000-4000-8000-000000000000'] } }).catch((x: Error) => x.message))).toMatch(/422/)
      const viewer = await s.mint({ team: 'blue', role: 'viewer' })
      expect((await s.chat(viewer.key)).status).toBe(403)
    })

    it('per-key limits reach the principal (rate-limit plugin input)', async () => {
      const k = await s.mint({ team: 'blue', role: 'invoker', limits: { rpm: 7, concurrency: 2 }, budgets: { daily_usd: 1.5 } })
      const rec = s.t.mcp.cp.snapshot.keys.get(parseKey(k.key)!.prefix)
      expect(rec).toMatchObject({ limits: { rpm: 7, concurrency: 2 }, budgets: { daily_usd: 1.5 }, team: 'blue', role: 'invoker' })
    })

    it('audit: a failed write leaves no row; refusals and reloads are written in the background; filters and pages', async () => {
      const before = (await auditRows(s)).length
      const bad = await s.as(undefined, 'POST', 'deployments', { prompt_id: '00000000-0000-4000-8000-000000000000', environment: 'staging' })
      expect(bad.status).toBe(422)
      expect((await auditRows(s)).length).toBe(before)

      const viewer = await s.mint({ team: 'blue', role: 'viewer' })
      expect((await s.as('mcp_AAAAAAAAAAAA_' + 'A'.repeat(43), 'GET', 'prompts')).status).toBe(401)
      expect((await s.as(viewer.key, 'POST', 'prompts', { name: 'nope' })).status).toBe(403)
      const reload = await s.as(undefined, 'POST', 'config/reload')
      expect(reload.status).toBe(200)
      const ms = await waitUntil(async () => (await auditRows(s, "action IN ('admin.refused', 'config.reload')")).length >= 3, 3000)
      expect(ms).toBeGreaterThanOrEqual(0)
      const refused = await auditRows(s, "action = 'admin.refused'")
      expect(refused.find((r) => r['after'].presented_prefix === 'AAAAAAAAAAAA')).toMatchObject({ actor: 'unauthenticated', after: { code: 'MCP_ERR_AUTH_INVALID', presented_prefix: 'AAAAAAAAAAAA', path: '/api/v1/mcp/prompts' } })
      expect(refused.find((r) => r['after'].status === 403 && r['actor_key_id'] === viewer.id)).toMatchObject({ actor: `key:${parseKey(viewer.key)!.prefix}`, actor_key_id: viewer.id, team: 'blue' })
      const reloads = await auditRows(s, "action = 'config.reload'")
      expect(reloads.at(-1)).toMatchObject({ actor: 'bootstrap', object_type: 'config', after: { ok: true, source: 'api' } })

      const page1 = await s.as(undefined, 'GET', 'audit?action=key.*&limit=2')
      expect(page1.status).toBe(200)
      expect(page1.body.data).toHaveLength(2)
      expect(page1.body.data.every((r: { action: string }) => r.action.startsWith('key.'))).toBe(true)
      const page2 = await s.as(undefined, 'GET', `audit?action=key.*&limit=2&cursor=${page1.body.next_cursor}`)
      expect(page2.body.data[0].id).toBeLessThan(page1.body.data[1].id)
      const byActor = await s.as(undefined, 'GET', `audit?actor=${viewer.id}`)
      expect(byActor.body.data.map((r: { action: string }) => r.action)).toEqual(['admin.refused'])
      const byObject = await s.as(undefined, 'GET', `audit?object_type=api_key&object_id=${viewer.id}`)
      expect(byObject.body.data.map((r: { action: string }) => r.action)).toEqual(['key.create'])
      expect((await s.as(undefined, 'GET', 'audit?bogus=1')).status).toBe(400)
      expect((await s.as(undefined, 'GET', 'audit?from=yesterday')).status).toBe(400)
      // Year 0000 parses in JavaScript but not in PostgreSQL: a 400 naming the parameter, not a 500.
      for (const [q, param] of [['from=0000-01-01', 'from'], ['to=0000-06-01T00:00:00Z', 'to'], ['from=0001-01-01T00:00:00%2B01:00', 'from'],
        // Past year 9999 (an offset): toISOString writes +010000-..., which PostgreSQL does not read; Feb 30 does not roll over.
        ['to=9999-12-31T23:00:00-05:00', 'to'], ['from=2026-02-30', 'from']] as const) {
        const r = await s.as(undefined, 'GET', `audit?${q}`)
        expect(r.status, `${q}: ${r.text}`).toBe(400)
        expect(r.body.error).toMatchObject({ code: 'MCP_ERR_ADMIN_QUERY_INVALID', param })
      }

      // An operator of team blue reads blue's rows only.
      const op = await s.mint({ team: 'blue', role: 'operator' })
      const red = await s.mint({ team: 'red', role: 'invoker' })
      const seen = await s.as(op.key, 'GET', 'audit?limit=200')
      expect(seen.status).toBe(200)
      expect(seen.body.data.length).toBeGreaterThan(0)
      expect(seen.body.data.every((r: { team: string }) => r.team === 'blue')).toBe(true)
      expect(seen.body.data.some((r: { object_id: string }) => r.object_id === red.id)).toBe(false)
      expect((await s.as(op.key, 'GET', 'audit?team=red')).body.data).toEqual([])
      // Append-only.
      await expect(s.t.store.query('DELETE FROM audit_log')).rejects.toThrow()
    })
  })
}

describe('two instances on one PostgreSQL database', () => {
  const pair = engines.find((e: Engine) => e.openPair)
  it.skipIf(!pair)('a key created on A works on B, and a revocation on A is refused on B within a second (default 500 ms poll)', async () => {
    const [sa, sb] = await pair!.openPair!()
    const a = await startStack({ store: sa, pollIntervalMs: DEFAULT_POLL_INTERVAL_MS })
    const b = await startStack({ store: sb, pollIntervalMs: DEFAULT_POLL_INTERVAL_MS })
    try {
      const k = await a.mint({ team: 'blue', role: 'invoker' })
      const visible = await waitUntil(async () => (await b.chat(k.key)).status === 200, 3000, 10)
      expect(visible).toBeGreaterThanOrEqual(0)
      expect((await a.as(undefined, 'DELETE', `keys/${k.id}`)).status).toBe(204)
      const t1 = performance.now()
      expect((await a.chat(k.key)).status).toBe(401)
      const refusedAfter = await waitUntil(async () => (await b.chat(k.key)).status === 401, 3000, 10)
      const ms = performance.now() - t1
      console.log(`[propagation] new key usable on B after ${Math.round(visible)} ms; revoked key refused on B ${Math.round(ms)} ms after the revocation's answer`)
      expect(refusedAfter).toBeGreaterThanOrEqual(0)
      expect(ms).toBeLessThan(1000)
      // And on the admin API of B.
      expect((await b.as(k.key, 'GET', 'openapi.json')).status).toBe(401)
    } finally {
      await a.close()
      await b.close()
    }
  }, 30_000)
})
