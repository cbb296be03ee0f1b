/**
 * End-to-end: reasoning controls across providers, with the official SDKs through the running gateway.
 * Anthropic's `thinking` (Claude Code and other /v1/messages clients) and OpenAI's `reasoning_effort` reach Gemini,
 * OpenAI and Ollama as their own settings (they were a 400 naming the parameter); the reasoning the provider returns
 * stays out of the answer and its token count arrives as reasoning_tokens. Mocks speak each provider's wire format.
 */
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startGeminiMock, THOUGHT_TOKENS, type GeminiMock } from '../helpers/gemini-mock.ts'
import { startOllamaMock, type OllamaMock } from '../helpers/ollama-mock.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'

let gw: TestGateway
let gemini: GeminiMock
let ollama: OllamaMock
let openai: OpenAIMock

beforeAll(async () => {
  ;[gemini, ollama, openai] = await Promise.all([startGeminiMock(), startOllamaMock(), startOpenAIMock()])
  gw = await startGateway({
    providers: {
      google: { type: 'google', baseUrl: gemini.url, apiKey: 'AIzaConformanceKey000000000001' },
      ollama: { type: 'ollama', baseUrl: ollama.url },
      openai: { type: 'openai', baseUrl: openai.url, apiKey: 'sk-conformance-openai-0001' },
    },
  })
})

afterAll(async () => {
  await gw?.close()
  await Promise.all([gemini?.close(), ollama?.close(), openai?.close()])
})

beforeEach(() => { gemini.reset(); ollama.reset(); openai.reset() })

const anthropicClient = (): Anthropic => new Anthropic({ apiKey: ADMIN_KEY, baseURL: gw.url, maxRetries: 0 })
const openaiClient = (): OpenAI => new OpenAI({ apiKey: ADMIN_KEY, baseURL: `${gw.url}/v1`, maxRetries: 0 })
const lastBody = (m: { requests: { body: any }[] }): any => m.requests[m.requests.length - 1]?.body

describe('anthropic SDK thinking → gateway', () => {
  it('google: thinkingBudget = budget_tokens; thoughts count as output tokens, the answer is the text', async () => {
    const r = await anthropicClient().messages.create({
      model: 'google/gemini-2.5-flash', max_tokens: 8192, thinking: { type: 'enabled', budget_tokens: 4096 },
      messages: [{ role: 'user', content: 'echo hello world' }],
    })
    expect(lastBody(gemini).generationConfig).toEqual({ maxOutputTokens: 8192, thinkingConfig: { thinkingBudget: 4096 } })
    expect(r.content).toEqual([{ type: 'text', text: 'echo: hello world' }])
    expect(r.usage.output_tokens).toBe(3 + THOUGHT_TOKENS)
  })

  it('google: disabled turns Gemini 2.5 thinking off (thinkingBudget 0)', async () => {
    await anthropicClient().messages.create({
      model: 'google/gemini-2.5-flash', max_tokens: 256, thinking: { type: 'disabled' }, messages: [{ role: 'user', content: 'echo hi' }],
    })
    expect(lastBody(gemini).generationConfig.thinkingConfig).toEqual({ thinkingBudget: 0 })
  })

  it('ollama (streamed): think: true, and the reasoning trace stays out of the text', async () => {
    const s = anthropicClient().messages.stream({
      model: 'ollama/qwen3', max_tokens: 8192, thinking: { type: 'enabled', budget_tokens: 2048 },
      messages: [{ role: 'user', content: 'echo streamed words arrive in order' }],
    })
    let deltas = ''
    s.on('text', (t) => { deltas += t })
    const final = await s.finalMessage()
    expect(lastBody(ollama).think).toBe(true)
    expect(deltas).toBe('echo: streamed words arrive in order')
    expect(final.content).toEqual([{ type: 'text', text: 'echo: streamed words arrive in order' }])
  })

  it('openai: reasoning_effort from the budget (31999, what Claude Code sends for its largest budget → high); thinking is not sent', async () => {
    // Streamed: the SDK refuses a non-streamed request this large.
    await anthropicClient().messages.stream({
      model: 'openai/o3', max_tokens: 32000, thinking: { type: 'enabled', budget_tokens: 31999 }, messages: [{ role: 'user', content: 'echo hi' }],
    }).finalMessage()
    const body = lastBody(openai)
    expect(body.reasoning_effort).toBe('high')
    expect(body).not.toHaveProperty('thinking')
  })

  it('a budget Anthropic would refuse is a 400 naming thinking.budget_tokens', async () => {
    const err = await anthropicClient().messages.create({
      model: 'google/gemini-2.5-flash', max_tokens: 256, thinking: { type: 'enabled', budget_tokens: 100 }, messages: [{ role: 'user', content: 'echo hi' }],
    }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(Anthropic.BadRequestError)
    expect((err as InstanceType<typeof Anthropic.BadRequestError>).message).toContain('thinking.budget_tokens')
    expect(gemini.requests).toHaveLength(0)
  })
})

describe('openai SDK reasoning_effort → gateway', () => {
  it('google 2.5: thinkingBudget 8192 for medium; usage.completion_tokens_details.reasoning_tokens from thoughtsTokenCount', async () => {
    const r = await openaiClient().chat.completions.create({
      model: 'google/gemini-2.5-flash', reasoning_effort: 'medium', messages: [{ role: 'user', content: 'echo hello world' }],
    })
    expect(lastBody(gemini).generationConfig).toEqual({ thinkingConfig: { thinkingBudget: 8192 } })
    expect(r.choices[0]!.message.content).toBe('echo: hello world')
    expect(r.usage!.completion_tokens_details?.reasoning_tokens).toBe(THOUGHT_TOKENS)
    expect(r.usage!.completion_tokens).toBe(3 + THOUGHT_TOKENS)
  })

  it('google 3 (streamed): thinkingLevel', async () => {
    const stream = await openaiClient().chat.completions.create({
      model: 'google/gemini-3-flash-preview', reasoning_effort: 'low', stream: true, stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'echo hi there' }],
    })
    let text = ''
    let usage: OpenAI.CompletionUsage | null | undefined
    for await (const c of stream) { text += c.choices[0]?.delta.content ?? ''; if (c.usage) usage = c.usage }
    expect(lastBody(gemini).generationConfig).toEqual({ thinkingConfig: { thinkingLevel: 'low' } })
    expect(text).toBe('echo: hi there')
    expect(usage?.completion_tokens_details?.reasoning_tokens).toBe(THOUGHT_TOKENS)
  })

  it('ollama: think level; the reasoning trace is not in the answer', async () => {
    const r = await openaiClient().chat.completions.create({
      model: 'ollama/gpt-oss', reasoning_effort: 'high', messages: [{ role: 'user', content: 'echo hello world' }],
    })
    expect(lastBody(ollama).think).toBe('high')
    expect(r.choices[0]!.message.content).toBe('echo: hello world')
    expect(JSON.stringify(r)).not.toContain('echo. Reply')
  })

  it('a value the provider has no equivalent for is a 400 naming reasoning_effort and the provider', async () => {
    const err = await openaiClient().chat.completions.create({
      model: 'google/gemini-2.5-flash', reasoning_effort: 'minimal', messages: [{ role: 'user', content: 'echo hi' }],
    }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(OpenAI.BadRequestError)
    const e = err as InstanceType<typeof OpenAI.BadRequestError>
    expect(e.param).toBe('reasoning_effort')
    expect(e.message).toContain('google')
    expect(gemini.requests).toHaveLength(0)
  })
})
