/** The tool set the anthropic, google and ollama translations send: each function name once, a named choice among them. */
import { describe, expect, it } from 'vitest'
import { GatewayError } from '../../gateway/errors.ts'
import { toAnthropicChat } from '../anthropic/request.ts'
import { toGoogleChat } from '../google/request.ts'
import { toOllamaChat } from '../ollama/request.ts'
import type { ChatRequest } from '../types.ts'

const fn = (name: string) => ({ type: 'function' as const, function: { name, parameters: { type: 'object', properties: { a: { type: 'string' } } } } })
const base = (extra: Partial<ChatRequest>): ChatRequest => ({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...extra })

const translations: [string, (r: ChatRequest) => unknown][] = [
  ['anthropic', (r) => toAnthropicChat(r, 'claude-sonnet-4-5', false, { provider: 'anthropic', basePath: '', defaultMaxTokens: 64, dropUnsupportedParams: false })],
  ['google', (r) => toGoogleChat(r, 'gemini-2.5-flash', false, { provider: 'google', basePath: '', apiVersion: 'v1beta', dropUnsupportedParams: false })],
  ['ollama', (r) => toOllamaChat(r, 'llama3.2', false, { provider: 'ollama', basePath: '', dropUnsupported: false })],
]

function caught(fnc: () => unknown): GatewayError {
  try { fnc() } catch (e) { if (e instanceof GatewayError) return e; throw e }
  throw new Error('expected a GatewayError')
}

describe.each(translations)('%s', (provider, translate) => {
  it('two tools of one name are a 400 naming the later one and the provider (were sent: "Tool names must be unique")', () => {
    const e = caught(() => translate(base({ tools: [fn('get_weather'), fn('other'), fn('get_weather')] })))
    expect([e.status, e.code, e.param]).toEqual([400, 'MCP_ERR_REQ_BODY_INVALID', 'tools[2].function.name'])
    expect(e.message).toContain(`provider ${provider} takes each function name once, and tools[0] is also named "get_weather"`)
    // Distinct names go as they are.
    expect(() => translate(base({ tools: [fn('a'), fn('b')] }))).not.toThrow()
  })
})

describe.each(translations.slice(0, 2))('%s', (provider, translate) => {
  it('a named tool_choice matching no tool is a 400 naming tool_choice.function.name (was sent as the choice)', () => {
    const e = caught(() => translate(base({ tools: [fn('get_weather')], tool_choice: { type: 'function', function: { name: 'nope' } } })))
    expect([e.status, e.param]).toEqual([400, 'tool_choice.function.name'])
    expect(e.message).toContain(`"nope" is not the name of any of the request's tools; provider ${provider}`)
    expect(() => translate(base({ tools: [fn('get_weather')], tool_choice: { type: 'function', function: { name: 'get_weather' } } }))).not.toThrow()
  })
})
