/** One undici Pool per upstream origin, keep-alive, shared by every pipeline generation; closed at shutdown. */
import { readFileSync } from 'node:fs'
import { rootCertificates } from 'node:tls'
import { Pool, type buildConnector, type Dispatcher } from 'undici'

export interface PoolOptions {
  connections: number
  keepAliveTimeoutMs: number
  connectTimeoutMs: number
  /** Extra CA (PEM file) trusted for upstream TLS, on top of the public roots; verification is always on. */
  caFile?: string
}

export class Pools {
  readonly #pools = new Map<string, Pool>()
  readonly #opts: PoolOptions
  readonly #ca: string[] | undefined
  /** A connector for origins that need one (the SSRF guard for providers from the admin API), else undefined. */
  readonly #connectFor: ((origin: string) => buildConnector.connector | undefined) | undefined

  constructor(opts: PoolOptions, connectFor?: (origin: string) => buildConnector.connector | undefined) {
    this.#opts = opts
    this.#ca = opts.caFile === undefined ? undefined : [...rootCertificates, readFileSync(opts.caFile, 'utf8')]
    this.#connectFor = connectFor
  }

  get(origin: string): Dispatcher {
    let p = this.#pools.get(origin)
    if (!p) {
      p = new Pool(origin, {
        connections: this.#opts.connections,
        pipelining: 1,
        keepAliveTimeout: this.#opts.keepAliveTimeoutMs,
        keepAliveMaxTimeout: Math.max(this.#opts.keepAliveTimeoutMs, 60_000),
        connect: this.#connectFor?.(origin) ?? { timeout: this.#opts.connectTimeoutMs, rejectUnauthorized: true, ...(this.#ca ? { ca: this.#ca } : {}) },
      })
      this.#pools.set(origin, p)
    }
    return p
  }

  /** Open connections per origin, for metrics. */
  stats(): { origin: string; connected: number; pending: number; running: number }[] {
    return [...this.#pools].map(([origin, p]) => ({ origin, connected: p.stats.connected, pending: p.stats.pending, running: p.stats.running }))
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#pools.values()].map((p) => p.close()))
    this.#pools.clear()
  }
}
