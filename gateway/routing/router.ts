/**
 * The one retry loop. For an alias it walks the ordered candidates: an attempt goes through the
 * target's circuit breaker and the route's composed interceptors to the terminal call; a stream
 * is committed only once its first chunk arrived (a slow first token fails over). Retryable
 * failures (connect errors, resets before the first byte, 408/429/5xx/529) move to the next
 * target or, with none left, back off (Retry-After honoured, capped) within one deadline and a
 * retry budget. Other 4xx go back unchanged; context-length and content-filter rejections fall
 * back only as configured. A provider's `x-should-retry` decides over the status: `true` makes any failure
 * retryable, `false` keeps the target from being tried again (other targets still are).
 */
import { changedError, GatewayError } from '../errors.ts'
import type { AttemptRecord, RequestCtx } from '../context.ts'
import type { RawSink, RawUpstream, UpstreamOpen, UpstreamResponse } from '../pipeline/types.ts'
import type { ChatChunk, ChatStream } from '../../providers/types.ts'
import { candidatesFor, type CompiledAlias, type CompiledTarget } from './alias.ts'
import type { RoutingSettings } from './config.ts'
import type { RoutingMetrics } from './metrics.ts'
import { FLEX_UNAVAILABLE, REQUEST_DEADLINE } from './target-state.ts'
import type { Tracing } from '../tracing.ts'

export type FailureClass = 'abort' | 'fatal' | 'retryable' | 'context_length' | 'content_filter' | 'circuit_open'

const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504, 529])

export function classify(e: unknown): FailureClass {
  const x = e as { code?: string }
  if (x?.code === 'EOPENBREAKER') return 'circuit_open'
  if (!(e instanceof GatewayError)) return 'fatal'
  switch (e.code) {
    case 'MCP_ERR_REQ_ABORTED': return 'abort'
    case 'MCP_ERR_UPSTREAM_TIMEOUT':
      // The request's deadline ran out: no time for another attempt (and not the target's fault).
      return e.details === REQUEST_DEADLINE ? 'abort' : 'retryable'
    case 'MCP_ERR_UPSTREAM_CONNECT':
    case 'MCP_ERR_UPSTREAM_RESET':
    case 'MCP_ERR_UPSTREAM_BAD_RESPONSE':
    case 'MCP_ERR_UPSTREAM_STREAM_INTERRUPTED':
      return 'retryable'
    case 'MCP_ERR_UPSTREAM_ERROR': {
      const pc = e.providerCode ?? ''
      if (pc === 'context_length_exceeded' || /context.?length|too many tokens|prompt is too long/i.test(e.message)) return 'context_length'
      if (pc === 'content_filter' || pc === 'content_policy_violation' || e.details === 'upstream.content_filter') return 'content_filter'
      // The provider said the request may be sent again (x-should-retry: true), whatever the status.
      return RETRYABLE_STATUS.has(e.status) || e.headers?.['x-should-retry'] === 'true' ? 'retryable' : 'fatal'
    }
    default:
      return 'fatal'
  }
}

/** The provider's retry-after-ms, else Retry-After in ms (seconds or an HTTP date), or undefined. */
export function retryAfterMs(e: unknown, now = Date.now()): number | undefined {
  const h = (e as GatewayError)?.headers
  const ms = h?.['retry-after-ms']
  if (ms !== undefined && /^\d+(\.\d+)?$/.test(ms)) return Number(ms)
  const v = h?.['retry-after']
  if (v === undefined) return undefined
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000
  const t = Date.parse(v)
  return Number.isNaN(t) ? undefined : Math.max(0, t - now)
}

/** What the official OpenAI and Anthropic SDKs retry on their own, unless told otherwise: 408, 409, 429 and 5xx. */
function sdkRetries(status: number): boolean {
  return status === 408 || status === 409 || status === 429 || status >= 500
}

/** Gateway refusals that sending the same request again cannot get past. */
const FINAL_REFUSALS: ReadonlySet<string> = new Set([
  'MCP_ERR_UPSTREAM_ADDRESS_BLOCKED', 'MCP_ERR_EXEC_DEPLOYMENT_INACTIVE', 'MCP_ERR_ADMIN_MASTER_KEY_MISSING', 'MCP_ERR_ADMIN_CONFLICT',
])

/**
 * The longest Retry-After the OpenAI SDK waits out: past it, it retries after its own backoff (half a second, then one
 * second), long before the limit lifts; the Anthropic SDK sleeps the whole delay (up to 24 days), holding the call.
 */
export const SDK_RETRY_AFTER_MAX_MS = 60_000

/**
 * `x-should-retry: false` for an error answer whose status the official SDKs would retry (with their default
 * `maxRetries: 2`, every such answer costs two more round trips, each through this gateway's own retries) when the
 * same request cannot succeed soon: a refusal no retry gets past, or a Retry-After beyond what the SDKs wait out.
 * Undefined leaves the SDK's own rules (and a provider's own `x-should-retry`, passed on, wins).
 */
export function clientRetryHint(g: GatewayError, now = Date.now()): 'false' | undefined {
  if (g.headers?.['x-should-retry'] !== undefined || !sdkRetries(g.status)) return undefined
  if (FINAL_REFUSALS.has(g.code)) return 'false'
  const wait = retryAfterMs(g, now)
  return wait !== undefined && wait > SDK_RETRY_AFTER_MAX_MS ? 'false' : undefined
}

/** The headers of an error answer, on every listener: the error's own, and the SDKs' retry hint when it has one. */
export function errorAnswerHeaders(g: GatewayError): Readonly<Record<string, string>> | undefined {
  const hint = clientRetryHint(g)
  return hint === undefined ? g.headers : { ...g.headers, 'x-should-retry': hint }
}

/** At most `ratio` of active requests may be retrying at once, and always at least `min`. */
export class RetryBudget {
  retrying = 0
  readonly #active: () => number

  constructor(active: () => number) {
    this.#active = active
  }

  tryAcquire(b: RoutingSettings['retryBudget']): boolean {
    if (this.retrying >= Math.max(b.min, Math.floor(this.#active() * b.ratio))) return false
    this.retrying++
    return true
  }

  release(): void {
    this.retrying--
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal.aborted) { resolve(); return }
    const t = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve() }, ms)
    const onAbort = (): void => { clearTimeout(t); resolve() }
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

function firstTokenTimeout(ctx: RequestCtx, t: CompiledTarget): GatewayError {
  return new GatewayError('MCP_ERR_UPSTREAM_TIMEOUT', { provider: t.provider, phase: 'first token' }, { details: 'upstream.first_token_timeout' })
  void ctx
}

/** Waits for a translated stream's first chunk, then hands back a stream that replays it. */
async function primeStream(stream: ChatStream, ms: number, onTimeout: () => GatewayError): Promise<ChatStream> {
  const it = stream[Symbol.asyncIterator]()
  let timer: NodeJS.Timeout | undefined
  const first = await Promise.race([
    it.next(),
    new Promise<never>((_, reject) => { timer = setTimeout(() => reject(onTimeout()), ms) }),
  ]).catch(async (e: unknown) => { await it.return?.(undefined).catch(() => {}); throw e }).finally(() => clearTimeout(timer))
  return {
    status: stream.status,
    final: stream.final,
    async *[Symbol.asyncIterator](): AsyncIterator<ChatChunk> {
      if (first.done) return
      yield first.value
      for (;;) {
        const n = await it.next()
        if (n.done) return
        yield n.value
      }
    },
  }
}

/** Waits for a pass-through body's first bytes, holding them until delivery starts. */
function primeRaw(raw: RawUpstream, ms: number, onTimeout: () => GatewayError): Promise<RawUpstream> {
  return new Promise((resolve, reject) => {
    const held: Buffer[] = []
    let ended = false
    let failed: GatewayError | undefined
    let sink: RawSink | undefined
    let settled = false
    const timer = setTimeout(() => { if (!settled) { settled = true; raw.abort(); reject(onTimeout()) } }, ms)
    const primed: RawUpstream = {
      status: raw.status,
      headers: raw.headers,
      consume(s) {
        sink = s
        for (const c of held.splice(0)) s.onData(c)
        if (failed) s.onError(failed)
        else if (ended) s.onEnd()
        else raw.resume()
      },
      resume: () => raw.resume(),
      abort: (r) => raw.abort(r),
    }
    raw.consume({
      onData(c) {
        if (sink) return sink.onData(c)
        held.push(c)
        if (!settled) { settled = true; clearTimeout(timer); resolve(primed) }
        return false
      },
      onEnd() {
        if (sink) { sink.onEnd(); return }
        ended = true
        if (!settled) { settled = true; clearTimeout(timer); resolve(primed) }
      },
      onError(e) {
        if (sink) { sink.onError(e); return }
        failed = e
        if (!settled) { settled = true; clearTimeout(timer); reject(e) }
      },
    })
  })
}

/**
 * A flex request's 429 (other than insufficient_quota) as a flex refusal: OpenAI answers 429 when flex capacity is
 * short, which says nothing of the target's standard capacity (not a breaker failure, no cool-down), and which
 * `flexFallback` answers by sending the request again at the standard tier.
 */
function flexRefusal(e: unknown): unknown {
  if (!(e instanceof GatewayError) || e.code !== 'MCP_ERR_UPSTREAM_ERROR' || e.status !== 429 || e.providerCode === 'insufficient_quota') return e
  return changedError(e, { details: FLEX_UNAVAILABLE })
}

export interface RouterDeps {
  readonly budget: RetryBudget
  readonly metrics: RoutingMetrics
  /** Present only when tracing is enabled: a CLIENT span per attempt. */
  readonly tracing: Tracing | undefined
}

function bindTarget(ctx: RequestCtx, t: CompiledTarget): void {
  ctx.providerName = t.provider
  ctx.model = t.model
  ctx.adapter = t.adapter
  if (ctx.chat) ctx.chat.model = t.model
  else if (ctx.embedding) ctx.embedding.model = t.model
  const to = t.timeouts
  ctx.upstreamTimeouts = to.firstByteMs !== undefined || to.idleMs !== undefined ? { firstByteMs: to.firstByteMs, idleMs: to.idleMs } : undefined
}

/** One attempt on one target: breaker → interceptors → terminal, and for streams the first chunk. */
async function attempt(ctx: RequestCtx, t: CompiledTarget, open: UpstreamOpen, tracing: Tracing | undefined): Promise<UpstreamResponse> {
  const started = performance.now()
  const endSpan = tracing?.startAttempt(ctx)
  const attemptAbort = new AbortController()
  const onParentAbort = (): void => attemptAbort.abort(ctx.signal.reason)
  ctx.signal.addEventListener('abort', onParentAbort, { once: true })
  let total: NodeJS.Timeout | undefined
  if (t.timeouts.totalMs !== undefined) {
    total = setTimeout(() => attemptAbort.abort(new GatewayError('MCP_ERR_UPSTREAM_TIMEOUT', { provider: t.provider, phase: 'total' }, { details: 'upstream.total_timeout' })), t.timeouts.totalMs)
  }
  ctx.upstreamSignal = attemptAbort.signal
  const cleanup = (): void => { clearTimeout(total); ctx.signal.removeEventListener('abort', onParentAbort) }
  try {
    const up = await t.state.fire(ctx.chat?.service_tier === 'flex' ? () => open(ctx).catch((e: unknown) => { throw flexRefusal(e) }) : () => open(ctx))
    let primed = up
    const firstTokenMs = t.timeouts.firstTokenMs ?? t.timeouts.firstByteMs
    if (ctx.stream && firstTokenMs !== undefined) {
      const remaining = Math.max(1, firstTokenMs - (performance.now() - started))
      if (up.kind === 'stream') primed = { kind: 'stream', stream: await primeStream(up.stream, remaining, () => firstTokenTimeout(ctx, t)) }
      else if (up.kind === 'raw') primed = { kind: 'raw', raw: await primeRaw(up.raw, remaining, () => firstTokenTimeout(ctx, t)) }
    }
    t.state.recordSuccess(performance.now() - started)
    // Bound to the request's signal to its end, not only to the headers: the gateway's own abort at the shutdown
    // deadline (MCP_ERR_SERVER_DRAINING) must reach a stream in flight too.
    ctx.onDone(cleanup)
    // A stream that fails after its headers fails this attempt too (as on the direct path, gateway/handler.ts).
    if (endSpan) ctx.onDone(() => endSpan(ctx.errorCode !== undefined && ctx.details.startsWith('upstream') ? { code: ctx.errorCode, message: ctx.details } : undefined))
    return primed
  } catch (e) {
    cleanup()
    endSpan?.(e)
    const reason = attemptAbort.signal.reason
    throw reason instanceof GatewayError && reason.details === 'upstream.total_timeout' ? reason : e
  }
}

/** What the attempts were, on every answer after at least one (success or error): x-mcp-attempts, x-mcp-fallback-reason. */
function attemptHeaders(ctx: RequestCtx): void {
  if (ctx.attempts === 0) return
  ctx.responseHeaders['x-mcp-attempts'] = String(ctx.attempts)
  if (ctx.fallbackReason !== undefined) ctx.responseHeaders['x-mcp-fallback-reason'] = ctx.fallbackReason
}

export async function routeAlias(ctx: RequestCtx, alias: CompiledAlias, aliases: ReadonlyMap<string, CompiledAlias>, deps: RouterDeps): Promise<UpstreamResponse> {
  const routing = ctx.pipeline.settings.routing
  const retry = alias.settings.retry
  const candidates = candidatesFor(ctx, alias, aliases)
  const excluded = new Set<CompiledTarget>()
  const tried = new Set<CompiledTarget>()
  let lastErr: unknown
  let last: CompiledTarget | undefined
  let failures = 0
  let retrying = false
  const m = deps.metrics
  try {
    while (failures < retry.maxAttempts) {
      const now = Date.now()
      if (now >= ctx.deadline) break
      // Next: the first untried available candidate; else the last one again, after a backoff.
      let next: { target: CompiledTarget; alias: CompiledAlias } | undefined
      for (const c of candidates) {
        if (excluded.has(c.target) || tried.has(c.target)) continue
        if (c.target.state.inflight >= c.target.maxConcurrent) { ctx.fallbackReason ??= 'max_concurrent'; continue }
        if (!c.target.state.available(now)) { ctx.fallbackReason ??= c.target.state.unavailableReason(now); continue }
        next = c
        break
      }
      // An ejected target is not retried either (only waited for when cooling down after a 429): the last error goes back.
      if (!next && last && !excluded.has(last) && last.state.ejectedUntil <= now) {
        const cooling = last.state.coolingUntil - now
        const backoff = cooling > 0
          ? cooling
          : Math.min(retry.backoffMaxMs, retry.backoffBaseMs * 2 ** Math.max(0, failures - 1)) * (0.5 + Math.random() * 0.5)
        if (now + backoff >= ctx.deadline) break
        await sleep(backoff, ctx.signal)
        // Timers run on the event loop's cached clock, which lags Date.now() under load: a wait for a
        // Retry-After can end a few ms before the cooling it waited for. Finish it rather than give up.
        const rest = last.state.coolingUntil - Date.now()
        if (rest > 0 && rest <= 1000 && !ctx.signal.aborted) await sleep(rest + 1, ctx.signal)
        if (ctx.signal.aborted) break
        // Still unavailable (ejected, its breaker opened, marked unhealthy meanwhile): not retried.
        if (last.state.available(Date.now())) next = { target: last, alias }
      }
      if (!next) break
      const t = next.target
      if (ctx.attempts > 0) {
        if (!retrying) {
          if (!deps.budget.tryAcquire(routing.retryBudget)) { m.retryBudgetExhausted.inc(); break }
          retrying = true
        }
        m.retries(alias.name, ctx.fallbackReason ?? 'retry').inc()
      }
      bindTarget(ctx, t)
      tried.add(t)
      last = t
      t.state.inflight++
      ctx.onDone(() => { t.state.inflight-- })
      try {
        const up = await attempt(ctx, t, ctx.route.open, deps.tracing)
        if (ctx.stream && alias.settings.streamRecovery === 'resume') {
          ctx.resume = (delivered) => resumeStream(ctx, tried, candidates.map((c) => c.target), delivered, deps)
        }
        ctx.responseHeaders['x-mcp-provider'] = t.provider
        ctx.responseHeaders['x-mcp-model'] = t.model
        attemptHeaders(ctx)
        if (ctx.fallbackReason !== undefined) m.fallbacks(alias.name, ctx.fallbackReason).inc()
        return up
      } catch (e) {
        const cls = classify(e)
        if (cls === 'circuit_open') {
          // Not an attempt: the breaker refused before anything was sent.
          ctx.attempts = Math.max(0, ctx.attempts - 1)
          ctx.fallbackReason ??= 'circuit_open'
          excluded.add(t)
          continue
        }
        t.state.recordFailure(e, routing, Date.now())
        const failed: AttemptRecord = { provider: t.provider, model: t.model, error: (e as GatewayError).code ?? String(e), status: (e as GatewayError).status ?? 0 }
        if (ctx.upstreamRequestId !== undefined) failed.upstreamRequestId = ctx.upstreamRequestId
        ctx.attemptLog.push(failed)
        lastErr = e
        if (cls === 'abort' || cls === 'fatal') throw e
        failures++
        if (cls === 'context_length') {
          if (!alias.settings.fallbackOn.contextLength) throw e
          ctx.fallbackReason = 'context_length_exceeded'
          for (const c of candidates) if (c.target.contextWindow <= t.contextWindow || c.target.model === t.model) excluded.add(c.target)
          if (candidates.every((c) => excluded.has(c.target))) throw e
          continue
        }
        if (cls === 'content_filter') {
          if (!alias.settings.fallbackOn.contentFilter) throw e
          ctx.fallbackReason = 'content_filter'
          excluded.add(t)
          continue
        }
        if ((e as GatewayError).details === FLEX_UNAVAILABLE) {
          ctx.fallbackReason = 'flex_unavailable'
          // Sent again at once to the same target, at the standard tier (it stays first among the candidates).
          if (alias.settings.flexFallback && ctx.chat) { ctx.chat.service_tier = 'default'; tried.delete(t) }
          continue
        }
        // The provider said this request must not be sent again (x-should-retry: false; OpenAI's insufficient_quota):
        // other targets may still take it, this one is not tried again after a backoff.
        if ((e as GatewayError).headers?.['x-should-retry'] === 'false') excluded.add(t)
        const ra = retryAfterMs(e)
        if (ra !== undefined) {
          // The target cools down for the Retry-After, capped (a provider's header does not take it out for hours).
          t.state.coolingUntil = Date.now() + Math.min(ra, retry.retryAfterCapMs)
          // Asked to wait longer than this alias waits: not asked again in this request (other targets still are; with
          // none, the 429 goes back with its Retry-After).
          if (ra > retry.retryAfterCapMs) excluded.add(t)
        }
        ctx.fallbackReason = (e as GatewayError).status === 429 ? 'rate_limited' : (e as GatewayError).details ?? 'upstream_error'
      }
    }
  } catch (e) {
    // An error that ends the loop at once (fatal, abort, a context-length or content-filter exit) says what was tried too.
    attemptHeaders(ctx)
    throw e
  } finally {
    if (retrying) deps.budget.release()
  }
  if (lastErr !== undefined) {
    attemptHeaders(ctx)
    throw lastErr
  }
  m.unavailable(alias.name).inc()
  throw new GatewayError('MCP_ERR_UPSTREAM_UNAVAILABLE', { model: alias.name }, {
    details: 'route.all_targets_down',
    headers: { 'retry-after': String(routing.unavailableRetryAfterS) },
  })
}

/**
 * Mid-stream recovery: after the client already received `delivered`, continue the completion on
 * another available target. With text delivered, only a target that accepts a trailing assistant
 * message as a prefix (prefill) can continue without repeating it; with nothing delivered yet any
 * target restarts cleanly. The candidates are tried in order, each at most once per request (never one whose attempt
 * or stream already failed), within the request's deadline and one slot of the retry budget. Resolves undefined when
 * no target can continue.
 */
async function resumeStream(ctx: RequestCtx, tried: Set<CompiledTarget>, candidates: readonly CompiledTarget[], delivered: string, deps: RouterDeps): Promise<ChatStream | undefined> {
  const base = ctx.chat
  if (!base) return undefined
  const routing = ctx.pipeline.settings.routing
  if (Date.now() >= ctx.deadline || ctx.signal.aborted) return undefined
  if (!deps.budget.tryAcquire(routing.retryBudget)) { deps.metrics.retryBudgetExhausted.inc(); return undefined }
  try {
    const original = ctx.originalMessages ?? base.messages
    ctx.originalMessages = original
    const messages = delivered === '' ? original : [...original, { role: 'assistant' as const, content: delivered }]
    ctx.fallbackReason = 'stream_interrupted'
    deps.metrics.fallbacks(ctx.alias?.name ?? '', 'stream_interrupted').inc()
    for (const next of candidates) {
      const now = Date.now()
      if (now >= ctx.deadline || ctx.signal.aborted) return undefined
      if (tried.has(next) || !next.state.available(now) || (delivered !== '' && !next.supportsPrefill)) continue
      tried.add(next)
      ctx.chat = { ...base, messages }
      bindTarget(ctx, next)
      next.state.inflight++
      ctx.onDone(() => { next.state.inflight-- })
      try {
        const up = await attempt(ctx, next, ctx.route.open, deps.tracing)
        if (up.kind === 'stream') {
          // deliverStream hands over everything delivered so far (every target's part), not only this target's.
          ctx.resume = (all) => resumeStream(ctx, tried, candidates, all, deps)
          return up.stream
        }
        // Not a stream (never for the lanes a resuming alias uses): let it go and try the next target.
        if (up.kind === 'raw') up.raw.abort()
      } catch (e) {
        next.state.recordFailure(e, routing, Date.now())
        const failed: AttemptRecord = { provider: next.provider, model: next.model, error: (e as GatewayError).code ?? String(e), status: (e as GatewayError).status ?? 0 }
        if (ctx.upstreamRequestId !== undefined) failed.upstreamRequestId = ctx.upstreamRequestId
        ctx.attemptLog.push(failed)
        if (classify(e) === 'abort') return undefined
      }
    }
    return undefined
  } finally {
    deps.budget.release()
  }
}
