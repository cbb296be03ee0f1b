/**
 * HTTP semantics of the admin listener beyond the routes themselves: a known path with a method it does not
 * serve is a 405 naming the methods it does (Allow), an unknown path a 404 without one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { registerTargetRoutes } from '../../admin/routes/targets.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { ADMIN_KEY } from '../helpers/gateway.ts'
import { startTestMcp, testEngines, type TestMcp } from './helpers.ts'

const [pglite] = testEngines('admin HTTP semantics')
const MISSING = '00000000-0000-4000-8000-000000000000'

describe('admin HTTP semantics', () => {
  let t: TestMcp
  let mock: OpenAIMock

  beforeAll(async () => {
    mock = await startOpenAIMock()
    t = await startTestMcp({
      store: await pglite!.open(),
      override: { providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-test' } }, models: { smart: { targets: [{ provider: 'mock', model: 'gpt-4o' }] } } },
      adminRoutes: (admin, _cp, gw) => registerTargetRoutes(admin, gw),
    })
  }, 60_000)

  afterAll(async () => {
    await t?.close()
    await mock?.close()
  })

  it('405 on a known path carries Allow with the methods the path serves', async () => {
    const cases: [string, string, string][] = [
      ['PATCH', 'prompts', 'GET, HEAD, POST'],
      ['DELETE', `prompts/${MISSING}`, 'GET, HEAD'],
      ['PATCH', `deployments/${MISSING}`, 'DELETE, GET, HEAD, PUT'],
      ['PUT', `keys/${MISSING}`, 'DELETE, GET, HEAD, PATCH'],
      ['OPTIONS', 'openapi.json', 'GET, HEAD'],
      ['POST', '/metrics', 'GET, HEAD'],
    ]
    for (const [method, path, allow] of cases) {
      const r = await t.api(method, path)
      expect(r.status, `${method} ${path}`).toBe(405)
      expect(r.body.error.code).toBe('MCP_ERR_REQ_METHOD_NOT_ALLOWED')
      expect(r.headers.get('allow'), `${method} ${path}`).toBe(allow)
    }
  })

  it('HEAD is served wherever GET is: the same status and headers, no body, the same permission', async () => {
    const p = (await t.api('POST', 'prompts', { name: `head-${Date.now()}` })).body
    const get = await fetch(`${t.adminUrl}/api/v1/mcp/prompts/${p.id}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
    const head = await fetch(`${t.adminUrl}/api/v1/mcp/prompts/${p.id}`, { method: 'HEAD', headers: { authorization: `Bearer ${ADMIN_KEY}` } })
    expect(head.status).toBe(200)
    expect(head.headers.get('etag')).toBe(get.headers.get('etag'))
    expect(head.headers.get('content-length')).toBe(get.headers.get('content-length'))
    expect(await head.text()).toBe('')
    for (const path of ['/healthz', '/readyz', '/api/v1/mcp/openapi.json', '/metrics']) {
      const r = await fetch(`${t.adminUrl}${path}`, { method: 'HEAD', headers: { authorization: `Bearer ${ADMIN_KEY}` } })
      expect(r.status, path).toBe(200)
    }
    expect((await fetch(`${t.adminUrl}/api/v1/mcp/prompts/${MISSING}`, { method: 'HEAD', headers: { authorization: `Bearer ${ADMIN_KEY}` } })).status).toBe(404)
    expect((await fetch(`${t.adminUrl}/api/v1/mcp/prompts`, { method: 'HEAD' })).status).toBe(401)
  })

  it('an unknown path is a 404 without Allow', async () => {
    const r = await t.api('GET', 'nothing-here')
    expect(r.status).toBe(404)
    expect(r.headers.get('allow')).toBeNull()
  })

  it('the breaker body is read as every admin body: another media type is a 415, an invalid body a 400 naming the field, the breaker untouched', async () => {
    const plain = await t.api('POST', 'targets/mock/gpt-4o/breaker', JSON.stringify({ state: 'open' }), { 'content-type': 'text/plain' })
    expect(plain.status, plain.text).toBe(415)
    expect(plain.body.error.code).toBe('MCP_ERR_REQ_CONTENT_TYPE')
    const bad = await t.api('POST', 'targets/mock/gpt-4o/breaker', { state: 'sideways' })
    expect(bad.status).toBe(400)
    expect(bad.body.error.param).toBe('state')
    const extra = await t.api('POST', 'targets/mock/gpt-4o/breaker', { state: 'open', colour: 'red' })
    expect(extra.status).toBe(400)
    expect(extra.body.error.param).toBe('colour')
    expect((await t.api('GET', 'targets/mock/gpt-4o')).body.breaker).toBe('closed')
  })

  it('a GET whose If-None-Match holds the current ETag is a 304 without a body; a stale one gets the object', async () => {
    const p = await t.api('POST', 'prompts', { name: 'conditional' })
    const prov = await t.api('POST', 'providers', { name: 'cond', provider: 'openai', config: { baseUrl: 'https://api.openai.com/v1' }, credentials: { apiKey: 'sk-conditional-1234' } })
    expect(prov.status, prov.text).toBe(201)
    for (const path of [`prompts/${p.body.id}`, `providers/${prov.body.id}`]) {
      const first = await t.api('GET', path)
      const tag = first.headers.get('etag')!
      expect(tag).toMatch(/^"\d+"$/)
      for (const inm of [tag, `W/${tag}`, `"999", ${tag}`, '*']) {
        const r = await t.api('GET', path, undefined, { 'if-none-match': inm })
        expect(r.status, `${path} ${inm}`).toBe(304)
        expect(r.text).toBe('')
        expect(r.headers.get('etag')).toBe(tag)
      }
      const doc = (await t.api('GET', 'openapi.json')).body
      expect(Object.keys(doc.paths[`/${path.split('/')[0]}/{id}`].get.responses)).toContain('304')
      const stale = await t.api('GET', path, undefined, { 'if-none-match': '"999"' })
      expect(stale.status).toBe(200)
      expect(stale.body).toEqual(first.body)
    }
    // Writes are not conditional on If-None-Match: a new version is created and answered in full.
    const v = await t.api('POST', `prompts/${p.body.id}/versions`, { template: 'hi', model: 'mock/gpt-4o' }, { 'if-none-match': '*' })
    expect(v.status).toBe(201)
  })

  it('an unknown target is the admin API\'s 404 for a missing object, not the router\'s "no route"', async () => {
    for (const [method, path] of [['GET', 'targets/nope/none'], ['POST', 'targets/nope/none/breaker']] as const) {
      const r = await t.api(method, path, method === 'POST' ? { state: 'open' } : undefined)
      expect(r.status).toBe(404)
      expect(r.body.error.code, `${method} ${path}`).toBe('MCP_ERR_ADMIN_NOT_FOUND')
      expect(r.body.error.message).toContain('nope/none')
    }
  })
})
