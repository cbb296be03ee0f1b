/**
 * Load shedding: the state machine with injected samples, then the real gateway with its event loop
 * held busy (in this process): new requests get a JSON 503 with Retry-After, a stream admitted before
 * keeps flowing, the admin listener keeps answering, and the gateway recovers on its own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { SheddingSettings } from '../../gateway/hardening/config.ts'
import { LoadShedder, type LoadSample } from '../../gateway/hardening/shed.ts'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'

const SETTINGS: SheddingSettings = { enabled: true, eventLoopDelayMs: 200, eventLoopWindows: 2, heapUsedRatio: 0.9, rssBytes: 1000, sampleIntervalMs: 500, retryAfterSeconds: 10 }

function scripted(samples: Partial<LoadSample>[]): { shedder: LoadShedder; changes: [boolean, string][] } {
  let i = 0
  const changes: [boolean, string][] = []
  const shedder = new LoadShedder(SETTINGS, {
    sample: () => ({ eventLoopDelayMs: 0, heapUsedRatio: 0.1, rssBytes: 0, ...samples[i++] }),
    onChange: (over, reason) => changes.push([over, reason]),
  })
  return { shedder, changes }
}

describe('LoadShedder', () => {
  it('one slow window is a spike, not overload; two in a row shed; the first good window recovers', () => {
    const { shedder, changes } = scripted([{ eventLoopDelayMs: 900 }, {}, { eventLoopDelayMs: 250 }, { eventLoopDelayMs: 300 }, { eventLoopDelayMs: 400 }, {}])
    const states: boolean[] = []
    for (let i = 0; i < 6; i++) { shedder.tick(); states.push(shedder.overloaded) }
    expect(states).toEqual([false, false, false, true, true, false])
    expect(changes).toEqual([[true, 'event_loop_delay'], [false, '']])
  })

  it('heap and RSS shed at once, while they stay over', () => {
    const { shedder } = scripted([{ heapUsedRatio: 0.95 }, { heapUsedRatio: 0.5 }, { rssBytes: 5000 }])
    shedder.tick()
    expect([shedder.overloaded, shedder.reason]).toEqual([true, 'heap'])
    shedder.tick()
    expect(shedder.overloaded).toBe(false)
    shedder.tick()
    expect([shedder.overloaded, shedder.reason]).toEqual([true, 'rss'])
  })

  it('disabled: never starts a timer, never sheds', () => {
    const s = new LoadShedder({ ...SETTINGS, enabled: false })
    s.start()
    expect(s.overloaded).toBe(false)
    s.stop()
  })
})

/** Keeps the event loop busy: `busyMs` of CPU, a 5 ms gap for timers and I/O, until `untilMs`. */
function holdLoop(busyMs: number, untilMs: number): Promise<void> {
  return new Promise((resolve) => {
    const end = Date.now() + untilMs
    const step = (): void => {
      const t = Date.now() + busyMs
      while (Date.now() < t) { /* CPU-bound work */ }
      if (Date.now() >= end) { resolve(); return }
      setTimeout(step, 5)
    }
    step()
  })
}

describe('shedding on the data plane', () => {
  let mock: OpenAIMock
  let tg: TestGateway

  beforeAll(async () => {
    mock = await startOpenAIMock({ record: false })
    tg = await startGateway({
      server: { shedding: { enabled: true, eventLoopDelayMs: 150, eventLoopWindows: 2, sampleIntervalMs: 200, retryAfterSeconds: 3 } },
      providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-shed', models: ['gpt-4o'] } },
    })
  })
  afterAll(async () => {
    await tg?.close()
    await mock?.close()
  })

  const chat = (stream: boolean, headers: Record<string, string> = {}): Promise<Response> => fetch(`${tg.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream }),
  })

  it('sustained event-loop delay: new requests get 503 + Retry-After in JSON; an admitted stream finishes; admin stays up; recovery is automatic', async () => {
    expect((await chat(false)).status).toBe(200)
    // A stream admitted before the overload: 12 chunks, 150 ms apart.
    const streaming = await chat(true, { 'x-mock-chunk-delay-ms': '150' })
    expect(streaming.status).toBe(200)
    const streamText = streaming.text()

    const hold = holdLoop(250, 2500)
    // Fired while the loop is held; answered in its gaps, once two slow windows have passed.
    const shed: Promise<Response>[] = []
    const health: Promise<Response>[] = []
    await new Promise((r) => setTimeout(r, 900))
    for (let i = 0; i < 3; i++) {
      shed.push(chat(false))
      health.push(fetch(`${tg.adminUrl}/healthz`))
      await new Promise((r) => setTimeout(r, 200))
    }
    await hold
    const answers = await Promise.all(shed)
    const statuses = answers.map((r) => r.status)
    expect(statuses).toContain(503)
    const refused = answers.find((r) => r.status === 503)!
    expect(refused.headers.get('retry-after')).toBe('3')
    expect(refused.headers.get('x-mcp-error-code')).toBe('MCP_ERR_SERVER_OVERLOADED')
    expect(await refused.json()).toMatchObject({ error: { code: 'MCP_ERR_SERVER_OVERLOADED', type: 'api_error' } })
    // The admin listener never sheds.
    for (const h of await Promise.all(health)) expect(h.status).toBe(200)
    // The admitted stream was not cut.
    expect((await streamText).trimEnd().endsWith('data: [DONE]')).toBe(true)

    // Recovery: the first calm window ends shedding.
    await new Promise((r) => setTimeout(r, 600))
    expect((await chat(false)).status).toBe(200)
    const metrics = await (await fetch(`${tg.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).text()
    expect(metrics).toMatch(/mcp_listener_refused_total\{listener="data",reason="overloaded"\} [1-9]/)
    expect(tg.logs.some((l) => l['msg'] === 'overloaded: shedding new requests with 503')).toBe(true)
    expect(tg.logs.some((l) => String(l['msg']).startsWith('load back under the thresholds'))).toBe(true)
  }, 20_000)

  it('a single long block (one slow window) does not shed', async () => {
    await new Promise((r) => setTimeout(r, 600))
    const t = Date.now() + 400
    while (Date.now() < t) { /* one spike */ }
    const r = await chat(false)
    expect(r.status).toBe(200)
    await new Promise((res) => setTimeout(res, 250))
    expect((await chat(false)).status).toBe(200)
  })
})
