/**
 * OpenAI's deprecated function calling counts in the token estimates as its tool form does: the cost meter's
 * tokenizer estimate of a prompt (gateway/cost/estimate.ts) and the rate limiter's admission estimate
 * (plugins/rate-limit/tokens.ts). The budget's is tested with its plugin (plugins/budget/budget.test.ts).
 */
import { describe, expect, it } from 'vitest'
import type { RequestCtx } from '../../gateway/context.ts'
import { countTokens, estimateChatPrompt, loadTokenizer } from '../../gateway/cost/estimate.ts'
import type { ChatRequest } from '../../providers/types.ts'
import { estimateTokens } from '../../plugins/rate-limit/tokens.ts'

const FN = { name: 'get_weather', description: 'The weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } }
const CALL = { name: 'get_weather', arguments: '{"city":"Paris"}' }

describe('legacy function calling in the estimates', () => {
  it('the cost meter counts `functions` like `tools`, and an assistant\'s function_call like its tool_calls', async () => {
    await loadTokenizer()
    const plain: ChatRequest = { model: 'm', messages: [{ role: 'user', content: 'weather?' }, { role: 'assistant', content: null }] }
    const legacy = { ...plain, functions: [FN], messages: [plain.messages[0]!, { role: 'assistant', content: null, function_call: CALL }] } as unknown as ChatRequest
    expect(estimateChatPrompt(legacy) - estimateChatPrompt(plain)).toBe(countTokens(JSON.stringify([FN])) + countTokens(JSON.stringify(CALL)))
  })

  it('the rate limiter counts `functions` like `tools`', () => {
    const chat = { model: 'm', messages: [{ role: 'user', content: 'x'.repeat(40) }], max_tokens: 10 }
    const est = (c: unknown): number => estimateTokens({ chat: c } as unknown as RequestCtx, 4, 100)
    expect(est({ ...chat, functions: [FN] }) - est(chat)).toBe(Math.ceil((40 + JSON.stringify([FN]).length) / 4) - 10)
  })
})
