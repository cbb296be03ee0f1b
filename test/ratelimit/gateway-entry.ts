/**
 * Test entry for rate-limit tests that need real processes: builds the gateway like main.ts, plus
 * the shared Redis client (`services.redis`) from MCP_REDIS_URL, which main.ts does not wire yet.
 */
import { registerTargetRoutes } from '../../admin/routes/targets.ts'
import { AdminServer } from '../../admin/server.ts'
import { Gateway } from '../../gateway/gateway.ts'
import { createLogger } from '../../gateway/logger.ts'
import { closeRedis, createRedis } from '../../gateway/redis.ts'
import { loadSettings } from '../../gateway/settings.ts'

const settings = loadSettings()
const log = createLogger(settings.log.level)
const redis = settings.redisUrl ? createRedis(settings.redisUrl, { logger: log }) : undefined
const gw = await Gateway.create({ logger: log, services: redis ? { redis } : {} })
const admin = new AdminServer(gw)
registerTargetRoutes(admin, gw)
const data = await gw.listen()
const adm = await admin.listen(settings.admin.host, settings.admin.port, settings.admin.key)
log.info({ port: data.port, adminPort: adm.port, redis: redis !== undefined }, 'MCP gateway ready (rate-limit test entry)')

const stop = async (): Promise<void> => {
  await gw.shutdown(2000)
  await admin.close()
  await closeRedis(redis)
  process.exit(0)
}
process.on('SIGTERM', () => void stop())
process.on('SIGINT', () => void stop())
