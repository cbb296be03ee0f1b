/**
 * The shared Redis client (ioredis), built once by the composition root from MCP_REDIS_URL and
 * handed to plugins as `services.redis`. Configured so that nothing on the request path can wait
 * on a slow or absent Redis:
 *
 *  - `enableOfflineQueue: false`: while disconnected, a command fails at once instead of queueing;
 *  - `maxRetriesPerRequest: 0`: commands in flight when the connection drops fail at once;
 *  - `commandTimeout`: a backstop for a frozen server (callers race their own, shorter budget);
 *  - reconnects forever with capped, jittered back-off; `error` events are logged (at most one line
 *    per reason every 10 s) and never crash the process.
 *
 * `redisReady(r)` is the health flag: true while the connection is established and ready.
 */
import { Redis } from 'ioredis'
import type { Logger } from 'pino'

declare module './pipeline/types.ts' {
  interface PluginServices {
    /** The shared Redis client (gateway/redis.ts), present when MCP_REDIS_URL is set. */
    redis?: Redis
  }
}

export type { Redis }

export interface RedisClientOptions {
  logger?: Logger | undefined
  /**
   * Backstop timeout of every command, ms (callers race their own budget). Default 5000: no shorter than the longest
   * budget a caller may race (the budget, rate-limit and cache plugins' timeoutMs go up to 5000; budget settlements
   * get at least 1000), or it fails their commands first and their timeoutMs means nothing past it.
   */
  commandTimeoutMs?: number | undefined
  /** TCP connect + handshake timeout, ms. Default 1000. */
  connectTimeoutMs?: number | undefined
  /** Longest wait between reconnect attempts, ms. Default 2000. */
  maxReconnectDelayMs?: number | undefined
  /** Prefix for `connectionName` (CLIENT LIST). Default 'mcp'. */
  connectionName?: string | undefined
}

/** host:port of a redis:// URL, without credentials (for logs). */
export function redisTarget(url: string): string {
  try {
    const u = new URL(url)
    return `${u.hostname}:${u.port || '6379'}`
  } catch {
    return '(invalid url)'
  }
}

/** Back-off before reconnect attempt `times` (1, 2, ...): 50 ms doubling, capped, ±20 % jitter. */
export function reconnectDelay(times: number, maxMs: number): number {
  const base = Math.min(maxMs, 50 * 2 ** Math.min(times - 1, 16))
  return Math.round(base * (0.8 + Math.random() * 0.4))
}

export function createRedis(url: string, opts: RedisClientOptions = {}): Redis {
  const log = opts.logger
  const maxDelay = opts.maxReconnectDelayMs ?? 2000
  const client = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: opts.commandTimeoutMs ?? 5000,
    connectTimeout: opts.connectTimeoutMs ?? 1000,
    retryStrategy: (times) => reconnectDelay(times, maxDelay),
    connectionName: opts.connectionName ?? 'mcp',
    // Never resend a command after a reconnect: its caller gave up long ago.
    autoResendUnfulfilledCommands: false,
    lazyConnect: false,
  })
  const target = redisTarget(url)
  const lastLogged = new Map<string, number>()
  const suppressed = new Map<string, number>()
  client.on('error', (err: Error) => {
    if (!log) return
    const reason = (err as { code?: string }).code ?? err.message
    const now = Date.now()
    const last = lastLogged.get(reason) ?? 0
    if (now - last < 10_000) { suppressed.set(reason, (suppressed.get(reason) ?? 0) + 1); return }
    lastLogged.set(reason, now)
    const n = suppressed.get(reason) ?? 0
    suppressed.delete(reason)
    log.warn({ redis: target, reason, err: err.message, suppressed: n || undefined }, 'redis error')
  })
  if (log) {
    let wasReady = false
    client.on('ready', () => { wasReady = true; log.info({ redis: target }, 'redis ready') })
    client.on('close', () => { if (wasReady) log.warn({ redis: target }, 'redis connection closed; reconnecting'); wasReady = false })
  }
  return client
}

/** Health flag: the connection is up and ready for commands. */
export function redisReady(r: Redis | undefined): boolean {
  return r !== undefined && r.status === 'ready'
}

/** Closes the client: QUIT when connected (bounded), else a hard disconnect. */
export async function closeRedis(r: Redis | undefined, timeoutMs = 500): Promise<void> {
  if (!r) return
  if (r.status !== 'ready') { r.disconnect(); return }
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([r.quit(), new Promise((resolve) => { timer = setTimeout(resolve, timeoutMs) })])
  } catch { /* already gone */ } finally {
    if (timer) clearTimeout(timer)
    r.disconnect()
  }
}
