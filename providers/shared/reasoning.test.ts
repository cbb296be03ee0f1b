/**
 * Reasoning controls across providers: Anthropic's `thinking` (kept by the /v1/messages dialect) and OpenAI's
 * `reasoning_effort`, translated to each provider's documented setting, or a 400 naming the parameter.
 */
import { describe, expect, it } from 'vitest'
import { GatewayError } from '../../gateway/errors.ts'
import { anthropicToCanonical } from '../../gateway/inbound/anthropic.ts'
import { toAnthropicRequest } from '../anthropic/request.ts'
import { azureRoute, toAzureChat } from '../azure-openai/request.ts'
import { toGoogleChat } from '../google/request.ts'
import { toOllamaChat } from '../ollama/request.ts'
import { toOpenAIChat } from '../openai/request.ts'
import type { ChatRequest } from '../types.ts'
import { effortForBudget } from './reasoning.ts'

function catchError(fn: () => unknown): GatewayError {
  try { fn() } catch (e) { if (e instanceof GatewayError) return e; throw e }
  throw new Error('expected a GatewayError')
}

const MSGS = [{ role: 'user' as const, content: 'hi' }]
const req = (extra: Record<string, unknown>): ChatRequest => ({ model: 'x', messages: MSGS, ...extra })
const thinking = (budget: number): ChatRequest => req({ max_tokens: 64000, thinking: { type: 'enabled', budget_tokens: budget } })

const OPENAI = { provider: 'oai', dropUnsupportedParams: false, forwardTopK: false, completionTokens: true }
const GOOGLE = { provider: 'gem', basePath: '', apiVersion: 'v1beta', dropUnsupportedParams: false }
const OLLAMA = { provider: 'local', basePath: '', dropUnsupported: false }

const openai = (r: ChatRequest, o = OPENAI) => toOpenAIChat(r, 'o3', false, '/v1', o).body as Record<string, unknown>
const gen = (r: ChatRequest, model = 'gemini-2.5-flash', o = GOOGLE) =>
  (toGoogleChat(r, model, false, o).body as { generationConfig?: Record<string, unknown> }).generationConfig
const ollama = (r: ChatRequest, o = OLLAMA) => toOllamaChat(r, 'qwen3', false, o).body as Record<string, unknown>

function expectUnsupported(fn: () => unknown, param: string, provider: string): void {
  const e = catchError(fn)
  expect([e.code, e.status, e.param]).toEqual(['MCP_ERR_REQ_PARAM_UNSUPPORTED', 400, param])
  expect(e.message).toContain(provider)
}

describe('effortForBudget: the largest of Google\'s documented effort budgets (1024 low, 8192 medium, 24576 high) within the client\'s budget', () => {
  it.each([[1024, 'low'], [4000, 'low'], [8191, 'low'], [8192, 'medium'], [10000, 'medium'], [24575, 'medium'], [24576, 'high'], [31999, 'high']])('%i → %s', (budget, effort) => {
    expect(effortForBudget(budget)).toBe(effort)
  })
})

describe('Anthropic thinking → other providers', () => {
  it('openai and azure: enabled with a budget becomes reasoning_effort; thinking is not sent', () => {
    const body = openai(thinking(10000))
    expect(body['reasoning_effort']).toBe('medium')
    expect(body).not.toHaveProperty('thinking')
    expect(openai(thinking(2048))['reasoning_effort']).toBe('low')
    expect(openai(thinking(31999))['reasoning_effort']).toBe('high')
    const az = toAzureChat(thinking(31999), 'o3', false, azureRoute({ apiMode: 'deployments', deployments: {} } as never, ''), OPENAI).body as Record<string, unknown>
    expect(az['reasoning_effort']).toBe('high')
    expect(az).not.toHaveProperty('thinking')
  })

  it('openai: an explicit reasoning_effort (output_config.effort) wins over the budget', () => {
    expect(openai(req({ thinking: { type: 'enabled', budget_tokens: 31999 }, reasoning_effort: 'low' }))['reasoning_effort']).toBe('low')
  })

  it('openai: disabled is the default of the models that take no effort, and is not sent; adaptive without an effort is a 400 naming thinking', () => {
    const off = openai(req({ thinking: { type: 'disabled' } }))
    expect(off).not.toHaveProperty('thinking')
    expect(off).not.toHaveProperty('reasoning_effort')
    expectUnsupported(() => openai(req({ thinking: { type: 'adaptive' } })), 'thinking', 'oai')
    expect(openai(req({ thinking: { type: 'adaptive' }, reasoning_effort: 'high' }))).toMatchObject({ reasoning_effort: 'high' })
    expect(openai(req({ thinking: { type: 'adaptive' } }), { ...OPENAI, dropUnsupportedParams: true })).not.toHaveProperty('thinking')
  })

  it('a malformed thinking object is a 400 naming the field (budget_tokens: an integer of at least 1024, as Anthropic requires)', () => {
    for (const t of [{ type: 'enabled' }, { type: 'enabled', budget_tokens: 512 }, { type: 'enabled', budget_tokens: 2048.5 }, { type: 'sometimes' }, 'on']) {
      const e = catchError(() => openai(req({ thinking: t })))
      expect(e.code).toBe('MCP_ERR_REQ_BODY_INVALID')
      expect(e.status).toBe(400)
      expect(e.param).toMatch(/^thinking/)
    }
    expect(catchError(() => gen(req({ thinking: { type: 'enabled' } }))).param).toBe('thinking.budget_tokens')
    expect(catchError(() => ollama(req({ thinking: { type: 'enabled', budget_tokens: 10 } }))).param).toBe('thinking.budget_tokens')
  })

  it('google: enabled → thinkingConfig.thinkingBudget (Gemini 2.5 and 3, which keeps accepting budgets), adaptive → dynamic (-1), disabled → 0', () => {
    expect(gen(thinking(2048))).toEqual({ maxOutputTokens: 64000, thinkingConfig: { thinkingBudget: 2048 } })
    expect(gen(thinking(2048), 'gemini-3-pro-preview')?.['thinkingConfig']).toEqual({ thinkingBudget: 2048 })
    expect(gen(req({ thinking: { type: 'adaptive' } }))).toEqual({ thinkingConfig: { thinkingBudget: -1 } })
    expect(gen(req({ thinking: { type: 'disabled' } }))).toEqual({ thinkingConfig: { thinkingBudget: 0 } })
  })

  it('google: Gemini 3 thinks dynamically by default and cannot turn thinking off: adaptive and disabled send nothing', () => {
    expect(gen(req({ thinking: { type: 'adaptive' } }), 'gemini-3-flash-preview')).toBeUndefined()
    expect(gen(req({ thinking: { type: 'disabled' } }), 'models/gemini-3-pro-preview')).toBeUndefined()
  })

  it('ollama: enabled and adaptive → think: true, disabled → think: false', () => {
    expect(ollama(thinking(2048))['think']).toBe(true)
    expect(ollama(req({ thinking: { type: 'adaptive' } }))['think']).toBe(true)
    expect(ollama(req({ thinking: { type: 'disabled' } }))['think']).toBe(false)
    expect(ollama(req({}))).not.toHaveProperty('think')
  })

  it('anthropic: forwarded as it came, disabled included', () => {
    const opts = { provider: 'claude', basePath: '', defaultMaxTokens: 1024, dropUnsupportedParams: false }
    expect(toAnthropicRequest(thinking(2048), 'claude-sonnet-4-5', false, opts).thinking).toEqual({ type: 'enabled', budget_tokens: 2048 })
    expect(toAnthropicRequest(req({ thinking: { type: 'disabled' } }), 'claude-sonnet-4-5', false, opts).thinking).toEqual({ type: 'disabled' })
  })

  it('the /v1/messages dialect keeps thinking disabled (so a provider can turn thinking off)', () => {
    const base = { model: 'm', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }
    expect(anthropicToCanonical({ ...base, thinking: { type: 'disabled' } })['thinking']).toEqual({ type: 'disabled' })
  })
})

describe('OpenAI reasoning_effort → other providers', () => {
  it('google 2.x: Google\'s documented OpenAI-compatibility budgets (low 1024, medium 8192, high 24576), none → 0', () => {
    expect(gen(req({ reasoning_effort: 'low' }))).toEqual({ thinkingConfig: { thinkingBudget: 1024 } })
    expect(gen(req({ reasoning_effort: 'medium' }))).toEqual({ thinkingConfig: { thinkingBudget: 8192 } })
    expect(gen(req({ reasoning_effort: 'high' }), 'gemini-2.5-pro')).toEqual({ thinkingConfig: { thinkingBudget: 24576 } })
    expect(gen(req({ reasoning_effort: 'none' }))).toEqual({ thinkingConfig: { thinkingBudget: 0 } })
  })

  it('google 3: thinkingLevel (minimal, low, medium, high); none is a 400 (Gemini 3 cannot turn thinking off)', () => {
    expect(gen(req({ reasoning_effort: 'low' }), 'gemini-3-pro-preview')).toEqual({ thinkingConfig: { thinkingLevel: 'low' } })
    expect(gen(req({ reasoning_effort: 'minimal' }), 'gemini-3-flash-preview')).toEqual({ thinkingConfig: { thinkingLevel: 'minimal' } })
    expectUnsupported(() => gen(req({ reasoning_effort: 'none' }), 'gemini-3-flash-preview'), 'reasoning_effort', 'gem')
  })

  it('google: values without a documented equivalent are a 400 naming reasoning_effort (or dropped)', () => {
    expectUnsupported(() => gen(req({ reasoning_effort: 'minimal' })), 'reasoning_effort', 'gem')
    expectUnsupported(() => gen(req({ reasoning_effort: 'xhigh' }), 'gemini-3-pro-preview'), 'reasoning_effort', 'gem')
    expect(gen(req({ reasoning_effort: 'xhigh' }), 'gemini-2.5-flash', { ...GOOGLE, dropUnsupportedParams: true })).toBeUndefined()
  })

  it('google: reasoning_effort wins over thinking (Anthropic adaptive thinking with output_config.effort)', () => {
    expect(gen(req({ thinking: { type: 'adaptive' }, reasoning_effort: 'high' }), 'gemini-3-pro-preview')).toEqual({ thinkingConfig: { thinkingLevel: 'high' } })
  })

  it('ollama: low/medium/high → think level, none → think: false; others a 400 naming reasoning_effort', () => {
    expect(ollama(req({ reasoning_effort: 'high' }))['think']).toBe('high')
    expect(ollama(req({ reasoning_effort: 'low' }))['think']).toBe('low')
    expect(ollama(req({ reasoning_effort: 'none' }))['think']).toBe(false)
    expect(ollama(req({ reasoning_effort: 'medium', thinking: { type: 'disabled' } }))['think']).toBe('medium')
    expectUnsupported(() => ollama(req({ reasoning_effort: 'minimal' })), 'reasoning_effort', 'local')
    expect(ollama(req({ reasoning_effort: 'xhigh' }), { ...OLLAMA, dropUnsupported: true })).not.toHaveProperty('think')
  })

  it('anthropic: unchanged, output_config.effort (thinking blocks could not be sent back in a tool loop)', () => {
    const opts = { provider: 'claude', basePath: '', defaultMaxTokens: 1024, dropUnsupportedParams: false }
    const out = toAnthropicRequest(req({ reasoning_effort: 'high' }), 'claude-opus-4-5', false, opts)
    expect(out.output_config).toEqual({ effort: 'high' })
    expect(out.thinking).toBeUndefined()
  })
})
