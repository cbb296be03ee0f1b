/**
 * HTTP semantics of the admin listener beyond the routes themselves: a known path with a method it does not
 * serve is a 405 naming the methods it does (Allow), an unknown path a 404 without one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestMcp, testEngines, type TestMcp } from './helpers.ts'

const [pglite] = testEngines('admin HTTP semantics')
const MISSING = '00000000-0000-4000-8000-000000000000'

describe('admin HTTP semantics', () => {
  let t: TestMcp

  beforeAll(async () => {
    t = await startTestMcp({ store: await pglite!.open() })
  }, 60_000)

  afterAll(async () => {
    await t?.close()
  })

  it('405 on a known path carries Allow with the methods the path serves', async () => {
    const cases: [string, string, string][] = [
      ['PATCH', 'prompts', 'GET, POST'],
      ['DELETE', `prompts/${MISSING}`, 'GET'],
      ['PATCH', `deployments/${MISSING}`, 'DELETE, GET, PUT'],
      ['PUT', `keys/${MISSING}`, 'DELETE, GET, PATCH'],
      ['OPTIONS', 'openapi.json', 'GET'],
      ['POST', '/metrics', 'GET'],
    ]
    for (const [method, path, allow] of cases) {
      const r = await t.api(method, path)
      expect(r.status, `${method} ${path}`).toBe(405)
      expect(r.body.error.code).toBe('MCP_ERR_REQ_METHOD_NOT_ALLOWED')
      expect(r.headers.get('allow'), `${method} ${path}`).toBe(allow)
    }
  })

  it('an unknown path is a 404 without Allow', async () => {
    const r = await t.api('GET', 'nothing-here')
    expect(r.status).toBe(404)
    expect(r.headers.get('allow')).toBeNull()
  })
})
