/**
 * Process entry (`npm start`): the data plane on MCP_PORT, the admin API on MCP_ADMIN_PORT.
 * SIGHUP reloads the configuration; SIGTERM/SIGINT drain and exit 0.
 */
import { registerTargetRoutes } from './admin/routes/targets.ts'
import { AdminServer } from './admin/server.ts'
import { Gateway } from './gateway/gateway.ts'
import { createLogger } from './gateway/logger.ts'
import { loadSettings } from './gateway/settings.ts'

async function main(): Promise<void> {
  let settings
  try {
    settings = loadSettings()
  } catch (e) {
    process.stderr.write(`mcp: ${(e as Error).message}\n`)
    process.exit(1)
  }
  const log = createLogger(settings.log.level)
  const gw = await Gateway.create({ logger: log })
  const admin = new AdminServer(gw)
  registerTargetRoutes(admin, gw)
  const data = await gw.listen()
  const adm = await admin.listen(settings.admin.host, settings.admin.port, settings.admin.key)
  gw.watchConfig()
  log.info({ port: data.port, adminPort: adm.port, adminHost: settings.admin.host }, 'MCP gateway ready')

  process.on('SIGHUP', () => void gw.reload('signal'))
  let stopping = false
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return
    stopping = true
    log.info({ signal }, 'shutting down: draining in-flight requests')
    const clean = await gw.shutdown()
    await admin.close()
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
