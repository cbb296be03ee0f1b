/**
 * Embedded engine: PGlite (PostgreSQL compiled to WASM, in-process). The default when no MCP_DATABASE_URL is set.
 * One process per data directory: PGlite takes no lock on it and two processes opening the same directory corrupt it,
 * so the directory is locked (`<dir>.lock`, store/dir-lock.ts) while it is open: a second process is refused.
 * `copyFrom` is PGlite's own COPY path: `COPY ... FROM '/dev/blob'` with the lines as the query's `blob`, which
 * PostgreSQL reads like a file (same text format, same parser as COPY FROM STDIN).
 */
import { mkdir } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { PGlite, types } from '@electric-sql/pglite'
import type { Transaction } from '@electric-sql/pglite'
import { copyTarget, DEFAULT_PGLITE_SHARED_BUFFERS, isCopyChunks, PGLITE_MEMORY_PATTERN } from './types.ts'
import type { CopyData, Queryable, QueryResult, Store } from './types.ts'
import { lockDir } from './dir-lock.ts'

export interface PgliteOptions {
  /** A directory (created if missing) or 'memory://' for a throw-away in-memory database. */
  dataDir: string
  /**
   * PostgreSQL's shared_buffers ('16MB', '8192kB'). Default 16MB: the buffer cache lives in the gateway's own memory,
   * and PostgreSQL's default of 128MB made an idle gateway about 170 MB larger. Pages not in it are read from the
   * data directory's files (the OS page cache).
   */
  sharedBuffers?: string
}

const MEMORY_SETTING = new RegExp(PGLITE_MEMORY_PATTERN)

type PgliteLike = PGlite | Transaction

function queryable(db: PgliteLike): Queryable {
  return {
    async query<T>(sql: string, params?: readonly unknown[]): Promise<QueryResult<T>> {
      const res = await db.query<T>(sql, params === undefined ? undefined : [...params])
      return { rows: res.rows, rowCount: Math.max(res.affectedRows ?? 0, res.rows.length) }
    },
    async exec(sql: string): Promise<void> {
      await db.exec(sql)
    },
    async copyFrom(table: string, columns: readonly string[], data: CopyData): Promise<number> {
      const sql = `${copyTarget(table, columns)} FROM '/dev/blob'`
      if ((isCopyChunks(data) ? data.chunks : data).length === 0) return 0
      // The Blob copies its parts: the chunks may be reused as soon as this call has started.
      const blob = isCopyChunks(data) ? new Blob(data.chunks as Uint8Array<ArrayBuffer>[]) : new Blob([data.join('\n'), '\n'])
      const res = await db.query(sql, [], { blob })
      return res.affectedRows ?? 0
    },
  }
}

export async function openPglite(options: PgliteOptions): Promise<Store> {
  const inMemory = options.dataDir === 'memory://' || options.dataDir === ''
  const sharedBuffers = options.sharedBuffers ?? DEFAULT_PGLITE_SHARED_BUFFERS
  if (!MEMORY_SETTING.test(sharedBuffers)) {
    throw new Error(`pglite.sharedBuffers: '${sharedBuffers}' is not a PostgreSQL memory size (an integer and kB, MB or GB, like 16MB)`)
  }
  let unlock = async (): Promise<void> => {}
  if (!inMemory) {
    await mkdir(options.dataDir, { recursive: true })
    unlock = await lockDir(join(dirname(options.dataDir), `${basename(options.dataDir)}.lock`), `the embedded database ${options.dataDir}`)
  }
  let db: PGlite
  try {
    db = await PGlite.create(inMemory ? 'memory://' : options.dataDir, {
      startParams: [...PGlite.defaultStartParams, '-c', `shared_buffers=${sharedBuffers}`],
      // date as 'YYYY-MM-DD' (PGlite's default makes a Date of it); the postgres engine does the same.
      parsers: { [types.DATE]: (value: string) => value },
    })
    await db.exec("SET TIME ZONE 'UTC'")
  } catch (e) {
    await unlock()
    throw e
  }
  const base = queryable(db)
  let closing: Promise<void> | undefined
  return {
    engine: 'pglite',
    query: base.query,
    exec: base.exec,
    copyFrom: base.copyFrom,
    transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      return db.transaction((tx) => fn(queryable(tx)))
    },
    close(): Promise<void> {
      closing ??= (db.closed ? Promise.resolve() : db.close()).finally(unlock)
      return closing
    },
    async ping(): Promise<boolean> {
      try {
        await db.query('SELECT 1')
        return true
      } catch {
        return false
      }
    },
  }
}
