import { afterEach, describe, expect, it, vi } from 'vitest'
import { BodyKeeper, KEEP_END_BYTES, KEEP_WHOLE_BYTES, usageFromBody } from '../../gateway/usage-extract.ts'

describe('usage, finish reason and model from a pass-through body', () => {
  const usage = { prompt_tokens: 13, completion_tokens: 12, total_tokens: 25, prompt_tokens_details: { cached_tokens: 4 }, completion_tokens_details: { reasoning_tokens: 2 } }
  const pad = 'word '.repeat(400)
  afterEach(() => { vi.restoreAllMocks() })

  /** The lengths of the strings JSON.parse was given while `fn` ran. */
  function parsedLengths(fn: () => void): number[] {
    const spy = vi.spyOn(JSON, 'parse')
    try {
      fn()
      return spy.mock.calls.map((c) => String(c[0]).length)
    } finally {
      spy.mockRestore()
    }
  }

  it('past 1 KiB, reads the usage object and the finish reason without parsing the whole body', () => {
    const body = JSON.stringify({ id: 'x', model: 'gpt-4o-2024-08-06', choices: [{ index: 0, message: { role: 'assistant', content: `${pad} the "usage": {"prompt_tokens": 999} is in a string` }, finish_reason: 'length' }], usage })
    let got: ReturnType<typeof usageFromBody> | undefined
    const lengths = parsedLengths(() => { got = usageFromBody([Buffer.from(body)]) })
    expect(got).toEqual({ usage, finishReason: 'length', model: 'gpt-4o-2024-08-06', serviceTier: null })
    expect(Math.max(...lengths)).toBeLessThan(300)
  })

  it('copes with whitespace, usage before choices, and a body split in parts', () => {
    const body = `{\n  "usage" : ${JSON.stringify(usage, null, 2)},\n  "choices": [{"finish_reason": "stop", "message": {"content": "${pad}"}}]\n}`
    const mid = Math.floor(body.length / 2)
    let got: ReturnType<typeof usageFromBody> | undefined
    const lengths = parsedLengths(() => { got = usageFromBody([Buffer.from(body.slice(0, mid)), Buffer.from(body.slice(mid))]) })
    expect(got).toEqual({ usage, finishReason: 'stop', model: null, serviceTier: null })
    expect(Math.max(...lengths)).toBeLessThan(400)
  })

  it('parses a small body whole, once', () => {
    const body = JSON.stringify({ model: 'gpt-4o-2024-08-06', choices: [{ finish_reason: 'stop' }], usage })
    const lengths = parsedLengths(() => { expect(usageFromBody([Buffer.from(body)])).toEqual({ usage, finishReason: 'stop', model: 'gpt-4o-2024-08-06', serviceTier: null }) })
    expect(lengths).toEqual([body.length])
    expect(usageFromBody([Buffer.from('{"choices":[]}')])).toEqual({ usage: undefined, finishReason: null, model: null, serviceTier: null })
    expect(usageFromBody([Buffer.from('not json')])).toEqual({ usage: undefined, finishReason: null, model: null, serviceTier: null })
  })

  it('reads the service tier that served the answer, parsed whole and in place', () => {
    const small = JSON.stringify({ model: 'gpt-4o-2024-08-06', choices: [{ finish_reason: 'stop' }], usage, service_tier: 'priority' })
    expect(usageFromBody([Buffer.from(small)])).toEqual({ usage, finishReason: 'stop', model: 'gpt-4o-2024-08-06', serviceTier: 'priority' })
    // Past 1 KiB: the last key (OpenAI writes it after the choices), not one inside the answer's text.
    const body = JSON.stringify({ model: 'o3', choices: [{ message: { content: `${pad} "service_tier": "scale" in a string` }, finish_reason: 'stop' }], usage, service_tier: 'flex', system_fingerprint: null })
    let got: ReturnType<typeof usageFromBody> | undefined
    const lengths = parsedLengths(() => { got = usageFromBody([Buffer.from(body)]) })
    expect(got).toEqual({ usage, finishReason: 'stop', model: 'o3', serviceTier: 'flex' })
    expect(Math.max(...lengths)).toBeLessThan(300)
  })

  it('keeps an embeddings usage (no completion_tokens) without parsing a large body whole', () => {
    const body = JSON.stringify({ object: 'list', data: [{ object: 'embedding', index: 0, embedding: Array.from({ length: 300 }, (_, i) => i / 7) }], usage: { prompt_tokens: 5, total_tokens: 5 } })
    let got: ReturnType<typeof usageFromBody> | undefined
    const lengths = parsedLengths(() => { got = usageFromBody([Buffer.from(body)]) })
    expect(got).toEqual({ usage: { prompt_tokens: 5, total_tokens: 5 }, finishReason: null, model: null, serviceTier: null })
    expect(Math.max(...lengths)).toBeLessThan(100)
  })

  it('past 1 KiB, falls back to parsing the whole body when there is no usable usage object', () => {
    for (const tail of ['', ',"usage":null', ',"usage":{"prompt_tokens":"x"}', ',"usage":{"completion_tokens":1']) {
      const body = `{"choices":[{"finish_reason":"stop","message":{"content":"${pad}"}}]${tail}}`
      const lengths = parsedLengths(() => { usageFromBody([Buffer.from(body)]) })
      expect(lengths, tail).toContain(body.length)
    }
    const broken = `{"choices":[{"finish_reason":"stop","message":{"content":"${pad}"}}],"usage":{"prompt_tokens":1`
    expect(usageFromBody([Buffer.from(broken)])).toEqual({ usage: undefined, finishReason: null, model: null, serviceTier: null })
    const odd = `{"choices":[{"finish_reason":"stop","message":{"content":"${pad}"}}],"usage":{"prompt_tokens":"x"}}`
    expect(usageFromBody([Buffer.from(odd)])).toEqual({ usage: { prompt_tokens: 'x' }, finishReason: 'stop', model: null, serviceTier: null })
  })
})

describe('BodyKeeper: what of a pass-through body is kept for usageFromBody', () => {
  const usage = { prompt_tokens: 4096, total_tokens: 4096 }
  /** An embeddings answer as OpenAI writes it (two-space indentation, a line per number), `n` vectors of `dims`. */
  function embeddingsBody(n: number, dims: number): Buffer {
    const data = Array.from({ length: n }, (_, i) => ({ object: 'embedding', index: i, embedding: Array.from({ length: dims }, (_, k) => Math.sin(i * dims + k) / 7) }))
    return Buffer.from(JSON.stringify({ object: 'list', data, model: 'text-embedding-3-large', usage }, null, 2))
  }
  /** The body in reads of the given sizes, in turn. */
  function reads(body: Buffer, sizes: readonly number[]): Buffer[] {
    const out: Buffer[] = []
    for (let at = 0, k = 0; at < body.length; k++) { const n = sizes[k % sizes.length]!; out.push(body.subarray(at, at + n)); at += n }
    return out
  }

  it('an embeddings answer past 1 MiB: its head and tail only, and the same usage and model read from them', () => {
    const body = embeddingsBody(300, 1536) // about 10 MB
    expect(body.length).toBeGreaterThan(8 * KEEP_WHOLE_BYTES)
    const whole = usageFromBody([body])
    expect(whole.usage).toEqual(usage)
    for (const sizes of [[65_536], [1, 7, 4096, 31], [300_000]]) {
      const k = new BodyKeeper(true)
      let most = 0
      for (const r of reads(body, sizes)) { k.add(r); most = Math.max(most, k.kept) }
      // Never more than the head, the tail and the pieces of one join (TAIL_PIECES reads), or the first MiB and a read.
      expect(most).toBeLessThanOrEqual(KEEP_WHOLE_BYTES + Math.max(...sizes))
      expect(k.kept).toBeLessThanOrEqual(2 * KEEP_END_BYTES + 64 * Math.max(...sizes))
      const parts = k.parts()
      expect(Buffer.concat(parts).subarray(0, KEEP_END_BYTES)).toEqual(body.subarray(0, KEEP_END_BYTES))
      expect(Buffer.concat(parts).subarray(-KEEP_END_BYTES)).toEqual(body.subarray(-KEEP_END_BYTES))
      expect(usageFromBody(parts)).toEqual(whole)
    }
  })

  it('up to 1 MiB, and any chat answer, are kept whole (the estimate reads a chat answer\'s text)', () => {
    const small = embeddingsBody(20, 1536)
    expect(small.length).toBeLessThan(KEEP_WHOLE_BYTES)
    const k = new BodyKeeper(true)
    for (const r of reads(small, [1000])) k.add(r)
    expect(Buffer.concat(k.parts())).toEqual(small)
    const big = embeddingsBody(100, 1536)
    const chat = new BodyKeeper(false)
    for (const r of reads(big, [65_536])) chat.add(r)
    expect(Buffer.concat(chat.parts())).toEqual(big)
    expect(chat.kept).toBe(big.length)
  })
})
