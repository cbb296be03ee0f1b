/**
 * A request shaped as Claude Code sends it (structured system blocks with cache_control, tools with cache_control,
 * metadata.user_id, thinking, context_management, several betas, a streamed answer, then count_tokens for the next turn)
 * goes through the gateway to Anthropic whole, with the official SDK as the client. Each of these used to fail on its own:
 * context_management was a 400, the betas were dropped, count_tokens was a 404.
 */
import Anthropic from '@anthropic-ai/sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startAnthropicMock, type AnthropicMock } from '../helpers/anthropic-mock.ts'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'

const BETAS = 'claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27'
let mock: AnthropicMock
let gw: TestGateway

beforeAll(async () => {
  mock = await startAnthropicMock()
  gw = await startGateway({ providers: { anthropic: { type: 'anthropic', baseUrl: mock.url, apiKey: 'sk-ant-claude-code-0001' } } })
})
afterAll(async () => {
  await gw?.close()
  await mock?.close()
})

describe('a Claude Code request', () => {
  it('streams through whole, and its next turn\'s count_tokens is answered', async () => {
    const client = new Anthropic({ apiKey: ADMIN_KEY, baseURL: gw.url, maxRetries: 0, defaultHeaders: { 'anthropic-beta': BETAS } })
    const system = [
      { type: 'text' as const, text: 'You are Claude Code, Anthropic\'s official CLI for Claude.' },
      { type: 'text' as const, text: 'Tool use guidelines ... (long)', cache_control: { type: 'ephemeral' as const } },
    ]
    const tools = [
      { name: 'Read', description: 'Reads a file', input_schema: { type: 'object' as const, properties: { file_path: { type: 'string' } }, required: ['file_path'], additionalProperties: false, $schema: 'http://json-schema.org/draft-07/schema#' } },
      { name: 'Bash', description: 'Runs a command', input_schema: { type: 'object' as const, properties: { command: { type: 'string' } }, required: ['command'] }, cache_control: { type: 'ephemeral' as const } },
    ]
    const messages = [{ role: 'user' as const, content: [{ type: 'text' as const, text: 'echo ready', cache_control: { type: 'ephemeral' as const } }] }]
    const params = {
      model: 'anthropic/claude-sonnet-4-5', max_tokens: 32000, temperature: 1, system, tools, messages, metadata: { user_id: 'user_abc_account_123_session_456' },
      thinking: { type: 'enabled' as const, budget_tokens: 31999 },
      context_management: { edits: [{ type: 'clear_thinking_20251015', keep: 'all' }] },
    }
    const stream = client.beta.messages.stream(params as unknown as Parameters<typeof client.beta.messages.stream>[0])
    const final = await stream.finalMessage()
    expect(final.stop_reason).toBe('end_turn')
    expect(final.content.filter((b) => b.type === 'text').map((b) => (b as { text: string }).text).join('')).toBe('echo: ready')
    const sent = mock.requests.at(-1)!
    expect(sent.headers['anthropic-beta']).toBe(BETAS)
    expect(sent.body).toMatchObject({
      model: 'claude-sonnet-4-5', max_tokens: 32000, stream: true, system, metadata: params.metadata, thinking: params.thinking, context_management: params.context_management,
      tools: [{ name: 'Read' }, { name: 'Bash', cache_control: { type: 'ephemeral' } }],
      messages: [{ role: 'user', content: [{ type: 'text', text: 'echo ready', cache_control: { type: 'ephemeral' } }] }],
    })
    const { context_management: _cm, max_tokens: _mt, temperature: _t, metadata: _m, ...countable } = params
    const count = await client.messages.countTokens({ ...countable, messages: [...messages, { role: 'assistant', content: final.content as Anthropic.ContentBlockParam[] }, { role: 'user', content: 'echo next' }] } as Anthropic.MessageCountTokensParams)
    expect(count.input_tokens).toBeGreaterThan(0)
    expect(mock.requests.at(-1)!.path).toBe('/v1/messages/count_tokens')
  })
})
