/**
 * The two store engines for the usage tests: PGlite in memory, and PostgreSQL at MCP_TEST_DATABASE_URL (default
 * postgres://postgres@127.0.0.1:5432/test) in a schema of its own, dropped by dropSchemas(). PostgreSQL
 * unreachable: the suites fail when CI=true and are skipped otherwise (the rule of test/store).
 */
import pg from 'pg'
import { openStore } from '../../store/index.ts'
import type { Store } from '../../store/types.ts'

export const PG_URL = process.env['MCP_TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test'

async function probe(): Promise<string | undefined> {
  const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3_000 })
  c.on('error', () => {})
  try { await c.connect(); await c.query('SELECT 1'); return undefined } catch (e) { return e instanceof Error ? e.message : String(e) } finally { await c.end().catch(() => {}) }
}

const RUN = `${process.pid}_${Date.now().toString(36)}`
const schemas: string[] = []

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_URL })
  await c.connect()
  try { return await fn(c) } finally { await c.end() }
}

export interface Engine { name: 'pglite' | 'postgres'; open(): Promise<Store> }

/** The engines to run; throws under CI=true when PostgreSQL does not answer. */
export async function engines(): Promise<Engine[]> {
  const list: Engine[] = [{ name: 'pglite', open: () => openStore({ dataDir: 'memory://', partitionDaysAhead: 1 }) }]
  const why = await probe()
  if (why !== undefined) {
    if (process.env['CI'] === 'true') throw new Error(`PostgreSQL at ${PG_URL} is required when CI=true: ${why}`)
    console.warn(`skipping the PostgreSQL usage tests: ${why}`)
    return list
  }
  list.push({
    name: 'postgres',
    async open() {
      const schema = `mcp_cost_test_${RUN}_${schemas.length}`
      schemas.push(schema)
      await admin((c) => c.query(`CREATE SCHEMA "${schema}"`))
      const url = new URL(PG_URL)
      url.searchParams.set('options', `-c search_path=${schema}`)
      return openStore({ dataDir: 'unused', databaseUrl: url.toString(), partitionDaysAhead: 1 })
    },
  })
  return list
}

export async function dropSchemas(): Promise<void> {
  if (schemas.length === 0) return
  await admin(async (c) => { for (const s of schemas.splice(0)) await c.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`) })
}
