/**
 * Retention never holds up execution-log writes for long (PostgreSQL). Dropping a day's partition needs the parent
 * table's strongest lock: while it waits for a running write, every new write queues behind it. It gives up
 * quickly instead (the next run retries), well inside the writer's own timeout, so rows keep going to the database
 * rather than to the spool.
 */
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { openStore } from '../../store/index.ts'
import { ensurePartitions, purgeExecutionLogs } from '../../store/retention.ts'
import { dropSchemas, freshSchemaUrl, PG_URL, pgUnavailable } from '../helpers/postgres.ts'

const insert = `INSERT INTO execution_logs (request_id, provider, model, status, request, created_at) VALUES ($1, 'openai', 'gpt-4o', 'ok', '{}', $2)`

describe.skipIf(pgUnavailable !== undefined && process.env['CI'] !== 'true')('retention and concurrent writes (PostgreSQL)', () => {
  afterAll(async () => { await dropSchemas() })

  it(`a partition drop waiting on a running write gives up within a second; writes behind it wait no longer (${PG_URL})`, async () => {
    const url = await freshSchemaUrl('retlock')
    const store = await openStore({ dataDir: 'unused', databaseUrl: url })
    const a = new pg.Client({ connectionString: url })
    const c = new pg.Client({ connectionString: url })
    await Promise.all([a.connect(), c.connect()])
    try {
      await ensurePartitions(store, new Date('2021-01-01T00:00:00Z'), 0)
      await store.query(insert, ['old-1', new Date('2021-01-01T12:00:00Z')])
      // A write in progress (a long COPY): it holds the parent's ROW EXCLUSIVE lock for 3 s.
      await a.query('BEGIN')
      await a.query(insert, ['running-1', new Date()])
      const releaseA = setTimeout(() => { void a.query('COMMIT') }, 3000)
      const t0 = performance.now()
      const purge = purgeExecutionLogs(store, new Date('2021-01-02T00:00:00Z')).then(() => 'done', (e: unknown) => e)
      await new Promise((r) => setTimeout(r, 150))
      // A new write arrives while the drop waits for its lock.
      const t1 = performance.now()
      await c.query(insert, ['queued-1', new Date()])
      const queuedMs = performance.now() - t1
      const outcome = await purge
      const purgeMs = performance.now() - t0
      clearTimeout(releaseA)
      await a.query('COMMIT').catch(() => {})
      expect(queuedMs).toBeLessThan(1500)
      expect(purgeMs).toBeLessThan(2500)
      // It gave up (lock_not_available): the old day is still there, for the next run.
      expect((outcome as { code?: string }).code).toBe('55P03')
      expect((await store.query('SELECT 1 FROM execution_logs WHERE request_id = $1', ['old-1'])).rowCount).toBe(1)
      // With no write in the way, the next run drops it.
      expect((await purgeExecutionLogs(store, new Date('2021-01-02T00:00:00Z'))).droppedPartitions).toBeGreaterThanOrEqual(1)
    } finally {
      await Promise.all([a.end(), c.end()])
      await store.close()
    }
  }, 20_000)
})
