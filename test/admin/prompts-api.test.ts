/**
 * Prompts and versions through the admin API, on both engines: happy paths, validation errors naming the field,
 * 404s (malformed ids too), 409 on a taken name, 412 with a stale If-Match, pagination.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestMcp, testEngines, type TestMcp } from './helpers.ts'

const engines = testEngines('prompts API')
const MISSING = '00000000-0000-4000-8000-000000000000'

describe.each(engines)('prompts API on $name', (engine) => {
  let t: TestMcp

  beforeAll(async () => {
    t = await startTestMcp({ store: await engine.open() })
  }, 60_000)

  afterAll(async () => {
    await t?.close()
  })

  it('POST /prompts creates a prompt (201, Location, ETag)', async () => {
    const r = await t.api('POST', 'prompts', { name: 'summarize', description: 'Summaries', team: 'docs', metadata: { owner: 'ana' } })
    expect(r.status, r.text).toBe(201)
    expect(r.body).toMatchObject({ name: 'summarize', description: 'Summaries', team: 'docs', metadata: { owner: 'ana' }, latest_version: 0 })
    expect(r.headers.get('location')).toBe(`/api/v1/mcp/prompts/${r.body.id}`)
    expect(r.headers.get('etag')).toBe('"0"')
    const g = await t.api('GET', `prompts/${r.body.id}`)
    expect(g.status).toBe(200)
    expect(g.body).toEqual(r.body)
  })

  it('POST /prompts: validation errors name the field', async () => {
    const cases: [unknown, string][] = [
      [{}, 'name'],
      [{ name: '' }, 'name'],
      [{ name: 'ok', color: 'red' }, 'color'],
      [{ name: 'ok', metadata: 'x' }, 'metadata'],
      [{ name: 'has space' }, 'name'],
      // Execute finds a prompt by id or by name: a name shaped like an id would answer for another prompt.
      [{ name: '0b7e6c5a-3d2f-4a1b-9c8d-7e6f5a4b3c2d' }, 'name'],
      [{ name: '0B7E6C5A-3D2F-4A1B-9C8D-7E6F5A4B3C2D' }, 'name'],
    ]
    for (const [body, param] of cases) {
      const r = await t.api('POST', 'prompts', body)
      expect(r.status, r.text).toBe(400)
      expect(r.body.error.code).toBe('MCP_ERR_REQ_BODY_INVALID')
      expect(r.body.error.param).toBe(param)
      expect(r.body.error.message).toContain(param)
    }
    const bad = await t.api('POST', 'prompts', '{"name":')
    expect(bad.status).toBe(400)
    expect(bad.body.error.code).toBe('MCP_ERR_REQ_JSON_INVALID')
  })

  it('a NUL character (which PostgreSQL cannot store) in a body or a query parameter is a 400 naming it, never a 500', async () => {
    const p = await t.api('POST', 'prompts', { name: 'nul-target' })
    const bodies: [string, string, string, string][] = [
      ['POST', 'prompts', '{"name":"nul-desc","description":"a\\u0000b"}', 'description'],
      ['POST', 'prompts', '{"name":"nul-meta","metadata":{"k":["x","a\\u0000"]}}', 'metadata.k[1]'],
      ['POST', 'prompts', '{"name":"nul-key","metadata":{"a\\u0000":1}}', 'metadata'],
      ['POST', `prompts/${p.body.id}/versions`, '{"template":"Hi \\u0000 {{name}}"}', 'template'],
      ['POST', 'keys', '{"name":"nul\\u0000","team":"t","role":"developer"}', 'name'],
    ]
    for (const [method, path, body, param] of bodies) {
      const r = await t.api(method, path, body)
      expect(r.status, `${path} ${body}: ${r.text}`).toBe(400)
      expect(r.body.error).toMatchObject({ code: 'MCP_ERR_REQ_BODY_INVALID', param })
      expect(r.body.error.message).toContain('NUL')
    }
    for (const [path, param] of [['prompts?name=a%00b', 'name'], ['deployments?environment=%00', 'environment'], ['providers?provider=x%00', 'provider'],
      ['keys?owner=%00', 'owner'], ['audit?actor=a%00', 'actor']] as const) {
      const r = await t.api('GET', path)
      expect(r.status, `${path}: ${r.text}`).toBe(400)
      expect(r.body.error).toMatchObject({ code: 'MCP_ERR_ADMIN_QUERY_INVALID', param })
    }
    expect((await t.api('GET', 'prompts?name=nul-desc')).body.data).toEqual([])
  })

  it('a lone surrogate (not Unicode: jsonb refuses it, text would store U+FFFD) is a 400 naming the field; a pair is stored as sent', async () => {
    const p = await t.api('POST', 'prompts', { name: 'surrogate-target' })
    const bodies: [string, string, string, string][] = [
      ['POST', `prompts/${p.body.id}/versions`, '{"template":"\\ud800"}', 'template'],
      ['POST', `prompts/${p.body.id}/versions`, '{"template":[{"role":"user","content":"a\\uDC00b"}]}', 'template[0].content'],
      ['POST', `prompts/${p.body.id}/versions`, '{"template":"x","params":{"user":"\\ud800"}}', 'params.user'],
      ['POST', 'prompts', '{"name":"sur-meta","metadata":{"k":"\\ud800"}}', 'metadata.k'],
      ['POST', 'prompts', '{"name":"sur-key","metadata":{"\\udfff":1}}', 'metadata'],
      ['POST', 'prompts', '{"name":"sur-desc","description":"x\\ud83d"}', 'description'],
      ['POST', 'keys', '{"name":"k\\ud800","team":"t","role":"developer"}', 'name'],
      ['POST', 'keys', '{"name":"sur-k","team":"t","role":"developer","metadata":{"a":"\\ud800"}}', 'metadata.a'],
    ]
    for (const [method, path, body, param] of bodies) {
      const r = await t.api(method, path, body)
      expect(r.status, `${path} ${body}: ${r.text}`).toBe(400)
      expect(r.body.error).toMatchObject({ code: 'MCP_ERR_REQ_BODY_INVALID', param })
      expect(r.body.error.message).toContain('lone surrogate')
    }
    expect((await t.api('GET', 'prompts?name=sur-desc')).body.data).toEqual([])
    // An emoji written as its escaped pair is Unicode: stored and returned as sent.
    const ok = await t.api('POST', 'prompts', '{"name":"sur-pair","description":"ok \\ud83d\\ude00"}')
    expect(ok.status, ok.text).toBe(201)
    expect(ok.body.description).toBe('ok \u{1F600}')
  })

  it('POST /prompts: a taken name is a 409', async () => {
    await t.api('POST', 'prompts', { name: 'dup' })
    const r = await t.api('POST', 'prompts', { name: 'dup' })
    expect(r.status).toBe(409)
    expect(r.body.error).toMatchObject({ code: 'MCP_ERR_ADMIN_CONFLICT', param: 'name' })
    // Sent again, it would conflict again: clients that retry 409 by default (the Stainless-built SDKs) are told not to.
    expect(r.headers.get('x-should-retry')).toBe('false')
  })

  it('GET /prompts/{id}: unknown and malformed ids are 404', async () => {
    for (const id of [MISSING, 'not-a-uuid', "1' OR 1=1"]) {
      const r = await t.api('GET', `prompts/${encodeURIComponent(id)}`)
      expect(r.status, id).toBe(404)
      expect(r.body.error.code).toBe('MCP_ERR_ADMIN_NOT_FOUND')
    }
  })

  it('GET /prompts paginates with limit and next_cursor, filtered by team', async () => {
    for (let i = 0; i < 5; i++) await t.api('POST', 'prompts', { name: `paged-${i}`, team: 'paging' })
    const seen: string[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const r: any = await t.api('GET', `prompts?team=paging&limit=2${cursor ? `&cursor=${cursor}` : ''}`)
      expect(r.status, r.text).toBe(200)
      expect(r.body.data.length).toBeLessThanOrEqual(2)
      seen.push(...r.body.data.map((p: { name: string }) => p.name))
      cursor = r.body.next_cursor
      pages++
    } while (cursor)
    expect(pages).toBe(3)
    expect(seen).toEqual(['paged-4', 'paged-3', 'paged-2', 'paged-1', 'paged-0'])
    const bad = await t.api('GET', 'prompts?limit=0')
    expect(bad.status).toBe(400)
    expect(bad.body.error).toMatchObject({ code: 'MCP_ERR_ADMIN_QUERY_INVALID', param: 'limit' })
    const badCursor = await t.api('GET', 'prompts?cursor=garbage')
    expect(badCursor.status).toBe(400)
    expect(badCursor.body.error.param).toBe('cursor')
  })

  it('a tampered cursor of the right shape is a 400 naming the cursor on every list, never a 500', async () => {
    const p = await t.api('POST', 'prompts', { name: 'tampered-cursor' })
    const cursor = (parts: unknown[]): string => Buffer.from(JSON.stringify(parts)).toString('base64url')
    const uuid = '00000000-0000-4000-8000-000000000000'
    const lists = ['prompts', 'deployments', 'providers', 'keys']
    const cases = [
      ...lists.flatMap((l) => [
        `${l}?cursor=${cursor(['abc', uuid])}`,
        `${l}?cursor=${cursor(['2026-02-30 10:00:00+00', uuid])}`,
        `${l}?cursor=${cursor(['2026-01-01 10:00:00+99', uuid])}`,
      ]),
      // version numbers are 32-bit
      `prompts/${p.body.id}/versions?cursor=${cursor([99_999_999_999])}`,
    ]
    for (const path of cases) {
      const r = await t.api('GET', path)
      expect(r.status, `${path}: ${r.text}`).toBe(400)
      expect(r.body.error).toMatchObject({ code: 'MCP_ERR_ADMIN_QUERY_INVALID', param: 'cursor' })
    }
  })

  it('POST /prompts/{id}/versions creates immutable, numbered versions; identical content is idempotent', async () => {
    const p = await t.api('POST', 'prompts', { name: 'versions' })
    const v1 = await t.api('POST', `prompts/${p.body.id}/versions`, {
      template: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Summarize {{ doc.title }}: {{body}}' }],
      model: 'openai/gpt-4o', params: { temperature: 0.1, max_tokens: 100 }, tools: [{ type: 'function', function: { name: 'lookup' } }],
      response_format: { type: 'json_object' }, metadata: { tag: 'a' }, message: 'first',
    })
    expect(v1.status, v1.text).toBe(201)
    expect(v1.body).toMatchObject({ version: 1, model: 'openai/gpt-4o', template_variables: ['doc.title', 'body'], message: 'first' })
    expect(v1.body.content_hash).toMatch(/^[0-9a-f]{64}$/)
    expect(v1.headers.get('etag')).toBe('"1"')
    const again = await t.api('POST', `prompts/${p.body.id}/versions`, {
      template: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Summarize {{ doc.title }}: {{body}}' }],
      model: 'openai/gpt-4o', params: { temperature: 0.1, max_tokens: 100 }, tools: [{ type: 'function', function: { name: 'lookup' } }],
      response_format: { type: 'json_object' }, metadata: { tag: 'a' }, message: 'retry',
    })
    expect(again.status).toBe(200)
    expect(again.body.id).toBe(v1.body.id)
    const v2 = await t.api('POST', `prompts/${p.body.id}/versions`, { template: 'Hello {{name}}' })
    expect(v2.status).toBe(201)
    expect(v2.body.version).toBe(2)
    expect((await t.api('GET', `prompts/${p.body.id}`)).body.latest_version).toBe(2)
    expect((await t.api('GET', `prompts/${p.body.id}/versions/1`)).body.id).toBe(v1.body.id)
    expect((await t.api('GET', `prompts/${p.body.id}/versions/${v2.body.id}`)).body.version).toBe(2)
    // Immutable in the database too.
    await expect(t.store.query('UPDATE prompt_versions SET model = $1 WHERE id = $2', ['x', v1.body.id])).rejects.toThrow(/immutable/)
  })

  it('POST /prompts/{id}/versions: validation errors name the field, template syntax included', async () => {
    const p = await t.api('POST', 'prompts', { name: 'versions-invalid' })
    const cases: [unknown, string, number][] = [
      [{}, 'template', 400],
      [{ template: '' }, 'template', 400],
      [{ template: 'x', params: { temperature: 5 } }, 'params.temperature', 400],
      [{ template: 'x', params: { bogus: 1 } }, 'params.bogus', 400],
      [{ template: [{ role: 'user' }] }, 'template[0].content', 400],
      [{ template: 'Hi {{#if admin}}boss{{/if}}' }, 'template', 400],
      [{ template: [{ role: 'user', content: 'ok' }, { role: 'user', content: 'Hi {{ a + b }}' }] }, 'template[1].content', 400],
      [{ template: 'Hi {{ name' }, 'template', 400],
      [{ template: 'x', variables: { type: 'nonsense' } }, 'variables', 422],
      // A tool_choice the version's own tools cannot honour would fail every execution at the provider.
      [{ template: 'x', params: { tool_choice: 'required' } }, 'params.tool_choice', 422],
      [{ template: 'x', params: { tool_choice: { type: 'function', function: { name: 'lookup' } } } }, 'params.tool_choice', 422],
      [{ template: 'x', tools: [{ type: 'function', function: { name: 'lookup' } }], params: { tool_choice: { type: 'function', function: { name: 'nope' } } } }, 'params.tool_choice', 422],
    ]
    for (const [body, param, status] of cases) {
      const r = await t.api('POST', `prompts/${p.body.id}/versions`, body)
      expect(r.status, `${JSON.stringify(body)} → ${r.text}`).toBe(status)
      expect(r.body.error.param).toBe(param)
    }
    const ok = await t.api('POST', `prompts/${p.body.id}/versions`, { template: 'x', tools: [{ type: 'function', function: { name: 'lookup' } }], params: { tool_choice: { type: 'function', function: { name: 'lookup' } } } })
    expect(ok.status, ok.text).toBe(201)
  })

  it('POST /prompts/{id}/versions: 404 for an unknown prompt, 412 for a stale If-Match', async () => {
    expect((await t.api('POST', `prompts/${MISSING}/versions`, { template: 'x' })).status).toBe(404)
    expect((await t.api('POST', 'prompts/nope/versions', { template: 'x' })).status).toBe(404)
    const p = await t.api('POST', 'prompts', { name: 'concurrent-versions' })
    const ok = await t.api('POST', `prompts/${p.body.id}/versions`, { template: 'a' }, { 'if-match': '"0"' })
    expect(ok.status).toBe(201)
    const stale = await t.api('POST', `prompts/${p.body.id}/versions`, { template: 'b' }, { 'if-match': '"0"' })
    expect(stale.status).toBe(412)
    expect(stale.body.error.code).toBe('MCP_ERR_ADMIN_PRECONDITION_FAILED')
    expect((await t.api('GET', `prompts/${p.body.id}`)).body.latest_version).toBe(1)
  })

  it('concurrent version creations get consecutive numbers', async () => {
    const p = await t.api('POST', 'prompts', { name: 'race' })
    const rs = await Promise.all(Array.from({ length: 5 }, (_, i) => t.api('POST', `prompts/${p.body.id}/versions`, { template: `t${i}` })))
    expect(rs.map((r) => r.status)).toEqual([201, 201, 201, 201, 201])
    expect(rs.map((r) => r.body.version).sort()).toEqual([1, 2, 3, 4, 5])
  })

  it('GET /prompts/{id}/versions paginates newest first; 404 for unknown prompts and versions', async () => {
    const p = await t.api('POST', 'prompts', { name: 'many-versions' })
    for (let i = 0; i < 5; i++) await t.api('POST', `prompts/${p.body.id}/versions`, { template: `v${i}` })
    const first = await t.api('GET', `prompts/${p.body.id}/versions?limit=3`)
    expect(first.body.data.map((v: { version: number }) => v.version)).toEqual([5, 4, 3])
    const second = await t.api('GET', `prompts/${p.body.id}/versions?limit=3&cursor=${first.body.next_cursor}`)
    expect(second.body.data.map((v: { version: number }) => v.version)).toEqual([2, 1])
    expect(second.body.next_cursor).toBeNull()
    expect((await t.api('GET', `prompts/${MISSING}/versions`)).status).toBe(404)
    expect((await t.api('GET', `prompts/${p.body.id}/versions/9`)).status).toBe(404)
    expect((await t.api('GET', `prompts/${p.body.id}/versions/abc`)).status).toBe(404)
  })

  it('every management route is behind the admin key', async () => {
    const r = await fetch(`${t.adminUrl}/api/v1/mcp/prompts`)
    expect(r.status).toBe(401)
    const w = await fetch(`${t.adminUrl}/api/v1/mcp/prompts`, { headers: { authorization: 'Bearer wrong' } })
    expect(w.status).toBe(401)
  })
})
