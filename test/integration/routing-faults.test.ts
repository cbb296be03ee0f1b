/**
 * Issue 4's fault list, end to end through the running gateway, streaming and not: every case ends
 * in the complete answer or a bounded, clean error — never a hang, never a truncated answer
 * presented as success — and the provider is never hammered.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startAnthropicMock } from '../helpers/anthropic-mock.ts'
import { authHeaders, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'

let gw: TestGateway
let primary: OpenAIMock
let secondary: OpenAIMock
let big: OpenAIMock
let claude: Awaited<ReturnType<typeof startAnthropicMock>>
let claude2: Awaited<ReturnType<typeof startAnthropicMock>>
let claude3: Awaited<ReturnType<typeof startAnthropicMock>>

const fastTimeouts = { firstByteMs: 1000, idleMs: 800 }
/** Time scale of the outage test (1 = the real 60 s outage; CI runs it 8× faster). */
const OUTAGE_SCALE = Number(process.env['MCP_OUTAGE_SCALE'] ?? 8)

beforeAll(async () => {
  ;[primary, secondary, big, claude, claude2, claude3] = await Promise.all([startOpenAIMock(), startOpenAIMock(), startOpenAIMock(), startAnthropicMock(), startAnthropicMock(), startAnthropicMock()])
  gw = await startGateway({
    providers: {
      primary: { type: 'openai', baseUrl: primary.url, apiKey: 'sk-primary-000000001', headers: { 'x-mock-tokens': '60' } },
      secondary: { type: 'openai', baseUrl: secondary.url, apiKey: 'sk-secondary-0000001' },
      big: { type: 'openai', baseUrl: big.url, apiKey: 'sk-big-000000000001' },
      claude: { type: 'anthropic', baseUrl: claude.url, apiKey: 'sk-ant-claude-00001' },
      claude2: { type: 'anthropic', baseUrl: claude2.url, apiKey: 'sk-ant-claude-00002' },
      claude3: { type: 'anthropic', baseUrl: claude3.url, apiKey: 'sk-ant-claude-00003' },
    },
    routing: { outlier: { consecutiveFailures: 3, baseEjectionMs: Math.round(4000 / OUTAGE_SCALE), maxEjectionMs: Math.round(16_000 / OUTAGE_SCALE) }, health: { enabled: false } },
    models: {
      solo: { targets: [{ provider: 'primary', model: 'gpt-4o', timeouts: fastTimeouts }] },
      solo5: { retry: { maxAttempts: 5, backoffBaseMs: 20, backoffMaxMs: 40 }, targets: [{ provider: 'primary', model: 'gpt-4o', timeouts: fastTimeouts }] },
      capped: { retry: { maxAttempts: 3, retryAfterCapMs: 500 }, targets: [{ provider: 'primary', model: 'gpt-4o', timeouts: fastTimeouts }] },
      smart: {
        strategy: 'priority',
        targets: [
          { provider: 'primary', model: 'gpt-4o', priority: 0, timeouts: fastTimeouts },
          { provider: 'secondary', model: 'gpt-4o-mini', priority: 1, timeouts: fastTimeouts },
        ],
      },
      long: {
        targets: [
          { provider: 'primary', model: 'gpt-4o-small', contextWindow: 8000, timeouts: fastTimeouts },
          { provider: 'big', model: 'gpt-4.1', contextWindow: 1_000_000, priority: 1, timeouts: fastTimeouts },
        ],
      },
      filtered: {
        fallbackOn: { contentFilter: true },
        targets: [
          { provider: 'primary', model: 'gpt-4o', timeouts: fastTimeouts },
          { provider: 'secondary', model: 'gpt-4o-mini', priority: 1, timeouts: fastTimeouts },
        ],
      },
      resilient: {
        streamRecovery: 'resume',
        targets: [
          { provider: 'primary', model: 'gpt-4o', timeouts: fastTimeouts },
          { provider: 'claude', model: 'claude-sonnet-4-5', priority: 1, timeouts: fastTimeouts },
        ],
      },
      relay: {
        streamRecovery: 'resume',
        targets: [
          { provider: 'primary', model: 'gpt-4o', timeouts: fastTimeouts },
          { provider: 'claude', model: 'claude-sonnet-4-5', priority: 1, timeouts: fastTimeouts },
          { provider: 'claude2', model: 'claude-sonnet-4-5', priority: 2, timeouts: fastTimeouts },
        ],
      },
      // Every target takes a prefill: a resume may choose any of them.
      relayAll: {
        streamRecovery: 'resume',
        targets: [
          { provider: 'claude', model: 'claude-sonnet-4-5', priority: 0, timeouts: fastTimeouts },
          { provider: 'claude2', model: 'claude-sonnet-4-5', priority: 1, timeouts: fastTimeouts },
          { provider: 'claude3', model: 'claude-sonnet-4-5', priority: 2, timeouts: fastTimeouts },
        ],
      },
    },
  })
})

afterAll(async () => {
  await gw?.close()
  await Promise.all([primary, secondary, big, claude, claude2, claude3].map((m) => m?.close()))
})

afterEach(() => {
  for (const m of [primary, secondary, big]) { m.fault = null; m.reset() }
  claude.fault = null
  claude2.fault = null
  claude3.fault = null
  // Forget ejections and cool-downs between cases.
  for (const s of gw.gw.targets.all()) s.reset()
})

interface Result { status: number; headers: Headers; text: string; json: any; ms: number; events: string[] }

async function call(model: string, stream: boolean, extra: Record<string, unknown> = {}, timeoutMs = 15_000): Promise<Result> {
  const t0 = performance.now()
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: authHeaders(),
    body: JSON.stringify({ model, stream, stream_options: stream ? { include_usage: true } : undefined, messages: [{ role: 'user', content: 'tell me something' }], ...extra }),
    signal: AbortSignal.timeout(timeoutMs),
  })
  const text = await res.text()
  const ms = performance.now() - t0
  const events = stream ? text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6)) : []
  let json: any
  if (!stream) { try { json = JSON.parse(text) } catch { json = undefined } }
  return { status: res.status, headers: res.headers, text, json, ms, events }
}

/** Content of a streamed answer, and whether it ended with [DONE] or with an error event. */
function streamed(r: Result): { content: string; done: boolean; error: any; usage: any; model: string | undefined } {
  let content = ''
  let error: any
  let usage: any
  let model: string | undefined
  for (const e of r.events) {
    if (e === '[DONE]') continue
    const j = JSON.parse(e)
    if (j.error) { error = j.error; continue }
    model ??= j.model
    for (const c of j.choices ?? []) content += c.delta?.content ?? ''
    if (j.usage) usage = j.usage
  }
  return { content, done: r.events.at(-1) === '[DONE]', error, usage, model }
}

function chatRequests(m: OpenAIMock): number[] {
  return m.requests.filter((r) => r.path.includes('/chat/completions')).map((r) => r.receivedAt)
}

const TOKENS_60 = Array.from({ length: 60 }, (_, i) => `tok${i}`).join(' ')

describe.each([false, true])('faults (stream=%s)', (stream) => {
  it('429 with Retry-After: 2 once: waits it out, then succeeds; at most 2 attempts in the 1.5 s after the 429', async () => {
    primary.fault = 'status:429,retryAfter:2,times:1'
    const r = await call('solo', stream)
    expect(r.status).toBe(200)
    const at = chatRequests(primary)
    expect(at.length).toBe(2)
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(1900)
    expect(r.headers.get('x-mcp-attempts')).toBe('2')
  })

  it('429 with a Retry-After longer than retryAfterCapMs: the target is not asked again; the 429 goes back with it', async () => {
    primary.fault = 'status:429,retryAfter:30'
    const r = await call('capped', stream)
    expect(r.status).toBe(429)
    expect(r.headers.get('retry-after')).toBe('30')
    expect(r.headers.get('x-mcp-attempts')).toBe('1')
    expect(chatRequests(primary).length).toBe(1)
    expect(r.ms).toBeLessThan(400)
  })

  it('429 persistent without Retry-After: bounded backoff, then the 429 goes back', async () => {
    primary.fault = 'status:429'
    const r = await call('solo', stream)
    expect(r.status).toBe(429)
    const at = chatRequests(primary)
    expect(at.length).toBe(3)
    expect(at.filter((t) => t > at[0]! && t - at[0]! <= 1500).length).toBeLessThanOrEqual(2)
    expect(r.ms).toBeLessThan(5000)
  })

  it('500 once, then healthy: retried and answered', async () => {
    primary.fault = 'status:500,times:1'
    const r = await call('solo', stream)
    expect(r.status).toBe(200)
    if (stream) expect(streamed(r).content).toBe(TOKENS_60)
    else expect(r.json.choices[0].message.content).toBe(TOKENS_60)
    expect(chatRequests(primary).length).toBe(2)
  })

  it('503 persistent: served by the fallback, which the response names', async () => {
    primary.fault = 'status:503'
    const r = await call('smart', stream)
    expect(r.status).toBe(200)
    expect(r.headers.get('x-mcp-provider')).toBe('secondary')
    expect(r.headers.get('x-mcp-model')).toBe('gpt-4o-mini')
    expect(r.headers.get('x-mcp-fallback-reason')).toMatch(/http_503|upstream/)
    // Fallback accounting: the answer's model and usage are the fallback's.
    if (stream) {
      const s = streamed(r)
      expect(s.model).toBe('gpt-4o-mini')
      expect(s.usage.completion_tokens).toBe(12)
    } else {
      expect(r.json.model).toBe('gpt-4o-mini')
      expect(r.json.usage.completion_tokens).toBe(12)
    }
  })

  it('TCP reset before headers once: retried', async () => {
    primary.fault = 'reset,times:1'
    const r = await call('solo', stream)
    expect(r.status).toBe(200)
    expect(chatRequests(primary).length).toBe(2)
  })

  it('no response at all: first-byte timeout, then the fallback, within bounds', async () => {
    primary.fault = 'hang'
    const r = await call('smart', stream)
    expect(r.status).toBe(200)
    expect(r.headers.get('x-mcp-provider')).toBe('secondary')
    expect(r.ms).toBeLessThan(3000)
  })

  it('first token after 20 s: fails over instead of waiting', async () => {
    primary.fault = 'delayMs:20000'
    const r = await call('smart', stream)
    expect(r.status).toBe(200)
    expect(r.headers.get('x-mcp-provider')).toBe('secondary')
    expect(r.ms).toBeLessThan(3000)
  })

  it('503 then a non-retryable 400 from the fallback: the error still says what was tried', async () => {
    primary.fault = 'status:503'
    secondary.fault = 'status:400'
    const r = await call('smart', stream)
    expect(r.status).toBe(400)
    expect(r.headers.get('x-mcp-attempts')).toBe('2')
    expect(r.headers.get('x-mcp-fallback-reason')).toMatch(/http_503|upstream/)
  })

  it('503 then context_length_exceeded with no larger target: the error still says what was tried', async () => {
    primary.fault = 'status:503'
    secondary.fault = 'code:context_length_exceeded'
    const r = await call('smart', stream)
    expect(r.status).toBe(400)
    expect(r.headers.get('x-mcp-attempts')).toBe('2')
    expect(r.headers.get('x-mcp-fallback-reason')).toBe('context_length_exceeded')
  })

  it('context_length_exceeded: goes to the larger-context target without retrying the same model', async () => {
    primary.fault = 'code:context_length_exceeded'
    const r = await call('long', stream)
    expect(r.status).toBe(200)
    expect(r.headers.get('x-mcp-provider')).toBe('big')
    expect(r.headers.get('x-mcp-fallback-reason')).toBe('context_length_exceeded')
    expect(chatRequests(primary).length).toBe(1)
  })

  it('content-filter rejection: the provider reason goes back unchanged unless configured', async () => {
    primary.fault = 'code:content_filter'
    const r = await call('smart', stream)
    expect(r.status).toBe(400)
    const body = JSON.parse(r.text)
    expect(body.error.code).toBe('content_filter')
    expect(chatRequests(primary).length).toBe(1)
    expect(chatRequests(secondary).length).toBe(0)
    const f = await call('filtered', stream)
    expect(f.status).toBe(200)
    expect(f.headers.get('x-mcp-fallback-reason')).toBe('content_filter')
  })
})

describe('mid-stream faults', () => {
  it('stream cut after 40 of 60 tokens: an explicit error event, never [DONE]', async () => {
    primary.fault = 'cutAfter:40'
    const r = await call('smart', true)
    const s = streamed(r)
    expect(r.status).toBe(200)
    expect(s.done).toBe(false)
    expect(s.error).toBeDefined()
    expect(s.content.split(' ').length).toBe(40)
  })

  it('stream cut after 40 of 60 tokens with streamRecovery: resume: one complete answer, no repeated text', async () => {
    primary.fault = 'cutAfter:40'
    const r = await call('resilient', true)
    const s = streamed(r)
    expect(s.error).toBeUndefined()
    expect(s.done).toBe(true)
    const first40 = Array.from({ length: 40 }, (_, i) => `tok${i}`).join(' ')
    expect(s.content.startsWith(first40)).toBe(true)
    expect(s.content.length).toBeGreaterThan(first40.length)
    // The fallback was asked to continue from what the client already has (assistant prefill).
    const req = claude.requests.at(-1) as { body: { messages: { role: string; content: unknown }[] } }
    const lastMsg = req.body.messages.at(-1)!
    expect(lastMsg.role).toBe('assistant')
    expect(JSON.stringify(lastMsg.content)).toContain('tok39')
    // The continuation does not start over: the first 40 tokens appear once.
    const rest = s.content.slice(first40.length)
    expect(rest).not.toContain('tok39')
    expect(s.content.split('tok20 ').length).toBe(2)
  })

  it('a resumed stream that fails again continues from everything delivered, once (no repeated prefill)', async () => {
    primary.fault = 'cutAfter:5'
    claude.fault = 'cutAfter:3'
    const r = await call('relay', true)
    const s = streamed(r)
    expect(s.error).toBeUndefined()
    expect(s.done).toBe(true)
    const first = 'tok0 tok1 tok2 tok3 tok4'
    const second = 'tok0 tok1 tok2'
    expect(s.content.startsWith(first + second)).toBe(true)
    // The second continuation is asked to go on from exactly what the client has: both earlier parts, each once.
    const prefill = (m: { body: { messages: { role: string; content: unknown }[] } }): string => {
      const last = m.body.messages.at(-1)!
      expect(last.role).toBe('assistant')
      return typeof last.content === 'string' ? last.content : (last.content as { text: string }[]).map((b) => b.text).join('')
    }
    expect(prefill(claude.requests.at(-1) as never)).toBe(first)
    expect(prefill(claude2.requests.at(-1) as never)).toBe(first + second)
  })

  it('a resumed stream never goes back to a target whose stream already broke in this request', async () => {
    claude.fault = 'cutAfter:3'
    claude2.fault = 'cutAfter:3'
    const before = [claude, claude2, claude3].map((m) => m.requests.length)
    const r = await call('relayAll', true)
    const s = streamed(r)
    expect(s.error).toBeUndefined()
    expect(s.done).toBe(true)
    // One stream each: claude cut, claude2 cut, claude3 finishes (not claude again after claude2).
    expect([claude, claude2, claude3].map((m, i) => m.requests.length - before[i]!)).toEqual([1, 1, 1])
  })

  it('a resume whose first target fails goes on to the next healthy one', async () => {
    primary.fault = 'cutAfter:5'
    claude.fault = 'status:503'
    const before = [claude, claude2].map((m) => m.requests.length)
    const r = await call('relay', true)
    const s = streamed(r)
    expect(s.error).toBeUndefined()
    expect(s.done).toBe(true)
    expect(s.content.startsWith('tok0 tok1 tok2 tok3 tok4')).toBe(true)
    // claude refused once, claude2 continued from the delivered text (each asked once).
    expect([claude, claude2].map((m, i) => m.requests.length - before[i]!)).toEqual([1, 1])
    const last = (claude2.requests.at(-1) as { body: { messages: { role: string }[] } }).body.messages.at(-1)!
    expect(last.role).toBe('assistant')
  })

  const weatherTool = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }]

  /** The tool calls a streamed answer delivered: ids, names and joined arguments per index. */
  function toolCalls(r: Result): Record<number, { ids: string[]; names: string[]; args: string }> {
    const out: Record<number, { ids: string[]; names: string[]; args: string }> = {}
    for (const e of r.events) {
      if (e === '[DONE]') continue
      const j = JSON.parse(e)
      for (const c of j.choices ?? []) {
        for (const t of c.delta?.tool_calls ?? []) {
          const x = (out[t.index] ??= { ids: [], names: [], args: '' })
          if (t.id) x.ids.push(t.id)
          if (t.function?.name) x.names.push(t.function.name)
          x.args += t.function?.arguments ?? ''
        }
      }
    }
    return out
  }

  it('a stream cut during a tool call is not resumed (a resume continues text only): an error event, one tool call', async () => {
    primary.fault = 'cutAfter:3'
    const before = [claude, claude2].map((m) => m.requests.length)
    const r = await call('relay', true, { tools: weatherTool, messages: [{ role: 'user', content: 'please call tool' }] })
    const s = streamed(r)
    expect(r.status).toBe(200)
    expect(s.done).toBe(false)
    expect(s.error?.code).toBe('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
    const calls = toolCalls(r)
    expect(calls[0]?.ids.length).toBe(1)
    expect(calls[0]?.names).toEqual(['get_weather'])
    expect([claude, claude2].map((m, i) => m.requests.length - before[i]!)).toEqual([0, 0])
  })

  it('503 persistent on a solo target: not retried once ejected (consecutiveFailures 3 of maxAttempts 5)', async () => {
    primary.fault = 'status:503'
    const r = await call('solo5', false)
    expect(r.status).toBe(503)
    // Ejected at the third failure: the fourth and fifth attempts are not sent.
    expect(chatRequests(primary).length).toBe(3)
    expect(r.headers.get('x-mcp-attempts')).toBe('3')
  })

  it('a stream cut after only its role chunk restarts cleanly on another target (no prefill)', async () => {
    primary.fault = 'cutAfter:0'
    const r = await call('relay', true)
    const s = streamed(r)
    expect(s.error).toBeUndefined()
    expect(s.done).toBe(true)
    expect(s.content.startsWith('tok0 tok1')).toBe(true)
    // Nothing was delivered: the restart carries no prefill.
    const last = (claude.requests.at(-1) as { body: { messages: { role: string }[] } }).body.messages.at(-1)!
    expect(last.role).toBe('user')
  })

  it('stream stalled with the socket open: an error event after the idle timeout', async () => {
    primary.fault = 'stallAfter:5'
    const r = await call('smart', true)
    const s = streamed(r)
    expect(s.done).toBe(false)
    expect(s.error?.message).toMatch(/in time|idle/)
    expect(r.ms).toBeLessThan(4000)
  })

  it('a malformed SSE event mid-stream: an error event', async () => {
    primary.fault = 'malformedAfter:5'
    const r = await call('smart', true)
    const s = streamed(r)
    expect(s.done).toBe(false)
    expect(s.error).toBeDefined()
  })

  it('a stream that ends without [DONE] is finalised promptly, with usage', async () => {
    primary.fault = 'noDone'
    const r = await call('smart', true)
    const s = streamed(r)
    expect(s.done).toBe(true)
    expect(s.error).toBeUndefined()
    expect(s.content).toBe(TOKENS_60)
    expect(s.usage.completion_tokens).toBe(60)
    expect(r.ms).toBeLessThan(2000)
  })
})

describe('outage and recovery', () => {
  it('a primary down (503) for a while is skipped, probed boundedly, and used again soon after it recovers', async () => {
    // Time-scaled version of "503 for 60 s, 20 requests 4 s apart, back within 30 s": 1/8 scale by default.
    const scale = OUTAGE_SCALE
    const outageMs = 60_000 / scale
    const gapMs = 4000 / scale
    primary.fault = 'status:503'
    const t0 = Date.now()
    const served: { at: number; provider: string | null; status: number }[] = []
    let recoveredAt = 0
    for (let i = 0; i < 20; i++) {
      if (recoveredAt === 0 && Date.now() - t0 >= outageMs) { primary.fault = null; recoveredAt = Date.now() }
      const r = await call('smart', i % 2 === 1)
      served.push({ at: Date.now(), provider: r.headers.get('x-mcp-provider'), status: r.status })
      await new Promise((res) => setTimeout(res, gapMs))
    }
    if (recoveredAt === 0) { primary.fault = null; recoveredAt = Date.now() }
    expect(served.every((s) => s.status === 200)).toBe(true)
    const during = served.filter((s) => s.at < recoveredAt)
    expect(during.every((s) => s.provider === 'secondary')).toBe(true)
    const backOnPrimary = served.find((s) => s.at > recoveredAt && s.provider === 'primary')
    expect(backOnPrimary).toBeDefined()
    expect(backOnPrimary!.at - recoveredAt).toBeLessThanOrEqual(30_000 / scale + gapMs)
    // Probing is bounded: the primary saw far fewer attempts than there were requests during the outage.
    const primaryDuring = primary.requests.filter((r) => r.receivedAt < recoveredAt).length
    expect(primaryDuring).toBeLessThanOrEqual(Math.ceil(during.length / 2) + 3)
    console.log(`outage (scale 1/${scale}): ${during.length} requests during the outage, all from the fallback; primary attempts during it ${primaryDuring}; back on the primary ${backOnPrimary!.at - recoveredAt} ms after recovery`)
  }, 20_000 + 120_000 / OUTAGE_SCALE)

  it('every target down: a fast 503 with Retry-After', async () => {
    for (const s of gw.gw.targets.all()) if (s.id.startsWith('primary/') || s.id.startsWith('secondary/')) s.mode = 'forced-open'
    const r = await call('smart', false)
    expect(r.status).toBe(503)
    expect(r.headers.get('retry-after')).toMatch(/^\d+$/)
    expect(r.ms).toBeLessThan(200)
    expect(JSON.parse(r.text).error.code).toBe('MCP_ERR_UPSTREAM_UNAVAILABLE')
  })
})
