/**
 * Monitoring: a trace test exports to a test OTLP/HTTP collector and checks the span tree (SERVER
 * request span → CLIENT attempt spans with GenAI attributes, W3C context from the client and to the
 * upstream); a metrics test scrapes /metrics after a scripted load and checks the counters against
 * the requests sent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, authHeaders, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { attr, startCollector, type OtlpCollector, type OtlpSpan } from '../helpers/otlp-collector.ts'

describe('tracing', () => {
  let collector: OtlpCollector
  let spans: OtlpSpan[]
  let gw: TestGateway
  let primary: OpenAIMock
  let backup: OpenAIMock

  beforeAll(async () => {
    collector = await startCollector()
    spans = collector.spans
    ;[primary, backup] = await Promise.all([startOpenAIMock(), startOpenAIMock()])
    gw = await startGateway({
      telemetry: { tracing: { enabled: true, endpoint: collector.url } },
      providers: {
        primary: { type: 'openai', baseUrl: primary.url, apiKey: 'sk-trace-primary-001' },
        backup: { type: 'openai', baseUrl: backup.url, apiKey: 'sk-trace-backup-0001' },
      },
      routing: { health: { enabled: false } },
      models: { smart: { targets: [{ provider: 'primary', model: 'gpt-4o' }, { provider: 'backup', model: 'gpt-4o-mini', priority: 1 }] } },
    })
  })

  afterAll(async () => {
    await gw?.close()
    await Promise.all([primary?.close(), backup?.close()])
    await collector?.close()
  })

  it('exports a SERVER span per request with a CLIENT span per upstream attempt, linked to the caller and the upstream', async () => {
    primary.fault = 'status:503,times:1'
    const clientTrace = '0af7651916cd43dd8448eb211c80319c'
    const clientSpan = 'b7ad6b7169203331'
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...authHeaders(), traceparent: `00-${clientTrace}-${clientSpan}-01` },
      body: JSON.stringify({ model: 'smart', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] }),
    })
    expect(res.status).toBe(200)
    await res.text()
    await gw.gw.tracing!.flush()
    const mine = spans.filter((s) => s.traceId === clientTrace)
    const server = mine.find((s) => s.kind === 2)!
    expect(server).toBeDefined()
    expect(server.parentSpanId).toBe(clientSpan)
    expect(attr(server, 'http.response.status_code')).toBe(200)
    // HTTP conventions: `{method} {http.route}`.
    expect(server.name).toBe('POST /v1/chat/completions')
    expect(attr(server, 'http.route')).toBe('/v1/chat/completions')
    expect(attr(server, 'gen_ai.usage.output_tokens')).toBe(12)
    const attempts = mine.filter((s) => s.kind === 3)
    expect(attempts.map((s) => s.name)).toEqual(['chat gpt-4o', 'chat gpt-4o-mini'])
    for (const a of attempts) {
      expect(a.parentSpanId).toBe(server.spanId)
      expect(attr(a, 'gen_ai.operation.name')).toBe('chat')
      expect(attr(a, 'gen_ai.provider.name')).toBe('openai')
    }
    expect(attempts[0]!.status?.code).toBe(2)
    expect(attr(attempts[0]!, 'error.type')).toBe('MCP_ERR_UPSTREAM_ERROR')
    // Each attempt carries its provider's own id of it (the mocks' x-request-id), the refused one's too.
    const ids = attempts.map((a) => attr(a, 'mcp.upstream.request_id'))
    expect(ids).toEqual([expect.stringMatching(/^req_/), expect.stringMatching(/^req_/)])
    expect(ids[0]).not.toBe(ids[1])
    // Each upstream saw the traceparent of its own attempt span.
    const upPrimary = primary.requests.at(-1)!.headers['traceparent'] as string
    const upBackup = backup.requests.at(-1)!.headers['traceparent'] as string
    expect(upPrimary.split('-')[1]).toBe(clientTrace)
    expect(upPrimary.split('-')[2]).toBe(attempts[0]!.spanId)
    expect(upBackup.split('-')[2]).toBe(attempts[1]!.spanId)
  })

  // Regression: a routed attempt's span was ended as OK when its stream failed after the headers (the direct path
  // already marked it), so a trace showed a healthy attempt under a failed request.
  it('an attempt whose stream is cut midway ends its span with an error, on an alias and on a direct target', async () => {
    for (const model of ['smart', 'primary/gpt-4o']) {
      const clientTrace = model === 'smart' ? '1af7651916cd43dd8448eb211c80319c' : '2af7651916cd43dd8448eb211c80319c'
      primary.fault = 'cutAfter:2'
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { ...authHeaders(), traceparent: `00-${clientTrace}-b7ad6b7169203331-01` },
        body: JSON.stringify({ model, stream: true, max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] }),
      })
      expect(res.status).toBe(200)
      expect(await res.text()).toContain('"error"')
      primary.fault = null
      await new Promise((r) => setTimeout(r, 50))
      await gw.gw.tracing!.flush()
      const mine = spans.filter((s) => s.traceId === clientTrace)
      const server = mine.find((s) => s.kind === 2)!
      expect(server.status?.code, model).toBe(2)
      const attempts = mine.filter((s) => s.kind === 3)
      expect(attempts, model).toHaveLength(1)
      expect(attempts[0]!.status?.code, model).toBe(2)
      expect(attr(attempts[0]!, 'error.type'), model).toBe(attr(server, 'error.type'))
    }
  })
})

describe('metrics', () => {
  let gw: TestGateway
  let mock: OpenAIMock

  beforeAll(async () => {
    mock = await startOpenAIMock()
    gw = await startGateway({ providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-metrics-00000001' } }, log: { level: 'warn' } })
  })

  afterAll(async () => {
    await gw?.close()
    await mock?.close()
  })

  function value(text: string, series: string): number {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `))
    return line ? Number(line.slice(series.length + 1)) : 0
  }

  it('counts what a scripted load sent: by route and status, errors by code, latency histograms, TTFT', async () => {
    const send = (body: unknown, headers = authHeaders()) => fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers, body: JSON.stringify(body) }).then((r) => r.text())
    const ok = { model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'hi' }] }
    await Promise.all(Array.from({ length: 25 }, () => send(ok)))
    await Promise.all(Array.from({ length: 5 }, () => send({ ...ok, stream: true })))
    await Promise.all(Array.from({ length: 7 }, () => send(ok, { 'content-type': 'application/json' })))
    mock.fault = 'status:500,times:3'
    await Promise.all(Array.from({ length: 3 }, () => send(ok)))
    await Promise.all(Array.from({ length: 4 }, () => fetch(`${gw.url}/v1/embeddings`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model: 'mock/text-embedding-3-small', input: 'x' }) }).then((r) => r.text())))
    const text = await (await fetch(`${gw.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).text()
    expect(value(text, 'mcp_requests_total{route="chat",status="200"}')).toBe(30)
    expect(value(text, 'mcp_requests_total{route="chat",status="401"}')).toBe(7)
    expect(value(text, 'mcp_requests_total{route="chat",status="500"}')).toBe(3)
    expect(value(text, 'mcp_requests_total{route="embeddings",status="200"}')).toBe(4)
    expect(value(text, 'mcp_request_errors_total{route="chat",code="MCP_ERR_AUTH_MISSING"}')).toBe(7)
    expect(value(text, 'mcp_request_errors_total{route="chat",code="MCP_ERR_UPSTREAM_ERROR"}')).toBe(3)
    expect(value(text, 'mcp_request_duration_seconds_count{route="chat"}')).toBe(40)
    expect(value(text, 'mcp_gateway_overhead_seconds_count{route="chat"}')).toBe(33)
    expect(value(text, 'mcp_time_to_first_token_seconds_count{route="chat"}')).toBe(5)
    expect(value(text, 'mcp_requests_in_flight')).toBe(0)
    expect(value(text, 'mcp_process_resident_memory_bytes')).toBeGreaterThan(1e6)
    expect(text).toContain('mcp_event_loop_delay_seconds{quantile="0.99"}')
    expect(text).toContain('mcp_event_loop_utilization')
    expect(text).toContain('mcp_process_cpu_seconds_total')
  })

  it('mcp_process_cpu_seconds_total is a counter (a running total: rate() over it is the CPU use)', async () => {
    const text = await (await fetch(`${gw.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).text()
    expect(text).toContain('# TYPE mcp_process_cpu_seconds_total counter')
    expect(text).not.toContain('# TYPE mcp_process_cpu_seconds_total gauge')
    expect(value(text, 'mcp_process_cpu_seconds_total')).toBeGreaterThan(0)
  })

  it('a target removed by a reload leaves the per-target gauges (no stale series)', async () => {
    const providers = { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-metrics-00000001' } }
    const scrape = async (): Promise<string> => (await fetch(`${gw.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).text()
    try {
      gw.setConfig({ providers, log: { level: 'warn' }, routing: { health: { enabled: false } }, models: { pair: { targets: [{ provider: 'mock', model: 'gpt-4o' }, { provider: 'mock', model: 'gone-model', priority: 1 }] } } })
      expect((await gw.gw.reload('test')).ok).toBe(true)
      let text = await scrape()
      for (const g of ['mcp_breaker_state', 'mcp_target_inflight', 'mcp_target_healthy']) expect(text).toContain(`${g}{target="mock/gone-model"}`)
      gw.setConfig({ providers, log: { level: 'warn' }, routing: { health: { enabled: false } }, models: { pair: { targets: [{ provider: 'mock', model: 'gpt-4o' }] } } })
      expect((await gw.gw.reload('test')).ok).toBe(true)
      text = await scrape()
      for (const g of ['mcp_breaker_state', 'mcp_target_inflight', 'mcp_target_healthy']) {
        expect(text).not.toContain(`${g}{target="mock/gone-model"}`)
        expect(text).toContain(`${g}{target="mock/gpt-4o"}`)
      }
    } finally {
      gw.setConfig({ providers, log: { level: 'warn' } })
      await gw.gw.reload('test')
    }
  })

  it('the admin key guards /metrics, and no secret appears in it', async () => {
    expect((await fetch(`${gw.adminUrl}/metrics`)).status).toBe(401)
    const text = await (await fetch(`${gw.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).text()
    expect(text).not.toContain('sk-metrics-00000001')
    expect(text).not.toContain(ADMIN_KEY)
  })
})
