/**
 * The OpenAPI document against the running admin server: every route the server registers under /api/v1/mcp is
 * documented with its method and path parameters, every documented operation is served, documented bodies are
 * the schemas the routes validate with (a property outside the schema is a 400 naming it), the status codes the
 * routes answer for common errors are documented, and real responses match the documented response schemas.
 * The server is wired as main.ts wires it (targets, budgets, alerts, usage and executions routes included).
 */
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { COMPONENTS } from '../../admin/openapi.ts'
import { registerAlertRoutes } from '../../admin/routes/alerts.ts'
import { registerBudgetRoutes } from '../../admin/routes/budgets.ts'
import { registerExecutionRoutes } from '../../admin/routes/executions.ts'
import { registerTargetRoutes } from '../../admin/routes/targets.ts'
import { registerUsageRoutes } from '../../admin/routes/usage.ts'
import { AlertManager } from '../../gateway/alerts/manager.ts'
import { compileSchema, type JSONSchema } from '../../gateway/validate.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { seedPrompt, startTestMcp, testEngines, type TestMcp } from './helpers.ts'

const [pglite] = testEngines('openapi fidelity')
const BASE = '/api/v1/mcp'
const MISSING = '00000000-0000-4000-8000-000000000000'

interface DocOperation {
  parameters?: { name: string; in: string; required: boolean }[]
  requestBody?: { required: boolean; content: Record<string, { schema: { $ref: string } }> }
  responses: Record<string, { content?: Record<string, { schema: JSONSchema }> }>
}
type Doc = { paths: Record<string, Record<string, DocOperation>> }

const component = (ref: string): JSONSchema => COMPONENTS[ref.replace('#/components/schemas/', '')]!

describe('OpenAPI document against the running server', () => {
  let t: TestMcp
  let mock: OpenAIMock
  let doc: Doc
  let alerts: AlertManager
  /** `METHOD /path` of every route the server registered under the API base. */
  let served: string[]

  beforeAll(async () => {
    mock = await startOpenAIMock()
    alerts = new AlertManager({}, { logger: pino({ level: 'silent' }) })
    const store = await pglite!.open()
    t = await startTestMcp({
      store,
      override: { providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-test' } }, models: { smart: { targets: [{ provider: 'mock', model: 'gpt-4o' }] } } },
      adminRoutes: (admin, _cp, gw) => {
        registerTargetRoutes(admin, gw)
        registerBudgetRoutes(admin, gw)
        registerAlertRoutes(admin, alerts)
        registerUsageRoutes(admin, store)
        registerExecutionRoutes(admin, store)
      },
    })
    served = t.mcp.admin.routes().filter((r) => r.split(' ')[1]!.startsWith(`${BASE}/`)).map((r) => r.replace(` ${BASE}/`, ' /'))
    doc = (await t.api('GET', 'openapi.json')).body
  }, 60_000)

  afterAll(async () => {
    await t?.close()
    await mock?.close()
  })

  const documented = (): string[] => Object.entries(doc.paths).flatMap(([p, ms]) => Object.keys(ms).map((m) => `${m.toUpperCase()} ${p}`))

  it('documents every route the server serves, with its path parameters', () => {
    expect(documented().sort()).toEqual([...served].sort())
    for (const route of served) {
      const [method, path] = route.split(' ') as [string, string]
      const op = doc.paths[path]![method.toLowerCase()]!
      const names = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1])
      expect((op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name), route).toEqual(names)
    }
  })

  it('serves every documented operation (never a 404 or 405 from the router)', async () => {
    for (const route of documented()) {
      const [method, path] = route.split(' ') as [string, string]
      // Targets are found by name: an existing one, so that a 404 can only come from the router.
      const url = path.replace('{provider}/{model}', 'mock/gpt-4o').replace(/\{\w+\}/g, MISSING)
      const r = await t.api(method, `${BASE}${url}`, method === 'GET' || method === 'DELETE' ? undefined : {})
      expect(r.body?.error?.code, route).not.toBe('MCP_ERR_REQ_NOT_FOUND')
      expect(r.body?.error?.code, route).not.toBe('MCP_ERR_REQ_METHOD_NOT_ALLOWED')
    }
  })

  it('documents the bodies the routes validate: a property outside the documented schema is a 400 naming it (among the first reasons)', async () => {
    const { promptId } = await seedPrompt(t, 'fidelity', [{ template: 'hi {{x}}', model: 'mock/gpt-4o' }])
    const d = await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'development' })
    const k = await t.api('POST', 'keys', { role: 'viewer', team: 'a' })
    const ids: Record<string, string> = { '/prompts/{id}': promptId, '/deployments/{id}': d.body.id, '/keys/{id}': k.body.id, '/targets/{provider}/{model}': 'mock/gpt-4o' }
    for (const route of served.filter((r) => !r.startsWith('GET ') && !r.startsWith('DELETE ') && r !== 'POST /execute')) {
      const [method, path] = route.split(' ') as [string, string]
      const op = doc.paths[path]?.[method.toLowerCase()]
      const body = op?.requestBody?.content['application/json']?.schema
      const url = `${BASE}${Object.entries(ids).reduce((p, [k, v]) => p.replace(k, k.replace(/\{\w+\}/, '').replace(/\/\{\w+\}/g, '') + v), path).replace(/\{\w+\}/g, MISSING)}`
      const r = await t.api(method, url, { zz_not_a_field: 1 }, { 'if-match': '*' })
      if (body === undefined) {
        // A route documented without a body ignores one.
        expect(r.status, `${route}: ${r.text}`).not.toBe(400)
        continue
      }
      expect(component(body.$ref)['additionalProperties'], route).toBe(false)
      expect(r.status, `${route}: ${r.text}`).toBe(400)
      expect(r.body.error.message, route).toContain('zz_not_a_field')
    }
  })

  it('documents the status codes the routes answer for unknown ids, bad bodies, bad media types and preconditions', async () => {
    const { promptId } = await seedPrompt(t, 'fidelity-codes', [{ template: 'hi {{x}}', model: 'mock/gpt-4o' }])
    const d = await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'development' })
    const undocumented: string[] = []
    const check = (route: string, status: number): void => {
      const [method, path] = route.split(' ') as [string, string]
      const op = doc.paths[path]?.[method.toLowerCase()]
      if (op && !(String(status) in op.responses)) undocumented.push(`${route} ${status}`)
    }
    for (const route of served) {
      const [method, path] = route.split(' ') as [string, string]
      const url = `${BASE}${path.replace(/\{\w+\}/g, MISSING)}`
      const hasBody = method !== 'GET' && method !== 'DELETE'
      // Unknown id (or an empty body on a route without ids).
      check(route, (await t.api(method, url, hasBody ? {} : undefined, { 'if-match': '*' })).status)
      if (!hasBody) continue
      check(route, (await t.api(method, url, '{"x": ', { 'if-match': '*' })).status)
      check(route, (await t.api(method, url, 'x=1', { 'content-type': 'text/plain', 'if-match': '*' })).status)
      check(route, (await t.api(method, url, JSON.stringify({ x: 'a'.repeat(2 * 1024 * 1024) }), { 'if-match': '*' })).status)
    }
    // Preconditions on a real deployment.
    check('PUT /deployments/{id}', (await t.api('PUT', `deployments/${d.body.id}`, { status: 'paused' })).status)
    check('PUT /deployments/{id}', (await t.api('PUT', `deployments/${d.body.id}`, { status: 'paused' }, { 'if-match': '"99"' })).status)
    check('POST /deployments/{id}/rollback', (await t.api('POST', `deployments/${d.body.id}/rollback`, {}, { 'if-match': '"99"' })).status)
    check('POST /deployments/{id}/promote', (await t.api('POST', `deployments/${d.body.id}/promote`, {}, { 'if-match': '"99"' })).status)
    expect(undocumented).toEqual([])
  })

  it('documents what execute answers to a key over its rate limit (429) or its budget (402), on both ports', async () => {
    const { promptId } = await seedPrompt(t, 'fidelity-execute', [{ template: 'hi {{x}}', model: 'mock/gpt-4o' }])
    const d = await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'development' })
    const responses = doc.paths['/execute']!['post']!.responses
    for (const port of ['admin', 'data'] as const) {
      const call = (key: string): Promise<{ status: number; body: any }> => {
        const body = { deployment_id: d.body.id, variables: { x: port } }
        const h = { authorization: `Bearer ${key}` }
        return port === 'admin' ? t.api('POST', 'execute', body, h) : t.data('POST', `${BASE}/execute`, body, h)
      }
      const limited = (await t.api('POST', 'keys', { role: 'admin', limits: { rpm: 1 } })).body.key
      expect((await call(limited)).status).toBe(200)
      const r429 = await call(limited)
      expect(r429.status).toBe(429)
      const broke = (await t.api('POST', 'keys', { role: 'admin', budgets: { daily_usd: 0.000001 } })).body.key
      let r402 = await call(broke)
      for (let i = 0; i < 5 && r402.status === 200; i++) r402 = await call(broke)
      expect(r402.status, JSON.stringify(r402.body)).toBe(402)
      for (const r of [r429, r402]) {
        expect(Object.keys(responses), `${port} ${r.status}`).toContain(String(r.status))
        const v = compileSchema(component('Error'))
        expect(v(r.body) ? [] : v.errors(), `${port} ${r.status}`).toEqual([])
      }
    }
  })

  it('documents every property of the write answers (creation, change, rotation)', async () => {
    const { promptId } = await seedPrompt(t, 'fidelity-writes', [{ template: 'hi {{x}}', model: 'mock/gpt-4o' }])
    const k = await t.api('POST', 'keys', { role: 'viewer', team: 'a' })
    const answers: [string, { status: number; body: any }][] = [
      ['POST /keys', k],
      ['PATCH /keys/{id}', await t.api('PATCH', `keys/${k.body.id}`, { name: 'renamed' })],
      ['POST /keys/{id}/rotate', await t.api('POST', `keys/${k.body.id}/rotate`, { overlap_seconds: 60 })],
      ['POST /deployments', await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'development' })],
      ['POST /providers', await t.api('POST', 'providers', { name: 'fidelity-p', provider: 'openai', config: { baseUrl: mock.url }, credentials: { apiKey: 'sk-fidelity-0000' } })],
    ]
    const undocumented: string[] = []
    for (const [route, r] of answers) {
      const [method, path] = route.split(' ') as [string, string]
      const schema = doc.paths[path]?.[method.toLowerCase()]?.responses[String(r.status)]?.content?.['application/json']?.schema as { $ref: string } | undefined
      expect(schema, `${route} ${r.status}`).toBeDefined()
      const documentedSchema = component(schema!.$ref)
      const v = compileSchema(documentedSchema)
      expect(v(r.body) ? [] : v.errors(), route).toEqual([])
      const props = Object.keys((documentedSchema['properties'] ?? {}) as object)
      for (const name of Object.keys(r.body)) if (!props.includes(name)) undocumented.push(`${route}: ${name}`)
    }
    expect(undocumented).toEqual([])
  })

  it('answers what the documented response schemas describe', async () => {
    const { promptId } = await seedPrompt(t, 'fidelity-responses', [{ template: 'hi {{x}}', model: 'mock/gpt-4o' }])
    const d = await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'development' })
    const k = await t.api('POST', 'keys', { role: 'viewer', team: 'a' })
    const samples = ['/prompts', `/prompts/${promptId}`, `/prompts/${promptId}/versions`, `/prompts/${promptId}/versions/1`, '/deployments', `/deployments/${d.body.id}`,
      `/deployments/${d.body.id}/history`, `/deployments/${d.body.id}/health`, '/keys', `/keys/${k.body.id}`, '/audit', '/providers', `/prompts/${MISSING}`]
    for (const path of samples) {
      const pattern = path.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, '{id}').replace(/versions\/1$/, 'versions/{version}')
      const r = await t.api('GET', `${BASE}${path}`)
      const schema = doc.paths[pattern]?.['get']?.responses[String(r.status)]?.content?.['application/json']?.schema
      expect(schema, `${pattern} ${r.status}`).toBeDefined()
      // Pages reference the item by $ref: check the page shape and each item against the component.
      const props = (schema as { properties?: { data?: { items?: { $ref: string } } } }).properties
      const itemRef = props?.data?.items?.$ref
      const v = compileSchema(itemRef ? { type: 'object', required: ['data', 'next_cursor'], properties: { data: { type: 'array' }, next_cursor: { type: ['string', 'null'] } } } : component((schema as { $ref: string }).$ref))
      expect(v(r.body) ? [] : v.errors(), path).toEqual([])
      if (itemRef) {
        const item = compileSchema(component(itemRef))
        for (const x of r.body.data) expect(item(x) ? [] : item.errors(), path).toEqual([])
      }
    }
  })
})
