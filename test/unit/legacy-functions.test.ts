/** providers/shared/legacy-functions.ts: which call a `function` result answers when several of its name are open. */
import { describe, expect, it } from 'vitest'
import { fromLegacyFunctions } from '../../providers/shared/legacy-functions.ts'
import type { ChatRequest } from '../../providers/types.ts'

const OPTS = { oneCallAtATime: false, namedChoice: true, unsupported: () => {} }
const call = (city: string): object => ({ role: 'assistant', content: null, function_call: { name: 'get_weather', arguments: JSON.stringify({ city }) } })
const result = (text: string): object => ({ role: 'function', name: 'get_weather', content: text })

describe('fromLegacyFunctions', () => {
  it('a result answers the earliest open call of its name', () => {
    const req = { model: 'm', messages: [{ role: 'user', content: 'weather?' }, call('Paris'), call('Rome'), result('sunny'), result('rainy')] } as unknown as ChatRequest
    const out = fromLegacyFunctions(req, OPTS).messages as unknown as { tool_calls?: { id: string }[]; tool_call_id?: string }[]
    expect(out.map((m) => m.tool_calls?.[0]?.id ?? m.tool_call_id)).toEqual([undefined, 'call_fn_1', 'call_fn_2', 'call_fn_1', 'call_fn_2'])
  })

  it('a long history pairs every result with its call, results after calls (Array#shift made 70,000 take 14 s)', () => {
    const n = 80_000
    const messages = [{ role: 'user', content: 'go' }, ...Array.from({ length: n }, (_, i) => call(`c${i}`)), ...Array.from({ length: n }, (_, i) => result(`r${i}`))]
    const out = fromLegacyFunctions({ model: 'm', messages } as unknown as ChatRequest, OPTS).messages as unknown as { tool_call_id?: string }[]
    expect(out[n + 1]!.tool_call_id).toBe('call_fn_1')
    expect(out[2 * n]!.tool_call_id).toBe(`call_fn_${n}`)
    // One result too many answers no call: a 400 naming it.
    expect(() => fromLegacyFunctions({ model: 'm', messages: [...messages, result('extra')] } as unknown as ChatRequest, OPTS)).toThrow(/no earlier assistant function_call/)
  })

  it('leaves a request without the legacy form as it is (the same object)', () => {
    const req: ChatRequest = { model: 'm', messages: [{ role: 'user', content: 'hi' }] }
    expect(fromLegacyFunctions(req, OPTS)).toBe(req)
  })
})
