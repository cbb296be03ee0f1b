/**
 * Numbered SQL migrations: store/migrations/NNNN_name.sql, applied in order at start.
 *
 * Many instances may start at once. Every step runs in a transaction that first takes
 * pg_advisory_xact_lock(MIGRATION_LOCK_ID) (a transaction holds one connection, so the lock, the check of
 * schema_migrations and the migration share a session) and re-reads schema_migrations after getting the lock: a
 * migration that another instance applied meanwhile is skipped. Each migration is its own transaction with its
 * schema_migrations row, so a failure leaves the earlier ones applied and nothing of the failed one.
 *
 * A migration already applied whose file changed (checksum of the text, line endings normalized) stops the start:
 * applied migrations are never edited, changes go in a new file. Applied versions without a file (a newer release
 * ran first) are tolerated, for rolling deploys and rollbacks.
 */
import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Queryable, Store } from './types.ts'

export const MIGRATION_LOCK_ID = 77678001 // 'M' 'C' 'P' 01
export const DEFAULT_MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url))

export interface Migration {
  version: number
  name: string
  checksum: string
  sql: string
}

export interface MigrateResult {
  /** Migrations this call applied (others may have been applied by a concurrent instance). */
  applied: Migration[]
  /** Highest applied version after the run. */
  current: number
}

export class MigrationError extends Error {
  override name = 'MigrationError'
}

const FILE_RE = /^(\d{4})_([a-z0-9_]+)\.sql$/

export function checksum(sql: string): string {
  return createHash('sha256').update(sql.replace(/\r\n/g, '\n')).digest('hex')
}

export async function loadMigrations(dir: string = DEFAULT_MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort()
  const migrations: Migration[] = []
  for (const file of files) {
    const m = FILE_RE.exec(file)
    if (!m) throw new MigrationError(`Migration file name ${file} does not match NNNN_name.sql`)
    const sql = await readFile(join(dir, file), 'utf8')
    const version = Number(m[1])
    if (migrations.some((x) => x.version === version)) throw new MigrationError(`Two migrations have version ${version}`)
    migrations.push({ version, name: m[2] ?? '', checksum: checksum(sql), sql })
  }
  return migrations
}

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  checksum CHAR(64) NOT NULL,
  applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)`

interface AppliedRow {
  version: number
  name: string
  checksum: string
}

async function lock(tx: Queryable): Promise<void> {
  // Waiting for another instance's migrations, and the migrations themselves, may outlast statement_timeout.
  await tx.query('SET LOCAL statement_timeout = 0')
  await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_ID])
}

function checkApplied(migration: Migration, row: AppliedRow): void {
  if (row.checksum.trim() !== migration.checksum) {
    throw new MigrationError(
      `Migration ${String(migration.version).padStart(4, '0')}_${migration.name} was changed after it was applied ` +
        `(checksum ${row.checksum.trim()} recorded, ${migration.checksum} on disk): refusing to start. ` +
        'Restore the file and put the change in a new migration.',
    )
  }
}

export async function migrate(store: Store, options: { dir?: string } = {}): Promise<MigrateResult> {
  const migrations = await loadMigrations(options.dir)
  const appliedRows = await store.transaction(async (tx) => {
    await lock(tx)
    await tx.exec(CREATE_TABLE)
    return (await tx.query<AppliedRow>('SELECT version, name, checksum FROM schema_migrations ORDER BY version')).rows
  })
  const applied = new Map(appliedRows.map((r) => [r.version, r]))
  for (const m of migrations) {
    const row = applied.get(m.version)
    if (row) checkApplied(m, row)
  }

  const ran: Migration[] = []
  for (const m of migrations) {
    if (applied.has(m.version)) continue
    const didRun = await store.transaction(async (tx) => {
      await lock(tx)
      const { rows } = await tx.query<AppliedRow>(
        'SELECT version, name, checksum FROM schema_migrations WHERE version = $1',
        [m.version],
      )
      const existing = rows[0]
      if (existing) {
        checkApplied(m, existing)
        return false
      }
      try {
        await tx.exec(m.sql)
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err)
        throw new MigrationError(`Migration ${String(m.version).padStart(4, '0')}_${m.name} failed: ${reason}`, { cause: err })
      }
      await tx.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
        m.version,
        m.name,
        m.checksum,
      ])
      return true
    })
    if (didRun) ran.push(m)
  }

  const { rows } = await store.query<{ current: number | null }>('SELECT max(version) AS current FROM schema_migrations')
  return { applied: ran, current: rows[0]?.current ?? 0 }
}
