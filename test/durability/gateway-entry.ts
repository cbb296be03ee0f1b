/**
 * Test-only process entry for the durability tests, wired the way main.ts wires the execution log:
 * store (MCP_DATABASE_URL / MCP_DATA_DIR) → ExecutionLogWriter (spool under `${dataDir}/spool`, knobs from
 * MCP_EXECUTION_LOG_*) → Gateway with `services.executionLog` → writer.bindMetrics(gw.metrics.registry) →
 * AdminServer with the execution routes. SIGTERM/SIGINT: the gateway drains (every in-flight request completes and
 * enqueues its row), then writer.close() flushes the queue (database, or spool), then the store closes and the
 * process exits 0, after printing `{"event":"execution_log.closed", ...}` on stdout.
 */
import { join } from 'node:path'
import { registerExecutionRoutes } from '../../admin/routes/executions.ts'
import { AdminServer } from '../../admin/server.ts'
import { Gateway } from '../../gateway/gateway.ts'
import { createLogger } from '../../gateway/logger.ts'
import { loadSettings } from '../../gateway/settings.ts'
import { ExecutionLogWriter, executionLogOptionsFromEnv } from '../../store/execution-log-writer.ts'
import { openStore, storeOptionsFromEnv } from '../../store/index.ts'

async function main(): Promise<void> {
  const settings = loadSettings()
  const log = createLogger(settings.log.level)
  const store = await openStore({ ...storeOptionsFromEnv(), onError: (e) => log.warn({ err: e }, 'store: idle client error') })
  const { enabled, ...writerOptions } = executionLogOptionsFromEnv()
  const writer = enabled
    ? await ExecutionLogWriter.open({ ...writerOptions, store, spoolDir: join(settings.dataDir, 'spool'), logger: log.child({ component: 'execution-log' }) })
    : undefined
  // Benchmark knob: the plugin builds every row, the sink throws it away (isolates the plugin's cost from the writer's).
  const discard = process.env['DURABILITY_SINK'] === 'discard'
  const sink = discard ? { enqueue() {}, accepting: () => true } : writer
  const gw = await Gateway.create({ logger: log, services: sink ? { executionLog: sink } : {} })
  writer?.bindMetrics(gw.metrics.registry)
  const admin = new AdminServer(gw)
  registerExecutionRoutes(admin, store)
  const data = await gw.listen()
  const adm = await admin.listen(settings.admin.host, settings.admin.port, settings.admin.key)
  log.info({ port: data.port, adminPort: adm.port }, 'durability entry ready')

  let stopping = false
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return
    stopping = true
    const t0 = Date.now()
    const clean = await gw.shutdown()
    await admin.close()
    const closed = writer ? await writer.close(10_000) : undefined
    await store.close()
    log.flush()
    process.stdout.write(JSON.stringify({ event: 'execution_log.closed', signal, clean, ms: Date.now() - t0, closed, stats: writer?.stats() }) + '\n', () => {
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
