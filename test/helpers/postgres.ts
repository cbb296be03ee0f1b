/**
 * The test PostgreSQL (MCP_TEST_DATABASE_URL, default the local `test` database): whether it answers,
 * and throw-away schemas (a URL selecting each) that `dropSchemas()` removes after a file's tests.
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'

export const PG_URL = process.env['MCP_TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test'

/** Why PostgreSQL at `url` does not answer, or undefined when it does. */
export async function probePostgres(url: string = PG_URL): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 })
  client.on('error', () => {})
  try {
    await client.connect()
    await client.query('SELECT 1')
    return undefined
  } catch (err) {
    return err instanceof Error ? err.message : String(err)
  } finally {
    await client.end().catch(() => {})
  }
}

/** Why the test PostgreSQL is unreachable, or undefined when it answers. */
export const pgUnavailable = await probePostgres(PG_URL)

const RUN_ID = `${process.pid}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`
const schemas: string[] = []

/** Runs `fn` with a client on the test database (not inside any throw-away schema). */
export async function withAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: PG_URL })
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

/** A fresh schema named `<prefix>_<run>_<n>`; returns a URL (on `base`) whose search_path selects it. */
export async function freshSchemaUrl(prefix: string, base = PG_URL): Promise<string> {
  const schema = `${prefix}_${RUN_ID}_${schemas.length}`
  schemas.push(schema)
  await withAdmin((c) => c.query(`CREATE SCHEMA "${schema}"`))
  const url = new URL(base)
  url.searchParams.set('options', `-c search_path=${schema}`)
  return url.toString()
}

/** Drops every schema this process created so far. */
export async function dropSchemas(): Promise<void> {
  if (schemas.length === 0) return
  await withAdmin(async (c) => {
    for (const schema of schemas.splice(0)) await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  })
}
