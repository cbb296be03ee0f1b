/**
 * rate-limit: requests per second and per minute, tokens per minute and concurrent requests, per
 * key, team, model (or alias), IP, route, or globally (docs/rate-limit.md).
 *
 * Every admission is all-or-nothing in one store call per phase: request rules that need no body
 * in onRequestHeaders (cheap rejects before the body is read), token and model rules in
 * onRequestBody. In-process by default (no I/O, synchronous); with Redis (`services.redis`) one
 * Lua script per phase makes limits exact across instances. Redis slow or down → `failMode`
 * ('local' | 'closed' | 'open') within `timeoutMs`, counted and logged. `mode: shadow` counts
 * would-be rejections and enforces nothing. onComplete releases concurrency slots and corrects
 * token charges with the actual usage, never delaying the client.
 */
import type { RequestCtx } from '../../gateway/context.ts'
import { GatewayError } from '../../gateway/errors.ts'
import type { Metrics } from '../../gateway/metrics.ts'
import type { HookResult, LocalReply, PluginFactory } from '../../gateway/pipeline/types.ts'
import type { Redis } from '../../gateway/redis.ts'
import { rateLimitConfigSchema, type RateLimitConfig } from './config.ts'
import type { Check, StoreWrites, Verdict } from './gcra.ts'
import { tighter, writeHeaders, type HeaderFigures } from './headers.ts'
import { applicable, compileRules, createRuleSet, type Applied, type Metric, type Phase } from './rules.ts'
import { LocalStore } from './store-local.ts'
import { isFailure, RedisStore, type BackendFailure } from './store-redis.ts'
import { actualTokens, cacheHit, estimatedTokens, estimateTokens } from './tokens.ts'

/** Per-request state: what to release and correct on completion, and the header figures. */
export interface RateLimitState {
  requests: HeaderFigures | undefined
  tokens: HeaderFigures | undefined
  slots: { store: StoreWrites; key: string }[] | undefined
  charges: { store: StoreWrites; key: string; emissionMs: number; cost: number }[] | undefined
  /** onComplete ran: anything admitted later (a slow Redis answer) is released at once. */
  done: boolean
}

declare module '../../gateway/context.ts' {
  interface CtxSlots {
    'rate-limit': RateLimitState
  }
}

const UNITS: Readonly<Record<Metric, string>> = { rps: 'requests per second', rpm: 'requests per minute', tpm: 'tokens per minute', concurrency: 'at once' }
const LOG_EVERY_MS = 10_000
const WAIT_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1]

/** The degraded gauge sums the live instances of one registry (instances come and go on reload). */
const probes = new WeakMap<Metrics, Set<() => boolean>>()
function registerProbe(metrics: Metrics, probe: () => boolean): () => void {
  let set = probes.get(metrics)
  if (!set) {
    const s = new Set<() => boolean>()
    set = s
    probes.set(metrics, s)
    metrics.gauge('mcp_plugin_rate_limit_degraded', '1 while a rate-limit instance applies its fail policy instead of Redis', [], (put) => {
      let v = 0
      for (const p of s) if (p()) v = 1
      put(v)
    })
  }
  set.add(probe)
  const s = set
  return () => { s.delete(probe) }
}

function stateOf(ctx: RequestCtx): RateLimitState {
  let s = ctx.slots['rate-limit']
  if (!s) { s = { requests: undefined, tokens: undefined, slots: undefined, charges: undefined, done: false }; ctx.slots['rate-limit'] = s }
  return s
}

function isRequestRate(m: Metric): boolean {
  return m === 'rps' || m === 'rpm'
}

export const rateLimitPlugin: PluginFactory<RateLimitConfig> = {
  name: 'rate-limit',
  configSchema: rateLimitConfigSchema,
  sideEffects: 'io',
  // Token limits are corrected with the actual usage: streams ask the upstream for it.
  needsUsage: true,
  create(config, deps) {
    const names = new Set<string>()
    for (const l of config.limits) {
      if (names.has(l.name)) throw new GatewayError('MCP_ERR_PLUGIN_CONFIG_INVALID', { plugin: 'rate-limit', reason: `limits: the name '${l.name}' is used twice` }, { details: 'config.plugin_invalid' })
      names.add(l.name)
    }
    const redis: Redis | undefined = deps.services.redis
    if (config.backend === 'redis' && !redis) {
      throw new GatewayError('MCP_ERR_PLUGIN_CONFIG_INVALID', { plugin: 'rate-limit', reason: "backend 'redis' needs a Redis connection (set MCP_REDIS_URL)" }, { details: 'config.plugin_invalid' })
    }
    const log = deps.logger
    const enforce = config.mode === 'enforce'
    const modeLabel = config.mode
    const set = createRuleSet(compileRules(config.limits))
    const { charsPerToken, defaultMaxTokens } = config.estimate
    const slotTtlMs = config.concurrencyTtlMs

    const m = deps.metrics
    const rejected = m.counter('mcp_plugin_rate_limit_rejected_total', 'Requests over a rate limit (mode=shadow: counted, not refused)', ['limit', 'mode'])
    const failures = m.counter('mcp_plugin_rate_limit_backend_failures_total', 'Admissions Redis did not decide (timeout, error, not connected, breaker open)', ['reason'])
    const fallbacks = m.counter('mcp_plugin_rate_limit_fallback_total', 'Requests decided by the fail policy instead of Redis', ['policy'])
    const writeFailures = m.counter('mcp_plugin_rate_limit_write_failures_total', 'Completion writes (slot release, token correction) Redis did not take', ['op'])
    const fallbackChild = fallbacks.labels(config.failMode)
    // How long admissions waited on Redis (timeouts included): the latency Redis adds to a request.
    const waited = m.histogram('mcp_plugin_rate_limit_backend_wait_seconds', 'Time an admission waited on Redis, timeouts included', [], WAIT_BUCKETS).labels()

    const local = new LocalStore()
    const remote = (config.backend === 'redis' || config.backend === 'auto') && redis
      ? new RedisStore(redis, {
          prefix: config.keyPrefix,
          timeoutMs: config.timeoutMs,
          breakerFailures: config.breakerFailures,
          breakerCooldownMs: config.breakerCooldownMs,
          onWriteFailure: (op) => writeFailures.labels(op).inc(),
        })
      : undefined
    let degradedUntil = 0
    const unregister = remote
      ? registerProbe(m, () => redis!.status !== 'ready' || remote.breakerOpen || Date.now() < degradedUntil)
      : undefined
    log.info({ backend: remote ? 'redis' : 'local', mode: config.mode, failMode: config.failMode, limits: config.limits.length }, 'rate-limit ready')

    // Logging is rate-limited: one line per reason every 10 s, with how many were not logged.
    const lastLogged = new Map<string, number>()
    const suppressed = new Map<string, number>()
    function logThrottled(kind: string, fields: Record<string, unknown>, msg: string): void {
      const now = Date.now()
      if (now - (lastLogged.get(kind) ?? 0) < LOG_EVERY_MS) { suppressed.set(kind, (suppressed.get(kind) ?? 0) + 1); return }
      lastLogged.set(kind, now)
      const n = suppressed.get(kind) ?? 0
      suppressed.delete(kind)
      log.warn({ ...fields, suppressed: n || undefined }, msg)
    }

    /**
     * Rejections of request-rate rules are cached until their retry time: exact, since nothing refunds requests.
     * `resetAt` is when the rule is back to idle, as the store said, for the `x-ratelimit-reset-requests` header.
     */
    const denied = new Map<string, { until: number; resetAt: number }>()
    const sweeper = setInterval(() => {
      const now = performance.now()
      for (const [k, d] of denied) if (d.until <= now) denied.delete(k)
    }, 10_000)
    sweeper.unref()

    function refuse(a: Applied, retryMs: number): LocalReply | undefined {
      rejected.labels(a.rule.id, modeLabel).inc()
      if (!enforce) return undefined
      const retryS = Math.max(1, Math.ceil(retryMs / 1000))
      const concurrency = a.rule.metric === 'concurrency'
      return {
        code: concurrency ? 'MCP_ERR_LIMIT_CONCURRENCY' : 'MCP_ERR_LIMIT_RATE',
        params: { limit: a.rule.id, count: a.count, unit: UNITS[a.rule.metric], retryAfter: retryS },
        details: `rate_limit.${a.rule.metric}`,
        headers: { 'retry-after': String(retryS), 'retry-after-ms': String(Math.max(1, Math.ceil(retryMs))) },
      }
    }

    function figures(a: Applied, v: Verdict, i: number): HeaderFigures {
      return { limit: a.count, remaining: v.remaining[i] ?? 0, resetMs: v.resetMs[i] ?? 0 }
    }

    /** Records what a verdict means for the request; returns the local reply when it is refused. */
    function decide(ctx: RequestCtx, applied: readonly Applied[], v: Verdict, store: StoreWrites): HookResult {
      const st = stateOf(ctx)
      if (!v.ok) {
        const a = applied[v.failed]!
        if (isRequestRate(a.rule.metric)) {
          const now = performance.now()
          denied.set(a.check.key, { until: now + v.retryMs, resetAt: now + (v.resetMs[v.failed] ?? v.retryMs) })
        }
        if (enforce) {
          if (isRequestRate(a.rule.metric)) st.requests = { ...figures(a, v, v.failed), remaining: 0 }
          else if (a.rule.metric === 'tpm') st.tokens = figures(a, v, v.failed)
        }
        return refuse(a, v.retryMs)
      }
      for (let i = 0; i < applied.length; i++) {
        const a = applied[i]!
        const c = a.check
        if (c.kind === 'slot') (st.slots ??= []).push({ store, key: c.key })
        else if (a.rule.metric === 'tpm') (st.charges ??= []).push({ store, key: c.key, emissionMs: c.emissionMs, cost: c.cost })
        if (enforce) {
          if (isRequestRate(a.rule.metric)) st.requests = tighter(st.requests, figures(a, v, i))
          else if (a.rule.metric === 'tpm') st.tokens = tighter(st.tokens, figures(a, v, i))
        }
      }
      // The client left while Redis was answering: give back what was just taken.
      if (st.done) complete(ctx, st)
      return undefined
    }

    function fallback(ctx: RequestCtx, applied: readonly Applied[], checks: readonly Check[], f: BackendFailure): HookResult {
      failures.labels(f.failure).inc()
      fallbackChild.inc()
      degradedUntil = Date.now() + 1000
      logThrottled(`backend:${f.failure}`, { reason: f.failure, err: f.error?.message, failMode: config.failMode, timeoutMs: config.timeoutMs }, 'rate-limit: Redis did not decide; applying failMode')
      switch (config.failMode) {
        case 'local': return decide(ctx, applied, local.admit(checks), local)
        case 'open': return undefined
        case 'closed':
          rejected.labels('backend_unavailable', modeLabel).inc()
          if (!enforce) return undefined
          return { code: 'MCP_ERR_LIMIT_BACKEND_UNAVAILABLE', details: 'rate_limit.backend_unavailable', headers: { 'retry-after': '1' } }
      }
    }

    function admit(ctx: RequestCtx, phase: Phase): HookResult | Promise<HookResult> {
      let estimate: number | undefined
      const applied = applicable(set, ctx, phase, {
        slotTtlMs,
        // A cache hit already known (the cache runs before this plugin) costs no tokens.
        tokens: () => (estimate ??= cacheHit(ctx) ? 0 : estimateTokens(ctx, charsPerToken, defaultMaxTokens)),
      })
      if (applied.length === 0) return undefined
      const now = performance.now()
      for (const a of applied) {
        if (!isRequestRate(a.rule.metric)) continue
        const d = denied.get(a.check.key)
        if (d === undefined) continue
        if (d.until <= now) { denied.delete(a.check.key); continue }
        // The same figures as the store's refusal, less the time since: reset is when the rule is idle again.
        if (enforce) stateOf(ctx).requests = { limit: a.count, remaining: 0, resetMs: d.resetAt - now }
        return refuse(a, d.until - now)
      }
      const checks = applied.map((a) => a.check)
      if (!remote) return decide(ctx, applied, local.admit(checks), local)
      stateOf(ctx) // exists before the wait, so onComplete can mark it done meanwhile
      const t0 = performance.now()
      return remote.admit(checks, ctx.id).then((v) => {
        waited.observe((performance.now() - t0) / 1000)
        return isFailure(v) ? fallback(ctx, applied, checks, v) : decide(ctx, applied, v, remote)
      })
    }

    function complete(ctx: RequestCtx, st: RateLimitState): void {
      const slots = st.slots
      st.slots = undefined
      if (slots) for (const s of slots) s.store.release(s.key, ctx.id)
      const charges = st.charges
      st.charges = undefined
      if (!charges) return
      // A cache hit carries the usage of the answer it replays, but no provider spent tokens on it: 0.
      const used = cacheHit(ctx) ? 0 : actualTokens(ctx.usage) ?? estimatedTokens(ctx)
      for (const c of charges) {
        // Usage known (or estimated by the cost meter from what was delivered): charge exactly that. Never sent
        // upstream: refund. Otherwise keep the admission estimate.
        const delta = used !== undefined ? used - c.cost : ctx.upstreamStart === 0 ? -c.cost : 0
        if (delta !== 0) c.store.adjust(c.key, c.emissionMs, delta)
      }
    }

    const headerHook = {
      onResponseHeaders(ctx: RequestCtx): void {
        const st = ctx.slots['rate-limit']
        if (!st) return
        if (st.requests) writeHeaders(ctx.responseHeaders, 'requests', st.requests)
        if (st.tokens) writeHeaders(ctx.responseHeaders, 'tokens', st.tokens)
      },
    }
    return {
      onRequestHeaders: (ctx) => admit(ctx, 'headers'),
      onRequestBody: (ctx) => admit(ctx, 'body'),
      ...(config.headers && enforce ? headerHook : {}),
      onComplete(ctx) {
        const st = ctx.slots['rate-limit']
        if (!st) return
        // An admission still waiting on Redis sees `done` and gives back what it takes.
        st.done = true
        complete(ctx, st)
      },
      close() {
        clearInterval(sweeper)
        local.close()
        remote?.close()
        unregister?.()
      },
    }
  },
}
