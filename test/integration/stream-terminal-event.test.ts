/**
 * A provider's documented terminal event (OpenAI's `data: [DONE]`, Anthropic's `message_stop`, Ollama's `done: true`
 * line) means the answer is complete. An upstream that kept its connection open after it turned a complete stream
 * into an error after the idle timeout: pass-through wrote [DONE] then MCP_ERR_UPSTREAM_TIMEOUT, native Anthropic
 * message_stop then `event: error`, translated streams held the final events back and sent only the error. The
 * client's stream now ends at the terminal event and the upstream connection is let go (discarded, as its body did not
 * end). Gemini has no terminal event: it still waits for EOF. Also: a translated OpenAI stream whose request asked for
 * usage, ending after the finish without the usage chunk or [DONE], is a cut (it looked complete, usage undefined).
 * A scripted upstream speaks each provider's wire format and, for the models named `*-open`, never ends its body.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import type { PluginFactory } from '../../gateway/pipeline/types.ts'

const IDLE_MS = 1500
const oa = (choices: unknown[], usage?: unknown): string =>
  `data: ${JSON.stringify({ id: 'chatcmpl-t', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices, ...(usage ? { usage } : {}) })}\n\n`
const OPENAI_HEAD = oa([{ index: 0, delta: { role: 'assistant', content: 'Hi' }, finish_reason: null }]) + oa([{ index: 0, delta: {}, finish_reason: 'stop' }])
const OPENAI_USAGE = oa([], { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 })
const an = (o: { type: string } & Record<string, unknown>): string => `event: ${o.type}\ndata: ${JSON.stringify(o)}\n\n`
const ANTHROPIC = [
  an({ type: 'message_start', message: { id: 'msg_t', type: 'message', role: 'assistant', content: [], model: 'claude-x', stop_reason: null, stop_sequence: null, usage: { input_tokens: 3, output_tokens: 1 } } }),
  an({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
  an({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hi' } }),
  an({ type: 'content_block_stop', index: 0 }),
  an({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 2 } }),
  an({ type: 'message_stop' }),
].join('')
const OLLAMA = [
  { model: 'l', created_at: '2024-01-01T00:00:00Z', message: { role: 'assistant', content: 'Hi' }, done: false },
  { model: 'l', created_at: '2024-01-01T00:00:00Z', message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop', prompt_eval_count: 3, eval_count: 2 },
].map((l) => `${JSON.stringify(l)}\n`).join('')
const GEMINI = `data: ${JSON.stringify({ candidates: [{ content: { role: 'model', parts: [{ text: 'Hi' }] }, finishReason: 'STOP', index: 0 }], usageMetadata: { promptTokenCount: 3, candidatesTokenCount: 2, totalTokenCount: 5 }, responseId: 'r' })}\n\n`

/** A plugin with a chunk hook: its route's OpenAI streams are translated (canonical chunks), not passed through. */
const chunkReader = { name: 'chunk-reader', sideEffects: 'none', configSchema: { type: 'object' }, create: () => ({ onResponseChunk() {} }) } as unknown as PluginFactory

describe("a stream ends at its provider's terminal event, not at the upstream's EOF", () => {
  let server: http.Server
  let host = ''
  /** When each upstream response (by model) was closed, in ms after its last byte was written. */
  const closedAfter = new Map<string, number>()
  let passThrough: TestGateway
  let translated: TestGateway

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let b = ''
      req.on('data', (d: Buffer) => { b += d.toString('utf8') })
      req.on('end', () => {
        const url = req.url ?? ''
        const model = url.includes(':streamGenerateContent') ? url.split('/models/')[1]!.split(':')[0]! : (JSON.parse(b) as { model: string }).model
        const open = model.endsWith('-open')
        let body: string
        if (url.includes(':streamGenerateContent')) body = GEMINI
        else if (url.endsWith('/messages')) body = ANTHROPIC
        else if (url.endsWith('/api/chat')) body = OLLAMA
        else if (model.startsWith('no-usage')) body = OPENAI_HEAD
        else if (model === 'long') body = oa([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }])
          + Array.from({ length: 200 }, (_, i) => oa([{ index: 0, delta: { content: `t${i} ` }, finish_reason: null }])).join('')
          + OPENAI_HEAD + OPENAI_USAGE + 'data: [DONE]\n\n'
        else body = OPENAI_HEAD + OPENAI_USAGE + 'data: [DONE]\n\n'
        res.writeHead(200, { 'content-type': url.endsWith('/api/chat') ? 'application/x-ndjson' : 'text/event-stream' })
        const at = Date.now()
        res.on('close', () => closedAfter.set(model, Date.now() - at))
        if (open) res.write(body)
        else res.end(body)
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
    host = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const timeouts = { idleMs: IDLE_MS, firstByteMs: 5000 }
    const models = ['done-open', 'no-usage', 'stop-open']
    const providers = {
      oa: { type: 'openai', baseUrl: `${host}/v1`, apiKey: 'sk-terminal-test-0123456789', timeouts, models },
      an: { type: 'anthropic', baseUrl: host, apiKey: 'sk-ant-terminal-test-0123456789', timeouts, models },
      ol: { type: 'ollama', baseUrl: host, timeouts, models },
      gg: { type: 'google', baseUrl: host, apiKey: 'AIzaTerminalTestKey000000000001', timeouts, models },
    }
    passThrough = await startGateway({ providers })
    translated = await startGateway({ providers, chains: { hooked: ['request-id', 'auth', 'access-log', 'chunk-reader'] }, routes: { chat: { chain: 'hooked' }, messages: { chain: 'hooked' } } }, { plugins: [chunkReader] })
  })
  afterAll(async () => {
    await passThrough?.close()
    await translated?.close()
    server.closeAllConnections()
    await new Promise<void>((r) => server.close(() => r()))
  })

  async function post(tg: TestGateway, path: string, model: string, extra: Record<string, unknown> = {}): Promise<{ body: string; ms: number }> {
    const t0 = Date.now()
    const r = await fetch(`${tg.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model, max_tokens: 16, stream: true, messages: [{ role: 'user', content: 'hi' }], ...extra }),
    })
    expect(r.status).toBe(200)
    const body = await r.text()
    return { body, ms: Date.now() - t0 }
  }

  const cases: [string, () => TestGateway, string, string, string][] = [
    ['OpenAI pass-through', () => passThrough, '/v1/chat/completions', 'oa/done-open', 'data: [DONE]\n\n'],
    ['OpenAI translated', () => translated, '/v1/chat/completions', 'oa/done-open', 'data: [DONE]\n\n'],
    ['Anthropic native', () => passThrough, '/v1/messages', 'an/stop-open', 'event: message_stop'],
    ['Anthropic translated', () => translated, '/v1/messages', 'an/stop-open', 'event: message_stop'],
    ['Anthropic to an OpenAI client', () => translated, '/v1/chat/completions', 'an/stop-open', 'data: [DONE]\n\n'],
    ['Ollama', () => translated, '/v1/chat/completions', 'ol/done-open', 'data: [DONE]\n\n'],
  ]
  for (const [name, tg, path, model, end] of cases) {
    it(`${name}: complete at the terminal event though the upstream keeps its body open`, async () => {
      const { body, ms } = await post(tg(), path, model)
      expect(body).toContain('Hi')
      expect(body).toContain(end)
      expect(body).not.toContain('error')
      expect(ms).toBeLessThan(IDLE_MS)
    })
  }

  it('the upstream connection left open after the terminal event is closed, not kept', async () => {
    closedAfter.delete('done-open')
    await post(passThrough, '/v1/chat/completions', 'oa/done-open')
    const t0 = Date.now()
    while (!closedAfter.has('done-open') && Date.now() - t0 < IDLE_MS * 3) await new Promise((r) => setTimeout(r, 50))
    expect(closedAfter.get('done-open')).toBeLessThan(IDLE_MS * 2)
  })

  // A translated stream whose terminal event came in a read that filled the chunk queue (over 64 chunks in one read)
  // left the upstream body paused: the consumer resumes only a stream in progress, so the body's end was never read
  // and the request held its connection until the idle timeout (a gateway's close waited for it).
  it('a long translated stream that ends in one read frees its upstream request at once', async () => {
    const g = await startGateway({ providers: { oa: { type: 'openai', baseUrl: `${host}/v1`, apiKey: 'sk-terminal-test-0123456789', timeouts: { idleMs: 10_000, firstByteMs: 5000 }, models: ['long'] } }, chains: { hooked: ['request-id', 'auth', 'access-log', 'chunk-reader'] }, routes: { chat: { chain: 'hooked' } } }, { plugins: [chunkReader] })
    let closed = false
    try {
      const { body } = await post(g, '/v1/chat/completions', 'oa/long')
      expect(body).toContain('t199 ')
      expect(body.endsWith('data: [DONE]\n\n')).toBe(true)
      const t0 = Date.now()
      await g.close()
      closed = true
      expect(Date.now() - t0).toBeLessThan(3000)
    } finally {
      if (!closed) await g.close()
    }
  })

  it('Gemini, which has no terminal event, still waits for EOF: an upstream that stays open times out', async () => {
    const { body, ms } = await post(translated, '/v1/chat/completions', 'gg/stop-open')
    expect(body).toContain('MCP_ERR_UPSTREAM_TIMEOUT')
    expect(body).not.toContain('[DONE]')
    expect(ms).toBeGreaterThanOrEqual(IDLE_MS - 100)
  })

  it('translated OpenAI, usage asked: finish then EOF without the usage chunk or [DONE] is a cut (it looked complete)', async () => {
    for (const [path, extra, cut] of [
      ['/v1/chat/completions', { stream_options: { include_usage: true } }, 'MCP_ERR_UPSTREAM_STREAM_INTERRUPTED'],
      ['/v1/messages', {}, 'event: error'],
    ] as const) {
      const { body } = await post(translated, path, 'oa/no-usage', extra)
      expect(body).toContain('Hi')
      expect(body).toContain(cut)
      expect(body).not.toContain('data: [DONE]')
      expect(body).not.toContain('message_stop')
    }
    // Without usage asked, the finish ends it cleanly, as before.
    const { body } = await post(translated, '/v1/chat/completions', 'oa/no-usage')
    expect(body.endsWith('data: [DONE]\n\n')).toBe(true)
    expect(body).not.toContain('error')
  })
})
