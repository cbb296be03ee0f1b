/**
 * Pass-through bytes on their way to the client (gateway/deliver.ts for OpenAI-shaped answers,
 * gateway/upstream/native-messages.ts for Anthropic's): the provider's credentials masked wherever an upstream echoes
 * them, and a stream's unfinished last event held back until it ends.
 */
import type { RequestCtx } from './context.ts'
import type { RawUpstream } from './pipeline/types.ts'
import { credentialsOf } from '../providers/shared/upstream-error.ts'

/**
 * The head of a pass-through answer: the route's response-header hooks run, then the upstream's status and content
 * type (a stream's, or JSON's by default), with the stream's no-cache headers or the body's content length.
 */
export function writeRawHead(ctx: RequestCtx, raw: RawUpstream): void {
  for (const h of ctx.route.onResponseHeaders) h(ctx)
  ctx.status = raw.status
  const headers: Record<string, string | number> = { ...ctx.responseHeaders }
  const ct = raw.headers['content-type']
  headers['content-type'] = (Array.isArray(ct) ? ct[0] : ct) ?? (ctx.stream ? 'text/event-stream; charset=utf-8' : 'application/json')
  if (ctx.stream) {
    headers['cache-control'] = 'no-cache'
    headers['x-accel-buffering'] = 'no'
  } else {
    const cl = raw.headers['content-length']
    if (typeof cl === 'string') headers['content-length'] = cl
  }
  ctx.res.writeHead(raw.status, headers)
}

/** A provider's credentials as the bytes an upstream could echo them in, with same-length masks (see redactChunk). */
export interface Redaction {
  readonly forms: readonly Buffer[]
  readonly heads: readonly Buffer[]
  readonly masks: readonly Buffer[]
  /** 1 for each byte some form has before its last one: a read ending in any other byte ends in no credential's start. */
  readonly inner: Uint8Array
}

/** What holds an upstream's headers (a PassthroughTarget, a NativeMessagesTarget): its credentials are read from them. */
export interface HasHeaders { readonly headers: Readonly<Record<string, string>> }

const redactions = new WeakMap<HasHeaders, Redaction | null>()

/** A mask as long as the secret: `[redacted]` and `*` to its length (all `*` under 10 bytes). */
function maskOf(form: Buffer): Buffer {
  const m = Buffer.alloc(form.length, '*')
  if (form.length >= 10) m.write('[redacted]')
  return m
}

/** The target's credentials (credentialsOf: every spelling, longest first), computed once per target. */
export function redactionOf(pt: HasHeaders | undefined): Redaction | null {
  if (!pt) return null
  let r = redactions.get(pt)
  if (r === undefined) {
    const forms = credentialsOf(pt.headers).map((x) => Buffer.from(x))
    const inner = new Uint8Array(256)
    for (const f of forms) for (let k = 0; k < f.length - 1; k++) inner[f[k]!] = 1
    r = forms.length === 0 ? null : { forms, heads: forms.map((f) => f.subarray(0, 4)), masks: forms.map(maskOf), inner }
    redactions.set(pt, r)
  }
  return r
}

/**
 * The chunk with every credential masked in place of the same length, so a forwarded Content-Length and the SSE
 * framing stay right; the same chunk when it holds none (one native search for a credential's first bytes, per read).
 * A credential split across two reads is caught by holding the first read's end back (heldLength) and searching it
 * again at the start of the next one.
 */
export function redactChunk(chunk: Buffer, r: Redaction): Buffer {
  let out = chunk
  for (let i = 0; i < r.forms.length; i++) {
    if (out.indexOf(r.heads[i]!) === -1) continue
    const form = r.forms[i]!
    for (let at = out.indexOf(form); at !== -1; at = out.indexOf(form, at + form.length)) {
      if (out === chunk) out = Buffer.from(chunk)
      r.masks[i]!.copy(out, at)
    }
  }
  return out
}

/**
 * How many of the chunk's last bytes are a proper prefix of a credential (the longest such run), to hold back and
 * search again with the next read: a credential an upstream echoes can straddle two reads. 0 after one table look-up
 * when the last byte starts no credential's rest (a JSON body's `}`, an SSE event's `\n`: almost every read);
 * otherwise a native search for each form's first byte among its last `form.length - 1` bytes, and a comparison.
 */
export function heldLength(chunk: Buffer, r: Redaction): number {
  const n = chunk.length
  if (n === 0 || r.inner[chunk[n - 1]!] === 0) return 0
  let held = 0
  for (const form of r.forms) {
    // Earliest start first: the first candidate that matches is this form's longest.
    for (let at = chunk.indexOf(form[0]!, Math.max(0, n - form.length + 1)); at !== -1 && n - at > held; at = chunk.indexOf(form[0]!, at + 1)) {
      if (form.compare(chunk, at, n, 0, n - at) === 0) { held = n - at; break }
    }
  }
  return held
}

/**
 * Held-back bytes the answer ended with, or failed after, with a credential's start at their end masked as far as it
 * goes, as the whole credential would have been, so no part of it reaches the client.
 */
export function maskTail(held: Buffer, r: Redaction | null): Buffer {
  const k = r ? heldLength(held, r) : 0
  if (k === 0) return held
  const at = held.length - k
  for (let i = 0; i < r!.forms.length; i++) {
    if (r!.forms[i]!.compare(held, at, held.length, 0, k) === 0) {
      const out = Buffer.from(held)
      r!.masks[i]!.copy(out, at, 0, k)
      return out
    }
  }
  return held
}

/** An event this long without its end is no longer held back whole (see partialEventLength): it goes on as it comes. */
const MAX_PARTIAL_EVENT = 1 << 20

/**
 * How many of a stream read's last bytes are an event not yet ended (after the last blank line), to hold back until
 * it is: a stream cut inside an event then ends with the gateway's error event on its own, not glued to half an
 * event, where an SSE client would read the two as one malformed event and never see the error. 0 when the read
 * ends an event (`\n\n`: almost every read) after two byte comparisons. Reads with CR in them (servers that end
 * lines with CRLF, as sse-starlette does, or CR alone, as the SSE standard allows) take a scan of their line endings.
 */
export function partialEventLength(chunk: Buffer): number {
  const n = chunk.length
  if (n >= 2 && chunk[n - 1] === 10 && chunk[n - 2] === 10) return 0
  let held: number
  if (chunk.includes(13)) held = n - eventsEnd(chunk)
  else {
    // A read starts at an event boundary, where a line end is an empty line (the LF of a CRLF split after the
    // blank line, as eventsEnd reads it): never held, so what is held never starts with a line end (see endsEvent).
    const b = chunk.lastIndexOf('\n\n')
    held = b !== -1 ? n - b - 2 : chunk[0] === 10 ? n - 1 : n
  }
  return held > MAX_PARTIAL_EVENT ? 0 : held
}

/**
 * Where the last event of a read that starts at an event boundary ends: the offset after its blank line (0 when
 * none ends in it). Lines end with CRLF, LF or CR (the SSE standard's three); an empty line ends an event. A CR
 * that ends the read counts as a line end (so does the standard: an event it completes is dispatched); the LF of a
 * CRLF split there starts the next read, where it reads as an empty line at an event boundary: nothing is held.
 * `lineStart` and `from`: the state a read continuing earlier bytes starts in (endsEvent).
 */
function eventsEnd(chunk: Buffer, lineStart = true, from = 0): number {
  let end = 0
  for (let i = from; i < chunk.length; i++) {
    const c = chunk[i]
    if (c !== 10 && c !== 13) { lineStart = false; continue }
    if (c === 13 && chunk[i + 1] === 10) i++
    if (lineStart) end = i + 1
    lineStart = true
  }
  return end
}

/** An unterminated final event, ended with its blank line in the line ending the upstream uses (see partialEventLength). */
export function terminated(event: Buffer): Buffer {
  const eol = !event.includes(13) ? '\n' : event.includes('\r\n') ? '\r\n' : '\r'
  const last = event[event.length - 1]
  return Buffer.concat([event, Buffer.from(last === 10 || last === 13 ? eol : eol + eol)])
}

/**
 * The end of the previous read a pass-through holds back (see deliverRaw): the start of a credential the next read may
 * complete, and in a stream the event not yet ended. Made by createHeldBytes, read through takeRead and takeHeld.
 */
export interface HeldBytes {
  /** What the last concatenated read left held (redacted), if anything. */
  held: Buffer | undefined
  /** Whether `held` is an event not yet ended (partialEventLength), not only a credential's start. */
  partial: boolean
  /**
   * Later reads (copies) that did not end that event (none: undefined), kept as they came rather than concatenated to
   * it: concatenating and scanning the held event again on every read is quadratic in a long event read in small
   * pieces. Not yet redacted: they are, with `held`, when the event's end arrives (takeRead) or the answer ends
   * (takeHeld).
   */
  pending: Buffer[] | undefined
  /** The bytes in `held` and `pending`. */
  length: number
}

/**
 * A held event at least this long keeps the reads that do not end it aside (takeRead). A shorter one (an event split
 * across two reads, the usual case) is concatenated with the next read, as searching the read first would only add a
 * scan: at most this many bytes are scanned again per read.
 */
const LONG_EVENT = 512

/** Nothing held yet. */
export function createHeldBytes(): HeldBytes {
  return { held: undefined, partial: false, pending: undefined, length: 0 }
}

/**
 * Whether a read that follows an event not yet ended (whose last byte so far is `prev`) ends it, as partialEventLength
 * would see it in the two concatenated: a blank line in the read, or one the read completes. Only the read is searched:
 * a native search for `\n\n` (how an event ends in almost every stream), and for reads with CR in them a scan of their
 * line endings, the one of eventsEnd, from the state the held bytes left.
 */
function endsEvent(prev: number, read: Buffer): boolean {
  if (read.indexOf('\n\n') !== -1 || (prev === 10 && read[0] === 10)) return true
  if (!read.includes(13)) return false
  // The LF of a CRLF split across the two reads ends the CR's line, not another one.
  return eventsEnd(read, prev === 10 || prev === 13, prev === 13 && read[0] === 10 ? 1 : 0) > 0
}

/** The last byte held (of the last pending read, or of `held`). */
function lastHeldByte(h: HeldBytes): number {
  const b = h.pending !== undefined ? h.pending[h.pending.length - 1]! : h.held!
  return b[b.length - 1]!
}

/** Nothing held any more. */
function clearHeld(h: HeldBytes): void {
  h.held = undefined
  h.partial = false
  h.pending = undefined
  h.length = 0
}

/**
 * One upstream read, after what was held before it: credentials masked, and the part that may not go out yet held
 * (copies: the read's buffer is not ours to keep). Returns what goes to the client now (maybe empty).
 *
 * A stream's read that does not end the long event held before it (LONG_EVENT; and keeps it within MAX_PARTIAL_EVENT)
 * is only kept: nothing goes out then anyway, and what is held is neither copied nor scanned again, so an event read in
 * small pieces costs its length once. The read that ends it (or crosses the limit) is handled with all of it, joined
 * once.
 */
export function takeRead(h: HeldBytes, read: Buffer, r: Redaction | null, stream: boolean): Buffer {
  if (read.length === 0) return read
  if (stream && h.partial && h.length >= LONG_EVENT && h.length + read.length <= MAX_PARTIAL_EVENT && !endsEvent(lastHeldByte(h), read)) {
    (h.pending ??= []).push(Buffer.from(read))
    h.length += read.length
    return read.subarray(0, 0)
  }
  let chunk = read
  if (h.held !== undefined) {
    chunk = h.pending === undefined ? Buffer.concat([h.held, read]) : Buffer.concat([h.held, ...h.pending, read], h.length + read.length)
    clearHeld(h)
  }
  if (r) chunk = redactChunk(chunk, r)
  let keep = r ? heldLength(chunk, r) : 0
  let partial = false
  if (stream) { const p = partialEventLength(chunk); if (p > 0 && p >= keep) { keep = p; partial = true } }
  if (keep === 0) return chunk
  h.held = Buffer.from(chunk.subarray(chunk.length - keep))
  h.partial = partial
  h.length = keep
  return chunk.subarray(0, chunk.length - keep)
}

/**
 * Everything held when the answer ends or fails (a JSON body's last bytes, a stream's unended last event), joined,
 * credentials masked, a credential's start at its end included (maskTail); undefined when nothing is. Nothing is held
 * after.
 */
export function takeHeld(h: HeldBytes, r: Redaction | null): Buffer | undefined {
  let all = h.held
  if (all === undefined) return undefined
  if (h.pending !== undefined) {
    all = Buffer.concat([all, ...h.pending], h.length)
    if (r) all = redactChunk(all, r)
  }
  clearHeld(h)
  return maskTail(all, r)
}
