/**
 * Writes an upstream answer to the client: canonical JSON, a canonical chunk stream (through the
 * route's chunk hooks and the inbound dialect's encoder), or pass-through bytes with a light tap.
 * A stream that fails after its first byte ends with an explicit error event, never silently.
 */
import type { ServerResponse } from 'node:http'
import { GatewayError } from './errors.ts'
import type { RequestCtx } from './context.ts'
import type { Inbound } from './inbound/types.ts'
import type { RawUpstream, UpstreamResponse } from './pipeline/types.ts'
import { createSseParser, feedBounded, MAX_EVENT_CHARS, type SseEvent, type SseParser } from '../providers/shared/sse.ts'
import type { ChatChunk, ChatStream, FinishReason, TextLane, Usage } from '../providers/types.ts'
import { deliverNativeMessages } from './upstream/native-messages.ts'
import { createHeldBytes, redactionOf, takeHeld, takeRead, terminated, writeRawHead } from './raw-bytes.ts'
import { cutAttempt, usageWithAttempts } from './cost/attempt-usage.ts'
import { BodyKeeper } from './usage-extract.ts'
import { looksCompact, parseEventFacts, spacedKeyBefore, spacedUsage } from './event-shape.ts'

const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' }

export function runResponseHeaders(ctx: RequestCtx): void {
  for (const h of ctx.route.onResponseHeaders) h(ctx)
}

export function waitDrain(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => { res.off('drain', done); res.off('close', done); resolve() }
    res.on('drain', done)
    res.on('close', done)
  })
}

export function toGatewayError(e: unknown): GatewayError {
  return e instanceof GatewayError ? e : new GatewayError('MCP_ERR_INTERNAL', { requestId: '' }, { cause: e, details: 'internal' })
}

function markFailed(ctx: RequestCtx, g: GatewayError): void {
  ctx.errorCode = g.code
  ctx.details = g.details
}

export async function deliver(ctx: RequestCtx, inbound: Inbound, up: UpstreamResponse): Promise<void> {
  const res = ctx.res
  switch (up.kind) {
    case 'json': {
      const r = up.response
      if ('usage' in r && r.usage) ctx.usage = r.usage as Usage
      if ('choices' in r) ctx.finishReason = r.choices[0]?.finish_reason ?? null
      ctx.responseModel = r.model
      if ('service_tier' in r) ctx.servedTier = r.service_tier
      const body = inbound.encodeResponse(r, ctx.requestedModel, ctx)
      ctx.upstreamEnd = performance.now()
      runResponseHeaders(ctx)
      ctx.status = 200
      res.writeHead(200, { ...ctx.responseHeaders, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
      return
    }
    case 'stream':
      return deliverStream(ctx, inbound, up.stream)
    case 'raw':
      // Raw bytes for a Messages client can only be Anthropic's own answer (native-messages.ts).
      return ctx.inbound === 'anthropic' ? deliverNativeMessages(ctx, inbound, up.raw) : deliverRaw(ctx, inbound, up.raw)
  }
}

/** A stream's chunks in the groups it produced them (see ChatStream.batches), or one by one. */
function batchesOf(stream: ChatStream): AsyncIterable<readonly (ChatChunk | TextLane)[]> {
  // The stream's own generator when it has one (no second generator layer: a promise less per step). Text-lane
  // items only come when openUpstream asked for them (no chunk hooks on the route).
  if (stream.laneBatches) return stream.laneBatches()
  if (stream.batches) return stream.batches()
  return (async function* one(): AsyncGenerator<readonly ChatChunk[]> { for await (const c of stream) yield [c] })()
}

async function deliverStream(ctx: RequestCtx, inbound: Inbound, first: ChatStream): Promise<void> {
  const res = ctx.res
  const enc = inbound.createStreamEncoder(ctx.requestedModel, ctx.includeUsage, ctx)
  const hooks = ctx.route.onResponseChunk
  runResponseHeaders(ctx)
  ctx.status = 200
  // Headers leave with the first chunk (one write, not two): a stream is committed at its first chunk anyway.
  res.writeHead(200, { ...ctx.responseHeaders, ...SSE_HEADERS })
  let stream: ChatStream | undefined = first
  let delivered = ''
  /**
   * Something other than text reached the client (a tool-call, thinking or refusal delta, another choice, a finish):
   * a resume continues text only (a prefill cannot continue a tool call), so the stream cannot be resumed then.
   */
  let notText = false
  let resumed = false
  while (stream) {
    const current: ChatStream = stream
    stream = undefined
    let sent = ''
    /** ctx.streamEvents before this attempt's first event (a cut attempt's own count is the difference). */
    const eventsBefore = ctx.streamEvents
    /** Usage this attempt reported before it was cut (rare), kept when the stream may be resumed. */
    let reported: Usage | undefined
    try {
      // Everything one upstream read produced leaves in one write (one chunked-encoding frame, one syscall).
      for await (const batch of batchesOf(current)) {
        if (ctx.firstChunk === 0) ctx.firstChunk = performance.now()
        let out = ''
        try {
          for (const item of batch) {
            if (typeof item === 'string') {
              if (ctx.resume) sent += item
              out += enc.text?.(item) ?? enc.chunk(current.textChunk!(item))
              continue
            }
            const chunk = item
            for (const h of hooks) h(ctx, chunk)
            if (ctx.resume) {
              const c = chunk.choices[0]
              if (c) {
                const d = c.delta
                if (d.content) sent += d.content
                if (!notText && (d.tool_calls?.length || d.thinking_blocks?.length || d.refusal || c.finish_reason !== null || c.index !== 0 || chunk.choices.length > 1)) notText = true
              }
              if (chunk.usage) reported = chunk.usage
            }
            out += enc.chunk(chunk)
          }
        } catch (e) {
          // A hook ended the stream (budget cut-off) mid-group: what came before it is still delivered.
          if (out !== '' && !res.destroyed) res.write(out)
          throw e
        }
        // As bytes: a string chunk costs Node a UTF-8 length scan for the chunk header and a second encoding in
        // writev; Buffer.from encodes once (measured: 1-2 µs a stream less).
        ctx.streamEvents += batch.length
        if (out !== '' && !res.write(Buffer.from(out))) {
          await waitDrain(res)
          if (res.destroyed) break
        }
      }
      const final = await current.final
      // A resumed stream: the usage of every attempt, the cut ones' included (their providers billed them).
      ctx.usage = resumed ? usageWithAttempts(ctx, final.usage) : final.usage
      ctx.finishReason = final.choices[0]?.finish_reason ?? null
      ctx.responseModel = final.model
      ctx.servedTier = final.service_tier
      ctx.upstreamEnd = performance.now()
      if (!res.destroyed) res.end(enc.end())
    } catch (e) {
      const g = toGatewayError(e)
      delivered += sent
      // Mid-stream failure: continue on another target when the alias allows it, else say so explicitly.
      // Not when the gateway itself ended the request (shutdown): another target would be aborted in turn. Not after
      // anything but text went out either: another target would start its tool call (or thinking) over, not continue it.
      if (ctx.resume && !notText && !res.destroyed && g.code !== 'MCP_ERR_REQ_ABORTED' && g.code !== 'MCP_ERR_SERVER_DRAINING') {
        const cut = cutAttempt(ctx, g, sent, reported, ctx.streamEvents - eventsBefore)
        stream = await ctx.resume(delivered).catch(() => undefined)
        if (stream) {
          ctx.attemptLog.push(await cut)
          resumed = true
          continue
        }
      }
      ctx.upstreamEnd = performance.now()
      markFailed(ctx, g)
      if (!res.destroyed) res.end(enc.error(g))
    }
  }
}

/*
 * Keys searched from the end of an OpenAI chunk, where they are (`..."finish_reason":null}]}`, `..."usage":{...}}`).
 * Inside a JSON string a quote is escaped, so `"finish_reason":` and `"usage":` only ever match real keys.
 * String#includes with a pattern this long sets up a Boyer-Moore-Horspool table per call (about 200 ns per search
 * of a 250-character event); lastIndexOf finds a key near the end in a few comparisons.
 */
const FINISH_KEY = '"finish_reason":'
/** A string finish reason's value (the canonical ones are short, lowercase). */
const FINISH_VALUE = /"finish_reason":"([a-z_]{1,40})"/

/** Some occurrence of `key` (searched from the end) is followed by the character `next`. */
function keyFollowedBy(d: string, key: string, next: number): boolean {
  for (let i = d.lastIndexOf(key); i !== -1; i = i === 0 ? -1 : d.lastIndexOf(key, i - 1)) {
    if (d.charCodeAt(i + key.length) === next) return true
  }
  return false
}

/** Some choice of this chunk has a string finish_reason. */
export function hasStringFinish(d: string): boolean {
  return keyFollowedBy(d, FINISH_KEY, 34 /* '"' */)
}

/**
 * The part of `"usage":{` searched for, from its `g`: five characters, so a plain forward scan (V8 sets up a search
 * table for patterns of seven or more), and rare in a chunk. The rest is checked around a match.
 */
const USAGE_TAIL = 'ge":{'
const USAGE_HEAD = '"usa'

/**
 * The chunk has a `"usage":{` key (an object, not null). Searched forward for its tail: most chunks have no usage,
 * and `lastIndexOf('"usage":')` walks the whole of such a chunk in V8's runtime (measured: about 300 ns a chunk, where
 * this takes 70; 8 of them at every pass-through stream's end).
 */
export function hasUsageObject(d: string): boolean {
  for (let i = d.indexOf(USAGE_TAIL); i !== -1; i = d.indexOf(USAGE_TAIL, i + USAGE_TAIL.length)) {
    if (i >= USAGE_HEAD.length && d.startsWith(USAGE_HEAD, i - USAGE_HEAD.length)) return true
  }
  return false
}

const CHOICES_KEY = '"choices":'
const CHOICES_NAME = '"choices"'

/**
 * The event is a JSON object with `"choices":[]` (the usage-only chunk a forced include_usage adds). Searched as
 * `[]` and then the key before it: a two-character search is a plain scan, where `includes('"choices":[]')` sets up
 * a Boyer-Moore-Horspool table per call (about 200 ns an event). Inside a JSON string quotes are escaped, so the key
 * only matches for real. Only at a `[]` after whitespace (`"choices": []`, Python's json.dumps) is the key looked
 * for across the whitespace.
 */
export function hasEmptyChoices(d: string): boolean {
  if (d.charCodeAt(0) !== 123 /* '{' */) return false
  for (let i = d.indexOf('[]'); i !== -1; i = d.indexOf('[]', i + 2)) {
    if (i >= CHOICES_KEY.length && d.startsWith(CHOICES_KEY, i - CHOICES_KEY.length)) return true
    const c = d.charCodeAt(i - 1)
    if ((c === 32 || c === 10 || c === 9 || c === 13) && spacedKeyBefore(d, i, CHOICES_NAME)) return true
  }
  return false
}

/**
 * The usage-only chunk: no choices and a usage object (Azure's prompt_filter_results event has no usage). The usage
 * is looked for by parsing only in an event that is not compact JSON, where the search for `"usage":{` is blind.
 */
export function isUsageOnly(d: string): boolean {
  return hasEmptyChoices(d) && (hasUsageObject(d) || spacedUsage(d))
}

const ERROR_EVENT = '{"error"'

/**
 * An OpenAI-style in-stream error event (`{"error": {...}}`, OpenAI's own, vLLM's, llama.cpp's) as the answering
 * provider maps it: its status from a numeric `code` (vLLM, llama.cpp), else 502. Undefined for any other event.
 */
function upstreamErrorEvent(ctx: RequestCtx, d: string): GatewayError | undefined {
  // A pretty-printed event (`{` and a line break) is parsed too; Python's `{"error": {...}}` starts like a compact one.
  if (!d.startsWith(ERROR_EVENT) && (d.charCodeAt(1) === 34 /* '"' */ || !d.includes('"error"'))) return undefined
  let payload: unknown
  try { payload = (JSON.parse(d) as { error?: unknown }).error } catch { return undefined }
  if (payload === undefined) return undefined
  const code = (payload as { code?: unknown } | null)?.code
  const status = typeof code === 'number' && code >= 400 && code <= 599 ? code : 502
  const pt = ctx.adapter?.passthrough
  return pt
    ? pt.toError(status, d, {})
    : new GatewayError('MCP_ERR_UPSTREAM_ERROR', { provider: ctx.providerName, status, reason: 'error event in the stream' }, { details: 'upstream.stream_error' })
}

/**
 * How many of a pass-through stream's last events are read for its finish reason and usage: the finish chunk, the
 * usage chunk, and room for trailing annotation events (Azure's content-filter results). A stream cut without
 * [DONE] counts as complete only if a string finish_reason is among them.
 */
const TAIL = 8

/** A stream failure the gateway found in the upstream's events (malformed, too long), not the upstream's own error event. */
function ours(g: GatewayError): boolean {
  return g.details === 'upstream.malformed_event' || g.details === 'upstream.event_too_large'
}

/** The event re-framed as SSE, one `data:` line for each of its lines (a data field cannot hold a line break). */
function framed(d: string): string {
  return `data: ${d.replaceAll('\n', '\ndata: ')}\n\n`
}

/**
 * Pass-through: upstream bytes go to the client as they come, with backpressure both ways.
 * For streams an SSE tap watches for the end marker and the usage event without re-encoding.
 */
function deliverRaw(ctx: RequestCtx, inbound: Inbound, raw: RawUpstream): Promise<void> {
  const res = ctx.res
  writeRawHead(ctx, raw)

  const redaction = redactionOf(ctx.adapter?.passthrough)
  let sawDone = false
  let sawFinish = false
  let sawUsage = false
  /** The stream failed inside an event (malformed, or the upstream's error event before [DONE]): it ends here. */
  let failure: GatewayError | undefined
  /** The tap saw the stream end inside a read: [DONE] (complete), or a failure (set). Checked once a read. */
  let stopped = false
  let finished = false
  // When the gateway asked upstream for usage the client did not ask for, events are re-framed one by
  // one and the usage-only event is dropped; otherwise upstream bytes go through untouched.
  const filter = ctx.stream && ctx.usageForced
  /** The upstream was asked for a usage chunk (by the client, or by the gateway): a stream complete without [DONE] has it. */
  const usageAsked = ctx.includeUsage || ctx.usageForced
  let out = ''
  // The last TAIL events, read once when the stream ends (readTail): searching every event for a string
  // finish_reason and a usage object cost about 300 ns an event; both sit at a stream's end.
  const recent: string[] | undefined = ctx.stream ? [] : undefined
  let events = 0
  let tailRead = false
  const readTail = (): void => {
    if (tailRead || !recent) return
    tailRead = true
    ctx.streamEvents += events
    // For gen_ai.response.model, read only if asked (RequestCtx.responseModel).
    if (events > 0) ctx.lastEvent = recent[(events - 1) % TAIL]
    const n = Math.min(events, TAIL)
    for (let k = 0; k < n; k++) {
      const d = recent[(events - 1 - k) % TAIL]!
      if (!sawFinish && hasStringFinish(d)) {
        sawFinish = true
        // The newest finish reason (the execution log's, the tracing span's), as a non-streamed answer's is read.
        const m = FINISH_VALUE.exec(d)
        if (m !== null) ctx.finishReason = m[1] as FinishReason
      }
      // The newest usage object wins (servers that report usage on every chunk report running totals).
      if (!sawUsage && hasUsageObject(d)) {
        try { const u = (JSON.parse(d) as { usage?: Usage }).usage; if (u) { ctx.usage = u; sawUsage = true } } catch { /* malformed: judged at the end */ }
      }
    }
    // The searches above only see compact JSON's keys. When one found nothing it was looking for, the events in another
    // serialization (Python's `"finish_reason": "stop"`, pretty-printed ones) are parsed for it: never in a compact stream.
    if (sawFinish && (sawUsage || !usageAsked)) return
    for (let k = 0; k < n; k++) {
      const d = recent[(events - 1 - k) % TAIL]!
      if (looksCompact(d)) continue
      const f = parseEventFacts(d)
      if (!f) continue
      if (!sawFinish && f.finish !== undefined) { sawFinish = true; ctx.finishReason = f.finish }
      if (!sawUsage && f.usage !== undefined) { ctx.usage = f.usage; sawUsage = true }
    }
  }
  /** The upstream's own error event among the last ones (an OpenAI-style `{"error": ...}` event), looked at once, at the end. */
  const lastError = (): GatewayError | undefined => (events > 0 ? upstreamErrorEvent(ctx, recent![(events - 1) % TAIL]!) : undefined)
  const malformed = (): GatewayError => new GatewayError('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', { provider: ctx.providerName, reason: 'malformed event in the stream' }, { details: 'upstream.malformed_event' })
  /** The event being read came as several data lines (onJoined): the filter writes it out line by line. */
  let joined = false
  const onEvent = (ev: SseEvent): void => {
    let d = ev.data
    if (d.charCodeAt(0) !== 123 || d.charCodeAt(d.length - 1) !== 125) {
      // Not an object as compact JSON sends it: [DONE], an object with whitespace around it, or a malformed event.
      const t = d.trim()
      if (t === '[DONE]') {
        if (filter) out += 'data: [DONE]\n\n'
        // An error event then [DONE] (vLLM, llama.cpp): the stream failed; a [DONE] after it would look complete.
        const g = lastError()
        if (g) failure = g
        else sawDone = true
        stopped = true
        return
      }
      if (t.charCodeAt(0) !== 123 || t.charCodeAt(t.length - 1) !== 125) {
        failure = malformed()
        stopped = true
        return
      }
      d = t
    }
    // The usage-only event has no choices and a usage object; Azure's prompt_filter_results event has no usage.
    if (filter && !isUsageOnly(d)) out += joined ? framed(d) : `data: ${d}\n\n`
    recent![events++ % TAIL] = d
  }
  // An event of several data lines (pretty-printed JSON): re-framed line by line when the filter writes it again.
  const onJoined = filter
    ? (ev: SseEvent): void => { joined = true; onEvent(ev); joined = false }
    : onEvent
  const tap = recent ? createSseParser(onEvent, undefined, MAX_EVENT_CHARS, onJoined) : undefined
  /** The tap reads a read (an event that outgrew its bound fails the stream, as a malformed one does). */
  const feedTap = (p: SseParser, chunk: Buffer): void => {
    // (The tap's own callback sets `failure` too, while it reads: only an error of the bound is assigned here.)
    const g = failure ? undefined : feedBounded(p, chunk, ctx.providerName)
    if (g) { failure = g; stopped = true }
  }
  const parts: BodyKeeper | undefined = ctx.stream ? undefined : new BodyKeeper(ctx.embedding !== undefined)
  /**
   * The end of the last read, held back: the start of a credential the next read may complete (heldLength), and in a
   * stream the event not yet ended (partialEventLength). It goes out in front of the next read (searched again with
   * it); when the upstream ends, masked (takeHeld) and, in a stream, only if the stream turns out complete; when it
   * fails, a stream drops it (the error event follows the last whole event). The tap and `parts` see it when the
   * client does.
   */
  const h = createHeldBytes()

  return new Promise<void>((resolve) => {
    const onDrain = (): void => raw.resume()
    res.on('drain', onDrain)
    const done = (): void => { readTail(); finished = true; res.off('drain', onDrain); resolve() }
    const fail = (g: GatewayError): void => {
      ctx.upstreamEnd = performance.now()
      markFailed(ctx, g)
      if (ctx.stream && !res.destroyed) res.end(inbound.createStreamEncoder(ctx.requestedModel, ctx.includeUsage, ctx).error(g))
      else res.destroy(g)
      done()
    }
    /** Sends (redacted) bytes on: through the tap or into `parts`, then to the client. False: backpressure or the end. */
    const forward = (chunk: Buffer): boolean => {
      if (tap) {
        feedTap(tap, chunk)
        if (stopped) {
          if (failure === undefined) {
            // [DONE]: the answer is complete. The client's stream ends here, whether or not the upstream closes its body
            // now (its end, or anything it sends after this, is not the client's: see onData).
            ctx.upstreamEnd = performance.now()
            if (!res.destroyed) res.end(filter ? out : chunk)
            out = ''
            done()
            return true
          }
          if (ours(failure)) fail(failure)
          else {
            // The upstream's error event reached the client as it came: what came before the [DONE] goes, then the end.
            const i = chunk.lastIndexOf('data: [DONE]')
            const head = filter ? out.slice(0, out.lastIndexOf('data: [DONE]')) : i > 0 ? chunk.subarray(0, i) : ''
            ctx.upstreamEnd = performance.now()
            markFailed(ctx, failure)
            if (!res.destroyed) res.end(head)
            done()
          }
          raw.abort()
          return false
        }
      } else parts!.add(chunk)
      if (res.destroyed) return false
      if (!filter) return res.write(chunk)
      if (out === '') return true
      const text = out
      out = ''
      return res.write(Buffer.from(text))
    }
    raw.consume({
      onData(chunk) {
        if (finished) {
          // Bytes after the stream's end ([DONE]), or after a failure: the body did not end where it should. Its
          // connection is discarded, not reused. (A body that only stays open is discarded by the idle timeout, which
          // nobody hears of.)
          raw.abort()
          return false
        }
        if (ctx.firstChunk === 0) ctx.firstChunk = performance.now()
        const out = takeRead(h, chunk, redaction, tap !== undefined)
        return out.length === 0 ? true : forward(out)
      },
      onEnd() {
        if (finished) return
        // What was held back: a JSON body's last bytes go on now; a stream's unterminated last event only if the
        // stream is complete with it (a final event without its blank line), else it was cut: dropped, error event.
        const last = takeHeld(h, redaction)
        if (last && !tap) { forward(last); if (finished) return }
        ctx.upstreamEnd = performance.now()
        if (parts) ctx.rawBody = parts.parts()
        if (tap) {
          if (last) feedTap(tap, last)
          tap.end()
          readTail()
          // Without [DONE], a finish reason makes the stream complete unless the upstream's error event came after it,
          // or the usage chunk asked for is missing (OpenAI sends it after the finish, before [DONE]: a stream without
          // either was cut there).
          const complete = failure === undefined && (sawDone || (sawFinish && (sawUsage || !usageAsked) && lastError() === undefined))
          if (complete) {
            if (!res.destroyed) {
              if (filter) { if (out !== '') res.write(out) } else if (last) res.write(terminated(last))
              // Upstream ended cleanly without the terminator: finalise promptly for the client.
              if (!sawDone) res.write('data: [DONE]\n\n')
            }
          } else {
            // The upstream's own error event ended it (OpenAI sends no [DONE] after one; vLLM does): the client has it
            // already, or gets it now when it was the unterminated last event. Otherwise the stream was cut, maybe inside
            // an event (held back, so never sent), or its last event was one the gateway could not read: say so.
            const upstream = failure !== undefined && ours(failure) ? undefined : failure ?? lastError()
            const reason = sawFinish && !sawUsage && failure === undefined
              ? 'the stream ended after the finish without the usage chunk or [DONE]'
              : 'the stream ended before the completion finished'
            const g = upstream ?? failure ?? new GatewayError('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', { provider: ctx.providerName, reason }, { details: 'upstream.stream_cut' })
            markFailed(ctx, g)
            if (!res.destroyed) {
              if (!upstream) res.write(inbound.createStreamEncoder(ctx.requestedModel, ctx.includeUsage, ctx).error(g))
              else if (failure === undefined && last) res.write(filter ? out : terminated(last))
            }
          }
          out = ''
        }
        if (!res.destroyed) res.end()
        done()
      },
      onError(err) {
        if (finished) return
        // A stream's held-back bytes are half an event: dropped, so the error event follows a whole one. A JSON
        // body's are sent masked before the connection is destroyed (the client sees a cut body either way).
        const rest = takeHeld(h, redaction)
        if (rest && !tap) forward(rest)
        if (!finished) fail(err)
      },
    })
  })
}
