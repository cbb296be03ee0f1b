/**
 * The Messages API as the client sent it. A `/v1/messages` request routed to an Anthropic provider goes there with
 * only its `model` replaced, and the answer comes back byte for byte (server_tool_use and web_search_tool_result
 * blocks, citations, thinking blocks in place, pause_turn, whatever Anthropic adds next), when the provider sends
 * Messages requests natively (config `nativeMessages`, the default) and nothing on the route needs the canonical form
 * (chunk hooks, an alias that resumes cut streams); otherwise it is translated there and back. A request holding what
 * the canonical form cannot carry (server tools, their blocks in the history, citations, fields newer than this
 * gateway: gateway/inbound/anthropic.ts nativeOnly) can only go as sent: where it cannot, it is a 400 naming the
 * client's field.
 *
 * Everything else about the request is the gateway's as usual: auth, limits, budgets (plugins/budget/estimate.ts
 * counts a native-only body whole), routing, retries and fallbacks before the first byte, cost and usage (read from
 * the answer's own `usage`, the last `message_delta`'s counters superseding `message_start`'s, as Anthropic's SDKs
 * read them), the execution log, the cache. The provider's credentials are masked if an upstream echoes them, as in
 * the OpenAI pass-through (gateway/raw-bytes.ts). A stream that fails after its first byte ends with an Anthropic
 * `error` event, never as a message that looks complete: cut before `message_stop`, stalled past the idle timeout, or
 * a malformed event. The upstream's own `error` event reaches the client as sent.
 */
import { changedError, GatewayError } from '../errors.ts'
import type { RequestCtx } from '../context.ts'
import type { Inbound } from '../inbound/types.ts'
import type { RawUpstream, UpstreamResponse } from '../pipeline/types.ts'
import { clientBodyOf, nativeOnlyOf, type NativeOnly } from '../inbound/anthropic-paths.ts'
import { createHeldBytes, redactionOf, takeHeld, takeRead, terminated, writeRawHead } from '../raw-bytes.ts'
import { openHttp, upstreamRequestIdOf } from '../../providers/shared/http.ts'
import { createSseParser, feedBounded, type SseParser } from '../../providers/shared/sse.ts'
import { credentialsOf, redactCredentials } from '../../providers/shared/upstream-error.ts'
import { toCanonicalUsage, toFinishReason, type AnthropicUsage } from '../../providers/anthropic/response.ts'
import type { ChatRequest, NativeMessagesTarget, ProviderAdapter } from '../../providers/types.ts'
import { table } from '../../providers/shared/table.ts'

type Obj = Record<string, unknown>

function refuse(need: NativeOnly, why: string): GatewayError {
  return new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason: `${need.field}: ${need.reason}; only an Anthropic provider takes such a request as sent, and ${why}` }, { param: need.field, details: 'request.native_only' })
}

/** A 400 naming the first server tool the provider's config does not allow (`serverTools`). */
function checkServerTools(body: Obj, adapter: ProviderAdapter): void {
  const tools = body['tools']
  if (!Array.isArray(tools)) return
  for (let i = 0; i < tools.length; i++) {
    const type = (tools[i] as Obj | null)?.['type']
    if (typeof type !== 'string' || type === 'custom' || adapter.nativeMessages!.serverToolAllowed(type)) continue
    throw new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason: `tools[${i}].type: server tool '${type}' is not allowed by provider ${adapter.name} (its serverTools)` }, { param: `tools[${i}].type`, details: 'request.native_only' })
  }
}

/** What a Messages request that goes natively sends upstream: the client's body with the target's model. */
function nativeBody(chat: ChatRequest, model: string): Obj {
  return { ...clientBodyOf(chat), model }
}

/** The client's `anthropic-beta` header as one comma-separated value (ExecuteParams.anthropicBeta), if it sent one. */
export function clientAnthropicBeta(ctx: RequestCtx): string | undefined {
  const beta = ctx.req.headers['anthropic-beta']
  return Array.isArray(beta) ? beta.join(',') : beta
}

/** The upstream headers of a native call: the provider's, the merged betas, the request id. */
function nativeHeaders(ctx: RequestCtx, nt: NativeMessagesTarget): Record<string, string> {
  return { ...nt.headers, ...nt.betaHeaders(clientAnthropicBeta(ctx)), 'x-request-id': ctx.id }
}

/**
 * How a `/v1/messages` request goes to `adapter`: 'native' as the client sent it (it holds what only Anthropic takes,
 * or the provider sends every Messages request natively, config `nativeMessages`, and nothing on the route needs the
 * canonical form: no chunk hooks, no plugin that rewrites requests, no stream resumption), 'translated', or the 400 a native-only request gets where it cannot go as sent. Every other request
 * (another API, no chat) is 'translated'.
 */
export function messagesLane(ctx: RequestCtx, adapter: ProviderAdapter | undefined, chat = ctx.chat): 'native' | 'translated' | GatewayError {
  if (ctx.inbound !== 'anthropic' || !chat) return 'translated'
  const need = nativeOnlyOf(chat)
  const nt = adapter?.nativeMessages
  if (need === undefined && !nt?.always) return 'translated'
  const why = !nt
    ? `this request was routed to provider ${adapter?.name} (${adapter?.type})`
    : !ctx.route.passthrough
      ? `route ${ctx.route.name} has plugins that read the answer as canonical chunks`
      : ctx.route.rewritesRequest !== undefined
        ? `route ${ctx.route.name} has plugin ${ctx.route.rewritesRequest}, which rewrites requests in the canonical form`
        : ctx.stream && ctx.alias?.settings.streamRecovery === 'resume'
          ? `alias ${ctx.alias.name} resumes cut streams, which needs the canonical form`
          : undefined
  if (why === undefined) return 'native'
  return need === undefined ? 'translated' : refuse(need, why)
}

/**
 * The body a Messages request that went natively was sent upstream with (for the execution log: the canonical request
 * lacks what only Anthropic takes), or undefined for any other request.
 */
export function nativeRequestOf(ctx: RequestCtx): Obj | undefined {
  if (ctx.inbound !== 'anthropic' || !ctx.chat || messagesLane(ctx, ctx.adapter) !== 'native') return undefined
  return nativeBody(ctx.chat, ctx.model || ctx.chat.model)
}

/** The upstream call of a Messages request that goes natively (messagesLane); resolves once the upstream answered 2xx. */
export async function openNativeMessages(ctx: RequestCtx, adapter: ProviderAdapter): Promise<UpstreamResponse> {
  const nt = adapter.nativeMessages!
  const body = nativeBody(ctx.chat!, ctx.model)
  checkServerTools(body, adapter)
  const head = await openHttp(nt.dispatcher, {
    method: 'POST',
    path: nt.messagesPath,
    headers: { ...nativeHeaders(ctx, nt), ...ctx.extraUpstreamHeaders },
    body: JSON.stringify(body),
  }, {
    provider: adapter.name,
    signal: ctx.upstreamSignal ?? ctx.signal,
    headersTimeoutMs: Math.max(1, Math.min(ctx.upstreamTimeouts?.firstByteMs ?? nt.timeouts.firstByteMs, ctx.deadline - Date.now())),
    bodyTimeoutMs: ctx.upstreamTimeouts?.idleMs ?? nt.timeouts.idleMs,
  })
  ctx.upstreamRequestId = upstreamRequestIdOf(head.headers)
  if (head.status >= 300) {
    const text = redactCredentials(await head.text(1024 * 1024).catch(() => ''), credentialsOf(nt.headers))
    throw withRequestId(nt.toError(head.status, text, head.headers), ctx.upstreamRequestId)
  }
  // An answer in the other form than asked goes no further: JSON to a streamed request reached the client as a body
  // neither JSON nor SSE (the message, then an error event), and SSE to a non-streamed one went on unmetered.
  const type = String(head.headers['content-type'] ?? '').toLowerCase()
  if (type.startsWith('text/event-stream') !== (ctx.stream === true)) {
    head.abort()
    throw withRequestId(new GatewayError('MCP_ERR_UPSTREAM_BAD_RESPONSE', {
      provider: ctx.providerName, reason: `it answered ${type === '' ? 'without a content-type' : type} to a ${ctx.stream ? 'streamed' : 'non-streamed'} request`,
    }), ctx.upstreamRequestId)
  }
  return { kind: 'raw', raw: head }
}

/**
 * Anthropic's refusal with its `request-id` header, as Anthropic sends it (the SDKs show it as the error's request id,
 * what Anthropic's support asks for).
 */
function withRequestId(g: GatewayError, id: string | undefined): GatewayError {
  return id === undefined ? g : changedError(g, { headers: { ...g.headers, 'request-id': id } })
}

/**
 * `count_tokens` of a request that goes natively: the client's body as it came (its `model` replaced, without the
 * `max_tokens` the route added for the Messages parser) to the provider's own count.
 */
export async function countNativeTokens(ctx: RequestCtx, adapter: ProviderAdapter, req: ChatRequest): Promise<number> {
  const nt = adapter.nativeMessages!
  const body = nativeBody(req, ctx.model)
  delete body['max_tokens']
  const head = await openHttp(nt.dispatcher, {
    method: 'POST',
    path: nt.countTokensPath,
    headers: nativeHeaders(ctx, nt),
    body: JSON.stringify(body),
  }, {
    provider: adapter.name,
    signal: ctx.signal,
    headersTimeoutMs: Math.max(1, Math.min(nt.timeouts.firstByteMs, ctx.deadline - Date.now())),
    bodyTimeoutMs: nt.timeouts.idleMs,
  })
  const text = redactCredentials(await head.text(1024 * 1024), credentialsOf(nt.headers))
  if (head.status >= 300) throw nt.toError(head.status, text, head.headers)
  let n: unknown
  try { n = (JSON.parse(text) as Obj)['input_tokens'] } catch { n = undefined }
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) {
    throw new GatewayError('MCP_ERR_UPSTREAM_BAD_RESPONSE', { provider: adapter.name, reason: 'count_tokens answered without input_tokens' })
  }
  return n
}

/** The HTTP status an Anthropic error type stands for (an `error` event carries no status). */
const STATUS_OF_ERROR: Readonly<Record<string, number>> = table({
  invalid_request_error: 400, authentication_error: 401, billing_error: 402, permission_error: 403, not_found_error: 404,
  request_too_large: 413, rate_limit_error: 429, api_error: 500, timeout_error: 504, overloaded_error: 529,
})

/** The counters of a `usage` object that are present, onto `into` (message_delta's are cumulative: they overwrite). */
function mergeUsage(into: AnthropicUsage, u: unknown): void {
  if (u === null || typeof u !== 'object') return
  for (const [k, v] of Object.entries(u as Obj)) if (v !== null && v !== undefined) (into as Obj)[k] = v
}

const TYPE_OF_DATA = /^\{\s*"type"\s*:\s*"([a-z_]+)"/

/**
 * Writes a native Messages answer to the client (what deliverRaw does for OpenAI-shaped ones): the upstream's bytes as
 * they come, credentials masked, a stream's unfinished last event held back until it ends; usage, stop reason and
 * model read on the way for metering, budgets and the execution log.
 */
export function deliverNativeMessages(ctx: RequestCtx, inbound: Inbound, raw: RawUpstream): Promise<void> {
  const res = ctx.res
  // Anthropic's id of the answer, as Anthropic sends it (the SDKs' `_request_id`).
  if (ctx.upstreamRequestId !== undefined) ctx.responseHeaders['request-id'] = ctx.upstreamRequestId
  writeRawHead(ctx, raw)

  const redaction = redactionOf(ctx.adapter?.nativeMessages)
  const usage: AnthropicUsage = {}
  let sawUsage = false
  let stopReason: string | null | undefined
  let sawStop = false
  /** The upstream's own error event (forwarded as it came), or a malformed event (ours is sent instead). */
  let failure: GatewayError | undefined
  let malformed = false
  /** The stream ended inside a read: message_stop (complete) or a malformed event. Checked once a read. */
  let stopped = false
  let finished = false
  const badEvent = (): void => {
    malformed = true
    stopped = true
    failure = new GatewayError('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', { provider: ctx.providerName, reason: 'malformed event in the stream' }, { details: 'upstream.malformed_event' })
  }
  const events = ctx.stream
    ? createSseParser((ev) => {
        if (failure) return
        const d = ev.data
        ctx.streamEvents++
        if (d.charCodeAt(0) !== 123 || d.charCodeAt(d.length - 1) !== 125) { badEvent(); return }
        const type = ev.event || TYPE_OF_DATA.exec(d)?.[1] || ''
        // Deltas and pings (almost every event) are not parsed: only the events that carry usage, the stop or an error.
        if (type !== 'message_start' && type !== 'message_delta' && type !== 'message_stop' && type !== 'error') return
        let o: Obj
        try { o = JSON.parse(d) as Obj } catch { badEvent(); return }
        if (type === 'message_start') {
          const m = o['message'] as Obj | undefined
          if (typeof m?.['model'] === 'string') ctx.responseModel = m['model']
          if (m?.['usage']) { mergeUsage(usage, m['usage']); sawUsage = true }
        } else if (type === 'message_delta') {
          const delta = o['delta'] as Obj | undefined
          if (delta && 'stop_reason' in delta) stopReason = delta['stop_reason'] as string | null
          if (o['usage']) { mergeUsage(usage, o['usage']); sawUsage = true }
        } else if (type === 'message_stop') { sawStop = true; stopped = true }
        else {
          const e = (o['error'] ?? {}) as Obj
          const status = STATUS_OF_ERROR[String(e['type'])] ?? 502
          failure = ctx.adapter!.nativeMessages!.toError(status, JSON.stringify(o), {})
        }
      })
    : undefined
  /** The tap reads a read; an event that outgrew its bound fails the stream, as a malformed one does. */
  const feedEvents = (p: SseParser, chunk: Buffer): void => {
    const g = malformed ? undefined : feedBounded(p, chunk, ctx.providerName)
    if (g) { malformed = true; stopped = true; failure = g }
  }
  const parts: Buffer[] | undefined = ctx.stream ? undefined : []
  const h = createHeldBytes()

  const settle = (): void => {
    if (sawUsage) ctx.usage = toCanonicalUsage(usage)
    if (stopReason !== undefined) ctx.finishReason = toFinishReason(stopReason)
  }

  return new Promise<void>((resolve) => {
    const onDrain = (): void => raw.resume()
    res.on('drain', onDrain)
    const done = (): void => { finished = true; settle(); res.off('drain', onDrain); resolve() }
    const failed = (g: GatewayError): void => { ctx.errorCode = g.code; ctx.details = g.details }
    const endWithError = (g: GatewayError): void => {
      if (finished) return
      ctx.upstreamEnd = performance.now()
      failed(g)
      if (ctx.stream && !res.destroyed) res.end(inbound.createStreamEncoder(ctx.requestedModel, ctx.includeUsage, ctx).error(g))
      else res.destroy(g)
      done()
    }
    /** Sends bytes on (through the event tap, or into `parts`). False: backpressure, or the stream ended here. */
    const forward = (chunk: Buffer): boolean => {
      if (events) {
        feedEvents(events, chunk)
        if (stopped) {
          if (malformed) {
            // The read holding the malformed event is not sent: the client's last event is a whole one, then ours. Ended
            // before the upstream is aborted (its abort reports back through onError, which then finds it finished).
            endWithError(failure!)
            raw.abort()
            return false
          }
          // message_stop: the message is complete. The client's stream ends here, whether or not the upstream closes
          // its body now (its end, or anything it sends after this, is not the client's: see onData).
          ctx.upstreamEnd = performance.now()
          if (failure) failed(failure) // the upstream's error event, then message_stop: the client has it as sent
          if (!res.destroyed) res.end(chunk)
          done()
          return true
        }
      } else parts!.push(chunk)
      if (res.destroyed) return false
      return res.write(chunk)
    }
    raw.consume({
      onData(chunk) {
        if (finished) {
          // Bytes after message_stop, or after a failure: the body did not end where it should. Its connection is
          // discarded, not reused (a body that only stays open is discarded by the idle timeout, unheard of).
          raw.abort()
          return false
        }
        if (ctx.firstChunk === 0) ctx.firstChunk = performance.now()
        const out = takeRead(h, chunk, redaction, events !== undefined)
        return out.length === 0 ? true : forward(out)
      },
      onEnd() {
        if (finished) return
        const last = takeHeld(h, redaction)
        if (!events) {
          if (last) forward(last)
          ctx.upstreamEnd = performance.now()
          readBody(ctx, parts!, (u) => { mergeUsage(usage, u); sawUsage = true }, (s) => { stopReason = s })
          if (!res.destroyed) res.end()
          done()
          return
        }
        // A final event without its blank line counts if it completes the stream.
        if (last) feedEvents(events, last)
        events.end()
        if (malformed) { endWithError(failure!); return }
        ctx.upstreamEnd = performance.now()
        if (last && !res.destroyed) res.write(terminated(last))
        if (failure) failed(failure) // the upstream's error event: the client has it as sent
        else if (!sawStop) {
          // Cut before message_stop (the held half event, if any, was never sent): say so.
          const g = new GatewayError('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', { provider: ctx.providerName, reason: 'the stream ended before the message finished' }, { details: 'upstream.stream_cut' })
          failed(g)
          if (!res.destroyed) res.write(inbound.createStreamEncoder(ctx.requestedModel, ctx.includeUsage, ctx).error(g))
        }
        if (!res.destroyed) res.end()
        done()
      },
      onError(err) {
        if (finished) return
        const rest = takeHeld(h, redaction)
        if (rest && !events) forward(rest)
        if (!finished) endWithError(err)
      },
    })
  })
}

/** Usage, stop reason and model of a non-streamed Message, from its bytes (a body that is not a Message has none). */
function readBody(ctx: RequestCtx, parts: readonly Buffer[], onUsage: (u: unknown) => void, onStop: (s: string | null) => void): void {
  let m: Obj
  try { m = JSON.parse((parts.length === 1 ? parts[0]! : Buffer.concat(parts)).toString('utf8')) as Obj } catch { return }
  if (m === null || typeof m !== 'object') return
  if (typeof m['model'] === 'string') ctx.responseModel = m['model']
  if (m['usage'] && typeof m['usage'] === 'object') onUsage(m['usage'])
  if ('stop_reason' in m) onStop(m['stop_reason'] as string | null)
}
