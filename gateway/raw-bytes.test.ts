/**
 * takeRead and takeHeld, the pass-through's held bytes: however an upstream's answer is split into reads, the client
 * gets the same bytes, credentials masked, a stream's events only whole (until one passes MAX_PARTIAL_EVENT); and a
 * long event read in small pieces is neither concatenated nor scanned again per read.
 */
import { describe, expect, it } from 'vitest'
import { createHeldBytes, heldLength, maskTail, partialEventLength, redactChunk, redactionOf, takeHeld, takeRead, type Redaction } from './raw-bytes.ts'

const KEY = `sk-ant-api03-${'k'.repeat(40)}`
const R = redactionOf({ headers: { 'x-api-key': KEY } })!
const MASKED = Buffer.from(redactChunk(Buffer.from(KEY), R)).toString()

/** `s` in reads of `size` bytes, or at the given offsets. */
function reads(s: string | Buffer, cut: number | readonly number[]): Buffer[] {
  const b = Buffer.from(s)
  const at = typeof cut === 'number' ? Array.from({ length: Math.ceil(b.length / cut) - 1 }, (_, i) => (i + 1) * cut) : cut
  return [0, ...at].map((from, i) => b.subarray(from, i < at.length ? at[i] : b.length))
}

/** What the client is sent read by read (maybe empty), then what is held at the end (takeHeld). */
function pass(pieces: readonly Buffer[], r: Redaction | null, stream = true): { sent: string[]; last: string | undefined } {
  const h = createHeldBytes()
  const sent = pieces.map((p) => takeRead(h, Buffer.from(p), r, stream).toString())
  return { sent, last: takeHeld(h, r)?.toString() }
}

/** The former takeRead, everything held concatenated with every read and scanned again: the reference. */
function reference(pieces: readonly Buffer[], r: Redaction | null): { sent: string[]; last: string | undefined } {
  let held: Buffer | undefined
  const sent = pieces.map((read) => {
    let chunk = held === undefined ? read : Buffer.concat([held, read])
    held = undefined
    if (r) chunk = redactChunk(chunk, r)
    const keep = Math.max(r ? heldLength(chunk, r) : 0, partialEventLength(chunk))
    if (keep > 0) held = Buffer.from(chunk.subarray(chunk.length - keep))
    return chunk.subarray(0, chunk.length - keep).toString()
  })
  return { sent, last: held === undefined ? undefined : maskTail(held, r).toString() }
}

const STREAM = (eol: string): string => [
  `event: a${eol}data: {"t":"one"}${eol}${eol}`,
  `data: ${'x'.repeat(5000)}${eol}data: key ${KEY} in a long event${eol}data: ${'y'.repeat(3000)}${eol}${eol}`,
  `: comment${eol}${eol}`,
  `data: ${KEY}${eol}${eol}`,
  `data: last, unended ${KEY.slice(0, 20)}`,
].join('')

describe('takeRead', () => {
  for (const [name, eol] of [['LF', '\n'], ['CRLF', '\r\n'], ['CR', '\r']] as const) {
    it(`${name}: read by read, what the former concatenate-and-scan takeRead sent, however the stream is split`, () => {
      const text = STREAM(eol)
      for (const size of [1, 2, 3, 7, 64, 1000, 100_000]) {
        const got = pass(reads(text, size), R)
        expect(got).toEqual(reference(reads(text, size), R))
        // Everything, masked, the unended last event (with the start of a key at its end) held to the end.
        expect(got.sent.join('') + got.last).toBe(text.replaceAll(KEY, MASKED).replace(KEY.slice(0, 20), MASKED.slice(0, 20)))
        expect(got.last).toBe(`data: last, unended ${MASKED.slice(0, 20)}`)
        // What goes out is whole events only (with CRLF, a read may end with the blank line's CR, the next start with its LF).
        const whole = eol === '\r\n' ? /(\r\n\r\n|\r\n\r|^\n)$/ : new RegExp(`${eol}${eol}$`)
        for (const s of got.sent) if (s !== '') expect(s).toMatch(whole)
      }
    })
  }

  it('a CRLF split across reads after a long line, and a CR alone at a read end', () => {
    const text = `data: ${'x'.repeat(3000)}\r\n\r\ndata: b\r\rdata: c\r\n\r\n`
    for (const cut of [[3007], [3008], [3009], [3010], [3007, 3008, 3009], [3020, 3021, 3022, 3023]]) {
      const pieces = reads(text, [...Array.from({ length: 40 }, (_, i) => (i + 1) * 64), ...cut].sort((a, b) => a - b).filter((x, i, a) => a.indexOf(x) === i))
      expect(pass(pieces, null)).toEqual(reference(pieces, null))
      expect(pass(pieces, null).sent.join('')).toBe(text)
    }
  })

  it('a key split across three reads (and across pending reads of a long event) is masked', () => {
    const text = `data: ${'z'.repeat(2000)} ${KEY} ${'z'.repeat(500)}\n\ndata: ${KEY}\n\n`
    const at = text.indexOf(KEY)
    const at2 = text.lastIndexOf(KEY)
    for (const cuts of [[at + 3, at + 20], [at + 1, at + KEY.length - 1], [at + 10, at + 11, at2 + 5, at2 + 30]]) {
      for (const pieces of [reads(text, cuts), reads(text, [...cuts, 64, 128, 256, 1024, 1500].sort((a, b) => a - b))]) {
        const got = pass(pieces, R)
        expect(got.sent.join('')).toBe(text.replaceAll(KEY, MASKED))
        expect(got.sent.join('')).not.toContain(KEY.slice(0, 12))
        expect(got.last).toBeUndefined()
      }
    }
  })

  it('an unended last event held in pending reads is returned whole, masked, by takeHeld', () => {
    const text = `data: ok\n\ndata: ${'w'.repeat(2000)} ${KEY} ${'w'.repeat(100)}`
    const got = pass(reads(text, 16), R)
    expect(got.sent.join('')).toBe('data: ok\n\n')
    // Those reads were kept aside, not concatenated (the event is longer than LONG_EVENT).
    const h = createHeldBytes()
    for (const p of reads(text, 16)) takeRead(h, p, R, true)
    expect(h.pending?.length).toBeGreaterThan(100)
    expect(got.last).toBe(`data: ${'w'.repeat(2000)} ${MASKED} ${'w'.repeat(100)}`)
    // A key's start at the very end is masked as far as it goes.
    const cut = pass(reads(`data: ${'w'.repeat(2000)} ${KEY.slice(0, 15)}`, 16), R)
    expect(cut.last).toBe(`data: ${'w'.repeat(2000)} ${MASKED.slice(0, 15)}`)
  })

  it('an event past MAX_PARTIAL_EVENT goes on as it comes, as before', () => {
    const text = `data: ${'v'.repeat((1 << 20) + 5000)}\n\ndata: end\n\n`
    const pieces = reads(text, 4096)
    const got = pass(pieces, R)
    expect(got).toEqual(reference(pieces, R))
    expect(got.sent.join('')).toBe(text)
    expect(got.sent.findIndex((s) => s !== '')).toBeLessThan(pieces.length - 1)
  })

  it('a read of a line end alone at an event boundary (the LF of a CRLF split after the blank line) is not held', () => {
    expect(partialEventLength(Buffer.from('\n'))).toBe(0)
    expect(partialEventLength(Buffer.from('\ndata: x'))).toBe(7)
    expect(partialEventLength(Buffer.from('\r\ndata: x'))).toBe(7)
  })

  it('a JSON body (not a stream) is not held back, except a key start', () => {
    const text = `{"a":"${KEY}","b":"${'u'.repeat(300)}"}`
    const got = pass(reads(text, 7), R, false)
    expect(got.sent.join('') + (got.last ?? '')).toBe(text.replaceAll(KEY, MASKED))
  })

  // Linear time, checked as liveness: a 1 MiB event in 64-byte reads took 4 s (30 s with CRLF) when every read was
  // concatenated to all that was held and scanned again; kept and joined once, milliseconds. Eight such events (half
  // of them many short lines) made the former code take over 30 s (LF) or minutes (CRLF); the bound is the timeout.
  for (const [name, eol] of [['LF', '\n'], ['CRLF', '\r\n']] as const) {
    it(`${name}: eight 1 MiB events in 64-byte reads, one long line or many short ones, are passed in linear time`, () => {
      const long = `data: ${'a'.repeat((1 << 20) - 100)}${eol}${eol}`
      const lines = `data: ${'b'.repeat(50)}${eol}`.repeat(Math.floor(((1 << 20) - 100) / (57 + eol.length))) + eol
      const text = Buffer.from((long + lines).repeat(4) + `data: ${'c'.repeat(900_000)}`)
      const h = createHeldBytes()
      let sent = 0
      for (let i = 0; i < text.length; i += 64) sent += takeRead(h, text.subarray(i, i + 64), R, true).length
      expect(sent).toBe(text.length - 900_006)
      expect(takeHeld(h, R)!.length).toBe(900_006)
    }, 10_000)
  }
})
