/**
 * Signals under load, on the real process (test/durability/gateway-entry.ts, wired like main.ts), PostgreSQL in a
 * schema of its own, ~500 req/s open-loop against the OpenAI mock:
 * - SIGTERM mid-load: the gateway drains, the writer flushes; every request that got a response has its row
 *   (0 lost), exit code 0.
 * - SIGKILL mid-load: rows still in memory are lost. The test counts them (completed requests without a row, after
 *   a restart on the same data directory replays whatever reached the spool) and checks the documented bound:
 *   at most rate × (flushIntervalMs + one write) rows, i.e. the queue plus the batch in flight.
 * - SIGKILL while PostgreSQL is unreachable (cut through a TCP forwarder): rows already in the spool survive the
 *   kill (they are in the OS page cache) and are replayed by the next process; only the queue is lost.
 * Prints one summary line per case (figures for the report).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { startLoad, type LoadResult } from './load.ts'
import { dropSchemas, freshSchema, PG_URL, postgresOrSkip, querySchema, schemaUrl } from './pg.ts'
import { ADMIN_KEY, spawnEntry, type EntryProcess } from './process.ts'
import { startForwarder } from './tcp-forwarder.ts'

const RPS = Number(process.env['DURABILITY_RPS'] ?? 500)
const SIGNAL_AT_MS = 3_000
const FLUSH_INTERVAL_MS = 200
/** A write to an unreachable database is given up (and spooled) after this long. */
const WRITE_TIMEOUT_MS = 500
/** In the outage case the database is cut this long after the load starts (the kill comes at SIGNAL_AT_MS). */
const CUT_AT_MS = 1_000

const pgSkip = await postgresOrSkip()

describe.skipIf(pgSkip !== undefined)('signals under load (real process)', () => {
  let mock: OpenAIMock
  const procs: EntryProcess[] = []
  const dirs: string[] = []

  beforeAll(async () => { mock = await startOpenAIMock({ record: false }) })
  afterAll(async () => {
    for (const p of procs) await p.stop()
    await mock?.close()
    for (const d of dirs) await rm(d, { recursive: true, force: true })
    await dropSchemas()
  })

  async function start(schemaUrl: string, dataDir: string): Promise<EntryProcess> {
    const p = await spawnEntry({
      chains: { default: ['request-id', 'auth', 'execution-log'] },
      providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-signals' } },
    }, {
      MCP_DATABASE_URL: schemaUrl, MCP_DATA_DIR: dataDir, MCP_EXECUTION_LOG_FLUSH_INTERVAL_MS: String(FLUSH_INTERVAL_MS),
      MCP_EXECUTION_LOG_RETRY_MS: '500', MCP_EXECUTION_LOG_WRITE_TIMEOUT_MS: String(WRITE_TIMEOUT_MS),
    })
    procs.push(p)
    return p
  }

  async function loadThenSignal(p: EntryProcess, signal: NodeJS.Signals, prefix: string, midway?: () => Promise<void>): Promise<{ result: LoadResult; exit: { code: number | null; signal: NodeJS.Signals | null }; completedBeforeSignal: number }> {
    const load = startLoad({
      origin: p.url, path: '/v1/chat/completions', rps: RPS, durationMs: 20_000, idPrefix: prefix, connections: 32,
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock/gpt-4o', messages: [{ role: 'user', content: `durability ${signal}` }] }),
    })
    if (midway) await midway()
    await new Promise((r) => setTimeout(r, SIGNAL_AT_MS))
    const completedBeforeSignal = load.completedCount()
    p.proc.kill(signal)
    const exit = await p.exited
    load.stop()
    return { result: await load.done, exit, completedBeforeSignal }
  }

  async function rowIds(schema: string): Promise<Set<string>> {
    return new Set((await querySchema<{ request_id: string }>(schema, 'SELECT request_id FROM execution_logs')).map((r) => r.request_id))
  }

  it('SIGTERM mid-load: 0 rows lost, exit 0', async () => {
    const { schema, url } = await freshSchema('sigterm')
    const dataDir = await mkdtemp(join(tmpdir(), 'mcp-sigterm-'))
    dirs.push(dataDir)
    const p = await start(url, dataDir)
    const { result, exit, completedBeforeSignal } = await loadThenSignal(p, 'SIGTERM', 'term')
    expect(exit).toEqual({ code: 0, signal: null })
    const closedLine = p.output().split('\n').find((l) => l.includes('"execution_log.closed"'))
    expect(closedLine).toBeDefined()
    const closed = JSON.parse(closedLine!) as { closed: { written: number; spooled: number; dropped: number }; stats: { dropped: number; spooled: number } }
    const ids = await rowIds(schema)
    const completed = [...result.completed.keys()]
    const lost = completed.filter((id) => !ids.has(id))
    console.log(JSON.stringify({
      test: 'sigterm', rps: RPS, sent: result.sent.length, completed: completed.length, completedBeforeSignal, failedAfterSignal: result.failed.size,
      rows: ids.size, lost: lost.length, rowsWithoutResponse: [...ids].filter((id) => !result.completed.has(id)).length,
      flushedAtClose: closed.closed, droppedTotal: closed.stats.dropped,
    }))
    expect(completed.length).toBeGreaterThan(RPS * (SIGNAL_AT_MS / 1000) * 0.8)
    expect(lost).toEqual([])
    expect(closed.closed.dropped).toBe(0)
    expect(closed.stats.spooled).toBe(0)
    for (const id of ids) expect(result.sent).toContain(id)
  }, 60_000)

  async function waitSpoolReplayed(p: EntryProcess): Promise<void> {
    await vi.waitFor(async () => {
      const text = await (await fetch(`${p.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).text()
      expect(text).toContain('mcp_execution_log_spool_rows 0')
      expect(text).toContain('mcp_execution_log_database_up 1')
    }, { timeout: 20_000, interval: 100 })
  }

  it('SIGKILL mid-load: rows lost are counted and stay within rate times (flush interval + one write)', async () => {
    const { schema, url } = await freshSchema('sigkill')
    const dataDir = await mkdtemp(join(tmpdir(), 'mcp-sigkill-'))
    dirs.push(dataDir)
    const p = await start(url, dataDir)
    const { result, exit } = await loadThenSignal(p, 'SIGKILL', 'kill')
    expect(exit.signal).toBe('SIGKILL')
    const before = await rowIds(schema)
    // A restart on the same data directory replays whatever reached the spool before the kill.
    await waitSpoolReplayed(await start(url, dataDir))
    const after = await rowIds(schema)
    const completed = [...result.completed.keys()]
    const lost = completed.filter((id) => !after.has(id))
    const bound = Math.ceil(RPS * (FLUSH_INTERVAL_MS + 100) / 1000)
    console.log(JSON.stringify({
      test: 'sigkill', rps: RPS, flushIntervalMs: FLUSH_INTERVAL_MS, sent: result.sent.length, completed: completed.length,
      rowsAfterKill: before.size, rowsAfterRestart: after.size, lost: lost.length, bound,
      rowsWithoutResponse: [...after].filter((id) => !result.completed.has(id)).length,
    }))
    expect(completed.length).toBeGreaterThan(RPS * (SIGNAL_AT_MS / 1000) * 0.8)
    expect(lost.length).toBeLessThanOrEqual(bound)
  }, 60_000)

  it('SIGKILL while PostgreSQL is unreachable: the spool survives the kill and is replayed by the next process', async () => {
    const target = new URL(PG_URL)
    const fwd = await startForwarder({ host: target.hostname, port: Number(target.port || 5432) })
    try {
      const { schema, url } = await freshSchema('sigkill_outage', fwd)
      const dataDir = await mkdtemp(join(tmpdir(), 'mcp-sigkill-outage-'))
      dirs.push(dataDir)
      const p = await start(url, dataDir)
      const { result, exit } = await loadThenSignal(p, 'SIGKILL', 'killout', async () => {
        await new Promise((r) => setTimeout(r, CUT_AT_MS))
        fwd.cut()
      })
      expect(exit.signal).toBe('SIGKILL')
      const rowsBefore = (await rowIds(schema)).size
      fwd.restore()
      await waitSpoolReplayed(await start(schemaUrl(schema), dataDir))
      // The spool is opened asynchronously at start: its metric may read 0 before the replay begins, so
      // wait until the rows from the spool have landed (or 20 s passed).
      const expected = RPS * ((SIGNAL_AT_MS - CUT_AT_MS - WRITE_TIMEOUT_MS - FLUSH_INTERVAL_MS) / 1000) * 0.5
      for (const until = Date.now() + 20_000; Date.now() < until;) {
        if ((await rowIds(schema)).size - rowsBefore > expected) break
        await new Promise((r) => setTimeout(r, 200))
      }
      const after = await rowIds(schema)
      const completed = [...result.completed.keys()]
      const lost = completed.filter((id) => !after.has(id))
      // During an outage a batch may wait up to the write timeout before it goes to the spool: what a SIGKILL
      // can lose is what sits in memory, rate × (flush interval + write timeout).
      const bound = Math.ceil(RPS * (FLUSH_INTERVAL_MS + WRITE_TIMEOUT_MS + 100) / 1000)
      console.log(JSON.stringify({
        test: 'sigkill-during-outage', rps: RPS, sent: result.sent.length, completed: completed.length, rowsInDbAtKill: rowsBefore,
        rowsAfterRestartAndReplay: after.size, replayedFromSpool: after.size - rowsBefore, lost: lost.length, bound,
      }))
      expect(after.size - rowsBefore).toBeGreaterThan(expected)
      expect(lost.length).toBeLessThanOrEqual(bound)
    } finally {
      await fwd.close()
    }
  }, 90_000)
})
