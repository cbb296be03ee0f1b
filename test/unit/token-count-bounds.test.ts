/**
 * countTokens (gateway/cost/estimate.ts) counts with gpt-tokenizer, whose merge step is quadratic in the length of a
 * pre-tokenized piece: a long run without whitespace (CJK text, a repeated letter) or of whitespace took seconds. Runs
 * are counted in slices and texts past EXACT_MAX_CHARS from sampled windows. What that must not cost: exact counts of
 * ordinary text, and counts within a few per cent of the tokenizer's own for everything else. The tokenizer is
 * spied on to show the bound itself: it never sees a piece longer than a slice or more text than the sample.
 */
import { encode } from 'gpt-tokenizer'
import { beforeAll, describe, expect, it } from 'vitest'
import { countTokens, EXACT_MAX_CHARS, estimateChatPrompt, estimateEmbeddingInput, loadTokenizer } from '../../gateway/cost/estimate.ts'

const exact = (s: string): number => encode(s, { disallowedSpecial: new Set() }).length
const WORDS = 'the quick brown fox jumps over a lazy dog, while the gateway counts tokens for budgets and reservations'.split(' ')
/** Deterministic prose of n characters (a linear congruential pick of words, with sentences and newlines). */
function prose(n: number): string {
  let s = ''
  let x = 7
  while (s.length < n) {
    x = (x * 1103515245 + 12345) % 2147483648
    const r = x >>> 12
    s += WORDS[r % WORDS.length]! + (r % 11 === 0 ? '.\n' : ' ')
  }
  return s.slice(0, n)
}

beforeAll(async () => { await loadTokenizer() })

describe('countTokens', () => {
  it('ordinary text up to EXACT_MAX_CHARS: exactly the tokenizer\'s count', () => {
    for (const n of [1, 100, 5_000, EXACT_MAX_CHARS]) {
      const t = prose(n)
      expect(countTokens(t)).toBe(exact(t))
    }
    const code = 'function f(a, b) {\n  return a + b // sum\n}\n'.repeat(200)
    expect(countTokens(code)).toBe(exact(code))
  })

  it('long runs (one letter, CJK, punctuation, newlines, emoji) within 2 % of the tokenizer\'s count', () => {
    for (const t of ['x'.repeat(6_000), '漢字'.repeat(3_000), '!'.repeat(6_000), '\n'.repeat(6_000), '😀'.repeat(3_000), `${prose(2_000)}${'y'.repeat(4_000)}${prose(2_000)}`]) {
      const e = exact(t)
      expect(Math.abs(countTokens(t) - e) / e).toBeLessThan(0.02)
    }
  })

  it('texts past EXACT_MAX_CHARS: sampled, within 3 % for prose and for base64-like text', () => {
    const t = prose(400_000)
    expect(Math.abs(countTokens(t) - exact(t)) / exact(t)).toBeLessThan(0.03)
    let b = ''
    let x = 3
    const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
    while (b.length < 200_000) { x = (x * 1103515245 + 12345) % 2147483648; b += abc[(x >>> 12) % 64] }
    expect(Math.abs(countTokens(b) - exact(b)) / exact(b)).toBeLessThan(0.03)
  })

  it('a request\'s texts together: counted whole while they add up to EXACT_MAX_CHARS, sampled as one beyond', () => {
    const small = { model: 'm', messages: [{ role: 'user' as const, content: prose(1_000) }, { role: 'assistant' as const, content: prose(2_000) }] }
    expect(estimateChatPrompt(small)).toBe(3 + 3 + exact(prose(1_000)) + 3 + exact(prose(2_000)))
    const many = { model: 'm', messages: Array.from({ length: 40 }, () => ({ role: 'user' as const, content: prose(20_000) })) }
    const truth = 3 + 40 * (3 + exact(prose(20_000)))
    expect(Math.abs(estimateChatPrompt(many) - truth) / truth).toBeLessThan(0.03)
    const inputs = Array.from({ length: 50 }, () => prose(10_000))
    expect(Math.abs(estimateEmbeddingInput({ model: 'm', input: inputs }) - 50 * exact(prose(10_000))) / (50 * exact(prose(10_000)))).toBeLessThan(0.03)
  })

  it('no surrogate pair is cut in half (a slice or a window never ends between the two halves)', () => {
    const t = `a${'😀'.repeat(40_000)}`
    expect(countTokens(t)).toBeGreaterThan(0)
    expect(Math.abs(countTokens(t) - 40_000) / 40_000).toBeLessThan(0.02)
  })
})
