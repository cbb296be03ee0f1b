import { describe, expect, it } from 'vitest'
import { msText, ObjectText, responseText, str, usageText } from '../../plugins/execution-log/json.ts'

describe('execution-log JSON text', () => {
  it('msText writes what String(Math.round(v * 1000) / 1000) writes', () => {
    const values = [0, 0.0004, 0.0005, 0.001, 0.05, 0.456, 1, 1.5, 12.3456, 999.9995, 1000, 123456.789, 3e9 + 0.25, -0.2, -5, 1e300, NaN, Infinity]
    for (let i = 0; i < 2000; i++) values.push(Math.random() * 10 ** (i % 7))
    for (const v of values) {
      const r = Math.round(v * 1000) / 1000
      expect(msText(v), String(v)).toBe(Number.isFinite(r) ? String(r) : 'null')
    }
  })

  it('writes valid JSON for any string, leaves out null keys, and keeps numbers and booleans', () => {
    for (const s of ['plain', 'with "quotes"', 'back\\slash', 'line\nbreak', '\u0000', 'é😀', 'x'.repeat(300)]) expect(JSON.parse(str(s))).toBe(s)
    const t = new ObjectText().str('a', 'x').str('b', null).num('c', 1.5).num('d', NaN).bool('e', false).ms('f', 2.0004).any('g', { h: [1] }).any('i', undefined).toString()
    expect(JSON.parse(t)).toEqual({ a: 'x', c: 1.5, d: null, e: false, f: 2, g: { h: [1] } })
    expect(new ObjectText().toString()).toBe('{}')
    expect(JSON.parse(responseText(200, 'stop', { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 }, null))).toEqual({ status: 200, finish_reason: 'stop', usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 }, error: null })
    // Zero-valued detail counters are left out; the totals and anything non-zero stay.
    const openai = { prompt_tokens: 7, completion_tokens: 0, total_tokens: 7, prompt_tokens_details: { audio_tokens: 0, cached_tokens: 3 }, completion_tokens_details: { audio_tokens: 0, reasoning_tokens: 0 }, extra: 'x', n: null }
    expect(JSON.parse(usageText(openai as never))).toEqual({ prompt_tokens: 7, completion_tokens: 0, total_tokens: 7, prompt_tokens_details: { cached_tokens: 3 }, extra: 'x', n: null })
    expect(JSON.parse(responseText(502, null, undefined, { code: 'MCP_ERR_UPSTREAM', details: 'upstream "x"' }))).toEqual({ status: 502, finish_reason: null, usage: null, error: { code: 'MCP_ERR_UPSTREAM', details: 'upstream "x"' } })
  })
})
