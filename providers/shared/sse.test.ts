/**
 * The SSE parser: WHATWG framing with LF, CRLF and CR line endings, however the bytes are split across reads
 * (the LF-only input takes a native-search path, CR input a character loop: both must agree).
 */
import { describe, expect, it } from 'vitest'
import { createSseParser, type SseEvent, type SseFastEvent } from './sse.ts'

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

  describe('fast lane (SseFastEvent)', () => {
    const LANE = /event: delta\ndata: \{"t":"[a-z ]*"\}\n\n/y
    const lane = (t: string): string => `event: delta\ndata: {"t":"${t}"}\n\n`
    const TEXT = [lane('one'), 'event: other\ndata: x\n\n', lane('two'), lane('three'), 'data: [DONE]\n\n', lane('four')].join('')

    /** Events in order, a lane match read back as the event the plain parser makes of its span. */
    function withLane(pieces: readonly string[], accept: (span: string) => boolean = () => true): { events: SseEvent[]; matched: number } {
      const events: SseEvent[] = []
      let matched = 0
      const fast: SseFastEvent = {
        pattern: LANE,
        onMatch(s, from, to) {
          const span = s.slice(from, to)
          if (!accept(span)) return false
          matched++
          events.push(...parse([span]).events)
          return true
        },
      }
      const p = createSseParser((e) => events.push(e), fast)
      for (const x of pieces) p.feed(x)
      p.end()
      return { events, matched }
    }

    it('whole events matched in place give the events the line-by-line parse gives, however the input is split', () => {
      const expected = parse([TEXT]).events
      expect(withLane([TEXT])).toEqual({ events: expected, matched: 4 })
      for (const pieces of splits(TEXT)) expect(withLane(pieces).events).toEqual(expected)
    })

    it('a declined match is read line by line', () => {
      const r = withLane([TEXT], (span) => !span.includes('two'))
      expect(r.events).toEqual(parse([TEXT]).events)
      expect(r.matched).toBe(3)
    })

    it('only at an event boundary, and never once an id was set (the last event id belongs to every later event)', () => {
      // A lane-shaped event whose lines follow another field of the same event is not a whole event.
      const mid = `event: x\n${lane('inside')}`
      expect(withLane([mid])).toEqual({ events: parse([mid]).events, matched: 0 })
      const withId = `id: 7\n\n${lane('after')}`
      const r = withLane([withId])
      expect(r.matched).toBe(0)
      expect(r.events).toEqual([{ event: 'delta', data: '{"t":"after"}', id: '7' }])
    })

    it('the pattern must be sticky', () => {
      expect(() => createSseParser(() => {}, { pattern: /x/, onMatch: () => true })).toThrow(/sticky/)
    })
  })
})

