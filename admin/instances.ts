/**
 * The gateway instances that share this database, and whether their rate limits and budgets hold across them.
 *
 * Each instance upserts its row of `gateway_instances` on a heartbeat (store/migrations/0007_instances.sql), then
 * reads the rows seen within three heartbeats: the live fleet. The most reported failure of today's gateways is a
 * limit or budget kept in each replica's memory, so that N replicas admit N times it (a $10 key spending $217). Here
 * an instance whose `rate-limit` or `budget` plugin keeps its counters in-process (no Redis, or `backend: local`), or
 * that fires alerts without Redis (each instance fires each one), while other instances share the database says so: a warning in the log when that starts (and an info line when it
 * ends), `mcp_gateway_limits_per_instance` 1, and the readiness check `shared_limits` degraded (/readyz stays 200).
 *
 *   GET /api/v1/mcp/instances   the live instances: id, hostname, pid, version, started_at, seen_at, config_hash
 *                               (instances serving different configurations have different hashes), redis,
 *                               per_instance, self; and `limits_per_instance` of this instance
 *
 * Nothing here is on the request path: one upsert and one read per heartbeat (15 s), on the embedded store too
 * (where there is only ever this instance). A failed heartbeat (the database away) keeps the last state.
 */
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { createRequire } from 'node:module'
import type { Logger } from 'pino'
import type { Metrics } from '../gateway/metrics.ts'
import { hashOf } from '../gateway/settings.ts'
import type { Store } from '../store/types.ts'
import { sendJson, type AdminServer } from './server.ts'

const VERSION = (createRequire(import.meta.url)('../package.json') as { version: string }).version

/**
 * The hash of what a fleet shares: the settings without what may differ from one instance to the next while they
 * serve the same configuration (listening ports and hosts, the local data directory, the log level). Instances with
 * equal fleet hashes serve the same providers, aliases, chains, plugins and limits.
 */
export function fleetHash(settings: object): string {
  const { server, admin, dataDir: _dataDir, log: _log, ...rest } = settings as Record<string, unknown> & { server?: Record<string, unknown>; admin?: Record<string, unknown> }
  const local = (o: Record<string, unknown> | undefined): Record<string, unknown> | undefined => {
    if (o === undefined) return undefined
    const { port: _port, host: _host, ...shared } = o
    return shared
  }
  return hashOf({ ...rest, server: local(server), admin: local(admin) })
}

const FLEET_HASHES = new WeakMap<object, string>()
/** fleetHash once per settings object (a pipeline generation keeps its frozen settings). */
export function fleetHashOf(settings: object): string {
  let h = FLEET_HASHES.get(settings)
  if (h === undefined) { h = fleetHash(settings); FLEET_HASHES.set(settings, h) }
  return h
}

/** What of the running pipeline perInstanceOf reads. */
export interface PipelineView {
  readonly routes: ReadonlyMap<string, { readonly plugins: readonly string[] }>
  readonly settings: { readonly plugins: Readonly<Record<string, unknown>>; readonly alerts: { readonly rules: readonly unknown[] } }
}

/**
 * What this instance keeps in its own process that several instances must share to be exact: the counters of
 * `rate-limit` and `budget` when they are in a chain and not in Redis (no Redis client, or `backend: local`), and
 * 'alerts' when alert rules are configured, an alert manager runs and there is no Redis (each instance then fires
 * every alert itself: once per period per instance, not once per period).
 */
export function perInstanceOf(p: PipelineView, services: { readonly redis?: unknown; readonly alerts?: unknown }): string[] {
  const inChains = new Set([...p.routes.values()].flatMap((r) => r.plugins))
  const out = ['rate-limit', 'budget'].filter((name) => inChains.has(name) &&
    (services.redis === undefined || (p.settings.plugins[name] as { backend?: unknown } | undefined)?.backend === 'local'))
  if (services.alerts !== undefined && services.redis === undefined && p.settings.alerts.rules.length > 0) out.push('alerts')
  return out
}

/** The consequence of per_instance with `n` instances, for the warning. */
function consequence(perInstance: readonly string[], n: number): string {
  const limits = perInstance.filter((x) => x !== 'alerts')
  const parts: string[] = []
  if (limits.length > 0) parts.push(`each instance admits up to the whole of every ${limits.map((x) => (x === 'budget' ? 'budget' : 'limit')).join(' and ')}, so together they admit up to ${n} times as much`)
  if (perInstance.includes('alerts')) parts.push(`each instance fires every alert itself, so a threshold can reach the webhooks ${n} times a period`)
  return parts.join('; ')
}

/** What this instance is at a heartbeat (read from the running pipeline). */
export interface InstanceState {
  /** fleetHash of the running settings: equal on instances serving the same configuration. */
  configHash: string
  /** A Redis client is configured (MCP_REDIS_URL). */
  redis: boolean
  /** What this instance keeps in its own process that several instances must share (perInstanceOf). */
  perInstance: readonly string[]
}

export interface InstanceRow {
  id: string
  hostname: string
  pid: number
  version: string
  started_at: Date
  seen_at: Date
  config_hash: string | null
  redis: boolean
  per_instance: string[]
}

export interface InstanceRegistryOptions {
  store: Store
  log: Logger
  state: () => InstanceState
  /** Default 15 000 ms. A row not seen for three heartbeats is an instance that is gone. */
  heartbeatMs?: number
}

/** Rows of instances gone for longer than this are deleted (a crashed instance never deletes its own). */
const PRUNE_AFTER_MS = 86_400_000

export class InstanceRegistry {
  readonly id = randomBytes(9).toString('base64url')
  readonly #store: Store
  readonly #log: Logger
  readonly #state: () => InstanceState
  readonly #heartbeatMs: number
  readonly #startedAt = new Date()
  #timer: NodeJS.Timeout | undefined
  #live: InstanceRow[] = []
  #perInstance = false
  #beating: Promise<void> | undefined

  constructor(opts: InstanceRegistryOptions) {
    this.#store = opts.store
    this.#log = opts.log
    this.#state = opts.state
    this.#heartbeatMs = opts.heartbeatMs ?? 15_000
  }

  /** The live instances at the last heartbeat, this one included. */
  get live(): readonly InstanceRow[] { return this.#live }

  /** This instance keeps limits, budgets or alerts in-process while other instances share the database. */
  get limitsPerInstance(): boolean { return this.#perInstance }

  /** First heartbeat now, then one every heartbeatMs (the timer does not keep the process alive). */
  start(): void {
    void this.beat()
    this.#timer = setInterval(() => void this.beat(), this.#heartbeatMs)
    this.#timer.unref()
  }

  /** One heartbeat: upsert this row, read the live ones, update the state. Never throws; one at a time. */
  beat(): Promise<void> {
    this.#beating ??= this.#beat().finally(() => { this.#beating = undefined })
    return this.#beating
  }

  async #beat(): Promise<void> {
    const s = this.#state()
    try {
      await this.#store.query(
        `INSERT INTO gateway_instances (id, hostname, pid, version, started_at, seen_at, config_hash, redis, per_instance)
         VALUES ($1, $2, $3, $4, $5, now(), $6, $7, ARRAY(SELECT jsonb_array_elements_text($8::jsonb)))
         ON CONFLICT (id) DO UPDATE SET seen_at = now(), config_hash = EXCLUDED.config_hash, redis = EXCLUDED.redis,
           per_instance = EXCLUDED.per_instance`,
        [this.id, hostname().slice(0, 255), process.pid, VERSION, this.#startedAt, s.configHash, s.redis, JSON.stringify(s.perInstance)],
      )
      const { rows } = await this.#store.query<InstanceRow>(
        `SELECT id, hostname, pid, version, started_at, seen_at, config_hash, redis, per_instance FROM gateway_instances
         WHERE seen_at > now() - make_interval(secs => $1) ORDER BY started_at, id`,
        [(3 * this.#heartbeatMs) / 1000],
      )
      await this.#store.query('DELETE FROM gateway_instances WHERE seen_at < now() - make_interval(secs => $1)', [PRUNE_AFTER_MS / 1000])
      this.#live = rows
    } catch (e) {
      this.#log.debug({ err: e }, 'instances: heartbeat failed; keeping the last state')
      return
    }
    const others = this.#live.filter((r) => r.id !== this.id).length
    const perInstance = others > 0 && s.perInstance.length > 0
    if (perInstance && !this.#perInstance) {
      this.#log.warn({ instances: others + 1, perInstance: s.perInstance },
        `${others + 1} gateway instances share this database, but this one keeps its ${s.perInstance.join(', ')} state in its own process: ` +
        `${consequence(s.perInstance, others + 1)}. Set MCP_REDIS_URL on every instance (docs/api.md, "Instances sharing a database").`)
    } else if (!perInstance && this.#perInstance) {
      this.#log.info({ instances: others + 1, perInstance: s.perInstance }, 'instances: limits, budgets and alerts no longer split across instances')
    }
    this.#perInstance = perInstance
  }

  bindMetrics(m: Metrics): void {
    m.gauge('mcp_gateway_instances', 'Gateway instances sharing this database at the last heartbeat, this one included', [], (set) => set(Math.max(1, this.#live.length)))
    m.gauge('mcp_gateway_config_hashes', 'Distinct configurations (config_hash) served by the instances sharing this database: above 1 for longer than a reload takes is configuration drift', [], (set) =>
      set(Math.max(1, new Set(this.#live.map((r) => r.config_hash)).size)))
    m.gauge('mcp_gateway_limits_per_instance', 'This instance keeps rate limits, budgets or alert state in its own process while other instances share the database (1): together they admit up to N times a limit', [], (set) => set(this.#perInstance ? 1 : 0))
  }

  /** Stops the heartbeat and deletes this instance's row (a clean shutdown leaves the fleet at once). */
  async close(): Promise<void> {
    clearInterval(this.#timer)
    await this.#beating
    await this.#store.query('DELETE FROM gateway_instances WHERE id = $1', [this.id]).catch(() => {})
  }
}

export function registerInstanceRoutes(admin: AdminServer, registry: InstanceRegistry): void {
  admin.route('GET', '/api/v1/mcp/instances', async (req, res) => {
    req.resume()
    await registry.beat()
    sendJson(res, 200, {
      data: registry.live.map((r) => ({ ...r, self: r.id === registry.id })),
      limits_per_instance: registry.limitsPerInstance,
    })
  })
}
