/**
 * A pass-through answer (bytes forwarded as the upstream sent them) that carries the provider's own key is redacted
 * before the client sees it, as translated answers (parsed and re-encoded) and error bodies are: streamed and not,
 * whatever the upstream's reason for echoing it (an error event, a misbehaving server, a model repeating its prompt).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { authHeaders, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { startScriptedUpstream, type ScriptedUpstream } from '../helpers/scripted-upstream.ts'

const API_KEY = `sk-proj-${'p'.repeat(48)}`

describe('pass-through and translated answers never carry the provider key', () => {
  let mock: OpenAIMock
  let gw: TestGateway
  beforeAll(async () => {
    mock = await startOpenAIMock()
    gw = await startGateway({ providers: { oa: { type: 'openai', baseUrl: mock.url, apiKey: API_KEY } } })
  })
  afterAll(async () => { await gw?.close(); await mock?.close() })

  for (const stream of [false, true]) {
    it(`${stream ? 'streamed' : 'JSON'}: the key is redacted, the rest of the answer intact`, async () => {
      const r = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: authHeaders(),
        body: JSON.stringify({ model: 'oa/gpt-4o', stream, messages: [{ role: 'user', content: `echo my key is ${API_KEY} ok` }] }),
      })
      expect(r.status).toBe(200)
      const text = await r.text()
      expect(text).not.toContain(API_KEY)
      let content = ''
      if (stream) {
        expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true)
        for (const ev of text.split('\n\n')) {
          const d = ev.replace(/^data: /, '').trim()
          if (d === '' || d === '[DONE]') continue
          content += (JSON.parse(d) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? ''
        }
      } else {
        content = (JSON.parse(text) as { choices: { message: { content: string } }[] }).choices[0]!.message.content
      }
      // Masked in place, as long as the key: Content-Length and the SSE framing stay right.
      expect(content).toBe(`echo: my key is [redacted]${'*'.repeat(API_KEY.length - 10)} ok`)
    })

    // Regression: a non-streamed translated answer was parsed as the upstream sent it, so an Anthropic-dialect client
    // (`/v1/messages`) of an OpenAI provider whose model repeated the key got the key in the message text; its streamed
    // twin, whose events are redacted before mapping, did not.
    it(`translated (/v1/messages to an OpenAI provider), ${stream ? 'streamed' : 'not streamed'}: the key is redacted, the rest intact`, async () => {
      const r = await fetch(`${gw.url}/v1/messages`, {
        method: 'POST',
        headers: { ...authHeaders(), 'anthropic-version': '2023-06-01' },
        body: JSON.stringify({ model: 'oa/gpt-4o', max_tokens: 50, stream, messages: [{ role: 'user', content: `echo my key is ${API_KEY} ok` }] }),
      })
      expect(r.status).toBe(200)
      const text = await r.text()
      expect(text).not.toContain(API_KEY)
      expect(text).toContain('[redacted]')
      if (!stream) {
        const body = JSON.parse(text) as { content: { type: string; text: string }[] }
        expect(body.content[0]!.text).toBe('echo: my key is [redacted] ok')
      }
    })
  }
})

/**
 * Regression: the key split across two upstream reads reached the client whole. Redaction searched each read on its
 * own, so `...my key is sk-pr` then `oj-ppp... ok` matched in neither. An upstream that answers in two writes with a
 * pause between them (two reads here) is each split's scripted answer, streamed and not; the client must get the
 * same bytes as the upstream sent, with the key masked in place.
 */
describe('pass-through answers never carry the provider key, even split across two reads', () => {
  const MASK = `[redacted]${'*'.repeat(API_KEY.length - 10)}`
  const jsonBody = (content: string): string =>
    JSON.stringify({ id: 'chatcmpl-split', object: 'chat.completion', created: 1, model: 'gpt-4o', choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } })
  const event = (content: string): string =>
    `data: ${JSON.stringify({ id: 'chatcmpl-split', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`
  const sseBody = (content: string): string =>
    event('before ') + event(content) +
    `data: ${JSON.stringify({ id: 'chatcmpl-split', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n` +
    'data: [DONE]\n\n'
  /** Where the upstream's first write ends: after the key's first byte, in its middle, one byte before its end. */
  const SPLITS = [1, 20, API_KEY.length - 1]
  /** Each model name is one answer and the offset, from the key's start, its first write ends at. */
  const scripts = new Map<string, { body: string; cut: number; sse: boolean; reset?: boolean }>()
  for (const at of SPLITS) {
    const text = `my key is ${API_KEY} ok`
    scripts.set(`json-${at}`, { body: jsonBody(text), cut: jsonBody(text).indexOf(API_KEY) + at, sse: false })
    scripts.set(`sse-${at}`, { body: sseBody(text), cut: sseBody(text).indexOf(API_KEY) + at, sse: true })
  }
  // Looks like the key's start at the end of the first read, and is not the key: forwarded as it came.
  const lookalike = `my key is ${API_KEY.slice(0, 20)}x and not the key`
  scripts.set('json-lookalike', { body: jsonBody(lookalike), cut: jsonBody(lookalike).indexOf('x and not'), sse: false })
  scripts.set('sse-lookalike', { body: sseBody(lookalike), cut: sseBody(lookalike).indexOf('x and not'), sse: true })
  // The stream is cut inside the key (no blank line after it).
  const cutBody = event('before ') + `data: {"choices":[{"index":0,"delta":{"content":"my key is ${API_KEY.slice(0, 30)}`
  scripts.set('sse-cut', { body: cutBody, cut: cutBody.length - 10, sse: true })
  // The connection fails inside the key: the same, through the upstream's failure.
  scripts.set('sse-reset', { body: cutBody, cut: cutBody.length, sse: true, reset: true })

  let upstream: ScriptedUpstream
  let gw: TestGateway
  beforeAll(async () => {
    upstream = await startScriptedUpstream((model, res) => {
      const s = scripts.get(model)!
      const bytes = Buffer.from(s.body)
      res.writeHead(200, s.sse ? { 'content-type': 'text/event-stream' } : { 'content-type': 'application/json', 'content-length': bytes.length })
      res.flushHeaders()
      res.write(bytes.subarray(0, s.cut))
      // A pause long enough for the first write to be read on its own.
      setTimeout(() => { if (s.reset) res.destroy(); else res.end(bytes.subarray(s.cut)) }, 40)
    })
    gw = await startGateway({ providers: { oa: { type: 'openai', baseUrl: upstream.url, apiKey: API_KEY, models: [...scripts.keys()] } } })
  })
  afterAll(async () => {
    await gw?.close()
    await upstream?.close()
  })

  const ask = (model: string, stream: boolean, includeUsage = false): Promise<Response> =>
    fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: authHeaders(),
      body: JSON.stringify({ model: `oa/${model}`, stream, ...(includeUsage ? { stream_options: { include_usage: true } } : {}), messages: [{ role: 'user', content: 'hi' }] }),
    })

  for (const at of SPLITS) {
    it(`JSON, split ${at} byte(s) into the key: masked in place, Content-Length right`, async () => {
      const s = scripts.get(`json-${at}`)!
      const r = await ask(`json-${at}`, false)
      expect(r.status).toBe(200)
      const text = await r.text()
      expect(text).not.toContain(API_KEY)
      expect(r.headers.get('content-length')).toBe(String(Buffer.byteLength(s.body)))
      expect(text).toBe(s.body.replace(API_KEY, MASK))
    })
    // With include_usage the bytes go through as they came; without it (the default chain's cost-meter asks upstream
    // for usage) events are re-framed one by one: both paths.
    for (const includeUsage of [true, false]) {
      it(`streamed${includeUsage ? '' : ' (usage forced, re-framed)'}, split ${at} byte(s) into the key: masked in place, nothing lost`, async () => {
        const s = scripts.get(`sse-${at}`)!
        const r = await ask(`sse-${at}`, true, includeUsage)
        expect(r.status).toBe(200)
        const text = await r.text()
        expect(text).not.toContain(API_KEY)
        expect(text).toBe(s.body.replace(API_KEY, MASK))
      })
    }
  }

  it('JSON: a read that ends like the key but is not it is forwarded as it came', async () => {
    const r = await ask('json-lookalike', false)
    expect(await r.text()).toBe(scripts.get('json-lookalike')!.body)
  })

  it('streamed: a read that ends like the key but is not it is forwarded as it came', async () => {
    const r = await ask('sse-lookalike', true, true)
    expect(await r.text()).toBe(scripts.get('sse-lookalike')!.body)
  })

  // The half event is held back until it ends (gateway/deliver.ts partialEventLength); cut, it is never sent, so no part
  // of the key is either, and the error event follows the last whole event.
  it('streamed: an upstream cut inside the key: none of it is sent, the stream ends with an error event after the last whole event', async () => {
    const r = await ask('sse-cut', true, true)
    const text = await r.text()
    expect(text).not.toContain(API_KEY.slice(0, 10))
    expect(text.startsWith(event('before ') + 'data: {"error":')).toBe(true)
    expect(text).toContain('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
  })

  it('streamed: an upstream that fails inside the key: none of it is sent, then the error event', async () => {
    const r = await ask('sse-reset', true, true)
    const text = await r.text()
    expect(text).not.toContain(API_KEY.slice(0, 10))
    expect(text.startsWith(event('before ') + 'data: {"error":')).toBe(true)
  })
})
