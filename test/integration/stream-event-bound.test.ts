/**
 * An upstream stream event has a length bound (providers/shared/sse.ts, MAX_EVENT_CHARS): one that never ends (an
 * endless line, or data lines without the blank line that ends an event) used to be held by the gateway's parsers,
 * growing its memory for as long as the upstream kept writing. Now, past the bound, the stream ends with the gateway's
 * explicit error event and the upstream is let go, on every path that reads events: OpenAI in to an OpenAI upstream
 * (pass-through, the tap), OpenAI in to Anthropic (translated), Anthropic in to Anthropic (as sent, the tap), and
 * Ollama's NDJSON lines. A scripted upstream writes the endless part in 64 KiB pieces, up to three times the bound.
 */
import type { ServerResponse } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startScriptedUpstream, type ScriptedUpstream } from '../helpers/scripted-upstream.ts'
import { MAX_EVENT_CHARS } from '../../providers/shared/sse.ts'

const PIECE = 64 * 1024
const UPSTREAM_MAX = 3 * MAX_EVENT_CHARS

/** Each dialect's first, well-formed event: the stream has started when the endless part begins. */
const FIRST: Record<string, string> = {
  openai: `data: ${JSON.stringify({ id: 'chatcmpl-b', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { role: 'assistant', content: 'Hi' }, finish_reason: null }] })}\n\n`,
  anthropic: `event: message_start\ndata: ${JSON.stringify({ type: 'message_start', message: { id: 'msg_b', type: 'message', role: 'assistant', content: [], model: 'm', stop_reason: null, stop_sequence: null, usage: { input_tokens: 3, output_tokens: 1 } } })}\n\n` +
    'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n' +
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}\n\n',
  ollama: `${JSON.stringify({ model: 'm', created_at: '2026-01-01T00:00:00Z', message: { role: 'assistant', content: 'Hi' }, done: false })}\n`,
}

/** The endless part: one line that never ends, or (SSE) data lines with no blank line after them. */
const ENDLESS: Record<string, { start: string; piece: string }> = {
  line: { start: 'data: {"x":"', piece: 'a'.repeat(PIECE) },
  lines: { start: '', piece: `data: ${'b'.repeat(1018)}\n`.repeat(PIECE / 1024) },
  ndjson: { start: '{"x":"', piece: 'c'.repeat(PIECE) },
}

interface Seen { written: number; closed: boolean }

describe('an upstream event that never ends', () => {
  let upstream: ScriptedUpstream
  let tg: TestGateway
  const seen = new Map<string, Seen>()

  beforeAll(async () => {
    upstream = await startScriptedUpstream((model, res: ServerResponse) => {
      // model: <dialect>.<endless kind>
      const [dialect, kind] = model.split('.') as [string, string]
      const s: Seen = { written: 0, closed: false }
      seen.set(model, s)
      res.on('close', () => { s.closed = true })
      res.writeHead(200, { 'content-type': dialect === 'ollama' ? 'application/x-ndjson' : 'text/event-stream' })
      res.write(FIRST[dialect]! + ENDLESS[kind]!.start)
      const more = (): void => {
        while (!res.destroyed && s.written < UPSTREAM_MAX) {
          s.written += PIECE
          if (!res.write(ENDLESS[kind]!.piece)) { res.once('drain', more); return }
        }
      }
      more()
    })
    const host = upstream.url.slice(0, -'/v1'.length)
    tg = await startGateway({
      providers: {
        oa: { type: 'openai', baseUrl: upstream.url, apiKey: 'sk-bound-test-0123456789', models: ['openai.line', 'openai.lines'] },
        an: { type: 'anthropic', baseUrl: host, apiKey: 'sk-ant-bound-test-0123456789', models: ['anthropic.line', 'anthropic.lines'] },
        ol: { type: 'ollama', baseUrl: host, models: ['ollama.ndjson'] },
      },
    })
  })
  afterAll(async () => {
    await tg?.close()
    await upstream?.close()
  })

  const send = async (path: string, model: string): Promise<string> => {
    const anthropic = path === '/v1/messages'
    const r = await fetch(`${tg.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', ...(anthropic ? { 'anthropic-version': '2023-06-01' } : {}) },
      body: JSON.stringify({ model, stream: true, max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] }),
    })
    expect(r.status).toBe(200)
    return r.text()
  }

  const cases: [string, string, string][] = [
    ['OpenAI in, OpenAI upstream (pass-through)', '/v1/chat/completions', 'oa/openai'],
    ['OpenAI in, Anthropic upstream (translated)', '/v1/chat/completions', 'an/anthropic'],
    ['Anthropic in, Anthropic upstream (as sent)', '/v1/messages', 'an/anthropic'],
  ]
  for (const [name, path, model] of cases) {
    for (const kind of ['line', 'lines']) {
      it(`${name}, ${kind === 'line' ? 'one endless line' : 'data lines without the blank line'}: the error event, and the upstream let go`, async () => {
        const text = await send(path, `${model}.${kind}`)
        const upstreamModel = `${model.split('/')[1]}.${kind}`
        // The error event in the inbound API's own shape ends the stream; the client never sees a clean end.
        const tail = text.slice(-600)
        expect(tail).toContain(`an event in the stream is longer than ${MAX_EVENT_CHARS} characters`)
        expect(tail).not.toContain('[DONE]')
        expect(tail).not.toContain('message_stop')
        if (path === '/v1/messages') expect(tail).toMatch(/event: error\ndata: \{"type":"error","error":\{"type":"api_error"/)
        else expect(tail).toContain('"code":"MCP_ERR_UPSTREAM_STREAM_INTERRUPTED"')
        // The gateway stopped reading about when the event crossed the bound, not when the upstream gave up.
        const s = seen.get(upstreamModel)!
        await expect.poll(() => s.closed).toBe(true)
        expect(s.written).toBeLessThan(UPSTREAM_MAX)
        const log = tg.logs.findLast((l) => l['details'] === 'upstream.event_too_large')
        expect(log).toBeDefined()
      })
    }
  }

  it('Ollama NDJSON, one endless line: the error event, and the upstream let go', async () => {
    const text = await send('/v1/chat/completions', 'ol/ollama.ndjson')
    expect(text.slice(-600)).toContain(`an event in the stream is longer than ${MAX_EVENT_CHARS} characters`)
    expect(text).toContain('"content":"Hi"')
    const s = seen.get('ollama.ndjson')!
    await expect.poll(() => s.closed).toBe(true)
    expect(s.written).toBeLessThan(UPSTREAM_MAX)
  })
})
