/**
 * The store contract: one interface, two engines (PGlite embedded, PostgreSQL through `pg`) that run the same
 * migrations and the same SQL. Everything above the store speaks SQL through this interface only.
 *
 * Conventions both engines follow (so results are identical whichever engine runs):
 * - int8/bigint columns come back as `number` when they are safe integers, as `bigint` otherwise; numeric as string.
 * - timestamptz comes back as `Date`; date as the string 'YYYY-MM-DD'; interval as its text form; json/jsonb parsed.
 * - Pass jsonb parameters as `JSON.stringify(value)` (pg would send a JS array as a PostgreSQL array literal).
 * - The session time zone is UTC.
 * - Errors are thrown as-is from the engine and carry the SQLSTATE in `code` (see `sqlState`).
 * - Bulk loads go through `copyFrom` (COPY text format): PostgreSQL through pg-copy-streams, PGlite through
 *   `COPY ... FROM '/dev/blob'` with the data as the query's blob.
 */

export type StoreEngine = 'pglite' | 'postgres'

export interface QueryResult<T> {
  rows: T[]
  /** Rows returned (SELECT, RETURNING) or affected (INSERT/UPDATE/DELETE without RETURNING). */
  rowCount: number
}

export interface Queryable {
  /** One statement, `$1`-style parameters. */
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<T>>
  /** A script of one or more statements without parameters (migrations, DDL). */
  exec(sql: string): Promise<void>
  /**
   * `COPY table (columns) FROM STDIN` in text format, one statement: all the rows or none. Each line is one row
   * (tab-separated values, `\N` for NULL, backslash escapes) without its newline. Resolves with the rows copied;
   * fails like `query` (SQLSTATE in `code`). `table` and `columns` are plain identifiers (checked). The data may
   * also come encoded already (`CopyChunks`: UTF-8 chunks of whole lines, each line ending in its newline).
   */
  copyFrom(table: string, columns: readonly string[], data: CopyData): Promise<number>
}

/** COPY text data already encoded: UTF-8 chunks of whole lines, each line ending in '\n' (store/line-queue.ts). */
export interface CopyChunks {
  readonly chunks: readonly Uint8Array[]
}

export type CopyData = readonly string[] | CopyChunks

export function isCopyChunks(d: CopyData): d is CopyChunks {
  return 'chunks' in d
}

export interface Store extends Queryable {
  readonly engine: StoreEngine
  /**
   * Runs `fn` in a transaction (BEGIN ... COMMIT, ROLLBACK if `fn` throws, then rethrows).
   * Use only `tx` inside `fn`: on PGlite, calling the store itself from inside a transaction waits for the
   * transaction to end (deadlock); on PostgreSQL it would run outside the transaction.
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>
  /** Idempotent. */
  close(): Promise<void>
  /** true when a trivial query succeeds; never throws. */
  ping(): Promise<boolean>
}

/** The SQLSTATE of a database error ('23505' unique_violation, ...), or undefined. */
export function sqlState(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code
  }
  return undefined
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/

/** The COPY statement head shared by both engines; throws on anything but plain identifiers. */
export function copyTarget(table: string, columns: readonly string[]): string {
  for (const name of [table, ...columns]) if (!IDENTIFIER.test(name)) throw new TypeError(`copyFrom: '${name}' is not a plain identifier`)
  return `COPY ${table} (${columns.join(', ')})`
}

/** SQLSTATE raised by the triggers that keep prompt versions immutable and the audit log append-only. */
/** PGlite's shared_buffers: an integer with kB, MB or GB (settings schema and store/pglite.ts). */
export const PGLITE_MEMORY_PATTERN = '^[1-9][0-9]{0,6}(kB|MB|GB)$'
/** The embedded store's shared_buffers when none is configured (PostgreSQL's own default is 128MB). */
export const DEFAULT_PGLITE_SHARED_BUFFERS = '16MB'

export const IMMUTABLE_ROW_SQLSTATE = '23001' // restrict_violation

/** int8 parsing shared by both engines (PGlite's own rule): safe integers as number, others as bigint. */
export function parseInt8(text: string): number | bigint {
  const big = BigInt(text)
  return big < BigInt(Number.MIN_SAFE_INTEGER) || big > BigInt(Number.MAX_SAFE_INTEGER) ? big : Number(big)
}
