/**
 * Keys a client or an upstream chooses that name members of Object.prototype (`__proto__`, `constructor`,
 * `valueOf`, ...). The translations look request fields, tool_choice types, audio formats and finish reasons up in
 * tables; on plain objects those lookups found the prototype's members. A chat request with a top-level
 * `"__proto__": {}` to an Anthropic provider threw inside the gateway's own translation ("rule is not a function"),
 * which was read as the provider's bad answer (a 502): retried three times, and through an alias one such request
 * took the target out of service, so the next client's valid request got a 503. Now: a 400 naming the field, nothing
 * sent upstream, the target untouched; and a throw in a translation is the gateway's own 500, never the provider's.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startAnthropicMock, type AnthropicMock } from '../helpers/anthropic-mock.ts'
import { authHeaders, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startGeminiMock, type GeminiMock } from '../helpers/gemini-mock.ts'
import { startOllamaMock, type OllamaMock } from '../helpers/ollama-mock.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'

const KEYS = ['__proto__', 'constructor', 'valueOf', 'hasOwnProperty', 'toString', 'isPrototypeOf']

describe('prototype member names as keys and values', () => {
  let gw: TestGateway
  let an: AnthropicMock
  let gm: GeminiMock
  let ol: OllamaMock
  let oa: OpenAIMock

  beforeAll(async () => {
    [an, gm, ol, oa] = await Promise.all([startAnthropicMock(), startGeminiMock(), startOllamaMock(), startOpenAIMock()])
    gw = await startGateway({
      providers: {
        an: { type: 'anthropic', baseUrl: an.url, apiKey: 'sk-ant-proto-000000001', nativeMessages: false },
        gm: { type: 'google', baseUrl: gm.url, apiKey: 'AIzaProtoKey000000000000001' },
        ol: { type: 'ollama', baseUrl: ol.url },
        oa: { type: 'openai', baseUrl: `${oa.url}/v1`, apiKey: 'sk-proto-000000000001' },
      },
      routing: { outlier: { consecutiveFailures: 3, baseEjectionMs: 60_000, maxEjectionMs: 60_000 }, health: { enabled: false } },
      models: { smart: { targets: [{ provider: 'an', model: 'claude-sonnet-4-5' }] } },
    })
  }, 30_000)
  afterAll(async () => {
    await gw?.close()
    await Promise.all([an?.close(), gm?.close(), ol?.close(), oa?.close()])
  })

  const post = async (path: string, raw: string): Promise<{ status: number; json: any; headers: Headers }> => {
    const r = await fetch(`${gw.url}${path}`, { method: 'POST', headers: { ...authHeaders(), 'anthropic-version': '2023-06-01' }, body: raw })
    return { status: r.status, json: await r.json(), headers: r.headers }
  }
  const upstreamCalls = (): number => an.requests.length + gm.requests.length + ol.requests.length + oa.requests.length
  const reset = (): void => { an.reset(); gm.reset(); ol.reset(); oa.reset() }

  it('a top-level request field named after a prototype member: a 400 naming it, for every translated provider, nothing sent', async () => {
    const wrong: string[] = []
    reset()
    for (const model of ['an/claude-sonnet-4-5', 'gm/gemini-2.5-flash', 'ol/llama3.2']) {
      for (const key of KEYS) {
        // Written as text: an object literal's `__proto__` would set the prototype, not a key.
        const raw = `{"model":"${model}","messages":[{"role":"user","content":"hi"}],"${key}":{"x":1}}`
        const r = await post('/v1/chat/completions', raw)
        if (r.status !== 400 || !String(r.json?.error?.message).includes(key)) wrong.push(`${model} ${key} → ${r.status} ${JSON.stringify(r.json).slice(0, 160)}`)
      }
    }
    expect(wrong).toEqual([])
    expect(upstreamCalls()).toBe(0)
  })

  it('one such request through an alias is not retried and does not take the target out of service', async () => {
    const bad = await post('/v1/chat/completions', '{"model":"smart","messages":[{"role":"user","content":"hi"}],"__proto__":{"x":1}}')
    expect(bad.status).toBe(400)
    for (let i = 0; i < 3; i++) expect((await post('/v1/chat/completions', '{"model":"smart","messages":[{"role":"user","content":"hi"}],"valueOf":1}')).status).toBe(400)
    const ok = await post('/v1/chat/completions', '{"model":"smart","messages":[{"role":"user","content":"hi"}]}')
    expect(ok.status).toBe(200)
    expect(ok.headers.get('x-mcp-attempts')).toBe('1')
  })

  it('values named after prototype members: tool_choice types, audio formats, are refused by name', async () => {
    reset()
    for (const type of KEYS) {
      const r = await post('/v1/messages', JSON.stringify({ model: 'oa/gpt-4o', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }], tool_choice: { type } }))
      expect(r.status, type).toBe(400)
      expect(r.json.type).toBe('error')
      expect(r.json.error.message).toContain('tool_choice.type')
    }
    for (const choice of KEYS) {
      const r = await post('/v1/chat/completions', JSON.stringify({
        model: 'gm/gemini-2.5-flash', messages: [{ role: 'user', content: 'hi' }], tool_choice: choice,
        tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }],
      }))
      expect(r.status, choice).toBe(400)
    }
    for (const format of KEYS) {
      const r = await post('/v1/chat/completions', JSON.stringify({
        model: 'gm/gemini-2.5-flash', messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'AAAA', format } }] }],
      }))
      expect(r.status, format).toBe(400)
      expect(r.json.error.message).toContain('input_audio')
    }
    expect(upstreamCalls()).toBe(0)
  })

  it('an upstream finish reason or error type named after a prototype member maps like any unknown one', async () => {
    // One server plays the three providers, answering with the value under test where each puts its finish reason.
    let value = ''
    let errorStatus = 0
    const server = http.createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        const url = req.url ?? ''
        const body = errorStatus !== 0
          ? { type: 'error', error: { type: value, message: 'scripted' } }
          : url.includes('/api/chat') ? { model: 'm', message: { role: 'assistant', content: 'x' }, done: true, done_reason: value, prompt_eval_count: 1, eval_count: 1 }
            : url.includes(':generateContent') ? { candidates: [{ content: { role: 'model', parts: [{ text: 'x' }] }, finishReason: value }], usageMetadata: { promptTokenCount: 1, candidatesTokenCount: 1 } }
              : { id: 'msg_1', type: 'message', role: 'assistant', model: 'm', content: [{ type: 'text', text: 'x' }], stop_reason: value, stop_sequence: null, usage: { input_tokens: 1, output_tokens: 1 } }
        const text = JSON.stringify(body)
        res.writeHead(errorStatus || 200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
        res.end(text)
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
    const host = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const g = await startGateway({
      providers: {
        san: { type: 'anthropic', baseUrl: host, apiKey: 'sk-ant-proto-000000002', nativeMessages: false, models: ['m'] },
        sgm: { type: 'google', baseUrl: host, apiKey: 'AIzaProtoKey000000000000002', models: ['m'] },
        sol: { type: 'ollama', baseUrl: host, models: ['m'] },
      },
    })
    try {
      const wrong: string[] = []
      const chat = async (p: string): Promise<{ status: number; json: any }> => {
        const r = await fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model: `${p}/m`, messages: [{ role: 'user', content: 'hi' }] }) })
        return { status: r.status, json: await r.json() }
      }
      for (const v of KEYS) {
        value = v
        errorStatus = 0
        for (const p of ['san', 'sgm', 'sol']) {
          const r = await chat(p)
          const finish = r.json?.choices?.[0]?.finish_reason
          if (r.status !== 200 || typeof finish !== 'string' || finish === v) wrong.push(`${p} finish ${v} → ${r.status} ${JSON.stringify(r.json).slice(0, 160)}`)
        }
        // An Anthropic error of that type: the status stays the upstream's 400 (the type's status was looked up: a function).
        errorStatus = 400
        const r = await chat('san')
        if (r.status !== 400 || r.json?.error?.message !== 'scripted') wrong.push(`san error ${v} → ${r.status} ${JSON.stringify(r.json).slice(0, 160)}`)
      }
      expect(wrong).toEqual([])
    } finally {
      await g.close()
      server.closeAllConnections()
      server.close()
    }
  })
})
