/**
 * A translated answer (parsed and re-encoded, not passed through) that carries the provider's own key reaches the
 * client redacted, as pass-through answers, streamed translated answers and error bodies do.
 *
 * Regression: a non-streamed translated answer was parsed as the upstream sent it, so an Anthropic-dialect client
 * (`/v1/messages`) of an OpenAI provider whose model repeated the key got the key in the message text; its streamed
 * twin, whose events are redacted before mapping, did not.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { authHeaders, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'

const API_KEY = `sk-proj-${'t'.repeat(48)}`

describe('translated answers never carry the provider key', () => {
  let mock: OpenAIMock
  let gw: TestGateway
  beforeAll(async () => {
    mock = await startOpenAIMock()
    gw = await startGateway({ providers: { oa: { type: 'openai', baseUrl: mock.url, apiKey: API_KEY } } })
  })
  afterAll(async () => { await gw?.close(); await mock?.close() })

  for (const stream of [false, true]) {
    it(`/v1/messages to an OpenAI provider, ${stream ? 'streamed' : 'not streamed'}: the key is redacted, the rest intact`, async () => {
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
