/**
 * Test and benchmark process entry wired the way main.ts should wire usage tracking: store (MCP_DATABASE_URL /
 * MCP_DATA_DIR) → createUsageServices (settings from MCP_USAGE_SETTINGS, JSON of the `usage:` block) → Gateway with
 * `services.usage` → aggregator metrics on the gateway's registry → AdminServer with the usage routes. SIGTERM:
 * the gateway drains (every request records its usage), then the usage services close (last flush), then the
 * store; prints `{"event":"usage.closed", ...}` and exits 0.
 */
import { registerUsageRoutes } from '../../admin/routes/usage.ts'
import { AdminServer } from '../../admin/server.ts'
import { createUsageServices } from '../../gateway/cost/usage-service.ts'
import { parseUsageSettings } from '../../gateway/cost/usage-settings.ts'
import { Gateway } from '../../gateway/gateway.ts'
import { createLogger } from '../../gateway/logger.ts'
import { loadSettings } from '../../gateway/settings.ts'
import { openStore, storeOptionsFromEnv } from '../../store/index.ts'

async function main(): Promise<void> {
  const settings = loadSettings()
  const log = createLogger(settings.log.level)
  const store = await openStore({ ...storeOptionsFromEnv(), onError: (e) => log.warn({ err: e }, 'store: idle client error') })
  const usageSettings = parseUsageSettings(JSON.parse(process.env['MCP_USAGE_SETTINGS'] ?? '{}'))
  const usage = createUsageServices({ store, settings: usageSettings, logger: log.child({ component: 'usage' }) })
  const gw = await Gateway.create({ logger: log, services: { usage: usage.aggregator } })
  usage.bindMetrics(gw.metrics.registry)
  usage.start()
  const admin = new AdminServer(gw)
  registerUsageRoutes(admin, store)
  const data = await gw.listen()
  const adm = await admin.listen(settings.admin.host, settings.admin.port, settings.admin.key)
  log.info({ port: data.port, adminPort: adm.port }, 'usage entry ready')

  let stopping = false
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return
    stopping = true
    const clean = await gw.shutdown()
    await admin.close()
    const flushed = await usage.close()
    await store.close()
    log.flush()
    process.stdout.write(JSON.stringify({ event: 'usage.closed', signal, clean, flushed, stats: usage.aggregator.stats() }) + '\n', () => {
      setImmediate(() => process.exit(0))
    })
  }
  process.on('SIGTERM', () => void stop('SIGTERM'))
  process.on('SIGINT', () => void stop('SIGINT'))
}

void main().catch((e: unknown) => {
  process.stderr.write(`usage entry: failed to start: ${(e as Error).stack ?? String(e)}\n`)
  process.exit(1)
})
