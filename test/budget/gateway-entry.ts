/**
 * Test-only process entry for the cross-instance budget tests: the gateway with the budget plugin and
 * a shared Redis client (`services.redis` from MCP_REDIS_URL, built with gateway/redis.ts as main.ts
 * would), the test principal plugin, and the admin API with GET /api/v1/mcp/budgets.
 * Settings: config/ (NODE_ENV=test) merged with the JSON in BUDGET_ENTRY_CONFIG; ports MCP_PORT, MCP_ADMIN_PORT.
 */
import { registerBudgetRoutes } from '../../admin/routes/budgets.ts'
import { AdminServer } from '../../admin/server.ts'
import { Gateway } from '../../gateway/gateway.ts'
import { createLogger } from '../../gateway/logger.ts'
import { closeRedis, createRedis } from '../../gateway/redis.ts'
import { pluginFactory } from '../../plugins/index.ts'
import { testSettings } from '../helpers/gateway.ts'
import { testPrincipalPlugin } from './helpers.ts'

async function main(): Promise<void> {
  const override = JSON.parse(process.env['BUDGET_ENTRY_CONFIG'] ?? '{}') as Record<string, unknown>
  const port = Number(process.env['MCP_PORT'])
  const adminPort = Number(process.env['MCP_ADMIN_PORT'])
  const load = (): ReturnType<typeof testSettings> => testSettings({ ...override, server: { port }, admin: { port: adminPort } })
  const log = createLogger(load().log.level)
  const redisUrl = process.env['MCP_REDIS_URL']
  const redis = redisUrl ? createRedis(redisUrl, { logger: log, commandTimeoutMs: 1000 }) : undefined
  if (redis) await new Promise<void>((resolve) => { if (redis.status === 'ready') resolve(); else redis.once('ready', () => resolve()) })
  const gw = await Gateway.create({
    logger: log,
    load,
    plugins: (n) => (n === testPrincipalPlugin.name ? testPrincipalPlugin : pluginFactory(n)),
    services: redis ? { redis } : {},
  })
  const admin = new AdminServer(gw)
  registerBudgetRoutes(admin, gw)
  await gw.listen()
  await admin.listen('127.0.0.1', adminPort, gw.settings.admin.key)
  const stop = async (): Promise<void> => {
    await gw.shutdown(2000)
    await admin.close()
    await closeRedis(redis)
    process.exit(0)
  }
  process.on('SIGTERM', () => void stop())
  process.on('SIGINT', () => void stop())
}

void main().catch((e: unknown) => {
  process.stderr.write(`budget entry failed to start: ${(e as Error).stack ?? String(e)}\n`)
  process.exit(1)
})
