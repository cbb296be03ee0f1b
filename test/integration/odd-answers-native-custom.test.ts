/**
 * Answers the gateway could not deliver as they came, from two paths an audit found open:
 * - a custom adapter (providers/custom): execute() resolving with no choices (or choices that are not objects, content
 *   that is a number) went to an OpenAI client as it was and to an Anthropic client as the raw object or as an empty
 *   message that looked complete: now a 502 MCP_ERR_UPSTREAM_BAD_RESPONSE. Its stream stalling or never ending held the
 *   client's stream open past server.requestDeadlineMs: now it ends there with the error event.
 * - the native Anthropic path: an upstream answering JSON to a streamed request reached the client as a body neither
 *   JSON nor SSE; SSE to a non-streamed one went on unmetered: both a 502 in Anthropic's shape now.
 */
import http from 'node:http'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { authHeaders, startGateway, type TestGateway } from '../helpers/gateway.ts'

const DEADLINE_MS = 2000
const ADAPTER = `
const chunk = (delta, finish = null) => ({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta, finish_reason: finish }] })
const answers = {
  'no-choices': { id: 'x', object: 'chat.completion', created: 1, model: 'm' },
  'choices-string': { id: 'x', object: 'chat.completion', created: 1, model: 'm', choices: 'nope' },
  'message-null': { id: 'x', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: null, finish_reason: 'stop' }] },
  'content-number': { id: 'x', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 42 }, finish_reason: 'stop' }] },
  'usage-string': { id: 'x', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }], usage: { prompt_tokens: 'a', completion_tokens: 1, total_tokens: 1 } },
  'good': { id: 'x', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } },
}
export default () => ({
  async execute(req) { return answers[req.model] },
  async stream(req) {
    return (async function* () {
      yield chunk({ role: 'assistant', content: '' })
      yield chunk({ content: 'a' })
      if (req.model === 'hang') await new Promise(() => {})
      for (;;) { await new Promise((r) => setTimeout(r, 50)); yield chunk({ content: '.' }) }
    })()
  },
  validateConfig: () => true,
  getMetrics: () => ({ requests: 0, inflight: 0, errors: 0, errorsByCode: {}, latencyMs: { p50: 0, p99: 0 } }),
  async healthCheck() { return { ok: true, checkedAt: Date.now() } },
})
`

describe('answers the gateway cannot deliver as they came: custom adapters and the native Anthropic path', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-odd-answers-'))
  let server: http.Server
  let tg: TestGateway
  /** What the scripted Anthropic upstream answers: JSON or SSE, whatever was asked. */
  let form: 'json' | 'sse' = 'json'

  beforeAll(async () => {
    writeFileSync(join(dir, 'odd.mjs'), ADAPTER)
    server = http.createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        const message = { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'hi' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 3, output_tokens: 1 } }
        if (form === 'json') {
          const t = JSON.stringify(message)
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(t) })
          res.end(t)
        } else {
          const ev = (o: { type: string } & Record<string, unknown>): string => `event: ${o.type}\ndata: ${JSON.stringify(o)}\n\n`
          res.writeHead(200, { 'content-type': 'text/event-stream' })
          res.end(ev({ type: 'message_start', message: { ...message, content: [], stop_reason: null } }) + ev({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 1 } }) + ev({ type: 'message_stop' }))
        }
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
    const host = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    tg = await startGateway({
      server: { requestDeadlineMs: DEADLINE_MS },
      providers: {
        odd: { type: 'custom', module: join(dir, 'odd.mjs') },
        an: { type: 'anthropic', baseUrl: host, apiKey: 'sk-ant-odd-answers-000001' },
      },
    })
  }, 30_000)
  afterAll(async () => {
    await tg?.close()
    server?.closeAllConnections()
    server?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const post = async (path: string, body: Record<string, unknown>): Promise<{ status: number; text: string; ms: number }> => {
    const t0 = Date.now()
    const r = await fetch(`${tg.url}${path}`, { method: 'POST', headers: { ...authHeaders(), 'anthropic-version': '2023-06-01' }, body: JSON.stringify(body) })
    const text = await r.text()
    return { status: r.status, text, ms: Date.now() - t0 }
  }

  it("a custom execute() answer that is not a chat.completion is the provider's bad response, in both APIs", async () => {
    for (const model of ['no-choices', 'choices-string', 'message-null', 'content-number', 'usage-string']) {
      const chat = await post('/v1/chat/completions', { model: `odd/${model}`, messages: [{ role: 'user', content: 'hi' }] })
      expect(chat.status, model).toBe(502)
      expect(JSON.parse(chat.text).error.code, model).toBe('MCP_ERR_UPSTREAM_BAD_RESPONSE')
      const messages = await post('/v1/messages', { model: `odd/${model}`, max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] })
      expect(messages.status, model).toBe(502)
      expect(JSON.parse(messages.text).type, model).toBe('error')
    }
    const good = await post('/v1/chat/completions', { model: 'odd/good', messages: [{ role: 'user', content: 'hi' }] })
    expect(good.status).toBe(200)
    expect(JSON.parse(good.text).choices[0].message.content).toBe('hi')
  })

  it('a custom stream that stalls, or never ends, ends at the request deadline with the error event', async () => {
    for (const model of ['hang', 'forever']) {
      const r = await post('/v1/chat/completions', { model: `odd/${model}`, stream: true, messages: [{ role: 'user', content: 'hi' }] })
      expect(r.status, model).toBe(200)
      expect(r.text, model).toContain('MCP_ERR_UPSTREAM_TIMEOUT')
      expect(r.text, model).not.toContain('[DONE]')
      expect(r.ms, model).toBeLessThan(DEADLINE_MS + 3000)
    }
    const m = await post('/v1/messages', { model: 'odd/hang', stream: true, max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] })
    expect(m.text).toContain('event: error')
    expect(m.ms).toBeLessThan(DEADLINE_MS + 3000)
  }, 20_000)

  it('the native Anthropic path: an answer in the other form than asked is a 502 in Anthropic\'s shape', async () => {
    form = 'json'
    const streamed = await post('/v1/messages', { model: 'an/claude-x', stream: true, max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] })
    expect(streamed.status).toBe(502)
    expect(JSON.parse(streamed.text)).toMatchObject({ type: 'error', error: { type: 'api_error' } })
    form = 'sse'
    const plain = await post('/v1/messages', { model: 'an/claude-x', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] })
    expect(plain.status).toBe(502)
    expect(JSON.parse(plain.text).type).toBe('error')
    // Each in the form asked: as before.
    expect((await post('/v1/messages', { model: 'an/claude-x', stream: true, max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] })).text).toContain('event: message_stop')
    form = 'json'
    expect(JSON.parse((await post('/v1/messages', { model: 'an/claude-x', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] })).text).content[0].text).toBe('hi')
  })
})
