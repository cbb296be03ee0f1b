/**
 * Client disconnects: the upstream call is cancelled (the mock sees the abort) and the in-flight
 * gauge on the admin port returns to 0.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'

describe('client aborts', () => {
  let mock: OpenAIMock
  let tg: TestGateway

  beforeAll(async () => {
    mock = await startOpenAIMock()
    tg = await startGateway({ providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-upstream-abort-test' } } })
  })
  afterAll(async () => {
    await tg?.close()
    await mock?.close()
  })
  afterEach(() => mock.reset())

  async function scrape(): Promise<string> {
    const r = await fetch(`${tg.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
    expect(r.status).toBe(200)
    return r.text()
  }

  function metric(text: string, series: string): number | undefined {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `))
    return line === undefined ? undefined : Number(line.slice(series.length + 1))
  }

  async function inflight(): Promise<number | undefined> {
    return metric(await scrape(), 'mcp_requests_in_flight')
  }

  function chat(stream: boolean, signal: AbortSignal): Promise<Response> {
    return fetch(`${tg.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream }),
      signal,
    })
  }

  it('a client that disconnects mid-stream cancels the upstream stream', async () => {
    mock.fault = 'chunkDelayMs:100' // 12 tokens: ~1.4 s of stream
    const ac = new AbortController()
    const res = await chat(true, ac.signal)
    expect(res.status).toBe(200)
    const reader = res.body!.getReader()
    const first = await reader.read()
    expect(new TextDecoder().decode(first.value)).toContain('data: ')
    expect(await inflight()).toBe(1)

    ac.abort()
    const rec = await mock.waitForAbort(3000)
    expect(rec.path).toBe('/v1/chat/completions')
    expect(rec.body).toMatchObject({ stream: true })
    expect(rec.closedAt! - rec.receivedAt).toBeLessThan(1200) // cancelled, not served to the end

    await vi.waitFor(async () => expect(await inflight()).toBe(0), { timeout: 3000, interval: 25 })
    expect(tg.gw.holder.current.inflight).toBe(0)
    const text = await scrape()
    expect(metric(text, 'mcp_request_errors_total{route="chat",code="MCP_ERR_REQ_ABORTED"}')).toBeGreaterThanOrEqual(1)
  })

  it('a client that disconnects while waiting for a slow non-streaming answer cancels the upstream call', async () => {
    mock.fault = 'delayMs:3000'
    const ac = new AbortController()
    const pending = chat(false, ac.signal).catch((e: unknown) => e)
    await vi.waitFor(() => expect(mock.requests).toHaveLength(1), { timeout: 2000, interval: 10 })
    expect(await inflight()).toBe(1)

    const t0 = Date.now()
    ac.abort()
    expect(await pending).toBeInstanceOf(Error)
    const rec = await mock.waitForAbort(2000)
    expect(rec.status).toBeUndefined() // the mock never got to answer
    expect(Date.now() - t0).toBeLessThan(2000)

    await vi.waitFor(async () => expect(await inflight()).toBe(0), { timeout: 3000, interval: 25 })
    expect(tg.gw.holder.current.inflight).toBe(0)
    expect(metric(await scrape(), 'mcp_requests_total{route="chat",status="499"}')).toBeGreaterThanOrEqual(1)
  })
})
