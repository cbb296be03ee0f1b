/**
 * A pass-through stream cut inside an event ends with the gateway's error event as an event of its own, after the last
 * whole event: the half event is never sent. It used to be forwarded as it came, and the error event was written
 * straight after it, so an SSE client read the two as one malformed event: the official SDK threw a JSON parse
 * error and never saw the gateway's error. An event split across reads is held until it ends, and delivered whole.
 * A scripted upstream writes each step's bytes with a pause between steps (so each is its own read), then ends,
 * resets, or stops.
 */
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startScriptedUpstream, type ScriptedUpstream } from '../helpers/scripted-upstream.ts'

const chunk = (delta: Record<string, unknown>, finish: string | null = null): string =>
  `data: ${JSON.stringify({ id: 'chatcmpl-cut', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
const usage = `data: ${JSON.stringify({ id: 'chatcmpl-cut', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices: [], usage: { prompt_tokens: 3, completion_tokens: 3, total_tokens: 6 } })}\n\n`
const HEAD = chunk({ role: 'assistant', content: '' }) + chunk({ content: 'Hello' }) + chunk({ content: ', world' })
const NEXT = chunk({ content: ' and more' })
const FINISH = chunk({}, 'stop')
/** The same events with CRLF line endings (sse-starlette's, so llama-cpp-python's server) or CR alone (the SSE standard allows both). */
const crlf = (s: string): string => s.replaceAll('\n', '\r\n')
const cr = (s: string): string => s.replaceAll('\n', '\r')

interface Script { steps: string[]; end: 'end' | 'reset' }
const SCRIPTS: Record<string, Script> = {
  // Cut (FIN) in the middle of the fourth event's JSON.
  'cut-mid-event': { steps: [HEAD, NEXT.slice(0, 40)], end: 'end' },
  // Cut right after a whole data line, before its blank line: the event never ended.
  'cut-before-blank': { steps: [HEAD, NEXT.slice(0, -1)], end: 'end' },
  // The connection fails in the middle of an event.
  'reset-mid-event': { steps: [HEAD, NEXT.slice(0, 40)], end: 'reset' },
  // Events split across reads at awkward places (inside the JSON, between the two newlines), then complete.
  split: { steps: [HEAD + NEXT.slice(0, 25), NEXT.slice(25, -1), NEXT.slice(-1) + FINISH.slice(0, 10), FINISH.slice(10) + usage + 'data: [DONE]\n\n'], end: 'end' },
  // A complete answer whose last event (the usage chunk asked for, after the finish) has no blank line after it (then
  // the upstream ends): still complete.
  'finish-unterminated': { steps: [HEAD + FINISH, usage.slice(0, -2)], end: 'end' },
  'done-unterminated': { steps: [HEAD + FINISH + usage, 'data: [DONE]'], end: 'end' },
  // The upstream's own error event (OpenAI's shape), last and without its blank line: it reaches the client.
  'error-unterminated': { steps: [HEAD, 'data: {"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}'], end: 'end' },
  // The same with CRLF and CR line endings. Before CR was read, such a read went on whole: the half event was sent.
  // (The half event comes in the same read as whole ones: a read of the half alone, with no CR, was held already.)
  'crlf-cut-mid-event': { steps: [crlf(HEAD) + crlf(NEXT).slice(0, 40)], end: 'end' },
  // The data line ended (CRLF), its blank line never came. (Cut one byte later, '\r\n\r' is a blank line: the event is whole.)
  'crlf-cut-before-blank': { steps: [crlf(HEAD), crlf(NEXT).slice(0, -2)], end: 'end' },
  'cr-cut-before-blank': { steps: [cr(HEAD), cr(NEXT).slice(0, -1)], end: 'reset' },
  // Split inside the JSON and between the CR and the LF of the blank line.
  'crlf-split': { steps: [crlf(HEAD) + crlf(NEXT).slice(0, 25), crlf(NEXT).slice(25, -1), crlf(NEXT).slice(-1) + crlf(FINISH).slice(0, 10), crlf(FINISH).slice(10) + crlf(usage) + 'data: [DONE]\r\n\r\n'], end: 'end' },
  'crlf-finish-unterminated': { steps: [crlf(HEAD) + crlf(FINISH) + crlf(usage).slice(0, -4)], end: 'end' },
  'cr-finish-unterminated': { steps: [cr(HEAD) + cr(FINISH) + cr(usage).slice(0, -2)], end: 'end' },
}

describe('pass-through streams cut inside an event', () => {
  let upstream: ScriptedUpstream
  let tg: TestGateway
  let client: OpenAI

  beforeAll(async () => {
    upstream = await startScriptedUpstream((model, res) => {
      const s = SCRIPTS[model]!
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.flushHeaders()
      let i = 0
      const next = (): void => {
        if (i < s.steps.length) { res.write(s.steps[i++]!); setTimeout(next, 30); return }
        if (s.end === 'reset') res.destroy()
        else res.end()
      }
      next()
    })
    tg = await startGateway({ providers: { up: { type: 'openai', baseUrl: upstream.url, apiKey: 'sk-cut-test-0123456789', models: Object.keys(SCRIPTS) } } })
    client = new OpenAI({ apiKey: ADMIN_KEY, baseURL: `${tg.url}/v1`, maxRetries: 0, timeout: 10_000 })
  })
  afterAll(async () => {
    await tg?.close()
    await upstream?.close()
  })

  const raw = async (model: string, includeUsage: boolean): Promise<string> => {
    const r = await fetch(`${tg.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: `up/${model}`, stream: true, ...(includeUsage ? { stream_options: { include_usage: true } } : {}), messages: [{ role: 'user', content: 'hi' }] }),
    })
    expect(r.status).toBe(200)
    return r.text()
  }

  /** Every event of the stream as its data: each one whole (JSON or [DONE]). */
  const events = (sent: string): string[] => {
    // Line endings as SSE reads them: CRLF, LF and CR alike.
    const text = sent.replace(/\r\n?/g, '\n')
    expect(text.endsWith('\n\n')).toBe(true)
    return text.slice(0, -2).split('\n\n').map((e) => {
      expect(e.startsWith('data: ') && !e.includes('\n')).toBe(true)
      const d = e.slice(6)
      if (d !== '[DONE]') JSON.parse(d)
      return d
    })
  }

  for (const model of ['cut-mid-event', 'cut-before-blank', 'reset-mid-event', 'crlf-cut-mid-event', 'crlf-cut-before-blank', 'cr-cut-before-blank']) {
    // With include_usage the bytes go through as they came; without it (the gateway forces usage for the cost meter)
    // events are re-framed one by one: both paths.
    for (const includeUsage of [true, false]) {
      it(`${model}${includeUsage ? '' : ' (usage forced)'}: the whole events, then the error event on its own`, async () => {
        const ev = events(await raw(model, includeUsage))
        expect(ev).toHaveLength(4)
        expect(ev.slice(0, 3)).toEqual(HEAD.slice(6, -2).split('\n\ndata: '))
        const err = JSON.parse(ev[3]!) as { error: { code: string } }
        expect(err.error.code).toBe('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
      })
    }

    it(`${model}: the official SDK gets the text so far, then throws the gateway's error (it threw a JSON parse error)`, async () => {
      const stream = await client.chat.completions.create({ model: `up/${model}`, stream: true, messages: [{ role: 'user', content: 'hi' }] })
      let text = ''
      const err = await (async () => {
        try { for await (const c of stream) text += c.choices[0]?.delta.content ?? '' } catch (e) { return e }
        return undefined
      })()
      expect(text).toBe('Hello, world')
      expect(err).toBeInstanceOf(OpenAI.APIError)
      expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
    })
  }

  for (const model of ['split', 'crlf-split']) it(`${model}: events split across reads are delivered whole, the answer complete`, async () => {
    const stream = await client.chat.completions.create({ model: `up/${model}`, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] })
    let text = ''
    let finish: string | null = null
    let tokens = 0
    for await (const c of stream) {
      text += c.choices[0]?.delta.content ?? ''
      finish = c.choices[0]?.finish_reason ?? finish
      tokens = c.usage?.total_tokens ?? tokens
    }
    expect([text, finish, tokens]).toEqual(['Hello, world and more', 'stop', 6])
    expect(events(await raw(model, true)).at(-1)).toBe('[DONE]')
  })

  for (const includeUsage of [true, false]) {
    it(`the upstream's own error event, last and unterminated, reaches the client${includeUsage ? '' : ' (usage forced)'}`, async () => {
      const ev = events(await raw('error-unterminated', includeUsage))
      expect(ev).toHaveLength(4)
      expect(JSON.parse(ev[3]!)).toMatchObject({ error: { message: 'The server had an error', type: 'server_error' } })
    })
  }

  for (const model of ['finish-unterminated', 'done-unterminated', 'crlf-finish-unterminated', 'cr-finish-unterminated']) {
    it(`${model}: a last event without its blank line still ends a complete answer`, async () => {
      const ev = events(await raw(model, true))
      expect(ev.at(-1)).toBe('[DONE]')
      expect(ev.some((d) => d.includes('"error"'))).toBe(false)
      expect(ev.some((d) => d.includes('"finish_reason":"stop"'))).toBe(true)
    })
  }
})
