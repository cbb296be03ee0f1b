/**
 * The control plane: owns the store, the keyring and the in-memory snapshot the data plane reads.
 *
 * - The snapshot is loaded at boot, after every management write (before the write's response, so a client that
 *   got its 2xx sees its change served), and whenever the poller sees control_plane_version move (another
 *   instance wrote). A provider change reaches the running pipeline through `onProvidersChanged` (gateway
 *   reload): swap, not restart.
 * - Static stability: when the database is unreachable the last snapshot keeps serving; the poller notices within
 *   one interval, `databaseUp` turns false (readiness reports `degraded`), and management requests fail fast with
 *   503 MCP_ERR_STORE_UNAVAILABLE until a poll succeeds again, which also reloads the snapshot.
 */
import type { Logger } from 'pino'
import { GatewayError } from '../gateway/errors.ts'
import type { Metrics } from '../gateway/metrics.ts'
import type { Queryable, Store } from '../store/types.ts'
import type { Keyring } from './crypto.ts'
import { EMPTY_SNAPSHOT, loadSnapshot, readControlVersion, type Snapshot, type SnapshotVersion } from './snapshot.ts'

export const DEFAULT_ENVIRONMENTS = ['development', 'staging', 'production'] as const
export const DEFAULT_POLL_INTERVAL_MS = 500

export interface ControlPlaneOptions {
  store: Store
  keyring: Keyring
  log: Logger
  /** Ordered: promotion goes to the next one. Default MCP_ENVIRONMENTS (comma-separated) or development, staging, production. */
  environments?: readonly string[]
  /**
   * How often the poller reads control_plane_version, ms. Default 500: a change (a revoked key, a provider) reaches
   * every instance within a second, the poll and the snapshot reload included.
   */
  pollIntervalMs?: number
  /** A poll slower than this counts as the database being unreachable, ms. Default 2000. */
  pollTimeoutMs?: number
  /** Provider names the configuration files define; the API refuses to create those (409). */
  fileProviderNames?: () => ReadonlySet<string>
  /** Alias names of the configuration (`models`); a provider cannot take one (409). */
  aliasNames?: () => ReadonlySet<string>
}

const NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', '57P01', '57P02', '57P03', '53300'])
const NET_MESSAGE = /connection terminated|connection timeout|timeout exceeded when trying to connect|connection error|connection closed|not queryable|pglite is closed|database unreachable/i

/** True for errors that mean "the database cannot be reached", as opposed to a query it refused. */
export function isUnavailableError(e: unknown): boolean {
  if (e instanceof GatewayError) return e.code === 'MCP_ERR_STORE_UNAVAILABLE'
  if (e === null || typeof e !== 'object') return false
  const code = (e as { code?: unknown }).code
  if (typeof code === 'string' && (NET_CODES.has(code) || code.startsWith('08'))) return true
  return e instanceof Error && NET_MESSAGE.test(e.message)
}

export function storeUnavailable(cause?: unknown): GatewayError {
  return new GatewayError('MCP_ERR_STORE_UNAVAILABLE', {}, { details: 'store.unavailable', ...(cause !== undefined ? { cause } : {}) })
}

function environmentsFromEnv(env: NodeJS.ProcessEnv): string[] | undefined {
  const v = env['MCP_ENVIRONMENTS']
  if (!v) return undefined
  const list = v.split(',').map((s) => s.trim()).filter(Boolean)
  return list.length > 0 ? list : undefined
}

/**
 * Environments are matched exactly, so a repeated name, or names that differ only by case (`prod,Prod`), would look
 * like one environment and be two: refused (MCP_ERR_CONFIG_INVALID naming the first duplicate, `source` the setting).
 */
export function checkEnvironments(list: readonly string[], source: string): readonly string[] {
  const seen = new Map<string, string>()
  for (const name of list) {
    const first = seen.get(name.toLowerCase())
    if (first !== undefined) {
      const what = first === name ? `'${name}' twice` : `'${name}' and '${first}', which differ only by case`
      throw new GatewayError('MCP_ERR_CONFIG_INVALID', { reason: `${source}: ${what} (environments are matched exactly; name each once)` }, { details: 'config.invalid' })
    }
    seen.set(name.toLowerCase(), name)
  }
  return list
}

export class ControlPlane {
  readonly store: Store
  readonly keyring: Keyring
  readonly environments: readonly string[]
  readonly log: Logger
  readonly #pollIntervalMs: number
  readonly #pollTimeoutMs: number
  readonly #fileProviderNames: () => ReadonlySet<string>
  readonly #aliasNames: () => ReadonlySet<string>
  readonly #versions = new Map<string, SnapshotVersion>()
  #snapshot: Snapshot = EMPTY_SNAPSHOT
  #up = true
  #timer: NodeJS.Timeout | undefined
  #polling = false
  #chain: Promise<void> = Promise.resolve()
  #onProvidersChanged: (() => Promise<unknown>) | undefined
  /** Degraded-mode counters (also exported as metrics once attachMetrics was called). */
  readonly counters = { refreshes: 0, refreshFailures: 0, storeUnavailable: 0, pollFailures: 0 }
  #countUnavailable: () => void = () => {}
  #countRefreshFailure: () => void = () => {}

  constructor(opts: ControlPlaneOptions) {
    this.store = opts.store
    this.keyring = opts.keyring
    this.log = opts.log
    const fromEnv = opts.environments ? undefined : environmentsFromEnv(process.env)
    const environments = opts.environments ? checkEnvironments(opts.environments, 'environments') : fromEnv ? checkEnvironments(fromEnv, 'MCP_ENVIRONMENTS') : DEFAULT_ENVIRONMENTS
    this.environments = Object.freeze([...environments])
    this.#pollIntervalMs = opts.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS
    this.#pollTimeoutMs = opts.pollTimeoutMs ?? 2000
    this.#fileProviderNames = opts.fileProviderNames ?? (() => new Set())
    this.#aliasNames = opts.aliasNames ?? (() => new Set())
  }

  /** The current snapshot (immutable; read it once per request). */
  get snapshot(): Snapshot {
    return this.#snapshot
  }

  get databaseUp(): boolean {
    return this.#up
  }

  /**
   * mcp_store_up (1 reachable, 0 serving the last snapshot), mcp_control_plane_snapshot_age_seconds,
   * mcp_control_plane_store_unavailable_total (management requests refused with 503),
   * mcp_control_plane_refresh_failures_total.
   */
  attachMetrics(m: Metrics): void {
    m.gauge('mcp_store_up', 'The control plane reaches the database (1) or serves its last snapshot (0)', [], (set) => set(this.#up ? 1 : 0))
    m.gauge('mcp_control_plane_snapshot_age_seconds', 'Seconds since the snapshot the data plane serves was loaded', [], (set) => set((Date.now() - this.#snapshot.loadedAt.getTime()) / 1000))
    const unavailable = m.counter('mcp_control_plane_store_unavailable_total', 'Management requests refused with 503 because the database is unreachable')
    const refresh = m.counter('mcp_control_plane_refresh_failures_total', 'Snapshot refreshes that failed (the previous snapshot kept serving)')
    this.#countUnavailable = () => unavailable.inc()
    this.#countRefreshFailure = () => refresh.inc()
  }

  fileProviderNames(): ReadonlySet<string> {
    return this.#fileProviderNames()
  }

  aliasNames(): ReadonlySet<string> {
    return this.#aliasNames()
  }

  /** Called after a refresh that changed the providers (the composition root reloads the gateway). */
  onProvidersChanged(fn: () => Promise<unknown>): void {
    this.#onProvidersChanged = fn
  }

  /** First load; throws when the database cannot be read (the process should not start without a snapshot). */
  async init(): Promise<void> {
    this.#snapshot = await loadSnapshot(this.store, this.keyring, this.#versions, this.log)
  }

  start(): void {
    if (this.#timer) return
    this.#timer = setInterval(() => void this.#poll(), this.#pollIntervalMs)
    this.#timer.unref()
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** Reloads the snapshot (serialized); failures keep the previous one and are logged. */
  refresh(): Promise<void> {
    this.#chain = this.#chain.then(() => this.#refreshNow())
    return this.#chain
  }

  async #refreshNow(): Promise<void> {
    const prev = this.#snapshot
    let next: Snapshot
    try {
      next = await loadSnapshot(this.store, this.keyring, this.#versions, this.log)
    } catch (e) {
      this.counters.refreshFailures++
      this.#countRefreshFailure()
      if (isUnavailableError(e)) this.#markDown(e)
      this.log.error({ err: e }, 'control plane: snapshot refresh failed; the previous snapshot keeps serving')
      return
    }
    this.counters.refreshes++
    this.#snapshot = next
    if (next.providersHash !== prev.providersHash && this.#onProvidersChanged) {
      try {
        await this.#onProvidersChanged()
      } catch (e) {
        this.log.error({ err: e }, 'control plane: applying the new providers failed')
      }
    }
  }

  async #poll(): Promise<void> {
    if (this.#polling) return
    this.#polling = true
    let timer: NodeJS.Timeout | undefined
    try {
      const version = await Promise.race([
        readControlVersion(this.store),
        new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('database unreachable: poll timed out')), this.#pollTimeoutMs) }),
      ])
      const wasDown = !this.#up
      if (wasDown) {
        this.#up = true
        this.log.info('control plane: the database is reachable again')
      }
      if (wasDown || version !== this.#snapshot.controlVersion) await this.refresh()
    } catch (e) {
      this.counters.pollFailures++
      this.#markDown(e)
    } finally {
      clearTimeout(timer)
      this.#polling = false
    }
  }

  #markDown(e: unknown): void {
    if (!this.#up) return
    this.#up = false
    this.log.error({ err: e }, 'control plane: the database is unreachable; serving the last snapshot, management requests answer 503')
  }

  #unavailable(e?: unknown): GatewayError {
    this.counters.storeUnavailable++
    this.#countUnavailable()
    if (e !== undefined) this.#markDown(e)
    return storeUnavailable(e)
  }

  /** A management read. */
  async read<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    if (!this.#up) throw this.#unavailable()
    try {
      return await fn(this.store)
    } catch (e) {
      if (isUnavailableError(e)) throw this.#unavailable(e)
      throw e
    }
  }

  /** A management write: one transaction, then a snapshot refresh before returning. */
  async write<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    if (!this.#up) throw this.#unavailable()
    let result: T
    try {
      result = await this.store.transaction(fn)
    } catch (e) {
      if (isUnavailableError(e)) throw this.#unavailable(e)
      throw e
    }
    await this.refresh()
    return result
  }
}
