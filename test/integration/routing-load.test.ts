/**
 * Load with a flaky primary: at 500 req/s with the primary failing half its requests, at least
 * 99.9% succeed through the fallback and upstream attempts per client request stay at or below
 * 1.25 (the breaker and outlier ejection stop paying for the primary's failures). Also the admin
 * API over targets: state, forced breaker, metrics.
 */
import { Agent, request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, authHeaders, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'

let gw: TestGateway
let primary: OpenAIMock
let secondary: OpenAIMock

beforeAll(async () => {
  ;[primary, secondary] = await Promise.all([startOpenAIMock({ record: false }), startOpenAIMock({ record: false })])
  gw = await startGateway({
    log: { level: 'warn' },
    providers: {
      primary: { type: 'openai', baseUrl: primary.url, apiKey: 'sk-primary-load-0001' },
      secondary: { type: 'openai', baseUrl: secondary.url, apiKey: 'sk-secondary-load-01' },
    },
    routing: { health: { enabled: true, intervalMs: 3_600_000 } },
    models: {
      smart: {
        targets: [
          { provider: 'primary', model: 'gpt-4o', timeouts: { firstByteMs: 2000, idleMs: 2000 } },
          { provider: 'secondary', model: 'gpt-4o-mini', priority: 1, timeouts: { firstByteMs: 2000, idleMs: 2000 } },
        ],
      },
    },
  })
})

afterAll(async () => {
  await gw?.close()
  await Promise.all([primary?.close(), secondary?.close()])
})


describe('flaky primary under load', () => {
  it('500 req/s, primary failing every other request: >= 99.9% succeed, <= 1.25 attempts per request', async () => {
    primary.fault = 'status:500,every:2'
    const agent = new Agent({ connections: 64, keepAliveTimeout: 10_000 })
    const body = JSON.stringify({ model: 'smart', messages: [{ role: 'user', content: 'hi' }] })
    const rate = 500
    const durationMs = Number(process.env['MCP_LOAD_MS'] ?? 8000)
    const total = Math.floor((rate * durationMs) / 1000)
    let ok = 0
    let failed = 0
    let attempts = 0
    const inflight: Promise<void>[] = []
    const t0 = performance.now()
    for (let i = 0; i < total; i++) {
      const due = t0 + (i * 1000) / rate
      const wait = due - performance.now()
      if (wait > 1) await new Promise((r) => setTimeout(r, wait))
      inflight.push(request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body, dispatcher: agent })
        .then(async (res) => {
          await res.body.text()
          if (res.statusCode === 200) ok++
          else failed++
          attempts += Number(res.headers['x-mcp-attempts'] ?? 1)
        }, () => { failed++ }))
    }
    await Promise.all(inflight)
    await agent.close()
    primary.fault = null
    const successRate = ok / total
    const perRequest = attempts / total
    console.log(`routing-load: ${total} requests, ok ${ok}, failed ${failed}, success ${(successRate * 100).toFixed(3)}%, attempts/request ${perRequest.toFixed(4)}`)
    expect(successRate).toBeGreaterThanOrEqual(0.999)
    expect(perRequest).toBeLessThanOrEqual(1.25)
  }, 60_000)
})

describe('admin API over targets', () => {
  it('shows state, forces a breaker open (traffic moves) and closed again, and exports breaker metrics', async () => {
    for (const s of gw.gw.targets.all()) s.reset()
    const h = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }
    const list = await (await fetch(`${gw.adminUrl}/api/v1/mcp/targets`, { headers: h })).json() as { data: { id: string; breaker: string }[]; aliases: Record<string, string[]> }
    expect(list.aliases['smart']).toEqual(['primary/gpt-4o', 'secondary/gpt-4o-mini'])
    expect(list.data.find((d) => d.id === 'primary/gpt-4o')?.breaker).toBe('closed')

    const forced = await fetch(`${gw.adminUrl}/api/v1/mcp/targets/primary/gpt-4o/breaker`, { method: 'POST', headers: h, body: JSON.stringify({ state: 'open' }) })
    expect(forced.status).toBe(200)
    expect(((await forced.json()) as { breaker: string }).breaker).toBe('open')
    const r = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model: 'smart', messages: [{ role: 'user', content: 'hi' }] }) })
    expect(r.status).toBe(200)
    expect(r.headers.get('x-mcp-provider')).toBe('secondary')
    expect(r.headers.get('x-mcp-fallback-reason')).toBe('circuit_open')

    const bad = await fetch(`${gw.adminUrl}/api/v1/mcp/targets/primary/gpt-4o/breaker`, { method: 'POST', headers: h, body: JSON.stringify({ state: 'sideways' }) })
    expect(bad.status).toBe(400)
    expect(((await bad.json()) as { error: { message: string } }).error.message).toContain('state')
    const missing = await fetch(`${gw.adminUrl}/api/v1/mcp/targets/nope/none/breaker`, { method: 'POST', headers: h, body: JSON.stringify({ state: 'open' }) })
    expect(missing.status).toBe(404)

    const metrics = await (await fetch(`${gw.adminUrl}/metrics`, { headers: h })).text()
    expect(metrics).toContain('mcp_breaker_state{target="primary/gpt-4o"} 2')
    expect(metrics).toMatch(/mcp_fallbacks_total\{alias="smart",reason="circuit_open"\} \d+/)

    await fetch(`${gw.adminUrl}/api/v1/mcp/targets/primary/gpt-4o/breaker`, { method: 'POST', headers: h, body: JSON.stringify({ state: 'auto' }) })
    const back = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model: 'smart', messages: [{ role: 'user', content: 'hi' }] }) })
    expect(back.headers.get('x-mcp-provider')).toBe('primary')
  })
})

describe('active health checks', () => {
  it('mark a target unhealthy off the request path, route around it, and bring it back when the probe passes', async () => {
    for (const s of gw.gw.targets.all()) s.reset()
    const send = () => fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model: 'smart', messages: [{ role: 'user', content: 'hi' }] }) })
    primary.fault = 'status:503,path:/models'
    await gw.gw.checkHealthNow()
    const down = gw.gw.targets.find('primary/gpt-4o')!
    expect(down.healthy).toBe(false)
    expect(down.lastHealth?.detail).toBe('HTTP 503')
    const r = await send()
    expect(r.status).toBe(200)
    expect(r.headers.get('x-mcp-provider')).toBe('secondary')
    expect(r.headers.get('x-mcp-fallback-reason')).toBe('unhealthy')
    primary.fault = null
    await gw.gw.checkHealthNow()
    expect(down.healthy).toBe(true)
    expect((await send()).headers.get('x-mcp-provider')).toBe('primary')
  })
})
