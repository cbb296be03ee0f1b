/**
 * A connection reset while an admission's script is in flight: the script ran in Redis (the slot is in
 * the concurrency set) but its reply never arrived. The fail policy decides that request, and the slot
 * the script took is undone once Redis is reachable again, so later requests of the key are not refused
 * for a request that is no longer in flight (the slot used to stay until its TTL, 10 minutes).
 */
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { closeRedis, createRedis } from '../../gateway/redis.ts'
import { chat, deletePrefix, metricValue, REDIS_URL, redisAvailable, startTestGateway, until } from '../budget/helpers.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { startReplyHolder } from './reply-holder.ts'

const redisUp = await redisAvailable()

describe.skipIf(!redisUp)('rate-limit: a connection reset after the admission script was sent', () => {
  let mock: OpenAIMock
  let direct: Redis
  const prefix = `test:rl-reset:${process.pid}:${Date.now()}:`
  beforeAll(async () => { mock = await startOpenAIMock(); direct = new Redis(REDIS_URL) })
  afterAll(async () => { await mock.close(); await deletePrefix(direct, prefix); direct.disconnect() })

  for (const failMode of ['local', 'closed'] as const) {
    it(`the slot the script took is released (failMode ${failMode}): later requests of the key are admitted`, async () => {
      const url = new URL(REDIS_URL)
      const fwd = await startReplyHolder({ host: url.hostname, port: Number(url.port || 6379) })
      const redis = createRedis(`redis://127.0.0.1:${fwd.port}`)
      const keyPrefix = `${prefix}${failMode}:`
      const zset = `${keyPrefix}pk.concurrency:k1`
      const tg = await startTestGateway({
        providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk' } },
        plugins: { 'rate-limit': { backend: 'redis', limits: [{ name: 'pk', scope: 'key', concurrency: 1 }], failMode, timeoutMs: 3000, keyPrefix } },
        chains: { default: ['test-principal', 'rate-limit'] },
      }, { services: { redis } })
      try {
        await until(() => redis.status === 'ready')
        expect((await chat(tg.url, { maxTokens: 5 })).status).toBe(200)
        // Its release is sent after the answer, without waiting: let it land first.
        await until(async () => (await direct.zcard(zset)) === 0)
        fwd.hold()
        const t0 = performance.now()
        const inFlight = chat(tg.url, { maxTokens: 5 })
        // The script ran: the request's slot is in the set, its reply is held back.
        await until(async () => (await direct.zcard(zset)) === 1)
        fwd.cut()
        const r = await inFlight
        const ms = performance.now() - t0
        expect(r.status).toBe(failMode === 'local' ? 200 : 503)
        await r.arrayBuffer()
        // Decided by the reset ('error'), not by the timer: timeoutMs is long so that a slow machine cannot turn
        // this into the timeout path, which already released.
        expect(ms).toBeLessThan(2500)
        expect(await metricValue(tg.adminUrl, 'mcp_plugin_rate_limit_backend_failures_total{reason="error"}')).toBe(1)
        expect(await metricValue(tg.adminUrl, 'mcp_plugin_rate_limit_backend_failures_total{reason="timeout"}')).toBeUndefined()
        fwd.restore()
        await until(() => redis.status === 'ready', 5000)
        // Undone once the connection is back (the release waited for it).
        await until(async () => (await direct.zcard(zset)) === 0, 5000)
        for (let i = 0; i < 3; i++) {
          const next = await chat(tg.url, { maxTokens: 5 })
          expect(next.status).toBe(200)
          await next.arrayBuffer()
          await until(async () => (await direct.zcard(zset)) === 0)
        }
        expect(await metricValue(tg.adminUrl, 'mcp_plugin_rate_limit_backend_failures_total{reason="error"}')).toBe(1)
      } finally {
        await tg.close()
        await closeRedis(redis)
        await fwd.close()
      }
    })
  }
})
