import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Pool } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { GatewayError } from '../../gateway/errors.ts'
import { classify } from '../../gateway/routing/router.ts'
import { countsAsUpstreamFailure } from '../../gateway/routing/target-state.ts'
import type { ChatRequest, ExecuteParams, ProviderConfig } from '../types.ts'
import { HttpAdapter } from './http-adapter.ts'

/**
 * A translation that throws something other than a GatewayError has found a fault of the gateway's own before a
 * byte was sent: MCP_ERR_INTERNAL (not retried, not the provider's failure), never the provider's bad answer.
 */
describe('HttpAdapter: a translation that throws', () => {
  let server: http.Server
  let origin = ''
  let calls = 0
  let pool: Pool

  beforeAll(async () => {
    server = http.createServer((req, res) => { calls++; req.resume(); res.end('{}') })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    pool = new Pool(origin)
  })
  afterAll(async () => {
    await pool.close()
    server.close()
  })

  const adapter = (toUpstream: () => never): HttpAdapter => new HttpAdapter({
    name: 'p', type: 'test', config: { type: 'test' } as unknown as ProviderConfig, dispatcher: pool,
    headers: {}, timeouts: { firstByteMs: 2000, idleMs: 2000 }, configErrors: () => [],
    chat: {
      streamFormat: 'sse', toUpstream, fromUpstream: () => { throw new Error('not called') },
      createStreamMapper: () => { throw new Error('not called') }, toError: () => new GatewayError('MCP_ERR_UPSTREAM_ERROR', { provider: 'p', status: 500, reason: 'x' }),
    },
    embeddings: { toUpstream, fromUpstream: () => { throw new Error('not called') } },
  })
  const params = (): ExecuteParams => ({ model: 'm', signal: new AbortController().signal, deadline: Date.now() + 5000, requestId: 'req-1' })
  const req = { model: 'p/m', messages: [{ role: 'user', content: 'hi' }] } as ChatRequest

  it('a TypeError in the request translation is MCP_ERR_INTERNAL, not retried, not counted against the provider', async () => {
    const a = adapter(() => { throw new TypeError('rule is not a function') })
    for (const call of [() => a.execute(req, params()), () => a.stream(req, params()), () => a.embed({ model: 'p/m', input: 'x' }, params())]) {
      const e = await call().then(() => undefined, (x: unknown) => x)
      expect(e).toBeInstanceOf(GatewayError)
      const g = e as GatewayError
      expect(g.code).toBe('MCP_ERR_INTERNAL')
      expect(g.status).toBe(500)
      expect(g.details).toBe('gateway.request_translation')
      expect(g.message).not.toContain('rule is not a function')
      expect(classify(g)).toBe('fatal')
      expect(countsAsUpstreamFailure(g)).toBe(false)
    }
    expect(a.getMetrics().errors).toBe(0)
    expect(a.getMetrics().inflight).toBe(0)
    expect(calls).toBe(0)
  })

  it("a translation's own refusal (a GatewayError) goes on as it is", async () => {
    const refusal = new GatewayError('MCP_ERR_REQ_PARAM_UNSUPPORTED', { param: 'seed', provider: 'p' }, { param: 'seed' })
    const a = adapter(() => { throw refusal })
    await expect(a.execute(req, params())).rejects.toBe(refusal)
    expect(calls).toBe(0)
  })
})
