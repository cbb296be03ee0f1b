/**
 * PostgreSQL for the durability tests: MCP_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test),
 * a schema of its own per store (`options=-c search_path=...`), dropped by dropSchemas(). Unreachable: the
 * suites fail when CI=true and are skipped otherwise (same rule as test/store).
 */
import pg from 'pg'
import { PG_URL, probePostgres } from '../helpers/postgres.ts'

export { PG_URL, probePostgres }

/** Undefined when PostgreSQL answers; throws under CI=true when it does not; else the reason to skip. */
export async function postgresOrSkip(): Promise<string | undefined> {
  const why = await probePostgres()
  if (why !== undefined && process.env['CI'] === 'true') throw new Error(`PostgreSQL at ${PG_URL} is required when CI=true: ${why}`)
  if (why !== undefined) console.warn(`skipping PostgreSQL durability tests: ${why}`)
  return why
}

const schemas: string[] = []
const RUN = `${process.pid}_${Date.now().toString(36)}`

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_URL })
  await c.connect()
  try { return await fn(c) } finally { await c.end() }
}

/** A new empty schema; returns its name and a URL whose connections use it. `base` swaps host:port (a forwarder). */
export async function freshSchema(tag: string, base?: { host: string; port: number }): Promise<{ schema: string; url: string }> {
  const schema = `mcp_durability_${tag}_${RUN}_${schemas.length}`
  schemas.push(schema)
  await admin((c) => c.query(`CREATE SCHEMA "${schema}"`))
  return { schema, url: schemaUrl(schema, base) }
}

export function schemaUrl(schema: string, base?: { host: string; port: number }): string {
  const url = new URL(PG_URL)
  if (base) { url.hostname = base.host; url.port = String(base.port) }
  url.searchParams.set('options', `-c search_path=${schema}`)
  return url.toString()
}

export async function dropSchemas(): Promise<void> {
  if (schemas.length === 0) return
  await admin(async (c) => { for (const s of schemas.splice(0)) await c.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`) })
}

/** Runs one query on the schema through a direct connection (not through any forwarder). */
export async function querySchema<T extends pg.QueryResultRow>(schema: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: schemaUrl(schema) })
  await c.connect()
  try { return (await c.query<T>(sql, params)).rows } finally { await c.end() }
}
