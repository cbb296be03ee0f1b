/**
 * The SSE parser: WHATWG framing with LF, CRLF and CR line endings, however the bytes are split across reads
 * (the LF-only input takes a native-search path, CR input a character loop: both must agree).
 */
import { describe, expect, it } from 'vitest'
import { createSseParser, type SseEvent } from './sse.ts'

function parse(pieces: readonly (string | Buffer)[]): { events: SseEvent[]; pending: boolean } {
  const events: SseEvent[] = []
  const p = createSseParser((e) => events.push(e))
  for (const x of pieces) p.feed(x)
  const pending = p.end()
  return { events, pending }
}

/** Every split of `s` into two reads, plus one byte at a time. */
function splits(s: string): string[][] {
  const out: string[][] = [[s], [...s]]
  for (let i = 1; i < s.length; i++) out.push([s.slice(0, i), s.slice(i)])
  return out
}

const STREAM = [
  ': a comment',
  'event: message_start',
  'data: {"type":"message_start"}',
  '',
  'data:no-space',
  'data:  two spaces',
  '',
  'id: 42',
  'event: delta',
  'data: line one',
  'data: line two',
  'retry: 1000',
  'unknown: field',
  '',
  'data',
  '',
  'event: empty-data',
  '',
  'data: [DONE]',
  '',
]

const EXPECTED: SseEvent[] = [
  { event: 'message_start', data: '{"type":"message_start"}' },
  { event: 'message', data: 'no-space\n two spaces' },
  { event: 'delta', data: 'line one\nline two', id: '42' },
  { event: 'message', data: '', id: '42' },
  // `event:` alone with no data dispatches nothing
  { event: 'message', data: '[DONE]', id: '42' },
]

describe('createSseParser', () => {
  for (const [name, eol] of [['LF', '\n'], ['CRLF', '\r\n'], ['CR', '\r']] as const) {
    it(`${name} line endings, split at every position and byte by byte`, () => {
      const text = STREAM.join(eol) + eol
      for (const pieces of splits(text)) {
        const { events, pending } = parse(pieces)
        expect(events).toEqual(EXPECTED)
        expect(pending).toBe(false)
      }
    })
  }

  it('mixed line endings and a UTF-8 character split across two buffers', () => {
    const bytes = Buffer.from('data: é€😀\r\n\ndata: b\r\rdata: c\n\n', 'utf8')
    for (let i = 1; i < bytes.length; i++) {
      const { events } = parse([bytes.subarray(0, i), bytes.subarray(i)])
      expect(events.map((e) => e.data)).toEqual(['é€😀', 'b', 'c'])
    }
  })

  it('a leading BOM is skipped; an unterminated last event is flushed by end() and reported', () => {
    const { events, pending } = parse(['\ufeffdata: x\n\ndata: cut'])
    expect(events.map((e) => e.data)).toEqual(['x', 'cut'])
    expect(pending).toBe(true)
  })
})
