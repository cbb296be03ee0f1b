/**
 * The provider's own id of a request (Anthropic `request-id`, OpenAI and Azure `x-request-id`, Azure API Management
 * `apim-request-id`): read from the answering attempt's response headers (providers/shared/http.ts
 * upstreamRequestIdOf) and written to the access log, so an operator can quote it to the provider's support. Only a
 * plain token is taken: the access log writes it as it is.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { upstreamRequestIdOf } from '../../providers/shared/http.ts'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startScriptedUpstream, type ScriptedUpstream } from '../helpers/scripted-upstream.ts'

describe('upstreamRequestIdOf', () => {
  it('reads Anthropic\'s, OpenAI\'s and Azure\'s headers, in that order', () => {
    expect(upstreamRequestIdOf({ 'request-id': 'req_011CSabc' })).toBe('req_011CSabc')
    expect(upstreamRequestIdOf({ 'x-request-id': 'req_5f1e' })).toBe('req_5f1e')
    expect(upstreamRequestIdOf({ 'apim-request-id': '0f8fad5b-d9cb-469f-a165-70867728950e' })).toBe('0f8fad5b-d9cb-469f-a165-70867728950e')
    expect(upstreamRequestIdOf({ 'x-request-id': 'b', 'request-id': 'a', 'apim-request-id': 'c' })).toBe('a')
    expect(upstreamRequestIdOf({ 'x-request-id': ['first', 'second'] })).toBe('first')
    expect(upstreamRequestIdOf({ 'content-type': 'application/json' })).toBeUndefined()
  })

  it('takes only a plain token (no quotes, backslashes, spaces or control characters; at most 200 characters)', () => {
    for (const bad of ['a"b', 'a\\b', 'a b', 'a\nb', '', 'x'.repeat(201), 'é']) expect(upstreamRequestIdOf({ 'x-request-id': bad }), bad).toBeUndefined()
    expect(upstreamRequestIdOf({ 'x-request-id': 'x'.repeat(200) })).toHaveLength(200)
    expect(upstreamRequestIdOf({ 'x-request-id': 'a.b:c+d/e=f~g@h-i_j' })).toBe('a.b:c+d/e=f~g@h-i_j')
  })
})

describe('the access log records the provider\'s request id', () => {
  let upstream: ScriptedUpstream
  let tg: TestGateway
  const IDS: Record<string, string> = { plain: 'req_abc123', hostile: 'req"},"status":200,"x":"', none: '' }

  beforeAll(async () => {
    upstream = await startScriptedUpstream((model, res) => {
      // The Anthropic provider's calls (translated from the OpenAI client's): Anthropic's shapes and request-id header.
      if (model === 'ant-ok') {
        res.writeHead(200, { 'content-type': 'application/json', 'request-id': 'req_011ant' })
        res.end(JSON.stringify({ id: 'msg_1', type: 'message', role: 'assistant', model, content: [{ type: 'text', text: 'hi' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 1, output_tokens: 1 } }))
        return
      }
      if (model === 'ant-busy') {
        res.writeHead(529, { 'content-type': 'application/json', 'request-id': 'req_011busy' })
        res.end(JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }))
        return
      }
      const body = JSON.stringify({
        id: 'chatcmpl-1', object: 'chat.completion', created: 1, model,
        choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      })
      const id = IDS[model] ?? ''
      res.writeHead(model === 'refused' ? 429 : 200, { 'content-type': 'application/json', ...(id !== '' ? { 'x-request-id': id } : {}), ...(model === 'refused' ? { 'x-request-id': 'req_refused9' } : {}) })
      res.end(model === 'refused' ? JSON.stringify({ error: { message: 'slow down', type: 'rate_limit_error', code: 'rate_limit_exceeded' } }) : body)
    })
    tg = await startGateway({
      providers: {
        up: { type: 'openai', baseUrl: upstream.url, apiKey: 'sk-reqid-test-0123456789', models: [...Object.keys(IDS), 'refused'] },
        ant: { type: 'anthropic', baseUrl: upstream.url.replace(/\/v1$/, ''), apiKey: 'sk-ant-reqid-0123456789', models: ['ant-ok', 'ant-busy'] },
      },
    })
  })
  afterAll(async () => {
    await tg?.close()
    await upstream?.close()
  })

  async function call(model: string, provider = 'up'): Promise<Record<string, unknown> | undefined> {
    const r = await fetch(`${tg.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', 'x-request-id': `rid-${model}` },
      body: JSON.stringify({ model: `${provider}/${model}`, messages: [{ role: 'user', content: 'hi' }] }),
    })
    await r.text()
    // The gateway's own x-request-id stays the gateway's: the provider's id is not passed to OpenAI clients.
    expect(r.headers.get('x-request-id')).toBe(`rid-${model}`)
    for (let i = 0; i < 50; i++) {
      const line = tg.logs.find((l) => l['requestId'] === `rid-${model}` && l['msg'] === 'request')
      if (line) return line
      await new Promise((res) => setTimeout(res, 10))
    }
    return undefined
  }

  it('an answer\'s, and a refusal\'s (what the provider\'s support asks for)', async () => {
    expect(await call('plain')).toMatchObject({ status: 200, upstreamRequestId: 'req_abc123' })
    expect(await call('refused')).toMatchObject({ status: 429, upstreamRequestId: 'req_refused9' })
  })

  it('through a translating adapter too (OpenAI client, Anthropic provider): an answer\'s and a refusal\'s', async () => {
    expect(await call('ant-ok', 'ant')).toMatchObject({ status: 200, provider: 'ant', upstreamRequestId: 'req_011ant' })
    expect(await call('ant-busy', 'ant')).toMatchObject({ status: 529, upstreamRequestId: 'req_011busy' })
  })

  it('none when the upstream sent none, or something that is not a plain token (the line stays one JSON object)', async () => {
    const none = await call('none')
    expect(none).toMatchObject({ status: 200 })
    expect(none).not.toHaveProperty('upstreamRequestId')
    const hostile = await call('hostile')
    expect(hostile).toMatchObject({ status: 200 })
    expect(hostile).not.toHaveProperty('upstreamRequestId')
    expect(tg.logs.some((l) => 'raw' in l)).toBe(false)
  })
})
