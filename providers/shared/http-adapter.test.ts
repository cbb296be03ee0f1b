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

/**
 * A request undici refuses to send (a header it does not allow, a Content-Length that is not the body's) is the
 * gateway's own fault: MCP_ERR_INTERNAL, not retried, not counted against the provider; it was reported as the provider
 * resetting the connection (MCP_ERR_UPSTREAM_RESET: retried, counted, the target ejected).
 */
describe('HttpAdapter: a request undici refuses before sending', () => {
  let server: http.Server
  let pool: Pool
  let calls = 0

  beforeAll(async () => {
    server = http.createServer((req, res) => { calls++; req.resume(); res.end('{}') })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
    pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
  })
  afterAll(async () => {
    await pool.close()
    server.close()
  })

  it.each([
    ['Transfer-Encoding', { 'transfer-encoding': 'chunked' }],
    ['Upgrade', { upgrade: 'websocket' }],
    ['Expect', { expect: '100-continue' }],
    ['a Content-Length that is not the body\'s', { 'content-length': '3' }],
  ])('%s: MCP_ERR_INTERNAL, not an upstream reset', async (_what, headers) => {
    const a = new HttpAdapter({
      name: 'p', type: 'test', config: { type: 'test' } as unknown as ProviderConfig, dispatcher: pool,
      headers, timeouts: { firstByteMs: 2000, idleMs: 2000 }, configErrors: () => [],
      chat: {
        streamFormat: 'sse', toUpstream: () => ({ path: '/v1/chat/completions', body: { model: 'm', messages: [] } }), fromUpstream: () => { throw new Error('not called') },
        createStreamMapper: () => { throw new Error('not called') }, toError: () => new GatewayError('MCP_ERR_UPSTREAM_ERROR', { provider: 'p', status: 500, reason: 'x' }),
      },
    })
    const e = await a.execute({ model: 'p/m', messages: [{ role: 'user', content: 'hi' }] } as ChatRequest, { model: 'm', signal: new AbortController().signal, deadline: Date.now() + 5000, requestId: 'req-2' })
      .then(() => undefined, (x: unknown) => x)
    expect(e).toBeInstanceOf(GatewayError)
    const g = e as GatewayError
    expect(g.code).toBe('MCP_ERR_INTERNAL')
    expect(classify(g)).toBe('fatal')
    expect(countsAsUpstreamFailure(g)).toBe(false)
    expect(a.getMetrics().errors).toBe(0)
    expect(calls).toBe(0)
  })
})
