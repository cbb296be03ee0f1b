/**
 * What GET /v1/models lists per provider: the models declared in config (`models`), or, for a provider with none,
 * the models its own list endpoint names (ProviderAdapter.discoverModels), asked lazily (only when a client lists
 * models), all providers in parallel, each within `timeoutMs`, and cached per adapter for `cacheTtlMs`. An adapter
 * carried over by a reload keeps its cache; a changed provider config is a new adapter and asks again.
 *
 * Degraded mode (a written policy): a provider whose list fails or does not answer in time is served from its
 * stale cache, else left out, and is not asked again for FAILURE_BACKOFF_MS (so a hung provider does not make every
 * listing wait); each failure counts in mcp_model_discovery_failures_total{provider}, and is a warning at most once a
 * minute per provider. The listing itself never fails.
 */
import type { Logger } from 'pino'
import type { ProviderAdapter } from '../providers/types.ts'
import type { Counter } from './metrics.ts'
import { toGatewayError } from './deliver.ts'

export interface ModelCatalogSettings {
  /** How long a provider's discovered list is served before it is asked again. */
  readonly cacheTtlMs: number
  /** How long one discovery (every page) may take. */
  readonly timeoutMs: number
}

/** After a failed discovery, the provider is not asked again for this long (nor longer than the TTL). */
const FAILURE_BACKOFF_MS = 30_000
/** At most one warning per provider in this interval. */
const WARN_INTERVAL_MS = 60_000

interface Entry {
  ids: readonly string[] | undefined
  /** When `ids` stop being fresh, or when a failed provider may be asked again. */
  nextAt: number
  pending: Promise<void> | undefined
  warnedAt: number
}

export class ModelCatalog {
  readonly #entries = new WeakMap<ProviderAdapter, Entry>()

  /** Each provider's model names (without the `<provider>/` prefix), in the providers' order. Never rejects. */
  async list(providers: ReadonlyMap<string, ProviderAdapter>, s: ModelCatalogSettings, log: Logger, failures?: Counter): Promise<[string, readonly string[]][]> {
    return Promise.all([...providers].map(async ([name, a]): Promise<[string, readonly string[]]> => {
      const declared = a.listModels?.() ?? []
      if (declared.length > 0 || !a.discoverModels) return [name, declared]
      return [name, await this.#discovered(name, a, s, log, failures)]
    }))
  }

  async #discovered(name: string, a: ProviderAdapter, s: ModelCatalogSettings, log: Logger, failures: Counter | undefined): Promise<readonly string[]> {
    let e = this.#entries.get(a)
    if (!e) { e = { ids: undefined, nextAt: 0, pending: undefined, warnedAt: -Infinity }; this.#entries.set(a, e) }
    if (Date.now() < e.nextAt) return e.ids ?? []
    // One discovery at a time per provider: concurrent listings wait for the same one.
    e.pending ??= this.#fetch(name, a, e, s, log, failures).finally(() => { e.pending = undefined })
    await e.pending
    return e.ids ?? []
  }

  async #fetch(name: string, a: ProviderAdapter, e: Entry, s: ModelCatalogSettings, log: Logger, failures: Counter | undefined): Promise<void> {
    try {
      const ids = await a.discoverModels!(AbortSignal.timeout(s.timeoutMs))
      e.ids = [...new Set(ids)]
      e.nextAt = Date.now() + s.cacheTtlMs
    } catch (err) {
      e.nextAt = Date.now() + Math.min(FAILURE_BACKOFF_MS, s.cacheTtlMs)
      failures?.labels(name).inc()
      const now = Date.now()
      if (now - e.warnedAt >= WARN_INTERVAL_MS) {
        e.warnedAt = now
        // The code and message only: adapters redact credentials from what an upstream echoes; headers are never logged.
        const g = toGatewayError(err)
        log.warn({ provider: name, code: g.code, reason: g.message, stale: e.ids !== undefined }, 'model discovery failed: the provider is listed from its stale cache or left out')
      }
    }
  }
}
