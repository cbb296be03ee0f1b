/**
 * A plugin that rewrites requests (PluginFactory.rewritesRequest: a redaction, a guardrail) must reach what the
 * provider gets on every inbound API. `/v1/messages` requests to an Anthropic provider normally go as the client
 * sent them (gateway/upstream/native-messages.ts), which would bypass the plugin's change: on a route with such a
 * plugin they go from the canonical form instead, and one holding what only Anthropic takes (a server tool) is a 400
 * naming the plugin, with nothing sent upstream. Without the flag, the same route still sends them as written.
 */
import Anthropic from '@anthropic-ai/sdk'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { RequestCtx } from '../../gateway/context.ts'
import type { PluginFactory } from '../../gateway/pipeline/types.ts'
import { startAnthropicMock, type AnthropicMock } from '../helpers/anthropic-mock.ts'
import { ADMIN_KEY, authHeaders } from '../helpers/gateway.ts'
import { startGatewayWithPlugins } from '../helpers/plugin-gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'

const SECRET = '4111-1111-1111-1111'

/** Replaces card numbers in every user message's text with [redacted]; `flag` declares it or not. */
function redactor(name: string, flag: boolean): PluginFactory {
  return {
    name,
    configSchema: { type: 'object', additionalProperties: false },
    sideEffects: 'none',
    ...(flag ? { rewritesRequest: true } : {}),
    create: () => ({
      onRequestBody(ctx: RequestCtx) {
        for (const m of ctx.chat?.messages ?? []) {
          if (m.role === 'user' && typeof m.content === 'string') m.content = m.content.replaceAll(SECRET, '[redacted]')
        }
      },
    }),
  }
}

let mock: AnthropicMock
let g: TestGateway

/** The gateway's config with the Messages route on `chain` (chat stays on the chain without the declaration). */
const config = (chain: string): Record<string, unknown> => ({
  providers: { claude: { type: 'anthropic', baseUrl: mock.url, apiKey: 'sk-ant-rewrite-0000000001' } },
  chains: {
    default: ['request-id', 'auth', 'redact', 'access-log'],
    undeclared: ['request-id', 'auth', 'redact-undeclared', 'access-log'],
  },
  routes: { messages: { chain }, chat: { chain: 'undeclared' } },
})

beforeAll(async () => {
  mock = await startAnthropicMock()
  g = await startGatewayWithPlugins(config('default'), [redactor('redact', true), redactor('redact-undeclared', false)])
})
afterAll(async () => {
  await g?.close()
  await mock?.close()
})
beforeEach(() => mock.reset())

const client = (): Anthropic => new Anthropic({ apiKey: ADMIN_KEY, baseURL: g.url, maxRetries: 0 })
const userText = (): string => JSON.stringify(mock.requests.at(-1)!.body.messages)

async function useChain(chain: string): Promise<void> {
  g.setConfig(config(chain))
  const r = await fetch(`${g.adminUrl}/api/v1/mcp/config/reload`, { method: 'POST', headers: { authorization: authHeaders().authorization! } })
  expect(r.status).toBe(200)
}

describe('a plugin that declares rewritesRequest', () => {
  it('its change reaches Anthropic, not streamed and streamed (the request goes from the canonical form)', async () => {
    await useChain('default')
    const msg = await client().messages.create({ model: 'claude/claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: `card ${SECRET} please` }] })
    expect(msg.type).toBe('message')
    expect(userText()).toContain('[redacted]')
    expect(userText()).not.toContain(SECRET)

    const stream = client().messages.stream({ model: 'claude/claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: `card ${SECRET} again` }] })
    const final = await stream.finalMessage()
    expect(final.stop_reason).toBe('end_turn')
    expect(userText()).not.toContain(SECRET)
  })

  it('a request only Anthropic takes as sent (a server tool) is a 400 naming the plugin; nothing goes upstream', async () => {
    await useChain('default')
    const err = await client().messages.create({
      model: 'claude/claude-sonnet-4-5', max_tokens: 64,
      tools: [{ type: 'web_search_20250305', name: 'web_search', max_uses: 1 }],
      messages: [{ role: 'user', content: `search ${SECRET}` }],
    }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(Anthropic.BadRequestError)
    const e = err as InstanceType<typeof Anthropic.BadRequestError>
    expect(e.message).toContain('tools[0]')
    expect(e.message).toContain('plugin redact')
    expect(mock.requests).toHaveLength(0)
  })

  it('GET /api/v1/mcp/config says which plugin keeps the route translated', async () => {
    await useChain('default')
    const r = await fetch(`${g.adminUrl}/api/v1/mcp/config`, { headers: { authorization: authHeaders().authorization! } })
    const body = await r.json() as { routes: Record<string, { rewritesRequest?: string }> }
    expect(body.routes['messages']!.rewritesRequest).toBe('redact')
    expect(body.routes['chat']!.rewritesRequest).toBeUndefined()
  })
})

describe('the same plugin without the declaration', () => {
  it('Messages requests go as the client wrote them (the documented bypass the flag exists for)', async () => {
    await useChain('undeclared')
    await client().messages.create({ model: 'claude/claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: `card ${SECRET} please` }] })
    expect(userText()).toContain(SECRET)
  })
})
