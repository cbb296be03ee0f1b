/**
 * PostgreSQL engine through a `pg.Pool`, used when MCP_DATABASE_URL is set.
 * Errors of idle pooled clients (server restart, network) are reported to `onError` and never crash the process;
 * the pool replaces broken clients on the next checkout.
 * `copyFrom` runs `COPY ... FROM STDIN` through pg-copy-streams on one client (the transaction's, or one checked out
 * for the statement): the data goes as a few CopyData messages (encoded chunks, or lines joined into about 1 MiB
 * each by encodeLines), not one per row.
 */
import { finished } from 'node:stream/promises'
import pg from 'pg'
import type { CustomTypesConfig, PoolClient } from 'pg'
import { from as copyFromStdin } from 'pg-copy-streams'
import { copyTarget, isCopyChunks, parseInt8, sqlState } from './types.ts'
import type { CopyData, Queryable, QueryResult, Store } from './types.ts'
import { encodeLines } from './line-queue.ts'

export interface PostgresOptions {
  /** postgres://user@host:5432/db — `?options=-c%20search_path%3Dschema` selects a schema. */
  databaseUrl: string
  /** Pool size. Default 10. */
  max?: number
  /** Server-side statement_timeout in ms. Default 30 000 (migrations lift it for their own transactions). */
  statementTimeoutMs?: number
  /** How long a checkout waits for a connection, ms. Default 5 000. */
  connectionTimeoutMs?: number
  /** Idle clients are closed after this many ms. Default 30 000. */
  idleTimeoutMs?: number
  /** Called with errors of idle clients. Default: process.emitWarning. */
  onError?: (err: Error) => void
}

const OID = { INT8: 20, DATE: 1082, TEXT_ARRAY: 1009, INT8_ARRAY: 1016, INTERVAL: 1186 } as const

function mapDeep(value: unknown, fn: (s: string) => unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => mapDeep(v, fn))
  return typeof value === 'string' ? fn(value) : value
}

/** Parsers aligned on PGlite's results (see store/types.ts); per pool, the global pg.types stay untouched. */
// pg-types' TypeId is an enum of the builtins; plain numbers are what PostgreSQL sends.
type TypeId = Parameters<typeof pg.types.getTypeParser>[0]
const defaultParser = (oid: number, format: 'text' | 'binary'): unknown => pg.types.getTypeParser(oid as TypeId, format)
const textArrayParser = defaultParser(OID.TEXT_ARRAY, 'text') as (text: string) => unknown
const parserOverrides = new Map<number, (text: string) => unknown>([
  [OID.INT8, parseInt8],
  [OID.INT8_ARRAY, (text) => mapDeep(textArrayParser(text), parseInt8)],
  [OID.DATE, (text) => text],
  [OID.INTERVAL, (text) => text],
])
const typeParsers = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    const override = format === 'binary' ? undefined : parserOverrides.get(oid)
    return override ?? defaultParser(oid, format ?? 'text')
  },
} as CustomTypesConfig

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err))
}

/**
 * Where a COPY stream writes once the server refused it. pg-copy-streams drops its connection on an error
 * (`this.connection = null`) but leaves its 'drain' listener on the socket and its unsent chunks queued: when the
 * socket drained, it wrote them through the null connection, a TypeError thrown from a socket event that crashed the
 * process (any COPY refused while more than a socket buffer of data was still going out: a replay of committed rows
 * with large request bodies, a statement timeout). The rest of the data is discarded instead (the server ignores
 * it anyway).
 */
const DISCARD = { stream: { write: () => true, once: () => {} }, sendCopyFail: () => {} }

/** COPY ... FROM STDIN on one client; resolves with the rows copied. */
async function copyOn(client: PoolClient, sql: string, data: CopyData): Promise<number> {
  const query = copyFromStdin(sql)
  let connection: unknown
  Object.defineProperty(query, 'connection', { get: () => connection ?? DISCARD, set: (c: unknown) => { connection = c }, configurable: true })
  const stream = client.query(query)
  for (const chunk of isCopyChunks(data) ? data.chunks : encodeLines(data)) stream.write(chunk)
  stream.end()
  await finished(stream)
  return stream.rowCount
}

function queryable(client: pg.Pool | PoolClient): Queryable {
  return {
    async query<T>(sql: string, params?: readonly unknown[]): Promise<QueryResult<T>> {
      const res = await client.query(sql, params === undefined ? undefined : [...params])
      return { rows: res.rows as T[], rowCount: res.rowCount ?? res.rows.length }
    },
    async exec(sql: string): Promise<void> {
      // No parameters: pg uses the simple query protocol, which accepts several statements.
      await client.query(sql)
    },
    async copyFrom(table: string, columns: readonly string[], data: CopyData): Promise<number> {
      const sql = `${copyTarget(table, columns)} FROM STDIN`
      if ((isCopyChunks(data) ? data.chunks : data).length === 0) return 0
      if (!(client instanceof pg.Pool)) return copyOn(client, sql, data)
      const c = await client.connect()
      let broken: Error | undefined
      try {
        return await copyOn(c, sql, data)
      } catch (err) {
        // A refusal from the server leaves the connection usable; anything else (a broken socket) does not.
        if (sqlState(err) === undefined) broken = toError(err)
        throw err
      } finally {
        c.release(broken)
      }
    },
  }
}

const UTC_OPTION = '-c TimeZone=UTC'

/**
 * Session time zone UTC as a startup option (no extra round trip). pg lets an `options` parameter of the URL
 * override the config's, so an existing one (e.g. a search_path) is extended in the URL itself.
 */
function withUtcTimeZone(databaseUrl: string): { connectionString: string; options?: string } {
  try {
    const url = new URL(databaseUrl)
    const existing = url.searchParams.get('options')
    if (existing !== null) {
      url.searchParams.set('options', `${existing} ${UTC_OPTION}`)
      return { connectionString: url.toString() }
    }
  } catch {
    // not a URL (socket path form): the config option below applies
  }
  return { connectionString: databaseUrl, options: UTC_OPTION }
}

export async function openPostgres(options: PostgresOptions): Promise<Store> {
  const onError = options.onError ?? ((err: Error) => process.emitWarning(`store: PostgreSQL client error: ${err.message}`))
  const pool = new pg.Pool({
    ...withUtcTimeZone(options.databaseUrl),
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 5_000,
    idleTimeoutMillis: options.idleTimeoutMs ?? 30_000,
    statement_timeout: options.statementTimeoutMs ?? 30_000,
    idle_in_transaction_session_timeout: 60_000,
    keepAlive: true,
    application_name: 'mcp',
    types: typeParsers,
  })
  pool.on('error', onError)
  // An error emitted by a checked-out client between queries would otherwise be unhandled.
  pool.on('connect', (client) => client.on('error', onError))
  const base = queryable(pool)
  let closing: Promise<void> | undefined
  const store: Store = {
    engine: 'postgres',
    query: base.query,
    exec: base.exec,
    copyFrom: base.copyFrom,
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      const client = await pool.connect()
      try {
        await client.query('BEGIN')
      } catch (err) {
        client.release(toError(err))
        throw err
      }
      try {
        const result = await fn(queryable(client))
        await client.query('COMMIT')
        client.release()
        return result
      } catch (err) {
        try {
          await client.query('ROLLBACK')
          client.release()
        } catch (rollbackErr) {
          // Unknown state: destroy the client instead of returning it to the pool.
          client.release(toError(rollbackErr))
        }
        throw err
      }
    },
    close(): Promise<void> {
      closing ??= pool.end()
      return closing
    },
    async ping(): Promise<boolean> {
      try {
        await pool.query('SELECT 1')
        return true
      } catch {
        return false
      }
    },
  }
  // Fail fast on a wrong URL or an unreachable server instead of at the first request.
  try {
    await pool.query('SELECT 1')
  } catch (err) {
    await store.close()
    throw err
  }
  return store
}
