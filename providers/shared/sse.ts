/**
 * The one incremental Server-Sent Events parser of the codebase (WHATWG EventSource framing).
 * Feed it buffers as they arrive; it calls `onEvent` once per complete event. It never re-scans
 * bytes it already consumed: a partial line is kept as a small string tail, and the pieces of a long line
 * that arrive without a line break are only collected (see LONG_LINE), so a line read in small pieces costs
 * its length once, not once per piece. Input without CR (LF line endings, the usual case) is split with
 * native searches; CR and CRLF take a character loop.
 */
import { StringDecoder } from 'node:string_decoder'
import { GatewayError } from '../../gateway/errors.ts'

export interface SseEvent {
  /** `event:` field, or 'message' when absent. */
  event: string
  data: string
  id?: string
}

/**
 * Optional fast lane for one kind of event a consumer sees over and over in one exact serialization (Anthropic's
 * text deltas): `pattern` (sticky) matches the whole event, its lines and the blank line that ends it, at an event
 * boundary; `onMatch` gets the input and the event's span instead of an SseEvent, and returns false to decline
 * (then the event is read line by line as usual). Only used where the whole event is in one read.
 */
export interface SseFastEvent {
  readonly pattern: RegExp
  onMatch(s: string, from: number, to: number): boolean
}

export interface SseParser {
  feed(chunk: Buffer | string): void
  /** Flushes a final event that was not terminated by a blank line (a stream cut at EOF). Returns true if one was pending. */
  end(): boolean
}

/**
 * A long unfinished line (at least this long) is held as its first part, `tail`, and the pieces that came after it
 * without a line break, in an array joined once when the line's end arrives: appending each piece to the tail would
 * scan (and, in the end, copy) the whole line again per piece, quadratic in a long line read in small pieces. A shorter
 * one (an event split across two reads, the usual case) is joined to the next piece and read again, as searching the
 * piece first would only add a scan: at most this many characters are read again per piece.
 */
const LONG_LINE = 1024

/**
 * The longest event (its data lines, and the line not yet ended) a parser holds, in characters, and the longest NDJSON
 * line: past it, feed throws EventTooLargeError. No provider sends events anywhere near this long (text and argument
 * deltas are a few bytes to a few kilobytes); without a bound, an upstream that never ends its event (one endless line,
 * or data lines without the blank line) would grow the gateway's memory until the idle timeout, and a fast one
 * indefinitely.
 */
export const MAX_EVENT_CHARS = 16 * 1024 * 1024

/** Thrown by feed when an event (or an NDJSON line) grows past the parser's limit; the parser is unusable after. */
export class EventTooLargeError extends Error {
  readonly limit: number
  constructor(limit: number) {
    super(`an event in the stream is longer than ${limit} characters`)
    this.limit = limit
  }
}

/** The gateway's error for a stream whose event outgrew the parser (EventTooLargeError), as a cut stream is reported. */
export function eventTooLarge(provider: string, limit = MAX_EVENT_CHARS): GatewayError {
  return new GatewayError('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', { provider, reason: `an event in the stream is longer than ${limit} characters` }, { details: 'upstream.event_too_large' })
}

/**
 * Feeds one read to a parser; the gateway's error (eventTooLarge) when an event outgrew it, else undefined. The
 * stream ends there: the parser is not fed again.
 */
export function feedBounded(parser: SseParser, chunk: Buffer, provider: string): GatewayError | undefined {
  try {
    parser.feed(chunk)
    return undefined
  } catch (e) {
    if (e instanceof EventTooLargeError) return eventTooLarge(provider, e.limit)
    throw e
  }
}

/** The held line: `tail`, or the tail and the pieces after it, joined. */
function heldLine(tail: string, pieces: string[] | undefined): string {
  return pieces === undefined ? tail : pieces.join('')
}

/**
 * `onJoined`, when given, is called instead of `onEvent` for an event of more than one data line (its lines joined
 * with LF, as the standard says): a consumer that writes events out again (the pass-through tap's re-framing) learns
 * so without searching every event's data for a line break.
 */
export function createSseParser(onEvent: (ev: SseEvent) => void, fast?: SseFastEvent, maxEventChars = MAX_EVENT_CHARS, onJoined: (ev: SseEvent) => void = onEvent): SseParser {
  const fastPattern = fast?.pattern
  if (fastPattern && !fastPattern.sticky) throw new Error('createSseParser: the fast event pattern must be sticky (y)')
  const decoder = new StringDecoder('utf8')
  let tail = ''
  /** The held line's pieces after `tail` (LONG_LINE), `tail` first; undefined when it is all in `tail`. */
  let pieces: string[] | undefined
  /** The characters held in `tail` and `pieces`. */
  let held = 0
  /** The characters of the event's data lines so far. */
  let dataChars = 0
  let skipLf = false
  let event = ''
  /** The event's first data line, and the further ones (rare: no array per event in the usual case). */
  let data: string | undefined
  let more: string[] | undefined
  let id: string | undefined
  let sawField = false
  let first = true

  function dispatch(): void {
    if (sawField && data !== undefined) {
      const ev: SseEvent = { event: event || 'message', data: more === undefined ? data : [data, ...more].join('\n') }
      if (id !== undefined) ev.id = id
      if (more === undefined) onEvent(ev)
      else onJoined(ev)
    }
    event = ''
    data = undefined
    more = undefined
    dataChars = 0
    sawField = false
  }

  function pushData(v: string): void {
    if (data === undefined) data = v
    else (more ??= []).push(v)
    dataChars += v.length
    if (dataChars > maxEventChars) throw new EventTooLargeError(maxEventChars)
    sawField = true
  }

  /** Holds s[from..] as the line not yet ended. */
  function hold(s: string, from: number): void {
    held = s.length - from
    if (held + dataChars > maxEventChars) throw new EventTooLargeError(maxEventChars)
    tail = s.slice(from)
  }

  /** The line s[from, to) (without its terminator). The usual fields are read in place, without slicing the line. */
  function line(s: string, from: number, to: number): void {
    if (from === to) { dispatch(); return }
    const c0 = s.charCodeAt(from)
    if (c0 === 58 /* ':' comment */) return
    // The two fields every stream is made of, in their usual spelling. (A match cannot run past the line: its
    // terminator is neither ':' nor ' '.)
    if (c0 === 100 /* d */ && s.startsWith('data: ', from)) { pushData(s.slice(from + 6, to)); return }
    if (c0 === 101 /* e */ && s.startsWith('event: ', from)) { event = s.slice(from + 7, to); sawField = true; return }
    const l = s.slice(from, to)
    const colon = l.indexOf(':')
    let field: string
    let value: string
    if (colon === -1) { field = l; value = '' } else {
      field = l.slice(0, colon)
      value = l.charCodeAt(colon + 1) === 32 ? l.slice(colon + 2) : l.slice(colon + 1)
    }
    switch (field) {
      case 'data': pushData(value); break
      case 'event': event = value; sawField = true; break
      case 'id': id = value; break
      default: break // retry and unknown fields are ignored
    }
  }

  return {
    feed(chunk) {
      let s = typeof chunk === 'string' ? chunk : decoder.write(chunk)
      if (first && s.length > 0) { first = false; if (s.charCodeAt(0) === 0xfeff) s = s.slice(1) }
      let start = 0
      if (skipLf && s.length > 0) { skipLf = false; if (s.charCodeAt(0) === 10) start = 1 }
      if (tail !== '') {
        // Inside a long line begun in an earlier read: a piece that does not end it is only collected (nothing held is
        // scanned again); one that does is read after the whole line, joined once.
        if (tail.length >= LONG_LINE && s.indexOf('\n', start) === -1 && s.indexOf('\r', start) === -1) {
          if (start < s.length) {
            held += s.length - start
            if (held + dataChars > maxEventChars) throw new EventTooLargeError(maxEventChars)
            ;(pieces ??= [tail]).push(s.slice(start))
          }
          return
        }
        s = heldLine(tail, pieces) + s.slice(start)
        start = 0
        tail = ''
        pieces = undefined
        held = 0
      }
      const n = s.length
      if (s.indexOf('\r', start) === -1) {
        // LF line endings only (what every provider sends): native searches instead of a loop over every character.
        for (;;) {
          // At an event boundary (no field of the next event read yet), the fast lane's whole event, if it is one.
          if (fastPattern !== undefined && !sawField && data === undefined && id === undefined) {
            fastPattern.lastIndex = start
            if (fastPattern.test(s) && fast!.onMatch(s, start, fastPattern.lastIndex)) { start = fastPattern.lastIndex; continue }
          }
          const i = s.indexOf('\n', start)
          if (i === -1) break
          line(s, start, i)
          start = i + 1
        }
        if (start < n) hold(s, start)
        return
      }
      for (let i = start; i < n; i++) {
        const c = s.charCodeAt(i)
        if (c === 10 || c === 13) {
          line(s, start, i)
          if (c === 13) {
            if (i + 1 < n) { if (s.charCodeAt(i + 1) === 10) i++ } else skipLf = true
          }
          start = i + 1
        }
      }
      if (start < n) hold(s, start)
    },
    end() {
      const last = heldLine(tail, pieces) + decoder.end()
      tail = ''
      pieces = undefined
      held = 0
      if (last !== '') line(last, 0, last.length)
      const pending = sawField && data !== undefined
      dispatch()
      return pending
    },
  }
}

/**
 * Splits newline-delimited JSON (Ollama's streaming format) incrementally; calls `onLine`
 * with each non-empty line.
 */
export function createNdjsonSplitter(onLine: (line: string) => void, maxLineChars = MAX_EVENT_CHARS): SseParser {
  const decoder = new StringDecoder('utf8')
  let tail = ''
  /** The held line's pieces after `tail` (LONG_LINE), `tail` first; undefined when it is all in `tail`. */
  let pieces: string[] | undefined
  /** The characters held in `tail` and `pieces`. */
  let held = 0
  return {
    feed(chunk) {
      let s = typeof chunk === 'string' ? chunk : decoder.write(chunk)
      // Only the new piece is searched: a piece without a newline is held (a long line's pieces collected), the held
      // line is joined once.
      let i = s.indexOf('\n')
      if (i === -1) {
        held += s.length
        if (held > maxLineChars) throw new EventTooLargeError(maxLineChars)
        if (tail.length < LONG_LINE) tail += s
        else (pieces ??= [tail]).push(s)
        return
      }
      if (tail !== '') {
        const l = heldLine(tail, pieces)
        s = l + s
        i += l.length
        tail = ''
        pieces = undefined
      }
      held = 0
      let start = 0
      for (; i !== -1; i = s.indexOf('\n', start)) {
        const l = s.slice(start, i).trim()
        if (l !== '') onLine(l)
        start = i + 1
      }
      held = s.length - start
      if (held > maxLineChars) throw new EventTooLargeError(maxLineChars)
      tail = s.slice(start)
    },
    end() {
      const l = (heldLine(tail, pieces) + decoder.end()).trim()
      tail = ''
      pieces = undefined
      held = 0
      if (l !== '') { onLine(l); return true }
      return false
    },
  }
}
