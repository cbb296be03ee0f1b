/**
 * cache: the LRU (entries, bytes, TTL, recency), capturing complete answers only (JSON, pass-through
 * bytes, SSE), and replaying an entry as a stream. Through the server: test/cache/.
 */
import { describe, expect, it } from 'vitest'
import type { RawSink, RawUpstream, UpstreamResponse } from '../../gateway/pipeline/types.ts'
import type { ChatChunk, ChatResponse } from '../../providers/types.ts'
import { ChunkAggregator } from '../../providers/shared/aggregate.ts'
import { capture, complete, replayStream } from './capture.ts'
import { MemoryCacheStore } from './store.ts'

const response: ChatResponse = {
  id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: 'gpt-4o-mini',
  choices: [{ index: 0, message: { role: 'assistant', content: 'hello there' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
}

function rawOf(parts: string[], status = 200): RawUpstream {
  return {
    status, headers: {},
    consume(sink: RawSink) { for (const p of parts) sink.onData(Buffer.from(p)); sink.onEnd() },
    resume() {}, abort() {},
  }
}

function drain(up: UpstreamResponse): string {
  let out = ''
  if (up.kind === 'raw') up.raw.consume({ onData: (b) => { out += b.toString(); return true }, onEnd() {}, onError() {} })
  return out
}

describe('MemoryCacheStore', () => {
  it('evicts the least recently used past maxEntries, and by bytes', () => {
    const s = new MemoryCacheStore(2, 1_000_000)
    s.setSync('a', 'A', 60_000, 0)
    s.setSync('b', 'B', 60_000, 0)
    expect(s.getSync('a', 1)).toBe('A') // a is now the most recent
    s.setSync('c', 'C', 60_000, 2)
    expect(s.getSync('b', 3)).toBeUndefined()
    expect(s.getSync('a', 3)).toBe('A')
    const small = new MemoryCacheStore(100, 1024)
    small.setSync('x', 'x'.repeat(300), 60_000, 0)
    small.setSync('y', 'y'.repeat(300), 60_000, 0)
    expect(small.getSync('x', 0)).toBeUndefined()
    expect(small.bytes).toBeLessThanOrEqual(1024)
    small.setSync('huge', 'z'.repeat(2000), 60_000, 0)
    expect(small.getSync('huge', 0)).toBeUndefined()
  })

  it('expires entries at their TTL', () => {
    const s = new MemoryCacheStore(10, 1_000_000)
    s.setSync('k', 'v', 1000, 0)
    expect(s.getSync('k', 999)).toBe('v')
    expect(s.getSync('k', 1000)).toBeUndefined()
    expect(s.size).toBe(0)
  })
})

describe('capture', () => {
  it('stores complete JSON answers only', () => {
    const stored: ChatResponse[] = []
    capture({ kind: 'json', response }, false, 1e6, (r) => stored.push(r))
    capture({ kind: 'json', response: { ...response, choices: [{ ...response.choices[0]!, finish_reason: null }] } }, false, 1e6, (r) => stored.push(r))
    expect(stored).toEqual([response])
    expect(complete({ object: 'list' })).toBe(false)
  })

  it('taps pass-through bytes without changing them; over-size or non-JSON bodies are not stored', () => {
    const stored: ChatResponse[] = []
    const text = JSON.stringify(response)
    const up = capture({ kind: 'raw', raw: rawOf([text.slice(0, 10), text.slice(10)]) }, false, 1e6, (r) => stored.push(r))
    expect(drain(up)).toBe(text)
    expect(stored).toEqual([response])
    drain(capture({ kind: 'raw', raw: rawOf([text]) }, false, 20, (r) => stored.push(r)))
    drain(capture({ kind: 'raw', raw: rawOf(['not json']) }, false, 1e6, (r) => stored.push(r)))
    expect(stored).toHaveLength(1)
  })

  it('folds a pass-through SSE stream into a response; a stream cut before its finish is not stored', () => {
    const stored: ChatResponse[] = []
    const chunk = (delta: Record<string, unknown>, finish: string | null, extra: Record<string, unknown> = {}): string =>
      `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, delta, finish_reason: finish }], ...extra })}\n\n`
    const events = [chunk({ role: 'assistant', content: '' }, null), chunk({ content: 'hello' }, null), chunk({ content: ' there' }, null), chunk({}, 'stop')]
    const usage = `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', choices: [], usage: response.usage })}\n\n`
    drain(capture({ kind: 'raw', raw: rawOf([...events, usage, 'data: [DONE]\n\n']) }, true, 1e6, (r) => stored.push(r)))
    expect(stored).toHaveLength(1)
    expect(stored[0]).toMatchObject({ object: 'chat.completion', choices: [{ message: { content: 'hello there' }, finish_reason: 'stop' }], usage: response.usage })
    drain(capture({ kind: 'raw', raw: rawOf(events.slice(0, 2)) }, true, 1e6, (r) => stored.push(r)))
    expect(stored).toHaveLength(1)
  })
})

describe('replayStream', () => {
  it('replays thinking blocks (Anthropic extended thinking) before the content, so a cached turn can be continued', async () => {
    const blocks = [{ type: 'thinking' as const, thinking: 'Hmm.', signature: 'c2ln' }, { type: 'redacted_thinking' as const, data: 'ZGF0YQ==' }]
    const thought: ChatResponse = { ...response, choices: [{ index: 0, message: { role: 'assistant', content: 'Hi', thinking_blocks: blocks }, finish_reason: 'stop' }] }
    const agg = new ChunkAggregator()
    for await (const c of replayStream(thought)) agg.add(c)
    expect(agg.toResponse().choices[0]!.message).toEqual(thought.choices[0]!.message)
  })

  it('replays content, tool calls, finish and usage; final is the response', async () => {
    const withTools: ChatResponse = { ...response, choices: [{ index: 0, message: { role: 'assistant', content: null, tool_calls: [{ id: 't1', type: 'function', function: { name: 'f', arguments: '{}' } }] }, finish_reason: 'tool_calls' }] }
    const chunks: ChatChunk[] = []
    const s = replayStream(withTools)
    for await (const c of s) chunks.push(c)
    expect(chunks.map((c) => c.choices[0]?.finish_reason ?? (c.usage ? 'usage' : null))).toEqual([null, null, 'tool_calls', 'usage'])
    expect(chunks[1]!.choices[0]!.delta.tool_calls![0]).toMatchObject({ index: 0, id: 't1', function: { name: 'f', arguments: '{}' } })
    expect(await s.final).toBe(withTools)
  })
})
