/**
 * openStore: PostgreSQL when a database URL is given (MCP_DATABASE_URL), otherwise embedded PGlite under the data
 * directory (MCP_DATA_DIR). Migrations run before the store is returned; execution log partitions are created
 * for the next days.
 */
import { join } from 'node:path'
import { migrate } from './migrate.ts'
import { ensurePartitions } from './retention.ts'
import { sqlState, type Store } from './types.ts'

const LOCK_NOT_AVAILABLE = '55P03'

export type { Queryable, QueryResult, Store, StoreEngine } from './types.ts'
export { IMMUTABLE_ROW_SQLSTATE, sqlState } from './types.ts'
export { migrate, MigrationError } from './migrate.ts'
export { ensurePartitions, purgeExecutionLogs, runRetention } from './retention.ts'

export interface OpenStoreOptions {
  /** postgres://... ; when set (non-empty), PostgreSQL is used. */
  databaseUrl?: string
  /** MCP_DATA_DIR: PGlite keeps its files in `<dataDir>/pglite`. 'memory://' for an in-memory database. */
  dataDir: string
  /** PGlite's shared_buffers (MCP_PGLITE_SHARED_BUFFERS); default 16MB (store/pglite.ts). */
  pgliteSharedBuffers?: string
  /** Default store/migrations. */
  migrationsDir?: string
  /** Default true. */
  migrate?: boolean
  /** Execution log partitions created ahead at open. Default 7; 0 to skip (also skipped when migrate is false). */
  partitionDaysAhead?: number
  /** PostgreSQL pool size, default 10. */
  poolMax?: number
  /** PostgreSQL statement_timeout, ms, default 30 000. */
  statementTimeoutMs?: number
  /** Errors of idle PostgreSQL clients; default process.emitWarning. */
  onError?: (err: Error) => void
}

/** Options from the environment: MCP_DATABASE_URL, MCP_DATA_DIR (default ./data), MCP_PGLITE_SHARED_BUFFERS. */
export function storeOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): OpenStoreOptions {
  const databaseUrl = env['MCP_DATABASE_URL']
  const sharedBuffers = env['MCP_PGLITE_SHARED_BUFFERS']
  return {
    dataDir: env['MCP_DATA_DIR'] || './data',
    ...(databaseUrl ? { databaseUrl } : {}),
    ...(sharedBuffers ? { pgliteSharedBuffers: sharedBuffers } : {}),
  }
}

export async function openStore(options: OpenStoreOptions): Promise<Store> {
  let store: Store
  if (options.databaseUrl) {
    // Each engine's driver is loaded only when it is the one in use (PGlite alone is ~10 MB of heap).
    const { openPostgres } = await import('./postgres.ts')
    store = await openPostgres({
      databaseUrl: options.databaseUrl,
      ...(options.poolMax !== undefined ? { max: options.poolMax } : {}),
      ...(options.statementTimeoutMs !== undefined ? { statementTimeoutMs: options.statementTimeoutMs } : {}),
      ...(options.onError !== undefined ? { onError: options.onError } : {}),
    })
  } else {
    const dataDir = options.dataDir === 'memory://' ? 'memory://' : join(options.dataDir, 'pglite')
    const { openPglite } = await import('./pglite.ts')
    store = await openPglite({ dataDir, ...(options.pgliteSharedBuffers !== undefined ? { sharedBuffers: options.pgliteSharedBuffers } : {}) })
  }
  try {
    if (options.migrate !== false) {
      await migrate(store, options.migrationsDir !== undefined ? { dir: options.migrationsDir } : {})
      const daysAhead = options.partitionDaysAhead ?? 7
      // Busy with other instances' writes, the parent's lock may not come within the wait (retention.ts): the rows
      // then go to the default partition until the retention timer creates the day's partition. Not a reason to stop.
      if (daysAhead > 0) await ensurePartitions(store, new Date(), daysAhead).catch((e: unknown) => { if (sqlState(e) !== LOCK_NOT_AVAILABLE) throw e })
    }
  } catch (err) {
    await store.close()
    throw err
  }
  return store
}
