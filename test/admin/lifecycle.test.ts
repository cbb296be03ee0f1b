/**
 * The prompt lifecycle through the running server (data plane + admin API wired as main.ts wires them):
 * create a prompt, version 1, deploy to staging, execute (admin port and data plane, JSON and SSE), version 2,
 * deploy it, roll back, promote — and every execution says which version answered it.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { pino } from 'pino'
import { registerExecutionRoutes } from '../../admin/routes/executions.ts'
import { ExecutionLogWriter } from '../../store/execution-log-writer.ts'
import { seedPrompt, startTestMcp, testEngines, type TestMcp } from './helpers.ts'

const engines = testEngines('admin lifecycle')

describe.each(engines)('prompt lifecycle on $name', (engine) => {
  let mock: OpenAIMock
  let t: TestMcp
  let executionLog: ExecutionLogWriter

  beforeAll(async () => {
    mock = await startOpenAIMock()
    const store = await engine.open()
    // The execution log as main.ts wires it: the writer as a plugin service, its routes on the admin port.
    executionLog = ExecutionLogWriter.create({ store, logger: pino({ level: 'silent' }) })
    t = await startTestMcp({
      store,
      override: { providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-file-key' } } },
      services: { executionLog },
      adminRoutes: (admin) => registerExecutionRoutes(admin, store),
      beforeStoreClose: async () => { await executionLog.close(5000) },
    })
  }, 60_000)

  afterAll(async () => {
    await t?.close()
    await mock?.close()
  })

  /** Executions observed, in order: which version answered each call. */
  const answered: { via: string; executionId: string; promptVersionId: string; version: number; upstreamRequestId?: string }[] = []

  async function execute(via: 'admin' | 'data', body: Record<string, unknown>): Promise<any> {
    const r = via === 'admin' ? await t.api('POST', 'execute', body) : await t.data('POST', '/api/v1/mcp/execute', body)
    expect(r.status, r.text).toBe(200)
    answered.push({ via, executionId: r.body.execution_id, promptVersionId: r.body.prompt_version_id, version: r.body.version, upstreamRequestId: r.body.upstream_request_id })
    expect(r.headers.get('x-mcp-execution-id')).toBe(r.body.execution_id)
    return r.body
  }

  it('creates, deploys, executes, versions, rolls back and promotes', async () => {
    const { promptId, versionIds } = await seedPrompt(t, 'greeting', [
      { template: [{ role: 'system', content: 'You are v1.' }, { role: 'user', content: 'echo Hello {{ name }} from {{place.city}}' }], model: 'mock/gpt-4o', params: { temperature: 0.2 } },
    ])
    const v1 = versionIds[0]!

    const dep = await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging', version: 1 })
    expect(dep.status, dep.text).toBe(201)
    expect(dep.headers.get('etag')).toBe('"1"')
    expect(dep.body).toMatchObject({ prompt_id: promptId, environment: 'staging', prompt_version_id: v1, version: 1, status: 'active', traffic: [{ prompt_version_id: v1, weight: 100 }] })
    const depId = dep.body.id as string

    // Execute by deployment id on the admin port, and by prompt + environment on the data plane.
    const e1 = await execute('admin', { deployment_id: depId, variables: { name: 'Ada', place: { city: 'Paris' } } })
    expect(e1).toMatchObject({ deployment_id: depId, prompt_version_id: v1, version: 1, environment: 'staging', model: 'mock/gpt-4o' })
    expect(e1.output.choices[0].message.content).toBe('echo: Hello Ada from Paris')
    expect(e1.usage.total_tokens).toBeGreaterThan(0)
    expect(typeof e1.latency_ms).toBe('number')
    // The provider's own id of the call (the mock's x-request-id), what its support asks for.
    expect(e1.upstream_request_id).toMatch(/^req_/)
    const upstream = mock.requests.at(-1)!
    expect(upstream.body.model).toBe('gpt-4o')
    expect(upstream.body.temperature).toBe(0.2)
    expect(upstream.body.messages[0]).toEqual({ role: 'system', content: 'You are v1.' })

    const e2 = await execute('data', { prompt: 'greeting', environment: 'staging', variables: { name: 'Bo', place: { city: 'Rome' } }, parameters: { temperature: 0.9 } })
    expect(e2.prompt_version_id).toBe(v1)
    expect(mock.requests.at(-1)!.body.temperature).toBe(0.9)

    // Version 2, deployed.
    const v2r = await t.api('POST', `prompts/${promptId}/versions`, { template: 'echo Hi {{name}} (v2)', model: 'mock/gpt-4o-mini' })
    expect(v2r.status, v2r.text).toBe(201)
    expect(v2r.body.version).toBe(2)
    const v2 = v2r.body.id as string
    const put = await t.api('PUT', `deployments/${depId}`, { version: 2 }, { 'if-match': '"1"' })
    expect(put.status, put.text).toBe(200)
    expect(put.body).toMatchObject({ prompt_version_id: v2, version: 2, revision: 2 })

    const e3 = await execute('admin', { deployment_id: depId, variables: { name: 'Cy' } })
    expect(e3).toMatchObject({ prompt_version_id: v2, version: 2, model: 'mock/gpt-4o-mini' })
    expect(e3.output.choices[0].message.content).toBe('echo: Hi Cy (v2)')

    // Streaming: chunks, then the execution chunk, then [DONE].
    const sse = await fetch(`${t.url}/api/v1/mcp/execute`, {
      method: 'POST', headers: { authorization: `Bearer ${(await import('./helpers.ts')).ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ deployment_id: depId, variables: { name: 'Di' }, stream: true }),
    })
    expect(sse.status).toBe(200)
    expect(sse.headers.get('content-type')).toContain('text/event-stream')
    const events = (await sse.text()).split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, ''))
    expect(events.at(-1)).toBe('[DONE]')
    const last = JSON.parse(events.at(-2)!)
    expect(last.choices).toEqual([])
    expect(last.execution).toMatchObject({ deployment_id: depId, prompt_version_id: v2, version: 2, upstream_request_id: expect.stringMatching(/^req_/) })
    expect(last.execution.upstream_request_id).not.toBe(e1.upstream_request_id)
    expect(last.usage.total_tokens).toBeGreaterThan(0)
    const text = events.slice(0, -2).map((e) => JSON.parse(e).choices[0]?.delta?.content ?? '').join('')
    expect(text).toBe('echo: Hi Di (v2)')
    answered.push({ via: 'data-sse', executionId: last.execution.execution_id, promptVersionId: last.execution.prompt_version_id, version: last.execution.version })

    // Roll back (to the previous version: 1).
    const rb = await t.api('POST', `deployments/${depId}/rollback`, {}, { 'if-match': '"2"' })
    expect(rb.status, rb.text).toBe(200)
    expect(rb.body).toMatchObject({ prompt_version_id: v1, version: 1, revision: 3 })
    const e4 = await execute('data', { deployment_id: depId, variables: { name: 'Ed', place: { city: 'Oslo' } } })
    expect(e4.prompt_version_id).toBe(v1)

    // History: create (v1), update (v2), rollback (v1).
    const h = await t.api('GET', `deployments/${depId}/history`)
    expect(h.status).toBe(200)
    expect(h.body.data.map((x: any) => [x.action, x.to_version])).toEqual([['rollback', 1], ['update', 2], ['create', 1]])

    // Promote staging → production: the same version there.
    const pr = await t.api('POST', `deployments/${depId}/promote`, {})
    expect(pr.status, pr.text).toBe(201)
    expect(pr.body).toMatchObject({ environment: 'production', prompt_version_id: v1 })
    const e5 = await execute('admin', { prompt: promptId, environment: 'production', variables: { name: 'Fa', place: { city: 'Lima' } } })
    expect(e5).toMatchObject({ deployment_id: pr.body.id, prompt_version_id: v1 })

    // Which version answered each call.
    expect(answered.map((a) => [a.via, a.version])).toEqual([
      ['admin', 1], ['data', 1], ['admin', 2], ['data-sse', 2], ['data', 1], ['admin', 1],
    ])
    expect(new Set(answered.map((a) => a.executionId)).size).toBe(answered.length)
  })

  it('the execution log records which version answered each call', async () => {
    expect(answered.length).toBe(6)
    await executionLog.flush()
    for (const a of answered) {
      const r = await t.api('GET', `executions?request_id=${encodeURIComponent(a.executionId)}`)
      expect(r.status, r.text).toBe(200)
      expect(r.body.data.length, a.executionId).toBe(1)
      expect(r.body.data[0]).toMatchObject({ request_id: a.executionId, prompt_version_id: a.promptVersionId, status: 'ok' })
    }
  })

  it("GET /executions?upstream_request_id: the execution a provider's request id belongs to (what its support quotes back)", async () => {
    await executionLog.flush()
    const withId = answered.filter((a) => a.upstreamRequestId !== undefined)
    expect(withId.length).toBeGreaterThanOrEqual(4)
    for (const a of withId) {
      const r = await t.api('GET', `executions?upstream_request_id=${encodeURIComponent(a.upstreamRequestId!)}`)
      expect(r.status, r.text).toBe(200)
      expect(r.body.data.map((x: { request_id: string }) => x.request_id)).toEqual([a.executionId])
      expect(r.body.data[0].metrics.upstreamRequestId).toBe(a.upstreamRequestId)
    }
    expect((await t.api('GET', 'executions?upstream_request_id=req_none')).body.data).toEqual([])
    const long = await t.api('GET', `executions?upstream_request_id=${'x'.repeat(201)}`)
    expect(long.status).toBe(400)
    expect(long.body.error).toMatchObject({ code: 'MCP_ERR_ADMIN_QUERY_INVALID', param: 'upstream_request_id' })
  })

  it('GET /executions: a time filter PostgreSQL refuses (year 0000) is a 400 naming it, not the cursor', async () => {
    for (const param of ['from', 'to']) {
      // Year 0, past year 9999 (an offset), and a day that does not exist (not rolled over into March).
      for (const v of ['0000-01-01T00:00:00Z', '9999-12-31T23:00:00-05:00', '2026-02-30']) {
        const r = await t.api('GET', `executions?${param}=${v}`)
        expect(r.status, `${param}=${v}: ${r.text}`).toBe(400)
        expect(r.body.error).toMatchObject({ code: 'MCP_ERR_ADMIN_QUERY_INVALID', param })
      }
    }
  })

  /** A deployment of its own for the tests below (the first test's moves between versions). */
  async function deployment(name: string): Promise<{ depId: string; versionId: string }> {
    const { promptId, versionIds } = await seedPrompt(t, name, [{ template: 'echo Hello {{name}}', model: 'mock/gpt-4o', variables: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] } }])
    const dep = await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'staging' })
    expect(dep.status, dep.text).toBe(201)
    return { depId: dep.body.id, versionId: versionIds[0]! }
  }

  it('a 101-128-character x-request-id is stored whole: GET /executions/{id} and ?request_id= find it', async () => {
    const { depId } = await deployment('long-request-id')
    const long = `long-${Date.now()}-`.padEnd(128, 'L')
    const r = await t.data('POST', '/api/v1/mcp/execute', { deployment_id: depId, variables: { name: 'Al' } }, { 'x-request-id': long })
    expect(r.status, r.text).toBe(200)
    expect(r.headers.get('x-request-id')).toBe(long)
    await executionLog.flush()
    const byId = await t.api('GET', `executions/${long}`)
    expect(byId.status, byId.text).toBe(200)
    expect(byId.body).toMatchObject({ id: r.body.execution_id, request_id: long, deployment_id: depId })
    const listed = await t.api('GET', `executions?request_id=${long}`)
    expect(listed.status, listed.text).toBe(200)
    expect(listed.body.data.map((x: { id: string; request_id: string }) => [x.id, x.request_id])).toEqual([[r.body.execution_id, long]])
    expect((await t.api('GET', `executions/${long}X`)).status).toBe(404)
    const tooLong = await t.api('GET', `executions?request_id=${long}X`)
    expect(tooLong.status).toBe(400)
    expect(tooLong.body.error).toMatchObject({ code: 'MCP_ERR_ADMIN_QUERY_INVALID', param: 'request_id' })
  })

  it('a reused x-request-id: each execute answers the execution_id of its own row', async () => {
    const { depId } = await deployment('reused-request-id')
    const rid = `reused-${Date.now()}`
    const calls: { executionId: string; header: string | null; status: number }[] = []
    for (const name of ['FIRST', 'SECOND']) {
      const r = await t.data('POST', '/api/v1/mcp/execute', { deployment_id: depId, variables: { name } }, { 'x-request-id': rid })
      expect(r.status, r.text).toBe(200)
      expect(r.headers.get('x-request-id')).toBe(rid)
      calls.push({ executionId: r.body.execution_id, header: r.headers.get('x-mcp-execution-id'), status: r.status })
    }
    // Streamed: the execution chunk says the same.
    const sse = await t.data('POST', '/api/v1/mcp/execute', { deployment_id: depId, variables: { name: 'THIRD' }, stream: true }, { 'x-request-id': rid })
    const events = sse.text.split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, ''))
    calls.push({ executionId: JSON.parse(events.at(-2)!).execution.execution_id, header: sse.headers.get('x-mcp-execution-id'), status: sse.status })
    for (const c of calls) expect(c.header).toBe(c.executionId)
    expect(new Set(calls.map((c) => c.executionId)).size).toBe(3)
    await executionLog.flush()
    for (const [i, name] of ['FIRST', 'SECOND', 'THIRD'].entries()) {
      const g = await t.api('GET', `executions/${calls[i]!.executionId}`)
      expect(g.status, g.text).toBe(200)
      expect(g.body.id).toBe(calls[i]!.executionId)
      expect(g.body.request.messages[0].content, name).toBe(`echo Hello ${name}`)
    }
    // The request id still finds them: the first under it, the others renamed.
    const listed = await t.api('GET', `executions?deployment_id=${depId}`)
    expect(listed.body.data.map((x: { request_id: string }) => x.request_id).sort()).toEqual(
      [rid, `${rid}~${calls[1]!.executionId}`, `${rid}~${calls[2]!.executionId}`].sort())
    expect((await t.api('GET', `executions/${rid}`)).body.id).toBe(calls[0]!.executionId)
  })

  it('a client request id equal to another row id does not hide that row from GET /executions/{id}', async () => {
    const { depId } = await deployment('uuid-request-id')
    const a = await t.data('POST', '/api/v1/mcp/execute', { deployment_id: depId, variables: { name: 'A' } })
    expect(a.status, a.text).toBe(200)
    const b = await t.data('POST', '/api/v1/mcp/execute', { deployment_id: depId, variables: { name: 'B' } }, { 'x-request-id': a.body.execution_id })
    expect(b.status, b.text).toBe(200)
    await executionLog.flush()
    expect((await t.api('GET', `executions/${a.body.execution_id}`)).body.request.messages[0].content).toBe('echo Hello A')
    expect((await t.api('GET', `executions/${b.body.execution_id}`)).body.request.messages[0].content).toBe('echo Hello B')
  })

  it('refused executes (422 variables, 400 tool_choice, 409 paused) are recorded with their deployment', async () => {
    const { depId, versionId } = await deployment('refused-executes')
    const refused: { rid: string; status: number; version: string | null }[] = []
    const send = async (rid: string, body: Record<string, unknown>, status: number, version: string | null) => {
      const r = await t.data('POST', '/api/v1/mcp/execute', { deployment_id: depId, ...body }, { 'x-request-id': rid })
      expect(r.status, r.text).toBe(status)
      expect(r.headers.get('x-mcp-deployment-id')).toBe(depId)
      expect(r.headers.get('x-mcp-execution-id')).toMatch(/^[0-9a-f-]{36}$/)
      refused.push({ rid, status, version })
      return r.headers.get('x-mcp-execution-id')!
    }
    const tag = `refused-${Date.now()}`
    const badVars = await send(`${tag}-vars`, { variables: { name: 1 } }, 422, versionId)
    await send(`${tag}-unknown`, { variables: { name: 'x', nope: 1 } }, 422, versionId)
    await send(`${tag}-choice`, { variables: { name: 'x' }, parameters: { tool_choice: 'required' } }, 400, versionId)
    const put = await t.api('PUT', `deployments/${depId}`, { status: 'paused' }, { 'if-match': '*' })
    expect(put.status, put.text).toBe(200)
    await vi.waitFor(async () => expect((await t.data('POST', '/api/v1/mcp/execute', { deployment_id: depId }, { 'x-request-id': `${tag}-wait` })).status).toBe(409))
    await send(`${tag}-paused`, {}, 409, null)
    await executionLog.flush()
    const listed = await t.api('GET', `executions?deployment_id=${depId}&limit=200`)
    expect(listed.status, listed.text).toBe(200)
    const rows = new Map(listed.body.data.map((x: { request_id: string }) => [x.request_id, x]))
    for (const want of refused) {
      expect(rows.get(want.rid), want.rid).toMatchObject({ deployment_id: depId, prompt_version_id: want.version, status: 'error', metrics: { status: want.status } })
    }
    expect((await t.api('GET', `executions/${badVars}`)).body).toMatchObject({ request_id: `${tag}-vars`, deployment_id: depId, prompt_version_id: versionId })
  })
})
