/**
 * The SSE parser: WHATWG framing with LF, CRLF and CR line endings, however the bytes are split across reads
 * (the LF-only input takes a native-search path, CR input a character loop: both must agree).
 */
import { describe, expect, it } from 'vitest'
import { createNdjsonSplitter, createSseParser, EventTooLargeError, type SseEvent, type SseFastEvent } from './sse.ts'

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

  describe('a long line arriving in small pieces', () => {
    /** `s` as UTF-8 reads of `size` bytes. */
    const reads = (s: string, size: number): Buffer[] => {
      const b = Buffer.from(s)
      const out: Buffer[] = []
      for (let i = 0; i < b.length; i += size) out.push(b.subarray(i, i + size))
      return out
    }
    const LONG = 'a'.repeat(20_000)
    const TEXT = ['data: first', '', `data: ${LONG}`, `data: é${LONG}€`, '', `id: ${LONG}`, `data: ${LONG}`, '', 'data: last', '']

    for (const [name, eol] of [['LF', '\n'], ['CRLF', '\r\n'], ['CR', '\r']] as const) {
      it(`${name}: the events are those of the whole input, in reads of 1, 7, 64 and 4096 bytes, with and without a BOM`, () => {
        for (const bom of ['', '\ufeff']) {
          const text = bom + TEXT.join(eol)
          const whole = parse([text])
          expect(whole.events.map((e) => e.data.length)).toEqual([5, 40_003, 20_000, 4])
          expect(whole.pending).toBe(true)
          for (const size of [1, 7, 64, 4096]) expect(parse(reads(text, size))).toEqual(whole)
        }
      })
    }

    it('a CRLF split across reads after a long line is one line end', () => {
      const text = `data: ${LONG}\r\n\r\ndata: b\r\n\r\n`
      const at = text.indexOf('\r') + 1
      const pieces = [...reads(text.slice(0, at), 64), Buffer.from(text.slice(at))]
      expect(parse(pieces)).toEqual(parse([text]))
      expect(parse(pieces).events.map((e) => e.data)).toEqual([LONG, 'b'])
    })

    it('the fast lane sees the same events when a long event comes in pieces', () => {
      const LANE = /event: delta\ndata: \{"t":"[a-z ]*"\}\n\n/y
      const text = `event: delta\ndata: {"t":"${LONG}"}\n\nevent: delta\ndata: {"t":"short"}\n\n`
      const events: SseEvent[] = []
      let matched = 0
      const fast: SseFastEvent = { pattern: LANE, onMatch(s, from, to) { matched++; events.push(...parse([s.slice(from, to)]).events); return true } }
      const p = createSseParser((e) => events.push(e), fast)
      for (const r of reads(text, 64)) p.feed(r)
      p.end()
      expect(events).toEqual(parse([text]).events)
      expect(matched).toBeGreaterThan(0)
    })

    // Linear time, checked as liveness: a 4 MB line in 64-byte reads took minutes when every read re-scanned (and
    // re-copied) the unfinished line; read once, it takes milliseconds. The bound is the test's timeout.
    for (const [name, eol] of [['LF', '\n'], ['CRLF', '\r\n']] as const) {
      it(`${name}: a 4 MB event in 64-byte reads is read in linear time`, () => {
        const size = 4 << 20
        const events: SseEvent[] = []
        const p = createSseParser((e) => events.push(e))
        const piece = Buffer.alloc(64, 'a')
        p.feed(`data: `)
        for (let i = 0; i < size; i += 64) p.feed(piece)
        p.feed(`${eol}${eol}`)
        expect(p.end()).toBe(false)
        expect(events).toHaveLength(1)
        expect(events[0]!.data.length).toBe(size)
      }, 10_000)
    }
  })
})

describe('createNdjsonSplitter', () => {
  function split(pieces: readonly (string | Buffer)[]): { lines: string[]; pending: boolean } {
    const lines: string[] = []
    const s = createNdjsonSplitter((l) => lines.push(l))
    for (const x of pieces) s.feed(x)
    return { lines, pending: s.end() }
  }

  it('the lines of the whole input, however it is split, a long line included', () => {
    const long = `{"t":"${'é'.repeat(10_000)}"}`
    const text = `{"a":1}\n\n  ${long}  \r\n{"b":2}\n${long}`
    const whole = split([text])
    expect(whole).toEqual({ lines: ['{"a":1}', long, '{"b":2}', long], pending: true })
    const bytes = Buffer.from(text)
    for (const size of [1, 7, 64, 4096]) {
      const pieces: Buffer[] = []
      for (let i = 0; i < bytes.length; i += size) pieces.push(bytes.subarray(i, i + size))
      expect(split(pieces)).toEqual(whole)
    }
  })

  it('a 4 MB line in 64-byte reads is split in linear time', () => {
    const lines: string[] = []
    const s = createNdjsonSplitter((l) => lines.push(l))
    const piece = Buffer.alloc(64, 'a')
    for (let i = 0; i < 4 << 20; i += 64) s.feed(piece)
    s.feed('\n{}\n')
    expect(s.end()).toBe(false)
    expect(lines.map((l) => l.length)).toEqual([4 << 20, 2])
  }, 10_000)
})

describe('the bound on one event (maxEventChars)', () => {
  const LIMIT = 4096
  /** Feeds the reads; the index of the read that threw EventTooLargeError, or -1, and the events before it. */
  function run(make: (onEvent: (d: string) => void) => { feed(x: string): void }, reads: readonly string[]): { threwAt: number; events: string[] } {
    const events: string[] = []
    const p = make((d) => events.push(d))
    for (const [i, r] of reads.entries()) {
      try { p.feed(r) } catch (e) {
        expect(e).toBeInstanceOf(EventTooLargeError)
        expect((e as Error).message).toBe(`an event in the stream is longer than ${LIMIT} characters`)
        return { threwAt: i, events }
      }
    }
    return { threwAt: -1, events }
  }
  const sse = (onEvent: (d: string) => void) => createSseParser((e) => onEvent(e.data), undefined, LIMIT)
  const sseFast = (onEvent: (d: string) => void) => createSseParser((e) => onEvent(e.data), { pattern: /data: fast\n\n/y, onMatch: () => true }, LIMIT)
  const ndjson = (onEvent: (d: string) => void) => createNdjsonSplitter(onEvent, LIMIT)
  const pieces = (s: string, size: number): string[] => Array.from({ length: Math.ceil(s.length / size) }, (_, i) => s.slice(i * size, (i + 1) * size))

  for (const [name, make] of [['LF', sse], ['LF, fast lane on', sseFast]] as const) {
    it(`${name}: a line that never ends throws once it is past the bound, however it is read`, () => {
      const first = 'data: {"ok":1}\n\n'
      for (const size of [1, 100, 1500, 5000]) {
        const r = run(make, [first, ...pieces('data: ' + 'x'.repeat(LIMIT), size)])
        expect(r.events).toEqual(['{"ok":1}'])
        expect(r.threwAt).toBeGreaterThan(0)
        // Not before the line is past the bound: everything fed before the read that threw fits.
        const fed = [first, ...pieces('data: ' + 'x'.repeat(LIMIT), size)].slice(1, r.threwAt).join('').length
        expect(fed).toBeLessThanOrEqual(LIMIT)
      }
    })
  }

  it('data lines without the blank line that ends the event count together', () => {
    const line = `data: ${'y'.repeat(100)}\n`
    expect(run(sse, [line.repeat(40)]).threwAt).toBe(-1) // 4,000 characters of data: within the bound
    expect(run(sse, [line.repeat(41)]).threwAt).toBe(0)
    const r = run(sse, Array.from({ length: 100 }, () => line))
    expect(r.threwAt).toBe(40)
    expect(run(sse, [line.replaceAll('\n', '\r\n').repeat(41)]).threwAt).toBe(0) // the CR path too
  })

  it('the bound is per event: many events, each within it, are read whatever their total', () => {
    const ev = `data: ${'z'.repeat(LIMIT - 10)}\n\n`
    const r = run(sse, pieces(ev.repeat(20), 777))
    expect(r.threwAt).toBe(-1)
    expect(r.events).toHaveLength(20)
    expect(run(ndjson, pieces(`{"${'z'.repeat(LIMIT - 10)}":1}\n`.repeat(20), 777)).threwAt).toBe(-1)
  })

  it('NDJSON: a line that never ends throws past the bound, in small reads and in one', () => {
    const r = run(ndjson, ['{"ok":1}\n', ...pieces('{"x":"' + 'x'.repeat(LIMIT), 64)])
    expect(r.events).toEqual(['{"ok":1}'])
    expect(r.threwAt).toBeGreaterThan(0)
    expect(run(ndjson, ['{"ok":1}\n{"x":"' + 'x'.repeat(LIMIT)]).threwAt).toBe(0)
  })

  it('the default bound is MAX_EVENT_CHARS: a long event within it is read whole', () => {
    const events: SseEvent[] = []
    const p = createSseParser((e) => events.push(e))
    const piece = 'q'.repeat(1 << 20)
    p.feed('data: ')
    for (let i = 0; i < 15; i++) p.feed(piece)
    p.feed('\n\n')
    expect(events.map((e) => e.data.length)).toEqual([15 << 20])
  })
})
