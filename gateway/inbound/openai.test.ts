import { describe, expect, it } from 'vitest'
import type { ChatChunk } from '../../providers/types.ts'
import { openaiInbound } from './openai.ts'

const base = { id: 'chatcmpl-1', object: 'chat.completion.chunk' as const, created: 1_700_000_000, model: 'gpt-4o' }
const text = (content: string, over: Partial<ChatChunk> = {}): ChatChunk => ({ ...base, choices: [{ index: 0, delta: { content }, finish_reason: null }], ...over })

function frames(s: string): unknown[] {
  return s.split('\n\n').filter(Boolean).map((f) => {
    expect(f.startsWith('data: ')).toBe(true)
    return JSON.parse(f.slice(6))
  })
}

describe('OpenAI stream encoder', () => {
  it('encodes text deltas (the fast path) exactly as JSON.stringify would, escapes included', () => {
    const enc = openaiInbound.createStreamEncoder('gpt-4o', false, undefined as never)
    for (const t of ['Hello', ' "quoted" \\ back\nslash', '\u2028 emoji 😀 \u0000', '']) {
      const c = text(t)
      const out = enc.chunk(c)
      expect(out.endsWith('\n\n')).toBe(true)
      expect(frames(out)).toEqual([JSON.parse(JSON.stringify(c))])
    }
  })

  it('the fast paths (text deltas, finish chunks) write byte for byte what JSON.stringify writes', () => {
    const enc = openaiInbound.createStreamEncoder('gpt-4o', false, undefined as never)
    const cases: ChatChunk[] = [
      text('Hello'), text(' "q" \\ \n 😀 \u2028'),
      { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] },
      { ...base, choices: [{ index: 0, delta: { content: '', role: 'assistant' }, finish_reason: null }] },
      { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, finish_reason: null }] },
      { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: 'hi' }, finish_reason: null }] },
      ...(['stop', 'length', 'tool_calls', 'content_filter'] as const).map((f): ChatChunk => ({ ...base, choices: [{ index: 0, delta: {}, finish_reason: f }] })),
      { ...base, id: 'msg_"odd"', model: 'claude\\x', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] },
    ]
    for (const c of cases) expect(enc.chunk(c)).toBe(`data: ${JSON.stringify(c)}\n\n`)
  })

  it('rebuilds the shared prefix when the id, created or model changes (a resumed stream)', () => {
    const enc = openaiInbound.createStreamEncoder('gpt-4o', false, undefined as never)
    enc.chunk(text('a'))
    const other = text('b', { id: 'chatcmpl-2', model: 'gpt-4o-mini', created: 1_700_000_001 })
    expect(frames(enc.chunk(other))).toEqual([other])
  })

  it('keeps every field of chunks outside the fast path (extra keys, tool calls, finish, usage)', () => {
    const enc = openaiInbound.createStreamEncoder('gpt-4o', true, undefined as never)
    const cases: ChatChunk[] = [
      { ...text('x'), system_fingerprint: 'fp_1' },
      { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] },
      { ...base, choices: [{ index: 0, delta: { tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'f', arguments: '' } }] }, finish_reason: null }] },
      { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] },
      { ...base, choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } },
      { ...base, choices: [{ index: 1, delta: { content: 'n=2' }, finish_reason: null }] },
    ]
    for (const c of cases) expect(frames(enc.chunk(c))).toEqual([JSON.parse(JSON.stringify(c))])
  })

  it('text-lane items: byte for byte the chunk they stand for, with the id, created and model of the last chunk', () => {
    const enc = openaiInbound.createStreamEncoder('gpt-4o', false, undefined as never)
    // Nothing encoded yet: no prefix to reuse, the caller encodes the chunk instead.
    expect(enc.text!('early')).toBeUndefined()
    enc.chunk({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] })
    for (const t of ['Hello', ' tok1', '', 'é 😀 \u2028']) expect(enc.text!(t)).toBe(enc.chunk(text(t)))
    const other = { id: 'msg_2', created: 1_700_000_005, model: 'claude-x' }
    enc.chunk(text('x', other))
    expect(enc.text!('y')).toBe(`data: ${JSON.stringify(text('y', other))}\n\n`)
    // A chunk without the usual fields forgets the prefix rather than reuse a wrong one.
    enc.chunk({ ...base, object: 'other' as never, choices: [] })
    expect(enc.text!('z')).toBeUndefined()
  })
})
