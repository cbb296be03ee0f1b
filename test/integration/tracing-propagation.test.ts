/**
 * Tracing, every provider path: the upstream sees the traceparent of its own attempt span (and the
 * client's tracestate) on pass-through, translated, streaming and retried calls; a malformed
 * traceparent starts a new trace; the sampling ratio is honoured; no prompt, completion or secret
 * lands in an attribute.
 */
import type http from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { authHeaders, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { startAnthropicMock, type AnthropicMock } from '../helpers/anthropic-mock.ts'
import { attr, startCollector, type OtlpCollector, type OtlpSpan } from '../helpers/otlp-collector.ts'

const PROMPT = 'my-very-private-prompt-text'
let n = 0
function newTrace(): string {
  return (++n).toString(16).padStart(8, '0') + 'aaaabbbbccccddddeeeeffff'
}

describe('trace context on every provider path', () => {
  let spans: OtlpSpan[]
  let collector: OtlpCollector
  let gw: TestGateway
  let openai: OpenAIMock
  let claude: AnthropicMock

  beforeAll(async () => {
    collector = await startCollector()
    spans = collector.spans
    ;[openai, claude] = await Promise.all([startOpenAIMock(), startAnthropicMock()])
    gw = await startGateway({
      telemetry: { tracing: { enabled: true, endpoint: collector.url } },
      providers: {
        oa: { type: 'openai', baseUrl: openai.url, apiKey: 'sk-trace-openai-000001' },
        claude: { type: 'anthropic', baseUrl: claude.url, apiKey: 'sk-ant-trace-0000001' },
      },
      routing: { health: { enabled: false } },
      models: {
        solo: { targets: [{ provider: 'oa', model: 'gpt-4o' }], retry: { backoffBaseMs: 1, backoffMaxMs: 2 } },
        mixed: { targets: [{ provider: 'oa', model: 'gpt-4o' }, { provider: 'claude', model: 'claude-3-5-haiku-20241022', priority: 1 }] },
      },
      log: { level: 'warn' },
    })
  })

  afterAll(async () => {
    await gw?.close()
    await Promise.all([openai?.close(), claude?.close()])
    await collector?.close()
  })

  async function traced(path: string, body: Record<string, unknown>, extra: Record<string, string> = {}): Promise<{ trace: string; status: number; text: string; mine: OtlpSpan[] }> {
    const trace = newTrace()
    const res = await fetch(`${gw.url}${path}`, {
      method: 'POST',
      headers: { ...authHeaders(), traceparent: `00-${trace}-b7ad6b7169203331-01`, tracestate: 'vendor=abc,other=x1', ...extra },
      body: JSON.stringify(body),
    })
    const text = await res.text()
    await new Promise((r) => setTimeout(r, 20))
    await gw.gw.tracing!.flush()
    return { trace, status: res.status, text, mine: spans.filter((s) => s.traceId === trace) }
  }

  function expectLinked(mine: OtlpSpan[], upstream: http.IncomingHttpHeaders[], label: string): void {
    const server = mine.find((s) => s.kind === 2)
    expect(server, label).toBeDefined()
    expect(server!.parentSpanId, label).toBe('b7ad6b7169203331')
    const attempts = mine.filter((s) => s.kind === 3)
    expect(attempts.length, label).toBe(upstream.length)
    for (let i = 0; i < attempts.length; i++) {
      expect(attempts[i]!.parentSpanId, label).toBe(server!.spanId)
      const tp = String(upstream[i]!['traceparent'])
      expect(tp.split('-')[1], label).toBe(server!.traceId)
      expect(tp.split('-')[2], label).toBe(attempts[i]!.spanId)
      expect(upstream[i]!['tracestate'], label).toBe('vendor=abc,other=x1')
    }
  }

  const chatBody = (model: string, stream = false) => ({ model, stream, max_tokens: 20, messages: [{ role: 'user', content: PROMPT }] })

  it('pass-through and translated, JSON and streaming: the upstream sees its attempt span and the tracestate', async () => {
    for (const stream of [false, true]) {
      const before = openai.requests.length
      const r = await traced('/v1/chat/completions', chatBody('oa/gpt-4o', stream))
      expect(r.status).toBe(200)
      expectLinked(r.mine, openai.requests.slice(before).map((q) => q.headers), `openai stream=${stream}`)
      const cb = claude.requests.length
      const c = await traced('/v1/chat/completions', chatBody('claude/claude-3-5-haiku-20241022', stream))
      expect(c.status).toBe(200)
      expectLinked(c.mine, claude.requests.slice(cb).map((q) => q.headers), `anthropic translated stream=${stream}`)
      const mb = claude.requests.length
      const m = await traced('/v1/messages', { model: 'claude/claude-3-5-haiku-20241022', stream, max_tokens: 20, messages: [{ role: 'user', content: PROMPT }] })
      expect(m.status).toBe(200)
      expectLinked(m.mine, claude.requests.slice(mb).map((q) => q.headers), `anthropic messages stream=${stream}`)
    }
  })

  it('a retried attempt and a fallback each send their own span as traceparent', async () => {
    const before = openai.requests.length
    openai.fault = 'status:503,times:1'
    const r = await traced('/v1/chat/completions', chatBody('solo'))
    openai.fault = null
    expect(r.status).toBe(200)
    expectLinked(r.mine, openai.requests.slice(before).map((q) => q.headers), 'retry')
    const attempts = r.mine.filter((s) => s.kind === 3)
    expect(attempts[0]!.status?.code).toBe(2)
    expect(attr(attempts[0]!, 'error.type')).toBeDefined()
    expect(attempts[1]!.status?.code ?? 0).not.toBe(2)

    const ob = openai.requests.length
    const cb = claude.requests.length
    openai.fault = 'status:500,times:1'
    const f = await traced('/v1/chat/completions', chatBody('mixed', true))
    openai.fault = null
    expect(f.status).toBe(200)
    expectLinked(f.mine, [...openai.requests.slice(ob), ...claude.requests.slice(cb)].map((q) => q.headers), 'fallback')
  })

  it('a target whose breaker refuses (nothing sent) gets no attempt span: one CLIENT span per upstream call', async () => {
    const target = gw.gw.targets.find('oa/gpt-4o')!
    target.mode = 'forced-open'
    try {
      const ob = openai.requests.length
      const cb = claude.requests.length
      const r = await traced('/v1/chat/completions', chatBody('mixed'))
      expect(r.status).toBe(200)
      expect(openai.requests.length).toBe(ob)
      expectLinked(r.mine, claude.requests.slice(cb).map((q) => q.headers), 'breaker open, fallback')
    } finally {
      target.mode = 'auto'
    }
  })

  // Regression: usage and finish reasons were set on the SERVER span only; the GenAI conventions put them on the
  // inference (CLIENT) span, where GenAI-aware backends read tokens per model call.
  it('the answering attempt span carries the GenAI usage and finish reasons, JSON and streaming', async () => {
    for (const [model, stream] of [['oa/gpt-4o', false], ['oa/gpt-4o', true], ['claude/claude-3-5-haiku-20241022', false], ['claude/claude-3-5-haiku-20241022', true]] as const) {
      const r = await traced('/v1/chat/completions', chatBody(model, stream))
      expect(r.status).toBe(200)
      const attempt = r.mine.find((s) => s.kind === 3)!
      const label = `${model} stream=${stream}`
      expect(Number(attr(attempt, 'gen_ai.usage.output_tokens')), label).toBe(12)
      expect(Number(attr(attempt, 'gen_ai.usage.input_tokens')), label).toBeGreaterThan(0)
      const server = r.mine.find((s) => s.kind === 2)!
      expect(attr(attempt, 'gen_ai.response.finish_reasons'), label).toEqual(attr(server, 'gen_ai.response.finish_reasons'))
      if (!stream) expect(JSON.stringify(attr(attempt, 'gen_ai.response.finish_reasons')), label).toContain('stop')
    }
  })

  it('an upstream failure marks the attempt and the request span with error.type', async () => {
    openai.fault = 'status:400,times:1'
    const r = await traced('/v1/chat/completions', chatBody('oa/gpt-4o'))
    openai.fault = null
    expect(r.status).toBe(400)
    const server = r.mine.find((s) => s.kind === 2)!
    const attempt = r.mine.find((s) => s.kind === 3)!
    expect(server.status?.code).toBe(2)
    expect(attempt.status?.code).toBe(2)
    expect(attr(server, 'error.type')).toBeTypeOf('string')
    expect(attr(attempt, 'error.type')).toBeTypeOf('string')
  })

  it('a malformed traceparent is ignored: a new trace, the request served', async () => {
    for (const bad of ['garbage', '00-00000000000000000000000000000000-b7ad6b7169203331-01', '00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01', 'ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', `00-${'A'.repeat(32)}-b7ad6b7169203331-01`]) {
      const before = openai.requests.length
      const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { ...authHeaders(), traceparent: bad }, body: JSON.stringify(chatBody('oa/gpt-4o')) })
      expect(res.status, bad).toBe(200)
      await res.text()
      const tp = String(openai.requests[before]!.headers['traceparent'])
      expect(tp, bad).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/)
      expect(tp.split('-')[1], bad).not.toBe('0'.repeat(32))
      expect(tp.split('-')[1], bad).not.toBe('0af7651916cd43dd8448eb211c80319c')
    }
  })

  it('no prompt, completion or secret in any attribute', async () => {
    await traced('/v1/chat/completions', chatBody('oa/gpt-4o'))
    await traced('/v1/chat/completions', chatBody('claude/claude-3-5-haiku-20241022', true))
    const all = JSON.stringify(spans)
    expect(all).not.toContain(PROMPT)
    expect(all).not.toContain('tok0 tok1')
    expect(all).not.toContain('sk-trace-openai-000001')
    expect(all).not.toContain('sk-ant-trace-0000001')
    expect(all).not.toContain(authHeaders()['authorization']!.replace(/^Bearer /, ''))
  })
})

describe('sampling ratio', () => {
  let spans: OtlpSpan[]
  let collector: OtlpCollector
  let gw: TestGateway
  let openai: OpenAIMock

  beforeAll(async () => {
    collector = await startCollector()
    spans = collector.spans
    openai = await startOpenAIMock()
    gw = await startGateway({
      telemetry: { tracing: { enabled: true, endpoint: collector.url, sampleRatio: 0 } },
      providers: { oa: { type: 'openai', baseUrl: openai.url, apiKey: 'sk-trace-openai-000002' } },
      log: { level: 'warn' },
    })
  })

  afterAll(async () => {
    await gw?.close()
    await openai?.close()
    await collector?.close()
  })

  it('ratio 0 exports no new trace, follows a sampled parent, and tells the upstream the sampling decision', async () => {
    const send = (headers: Record<string, string>) => fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { ...authHeaders(), ...headers }, body: JSON.stringify({ model: 'oa/gpt-4o', messages: [{ role: 'user', content: 'hi' }] }) }).then((r) => r.text())
    for (let i = 0; i < 10; i++) await send({})
    const before = openai.requests.length
    await send({ traceparent: '00-5af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' })
    await send({ traceparent: '00-6af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00' })
    await gw.gw.tracing!.flush()
    expect(spans.filter((s) => s.traceId !== '5af7651916cd43dd8448eb211c80319c')).toEqual([])
    expect(spans.filter((s) => s.traceId === '5af7651916cd43dd8448eb211c80319c').map((s) => s.kind).sort()).toEqual([2, 3])
    expect(String(openai.requests[before]!.headers['traceparent'])).toMatch(/^00-5af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/)
    expect(String(openai.requests[before + 1]!.headers['traceparent'])).toMatch(/^00-6af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-00$/)
    expect(String(openai.requests[0]!.headers['traceparent'])).toMatch(/-00$/)
  })
})
