/**
 * The OpenAPI document: served at /api/v1/mcp/openapi.json behind the admin key, generated from the validation
 * schemas (single source), and listing every management route the admin port serves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { COMPONENTS } from '../../admin/openapi.ts'
import * as schemas from '../../admin/schemas.ts'
import { compileSchema } from '../../gateway/validate.ts'
import { startTestMcp, testEngines, type TestMcp } from './helpers.ts'

const [pglite] = testEngines('openapi')

describe('OpenAPI document', () => {
  let t: TestMcp

  beforeAll(async () => {
    t = await startTestMcp({ store: await pglite!.open() })
  }, 60_000)

  afterAll(async () => {
    await t?.close()
  })

  it('is served behind the admin key as OpenAPI 3.1', async () => {
    expect((await fetch(`${t.adminUrl}/api/v1/mcp/openapi.json`)).status).toBe(401)
    const r = await t.api('GET', 'openapi.json')
    expect(r.status).toBe(200)
    expect(r.body.openapi).toBe('3.1.0')
    expect(r.body.servers).toEqual([{ url: '/api/v1/mcp' }])
  })

  it('has the spec\'s paths exactly, and every other management route', async () => {
    const doc = (await t.api('GET', 'openapi.json')).body
    const ops = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, m]) => Object.keys(m).map((k) => `${k.toUpperCase()} ${p}`))
    expect(ops).toEqual(expect.arrayContaining([
      'POST /deployments', 'GET /deployments/{id}', 'PUT /deployments/{id}', 'DELETE /deployments/{id}', 'POST /execute', 'GET /providers', 'POST /providers',
      'GET /deployments', 'POST /deployments/{id}/rollback', 'POST /deployments/{id}/promote', 'GET /deployments/{id}/history', 'GET /deployments/{id}/health',
      'GET /prompts', 'POST /prompts', 'GET /prompts/{id}', 'POST /prompts/{id}/versions', 'GET /prompts/{id}/versions',
      'GET /providers/{id}', 'PUT /providers/{id}', 'DELETE /providers/{id}',
    ]))
    // Every documented operation is served (no 404 from the router; 401 without the key is enough to know).
    const served = Object.entries(doc.paths as Record<string, Record<string, { requestBody?: unknown }>>).flatMap(([path, ms]) => Object.entries(ms).map(([method, o]) => ({ method, path, body: o.requestBody !== undefined })))
    expect(served.length).toBeGreaterThan(0)
    for (const op of served) {
      const path = `/api/v1/mcp${op.path.replace(/\{\w+\}/g, '00000000-0000-4000-8000-000000000000')}`
      const r = await fetch(`${t.adminUrl}${path}`, { method: op.method.toUpperCase() })
      expect(r.status, `${op.method} ${op.path}`).toBe(401)
      const authed = await t.api(op.method.toUpperCase(), path, op.body ? {} : undefined)
      expect(authed.body?.error?.code, `${op.method} ${op.path}`).not.toBe('MCP_ERR_REQ_NOT_FOUND')
    }
  })

  it('uses the validation schemas themselves as components', () => {
    expect(COMPONENTS['DeploymentCreate']).toBe(schemas.deploymentCreateSchema)
    expect(COMPONENTS['ProviderCreate']).toBe(schemas.providerCreateSchema)
    expect(COMPONENTS['Execute']).toBe(schemas.executeSchema)
    for (const [name, s] of Object.entries(COMPONENTS)) expect(() => compileSchema(s), name).not.toThrow()
  })

  it('documents If-Match on PUT and DELETE as required', async () => {
    const doc = (await t.api('GET', 'openapi.json')).body
    for (const p of ['/deployments/{id}', '/providers/{id}']) {
      for (const m of ['put', 'delete']) {
        const params = doc.paths[p][m].parameters as { name: string; required: boolean }[]
        expect(params.find((x) => x.name === 'If-Match')?.required, `${m} ${p}`).toBe(true)
        expect(Object.keys(doc.paths[p][m].responses)).toEqual(expect.arrayContaining(['412', '428']))
      }
    }
  })
})
