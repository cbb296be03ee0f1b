/**
 * A pass-through answer (bytes forwarded as the upstream sent them) that carries the provider's own key is redacted
 * before the client sees it, as translated answers and error bodies are: streamed and not, whatever the upstream's
 * reason for echoing it (an error event, a misbehaving server, a model repeating its prompt).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { authHeaders, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'

const API_KEY = `sk-proj-${'p'.repeat(48)}`

describe('pass-through answers never carry the provider key', () => {
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
  }
})
