/**
 * The store suite, run unchanged against both engines: PGlite in memory, and PostgreSQL at MCP_TEST_DATABASE_URL
 * (default postgres://postgres@127.0.0.1:5432/test) in a schema of its own per run, dropped at the end.
 * PostgreSQL unreachable: the suite fails when CI=true, and is skipped with a message otherwise.
 */
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openStore, storeOptionsFromEnv } from '../../store/index.ts'
import { DEFAULT_MIGRATIONS_DIR, loadMigrations, migrate, MigrationError } from '../../store/migrate.ts'
import { openPglite } from '../../store/pglite.ts'
import { ensurePartitions, purgeExecutionLogs } from '../../store/retention.ts'
import { IMMUTABLE_ROW_SQLSTATE, sqlState } from '../../store/types.ts'
import type { Queryable, Store } from '../../store/types.ts'
import { dropSchemas, freshSchemaUrl as freshSchema, PG_URL, pgUnavailable, withAdmin } from '../helpers/postgres.ts'

const SLOW = 60_000

function freshSchemaUrl(): Promise<string> {
  return freshSchema('mcp_store_test')
}

interface Engine {
  name: 'pglite' | 'postgres'
  /** A migrated store of its own (empty database / schema). */
  open(): Promise<Store>
  /** An unmigrated store and a way to open more stores on the same database. */
  openBlank(): Promise<{ store: Store; openAnother?: () => Promise<Store> }>
}

const engines: Engine[] = [
  {
    name: 'pglite',
    open: () => openStore({ dataDir: 'memory://' }),
    openBlank: async () => ({ store: await openPglite({ dataDir: 'memory://' }) }),
  },
]
if (pgUnavailable === undefined) {
  engines.push({
    name: 'postgres',
    open: async () => openStore({ dataDir: 'unused', databaseUrl: await freshSchemaUrl() }),
    openBlank: async () => {
      const url = await freshSchemaUrl()
      const store = await openStore({ dataDir: 'unused', databaseUrl: url, migrate: false })
      return { store, openAnother: () => openStore({ dataDir: 'unused', databaseUrl: url }) }
    },
  })
} else if (process.env['CI'] === 'true') {
  describe('store on PostgreSQL', () => {
    it('needs PostgreSQL in CI', () => {
      expect.fail(`PostgreSQL at ${PG_URL} is unreachable (${pgUnavailable}); CI=true requires it`)
    })
  })
} else {
  console.warn(`[store tests] PostgreSQL at ${PG_URL} is unreachable (${pgUnavailable}): the postgres engine is not run (CI=true requires it)`)
}

afterAll(dropSchemas)

async function expectSqlState(promise: Promise<unknown>, code: string): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err, `expected an error with SQLSTATE ${code}`).toBeDefined()
  expect(sqlState(err)).toBe(code)
}

async function insertPromptVersion(q: Queryable): Promise<{ promptId: string; versionId: string }> {
  const { rows: prompts } = await q.query<{ id: string }>(
    'INSERT INTO prompts (name, latest_version) VALUES ($1, 1) RETURNING id',
    [`prompt-${randomUUID()}`],
  )
  const promptId = prompts[0]!.id
  const { rows: versions } = await q.query<{ id: string }>(
    'INSERT INTO prompt_versions (prompt_id, version, template) VALUES ($1, 1, $2) RETURNING id',
    [promptId, JSON.stringify([{ role: 'user', content: 'Hello {{name}}' }])],
  )
  return { promptId, versionId: versions[0]!.id }
}

function insertLog(q: Queryable, requestId: string, createdAt: Date): Promise<{ rowCount: number }> {
  return q.query(
    `INSERT INTO execution_logs (request_id, provider, model, status, request, created_at)
     VALUES ($1, 'openai', 'gpt-4o-mini', 'ok', $2, $3) ON CONFLICT DO NOTHING`,
    [requestId, JSON.stringify({ messages: [] }), createdAt],
  )
}

async function partitions(q: Queryable): Promise<string[]> {
  const { rows } = await q.query<{ relname: string }>(
    `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'execution_logs'::regclass ORDER BY 1`,
  )
  return rows.map((r) => r.relname)
}

describe.each(engines)('store on $name', (engine) => {
  let store: Store

  beforeAll(async () => {
    store = await engine.open()
  }, SLOW)

  afterAll(async () => {
    await store?.close()
  })

  it('opens the expected engine and answers ping', async () => {
    expect(store.engine).toBe(engine.name)
    expect(await store.ping()).toBe(true)
  })

  it('applies every migration once and is idempotent', async () => {
    const files = await loadMigrations()
    const { rows } = await store.query<{ version: number; name: string; checksum: string }>(
      'SELECT version, name, checksum FROM schema_migrations ORDER BY version',
    )
    expect(rows.map((r) => r.version)).toEqual(files.map((f) => f.version))
    expect(rows.map((r) => r.checksum.trim())).toEqual(files.map((f) => f.checksum))

    const again = await migrate(store)
    expect(again.applied).toEqual([])
    expect(again.current).toBe(files.at(-1)!.version)

    const { rows: tables } = await store.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1`,
    )
    expect(tables.map((t) => t.table_name)).toEqual(
      expect.arrayContaining([
        'api_keys', 'audit_log', 'deployment_history', 'deployment_traffic', 'deployments', 'execution_logs',
        'prompt_versions', 'prompts', 'provider_configs', 'schema_migrations', 'usage_rollups',
      ]),
    )
  })

  it('applies migrations exactly once when three instances start at once', async () => {
    const { store: blank, openAnother } = await engine.openBlank()
    const others: Store[] = []
    try {
      if (openAnother) {
        // PostgreSQL: three openStore on the same schema (three pools) at once. Applying a migration twice would
        // fail (CREATE TABLE of an existing table), so three successful opens plus one row per version below
        // show the advisory lock serialized them.
        others.push(...(await Promise.all([openAnother(), openAnother(), openAnother()])))
      } else {
        // PGlite is single-process: three concurrent migrate() on one database.
        const results = await Promise.all([migrate(blank), migrate(blank), migrate(blank)])
        const applied = results.flatMap((r) => r.applied.map((m) => m.version))
        expect(applied.sort()).toEqual((await loadMigrations()).map((m) => m.version).sort())
      }
      const { rows } = await blank.query<{ version: number; n: number }>(
        'SELECT version, count(*)::int AS n FROM schema_migrations GROUP BY version ORDER BY version',
      )
      expect(rows).toEqual((await loadMigrations()).map((m) => ({ version: m.version, n: 1 })))
      expect((await blank.query('SELECT 1 FROM deployments LIMIT 1')).rowCount).toBe(0)
    } finally {
      await Promise.all(others.map((s) => s.close()))
      await blank.close()
    }
  }, SLOW)

  it('refuses to start when an applied migration changed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mcp-migrations-'))
    try {
      await cp(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true })
      const file = join(dir, '0001_init.sql')
      await writeFile(file, `${await readFile(file, 'utf8')}\n-- edited after release\n`)
      const err = await migrate(store, { dir }).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(err).toBeInstanceOf(MigrationError)
      expect((err as Error).message).toMatch(/0001_init was changed after it was applied/)
      // Line endings do not count as a change.
      await cp(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true })
      await writeFile(file, (await readFile(file, 'utf8')).replace(/\n/g, '\r\n'))
      expect((await migrate(store, { dir })).applied).toEqual([])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('keeps prompt versions immutable', async () => {
    const { promptId, versionId } = await insertPromptVersion(store)
    await expectSqlState(
      store.query(`UPDATE prompt_versions SET model = 'gpt-4o' WHERE id = $1`, [versionId]),
      IMMUTABLE_ROW_SQLSTATE,
    )
    // A second version of the same number is refused; the next number is fine.
    await expectSqlState(
      store.query(`INSERT INTO prompt_versions (prompt_id, version, template) VALUES ($1, 1, '"x"')`, [promptId]),
      '23505',
    )
    const next = await store.query(
      `INSERT INTO prompt_versions (prompt_id, version, template) VALUES ($1, 2, '"x"') RETURNING id`,
      [promptId],
    )
    expect(next.rowCount).toBe(1)
  })

  it('keeps the audit log append-only', async () => {
    const actor = randomUUID()
    const { rows } = await store.query<{ id: number; source_ip: string; after: unknown }>(
      `INSERT INTO audit_log (actor_key_id, action, object_type, object_id, before, after, request_id, source_ip)
       VALUES ($1, 'deployment.update', 'deployment', $2, $3, $4, 'req-1', '10.1.2.3') RETURNING id, source_ip, after`,
      [actor, randomUUID(), JSON.stringify({ status: 'pending' }), JSON.stringify({ status: 'active' })],
    )
    const id = rows[0]!.id
    expect(typeof id).toBe('number')
    expect(rows[0]!.source_ip).toBe('10.1.2.3')
    expect(rows[0]!.after).toEqual({ status: 'active' })
    await expectSqlState(store.query(`UPDATE audit_log SET action = 'x' WHERE id = $1`, [id]), IMMUTABLE_ROW_SQLSTATE)
    await expectSqlState(store.query('DELETE FROM audit_log WHERE id = $1', [id]), IMMUTABLE_ROW_SQLSTATE)
    await expectSqlState(store.query('TRUNCATE audit_log'), IMMUTABLE_ROW_SQLSTATE)
    const after = await store.query('SELECT 1 FROM audit_log WHERE actor_key_id = $1', [actor])
    expect(after.rowCount).toBe(1)
  })

  it('makes execution log inserts idempotent by request id (per day)', async () => {
    await ensurePartitions(store, new Date('2022-03-01T00:00:00Z'), 1)
    const rid = `req-${randomUUID()}`
    expect((await insertLog(store, rid, new Date('2022-03-01T10:00:00Z'))).rowCount).toBe(1)
    // Replay, even with another timestamp the same day: nothing inserted.
    expect((await insertLog(store, rid, new Date('2022-03-01T10:00:00Z'))).rowCount).toBe(0)
    expect((await insertLog(store, rid, new Date('2022-03-01T23:59:59Z'))).rowCount).toBe(0)
    // Another day is another partition.
    expect((await insertLog(store, rid, new Date('2022-03-02T08:00:00Z'))).rowCount).toBe(1)
    // Same rule in the default partition (days without a partition).
    const rid2 = `req-${randomUUID()}`
    expect((await insertLog(store, rid2, new Date('2019-05-05T01:00:00Z'))).rowCount).toBe(1)
    expect((await insertLog(store, rid2, new Date('2019-05-05T02:00:00Z'))).rowCount).toBe(0)
    expect((await insertLog(store, rid2, new Date('2019-05-06T02:00:00Z'))).rowCount).toBe(1)
    const { rows } = await store.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM execution_logs WHERE request_id = ANY($1::text[])',
      [[rid, rid2]],
    )
    expect(rows[0]!.n).toBe(4)
    // deployment_id may be NULL (gateway /v1/* traffic); the spec's JSONB columns round-trip.
    const { rows: logs } = await store.query<{ deployment_id: string | null; request: unknown }>(
      'SELECT deployment_id, request FROM execution_logs WHERE request_id = $1 LIMIT 1',
      [rid],
    )
    expect(logs[0]).toEqual({ deployment_id: null, request: { messages: [] } })
  })

  it('creates daily partitions ahead and purges old rows', async () => {
    const day = (s: string) => new Date(`${s}T00:00:00Z`)
    expect(await ensurePartitions(store, day('2021-06-10'), 4)).toBe(5)
    expect(await ensurePartitions(store, day('2021-06-10'), 4)).toBe(0) // idempotent
    const names = await partitions(store)
    for (const d of ['20210610', '20210611', '20210612', '20210613', '20210614']) {
      expect(names).toContain(`execution_logs_p${d}`)
    }
    // Today's partitions were created by openStore.
    expect(names).toContain(`execution_logs_p${new Date().toISOString().slice(0, 10).replace(/-/g, '')}`)

    const tag = randomUUID()
    const at = (iso: string, n: number) => insertLog(store, `${tag}-${n}`, new Date(iso))
    await at('2021-06-01T12:00:00Z', 1) // no partition yet: default partition
    await at('2021-06-10T01:00:00Z', 2)
    await at('2021-06-11T23:00:00Z', 3)
    await at('2021-06-13T05:00:00Z', 4)
    await at('2021-06-13T18:00:00Z', 5)
    await at('2021-06-14T09:00:00Z', 6)

    // Creating the missing day moves its rows out of the default partition.
    expect(await ensurePartitions(store, day('2021-06-01'), 0)).toBe(1)
    const { rows: located } = await store.query<{ part: string }>(
      'SELECT tableoid::regclass::text AS part FROM execution_logs WHERE request_id = $1',
      [`${tag}-1`],
    )
    expect(located.map((r) => r.part.replace(/^.*\./, ''))).toEqual(['execution_logs_p20210601'])

    const remaining = async () =>
      (
        await store.query<{ request_id: string }>(
          'SELECT request_id FROM execution_logs WHERE request_id LIKE $1 ORDER BY created_at',
          [`${tag}-%`],
        )
      ).rows.map((r) => Number(r.request_id.slice(tag.length + 1)))

    // Cut inside 2021-06-13: the whole days before are dropped, the straddling day is deleted row by row.
    const result = await purgeExecutionLogs(store, new Date('2021-06-13T12:00:00Z'), { batchSize: 1 })
    expect(result.droppedPartitions).toBeGreaterThanOrEqual(4) // 0601, 0610, 0611, 0612 (+ older ones of other tests)
    expect(result.deletedRows).toBeGreaterThanOrEqual(1)
    expect(await remaining()).toEqual([5, 6])
    const after = await partitions(store)
    expect(after).not.toContain('execution_logs_p20210612')
    expect(after).toContain('execution_logs_p20210613')
    expect(after).toContain('execution_logs_default')
  })

  it('0008 widens request_id to 128 characters on every partition, those created before it and the default one included', async () => {
    const { store: blank } = await engine.openBlank()
    const dir = await mkdtemp(join(tmpdir(), 'mcp-migrations-'))
    try {
      // The schema as it was before 0008, with partitions created then (one attached with rows from the default).
      await cp(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true })
      await rm(join(dir, '0008_execution_logs_request_id_128.sql'))
      await migrate(blank, { dir })
      await ensurePartitions(blank, new Date('2023-04-01T00:00:00Z'), 1)
      expect((await insertLog(blank, 'd'.repeat(100), new Date('2023-04-05T10:00:00Z'))).rowCount).toBe(1)
      expect((await insertLog(blank, 'e'.repeat(100), new Date('2023-04-07T10:00:00Z'))).rowCount).toBe(1)
      expect(await ensurePartitions(blank, new Date('2023-04-05T00:00:00Z'), 0)).toBe(1) // moved out of the default
      await expectSqlState(insertLog(blank, 'x'.repeat(101), new Date('2023-04-01T10:00:00Z')), '22001')

      expect((await migrate(blank)).applied.map((m) => m.version)).toEqual([8])
      await ensurePartitions(blank, new Date('2023-04-10T00:00:00Z'), 0) // created after the migration
      const { rows: widths } = await blank.query<{ relname: string; width: number }>(
        `SELECT c.relname, a.atttypmod - 4 AS width FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'request_id'
         WHERE c.oid = 'execution_logs'::regclass OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'execution_logs'::regclass)
         ORDER BY 1`,
      )
      expect(widths.map((w) => w.relname)).toEqual(expect.arrayContaining([
        'execution_logs', 'execution_logs_default', 'execution_logs_p20230401', 'execution_logs_p20230402', 'execution_logs_p20230405', 'execution_logs_p20230410',
      ]))
      for (const w of widths) expect(w.width, w.relname).toBe(128)

      // 128 characters fit, and the per-day uniqueness still holds, in a daily partition and in the default one.
      for (const at of ['2023-04-01T10:00:00Z', '2023-04-05T11:00:00Z', '2023-04-10T10:00:00Z', '2023-04-07T10:00:00Z']) {
        const rid = `${at.slice(0, 10)}-`.padEnd(128, 'L')
        expect((await insertLog(blank, rid, new Date(at))).rowCount, at).toBe(1)
        expect((await insertLog(blank, rid, new Date(at))).rowCount, at).toBe(0)
      }
      expect((await blank.query(`SELECT 1 FROM execution_logs_default WHERE length(request_id) = 128`)).rowCount).toBe(1)
      await expectSqlState(insertLog(blank, 'x'.repeat(129), new Date('2023-04-01T10:00:00Z')), '22001')
      // The rows written before it are untouched.
      const { rows: old } = await blank.query<{ request_id: string }>(`SELECT request_id FROM execution_logs WHERE length(request_id) = 100 ORDER BY 1`)
      expect(old.map((r) => r.request_id)).toEqual(['d'.repeat(100), 'e'.repeat(100)])
    } finally {
      await rm(dir, { recursive: true, force: true })
      await blank.close()
    }
  }, SLOW)

  it('rolls back a failed transaction and commits a successful one', async () => {
    const name = `rollback-${randomUUID()}`
    const boom = new Error('boom')
    await expect(
      store.transaction(async (tx) => {
        await tx.query('INSERT INTO prompts (name) VALUES ($1)', [name])
        expect((await tx.query('SELECT 1 FROM prompts WHERE name = $1', [name])).rowCount).toBe(1)
        throw boom
      }),
    ).rejects.toBe(boom)
    expect((await store.query('SELECT 1 FROM prompts WHERE name = $1', [name])).rowCount).toBe(0)

    // A failing statement aborts the whole transaction.
    await expectSqlState(
      store.transaction(async (tx) => {
        await tx.query('INSERT INTO prompts (name) VALUES ($1)', [name])
        await tx.query('INSERT INTO prompts (name) VALUES ($1)', [name]) // unique violation
      }),
      '23505',
    )
    expect((await store.query('SELECT 1 FROM prompts WHERE name = $1', [name])).rowCount).toBe(0)

    const id = await store.transaction(async (tx) => {
      const { rows } = await tx.query<{ id: string }>('INSERT INTO prompts (name) VALUES ($1) RETURNING id', [name])
      return rows[0]!.id
    })
    expect((await store.query('SELECT id FROM prompts WHERE name = $1', [name])).rows).toEqual([{ id }])
  })

  it('copies text-format lines (COPY ... FROM), all or nothing, inside a transaction too', async () => {
    await store.exec('CREATE TABLE copy_probe (n int, t text, j jsonb, at timestamptz)')
    try {
      const lines = [
        '1\ttab\\tand\\nnewline \\\\ é 😀\t{"k": "v\\\\n"}\t2026-03-04T05:06:07.089Z',
        '2\t\\N\t\\N\t\\N',
      ]
      expect(await store.copyFrom('copy_probe', ['n', 't', 'j', 'at'], lines)).toBe(2)
      expect((await store.query('SELECT n, t, j, at FROM copy_probe ORDER BY n')).rows).toEqual([
        { n: 1, t: 'tab\tand\nnewline \\ é 😀', j: { k: 'v\n' }, at: new Date('2026-03-04T05:06:07.089Z') },
        { n: 2, t: null, j: null, at: null },
      ])
      expect(await store.copyFrom('copy_probe', ['n'], [])).toBe(0)
      // One bad value fails the whole statement, with its SQLSTATE; the store stays usable.
      await expectSqlState(store.copyFrom('copy_probe', ['n', 't'], ['3\tok', 'x\tbad']), '22P02')
      await expectSqlState(store.copyFrom('copy_probe', ['n', 't'], ['4']), '22P04')
      expect((await store.query('SELECT count(*)::int AS c FROM copy_probe')).rows).toEqual([{ c: 2 }])
      // In a transaction (a temporary table dropped at commit), then rolled back with it.
      await expect(store.transaction(async (tx) => {
        await tx.exec('CREATE TEMP TABLE copy_stage (n int) ON COMMIT DROP')
        expect(await tx.copyFrom('copy_stage', ['n'], ['10', '11'])).toBe(2)
        await tx.query('INSERT INTO copy_probe (n) SELECT n FROM copy_stage')
        throw new Error('roll back')
      })).rejects.toThrow('roll back')
      expect((await store.query('SELECT count(*)::int AS c FROM copy_probe')).rows).toEqual([{ c: 2 }])
      await expect(store.copyFrom('copy_probe; DROP TABLE prompts', ['n'], ['1'])).rejects.toThrow(TypeError)
    } finally {
      await store.exec('DROP TABLE copy_probe')
    }
  })

  it('upserts usage rollups on the bucket key, NULL dimensions included', async () => {
    const keyId = randomUUID()
    const upsert = (cost: bigint | number, key: string | null) =>
      store.query(
        `INSERT INTO usage_rollups (bucket_start, granularity, key_id, team, deployment_id, provider, model,
           requests, input_tokens, cached_tokens, output_tokens, reasoning_tokens, cost_micro_usd)
         VALUES ($1, 'hour', $2, 'core', NULL, 'openai', 'gpt-4o', 1, 100, 10, 50, 5, $3)
         ON CONFLICT ON CONSTRAINT usage_rollups_bucket_key DO UPDATE SET
           requests = usage_rollups.requests + EXCLUDED.requests,
           input_tokens = usage_rollups.input_tokens + EXCLUDED.input_tokens,
           cost_micro_usd = usage_rollups.cost_micro_usd + EXCLUDED.cost_micro_usd,
           updated_at = now()`,
        [new Date('2024-02-03T04:00:00Z'), key, cost],
      )
    await upsert(1_500n, keyId)
    await upsert(2_500, keyId)
    await upsert(7, null)
    await upsert(8, null)
    const { rows } = await store.query<{ key_id: string | null; requests: number; input_tokens: number; cost_micro_usd: number }>(
      `SELECT key_id, requests, input_tokens, cost_micro_usd FROM usage_rollups
       WHERE bucket_start = $1 AND granularity = 'hour' AND (key_id = $2 OR key_id IS NULL) ORDER BY key_id NULLS LAST`,
      [new Date('2024-02-03T04:00:00Z'), keyId],
    )
    expect(rows).toEqual([
      { key_id: keyId, requests: 2, input_tokens: 200, cost_micro_usd: 4_000 },
      { key_id: null, requests: 2, input_tokens: 200, cost_micro_usd: 15 },
    ])
    // int8 beyond 2^53 comes back as bigint on both engines.
    const { rows: big } = await store.query<{ v: bigint }>('SELECT 9007199254740993::int8 AS v')
    expect(big[0]!.v).toBe(9007199254740993n)
    // Buckets must be aligned on the granularity.
    await expectSqlState(
      store.query(
        `INSERT INTO usage_rollups (bucket_start, granularity, provider, model) VALUES ($1, 'day', 'openai', 'x')`,
        [new Date('2024-02-03T04:00:00Z')],
      ),
      '23514',
    )
  })

  it('enforces key prefixes, deployment version integrity and optimistic concurrency', async () => {
    const prefix = `mcp_${randomUUID().slice(0, 8)}`
    const hash = 'a'.repeat(64)
    const insertKey = () =>
      store.query(
        `INSERT INTO api_keys (prefix, key_hash, owner, team, role, environments, allowed_models, budgets)
         VALUES ($1, $2, 'alice', 'core', 'developer', $3, $4, $5) RETURNING id, environments`,
        [prefix, hash, ['dev', 'staging'], ['gpt-4o-mini'], JSON.stringify({ daily_micro_usd: 5_000_000 })],
      )
    const key = await insertKey()
    expect(key.rows[0]).toMatchObject({ environments: ['dev', 'staging'] })
    await expectSqlState(insertKey(), '23505')

    const { promptId, versionId } = await insertPromptVersion(store)
    const other = await insertPromptVersion(store)
    const { rows } = await store.query<{ id: string; version: number }>(
      `INSERT INTO deployments (prompt_id, environment, config, status, prompt_version_id)
       VALUES ($1, 'production', '{}', 'active', $2) RETURNING id, version`,
      [promptId, versionId],
    )
    const dep = rows[0]!
    expect(dep.version).toBe(1)
    // A version of another prompt is refused. (Another environment: since 0003 a prompt has one deployment per
    // environment, and that unique index would answer first.)
    await expectSqlState(
      store.query(
        `INSERT INTO deployments (prompt_id, environment, config, status, prompt_version_id)
         VALUES ($1, 'staging', '{}', 'active', $2)`,
        [promptId, other.versionId],
      ),
      '23503',
    )
    const update = (expected: number) =>
      store.query(
        `UPDATE deployments SET status = 'paused', version = version + 1, updated_at = now()
         WHERE id = $1 AND version = $2 RETURNING version`,
        [dep.id, expected],
      )
    expect((await update(1)).rows).toEqual([{ version: 2 }])
    expect((await update(1)).rowCount).toBe(0) // stale ETag
    await store.query(
      `INSERT INTO deployment_traffic (deployment_id, prompt_version_id, weight, label) VALUES ($1, $2, 90, 'stable')`,
      [dep.id, versionId],
    )
    await store.query(
      `INSERT INTO deployment_history (deployment_id, action, deployment_version, to_prompt_version_id)
       VALUES ($1, 'create', 1, $2)`,
      [dep.id, versionId],
    )
    await expectSqlState(
      store.query(`UPDATE deployment_history SET action = 'x' WHERE deployment_id = $1`, [dep.id]),
      IMMUTABLE_ROW_SQLSTATE,
    )
  })

  // PostgreSQL only: PGlite has no server to kill its connection.
  it('a COPY refused at its first row while megabytes are still being sent: an error, no crash, the store usable', async () => {
    // A spool replay of rows that already committed (unique violation at row 1) with large request bodies.
    await store.exec('CREATE TABLE copy_refused (n int PRIMARY KEY, t text)')
    try {
      await store.copyFrom('copy_refused', ['n', 't'], ['0\tfirst'])
      const big = 'x'.repeat(60_000)
      const lines = Array.from({ length: 400 }, (_, i) => `${i}\t${big}`)
      for (let round = 0; round < 3; round++) {
        await expectSqlState(store.copyFrom('copy_refused', ['n', 't'], lines), '23505')
        // Wait for the socket to drain what was still queued when the error came back.
        await new Promise((r) => setTimeout(r, 200))
        expect((await store.query('SELECT count(*)::int AS c FROM copy_refused')).rows).toEqual([{ c: 1 }])
      }
      expect(await store.copyFrom('copy_refused', ['n', 't'], lines.slice(1))).toBe(399)
    } finally {
      await store.exec('DROP TABLE copy_refused')
    }
  }, SLOW)

  if (engine.name === 'postgres') it('survives an idle connection killed by the server', async () => {
    const errors: Error[] = []
    const pgStore = await openStore({
      dataDir: 'unused',
      databaseUrl: await freshSchemaUrl(),
      partitionDaysAhead: 0,
      onError: (err) => errors.push(err),
    })
    try {
      const { rows } = await pgStore.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
      await withAdmin((c) => c.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]))
      for (let i = 0; i < 50 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 20))
      expect(errors.length).toBeGreaterThan(0)
      expect(await pgStore.ping()).toBe(true)
    } finally {
      await pgStore.close()
    }
  })

  it('returns dates, timestamps and intervals the same way on both engines', async () => {
    const { rows } = await store.query<Record<string, unknown>>(
      `SELECT '2024-01-02'::date AS d, '2024-01-02T03:04:05Z'::timestamptz AS ts, interval '1 day' AS i,
              3::int8 AS n, 1.5::numeric AS num, current_setting('TimeZone') AS tz`,
    )
    expect(rows[0]).toEqual({
      d: '2024-01-02',
      ts: new Date('2024-01-02T03:04:05Z'),
      i: '1 day',
      n: 3,
      num: '1.5',
      tz: 'UTC',
    })
  })
})

describe('PGlite memory', () => {
  it('runs with 16MB of shared buffers by default, the configured size otherwise, and refuses a size without a unit', async () => {
    const small = await openStore({ dataDir: 'memory://', partitionDaysAhead: 0 })
    try {
      expect((await small.query<{ shared_buffers: string }>('SHOW shared_buffers')).rows[0]?.shared_buffers).toBe('16MB')
    } finally {
      await small.close()
    }
    const larger = await openStore({ dataDir: 'memory://', partitionDaysAhead: 0, pgliteSharedBuffers: '48MB' })
    try {
      expect((await larger.query<{ shared_buffers: string }>('SHOW shared_buffers')).rows[0]?.shared_buffers).toBe('48MB')
    } finally {
      await larger.close()
    }
    await expect(openStore({ dataDir: 'memory://', pgliteSharedBuffers: '48' })).rejects.toThrow(/pglite\.sharedBuffers: '48' is not a PostgreSQL memory size/)
    expect(storeOptionsFromEnv({ MCP_PGLITE_SHARED_BUFFERS: '32MB' }).pgliteSharedBuffers).toBe('32MB')
  }, SLOW)
})

describe('PGlite on disk', () => {
  it('persists under <dataDir>/pglite and does not re-apply migrations', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mcp-data-'))
    try {
      const first = await openStore({ dataDir })
      await first.query('INSERT INTO prompts (name) VALUES ($1)', ['persisted'])
      await first.close()
      const second = await openStore({ dataDir })
      try {
        expect((await second.query('SELECT 1 FROM prompts WHERE name = $1', ['persisted'])).rowCount).toBe(1)
        expect((await migrate(second)).applied).toEqual([])
      } finally {
        await second.close()
      }
      expect((await readFile(join(dataDir, 'pglite', 'PG_VERSION'), 'utf8')).trim()).toMatch(/^\d+$/)
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  }, SLOW)

  it('refuses a second process on the same data directory, and takes over the lock of one that died', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mcp-data-'))
    const storeIndex = fileURLToPath(new URL('../../store/index.ts', import.meta.url))
    // Another process (a second gateway, or rotate-keys while the gateway runs) holding the store open.
    const script = `const { openStore } = await import(${JSON.stringify(storeIndex)}); await openStore({ dataDir: ${JSON.stringify(dataDir)} }); process.stdout.write('open\\n'); setInterval(() => {}, 1000)`
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => { if (d.toString().includes('open')) resolve() })
        child.once('exit', (code) => reject(new Error(`the holder exited (${code})`)))
      })
      await expect(openStore({ dataDir })).rejects.toThrow(/in use by another process \(pid \d+/)
      // The holder is killed: its lock is stale, the next open takes it over.
      child.kill('SIGKILL')
      await new Promise((resolve) => child.once('exit', resolve))
      const store = await openStore({ dataDir })
      await expect(openStore({ dataDir })).rejects.toThrow(/already open in this process/)
      await store.close()
      const again = await openStore({ dataDir })
      await again.close()
    } finally {
      child.kill('SIGKILL')
      await rm(dataDir, { recursive: true, force: true })
    }
  }, SLOW)
})
