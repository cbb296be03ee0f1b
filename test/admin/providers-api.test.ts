/**
 * Providers through the admin API, on both engines: CRUD with validation errors naming the field, 404s, 409s,
 * If-Match; credentials encrypted at rest and never in any response or log; a provider added, changed or
 * removed through the API reaches the running pipeline without a restart; no master key in production.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Keyring } from '../../admin/crypto.ts'
import { fingerprint } from '../../admin/crypto.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { seedPrompt, startTestMcp, testEngines, type ApiResponse, type TestMcp } from './helpers.ts'

const engines = testEngines('providers API')
const MISSING = '00000000-0000-4000-8000-000000000000'
const SECRET = 'sk-live-DO-NOT-LEAK-0123456789abcdef'
const SECRET2 = 'sk-live-ROTATED-SECRET-fedcba9876543210'
const URL_SECRET = 'sk-in-the-URL-NEVER-SHOWN-13579'

describe.each(engines)('providers API on $name', (engine) => {
  let mock: OpenAIMock
  let t: TestMcp
  const bodies: string[] = []
  const api = async (method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResponse> => {
    const r = await t.api(method, path, body, headers)
    bodies.push(r.text, JSON.stringify([...r.headers]))
    return r
  }
  const chat = (model: string): Promise<ApiResponse> => t.data('POST', '/v1/chat/completions', { model, messages: [{ role: 'user', content: 'echo ping' }] })

  beforeAll(async () => {
    mock = await startOpenAIMock()
    t = await startTestMcp({
      store: await engine.open(),
      override: { providers: { filed: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-file' } }, models: { smart: { targets: [{ provider: 'filed', model: 'gpt-4o' }] } } },
    })
  }, 60_000)

  afterAll(async () => {
    // Credentials never appear in any response body or header, the config dump, the metrics, or the logs.
    const config = await t.api('GET', 'config')
    const metrics = await t.api('GET', '/metrics')
    const auditLog = await t.api('GET', 'audit?limit=200')
    expect(auditLog.status).toBe(200)
    for (const text of [...bodies, config.text, metrics.text, auditLog.text, t.logText()]) {
      expect(text).not.toContain(SECRET)
      expect(text).not.toContain(SECRET2)
      expect(text).not.toContain(URL_SECRET)
    }
    await t?.close()
    await mock?.close()
  })

  it('POST /providers stores it, returns only a fingerprint, and the pipeline serves it at once; DELETE takes it away', async () => {
    expect((await chat('live/gpt-4o')).status).toBe(404)
    const r = await api('POST', 'providers', { name: 'live', provider: 'openai', config: { baseUrl: mock.url, models: ['gpt-4o'] }, credentials: { apiKey: SECRET } })
    expect(r.status, r.text).toBe(201)
    expect(r.body).toMatchObject({ name: 'live', provider: 'openai', status: 'active', revision: 1, config: { baseUrl: mock.url } })
    expect(r.body.credentials).toEqual({ apiKey: { fingerprint: fingerprint(SECRET), last4: 'cdef' } })
    expect(r.headers.get('etag')).toBe('"1"')

    // Encrypted at rest.
    const { rows } = await t.store.query<{ credentials: unknown }>('SELECT credentials::text AS credentials FROM provider_configs WHERE id = $1', [r.body.id])
    expect(String(rows[0]!.credentials)).not.toContain(SECRET)
    expect(String(rows[0]!.credentials)).toMatch(/"sealed": ?"v1\./)

    // Live without a restart, with the stored key upstream.
    const c = await chat('live/gpt-4o')
    expect(c.status, c.text).toBe(200)
    expect(c.body.choices[0].message.content).toBe('echo: ping')
    expect(mock.requests.at(-1)!.headers['authorization']).toBe(`Bearer ${SECRET}`)
    const models = await t.data('GET', '/v1/models')
    expect(models.body.data.map((m: { id: string }) => m.id)).toContain('live/gpt-4o')

    // Rotated credential, then removal.
    const put = await api('PUT', `providers/${r.body.id}`, { credentials: { apiKey: SECRET2 } }, { 'if-match': '"1"' })
    expect(put.status, put.text).toBe(200)
    expect(put.body.credentials.apiKey.fingerprint).toBe(fingerprint(SECRET2))
    expect((await chat('live/gpt-4o')).status).toBe(200)
    expect(mock.requests.at(-1)!.headers['authorization']).toBe(`Bearer ${SECRET2}`)

    const del = await api('DELETE', `providers/${r.body.id}`, undefined, { 'if-match': '"2"' })
    expect(del.status).toBe(204)
    const gone = await chat('live/gpt-4o')
    expect(gone.status).toBe(404)
    expect(gone.body.error.code).toBe('MCP_ERR_ROUTE_MODEL_NOT_FOUND')
    expect((await api('GET', `providers/${r.body.id}`)).status).toBe(404)
  })

  it('GET /config redacts every field stored as a credential, whatever its name (organization, project)', async () => {
    const org = 'org-CREDENTIAL-NOT-FOR-CONFIG-4242'
    const project = 'proj-CREDENTIAL-NOT-FOR-CONFIG-7777'
    const r = await api('POST', 'providers', { name: 'secretive', provider: 'openai', config: { baseUrl: mock.url }, credentials: { apiKey: SECRET, organization: org, project } })
    expect(r.status, r.text).toBe(201)
    expect(r.text).not.toContain(org)
    expect((await chat('secretive/gpt-4o')).status).toBe(200)
    expect(mock.requests.at(-1)!.headers['openai-organization']).toBe(org)
    const config = await t.api('GET', 'config')
    expect(config.status).toBe(200)
    expect(config.body.settings.providers.secretive).toMatchObject({ type: 'openai', baseUrl: mock.url, apiKey: '[redacted]', organization: '[redacted]', project: '[redacted]' })
    expect(config.text).not.toContain(org)
    expect(config.text).not.toContain(project)
    // A file-defined provider keeps showing its own settings.
    expect(config.body.settings.providers.filed).toMatchObject({ type: 'openai', baseUrl: mock.url, apiKey: '[redacted]' })
    expect((await api('DELETE', `providers/${r.body.id}`, undefined, { 'if-match': '*' })).status).toBe(204)
  })

  it('disabling a provider takes it out of the pipeline; enabling brings it back', async () => {
    const r = await api('POST', 'providers', { name: 'toggle', provider: 'openai', config: { baseUrl: mock.url }, credentials: { apiKey: SECRET } })
    expect((await chat('toggle/gpt-4o')).status).toBe(200)
    const off = await api('PUT', `providers/${r.body.id}`, { status: 'disabled' }, { 'if-match': '"1"' })
    expect(off.body.status).toBe('disabled')
    expect(off.body.credentials.apiKey.fingerprint).toBe(fingerprint(SECRET))
    expect((await chat('toggle/gpt-4o')).status).toBe(404)
    await api('PUT', `providers/${r.body.id}`, { status: 'active' }, { 'if-match': '"2"' })
    expect((await chat('toggle/gpt-4o')).status).toBe(200)
  })

  it('POST /providers: validation errors name the field (schema 400, adapter config 422)', async () => {
    const cases: [unknown, number, string][] = [
      [{ provider: 'openai' }, 400, 'name'],
      [{ name: 'x y', provider: 'openai' }, 400, 'name'],
      [{ name: 'a' }, 400, 'provider'],
      [{ name: 'a', provider: 'openai', credentials: { apiKey: 5 } }, 400, 'credentials.apiKey'],
      [{ name: 'a', provider: 'openai', credentials: { 'bad-name': 'x' } }, 400, 'credentials.bad-name'],
      [{ name: 'a', provider: 'openai', extra: true }, 400, 'extra'],
      [{ name: 'a', provider: 'nope' }, 422, 'provider'],
      [{ name: 'a', provider: 'custom', config: { module: './x.ts' } }, 422, 'provider'],
      [{ name: 'a', provider: 'openai', config: { baseUrl: 'ftp://x' } }, 422, 'config.baseUrl'],
      [{ name: 'a', provider: 'openai', config: { colour: 'red' } }, 422, 'config.colour'],
      [{ name: 'a', provider: 'openai', config: { apiKey: SECRET } }, 422, 'config.apiKey'],
      [{ name: 'a', provider: 'openai', credentials: { bogus: 'x' } }, 422, 'credentials.bogus'],
      [{ name: 'a', provider: 'azure-openai', config: { baseUrl: mock.url } }, 422, 'credentials.apiKey'],
    ]
    for (const [body, status, param] of cases) {
      const r = await api('POST', 'providers', body)
      expect(r.status, `${JSON.stringify(body)} → ${r.text}`).toBe(status)
      expect(r.body.error.param, r.text).toBe(param)
    }
  })

  it('credentials with CR, LF or other characters not allowed in an HTTP header value are refused on POST and PUT (400 naming the field, value not echoed)', async () => {
    // Each of these was stored, and every call through the provider then failed with a 502 (UND_ERR_INVALID_ARG).
    const bad = [`${SECRET}\r\nX-Injected: 1`, `${SECRET}\n`, `${SECRET}\r`, `\u0001${SECRET}`, `${SECRET}\u007f`, `${SECRET}\u0101`]
    for (const [i, value] of bad.entries()) {
      const r = await api('POST', 'providers', { name: `crlf-${i}`, provider: 'openai', config: { baseUrl: mock.url }, credentials: { organization: 'org-ok', apiKey: value } })
      expect(r.status, `${JSON.stringify(value)} → ${r.text}`).toBe(400)
      expect(r.body.error).toMatchObject({ code: 'MCP_ERR_REQ_BODY_INVALID', param: 'credentials.apiKey' })
      expect(r.body.error.message).toMatch(/credentials\.apiKey: .*HTTP header/)
      expect(r.text).not.toContain(SECRET)
      expect((await chat(`crlf-${i}/gpt-4o`)).status).toBe(404)
    }
    // Rotation through PUT: refused the same way, the stored credential and the revision unchanged.
    const p = await api('POST', 'providers', { name: 'crlf-rotate', provider: 'openai', config: { baseUrl: mock.url }, credentials: { apiKey: SECRET } })
    expect(p.status, p.text).toBe(201)
    for (const value of bad) {
      const r = await api('PUT', `providers/${p.body.id}`, { credentials: { apiKey: value } }, { 'if-match': '"1"' })
      expect(r.status, `${JSON.stringify(value)} → ${r.text}`).toBe(400)
      expect(r.body.error).toMatchObject({ code: 'MCP_ERR_REQ_BODY_INVALID', param: 'credentials.apiKey' })
      expect(r.text).not.toContain(SECRET)
    }
    const after = await api('GET', `providers/${p.body.id}`)
    expect(after.body).toMatchObject({ revision: 1, credentials: { apiKey: { fingerprint: fingerprint(SECRET) } } })
    expect((await chat('crlf-rotate/gpt-4o')).status).toBe(200)
    // What undici sends as it is stays accepted: tabs, inner and outer spaces, Latin-1.
    const ok = await api('PUT', `providers/${p.body.id}`, { credentials: { apiKey: ` ${SECRET2}\t\u00e9 ` } }, { 'if-match': '"1"' })
    expect(ok.status, ok.text).toBe(200)
    expect((await chat('crlf-rotate/gpt-4o')).status).toBe(200)
    expect((await api('DELETE', `providers/${p.body.id}`, undefined, { 'if-match': '*' })).status).toBe(204)
  })

  it('a baseUrl carrying a secret (query string or user:password@) is refused on POST and PUT with a 422 naming config.baseUrl, the URL not echoed', async () => {
    const withUserinfo = mock.url.replace('://', `://user:${URL_SECRET}@`)
    const urls = [`${mock.url}?key=${URL_SECRET}`, `${mock.url}?api-version=1&key=${URL_SECRET}`, withUserinfo]
    for (const provider of ['openai', 'anthropic', 'google', 'openai-compatible', 'azure-openai', 'ollama']) {
      for (const baseUrl of urls) {
        const r = await api('POST', 'providers', { name: `url-${provider}`, provider, config: { baseUrl }, credentials: { apiKey: SECRET } })
        expect(r.status, `${provider} ${r.text}`).toBe(422)
        expect(r.body.error).toMatchObject({ code: 'MCP_ERR_ADMIN_UNPROCESSABLE', param: 'config.baseUrl' })
        expect(r.body.error.message).toMatch(/credential/)
      }
    }
    const p = await api('POST', 'providers', { name: 'url-put', provider: 'openai', config: { baseUrl: mock.url }, credentials: { apiKey: SECRET } })
    expect(p.status, p.text).toBe(201)
    for (const baseUrl of urls) {
      const r = await api('PUT', `providers/${p.body.id}`, { config: { baseUrl } }, { 'if-match': '"1"' })
      expect(r.status, r.text).toBe(422)
      expect(r.body.error.param).toBe('config.baseUrl')
    }
    expect((await api('GET', 'providers?limit=200')).text).not.toContain(URL_SECRET)
    expect((await api('DELETE', `providers/${p.body.id}`, undefined, { 'if-match': '*' })).status).toBe(204)
  })

  it('POST /providers: 409 for a taken name, a file-configured name, or an alias name', async () => {
    expect((await api('POST', 'providers', { name: 'twice', provider: 'openai', config: { baseUrl: mock.url } })).status).toBe(201)
    for (const name of ['twice', 'filed', 'smart']) {
      const r = await api('POST', 'providers', { name, provider: 'openai', config: { baseUrl: mock.url } })
      expect(r.status, name).toBe(409)
      expect(r.body.error).toMatchObject({ code: 'MCP_ERR_ADMIN_CONFLICT', param: 'name' })
    }
  })

  it('GET /providers paginates and filters; GET/PUT/DELETE 404 for unknown and malformed ids', async () => {
    for (let i = 0; i < 3; i++) expect((await api('POST', 'providers', { name: `paged-${i}`, provider: 'ollama', config: { baseUrl: 'http://127.0.0.1:11434' } })).status).toBe(201)
    const p1 = await api('GET', 'providers?provider=ollama&limit=2')
    expect(p1.status).toBe(200)
    expect(p1.body.data.map((p: { name: string }) => p.name)).toEqual(['paged-2', 'paged-1'])
    const p2 = await api('GET', `providers?provider=ollama&limit=2&cursor=${p1.body.next_cursor}`)
    expect(p2.body.data.map((p: { name: string }) => p.name)).toEqual(['paged-0'])
    expect(p2.body.next_cursor).toBeNull()
    expect((await api('GET', 'providers?provider=ollama&status=active')).body.data).toHaveLength(3)
    const status = await api('GET', 'providers?status=bogus')
    expect(status.status).toBe(400)
    expect(status.body.error).toMatchObject({ code: 'MCP_ERR_ADMIN_QUERY_INVALID', param: 'status', message: expect.stringContaining('active, disabled') })
    for (const id of [MISSING, 'nope']) {
      expect((await api('GET', `providers/${id}`)).status).toBe(404)
      expect((await api('PUT', `providers/${id}`, { status: 'disabled' }, { 'if-match': '*' })).status).toBe(404)
      expect((await api('DELETE', `providers/${id}`, undefined, { 'if-match': '*' })).status).toBe(404)
    }
  })

  it('PUT/DELETE /providers/{id}: 428 without If-Match, 412 stale; validation names the field', async () => {
    const r = await api('POST', 'providers', { name: 'etag', provider: 'openai', config: { baseUrl: mock.url }, credentials: { apiKey: SECRET } })
    expect((await api('PUT', `providers/${r.body.id}`, { status: 'disabled' })).status).toBe(428)
    expect((await api('DELETE', `providers/${r.body.id}`)).status).toBe(428)
    expect((await api('PUT', `providers/${r.body.id}`, { config: { baseUrl: mock.url, timeouts: { idleMs: 5000 } } }, { 'if-match': '"1"' })).status).toBe(200)
    const stale = await api('PUT', `providers/${r.body.id}`, { status: 'disabled' }, { 'if-match': '"1"' })
    expect(stale.status).toBe(412)
    expect((await api('DELETE', `providers/${r.body.id}`, undefined, { 'if-match': '"1"' })).status).toBe(412)
    const bad = await api('PUT', `providers/${r.body.id}`, { name: 'renamed' }, { 'if-match': '"2"' })
    expect(bad.status).toBe(400)
    expect(bad.body.error.param).toBe('name')
    const badConfig = await api('PUT', `providers/${r.body.id}`, { config: { baseUrl: 'nope' } }, { 'if-match': '"2"' })
    expect(badConfig.status).toBe(422)
    expect(badConfig.body.error.param).toBe('config.baseUrl')
    const removed = await api('PUT', `providers/${r.body.id}`, { credentials: { apiKey: null } }, { 'if-match': '"2"' })
    expect(removed.status).toBe(200)
    expect(removed.body.credentials).toEqual({})
  })

  it('PUT /providers/{id} that changes nothing keeps the revision and ETag and writes no audit entry', async () => {
    const r = await api('POST', 'providers', { name: 'noop', provider: 'openai', config: { baseUrl: mock.url, dropUnsupportedParams: true }, credentials: { apiKey: SECRET } })
    expect(r.status, r.text).toBe(201)
    // Removing a credential that is not stored ({"nonexist": null}) changes nothing either.
    for (const body of [{}, { status: 'active' }, { config: { dropUnsupportedParams: true, baseUrl: mock.url } }, { credentials: {} }, { credentials: { nonexist: null } }, { credentials: { organization: null, constructor: null } }]) {
      const same = await api('PUT', `providers/${r.body.id}`, body, { 'if-match': '"1"' })
      expect(same.status, JSON.stringify(body)).toBe(200)
      expect(same.body.revision, JSON.stringify(body)).toBe(1)
      expect(same.headers.get('etag')).toBe('"1"')
    }
    // If-Match is still required and checked.
    expect((await api('PUT', `providers/${r.body.id}`, {})).status).toBe(428)
    expect((await api('PUT', `providers/${r.body.id}`, {}, { 'if-match': '"7"' })).status).toBe(412)
    const changed = await api('PUT', `providers/${r.body.id}`, { config: { baseUrl: mock.url } }, { 'if-match': '"1"' })
    expect(changed.body.revision).toBe(2)
    let audit = await api('GET', `audit?action=provider.update&object_id=${r.body.id}`)
    for (let i = 0; i < 20 && audit.body.data?.length !== 1; i++) {
      await new Promise((res) => setTimeout(res, 50))
      audit = await api('GET', `audit?action=provider.update&object_id=${r.body.id}`)
    }
    expect(audit.body.data).toHaveLength(1)
  })

  it('DELETE /providers/{id}: 409 while a live deployment\'s model names it', async () => {
    const p = await api('POST', 'providers', { name: 'used', provider: 'openai', config: { baseUrl: mock.url }, credentials: { apiKey: SECRET } })
    const { promptId } = await seedPrompt(t, 'uses-provider', [{ template: 'echo {{x}}', model: 'used/gpt-4o' }])
    const d = (await api('POST', 'deployments', { prompt_id: promptId, environment: 'staging' })).body
    const ex = await api('POST', 'execute', { deployment_id: d.id, variables: { x: 'via api provider' } })
    expect(ex.status, ex.text).toBe(200)
    expect(ex.body.output.choices[0].message.content).toBe('echo: via api provider')
    const del = await api('DELETE', `providers/${p.body.id}`, undefined, { 'if-match': '*' })
    expect(del.status).toBe(409)
    expect(del.body.error.message).toContain(d.id)
    await api('DELETE', `deployments/${d.id}`, undefined, { 'if-match': '*' })
    expect((await api('DELETE', `providers/${p.body.id}`, undefined, { 'if-match': '*' })).status).toBe(204)
  })

})

describe.each(engines.filter((e) => e.openPair !== undefined))('two instances on one $name database', (engine) => {
  it('DELETE /providers/{id} on an instance that has not yet seen a new deployment naming the provider is a 409', async () => {
    const [s1, s2] = await engine.openPair!()
    const a = await startTestMcp({ store: s1 })
    // b's snapshot stays as it was at its start: it polls once a minute.
    const b = await startTestMcp({ store: s2, keyring: a.mcp.cp.keyring, pollIntervalMs: 60_000 })
    try {
      const p = await a.api('POST', 'providers', { name: 'raced', provider: 'openai', config: { baseUrl: 'http://127.0.0.1:9' }, credentials: { apiKey: SECRET } })
      expect(p.status, p.text).toBe(201)
      const { promptId } = await seedPrompt(a, 'uses-raced', [{ template: 'echo {{x}}', model: 'raced/gpt-4o' }])
      const d = await a.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging' })
      expect(d.status, d.text).toBe(201)
      const del = await b.api('DELETE', `providers/${p.body.id}`, undefined, { 'if-match': '*' })
      expect(del.status, del.text).toBe(409)
      expect(del.body.error.message).toContain(d.body.id)
      expect((await a.api('GET', `providers/${p.body.id}`)).status).toBe(200)
      // The same for a deployment that comes to name it through a PUT (config.model).
      const p2 = await a.api('POST', 'providers', { name: 'raced2', provider: 'openai', config: { baseUrl: 'http://127.0.0.1:9' } })
      const put = await a.api('PUT', `deployments/${d.body.id}`, { config: { model: 'raced2/gpt-4o' } }, { 'if-match': '"1"' })
      expect(put.status, put.text).toBe(200)
      const del2 = await b.api('DELETE', `providers/${p2.body.id}`, undefined, { 'if-match': '*' })
      expect(del2.status, del2.text).toBe(409)
      // ...and 'raced' is no longer named by it: its delete goes through.
      expect((await b.api('DELETE', `providers/${p.body.id}`, undefined, { 'if-match': '*' })).status).toBe(204)
      // Naming a provider that does not exist is accepted; executing it is a 404 for the model.
      const back = await a.api('PUT', `deployments/${d.body.id}`, { config: { model: 'raced/gpt-4o' } }, { 'if-match': '"2"' })
      expect(back.status, back.text).toBe(200)
      const ex = await a.api('POST', 'execute', { deployment_id: d.body.id, variables: { x: 'y' } })
      expect(ex.status, ex.text).toBe(404)
      expect(ex.body.error.code).toBe('MCP_ERR_ROUTE_MODEL_NOT_FOUND')
    } finally {
      await b.close()
      await a.close()
    }
  })

  it('concurrent POST /deployments and DELETE /providers on two instances: a delete that succeeds committed before the deployment', async () => {
    const [s1, s2] = await engine.openPair!()
    const a = await startTestMcp({ store: s1 })
    const b = await startTestMcp({ store: s2, keyring: a.mcp.cp.keyring })
    try {
      let deleted = 0
      let refused = 0
      for (let i = 0; i < 12; i++) {
        const p = await a.api('POST', 'providers', { name: `race-${i}`, provider: 'openai', config: { baseUrl: 'http://127.0.0.1:9' } })
        expect(p.status, p.text).toBe(201)
        const { promptId } = await seedPrompt(a, `race-prompt-${i}`, [{ template: 'echo {{x}}', model: `race-${i}/gpt-4o` }])
        // Staggered a little each round, so both orders (and the overlap) are exercised.
        const [dep, del] = await Promise.all([
          a.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging' }),
          new Promise((res) => setTimeout(res, (i % 4) * 3)).then(() => b.api('DELETE', `providers/${p.body.id}`, undefined, { 'if-match': '*' })),
        ])
        // A deployment of a provider that does not exist (yet, or any more) is accepted, as before.
        expect(dep.status, dep.text).toBe(201)
        expect([204, 409], del.text).toContain(del.status)
        if (del.status === 409) { refused++; continue }
        deleted++
        // Audit rows are written under the control_plane_version row lock, so their ids follow the commit order.
        const { rows } = await a.store.query<{ action: string; id: string }>(
          "SELECT action, id::text AS id FROM audit_log WHERE (action = 'provider.delete' AND object_id = $1) OR (action = 'deployment.create' AND object_id = $2)",
          [p.body.id, dep.body.id],
        )
        const at = Object.fromEntries(rows.map((r) => [r.action, BigInt(r.id)]))
        expect(at['provider.delete']! < at['deployment.create']!, `round ${i}: the provider was deleted after a deployment naming it was committed`).toBe(true)
      }
      console.log(`[provider delete race] ${deleted} deletes went first, ${refused} refused (409)`)
    } finally {
      await b.close()
      await a.close()
    }
  })

  it('a provider added on one instance is served by the other after its next poll', async () => {
    const mock = await startOpenAIMock()
    const [s1, s2] = await engine.openPair!()
    const a = await startTestMcp({ store: s1 })
    const b = await startTestMcp({ store: s2, keyring: a.mcp.cp.keyring })
    try {
      const r = await a.api('POST', 'providers', { name: 'shared', provider: 'openai', config: { baseUrl: mock.url }, credentials: { apiKey: SECRET } })
      expect(r.status).toBe(201)
      const deadline = Date.now() + 5000
      let status = 0
      while (Date.now() < deadline) {
        status = (await b.data('POST', '/v1/chat/completions', { model: 'shared/gpt-4o', messages: [{ role: 'user', content: 'echo hi' }] })).status
        if (status === 200) break
        await new Promise((res) => setTimeout(res, 50))
      }
      expect(status).toBe(200)
    } finally {
      await b.close()
      await a.close()
      await mock.close()
    }
  })
})

describe.each(engines)('provider URLs carrying secrets, in config files and in rows stored before they were refused, on $name', (engine) => {
  it('a file-configured baseUrl with a query or user:password@ is refused at reload, never shown; an old stored row is left out, not fatal', async () => {
    const mock = await startOpenAIMock()
    const t = await startTestMcp({ store: await engine.open() })
    try {
      for (const baseUrl of [`${mock.url}?key=${URL_SECRET}`, mock.url.replace('://', `://key:${URL_SECRET}@`)]) {
        for (const type of ['openai', 'anthropic', 'google']) {
          t.setConfig({ providers: { filed: { type, baseUrl, apiKey: 'sk-file' } } })
          const r = await t.api('POST', 'config/reload')
          expect(r.status, `${type} ${baseUrl.replace(URL_SECRET, '***')}: ${r.text.replace(URL_SECRET, '***')}`).toBe(400)
          expect(r.body.error.message).toMatch(/providers\.filed\.baseUrl: must not carry a query, a fragment or credentials/)
        }
      }
      t.setConfig({})
      expect((await t.api('POST', 'config/reload')).status).toBe(200)

      // A row written before such URLs were refused: left out of the snapshot (logged), the rest keeps working.
      await t.store.query(
        "INSERT INTO provider_configs (id, name, provider, config, credentials, status) VALUES ($1, 'legacy', 'openai', $2, '{}', 'active')",
        ['11111111-1111-4111-8111-111111111111', JSON.stringify({ baseUrl: `${mock.url}?key=${URL_SECRET}` })],
      )
      const added = await t.api('POST', 'providers', { name: 'after-legacy', provider: 'openai', config: { baseUrl: mock.url }, credentials: { apiKey: SECRET } })
      expect(added.status, added.text).toBe(201)
      const chat = await t.data('POST', '/v1/chat/completions', { model: 'after-legacy/gpt-4o', messages: [{ role: 'user', content: 'echo ok' }] })
      expect(chat.status, chat.text).toBe(200)
      expect((await t.data('POST', '/v1/chat/completions', { model: 'legacy/gpt-4o', messages: [{ role: 'user', content: 'echo ok' }] })).status).toBe(404)
      expect(t.logText()).toMatch(/provider 'legacy' left out/)

      const config = await t.api('GET', 'config')
      // Refused reloads are audited through the batched queue: wait for their rows.
      let auditLog = await t.api('GET', 'audit?action=config.reload_refused&limit=200')
      for (let i = 0; i < 50 && auditLog.body.data.length < 6; i++) {
        await new Promise((res) => setTimeout(res, 100))
        auditLog = await t.api('GET', 'audit?action=config.reload_refused&limit=200')
      }
      expect(auditLog.body.data).toHaveLength(6)
      for (const text of [config.text, auditLog.text, t.logText()]) expect(text).not.toContain(URL_SECRET)
    } finally {
      await t.close()
      await mock.close()
    }
  })
})

describe.each(engines)('provider header values (keys, organization, headers) that HTTP cannot carry, on $name', (engine) => {
  it('are refused in a config file at reload (naming the field, not quoting it); an old stored row with one is left out, not a 502 on every call', async () => {
    const mock = await startOpenAIMock()
    const t = await startTestMcp({ store: await engine.open() })
    const BAD = `sk-${URL_SECRET}\r\nx-injected: 1`
    try {
      for (const [entry, field] of [
        [{ type: 'openai', apiKey: BAD }, 'apiKey'],
        [{ type: 'openai', apiKey: 'sk-ok', organization: BAD }, 'organization'],
        [{ type: 'anthropic', apiKey: 'sk-ok', headers: { 'x-team': BAD } }, 'headers.x-team'],
        [{ type: 'azure-openai', apiKey: BAD }, 'apiKey'],
      ] as const) {
        t.setConfig({ providers: { filed: { baseUrl: mock.url, ...entry } } })
        const r = await t.api('POST', 'config/reload')
        expect(r.status, `${entry.type} ${field}`).toBe(400)
        expect(r.body.error.message).toContain(`providers.filed.${field}: must be usable as an HTTP header value`)
        expect(r.text).not.toContain(URL_SECRET)
      }
      t.setConfig({})
      expect((await t.api('POST', 'config/reload')).status).toBe(200)

      // A row stored before such values were refused: left out of the snapshot (logged); the rest keeps working.
      await t.store.query(
        "INSERT INTO provider_configs (id, name, provider, config, credentials, status) VALUES ($1, 'legacy-h', 'openai', $2, '{}', 'active')",
        ['22222222-2222-4222-8222-222222222222', JSON.stringify({ baseUrl: mock.url, organization: BAD })],
      )
      const added = await t.api('POST', 'providers', { name: 'after-legacy-h', provider: 'openai', config: { baseUrl: mock.url }, credentials: { apiKey: SECRET } })
      expect(added.status, added.text).toBe(201)
      expect((await t.data('POST', '/v1/chat/completions', { model: 'after-legacy-h/gpt-4o', messages: [{ role: 'user', content: 'echo ok' }] })).status).toBe(200)
      expect((await t.data('POST', '/v1/chat/completions', { model: 'legacy-h/gpt-4o', messages: [{ role: 'user', content: 'echo ok' }] })).status).toBe(404)
      expect(t.logText()).toMatch(/provider 'legacy-h' left out/)
      expect(t.logText()).not.toContain(URL_SECRET)
    } finally {
      await t.close()
      await mock.close()
    }
  })
})

describe.each(engines)('provider headers that break every call (Host, Content-Length, Transfer-Encoding, ...), on $name', (engine) => {
  it('are refused on POST and PUT with a 422 naming config.headers.<name>, in config files at reload, and a stored row with one is left out', async () => {
    const mock = await startOpenAIMock()
    const t = await startTestMcp({ store: await engine.open() })
    try {
      for (const name of ['Host', 'content-length', 'Transfer-Encoding', 'Content-Encoding', 'Connection', 'KEEP-ALIVE', 'Upgrade', 'Expect', 'TE', 'Trailer', 'Proxy-Connection']) {
        const r = await t.api('POST', 'providers', { name: 'hdr', provider: 'openai', config: { baseUrl: mock.url, headers: { 'x-team': 'a', [name]: 'x' } } })
        expect(r.status, `${name}: ${r.text}`).toBe(422)
        expect(r.body.error.param).toBe(`config.headers.${name}`)
        expect(r.body.error.message).toMatch(/not allowed in a provider's headers/)
      }
      const ok = await t.api('POST', 'providers', { name: 'hdr', provider: 'anthropic', config: { baseUrl: mock.url, headers: { 'x-team': 'a', 'X-Host': 'b' } } })
      expect(ok.status, ok.text).toBe(201)
      const put = await t.api('PUT', `providers/${ok.body.id}`, { config: { baseUrl: mock.url, headers: { host: 'internal.example' } } }, { 'if-match': '*' })
      expect(put.status, put.text).toBe(422)
      expect(put.body.error.param).toBe('config.headers.host')

      for (const type of ['openai', 'anthropic', 'google', 'ollama', 'openai-compatible', 'azure-openai']) {
        t.setConfig({ providers: { filed: { type, baseUrl: mock.url, apiKey: 'sk-file', headers: { 'Transfer-Encoding': 'chunked' } } } })
        const r = await t.api('POST', 'config/reload')
        expect(r.status, `${type}: ${r.text}`).toBe(400)
        expect(r.body.error.message).toContain('providers.filed.headers.Transfer-Encoding: not allowed')
      }
      t.setConfig({})
      expect((await t.api('POST', 'config/reload')).status).toBe(200)

      // A row stored before the rule: left out of the snapshot (logged), not a 502 on every call.
      await t.store.query(
        "INSERT INTO provider_configs (id, name, provider, config, credentials, status) VALUES ($1, 'legacy-host', 'openai', $2, '{}', 'active')",
        ['44444444-4444-4444-8444-444444444444', JSON.stringify({ baseUrl: mock.url, headers: { Expect: '100-continue' } })],
      )
      const added = await t.api('POST', 'providers', { name: 'after-legacy-host', provider: 'openai', config: { baseUrl: mock.url } })
      expect(added.status, added.text).toBe(201)
      expect((await t.data('POST', '/v1/chat/completions', { model: 'legacy-host/gpt-4o', messages: [{ role: 'user', content: 'echo ok' }] })).status).toBe(404)
      expect(t.logText()).toMatch(/provider 'legacy-host' left out/)
    } finally {
      await t.close()
      await mock.close()
    }
  })
})

describe('production without a master key', () => {
  it('refuses to store credentials (503, nothing stored) but stores providers without them', async () => {
    const [engine] = engines
    const t = await startTestMcp({ store: await engine!.open(), keyring: new Keyring([]) })
    try {
      const r = await t.api('POST', 'providers', { name: 'nokey', provider: 'openai', config: { baseUrl: 'http://127.0.0.1:9' }, credentials: { apiKey: SECRET } })
      expect(r.status).toBe(503)
      expect(r.body.error).toMatchObject({ code: 'MCP_ERR_ADMIN_MASTER_KEY_MISSING', param: 'credentials.apiKey' })
      expect((await t.api('GET', 'providers')).body.data).toEqual([])
      const plain = await t.api('POST', 'providers', { name: 'local', provider: 'ollama', config: { baseUrl: 'http://127.0.0.1:11434' } })
      expect(plain.status).toBe(201)
    } finally {
      await t.close()
    }
  })
})
