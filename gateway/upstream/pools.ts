/** One undici Pool per upstream origin, keep-alive, shared by every pipeline generation; closed at shutdown. */
import { Pool, type Dispatcher } from 'undici'

export interface PoolOptions {
  connections: number
  keepAliveTimeoutMs: number
  connectTimeoutMs: number
}

export class Pools {
  readonly #pools = new Map<string, Pool>()
  readonly #opts: PoolOptions

  constructor(opts: PoolOptions) {
    this.#opts = opts
  }

  get(origin: string): Dispatcher {
    let p = this.#pools.get(origin)
    if (!p) {
      p = new Pool(origin, {
        connections: this.#opts.connections,
        pipelining: 1,
        keepAliveTimeout: this.#opts.keepAliveTimeoutMs,
        keepAliveMaxTimeout: Math.max(this.#opts.keepAliveTimeoutMs, 60_000),
        connect: { timeout: this.#opts.connectTimeoutMs, rejectUnauthorized: true },
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
