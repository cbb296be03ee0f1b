/**
 * Deployments through the admin API, on both engines: create/get/list/update/delete with their validation errors,
 * 404s, 409s, 422s and optimistic concurrency (ETag / If-Match: 428 without, 412 stale); traffic splits;
 * rollback; promotion; history; health from the execution logs; the execute endpoint's own errors.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { seedPrompt, startTestMcp, testEngines, type TestMcp } from './helpers.ts'

const engines = testEngines('deployments API')
const MISSING = '00000000-0000-4000-8000-000000000000'

describe.each(engines)('deployments API on $name', (engine) => {
  let mock: OpenAIMock
  let t: TestMcp
  let n = 0
  /** A prompt with `count` versions `v<i>: echo {{x}}` on mock/gpt-4o. */
  const prompt = (count = 2, extra: Record<string, unknown> = {}): ReturnType<typeof seedPrompt> =>
    seedPrompt(t, `p-${++n}`, Array.from({ length: count }, (_, i) => ({ template: `echo v${i + 1} {{x}}`, model: 'mock/gpt-4o', ...extra })))

  beforeAll(async () => {
    mock = await startOpenAIMock()
    t = await startTestMcp({
      store: await engine.open(),
      override: { providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-test' } }, models: { smart: { targets: [{ provider: 'mock', model: 'gpt-4o-mini' }] } } },
    })
  }, 60_000)

  afterAll(async () => {
    await t?.close()
    await mock?.close()
  })

  it('POST /deployments: defaults to the latest version; GET returns it with its ETag', async () => {
    const { promptId, versionIds } = await prompt(2)
    const r = await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'development', config: { parameters: { max_tokens: 5 }, description: 'dev' } })
    expect(r.status, r.text).toBe(201)
    expect(r.body).toMatchObject({ prompt_version_id: versionIds[1], version: 2, status: 'active', revision: 1, config: { parameters: { max_tokens: 5 } } })
    expect(r.headers.get('location')).toBe(`/api/v1/mcp/deployments/${r.body.id}`)
    const g = await t.api('GET', `deployments/${r.body.id}`)
    expect(g.status).toBe(200)
    expect(g.headers.get('etag')).toBe('"1"')
    expect(g.body).toEqual(r.body)
  })

  it('POST /deployments: validation errors name the field', async () => {
    const { promptId } = await prompt(1)
    const cases: [unknown, string][] = [
      [{ environment: 'staging' }, 'prompt_id'],
      [{ prompt_id: 'nope', environment: 'staging' }, 'prompt_id'],
      [{ prompt_id: promptId }, 'environment'],
      [{ prompt_id: promptId, environment: 'staging', version: 0 }, 'version'],
      [{ prompt_id: promptId, environment: 'staging', config: { parameters: { temperature: 3 } } }, 'config.parameters.temperature'],
      [{ prompt_id: promptId, environment: 'staging', config: { colour: 'x' } }, 'config.colour'],
      [{ prompt_id: promptId, environment: 'staging', traffic: [{ version: 1 }] }, 'traffic[0].weight'],
      [{ prompt_id: promptId, environment: 'staging', traffic: [{ weight: 5 }] }, 'traffic[0].prompt_version_id'],
      [{ prompt_id: promptId, environment: 'staging', status: 'sleeping' }, 'status'],
      [{ prompt_id: promptId, environment: 'staging', version: 1, traffic: [{ version: 1, weight: 1 }] }, 'traffic'],
      // version numbers are 32-bit in the database: a larger one is invalid input, not a 500
      [{ prompt_id: promptId, environment: 'staging', version: 99_999_999_999 }, 'version'],
      [{ prompt_id: promptId, environment: 'staging', traffic: [{ version: 2 ** 31, weight: 1 }] }, 'traffic[0].version'],
    ]
    for (const [body, param] of cases) {
      const r = await t.api('POST', 'deployments', body)
      expect(r.status, `${JSON.stringify(body)} → ${r.text}`).toBe(400)
      expect(r.body.error.param).toBe(param)
    }
    const d = await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging' })
    for (const [method, path, body, param] of [
      ['PUT', `deployments/${d.body.id}`, { version: 99_999_999_999 }, 'version'],
      ['PUT', `deployments/${d.body.id}`, { traffic: [{ version: 1, weight: 1 }, { version: 99_999_999_999, weight: 1 }] }, 'traffic[1].version'],
      ['POST', `deployments/${d.body.id}/rollback`, { version: 99_999_999_999 }, 'version'],
    ] as const) {
      const r = await t.api(method, path, body, { 'if-match': '*' })
      expect(r.status, `${method} ${path} ${JSON.stringify(body)} → ${r.text}`).toBe(400)
      expect(r.body.error.param).toBe(param)
    }
  })

  it('POST /deployments: 422 for references that do not hold, 409 for a second deployment in one environment', async () => {
    const a = await prompt(1)
    const b = await prompt(1)
    const bare = await seedPrompt(t, `bare-${++n}`, [{ template: 'no model' }])
    const empty = await seedPrompt(t, `empty-${++n}`, [])
    const cases: [unknown, string][] = [
      [{ prompt_id: a.promptId, environment: 'qa' }, 'environment'],
      [{ prompt_id: MISSING, environment: 'staging' }, 'prompt_id'],
      [{ prompt_id: a.promptId, environment: 'staging', prompt_version_id: b.versionIds[0] }, 'prompt_version_id'],
      [{ prompt_id: a.promptId, environment: 'staging', version: 7 }, 'version'],
      [{ prompt_id: bare.promptId, environment: 'staging' }, 'config.model'],
      [{ prompt_id: empty.promptId, environment: 'staging' }, 'version'],
      [{ prompt_id: a.promptId, environment: 'staging', traffic: [{ version: 1, weight: 0 }] }, 'traffic'],
    ]
    for (const [body, param] of cases) {
      const r = await t.api('POST', 'deployments', body)
      expect(r.status, `${JSON.stringify(body)} → ${r.text}`).toBe(422)
      expect(r.body.error).toMatchObject({ code: 'MCP_ERR_ADMIN_UNPROCESSABLE', param })
    }
    // A version without a model deploys when the deployment's config names one.
    expect((await t.api('POST', 'deployments', { prompt_id: bare.promptId, environment: 'staging', config: { model: 'mock/gpt-4o' } })).status).toBe(201)
    expect((await t.api('POST', 'deployments', { prompt_id: a.promptId, environment: 'staging' })).status).toBe(201)
    const dup = await t.api('POST', 'deployments', { prompt_id: a.promptId, environment: 'staging' })
    expect(dup.status).toBe(409)
    expect(dup.body.error).toMatchObject({ code: 'MCP_ERR_ADMIN_CONFLICT', param: 'environment' })
  })

  it('GET /deployments/{id}: 404 for unknown and malformed ids', async () => {
    for (const id of [MISSING, 'x', randomUUID().slice(0, 30)]) {
      const r = await t.api('GET', `deployments/${id}`)
      expect(r.status, id).toBe(404)
      expect(r.body.error.code).toBe('MCP_ERR_ADMIN_NOT_FOUND')
    }
  })

  it('GET /deployments filters by prompt and environment and paginates', async () => {
    const { promptId } = await prompt(1)
    for (const env of ['development', 'staging', 'production']) await t.api('POST', 'deployments', { prompt_id: promptId, environment: env })
    const all = await t.api('GET', `deployments?prompt_id=${promptId}`)
    expect(all.body.data.map((d: any) => d.environment)).toEqual(['production', 'staging', 'development'])
    const staging = await t.api('GET', `deployments?prompt_id=${promptId}&environment=staging`)
    expect(staging.body.data).toHaveLength(1)
    const byName = await t.api('GET', `deployments?prompt=${encodeURIComponent(staging.body.data[0].prompt_name)}&environment=production`)
    expect(byName.body.data.map((d: any) => [d.prompt_id, d.environment])).toEqual([[promptId, 'production']])
    const p1 = await t.api('GET', `deployments?prompt_id=${promptId}&limit=2`)
    expect(p1.body.data).toHaveLength(2)
    const p2 = await t.api('GET', `deployments?prompt_id=${promptId}&limit=2&cursor=${p1.body.next_cursor}`)
    expect(p2.body.data.map((d: any) => d.environment)).toEqual(['development'])
    expect(p2.body.next_cursor).toBeNull()
    const bad = await t.api('GET', 'deployments?prompt_id=zzz')
    expect(bad.status).toBe(400)
    expect(bad.body.error.param).toBe('prompt_id')
    // A status the API does not have is a 400, not an empty page that reads as "none".
    expect((await t.api('GET', `deployments?prompt_id=${promptId}&status=active`)).body.data).toHaveLength(3)
    const status = await t.api('GET', 'deployments?status=bogus')
    expect(status.status).toBe(400)
    expect(status.body.error).toMatchObject({ code: 'MCP_ERR_ADMIN_QUERY_INVALID', param: 'status', message: expect.stringContaining('active, paused') })
  })

  it('PUT /deployments/{id}: If-Match required (428), stale (412), current (200); validation and 404', async () => {
    const { promptId, versionIds } = await prompt(2)
    const d = (await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging', version: 1 })).body
    const missing = await t.api('PUT', `deployments/${d.id}`, { version: 2 })
    expect(missing.status).toBe(428)
    expect(missing.body.error.code).toBe('MCP_ERR_ADMIN_PRECONDITION_REQUIRED')
    const ok = await t.api('PUT', `deployments/${d.id}`, { version: 2, config: { parameters: { temperature: 0.5 } } }, { 'if-match': '"1"' })
    expect(ok.status, ok.text).toBe(200)
    expect(ok.body).toMatchObject({ prompt_version_id: versionIds[1], revision: 2, config: { parameters: { temperature: 0.5 } } })
    expect(ok.headers.get('etag')).toBe('"2"')
    // Someone else's write happened in between: the stale ETag loses.
    const stale = await t.api('PUT', `deployments/${d.id}`, { version: 1 }, { 'if-match': '"1"' })
    expect(stale.status).toBe(412)
    expect(stale.body.error.code).toBe('MCP_ERR_ADMIN_PRECONDITION_FAILED')
    expect((await t.api('GET', `deployments/${d.id}`)).body.version).toBe(2)
    const weak = await t.api('PUT', `deployments/${d.id}`, { status: 'paused' }, { 'if-match': 'W/"2"' })
    expect(weak.status).toBe(200)
    const star = await t.api('PUT', `deployments/${d.id}`, { status: 'active' }, { 'if-match': '*' })
    expect(star.status).toBe(200)
    const invalid = await t.api('PUT', `deployments/${d.id}`, { environment: 'production' }, { 'if-match': '*' })
    expect(invalid.status).toBe(400)
    expect(invalid.body.error.param).toBe('environment')
    const badRef = await t.api('PUT', `deployments/${d.id}`, { version: 9 }, { 'if-match': '*' })
    expect(badRef.status).toBe(422)
    expect((await t.api('PUT', `deployments/${MISSING}`, { version: 1 }, { 'if-match': '*' })).status).toBe(404)
    const h = await t.api('GET', `deployments/${d.id}/history`)
    expect(h.body.data.map((x: any) => x.action)).toEqual(['resume', 'pause', 'update', 'create'])
  })

  it('PUT /deployments/{id} that changes nothing ({}, or the current values): 200, same revision, no history or audit entry', async () => {
    const { promptId, versionIds } = await prompt(2)
    const config = { parameters: { temperature: 0.5, max_tokens: 7 }, description: 'same' }
    const d = (await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging', version: 1, config })).body
    const audited = async (): Promise<string[]> => {
      const r = await t.api('GET', `audit?object_id=${d.id}&limit=200`)
      expect(r.status, r.text).toBe(200)
      return r.body.data.map((a: { action: string }) => a.action)
    }
    const auditBefore = await audited()
    expect(auditBefore).toEqual(['deployment.create'])
    const noops: unknown[] = [
      {},
      { status: 'active' },
      { version: 1 },
      { prompt_version_id: versionIds[0] },
      { config: { description: 'same', parameters: { max_tokens: 7, temperature: 0.5 } } },
      { version: 1, status: 'active', config },
    ]
    for (const body of noops) {
      const r = await t.api('PUT', `deployments/${d.id}`, body, { 'if-match': '"1"' })
      expect(r.status, `${JSON.stringify(body)} → ${r.text}`).toBe(200)
      expect(r.headers.get('etag')).toBe('"1"')
      expect(r.body).toEqual(d)
    }
    // The precondition still applies to a PUT that changes nothing.
    expect((await t.api('PUT', `deployments/${d.id}`, {})).status).toBe(428)
    expect((await t.api('PUT', `deployments/${d.id}`, {}, { 'if-match': '"2"' })).status).toBe(412)
    expect((await t.api('GET', `deployments/${d.id}`)).body).toEqual(d)
    expect((await t.api('GET', `deployments/${d.id}/history`)).body.data.map((x: any) => x.action)).toEqual(['create'])
    expect(await audited()).toEqual(auditBefore)
    // A traffic split restated (in another order) changes nothing either; a real change still does.
    const split = await t.api('PUT', `deployments/${d.id}`, { traffic: [{ version: 1, weight: 90 }, { version: 2, weight: 10, label: 'canary' }] }, { 'if-match': '"1"' })
    expect(split.body.revision).toBe(2)
    const again = await t.api('PUT', `deployments/${d.id}`, { traffic: [{ version: 2, weight: 10, label: 'canary' }, { version: 1, weight: 90 }] }, { 'if-match': '"2"' })
    expect(again.status, again.text).toBe(200)
    expect(again.body).toEqual(split.body)
    const changed = await t.api('PUT', `deployments/${d.id}`, { traffic: [{ version: 1, weight: 80 }, { version: 2, weight: 20, label: 'canary' }] }, { 'if-match': '"2"' })
    expect(changed.body.revision).toBe(3)
    expect((await t.api('GET', `deployments/${d.id}/history`)).body.data.map((x: any) => x.action)).toEqual(['update', 'update', 'create'])
    expect(await audited()).toEqual(['deployment.update', 'deployment.update', 'deployment.create'])
  })

  it('concurrent PUTs with the same ETag: exactly one wins', async () => {
    // Every PUT changes the version (a PUT of the version already served changes nothing and conflicts with nobody).
    const { promptId } = await prompt(3)
    const d = (await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging', version: 1 })).body
    const rs = await Promise.all([2, 3, 2, 3].map((v) => t.api('PUT', `deployments/${d.id}`, { version: v }, { 'if-match': '"1"' })))
    expect(rs.map((r) => r.status).sort()).toEqual([200, 412, 412, 412])
  })

  it('DELETE /deployments/{id}: 428 without If-Match, 412 stale, 204, then 404; history outlives it', async () => {
    const { promptId } = await prompt(1)
    const d = (await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging' })).body
    expect((await t.api('DELETE', `deployments/${d.id}`)).status).toBe(428)
    expect((await t.api('DELETE', `deployments/${d.id}`, undefined, { 'if-match': '"7"' })).status).toBe(412)
    const del = await t.api('DELETE', `deployments/${d.id}`, undefined, { 'if-match': '"1"' })
    expect(del.status).toBe(204)
    expect((await t.api('GET', `deployments/${d.id}`)).status).toBe(404)
    expect((await t.api('DELETE', `deployments/${d.id}`, undefined, { 'if-match': '*' })).status).toBe(404)
    const h = await t.api('GET', `deployments/${d.id}/history`)
    expect(h.body.data.map((x: any) => x.action)).toEqual(['delete', 'create'])
    const ex = await t.api('POST', 'execute', { deployment_id: d.id, variables: { x: 1 } })
    expect(ex.status).toBe(404)
    expect(ex.body.error.code).toBe('MCP_ERR_EXEC_DEPLOYMENT_NOT_FOUND')
  })

  it('traffic split: both versions answer, each execution names its version; rollback withdraws the canary', async () => {
    const { promptId, versionIds } = await prompt(2)
    const d = await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging', traffic: [{ version: 1, weight: 1, label: 'stable' }, { version: 2, weight: 1, label: 'canary' }] })
    expect(d.status, d.text).toBe(201)
    expect(d.body.traffic.map((x: any) => [x.version, x.weight, x.label]).sort()).toEqual([[1, 1, 'stable'], [2, 1, 'canary']])
    const seen = new Map<number, number>()
    for (let i = 0; i < 40; i++) {
      const r = await t.api('POST', 'execute', { deployment_id: d.body.id, variables: { x: i } })
      expect(r.status, r.text).toBe(200)
      expect(r.body.output.choices[0].message.content).toBe(`echo: v${r.body.version} ${i}`)
      expect(r.body.prompt_version_id).toBe(versionIds[r.body.version - 1])
      seen.set(r.body.version, (seen.get(r.body.version) ?? 0) + 1)
    }
    expect([...seen.keys()].sort()).toEqual([1, 2])
    const rb = await t.api('POST', `deployments/${d.body.id}/rollback`, {}, { 'if-match': `"${d.body.revision}"` })
    expect(rb.status, rb.text).toBe(200)
    expect(rb.body.traffic).toHaveLength(1)
    expect(rb.body.traffic[0]).toMatchObject({ prompt_version_id: rb.body.prompt_version_id, weight: 100 })
    for (let i = 0; i < 5; i++) {
      expect((await t.api('POST', 'execute', { deployment_id: d.body.id, variables: { x: i } })).body.prompt_version_id).toBe(rb.body.prompt_version_id)
    }
  })

  it('a canary that adds a variable: callers sending it are never refused by the stable version as unknown', async () => {
    const { promptId } = await seedPrompt(t, `canary-vars-${++n}`, [
      { template: 'echo {{x}}', model: 'mock/gpt-4o' },
      { template: 'echo {{x}} and {{y}}', model: 'mock/gpt-4o' },
    ])
    const d = (await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging', traffic: [{ version: 1, weight: 1 }, { version: 2, weight: 1, label: 'canary' }] })).body
    const seen = new Set<number>()
    for (let i = 0; i < 30; i++) {
      const r = await t.api('POST', 'execute', { deployment_id: d.id, variables: { x: i, y: 'new' } })
      expect(r.status, r.text).toBe(200)
      expect(r.body.output.choices[0].message.content).toBe(r.body.version === 1 ? `echo: ${i}` : `echo: ${i} and new`)
      seen.add(r.body.version)
    }
    expect([...seen].sort()).toEqual([1, 2])
    // A name no live version uses is still unknown, on either version.
    for (let i = 0; i < 10; i++) {
      const r = await t.api('POST', 'execute', { deployment_id: d.id, variables: { x: i, y: 'new', z: 1 } })
      expect(r.status, r.text).toBe(422)
      expect(r.body.error.param).toBe('variables.z')
    }
  })

  it('POST /deployments/{id}/rollback: to a named version; 422 without a previous one; 412 stale; 404', async () => {
    const { promptId, versionIds } = await prompt(3)
    const d = (await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging', version: 3 })).body
    const none = await t.api('POST', `deployments/${d.id}/rollback`, undefined, { 'if-match': '*' })
    expect(none.status).toBe(422)
    const named = await t.api('POST', `deployments/${d.id}/rollback`, { version: 1 })
    expect(named.status).toBe(200)
    expect(named.body.prompt_version_id).toBe(versionIds[0])
    const back = await t.api('POST', `deployments/${d.id}/rollback`, {}, { 'if-match': `"${named.body.revision}"` })
    expect(back.body.version).toBe(3)
    const byId = await t.api('POST', `deployments/${d.id}/rollback`, { prompt_version_id: versionIds[1] }, { 'if-match': `"${back.body.revision}"` })
    expect(byId.body.version).toBe(2)
    // A rollback to the version already served (a retried request) changes nothing: same revision, no history row.
    const historyBefore = (await t.api('GET', `deployments/${d.id}/history`)).body.data.length
    const same = await t.api('POST', `deployments/${d.id}/rollback`, { version: 2 })
    expect(same.status).toBe(200)
    expect(same.body).toMatchObject({ version: 2, revision: byId.body.revision })
    expect((await t.api('GET', `deployments/${d.id}/history`)).body.data.length).toBe(historyBefore)
    expect((await t.api('POST', `deployments/${d.id}/rollback`, {}, { 'if-match': '"1"' })).status).toBe(412)
    expect((await t.api('POST', `deployments/${d.id}/rollback`, { version: 'x' })).body.error.param).toBe('version')
    expect((await t.api('POST', `deployments/${MISSING}/rollback`, {})).status).toBe(404)
  })

  it('a rollback to "the previous version" needs If-Match: a double-clicked one does not undo the first', async () => {
    const { promptId } = await prompt(2)
    const d = (await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging', version: 1 })).body
    const up = (await t.api('PUT', `deployments/${d.id}`, { version: 2 }, { 'if-match': `"${d.revision}"` })).body
    for (const body of [undefined, {}]) {
      const bare = await t.api('POST', `deployments/${d.id}/rollback`, body)
      expect(bare.status, bare.text).toBe(428)
      expect(bare.body.error.code).toBe('MCP_ERR_ADMIN_PRECONDITION_REQUIRED')
      expect(bare.body.error.message).toContain('name the version')
    }
    // Both clicks carry the ETag they read: the first rolls back, the second is stale.
    const [a, b] = await Promise.all([0, 1].map(() => t.api('POST', `deployments/${d.id}/rollback`, {}, { 'if-match': `"${up.revision}"` })))
    expect([a!.status, b!.status].sort()).toEqual([200, 412])
    expect((await t.api('GET', `deployments/${d.id}`)).body.version).toBe(1)
    // Named, it is idempotent and needs no If-Match: twice is still version 2, one history row.
    const h0 = (await t.api('GET', `deployments/${d.id}/history`)).body.data.length
    for (let i = 0; i < 2; i++) expect((await t.api('POST', `deployments/${d.id}/rollback`, { version: 2 })).body.version).toBe(2)
    expect((await t.api('GET', `deployments/${d.id}/history`)).body.data.length).toBe(h0 + 1)
  })

  it('POST /deployments/{id}/promote: next environment, a named one, updating an existing target; 422 past the last', async () => {
    const { promptId, versionIds } = await prompt(2)
    const dev = (await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'development', version: 2, config: { parameters: { temperature: 0 } } })).body
    const staging = await t.api('POST', `deployments/${dev.id}/promote`)
    expect(staging.status, staging.text).toBe(201)
    expect(staging.body).toMatchObject({ environment: 'staging', prompt_version_id: versionIds[1], config: { parameters: { temperature: 0 } } })
    const prod = await t.api('POST', `deployments/${dev.id}/promote`, { to_environment: 'production' })
    expect(prod.status).toBe(201)
    // dev moves back to v1; promoting again updates staging in place.
    await t.api('PUT', `deployments/${dev.id}`, { version: 1 }, { 'if-match': '*' })
    const again = await t.api('POST', `deployments/${dev.id}/promote`, {})
    expect(again.status).toBe(200)
    expect(again.body).toMatchObject({ id: staging.body.id, prompt_version_id: versionIds[0], revision: 2 })
    // Promoting what the target already serves, with the same config, changes nothing (no new revision to invalidate ETags).
    const noop = await t.api('POST', `deployments/${dev.id}/promote`, {})
    expect(noop.status).toBe(200)
    expect(noop.body).toMatchObject({ id: staging.body.id, prompt_version_id: versionIds[0], revision: 2 })
    const last = await t.api('POST', `deployments/${prod.body.id}/promote`, {})
    expect(last.status).toBe(422)
    expect(last.body.error.param).toBe('to_environment')
    expect((await t.api('POST', `deployments/${dev.id}/promote`, { to_environment: 'moon' })).status).toBe(422)
    expect((await t.api('POST', `deployments/${dev.id}/promote`, { to_environment: 5 })).status).toBe(400)
    expect((await t.api('POST', `deployments/${MISSING}/promote`, {})).status).toBe(404)
  })

  it('concurrent promotes of one deployment: one creates the target (201), the others update it (200), none is a 409', async () => {
    const { promptId } = await prompt(1)
    const dev = (await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'development' })).body
    const all = await Promise.all(Array.from({ length: 4 }, () => t.api('POST', `deployments/${dev.id}/promote`, {})))
    expect(all.map((r) => r.status).sort(), all.map((r) => r.text).join('\n')).toEqual([200, 200, 200, 201])
    expect(new Set(all.map((r) => r.body.id)).size).toBe(1)
    expect(all.every((r) => r.body.environment === 'staging')).toBe(true)
  })

  it('a promote racing a POST /deployments into its target environment updates the new deployment, never a 409', async () => {
    for (let round = 0; round < 8; round++) {
      const { promptId } = await prompt(2)
      const dev = (await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'development', version: 2 })).body
      const [created, ...promotes] = await Promise.all([
        t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging', version: 1 }),
        ...Array.from({ length: 3 }, () => t.api('POST', `deployments/${dev.id}/promote`, {})),
      ])
      // Whichever wrote first, the promotes answer the one staging deployment (201 or 200); only the POST may be a 409.
      expect([201, 409], created!.text).toContain(created!.status)
      for (const p of promotes) expect([200, 201], p.text).toContain(p.status)
      expect(new Set(promotes.map((p) => p.body.id)).size).toBe(1)
    }
  })

  it('GET /deployments/{id}/history paginates newest first; 404 for a deployment that never existed', async () => {
    const { promptId } = await prompt(3)
    const d = (await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging', version: 1 })).body
    await t.api('PUT', `deployments/${d.id}`, { version: 2 }, { 'if-match': '*' })
    await t.api('PUT', `deployments/${d.id}`, { version: 3 }, { 'if-match': '*' })
    const p1 = await t.api('GET', `deployments/${d.id}/history?limit=2`)
    expect(p1.body.data.map((h: any) => [h.action, h.from_version, h.to_version, h.revision])).toEqual([['update', 2, 3, 3], ['update', 1, 2, 2]])
    const p2 = await t.api('GET', `deployments/${d.id}/history?limit=2&cursor=${p1.body.next_cursor}`)
    expect(p2.body.data.map((h: any) => [h.action, h.to_version])).toEqual([['create', 1]])
    expect(p2.body.next_cursor).toBeNull()
    expect((await t.api('GET', `deployments/${MISSING}/history`)).status).toBe(404)
    expect((await t.api('GET', `deployments/${d.id}/history?limit=500`)).status).toBe(400)
  })

  it('GET /deployments/{id}/health: error rate, latency percentiles and cost per call from the execution logs', async () => {
    const { promptId, versionIds } = await prompt(2)
    const d = (await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging' })).body
    const now = Date.now()
    const rows: [string, number, number | null, string][] = []
    for (let i = 1; i <= 10; i++) rows.push([i <= 8 ? 'ok' : 'error', i * 10, 0.001 * i, versionIds[i % 2]!])
    rows.push(['ok', 5000, null, versionIds[0]!]) // outside the window below
    for (const [i, [status, latency, cost, version]] of rows.entries()) {
      const at = new Date(i === 10 ? now - 3 * 3600_000 : now - 60_000)
      await t.store.query(
        `INSERT INTO execution_logs (request_id, deployment_id, provider, model, status, prompt_version_id, request, metrics, created_at, completed_at)
         VALUES ($1, $2, 'mock', 'gpt-4o', $3, $4, '{}', $5, $6, $6)`,
        [`health-${d.id}-${i}`, d.id, status, version, JSON.stringify({ latencyMs: latency, ...(cost !== null ? { cost: { usd: cost } } : {}) }), at],
      )
    }
    const h = await t.api('GET', `deployments/${d.id}/health?window=1h`)
    expect(h.status, h.text).toBe(200)
    expect(h.body).toMatchObject({ deployment_id: d.id, window: '1h', calls: 10, errors: 2, error_rate: 0.2 })
    expect(h.body.latency_ms.p50).toBeCloseTo(55, 3)
    expect(h.body.latency_ms.p95).toBeCloseTo(95.5, 3)
    expect(h.body.latency_ms.p99).toBeCloseTo(99.1, 3)
    expect(h.body.cost_per_call_usd).toBeCloseTo(0.0055, 8)
    expect(h.body.cost_total_usd).toBeCloseTo(0.055, 8)
    expect(h.body.by_version).toHaveLength(2)
    expect(h.body.by_version.map((v: any) => v.calls)).toEqual([5, 5])
    const day = await t.api('GET', `deployments/${d.id}/health?window=1d`)
    expect(day.body.calls).toBe(11)
    const empty = await t.api('GET', `deployments/${d.id}/health?window=1s`)
    expect(empty.body).toMatchObject({ calls: 0, error_rate: null, latency_ms: { p50: null }, cost_per_call_usd: null })
    const bad = await t.api('GET', `deployments/${d.id}/health?window=forever`)
    expect(bad.status).toBe(400)
    expect(bad.body.error.param).toBe('window')
    expect((await t.api('GET', `deployments/${MISSING}/health`)).status).toBe(404)
  })

  it('health: a client that left (cancelled) or a shutdown (terminated) is a call, not an error of the deployment', async () => {
    const { promptId, versionIds } = await prompt(1)
    const d = (await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging' })).body
    const at = new Date(Date.now() - 60_000)
    for (const [i, status] of ['ok', 'error', 'timeout', 'cancelled', 'terminated'].entries()) {
      await t.store.query(
        `INSERT INTO execution_logs (request_id, deployment_id, provider, model, status, prompt_version_id, request, metrics, created_at, completed_at)
         VALUES ($1, $2, 'mock', 'gpt-4o', $3, $4, '{}', '{}', $5, $5)`,
        [`health-st-${d.id}-${i}`, d.id, status, versionIds[0], at],
      )
    }
    const h = await t.api('GET', `deployments/${d.id}/health?window=1h`)
    expect(h.body).toMatchObject({ calls: 5, errors: 2, error_rate: 0.4 })
  })

  it('execute answers the cost of the call (JSON and the last SSE event), priced from its usage', async () => {
    const { promptId } = await prompt(1)
    const d = (await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging' })).body
    const r = await t.api('POST', 'execute', { deployment_id: d.id, variables: { x: 'priced' } })
    expect(r.status, r.text).toBe(200)
    // gpt-4o from the shipped catalogue: 2.50 USD per million input tokens, 10 per million output tokens.
    const { prompt_tokens: input, completion_tokens: output } = r.body.usage
    expect(r.body.cost).toBeCloseTo((input * 2.5 + output * 10) / 1e6, 12)
    const sse = await t.api('POST', 'execute', { deployment_id: d.id, variables: { x: 'priced' }, stream: true })
    const events = sse.text.split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, ''))
    const last = JSON.parse(events.at(-2)!)
    expect(last.execution.cost).toBeCloseTo((last.usage.prompt_tokens * 2.5 + last.usage.completion_tokens * 10) / 1e6, 12)
    expect(last.execution.cost).toBeGreaterThan(0)
  })

  it('a version whose model is an alias executes through the alias', async () => {
    const { promptId } = await seedPrompt(t, `alias-${++n}`, [{ template: 'echo {{x}}', model: 'smart' }])
    const d = (await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging' })).body
    const r = await t.api('POST', 'execute', { deployment_id: d.id, variables: { x: 'aliased' } })
    expect(r.status, r.text).toBe(200)
    expect(r.body.output.choices[0].message.content).toBe('echo: aliased')
    expect(mock.requests.at(-1)!.body.model).toBe('gpt-4o-mini')
  })

  it('GET /environments lists them in promotion order', async () => {
    const r = await t.api('GET', 'environments')
    expect(r.body.data).toEqual([{ name: 'development', next: 'staging' }, { name: 'staging', next: 'production' }, { name: 'production', next: null }])
  })

  it('execute sends the version\'s tools, response_format and params as stored; only the messages are templated', async () => {
    const tools = [{ type: 'function', function: { name: 'lookup', description: 'Looks up {{city}}', parameters: { type: 'object', properties: { q: { type: 'string', description: '{{city}}' } }, required: ['q'] } } }]
    const responseFormat = { type: 'json_schema', json_schema: { name: 'answer', strict: true, schema: { type: 'object', properties: { a: { type: 'string', description: '{{city}}' } }, required: ['a'], additionalProperties: false } } }
    const { promptId } = await seedPrompt(t, `exec-verbatim-${++n}`, [{
      template: [{ role: 'system', content: 'sys {{city}}' }, { role: 'user', content: 'echo {{city}}' }], model: 'mock/gpt-4o',
      params: { temperature: 0.3, top_p: 0.9, seed: 7, tool_choice: 'auto', parallel_tool_calls: false }, tools, response_format: responseFormat,
    }])
    const d = (await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging', config: { parameters: { top_p: 0.5 } } })).body
    const r = await t.api('POST', 'execute', { deployment_id: d.id, variables: { city: '{{secret}} Oslo' }, parameters: { seed: 8 } })
    expect(r.status, r.text).toBe(200)
    const sent = mock.requests.at(-1)!.body
    expect(sent.messages).toEqual([{ role: 'system', content: 'sys {{secret}} Oslo' }, { role: 'user', content: 'echo {{secret}} Oslo' }])
    expect(sent.tools).toEqual(tools)
    expect(sent.response_format).toEqual(responseFormat)
    expect(sent).toMatchObject({ temperature: 0.3, top_p: 0.5, seed: 8, tool_choice: 'auto', parallel_tool_calls: false })
    // A variable only tools or response_format mention is not a template variable.
    const { promptId: p2 } = await seedPrompt(t, `exec-verbatim-${++n}`, [{ template: 'echo hi', model: 'mock/gpt-4o', tools }])
    const d2 = (await t.api('POST', 'deployments', { prompt_id: p2, environment: 'staging' })).body
    const u = await t.api('POST', 'execute', { deployment_id: d2.id, variables: { city: 'Oslo' } })
    expect(u.status, u.text).toBe(422)
    expect(u.body.error.param).toBe('variables.city')
  })

  it('execute: a tool_choice the picked version\'s tools cannot honour is a 400 naming it, before any call', async () => {
    // Regression: it was sent upstream, where the provider refused it (or, without tools, ignored or refused it).
    const { promptId } = await seedPrompt(t, `exec-tool-choice-${++n}`, [
      { template: 'echo {{x}}', model: 'mock/gpt-4o', tools: [{ type: 'function', function: { name: 'lookup' } }] },
      { template: 'echo {{x}}', model: 'mock/gpt-4o' },
    ])
    const d1 = (await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging', version: 1 })).body
    const d2 = (await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'production', version: 2 })).body
    const calls = mock.requests.length
    for (const [dep, choice] of [[d1, { type: 'function', function: { name: 'nope' } }], [d2, { type: 'function', function: { name: 'lookup' } }], [d2, 'required']] as const) {
      const r = await t.api('POST', 'execute', { deployment_id: dep.id, variables: { x: 'a' }, parameters: { tool_choice: choice } })
      expect(r.status, r.text).toBe(400)
      expect(r.body.error).toMatchObject({ code: 'MCP_ERR_REQ_BODY_INVALID', param: 'parameters.tool_choice' })
    }
    expect(mock.requests.length).toBe(calls)
    const ok = await t.api('POST', 'execute', { deployment_id: d1.id, variables: { x: 'a' }, parameters: { tool_choice: { type: 'function', function: { name: 'lookup' } } } })
    expect(ok.status, ok.text).toBe(200)
    expect(mock.requests.at(-1)!.body.tool_choice).toEqual({ type: 'function', function: { name: 'lookup' } })
  })

  it('a config.parameters.tool_choice a served version\'s tools cannot honour is a 422 naming it, on every write', async () => {
    // Regression: it was stored, and every execute of that version failed at the provider.
    const lookup = { type: 'function', function: { name: 'lookup' } }
    const { promptId } = await seedPrompt(t, `dep-tool-choice-${++n}`, [
      { template: 'echo {{x}}', model: 'mock/gpt-4o', tools: [lookup] },
      { template: 'echo {{x}}', model: 'mock/gpt-4o' },
    ])
    const refused = (r: { status: number; text: string; body: any }, version: number): void => {
      expect(r.status, r.text).toBe(422)
      expect(r.body.error.param).toBe('config.parameters.tool_choice')
      expect(r.body.error.message).toContain(`version ${version}`)
    }
    refused(await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'development', version: 1, config: { parameters: { tool_choice: { type: 'function', function: { name: 'nope' } } } } }), 1)
    refused(await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'development', version: 2, config: { parameters: { tool_choice: 'required' } } }), 2)
    refused(await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'development', traffic: [{ version: 1, weight: 9 }, { version: 2, weight: 1 }], config: { parameters: { tool_choice: lookup } } }), 2)
    // A version kept at weight 0 is not served; 'auto' and 'none' need nothing.
    const d = await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'development', traffic: [{ version: 1, weight: 1 }, { version: 2, weight: 0 }], config: { parameters: { tool_choice: lookup } } })
    expect(d.status, d.text).toBe(201)
    refused(await t.api('PUT', `deployments/${d.body.id}`, { version: 2 }, { 'if-match': '*' }), 2)
    refused(await t.api('POST', `deployments/${d.body.id}/rollback`, { version: 2 }), 2)
    const v2 = await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging', version: 2, config: { parameters: { tool_choice: 'none' } } })
    expect(v2.status, v2.text).toBe(201)
    refused(await t.api('PUT', `deployments/${v2.body.id}`, { config: { parameters: { tool_choice: 'required' } } }, { 'if-match': '*' }), 2)
    const ok = await t.api('POST', 'execute', { deployment_id: d.body.id, variables: { x: 'a' } })
    expect(ok.status, ok.text).toBe(200)
    expect(mock.requests.at(-1)!.body.tool_choice).toEqual(lookup)
  })

  describe('POST /execute errors', () => {
    it('400 names the field; 404 unknown deployment; 409 paused; 422 names missing and unknown variables', async () => {
      const { promptId } = await seedPrompt(t, `exec-errors-${++n}`, [{ template: [{ role: 'user', content: 'echo {{greeting}} {{user.name}}' }], model: 'mock/gpt-4o' }])
      const d = (await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging' })).body

      const bad = await t.api('POST', 'execute', { deployment_id: d.id, parameters: { temperature: 9 } })
      expect(bad.status).toBe(400)
      expect(bad.body.error.param).toBe('parameters.temperature')
      expect((await t.api('POST', 'execute', { deployment_id: d.id, extra: 1 })).body.error.param).toBe('extra')
      expect((await t.api('POST', 'execute', { variables: {} })).body.error.param).toBe('deployment_id')
      expect((await t.api('POST', 'execute', { prompt: 'x' })).body.error.param).toBe('environment')

      for (const body of [{ deployment_id: MISSING }, { deployment_id: 'garbage' }, { prompt: 'nope', environment: 'staging' }, { prompt: promptId, environment: 'production' }]) {
        const r = await t.api('POST', 'execute', body)
        expect(r.status, JSON.stringify(body)).toBe(404)
        expect(r.body.error.code).toBe('MCP_ERR_EXEC_DEPLOYMENT_NOT_FOUND')
      }

      const missing = await t.api('POST', 'execute', { deployment_id: d.id, variables: { greeting: 'hi' } })
      expect(missing.status).toBe(422)
      expect(missing.body.error).toMatchObject({ code: 'MCP_ERR_EXEC_VARIABLES_INVALID', param: 'variables.user.name' })
      expect(missing.body.error.message).toContain('missing user.name')
      const unknown = await t.api('POST', 'execute', { deployment_id: d.id, variables: { greeting: 'hi', user: { name: 'x' }, colour: 'red' } })
      expect(unknown.status).toBe(422)
      expect(unknown.body.error.param).toBe('variables.colour')
      expect(unknown.body.error.message).toContain('unknown colour')
      const both = await t.api('POST', 'execute', { deployment_id: d.id, variables: { colour: 'red' } })
      expect(both.body.error.message).toMatch(/missing greeting, user\.name; unknown colour/)

      // A template that repeats its variable: a few hundred bytes of variables would render 30 million characters.
      const rep = (await t.api('POST', 'prompts', { name: `repeat-${Date.now()}` })).body
      expect((await t.api('POST', `prompts/${rep.id}/versions`, { template: '{{x}}'.repeat(150_000), model: 'mock/gpt-4o' })).status).toBe(201)
      const rdr = await t.api('POST', 'deployments', { prompt_id: rep.id, environment: 'staging' })
      expect(rdr.status, rdr.text).toBe(201)
      const rd = rdr.body
      const huge = await t.data('POST', '/api/v1/mcp/execute', { deployment_id: rd.id, variables: { x: 'y'.repeat(200) } })
      expect(huge.status, huge.text).toBe(422)
      expect(huge.body.error).toMatchObject({ code: 'MCP_ERR_EXEC_VARIABLES_INVALID', param: 'variables', message: expect.stringContaining('more than 16777216 characters') })
      expect((await t.data('POST', '/api/v1/mcp/execute', { deployment_id: rd.id, variables: { x: 'y' } })).status).toBe(200)

      const ok = await t.data('POST', '/api/v1/mcp/execute', { deployment_id: d.id, variables: { greeting: 'hi', user: { name: 'Zed' } } })
      expect(ok.status, ok.text).toBe(200)
      expect(ok.body.output.choices[0].message.content).toBe('echo: hi Zed')

      await t.api('PUT', `deployments/${d.id}`, { status: 'paused' }, { 'if-match': '*' })
      const paused = await t.api('POST', 'execute', { deployment_id: d.id, variables: { greeting: 'hi', user: { name: 'Zed' } } })
      expect(paused.status).toBe(409)
      expect(paused.body.error.code).toBe('MCP_ERR_EXEC_DEPLOYMENT_INACTIVE')
      // A 409 the SDKs would retry at once; sent again, it would meet the same paused deployment.
      expect(paused.headers.get('x-should-retry')).toBe('false')
      const onData = await t.data('POST', '/api/v1/mcp/execute', { deployment_id: d.id, variables: { greeting: 'hi', user: { name: 'Zed' } } })
      expect(onData.status).toBe(409)
      expect(onData.headers.get('x-should-retry')).toBe('false')
    })

    it('prompt refs: an id in any case finds its prompt; a name only as written (upper case used to reach a lower-case name)', async () => {
      const lower = await seedPrompt(t, `case-p-${++n}`, [{ template: [{ role: 'user', content: 'echo lower' }], model: 'mock/gpt-4o' }])
      await t.api('POST', 'deployments', { prompt_id: lower.promptId, environment: 'staging' })
      const name = (await t.api('GET', `prompts/${lower.promptId}`)).body.name as string
      const by = (prompt: string) => t.api('POST', 'execute', { prompt, environment: 'staging' })
      expect((await by(name)).status).toBe(200)
      expect((await by(lower.promptId.toUpperCase())).status).toBe(200)
      const upper = await by(name.toUpperCase())
      expect(upper.status).toBe(404)
      expect(upper.body.error.code).toBe('MCP_ERR_EXEC_DEPLOYMENT_NOT_FOUND')
    })

    it('an unknown environment is a 400 naming it and the environments there are, not "No deployment"', async () => {
      const { promptId } = await prompt(1)
      const name = (await t.api('GET', `prompts/${promptId}`)).body.name as string
      await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging' })
      for (const [env, hint] of [['prod', false], ['Staging', true]] as const) {
        const r = await t.api('POST', 'execute', { prompt: name, environment: env, variables: { x: 1 } })
        expect(r.status, r.text).toBe(400)
        expect(r.body.error).toMatchObject({ code: 'MCP_ERR_REQ_BODY_INVALID', param: 'environment' })
        expect(r.body.error.message).toContain(`unknown environment "${env}" (environments: development, staging, production)`)
        expect(r.body.error.message.includes('did you mean "staging"')).toBe(hint)
      }
      // A known environment the prompt is not deployed in is still a 404 saying so.
      const none = await t.api('POST', 'execute', { prompt: name, environment: 'production', variables: { x: 1 } })
      expect(none.status, none.text).toBe(404)
      expect(none.body.error.message).toContain('in "production"')
      expect((await t.api('POST', 'execute', { prompt: name, environment: 'staging', variables: { x: 1 } })).status).toBe(200)
    })

    it('another team\'s deployment is a 404 before its status or its template\'s variables are looked at', async () => {
      const p = (await t.api('POST', 'prompts', { name: `team-b-${++n}`, team: 'team-b' })).body
      await t.api('POST', `prompts/${p.id}/versions`, { template: 'echo {{secret_field}}', model: 'mock/gpt-4o' })
      const d = (await t.api('POST', 'deployments', { prompt_id: p.id, environment: 'staging' })).body
      const key = (await t.api('POST', 'keys', { name: `invoker-a-${n}`, role: 'invoker', team: 'team-a' })).body.key as string
      const as = { authorization: `Bearer ${key}` }
      const unknown = await t.data('POST', '/api/v1/mcp/execute', { deployment_id: MISSING, variables: { x: 1 } }, as)
      for (const body of [{ deployment_id: d.id }, { deployment_id: d.id, variables: { x: 1 } }, { prompt: p.name, environment: 'staging' }]) {
        const r = await t.data('POST', '/api/v1/mcp/execute', body, as)
        expect(r.status, r.text).toBe(404)
        expect(r.body.error.code).toBe('MCP_ERR_EXEC_DEPLOYMENT_NOT_FOUND')
        expect(r.text).not.toContain('secret_field')
      }
      await t.api('PUT', `deployments/${d.id}`, { status: 'paused' }, { 'if-match': '*' })
      const paused = await t.data('POST', '/api/v1/mcp/execute', { deployment_id: d.id }, as)
      expect(paused.status, paused.text).toBe(404)
      expect(unknown.status).toBe(404)
      // The deployment's own team still executes it (and sees the 422 naming the variable).
      const own = (await t.api('POST', 'keys', { name: `invoker-b-${n}`, role: 'invoker', team: 'team-b' })).body.key as string
      await t.api('PUT', `deployments/${d.id}`, { status: 'active' }, { 'if-match': '*' })
      const mine = await t.data('POST', '/api/v1/mcp/execute', { deployment_id: d.id }, { authorization: `Bearer ${own}` })
      expect(mine.status, mine.text).toBe(422)
      expect(mine.body.error.param).toBe('variables.secret_field')
    })

    it('a key scoped to other deployments or environments is a 403 before the deployment\'s status or template is looked at', async () => {
      const p = (await t.api('POST', 'prompts', { name: `scoped-${++n}`, team: 'team-b' })).body
      await t.api('POST', `prompts/${p.id}/versions`, { template: 'echo {{secret_field}}', model: 'mock/gpt-4o' })
      const d = (await t.api('POST', 'deployments', { prompt_id: p.id, environment: 'staging' })).body
      const other = (await t.api('POST', 'deployments', { prompt_id: p.id, environment: 'production' })).body
      const created = await t.api('POST', 'keys', { name: `scoped-d-${n}`, role: 'invoker', team: 'team-b', scopes: { deployments: [other.id] } })
      expect(created.status, created.text).toBe(201)
      const byDeployment = created.body.key as string
      const byEnvironment = (await t.api('POST', 'keys', { name: `scoped-e-${n}`, role: 'invoker', team: 'team-b', scopes: { environments: ['production'] } })).body.key as string
      for (const [key, param] of [[byDeployment, 'deployment_id'], [byEnvironment, 'environment']] as const) {
        for (const status of ['active', 'paused']) {
          await t.api('PUT', `deployments/${d.id}`, { status }, { 'if-match': '*' })
          const r = await t.data('POST', '/api/v1/mcp/execute', { deployment_id: d.id }, { authorization: `Bearer ${key}` })
          expect(r.status, r.text).toBe(403)
          expect([r.body.error.code, r.body.error.param]).toEqual(['MCP_ERR_AUTH_FORBIDDEN', param])
          expect(r.text).not.toContain('secret_field')
        }
      }
    })

    it('default variables from the deployment; the version\'s variables schema applies', async () => {
      const { promptId } = await seedPrompt(t, `exec-schema-${++n}`, [{
        template: 'echo {{city}} in {{unit}}', model: 'mock/gpt-4o',
        variables: { type: 'object', required: ['city'], properties: { city: { type: 'string', minLength: 2 }, unit: { enum: ['C', 'F'], default: 'C' }, debug: { type: 'boolean' } } },
      }])
      const d = (await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging' })).body
      const r = await t.api('POST', 'execute', { deployment_id: d.id, variables: { city: 'Oslo', debug: true } })
      expect(r.status, r.text).toBe(200)
      expect(r.body.output.choices[0].message.content).toBe('echo: Oslo in C')
      const bad = await t.api('POST', 'execute', { deployment_id: d.id, variables: { city: 'O' } })
      expect(bad.status).toBe(422)
      expect(bad.body.error.param).toBe('variables.city')
      await t.api('PUT', `deployments/${d.id}`, { config: { default_variables: { city: 'Lima', unit: 'F' } } }, { 'if-match': '*' })
      const defaults = await t.api('POST', 'execute', { deployment_id: d.id })
      expect(defaults.body.output.choices[0].message.content).toBe('echo: Lima in F')
    })

    it('default variables a served version\'s variables schema refuses are a 422 at the write, not at every execute', async () => {
      // Regression: such defaults were stored, and every execute that did not send the variable was refused with
      // a 422 naming variables.city, a value the caller never sent.
      const schema = { type: 'object', required: ['city', 'name'], additionalProperties: false, properties: { city: { type: 'string' }, name: { type: 'string' }, unit: { enum: ['C', 'F'] } } }
      const { promptId } = await seedPrompt(t, `exec-defaults-${++n}`, [
        { template: 'echo {{name}}: {{city}} in {{unit}}', model: 'mock/gpt-4o', variables: schema },
        { template: 'echo {{name}}: {{city}}', model: 'mock/gpt-4o' },
      ])
      const refused = await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging', version: 1, config: { default_variables: { city: 3 } } })
      expect(refused.status, refused.text).toBe(422)
      expect(refused.body.error).toMatchObject({ code: 'MCP_ERR_ADMIN_UNPROCESSABLE', param: 'config.default_variables.city' })
      expect(refused.body.error.message).toContain('version 1')
      // Version 2 has no schema: the same defaults deploy; a PUT back to version 1, or a canary of it, is refused.
      const d = await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging', version: 2, config: { default_variables: { city: 3, extra: true } } })
      expect(d.status, d.text).toBe(201)
      const put = await t.api('PUT', `deployments/${d.body.id}`, { traffic: [{ version: 2, weight: 90 }, { version: 1, weight: 10 }] }, { 'if-match': '"1"' })
      expect(put.status, put.text).toBe(422)
      expect(put.body.error.param).toMatch(/^config\.default_variables\.(city|extra)$/)
      const rb = await t.api('POST', `deployments/${d.body.id}/rollback`, { version: 1 })
      expect(rb.status, rb.text).toBe(422)
      // Defaults that leave required variables to the caller are fine; so are valid ones.
      const ok = await t.api('PUT', `deployments/${d.body.id}`, { version: 1, config: { default_variables: { unit: 'F' } } }, { 'if-match': '"1"' })
      expect(ok.status, ok.text).toBe(200)
      const r = await t.api('POST', 'execute', { deployment_id: d.body.id, variables: { name: 'Ada', city: 'Oslo' } })
      expect(r.status, r.text).toBe(200)
      expect(r.body.output.choices[0].message.content).toBe('echo: Ada: Oslo in F')
      const bad = await t.api('PUT', `deployments/${d.body.id}`, { config: { default_variables: { unit: 'K' } } }, { 'if-match': '"2"' })
      expect(bad.status, bad.text).toBe(422)
      expect(bad.body.error.param).toBe('config.default_variables.unit')
    })
  })
})
