/**
 * Static stability: PostgreSQL reached through a TCP forwarder of the test's own, which the test cuts and
 * restores. While the database is gone the data plane keeps serving from the last snapshot (execute, and a
 * provider added through the API), /readyz answers 200 `degraded`, management requests answer 503
 * MCP_ERR_STORE_UNAVAILABLE; once it is back, writes work again and the snapshot catches up.
 */
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openStore } from '../../store/index.ts'
import { freePort } from '../helpers/gateway-process.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { freshSchemaUrl, postgresAvailable, seedPrompt, startTestMcp, testEngines, type ApiResponse, type TestMcp } from './helpers.ts'

/** A TCP forwarder to PostgreSQL that can drop every connection and refuse new ones. */
class Forwarder {
  readonly #target: { host: string; port: number }
  readonly #sockets = new Set<net.Socket>()
  #server: net.Server | undefined
  port = 0

  constructor(target: { host: string; port: number }) {
    this.#target = target
  }

  async start(port = 0): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.#target.port, this.#target.host)
      for (const s of [client, upstream]) {
        this.#sockets.add(s)
        s.on('close', () => this.#sockets.delete(s))
        s.on('error', () => { client.destroy(); upstream.destroy() })
      }
      client.pipe(upstream)
      upstream.pipe(client)
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => { server.off('error', reject); resolve() })
    })
    this.#server = server
    this.port = (server.address() as net.AddressInfo).port
  }

  /** The database "goes away": connections reset, new ones refused. */
  async cut(): Promise<void> {
    const server = this.#server
    this.#server = undefined
    const closed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve()
    for (const s of this.#sockets) s.destroy()
    await closed
  }

  restore(): Promise<void> {
    return this.start(this.port)
  }
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

const engines = testEngines('static stability').filter((e) => e.name === 'postgres')

describe.runIf(postgresAvailable && engines.length > 0)('static stability: PostgreSQL goes away', () => {
  let mock: OpenAIMock
  let fwd: Forwarder
  let t: TestMcp
  let deploymentId = ''

  beforeAll(async () => {
    mock = await startOpenAIMock()
    const direct = new URL(await freshSchemaUrl())
    fwd = new Forwarder({ host: direct.hostname, port: Number(direct.port || 5432) })
    // A port below the ephemeral range: restore() binds it again, and while the forwarder is cut an
    // outgoing connection could otherwise take a listen(0) port.
    await fwd.start(await freePort())
    const viaForwarder = new URL(direct)
    viaForwarder.hostname = '127.0.0.1'
    viaForwarder.port = String(fwd.port)
    const store = await openStore({ dataDir: 'unused', databaseUrl: viaForwarder.toString(), onError: () => {} })
    t = await startTestMcp({ store, override: { providers: { filed: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-file' } } } })
    const p = await t.api('POST', 'providers', { name: 'viaapi', provider: 'openai', config: { baseUrl: mock.url }, credentials: { apiKey: 'sk-api-0123456789abcdef' } })
    expect(p.status, p.text).toBe(201)
    const { promptId } = await seedPrompt(t, 'stable', [{ template: 'echo {{x}}', model: 'viaapi/gpt-4o' }])
    const d = await t.api('POST', 'deployments', { prompt_id: promptId, environment: 'production' })
    expect(d.status, d.text).toBe(201)
    deploymentId = d.body.id
  }, 60_000)

  afterAll(async () => {
    await fwd?.restore().catch(() => {})
    await t?.close()
    await mock?.close()
  })

  const execute = (x: string): Promise<ApiResponse> => t.data('POST', '/api/v1/mcp/execute', { deployment_id: deploymentId, variables: { x } })

  it('serves from the last snapshot, reports degraded, refuses management requests with 503; recovers', async () => {
    expect((await execute('before')).status).toBe(200)
    const ready = await t.api('GET', '/readyz')
    expect(ready.body).toMatchObject({ status: 'ready', checks: { database: true } })

    await fwd.cut()
    // A write right away (before the poller noticed) fails on the dead connection: 503, not 500.
    const early = await t.api('POST', 'prompts', { name: 'during-outage' })
    expect(early.status, early.text).toBe(503)
    expect(early.body.error.code).toBe('MCP_ERR_STORE_UNAVAILABLE')
    await until('the control plane notices', () => !t.mcp.cp.databaseUp)

    // Data plane: still serving with the last snapshot (deployment, version, API provider and its key).
    for (let i = 0; i < 3; i++) {
      const r = await execute(`during ${i}`)
      expect(r.status, r.text).toBe(200)
      expect(r.body.output.choices[0].message.content).toBe(`echo: during ${i}`)
    }
    expect(mock.requests.at(-1)!.headers['authorization']).toBe('Bearer sk-api-0123456789abcdef')
    expect((await t.data('POST', '/v1/chat/completions', { model: 'filed/gpt-4o', messages: [{ role: 'user', content: 'echo hi' }] })).status).toBe(200)
    // A config reload keeps the API providers (they come from the snapshot, not the database).
    expect((await t.api('POST', 'config/reload')).status).toBe(200)
    expect((await execute('after reload')).status).toBe(200)

    // Readiness: degraded, still 200 (the instance keeps taking traffic).
    const degraded = await t.api('GET', '/readyz')
    expect(degraded.status).toBe(200)
    expect(degraded.body).toMatchObject({ status: 'degraded', checks: { database: false }, degraded: ['database'] })
    expect((await t.api('GET', '/metrics')).text).toMatch(/^mcp_store_up 0$/m)

    // Management: 503 fast, reads and writes alike.
    const t0 = Date.now()
    for (const [method, path, body] of [
      ['POST', 'prompts', { name: 'x' }],
      ['PUT', `deployments/${deploymentId}`, { status: 'paused' }],
      ['POST', 'providers', { name: 'y', provider: 'openai' }],
      ['GET', `deployments/${deploymentId}`, undefined],
    ] as const) {
      const r = await t.api(method, path, body, { 'if-match': '*' })
      expect(r.status, `${method} ${path}`).toBe(503)
      expect(r.body.error.code).toBe('MCP_ERR_STORE_UNAVAILABLE')
    }
    expect(Date.now() - t0).toBeLessThan(1000)

    await fwd.restore()
    await until('the control plane reconnects', () => t.mcp.cp.databaseUp)
    const w = await t.api('POST', 'prompts', { name: 'after-outage' })
    expect(w.status, w.text).toBe(201)
    expect((await t.api('GET', '/readyz')).body.status).toBe('ready')
    expect((await t.api('GET', '/metrics')).text).toMatch(/^mcp_store_up 1$/m)
    expect((await execute('after')).status).toBe(200)
    expect(t.mcp.cp.counters.storeUnavailable).toBeGreaterThanOrEqual(5)
  })
})
