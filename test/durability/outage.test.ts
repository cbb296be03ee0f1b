/**
 * PostgreSQL outage under load (in-process gateway + writer; PostgreSQL behind a TCP forwarder that this test
 * cuts): ~500 req/s open-loop against the OpenAI mock, the forwarder cut for DURABILITY_OUTAGE_MS (default 8 s;
 * the figure is 30 s: DURABILITY_OUTAGE_MS=30000) mid-load. Must show: 0 failed requests, and once the
 * database is back and the spool replayed, exactly one row per request sent (counted by request id).
 * DURABILITY_RPS changes the rate. Prints a summary line (figures for the report).
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { Gateway } from '../../gateway/gateway.ts'
import { createLogger } from '../../gateway/logger.ts'
import { ExecutionLogWriter } from '../../store/execution-log-writer.ts'
import { openStore } from '../../store/index.ts'
import type { Store } from '../../store/types.ts'
import { ADMIN_KEY, testSettings } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { quantile, startLoad } from './load.ts'
import { dropSchemas, freshSchema, PG_URL, postgresOrSkip, querySchema } from './pg.ts'
import { startForwarder, type Forwarder } from './tcp-forwarder.ts'

const OUTAGE_MS = Number(process.env['DURABILITY_OUTAGE_MS'] ?? 8_000)
const RPS = Number(process.env['DURABILITY_RPS'] ?? 500)
const CUT_AT_MS = 1_500
const LOAD_MS = Math.max(10_000, CUT_AT_MS + OUTAGE_MS + 3_000)

const pgSkip = await postgresOrSkip()

describe.skipIf(pgSkip !== undefined)('PostgreSQL outage under load', () => {
  let mock: OpenAIMock | undefined
  let fwd: Forwarder | undefined
  let store: Store | undefined
  let writer: ExecutionLogWriter | undefined
  let gw: Gateway | undefined
  let dataDir = ''

  afterAll(async () => {
    await gw?.shutdown(2_000)
    await writer?.close(2_000)
    await store?.close()
    await fwd?.close()
    await mock?.close()
    if (dataDir) await rm(dataDir, { recursive: true, force: true })
    await dropSchemas()
  })

  it(`${RPS} req/s, database cut for ${OUTAGE_MS} ms: 0 failed requests, 0 rows lost`, async () => {
    mock = await startOpenAIMock({ record: false })
    const target = new URL(PG_URL)
    fwd = await startForwarder({ host: target.hostname, port: Number(target.port || 5432) })
    const { schema, url } = await freshSchema('outage', fwd)
    store = await openStore({ dataDir: 'unused', databaseUrl: url, onError: () => {} })
    dataDir = await mkdtemp(join(tmpdir(), 'mcp-outage-'))
    const logLines: string[] = []
    const logger = createLogger('info', new Writable({ write(c: Buffer, _e, cb) { logLines.push(c.toString('utf8')); cb() } }))
    writer = await ExecutionLogWriter.open({ store, spoolDir: join(dataDir, 'spool'), logger, retryMs: 500, writeTimeoutMs: 2_000 })
    gw = await Gateway.create({
      logger: createLogger('warn', new Writable({ write(_c, _e, cb) { cb() } })),
      services: { executionLog: writer },
      load: () => testSettings({
        chains: { default: ['request-id', 'auth', 'execution-log'] },
        providers: { mock: { type: 'openai', baseUrl: mock!.url, apiKey: 'sk-outage' } },
      }),
    })
    writer.bindMetrics(gw.metrics.registry)
    const origin = `http://127.0.0.1:${(await gw.listen()).port}`

    const load = startLoad({
      origin, path: '/v1/chat/completions', rps: RPS, durationMs: LOAD_MS, idPrefix: 'outage',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'durability under an outage' }] }),
    })
    await new Promise((r) => setTimeout(r, CUT_AT_MS))
    fwd.cut()
    const cutAt = performance.now()
    let maxSpooled = 0
    let restoredAt = 0
    let drainedAt = 0
    const sampler = setInterval(() => {
      const s = writer!.stats()
      maxSpooled = Math.max(maxSpooled, s.spooled)
      if (restoredAt !== 0 && drainedAt === 0 && s.databaseUp && s.spooled === 0) drainedAt = performance.now()
    }, 20)
    await vi.waitFor(() => expect(writer!.stats().databaseUp).toBe(false), { timeout: 5_000, interval: 20 })
    await new Promise((r) => setTimeout(r, Math.max(0, OUTAGE_MS - (performance.now() - cutAt))))
    const sentAtRestore = load.sentCount()
    fwd.restore()
    restoredAt = performance.now()
    const result = await load.done

    // Every request answered, none failed: the request path never waited on the database.
    expect(result.failed.size).toBe(0)
    expect([...result.completed.values()].every((s) => s === 200)).toBe(true)
    expect(result.completed.size).toBe(result.sent.length)

    await vi.waitFor(async () => {
      await writer!.flush()
      expect(writer!.stats()).toMatchObject({ queued: 0, spooled: 0, databaseUp: true })
    }, { timeout: 60_000, interval: 200 })
    clearInterval(sampler)
    const recoveredMs = (drainedAt || performance.now()) - restoredAt

    const rows = await querySchema<{ request_id: string }>(schema, 'SELECT request_id FROM execution_logs')
    const ids = new Set(rows.map((r) => r.request_id))
    const missing = result.sent.filter((id) => !ids.has(id))
    const stats = writer.stats()
    const duringOutage = result.latencies.filter(([at]) => at >= CUT_AT_MS && at < CUT_AT_MS + OUTAGE_MS).map(([, l]) => l)
    const outside = result.latencies.filter(([at]) => at < CUT_AT_MS || at >= CUT_AT_MS + OUTAGE_MS + 1_000).map(([, l]) => l)
    console.log(JSON.stringify({
      test: 'outage', rps: RPS, outageMs: OUTAGE_MS, sent: result.sent.length, failed: result.failed.size, rows: rows.length,
      distinctRequestIds: ids.size, missing: missing.length, sentDuringOutage: sentAtRestore, maxSpooledRows: maxSpooled,
      spooledTotal: stats.spooledTotal, replayed: stats.replayed, dropped: stats.dropped, writeFailures: stats.failures,
      spoolReplayedMsAfterRestore: Math.round(recoveredMs), achievedRps: Math.round(result.sent.length / (result.elapsedMs / 1000)),
      latencyMs: {
        outageP50: +quantile(duringOutage, 0.5).toFixed(2), outageP99: +quantile(duringOutage, 0.99).toFixed(2),
        normalP50: +quantile(outside, 0.5).toFixed(2), normalP99: +quantile(outside, 0.99).toFixed(2),
      },
    }))

    expect(missing).toEqual([])
    expect(rows.length).toBe(result.sent.length)
    expect(ids.size).toBe(result.sent.length)
    expect(stats.dropped).toBe(0)
    expect(stats.spooledTotal).toBeGreaterThan(0)
    expect(stats.replayed).toBe(stats.spooledTotal)
    expect((await readdir(join(dataDir, 'spool'))).filter((n) => n.startsWith('seg-'))).toEqual([])
    expect(logLines.join('')).toMatch(/database unavailable[\s\S]*database reachable again/)
  }, LOAD_MS + 90_000)
})
