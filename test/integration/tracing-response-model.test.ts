/**
 * gen_ai.response.model is the model the provider's answer names (OpenTelemetry GenAI conventions), e.g.
 * `gpt-4o-2024-08-06` when `gpt-4o` was asked for: on JSON answers, translated streams, pass-through bodies and
 * pass-through streams (their last event). It was the requested model, so a trace never showed which snapshot answered.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { authHeaders, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { attr, startCollector, type OtlpCollector } from '../helpers/otlp-collector.ts'

let collector: OtlpCollector
let gw: TestGateway
let mock: OpenAIMock
const DATED = 'gpt-4o-2024-08-06'

beforeAll(async () => {
  collector = await startCollector()
  mock = await startOpenAIMock()
  gw = await startGateway({
    telemetry: { tracing: { enabled: true, endpoint: collector.url } },
    providers: { dated: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-dated-000000001', headers: { 'x-mock-response-model': DATED } } },
  })
})

afterAll(async () => {
  await gw?.close()
  await mock?.close()
  await collector?.close()
})

let n = 0
/** The SERVER and CLIENT spans of one request. */
async function spansOf(path: string, body: Record<string, unknown>): Promise<{ server: Parameters<typeof attr>[0]; client: Parameters<typeof attr>[0]; text: string }> {
  const trace = (++n).toString(16).padStart(32, 'a')
  const res = await fetch(`${gw.url}${path}`, {
    method: 'POST',
    headers: { ...authHeaders(), traceparent: `00-${trace}-b7ad6b7169203331-01`, 'anthropic-version': '2023-06-01' },
    body: JSON.stringify(body),
  })
  expect(res.status).toBe(200)
  const text = await res.text()
  await new Promise((r) => setTimeout(r, 20))
  await gw.gw.tracing!.flush()
  const mine = collector.spans.filter((s) => s.traceId === trace)
  return { server: mine.find((s) => s.kind === 2)!, client: mine.find((s) => s.kind === 3)!, text }
}

describe('gen_ai.response.model', () => {
  const chat = { model: 'dated/gpt-4o', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] }

  it.each([
    ['a pass-through JSON answer', '/v1/chat/completions', chat],
    ['a translated JSON answer (Anthropic inbound)', '/v1/messages', chat],
    ['a translated stream (Anthropic inbound)', '/v1/messages', { ...chat, stream: true }],
  ])('%s: the model the answer names, on the request and the attempt spans', async (_name, path, body) => {
    const { server, client } = await spansOf(path, body)
    expect(attr(server, 'gen_ai.response.model')).toBe(DATED)
    expect(attr(client, 'gen_ai.response.model')).toBe(DATED)
    expect(attr(server, 'gen_ai.request.model')).toBe('gpt-4o')
    expect(attr(client, 'gen_ai.request.model')).toBe('gpt-4o')
  })

  it('a pass-through stream: the model its last event names', async () => {
    const { server, client, text } = await spansOf('/v1/chat/completions', { ...chat, stream: true })
    expect(text).toContain(DATED)
    expect(attr(server, 'gen_ai.response.model')).toBe(DATED)
    expect(attr(client, 'gen_ai.response.model')).toBe(DATED)
  })
})
