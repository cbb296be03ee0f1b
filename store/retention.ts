/**
 * execution_logs retention (same SQL on both engines; see store/migrations/0002_execution_logs.sql).
 *
 * - ensurePartitions creates the daily partitions (UTC days) from `now` to `now + daysAhead`. Call it at start
 *   (openStore does) and at least daily. Rows for a day without a partition land in the default partition and
 *   are moved when that day's partition is created.
 * - purgeExecutionLogs removes every row with created_at < olderThan: drops the partitions that lie entirely
 *   before it (cheap, no dead rows), then deletes the rest (the straddling day, the default partition) in
 *   batches of `batchSize` rows, each its own short statement.
 * - runRetention does both for a retention of `retentionDays` days (MCP's configurable retention).
 */
import type { Store } from './types.ts'

const DAY_MS = 86_400_000
/**
 * How long a partition change waits for the parent table's lock. While it waits, every execution-log write queues
 * behind it, so it must give up well inside the writer's own timeout (1 s: past it, rows go to the spool). A COPY
 * holds its lock for milliseconds, so on a busy table the lock comes between two batches; if not, the next run retries.
 */
const LOCK_TIMEOUT_MS = 500

/** 'YYYY-MM-DD' of the UTC day of `date`. */
export function utcDay(date: Date): string {
  return date.toISOString().slice(0, 10)
}

export async function ensurePartitions(store: Store, now: Date, daysAhead: number): Promise<number> {
  if (!Number.isInteger(daysAhead) || daysAhead < 0) throw new RangeError(`daysAhead must be a natural number, got ${daysAhead}`)
  return store.transaction(async (tx) => {
    // Creating a partition locks the parent: give up (and retry next run) before writers queued behind it time out.
    await tx.query(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT_MS}ms'`)
    const { rows } = await tx.query<{ created: number }>(
      'SELECT mcp_execution_logs_ensure_partitions($1::date, $2::date) AS created',
      [utcDay(now), utcDay(new Date(now.getTime() + daysAhead * DAY_MS))],
    )
    return rows[0]?.created ?? 0
  })
}

export interface PurgeResult {
  droppedPartitions: number
  deletedRows: number
}

export async function purgeExecutionLogs(
  store: Store,
  olderThan: Date,
  options: { batchSize?: number } = {},
): Promise<PurgeResult> {
  const batchSize = options.batchSize ?? 5_000
  const droppedPartitions = await store.transaction(async (tx) => {
    // DROP of a partition locks the parent briefly; give up (and retry next run) rather than stall writers.
    await tx.query(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT_MS}ms'`)
    const { rows } = await tx.query<{ dropped: number }>(
      'SELECT mcp_execution_logs_drop_partitions($1) AS dropped',
      [olderThan],
    )
    return rows[0]?.dropped ?? 0
  })
  let deletedRows = 0
  for (;;) {
    const { rowCount } = await store.query(
      `DELETE FROM execution_logs WHERE (id, created_at) IN (
         SELECT id, created_at FROM execution_logs WHERE created_at < $1 LIMIT $2)`,
      [olderThan, batchSize],
    )
    deletedRows += rowCount
    if (rowCount < batchSize) break
  }
  return { droppedPartitions, deletedRows }
}

export interface RetentionOptions {
  now?: Date
  /** Keep this many days of execution logs. */
  retentionDays: number
  /** Partitions to create ahead. Default 7. */
  daysAhead?: number
}

export async function runRetention(
  store: Store,
  options: RetentionOptions,
): Promise<PurgeResult & { createdPartitions: number }> {
  const now = options.now ?? new Date()
  if (!(options.retentionDays > 0)) throw new RangeError(`retentionDays must be positive, got ${options.retentionDays}`)
  const createdPartitions = await ensurePartitions(store, now, options.daysAhead ?? 7)
  const purge = await purgeExecutionLogs(store, new Date(now.getTime() - options.retentionDays * DAY_MS))
  return { createdPartitions, ...purge }
}
