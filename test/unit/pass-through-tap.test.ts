import { describe, expect, it } from 'vitest'
import { hasEmptyChoices, hasStringFinish, hasUsageObject, isUsageOnly } from '../../gateway/deliver.ts'
import { looksCompact, parseEventFacts } from '../../gateway/event-shape.ts'

const chunk = (choices: unknown[], extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices, ...extra })

describe('pass-through stream tap: keys found from the end', () => {
  it('sees a string finish_reason in any choice, and not null ones', () => {
    expect(hasStringFinish(chunk([{ index: 0, delta: { content: 'x' }, finish_reason: null }]))).toBe(false)
    expect(hasStringFinish(chunk([{ index: 0, delta: {}, finish_reason: 'stop' }]))).toBe(true)
    // n = 2: the first choice finishes, the last does not.
    expect(hasStringFinish(chunk([{ index: 0, delta: {}, finish_reason: 'length' }, { index: 1, delta: { content: 'y' }, finish_reason: null }]))).toBe(true)
    expect(hasStringFinish(chunk([{ index: 0, delta: {}, finish_reason: 'stop' }], { usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } }))).toBe(true)
    // Key-like text inside content is escaped, so it never matches.
    expect(hasStringFinish(chunk([{ index: 0, delta: { content: 'say "finish_reason":"stop"' }, finish_reason: null }]))).toBe(false)
    expect(hasStringFinish('"finish_reason":"stop"')).toBe(true)
    expect(hasStringFinish('')).toBe(false)
  })

  it('sees a usage object, not usage null, wherever the key is', () => {
    expect(hasUsageObject(chunk([], { usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } }))).toBe(true)
    expect(hasUsageObject(chunk([{ index: 0, delta: { content: 'x' }, finish_reason: null }], { usage: null }))).toBe(false)
    expect(hasUsageObject(chunk([{ index: 0, delta: { content: 'x' }, finish_reason: null }]))).toBe(false)
    expect(hasUsageObject(JSON.stringify({ usage: { prompt_tokens: 1 }, id: 'x', choices: [{ delta: { content: '"usage":null' } }] }))).toBe(true)
    expect(hasUsageObject(chunk([{ index: 0, delta: { content: 'text with "usage":{"a":1}' }, finish_reason: null }]))).toBe(false)
    expect(hasUsageObject('"usage":{')).toBe(true)
    // Only the key `usage` itself: keys that end in it, the tail alone, and a usage key after one of those.
    expect(hasUsageObject(JSON.stringify({ prompt_usage: { a: 1 }, xusage: { b: 2 } }))).toBe(false)
    expect(hasUsageObject('ge":{')).toBe(false)
    expect(hasUsageObject('sage":{')).toBe(false)
    expect(hasUsageObject(JSON.stringify({ page: { a: 1 }, usage: { b: 2 } }))).toBe(true)
    expect(hasUsageObject(JSON.stringify({ page: { a: 1 }, usage: null }))).toBe(false)
  })

  it('sees the usage-only chunk (choices: []) and nothing that only looks like it', () => {
    expect(hasEmptyChoices(chunk([], { usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } }))).toBe(true)
    expect(hasEmptyChoices('{"choices":[]}')).toBe(true)
    expect(hasEmptyChoices(chunk([{ index: 0, delta: { content: 'x' }, finish_reason: null }]))).toBe(false)
    // Empty arrays elsewhere, and the key's text inside content (escaped quotes), are not it.
    expect(hasEmptyChoices(chunk([{ index: 0, delta: { tool_calls: [] }, finish_reason: null }]))).toBe(false)
    expect(hasEmptyChoices(chunk([{ index: 0, delta: { content: 'say "choices":[] and [] []' }, finish_reason: null }]))).toBe(false)
    expect(hasEmptyChoices(JSON.stringify({ x: [], choices: [] }))).toBe(true)
    expect(hasEmptyChoices('[DONE]')).toBe(false)
    expect(hasEmptyChoices('')).toBe(false)
  })

  it("sees the usage-only chunk in Python's spacing and pretty-printed, and only there", () => {
    const u = { id: 'x', choices: [], usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } }
    expect(hasEmptyChoices('{"id": "x", "choices": [], "usage": {"prompt_tokens": 1}}')).toBe(true)
    expect(hasEmptyChoices(JSON.stringify(u, null, 1))).toBe(true)
    expect(hasEmptyChoices('{"id": "x", "choices" :\n []}')).toBe(true)
    expect(hasEmptyChoices('{"id": "x", "choices": [{"delta": {"content": "say \\"choices\\": []"}}]}')).toBe(false)
    expect(hasEmptyChoices('{"xchoices": []}')).toBe(false)
    expect(isUsageOnly(JSON.stringify(u))).toBe(true)
    expect(isUsageOnly(JSON.stringify(u, null, 1))).toBe(true)
    expect(isUsageOnly('{"id": "x", "choices": [], "usage": {"prompt_tokens": 1}}')).toBe(true)
    // Azure's prompt_filter_results event: no usage, compact or not.
    expect(isUsageOnly('{"id":"","choices":[],"prompt_filter_results":[]}')).toBe(false)
    expect(isUsageOnly('{"id": "", "choices": [], "prompt_filter_results": [], "usage": null}')).toBe(false)
  })

  it('tells compact events (whose keys the searches see) from others, which are parsed', () => {
    expect(looksCompact(chunk([{ index: 0, delta: {}, finish_reason: 'stop' }]))).toBe(true)
    expect(looksCompact('{"id": "x"}')).toBe(false)
    expect(looksCompact('{\n "id": "x"\n}')).toBe(false)
    expect(looksCompact('{}')).toBe(false)
    expect(parseEventFacts('{"id": "x", "choices": [{"index": 0, "finish_reason": "length"}], "usage": {"prompt_tokens": 1}}'))
      .toEqual({ finish: 'length', usage: { prompt_tokens: 1 } })
    expect(parseEventFacts('{"choices": [{"finish_reason": null}], "usage": null}')).toEqual({ finish: undefined, usage: undefined })
    expect(parseEventFacts('[1]')).toBeUndefined()
    expect(parseEventFacts('{')).toBeUndefined()
  })
})
