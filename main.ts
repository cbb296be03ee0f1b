/**
 * Process entry (`npm start`): the data plane on MCP_PORT, the admin API on MCP_ADMIN_PORT, the store
 * (PostgreSQL at MCP_DATABASE_URL, else embedded PGlite under MCP_DATA_DIR) behind the control plane,
 * Redis (MCP_REDIS_URL) for limits, budgets, alerts and caches shared across instances.
 * SIGHUP reloads the configuration; SIGTERM/SIGINT drain, flush and exit 0.
 */
import './gateway/v8-tuning.ts'
import { startMcp } from './admin/bootstrap.ts'
import { join } from 'node:path'
import { registerAlertRoutes } from './admin/routes/alerts.ts'
import { registerBudgetRoutes } from './admin/routes/budgets.ts'
import { registerExecutionRoutes } from './admin/routes/executions.ts'
import { registerTargetRoutes } from './admin/routes/targets.ts'
import { registerUsageRoutes } from './admin/routes/usage.ts'
import { AlertManager } from './gateway/alerts/manager.ts'
import { createUsageServices, type UsageServices } from './gateway/cost/usage-service.ts'
import type { Gateway } from './gateway/gateway.ts'
import { createLogger } from './gateway/logger.ts'
import { loadSettings } from './gateway/settings.ts'
import { ExecutionLogWriter, executionLogOptionsFromEnv } from './store/execution-log-writer.ts'
import { runRetention } from './store/index.ts'
import type { Store } from './store/types.ts'

async function main(): Promise<void> {
  let settings
  try {
    settings = loadSettings()
  } catch (e) {
    process.stderr.write(`mcp: ${(e as Error).message}\n`)
    process.exit(1)
  }
  const log = createLogger(settings.log.level)
  // ioredis is loaded only when Redis is configured.
  const redisLib = settings.redisUrl ? await import('./gateway/redis.ts') : undefined
  const redis = settings.redisUrl && redisLib ? redisLib.createRedis(settings.redisUrl, { logger: log.child({ component: 'redis' }) }) : undefined
  let gwRef: Gateway | undefined
  // Alert rules are read from the running settings on use, so a reload needs no wiring.
  const alerts = new AlertManager(() => gwRef?.settings.alerts, { logger: log.child({ component: 'alerts' }), ...(redis ? { redis } : {}) })
  let usage: UsageServices | undefined
  let store: Store | undefined
  const { enabled: logExecutions, ...executionLogOptions } = executionLogOptionsFromEnv()
  let executionLog: ExecutionLogWriter | undefined

  const mcp = await startMcp({
    logger: log,
    services: (s) => {
      store = s
      usage = createUsageServices({ store: s, settings: settings.usage, logger: log.child({ component: 'usage' }) })
      if (logExecutions) {
        executionLog = ExecutionLogWriter.create({ ...executionLogOptions, store: s, spoolDir: join(settings.dataDir, 'spool'), logger: log.child({ component: 'execution-log' }) })
      }
      return { ...(redis ? { redis } : {}), alerts, usage: usage.aggregator, ...(executionLog ? { executionLog } : {}) }
    },
    adminRoutes: (admin, cp, gw) => {
      gwRef = gw
      registerTargetRoutes(admin, gw)
      registerBudgetRoutes(admin, gw, () => cp.snapshot.keys.values())
      registerAlertRoutes(admin, alerts)
      registerUsageRoutes(admin, store!)
      registerExecutionRoutes(admin, store!)
      executionLog?.bindMetrics(gw.metrics.registry)
      alerts.bindMetrics(gw.metrics.registry)
      alerts.watchTargets(() => gw.targets.all())
      usage?.bindMetrics(gw.metrics.registry)
      if (redis) admin.addReadinessCheck({ name: 'redis', critical: false, check: () => redisLib!.redisReady(redis) })
      // Degraded, not unready: requests are served; rows wait in memory during a database outage (lost at shutdown).
      if (executionLog) admin.addReadinessCheck({ name: 'execution_log_spool', critical: false, check: () => executionLog!.spoolAvailable })
    },
    beforeStoreClose: async () => {
      await usage?.close()
      await executionLog?.close(10_000)
    },
  })
  usage?.start()
  // Execution-log partitions ahead and retention, off the request path, at start and every 6 hours.
  const retention = (): void => {
    void runRetention(mcp.store, { retentionDays: settings.executionLogs.retentionDays, daysAhead: 7 })
      .catch((e: unknown) => log.warn({ err: e }, 'execution-log retention failed; retrying at the next run'))
  }
  retention()
  const retentionTimer = setInterval(retention, 6 * 3600_000)
  retentionTimer.unref()
  const gw = mcp.gw
  gw.watchConfig()
  log.info({ port: mcp.data.port, adminPort: mcp.adminAddress.port, adminHost: settings.admin.host, store: mcp.store.engine, redis: redis !== undefined }, 'MCP gateway ready')

  process.on('SIGHUP', () => void gw.reload('signal'))
  let stopping = false
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return
    stopping = true
    log.info({ signal }, 'shutting down: draining in-flight requests')
    // Alerts close after the drain: a request settling during it may still cross a budget threshold.
    const clean = await mcp.close()
    await alerts.close()
    await redisLib?.closeRedis(redis)
    log.info({ clean }, 'shutdown complete')
    log.flush()
    setImmediate(() => process.exit(0))
  }
  process.on('SIGTERM', () => void stop('SIGTERM'))
  process.on('SIGINT', () => void stop('SIGINT'))
}

process.on('unhandledRejection', (e) => {
  process.stderr.write(`mcp: unhandled rejection: ${(e as Error)?.stack ?? String(e)}\n`)
})

void main().catch((e: unknown) => {
  process.stderr.write(`mcp: failed to start: ${(e as Error).message}\n`)
  process.exit(1)
})
