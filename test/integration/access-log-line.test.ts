/**
 * The access log's line is JSON built by hand (plugins/access-log): every value in it must be written as JSON. The
 * token counts were interpolated as they came: an embeddings answer (no completion count) wrote
 * `"completionTokens":undefined`, a line no log processor reads, on every embeddings request; and a pass-through
 * answer's usage is the upstream's own JSON, so a string there went into the line as it was (a field of the upstream's
 * choosing in the gateway's log).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startScriptedUpstream, type ScriptedUpstream } from '../helpers/scripted-upstream.ts'

const ANSWERS: Record<string, unknown> = {
  'embed-usage': { object: 'list', data: [{ object: 'embedding', index: 0, embedding: [0.1, 0.2] }], model: 'embed-usage', usage: { prompt_tokens: 5, total_tokens: 5 } },
  'odd-usage': {
    id: 'chatcmpl-odd', object: 'chat.completion', created: 1, model: 'odd-usage',
    choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: '1,"injected":true', completion_tokens: { x: 1 }, total_tokens: 3 },
  },
}

describe('the access log line', () => {
  let upstream: ScriptedUpstream
  let tg: TestGateway

  beforeAll(async () => {
    upstream = await startScriptedUpstream((model, res) => {
      const body = JSON.stringify(ANSWERS[model])
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    })
    tg = await startGateway({ providers: { up: { type: 'openai', baseUrl: upstream.url, apiKey: 'sk-log-line-0123456789', models: Object.keys(ANSWERS) } } })
  })
  afterAll(async () => {
    await tg?.close()
    await upstream?.close()
  })

  const lineOf = (model: string): Record<string, unknown> => {
    const raw = tg.logText().split('\n').filter((l) => l.includes('"plugin":"access-log"') && l.includes(`"model":"${model}"`)).at(-1)
    expect(raw).toBeDefined()
    return JSON.parse(raw!) as Record<string, unknown> // throws on a line that is not JSON
  }

  it('an embeddings answer (no completion count): valid JSON, the prompt count only', async () => {
    const r = await fetch(`${tg.url}/v1/embeddings`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'up/embed-usage', input: 'hello' }) })
    expect(r.status).toBe(200)
    await r.arrayBuffer()
    await expect.poll(() => tg.logText().includes('"model":"embed-usage"')).toBe(true)
    const line = lineOf('embed-usage')
    expect(line['promptTokens']).toBe(5)
    expect('completionTokens' in line).toBe(false)
  })

  it("an upstream's usage with a string and an object for its counts: left out, nothing of them in the line", async () => {
    const r = await fetch(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'up/odd-usage', messages: [{ role: 'user', content: 'hi' }] }) })
    expect(r.status).toBe(200)
    await r.arrayBuffer()
    await expect.poll(() => tg.logText().includes('"model":"odd-usage"')).toBe(true)
    const line = lineOf('odd-usage')
    expect('injected' in line).toBe(false)
    expect('promptTokens' in line).toBe(false)
    expect('completionTokens' in line).toBe(false)
    expect(line['status']).toBe(200)
  })
})
