/**
 * cache: an exact-match response cache for chat completions, opt-in per requested model, per key or
 * per request (`x-mcp-cache: on` when `headerOptIn`), in an in-process LRU or in Redis, with a TTL.
 *
 *   onRequestBody      decides (opt-in, determinism), computes the key, looks it up; on a hit the request
 *                      leaves the router (`ctx.alias` cleared: no target is tried, none is counted, a hit
 *                      answers even when every provider is down) and its cost is 0
 *   interceptUpstream  a hit answers without calling `next` (JSON, or replayed as a stream); a miss's
 *                      complete answer is stored (JSON, translated stream, or pass-through bytes tapped:
 *                      OpenAI-shaped, or Anthropic's own for a /v1/messages request sent as it came)
 *
 * The answer says `x-mcp-cache: hit|miss` (`bypass` when opted in but not cacheable). Metrics:
 * mcp_cache_hits_total, mcp_cache_misses_total, mcp_cache_saved_usd_total (each hit adds what the
 * cached answer cost when it was made), mcp_cache_stores_total, mcp_cache_bypass_total{reason},
 * mcp_cache_errors_total{op}. No onResponseChunk hook: routes keep their pass-through.
 */
import type { RequestCtx } from '../../gateway/context.ts'
import { PriceCatalogue, pricedTier, type CostBreakdown } from '../../gateway/cost/catalogue.ts'
import { DEFAULT_PROVIDER_TYPE_MAP, Pricing } from '../../gateway/cost/pricing.ts'
import { effectiveFromErrors } from '../../gateway/cost/effective-from.ts'
import { GatewayError } from '../../gateway/errors.ts'
import { routedSet } from '../../gateway/routing/alias.ts'
import { nativeOnlyOf } from '../../gateway/inbound/anthropic-paths.ts'
import { normalizeUsage } from '../../gateway/cost/meter.ts'
import type { Metrics } from '../../gateway/metrics.ts'
import type { PluginFactory, UpstreamResponse } from '../../gateway/pipeline/types.ts'
import type { ChatResponse } from '../../providers/types.ts'
import { capture, replayStream } from './capture.ts'
import { cacheConfigSchema, type CacheConfig } from './config.ts'
import { cacheKey } from './key.ts'
import { memoryStoreFor, RedisCacheStore, type CacheEntry, type CacheStore, type MemoryCacheStore } from './store.ts'

export interface CacheSlot {
  status: 'hit' | 'miss'
  key: string
  /** The alias the request was routed to when its key was made (a later downgrade is not stored under it). */
  alias?: RequestCtx['alias']
  entry?: CacheEntry
  savedUsd?: number
}

declare module '../../gateway/context.ts' {
  interface CtxSlots {
    cache: CacheSlot
  }
}

export interface CachePluginOptions {
  now?: () => number
}

const ZERO_COST: CostBreakdown = { pico: 0, usd: 0, inputTokens: 0, cachedTokens: 0, cacheWriteTokens: 0, outputTokens: 0, reasoningTokens: 0, unknown: false, estimated: false }

function timeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined
  return Promise.race([p, new Promise<never>((_, reject) => { t = setTimeout(() => reject(new Error(`cache store did not answer within ${ms} ms`)), ms) })]).finally(() => clearTimeout(t))
}

interface PricesSource { pricesFor(name: string, type: string, model: string, at: number): ReturnType<PriceCatalogue['lookup']> }

const gaugeStores = new WeakMap<Metrics, { store: MemoryCacheStore }>()

export function createCachePlugin(opts: CachePluginOptions = {}): PluginFactory<CacheConfig> {
  const clock = opts.now ?? Date.now
  return {
    name: 'cache',
    configSchema: cacheConfigSchema,
    sideEffects: 'io',
    // Settlement prices streams by their usage (budget); stored entries carry it (cache).
    needsUsage: true,
    create(config, deps) {
      const dates = effectiveFromErrors(config.prices, 'prices')
      if (dates.length > 0) throw new GatewayError('MCP_ERR_PLUGIN_CONFIG_INVALID', { plugin: 'cache', reason: dates.join('; ') }, { details: 'config.plugin_invalid' })
      const m = deps.metrics
      const hits = m.counter('mcp_cache_hits_total', 'Chat requests answered from the response cache').labels()
      const misses = m.counter('mcp_cache_misses_total', 'Cacheable chat requests not in the cache').labels()
      const saved = m.counter('mcp_cache_saved_usd_total', 'USD the cache saved: the original cost of every answer served from it').labels()
      const stores = m.counter('mcp_cache_stores_total', 'Answers stored in the response cache').labels()
      const bypass = m.counter('mcp_cache_bypass_total', 'Opted-in requests not cached', ['reason'])
      const errors = m.counter('mcp_cache_errors_total', 'Cache store failures and timeouts', ['op'])
      const memory = memoryStoreFor(config.keyPrefix, config.maxEntries, config.maxBytes)
      // One gauge per registry: it reports the store of the latest instance (a reload creates new instances).
      let current = gaugeStores.get(m)
      if (!current) {
        const c = { store: memory }
        current = c
        gaugeStores.set(m, c)
        m.gauge('mcp_cache_entries', 'Entries in the in-process response cache', [], (set) => set(c.store.size))
      }
      current.store = memory
      const redis = deps.services.redis
      const primary: CacheStore = config.backend === 'memory' || (config.backend === 'auto' && !redis) ? memory
        : redis ? new RedisCacheStore(redis, config.keyPrefix) : memory
      if (config.backend === 'redis' && !redis) deps.logger.warn('cache: backend redis but no Redis client (MCP_REDIS_URL); using the in-process LRU')
      const fallback: CacheStore | undefined = primary.kind === 'redis' && config.failMode === 'local' ? memory : undefined
      // Its own prices (no cost meter in the chain) read as the cost meter reads its entries (gateway/cost/pricing.ts).
      const own = new Pricing({ overrides: config.prices, providerTypeMap: DEFAULT_PROVIDER_TYPE_MAP })
      const ttlMs = config.ttlSeconds * 1000
      const aliases = new Set(config.aliases)
      const keys = new Set(config.keys)

      const optedIn = (ctx: RequestCtx, header: string | undefined): boolean =>
        aliases.has('*') || aliases.has(ctx.requestedModel) || keys.has('*') || keys.has(ctx.slots.principal?.keyId ?? '') || (config.headerOptIn && header === 'on')

      const get = async (key: string): Promise<string | undefined> => {
        const now = clock()
        if (primary.kind === 'memory') return primary.get(key, now)
        try {
          return await timeout(primary.get(key, now), config.timeoutMs)
        } catch (e) {
          errors.labels('get').inc()
          deps.logger.debug({ err: (e as Error).message }, 'cache: get failed')
          return fallback?.get(key, now)
        }
      }

      const put = (key: string, value: string): void => {
        const now = clock()
        if (primary.kind === 'memory') { void primary.set(key, value, ttlMs, now); stores.inc(); return }
        timeout(primary.set(key, value, ttlMs, now), Math.max(config.timeoutMs, 250)).then(() => stores.inc(), () => {
          errors.labels('set').inc()
          if (fallback) { void fallback.set(key, value, ttlMs, now); stores.inc() }
        })
      }

      const costPico = (ctx: RequestCtx, r: ChatResponse): number => {
        if (!r.usage) return 0
        const meter = (ctx.slots as Readonly<Record<string, unknown>>)['costMeter'] as PricesSource | undefined
        const at = Date.now()
        const prices = (meter && typeof meter.pricesFor === 'function' ? meter : own).pricesFor(ctx.providerName, ctx.adapter?.type ?? '', ctx.model, at)
        // At the tier that served the stored answer, else the one this request asks for.
        return prices ? PriceCatalogue.cost(prices, normalizeUsage(r.usage), false, pricedTier(r.service_tier ?? ctx.chat?.service_tier)).pico : 0
      }

      return {
        async onRequestBody(ctx) {
          const chat = ctx.chat
          if (!chat) return
          const h = ctx.headers['x-mcp-cache']
          const header = typeof h === 'string' ? h.trim().toLowerCase() : undefined
          if (!optedIn(ctx, header)) return
          if (header === 'off') { ctx.responseHeaders['x-mcp-cache'] = 'bypass'; bypass.labels('header').inc(); return }
          // Server tools, citations: what decides the answer is not all in the canonical request the key is made of.
          if (nativeOnlyOf(chat) !== undefined) { ctx.responseHeaders['x-mcp-cache'] = 'bypass'; bypass.labels('native').inc(); return }
          if (chat.temperature !== 0 && !config.cacheNonDeterministic) { ctx.responseHeaders['x-mcp-cache'] = 'bypass'; bypass.labels('nondeterministic').inc(); return }
          const scopeId = config.scope === 'key' ? ctx.slots.principal?.keyId ?? 'anonymous' : ''
          // The requested model and what it resolved to: a downgraded request (or a bare model whose provider
          // changed) does not share the entries of the model the client named, nor does a request an alias's
          // rules send to other targets (a header rule: the header is not in the body). Which target of that
          // set the strategy picks is not part of it: they share entries.
          const resolved = ctx.alias ? routedSet(ctx, ctx.alias, ctx.pipeline.aliases) : `${ctx.providerName}/${ctx.model}`
          const key = cacheKey(chat, ctx.requestedModel, scopeId, resolved)
          const text = await get(key)
          let entry: CacheEntry | undefined
          if (text !== undefined) {
            try { entry = JSON.parse(text) as CacheEntry } catch { entry = undefined }
          }
          if (!entry || entry.v !== 1) {
            ctx.slots.cache = { status: 'miss', key, alias: ctx.alias }
            ctx.responseHeaders['x-mcp-cache'] = 'miss'
            misses.inc()
            return
          }
          const savedUsd = entry.pico / 1e12
          ctx.slots.cache = { status: 'hit', key, entry, savedUsd }
          // Out of the router: the hit is answered by interceptUpstream through route.open.
          ctx.alias = undefined
          ctx.providerName = entry.provider
          ctx.model = entry.model
          ctx.cost = ZERO_COST
          ctx.responseHeaders['x-mcp-cache'] = 'hit'
          ctx.responseHeaders['x-mcp-cache-age'] = String(Math.max(0, Math.floor((clock() - entry.createdAt) / 1000)))
          ctx.responseHeaders['x-mcp-cache-saved-usd'] = savedUsd.toFixed(9)
          hits.inc()
          saved.inc(savedUsd)
          return
        },
        interceptUpstream(next) {
          return async (ctx): Promise<UpstreamResponse> => {
            const s = ctx.slots.cache
            if (s?.status === 'hit' && s.entry) {
              const r = s.entry.response
              return ctx.stream ? { kind: 'stream', stream: replayStream(r) } : { kind: 'json', response: r }
            }
            const up = await next(ctx)
            if (s?.status !== 'miss') return up
            // Re-pointed after the key was made (a budget downgrade later in the chain): not this key's answer.
            if (ctx.alias !== s.alias) return up
            return capture(up, ctx.stream, config.maxEntryBytes, (r) => {
              const entry: CacheEntry = { v: 1, response: r, pico: costPico(ctx, r), provider: ctx.providerName, model: ctx.model, createdAt: clock() }
              const value = JSON.stringify(entry)
              if (value.length > config.maxEntryBytes) { bypass.labels('too_large').inc(); return }
              put(s.key, value)
            }, ctx.inbound === 'anthropic')
          }
        },
      }
    },
  }
}

export const cachePlugin: PluginFactory<CacheConfig> = createCachePlugin()
