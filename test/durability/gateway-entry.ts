/**
 * Test-only process entry for the durability tests and the logging benchmark. It wires the execution log exactly
 * as main.ts should (see the block marked WIRING): startMcp opens the store (MCP_DATABASE_URL / MCP_DATA_DIR);
 * the writer is created in the `services` callback with that store and a spool under `${dataDir}/spool` (knobs
 * from MCP_EXECUTION_LOG_*); its metrics and the execution routes are registered in `adminRoutes`; it is closed in
 * `beforeStoreClose`, which startMcp calls after the gateway drained (every in-flight request completed and
 * enqueued its row) and before the store closes.
 * SIGTERM/SIGINT: mcp.close(), then `{"event":"execution_log.closed", ...}` on stdout, exit 0.
 * DURABILITY_SINK=discard (benchmark only): the plugin builds every row and a sink throws it away.
 */
import { join } from 'node:path'
import { startMcp } from '../../admin/bootstrap.ts'
import { registerExecutionRoutes } from '../../admin/routes/executions.ts'
import { createLogger } from '../../gateway/logger.ts'
import type { PluginServices } from '../../gateway/pipeline/types.ts'
import { loadSettings } from '../../gateway/settings.ts'
import { ExecutionLogWriter, executionLogOptionsFromEnv } from '../../store/execution-log-writer.ts'

async function main(): Promise<void> {
  const settings = loadSettings()
  const log = createLogger(settings.log.level)
  const discard = process.env['DURABILITY_SINK'] === 'discard'

  // ---- WIRING (main.ts) ---------------------------------------------------------------------------
  const { enabled: logExecutions, ...executionLogOptions } = executionLogOptionsFromEnv()
  let executionLog: ExecutionLogWriter | undefined
  let closed: Awaited<ReturnType<ExecutionLogWriter['close']>> | undefined
  const mcp = await startMcp({
    logger: log,
    services: (store): PluginServices => {
      if (logExecutions) {
        executionLog = ExecutionLogWriter.create({
          ...executionLogOptions, store, spoolDir: join(settings.dataDir, 'spool'), logger: log.child({ component: 'execution-log' }),
        })
      }
      if (discard) return { executionLog: { enqueue() {}, accepting: () => true } }
      return executionLog ? { executionLog } : {}
    },
    adminRoutes: (admin, cp, gw) => {
      registerExecutionRoutes(admin, cp.store)
      executionLog?.bindMetrics(gw.metrics.registry)
    },
    beforeStoreClose: async () => { closed = await executionLog?.close(10_000) },
  })
  // ---- end of WIRING --------------------------------------------------------------------------------

  log.info({ port: mcp.data.port, adminPort: mcp.adminAddress.port }, 'durability entry ready')
  let stopping = false
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return
    stopping = true
    const t0 = Date.now()
    const clean = await mcp.close()
    log.flush()
    process.stdout.write(JSON.stringify({ event: 'execution_log.closed', signal, clean, ms: Date.now() - t0, closed, stats: executionLog?.stats() }) + '\n', () => {
      setImmediate(() => process.exit(0))
    })
  }
  process.on('SIGTERM', () => void stop('SIGTERM'))
  process.on('SIGINT', () => void stop('SIGINT'))
}

void main().catch((e: unknown) => {
  process.stderr.write(`durability entry failed to start: ${(e as Error).stack ?? String(e)}\n`)
  process.exit(1)
})
