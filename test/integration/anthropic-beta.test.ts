/**
 * A client's `anthropic-beta` header (Anthropic's feature flags: the 1M context window, interleaved thinking, ...)
 * reaches an Anthropic upstream, merged with the provider's own betas, from /v1/messages and /v1/chat/completions,
 * streamed or not; a provider configured with `forwardClientBetas: false` sends only its own; no other provider gets it.
 * It used to be dropped: a request past 200k tokens that asked for the 1M window failed upstream.
 */
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startAnthropicMock, type AnthropicMock } from '../helpers/anthropic-mock.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'

const BETA = 'context-1m-2025-08-07,interleaved-thinking-2025-05-14'
let mock: AnthropicMock
let oa: OpenAIMock
let gw: TestGateway

beforeAll(async () => {
  mock = await startAnthropicMock()
  oa = await startOpenAIMock()
  gw = await startGateway({
    providers: {
      claude: { type: 'anthropic', baseUrl: mock.url, apiKey: 'sk-ant-beta-0001' },
      fixed: { type: 'anthropic', baseUrl: mock.url, apiKey: 'sk-ant-beta-0002', headers: { 'Anthropic-Beta': 'token-efficient-tools-2025-02-19,context-1m-2025-08-07' } },
      closed: { type: 'anthropic', baseUrl: mock.url, apiKey: 'sk-ant-beta-0003', forwardClientBetas: false, headers: { 'anthropic-beta': 'token-efficient-tools-2025-02-19' } },
      oa: { type: 'openai', baseUrl: oa.url, apiKey: 'sk-beta-openai-0001' },
    },
  })
})
afterAll(async () => {
  await gw?.close()
  await mock?.close()
  await oa?.close()
})
beforeEach(() => { mock.reset(); oa.reset() })

const anthropic = (beta?: string): Anthropic => new Anthropic({ apiKey: ADMIN_KEY, baseURL: gw.url, maxRetries: 0, ...(beta ? { defaultHeaders: { 'anthropic-beta': beta } } : {}) })
const sent = (): unknown => mock.requests.at(-1)!.headers['anthropic-beta']

describe('anthropic-beta', () => {
  it('/v1/messages, streamed and not: the client\'s betas reach Anthropic as sent', async () => {
    const r = await anthropic(BETA).messages.create({ model: 'claude/claude-sonnet-4-5', max_tokens: 32, messages: [{ role: 'user', content: 'hi' }] })
    expect(r.type).toBe('message')
    expect(sent()).toBe(BETA)
    const text = await anthropic(BETA).messages.stream({ model: 'claude/claude-sonnet-4-5', max_tokens: 32, messages: [{ role: 'user', content: 'hi' }] }).finalText()
    expect(text).not.toBe('')
    expect(sent()).toBe(BETA)
  })

  it('merged with the provider\'s own betas, each once, under the config\'s spelling of the header', async () => {
    await anthropic(BETA).messages.create({ model: 'fixed/claude-sonnet-4-5', max_tokens: 32, messages: [{ role: 'user', content: 'hi' }] })
    expect(sent()).toBe('token-efficient-tools-2025-02-19,context-1m-2025-08-07,interleaved-thinking-2025-05-14')
    // Without a client beta, the config's go as they are.
    await anthropic().messages.create({ model: 'fixed/claude-sonnet-4-5', max_tokens: 32, messages: [{ role: 'user', content: 'hi' }] })
    expect(sent()).toBe('token-efficient-tools-2025-02-19,context-1m-2025-08-07')
  })

  it('Claude Code\'s context editing: context_management and its beta reach Anthropic (the field was a 400)', async () => {
    const cm = { edits: [{ type: 'clear_thinking_20251015', keep: 'all' }] }
    const r = await anthropic('context-management-2025-06-27').beta.messages.create({
      model: 'claude/claude-sonnet-4-5', max_tokens: 32, messages: [{ role: 'user', content: 'hi' }], context_management: cm,
    } as Anthropic.Beta.MessageCreateParamsNonStreaming)
    expect(r.type).toBe('message')
    const sent = mock.requests.at(-1)!
    expect(sent.body.context_management).toEqual(cm)
    expect(sent.headers['anthropic-beta']).toContain('context-management-2025-06-27')
  })

  it('forwardClientBetas: false sends only the provider\'s betas', async () => {
    await anthropic(BETA).messages.create({ model: 'closed/claude-sonnet-4-5', max_tokens: 32, messages: [{ role: 'user', content: 'hi' }] })
    expect(sent()).toBe('token-efficient-tools-2025-02-19')
  })

  it('/v1/chat/completions to Anthropic forwards it too; an OpenAI upstream never gets it', async () => {
    const client = new OpenAI({ apiKey: ADMIN_KEY, baseURL: `${gw.url}/v1`, maxRetries: 0, defaultHeaders: { 'anthropic-beta': BETA } })
    await client.chat.completions.create({ model: 'claude/claude-sonnet-4-5', messages: [{ role: 'user', content: 'hi' }] })
    expect(sent()).toBe(BETA)
    await client.chat.completions.create({ model: 'oa/gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
    await anthropic(BETA).messages.create({ model: 'oa/gpt-4o', max_tokens: 32, messages: [{ role: 'user', content: 'hi' }] })
    expect(oa.requests).toHaveLength(2)
    for (const r of oa.requests) expect(r.headers['anthropic-beta']).toBeUndefined()
  })
})
