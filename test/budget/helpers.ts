/**
 * Test helpers of the budget, cache and alert tests: a real gateway (data plane + admin) with extra
 * plugins and shared services, a principal plugin that takes the key and team from request headers,
 * a signed-webhook receiver, Redis reachability (CI fails without it) and a private redis-server.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Redis } from 'ioredis'
import { registerAlertRoutes } from '../../admin/routes/alerts.ts'
import { registerBudgetRoutes } from '../../admin/routes/budgets.ts'
import type { AlertManager } from '../../gateway/alerts/manager.ts'
import type { PluginFactory, PluginServices } from '../../gateway/pipeline/types.ts'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'

/** Sets `ctx.slots.principal` from `x-test-key` / `x-test-team` (default key 'k1'), and its key record's budgets from `x-test-budgets` (JSON). */
export const testPrincipalPlugin: PluginFactory = {
  name: 'test-principal',
  configSchema: { type: 'object', additionalProperties: false, properties: {} },
  sideEffects: 'none',
  create() {
    return {
      onRequestHeaders(ctx) {
        const k = ctx.headers['x-test-key']
        const t = ctx.headers['x-test-team']
        const b = ctx.headers['x-test-budgets']
        ctx.slots.principal = {
          keyId: typeof k === 'string' ? k : 'k1', role: 'user', ...(typeof t === 'string' ? { team: t } : {}),
          ...(typeof b === 'string' ? { budgets: JSON.parse(b) as Record<string, number> } : {}),
        }
      },
    }
  },
}

export interface StartOptions {
  services?: PluginServices
  plugins?: readonly PluginFactory[]
  alerts?: AlertManager
}

export function startTestGateway(override: Record<string, unknown>, opts: StartOptions = {}): Promise<TestGateway> {
  return startGateway(override, {
    plugins: [testPrincipalPlugin, ...(opts.plugins ?? [])],
    services: opts.services ?? {},
    adminRoutes: (admin, gw) => {
      registerBudgetRoutes(admin, gw)
      if (opts.alerts) registerAlertRoutes(admin, opts.alerts)
    },
  })
}

export interface ChatOptions {
  model?: string
  content?: string
  maxTokens?: number
  stream?: boolean
  temperature?: number
  key?: string
  team?: string
  headers?: Record<string, string>
  signal?: AbortSignal
  extra?: Record<string, unknown>
}

export function chat(url: string, o: ChatOptions = {}): Promise<Response> {
  const body: Record<string, unknown> = { model: o.model ?? 'mock/gpt-4o-mini', messages: [{ role: 'user', content: o.content ?? 'hi' }], ...o.extra }
  if (o.maxTokens !== undefined) body['max_tokens'] = o.maxTokens
  if (o.stream) body['stream'] = true
  if (o.temperature !== undefined) body['temperature'] = o.temperature
  const headers: Record<string, string> = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', ...o.headers }
  if (o.key !== undefined) headers['x-test-key'] = o.key
  if (o.team !== undefined) headers['x-test-team'] = o.team
  return fetch(`${url}/v1/chat/completions`, { method: 'POST', headers, body: JSON.stringify(body), ...(o.signal ? { signal: o.signal } : {}) })
}

export async function adminGet<T>(adminUrl: string, path: string): Promise<T> {
  const r = await fetch(`${adminUrl}${path}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
  if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${await r.text()}`)
  return r.json() as Promise<T>
}

export async function metricValue(adminUrl: string, series: string): Promise<number | undefined> {
  const r = await fetch(`${adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
  const line = (await r.text()).split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

export async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 5000, stepMs = 20): Promise<void> {
  const end = Date.now() + timeoutMs
  for (;;) {
    if (await cond()) return
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, stepMs))
  }
}

// ------------------------------------------------------------------ webhook receiver

export interface ReceivedHook { headers: http.IncomingHttpHeaders; body: string; status: number }

export interface WebhookReceiver {
  url: string
  received: ReceivedHook[]
  /** Status to answer for the next N requests (then 200). */
  failNext(n: number, status?: number, headers?: Record<string, string>): void
  close(): Promise<void>
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const received: ReceivedHook[] = []
  let failing = 0
  let failStatus = 500
  let failHeaders: Record<string, string> = {}
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = []
    req.on('data', (d: Buffer) => parts.push(d))
    req.on('end', () => {
      const status = failing > 0 ? (failing--, failStatus) : 200
      received.push({ headers: req.headers, body: Buffer.concat(parts).toString('utf8'), status })
      res.writeHead(status, { 'content-type': 'text/plain', ...(status === 200 ? {} : failHeaders) })
      res.end(status === 200 ? 'ok' : 'fail')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    failNext(n, status = 500, headers = {}) { failing = n; failStatus = status; failHeaders = headers },
    close: () => new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections() }),
  }
}

// ------------------------------------------------------------------ Redis

export const REDIS_URL = process.env['MCP_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379'

/** True when Redis answers PING; in CI (CI=true) an unreachable Redis is an error, not a skip. */
export async function redisAvailable(url = REDIS_URL): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, connectTimeout: 500, retryStrategy: () => null })
  r.on('error', () => {})
  try {
    await r.connect()
    return (await r.ping()) === 'PONG'
  } catch {
    if (process.env['CI'] === 'true') throw new Error(`Redis is required in CI and is not reachable at ${url}`)
    return false
  } finally {
    r.disconnect()
  }
}

/** Deletes every key with this prefix (SCAN, never KEYS). */
export async function deletePrefix(r: Redis, prefix: string): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 500)
    cursor = next
    if (keys.length > 0) await r.del(...keys)
  } while (cursor !== '0')
}

/** A redis-server of this test only (outage tests may kill or pause it; never the shared one). */
export { startPrivateRedis, type PrivateRedis } from '../ratelimit/private-redis.ts'
