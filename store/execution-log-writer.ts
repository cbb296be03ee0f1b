/**
 * ExecutionLogWriter: execution_logs rows leave the request path through a bounded in-memory queue and reach
 * the database in batches; when the database is unreachable they go to the local spool (store/spool.ts) and are
 * replayed when it answers again. The request path only ever calls `enqueue` (at completion, after the response is
 * finished): synchronous, never throws; it serializes the row once into its COPY line (execution-log-rows.ts) and
 * queues that string.
 *
 * - A flush runs every `flushIntervalMs` while rows wait, or as soon as `batchSize` rows are queued; at most one
 *   flush is in flight. One `COPY execution_logs (...) FROM STDIN` per batch (text format, the queued lines as they
 *   are): about 20 µs of PostgreSQL CPU per row where the former `INSERT ... SELECT FROM jsonb_array_elements(...)`
 *   took 33 µs (docs/execution-logs.md), and no bound parameters. Row ids (UUIDv7) are fixed before the first
 *   attempt.
 * - COPY has no ON CONFLICT. A batch it refuses with unique_violation (23505) is a replay of rows that already
 *   committed (primary key (id, created_at)) or holds a request id another row already has that day (request_id
 *   is unique per day): that batch is merged instead, in one transaction on one connection: COPY into a temporary
 *   staging table, `INSERT ... SELECT ... ON CONFLICT DO NOTHING`, then the rows still absent by (id, created_at)
 *   are inserted under the request id `<id>~<row uuid>` (`renamed`) instead of vanishing. Replays are therefore
 *   idempotent, and a client reusing x-request-id keeps both rows. Spool replays take the same COPY-first path:
 *   after an outage most of their rows are new, and a duplicate fails the COPY at its first conflicting row.
 * - A write that fails for a connection reason, or takes longer than `writeTimeoutMs`, sends its batch to the
 *   spool and opens the circuit: later batches go straight to the spool, and one probe (`SELECT 1`) every
 *   `retryMs` tests the database. When it answers, the spool is replayed oldest segment first, interleaved with
 *   fresh batches, and each segment is deleted once all its rows are committed. Spool lines of the earlier
 *   JSON-array form are converted on read; lines that are not rows at all are dead-lettered without being sent.
 * - A write refused for its content (any other SQLSTATE of class 22/23) is bisected down to the offending rows,
 *   which go to the spool's dead-letter file (`rejected`), so one bad row never blocks the rest.
 * - Queue full (`maxQueue` rows or `maxQueueBytes`) while the spool cannot take rows: the row is dropped and
 *   counted (`dropped`, logged at most every 10 s). The request is never blocked.
 * - `close(deadline)` (SIGTERM, after the gateway drained): the queue goes to the database while the deadline
 *   allows, the rest to the spool; nothing is dropped while the spool has room.
 *
 * What can be lost: SIGTERM loses nothing (queue flushed or spooled, spool fsync'd). A database outage loses
 * nothing while the spool has room. SIGKILL loses the rows still in memory: the queue (at most rate ×
 * flushIntervalMs, or batchSize) plus the batch being written, if it had not committed (rows already handed to the
 * spool are in the OS page cache and survive a process kill; fsync bounds what a power loss takes).
 */
import type { Metrics } from '../gateway/metrics.ts'
import { CounterChild, HistogramChild, LATENCY_BUCKETS } from '../gateway/metrics.ts'
import { LineQueue, stringBatch, type CopyBatch } from './line-queue.ts'
import { Spool, type SpoolOptions } from './spool.ts'
import { sqlState, type Store } from './types.ts'
import {
  COPY_COLUMNS, isRowError, MERGE_SQL, readSpoolLine, RENAME_SQL, STAGING_DDL, STAGING_TABLE, toCopyLine, UNIQUE_VIOLATION,
  type CopyLine, type ExecutionLogRow, type ExecutionLogSink,
} from './execution-log-rows.ts'

export type { ExecutionLogRow, ExecutionLogSink } from './execution-log-rows.ts'

export interface LogSink {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
  error(obj: object, msg: string): void
}

export interface ExecutionLogWriterOptions {
  store: Store
  /** Spool directory (`${MCP_DATA_DIR}/spool`). Without one, rows wait in memory while the database is down. */
  spoolDir?: string
  spool?: Omit<SpoolOptions, 'dir'>
  logger?: LogSink
  /** The gateway's registry; or call bindMetrics later. */
  metrics?: Metrics
  /** Default 500. */
  batchSize?: number
  /** Default 200. */
  flushIntervalMs?: number
  /** Default 50 000. */
  maxQueue?: number
  /** Default 128 MiB. */
  maxQueueBytes?: number
  /** A database write slower than this counts as a failure (its batch is spooled). Default 1 000: it also bounds what a SIGKILL during an outage can lose (rows wait in memory at most this long). */
  writeTimeoutMs?: number
  /** Probe interval while the database is down. Default 1 000. */
  retryMs?: number
}

export interface ExecutionLogStats {
  queued: number
  /** Rows waiting in the spool. */
  spooled: number
  spoolBytes: number
  /** Rows committed to the database (replays included). */
  written: number
  /** Rows ever written to the spool. */
  spooledTotal: number
  replayed: number
  dropped: number
  rejected: number
  renamed: number
  batches: number
  failures: number
  databaseUp: boolean
}

class WriteTimeoutError extends Error {
  constructor(ms: number) { super(`execution log write took longer than ${ms} ms`); this.name = 'WriteTimeoutError' }
}

const OUTCOMES = ['written', 'spooled', 'replayed', 'dropped', 'rejected', 'renamed'] as const
type Outcome = (typeof OUTCOMES)[number]

/** Rows per COPY at most (no parameter limit to respect, but a bounded statement). */
const MAX_BATCH = 10_000
/** What a spool line that is not an execution-log row is dead-lettered with. */
const NOT_A_ROW = 'not an execution-log row (neither a COPY line nor the earlier JSON-array form)'
/** Rows per spool append while the database is down (bounds the work between two event-loop turns). */
const SPILL_ROWS = 2_000
const NOOP_LOG: LogSink = { info() {}, warn() {}, error() {} }

export class ExecutionLogWriter implements ExecutionLogSink {
  readonly #store: Store
  #spool: Spool | undefined
  /** Opening the spool directory (create() returns before it is open); undefined once settled. */
  #spoolOpening: Promise<void> | undefined
  /** A spool directory was configured and could not be opened (its lock held by another process, not a directory, ...). */
  #spoolFailed = false
  readonly #log: LogSink
  readonly #batchSize: number
  readonly #flushMs: number
  readonly #maxQueue: number
  readonly #maxQueueBytes: number
  readonly #writeTimeoutMs: number
  readonly #retryMs: number

  /** COPY lines, serialized and encoded at enqueue (off the V8 heap; store/line-queue.ts). */
  readonly #queue = new LineQueue()
  #dbUp = true
  #downSince = 0
  #nextProbeAt = 0
  /** A database call that timed out and has not settled: no new call until it does. */
  #pendingDb: Promise<unknown> | undefined
  #replay: { seg: { name: string; lines: readonly string[] }; offset: number } | undefined
  #spoolRetryAt = 0
  #timer: NodeJS.Timeout | undefined
  #kick: NodeJS.Immediate | undefined
  #running: Promise<void> | undefined
  #closing = false
  #closed = false
  #closeResult: Promise<{ written: number; spooled: number; dropped: number }> | undefined
  #dropLog = { at: 0, count: 0 }
  #spoolLogAt = 0

  readonly #n: Record<Outcome, CounterChild> = Object.fromEntries(OUTCOMES.map((k) => [k, new CounterChild()])) as Record<Outcome, CounterChild>
  #batches = new CounterChild()
  #failures = new CounterChild()
  #writeSeconds = new HistogramChild(LATENCY_BUCKETS)
  #metricsBound = false

  private constructor(opts: ExecutionLogWriterOptions) {
    this.#store = opts.store
    this.#log = opts.logger ?? NOOP_LOG
    this.#batchSize = Math.max(1, Math.min(opts.batchSize ?? 500, MAX_BATCH))
    this.#flushMs = opts.flushIntervalMs ?? 200
    this.#maxQueue = opts.maxQueue ?? 50_000
    this.#maxQueueBytes = opts.maxQueueBytes ?? 128 * 1024 * 1024
    this.#writeTimeoutMs = opts.writeTimeoutMs ?? 1_000
    this.#retryMs = opts.retryMs ?? 1_000
    if (opts.metrics) this.bindMetrics(opts.metrics)
  }

  /**
   * A writer that takes rows at once; the spool directory (when spoolDir is set) opens in the background, and the
   * segments a previous process left are replayed as soon as it is open. A spool that cannot be opened is logged
   * and the writer works without one.
   */
  static create(opts: ExecutionLogWriterOptions): ExecutionLogWriter {
    const w = new ExecutionLogWriter(opts)
    if (opts.spoolDir !== undefined) {
      const dir = opts.spoolDir
      w.#spoolOpening = Spool.open({ ...opts.spool, dir }).then((spool) => {
        w.#spool = spool
        if (!spool.empty) {
          w.#log.info({ rows: spool.rows, bytes: spool.bytes, segments: spool.segments }, 'execution log: replaying the spool left by a previous run')
          void w.#start(true)
        }
      }, (e: unknown) => {
        w.#spoolFailed = true
        w.#log.error({ err: e, dir }, 'execution log: the spool cannot be opened; rows wait in memory while the database is down, and are lost at shutdown if it is still down')
      }).finally(() => { w.#spoolOpening = undefined })
    }
    return w
  }

  /**
   * False when a spool directory was configured and could not be opened: rows then wait in memory while the database
   * is down, and those still waiting at shutdown are lost (readiness reports it, `mcp_execution_log_spool_available`).
   */
  get spoolAvailable(): boolean {
    return !this.#spoolFailed
  }

  /** create(), resolved once the spool is open. */
  static async open(opts: ExecutionLogWriterOptions): Promise<ExecutionLogWriter> {
    const w = ExecutionLogWriter.create(opts)
    await w.#spoolOpening
    return w
  }

  enqueue(row: ExecutionLogRow): void {
    try {
      if (this.#closed || this.#queue.length >= this.#maxQueue || this.#queue.bytes + (row.bytes ?? 1024) > this.#maxQueueBytes) {
        this.#drop(1, this.#closed ? 'closed' : 'queue_full')
        return
      }
      // Serialized now, once (enqueue runs after the response is finished), and encoded into the queue's off-heap
      // chunks: nothing of a queued row is left on the V8 heap to survive scavenges while it waits for its batch.
      let line: CopyLine
      try {
        line = toCopyLine(row)
      } catch (e) {
        this.#drop(1, 'unserializable')
        this.#log.error({ err: e }, 'execution log: a row could not be serialized')
        return
      }
      if (this.#queue.bytes + line.length > this.#maxQueueBytes) { this.#drop(1, 'queue_full'); return }
      this.#queue.push(line)
      if (this.#running !== undefined || this.#closing) return
      if (this.#queue.length >= this.#batchSize) this.#kick ??= setImmediate(() => { this.#kick = undefined; void this.#start(false) })
      else this.#timer ??= setTimeout(() => { this.#timer = undefined; void this.#start(false) }, this.#flushMs)
    } catch {
      // Never throws on the request path; a row that cannot even be queued is counted.
      try { this.#drop(1, 'invalid_row') } catch { /* nothing left to do */ }
    }
  }

  accepting(): boolean {
    return !this.#closed && this.#queue.length < this.#maxQueue && this.#queue.bytes < this.#maxQueueBytes
  }

  stats(): ExecutionLogStats {
    return {
      queued: this.#queue.length,
      spooled: this.#spool?.rows ?? 0,
      spoolBytes: this.#spool?.bytes ?? 0,
      written: this.#n.written.value,
      spooledTotal: this.#n.spooled.value,
      replayed: this.#n.replayed.value,
      dropped: this.#n.dropped.value,
      rejected: this.#n.rejected.value,
      renamed: this.#n.renamed.value,
      batches: this.#batches.value,
      failures: this.#failures.value,
      databaseUp: this.#dbUp,
    }
  }

  /** Registers the writer's series in a registry (once): queue and spool gauges, row outcomes, write latency. */
  bindMetrics(m: Metrics): void {
    if (this.#metricsBound) return
    this.#metricsBound = true
    m.gauge('mcp_execution_log_queue_rows', 'Execution-log rows waiting in memory', [], (set) => set(this.#queue.length))
    m.gauge('mcp_execution_log_spool_rows', 'Execution-log rows waiting in the local spool', [], (set) => set(this.#spool?.rows ?? 0))
    m.gauge('mcp_execution_log_spool_bytes', 'Size of the execution-log spool', [], (set) => set(this.#spool?.bytes ?? 0))
    m.gauge('mcp_execution_log_spool_available', '0 when the spool could not be opened: rows wait in memory while the database is down, and are lost at shutdown', [], (set) => set(this.#spoolFailed ? 0 : 1))
    m.gauge('mcp_execution_log_database_up', '1 while execution-log rows go to the database, 0 while they go to the spool', [], (set) => set(this.#dbUp ? 1 : 0))
    const rows = m.counter('mcp_execution_log_rows_total', 'Execution-log rows by outcome (written includes replayed)', ['outcome'])
    for (const k of OUTCOMES) {
      const c = rows.labels(k)
      c.value += this.#n[k].value
      this.#n[k] = c
    }
    const batches = m.counter('mcp_execution_log_batches_total', 'Execution-log batches committed (one COPY, or one merge transaction)').labels()
    batches.value += this.#batches.value
    this.#batches = batches
    const failures = m.counter('mcp_execution_log_write_failures_total', 'Execution-log database writes that failed or timed out').labels()
    failures.value += this.#failures.value
    this.#failures = failures
    this.#writeSeconds = m.histogram('mcp_execution_log_write_seconds', 'Latency of one execution-log batch write', []).labels()
  }

  /** Writes every queued row now (database, or spool while it is down) and, if the database is up, replays the spool. */
  async flush(): Promise<void> {
    while (this.#running) await this.#running
    await this.#start(true)
  }

  /**
   * Final flush (SIGTERM, after the gateway drained): queued rows go to the database while `deadlineMs` allows,
   * the rest to the spool, which is then fsync'd and closed. Rows enqueued later are dropped (counted).
   */
  close(deadlineMs = 10_000): Promise<{ written: number; spooled: number; dropped: number }> {
    this.#closeResult ??= this.#closeNow(deadlineMs)
    return this.#closeResult
  }

  async #closeNow(deadlineMs: number): Promise<{ written: number; spooled: number; dropped: number }> {
    const before = { written: this.#n.written.value, spooled: this.#n.spooled.value, dropped: this.#n.dropped.value }
    const deadline = Date.now() + deadlineMs
    const reserve = Math.min(1_000, Math.max(100, deadlineMs * 0.2))
    this.#closing = true
    clearTimeout(this.#timer)
    clearImmediate(this.#kick)
    await this.#spoolOpening
    while (this.#running) await this.#running
    while (this.#queue.length > 0) {
      const left = deadline - Date.now() - reserve
      if (!this.#dbUp || this.#pendingDb !== undefined || left <= 0) break
      const batch = this.#queue.take(this.#batchSize)
      try {
        this.#n.written.inc(await this.#write(batch, Math.min(this.#writeTimeoutMs, left)))
      } catch (e) {
        this.#markDown(e)
        const lines = batch.lines()
        if (!(await this.#toSpool(lines))) this.#drop(lines.length, 'closing')
      } finally {
        batch.release()
      }
    }
    while (this.#queue.length > 0) {
      const batch = this.#queue.take(SPILL_ROWS)
      const lines = batch.lines()
      batch.release()
      if (!(await this.#toSpool(lines))) this.#drop(lines.length, 'closing')
    }
    // What the spool could not take (full, I/O error) is lost: counted, not silent.
    if (this.#queue.length > 0) this.#drop(this.#queue.length, 'closing')
    this.#closed = true
    await this.#spool?.close().catch((e: unknown) => this.#log.error({ err: e }, 'execution log: closing the spool failed'))
    const after = { written: this.#n.written.value - before.written, spooled: this.#n.spooled.value - before.spooled, dropped: this.#n.dropped.value - before.dropped }
    this.#log.info({ ...after, spoolRows: this.#spool?.rows ?? 0 }, 'execution log: closed')
    return after
  }

  // ---- the flush loop ----------------------------------------------------------------------------

  #start(drain: boolean): Promise<void> {
    if (this.#running) return this.#running
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#running = this.#pump(drain)
      .catch((e: unknown) => this.#log.error({ err: e }, 'execution log: flush failed'))
      .finally(() => { this.#running = undefined; this.#rearm() })
    return this.#running
  }

  #rearm(): void {
    if (this.#closing || this.#timer !== undefined) return
    const spoolWaiting = this.#spool !== undefined && (!this.#spool.empty || this.#replay !== undefined)
    if (this.#dbUp && this.#queue.length >= this.#batchSize) { this.#kick ??= setImmediate(() => { this.#kick = undefined; void this.#start(false) }); return }
    if (this.#queue.length === 0 && this.#dbUp && !spoolWaiting) return
    const delay = this.#dbUp ? this.#flushMs : Math.max(0, Math.min(this.#flushMs, this.#nextProbeAt - Date.now()))
    this.#timer = setTimeout(() => { this.#timer = undefined; void this.#start(false) }, delay)
  }

  async #pump(drain: boolean): Promise<void> {
    if (this.#spoolOpening) await this.#spoolOpening
    let first = true
    for (;;) {
      if (this.#closing) return
      const n = this.#queue.length
      const writeQueue = n > 0 && (first || drain || n >= this.#batchSize)
      first = false
      if (this.#dbUp) {
        if (writeQueue) { await this.#writeBatch(); continue }
        if (this.#spool && (this.#replay || !this.#spool.empty)) { await this.#replayStep(); continue }
        return
      }
      // Database down: queued rows go to the spool; one probe when it is due.
      while (this.#queue.length > 0 && this.#spool && Date.now() >= this.#spoolRetryAt) {
        const batch = this.#queue.take(SPILL_ROWS)
        const lines = batch.lines()
        batch.release()
        if (!(await this.#toSpool(lines))) { this.#requeue(lines); this.#spoolRetryAt = Date.now() + this.#retryMs }
      }
      if (Date.now() < this.#nextProbeAt || this.#pendingDb !== undefined) return
      try {
        await this.#db(this.#store.query('SELECT 1'), this.#writeTimeoutMs)
      } catch (e) {
        this.#markDown(e)
        return
      }
      this.#markUp()
    }
  }

  async #writeBatch(): Promise<void> {
    const batch = this.#queue.take(this.#batchSize)
    try {
      this.#n.written.inc(await this.#write(batch, this.#writeTimeoutMs))
    } catch (e) {
      this.#markDown(e)
      const lines = batch.lines()
      if (!(await this.#toSpool(lines))) this.#requeue(lines)
    } finally {
      batch.release()
    }
  }

  async #replayStep(): Promise<void> {
    const spool = this.#spool!
    if (!this.#replay) {
      const seg = await spool.readOldest()
      if (!seg) return
      this.#replay = { seg, offset: 0 }
    }
    const r = this.#replay
    const slice = r.seg.lines.slice(r.offset, r.offset + this.#batchSize)
    if (slice.length === 0) {
      await spool.commit(r.seg)
      this.#replay = undefined
      return
    }
    // Current lines go to the database as they are, earlier JSON-array lines converted; a line that is neither is
    // set aside (#reject) once the others are in, and a row the database refuses is set aside by #write.
    const lines: CopyLine[] = []
    const foreign: string[] = []
    for (const l of slice) {
      const line = readSpoolLine(l)
      if (line === undefined) foreign.push(l)
      else lines.push(line)
    }
    let n = 0
    try {
      n = await this.#write(stringBatch(lines), this.#writeTimeoutMs)
    } catch (e) {
      this.#markDown(e)
      return
    }
    r.offset += slice.length
    this.#n.written.inc(n)
    this.#n.replayed.inc(n)
    if (foreign.length > 0) await this.#reject(foreign, new Error(NOT_A_ROW), 'a spool line is not a row')
  }

  // ---- database ----------------------------------------------------------------------------------

  #db<T>(p: Promise<T>, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => {
        this.#pendingDb = p
        const clear = (): void => { if (this.#pendingDb === p) this.#pendingDb = undefined }
        p.then(clear, clear)
        reject(new WriteTimeoutError(timeoutMs))
      }, timeoutMs)
      p.then((v) => { clearTimeout(t); resolve(v) }, (e: unknown) => { clearTimeout(t); reject(e) })
    })
  }

  /**
   * Writes the rows (COPY; the merge transaction after a unique_violation); resolves with how many are in the
   * database (those it refused for their content are set aside). Throws on connection errors and timeouts.
   */
  async #write(batch: CopyBatch, timeoutMs: number, merge = false): Promise<number> {
    if (batch.count === 0) return 0
    const t0 = performance.now()
    let renamed: string[] = []
    try {
      // The batch stays retained until the database call has settled, even past a timeout: its chunks are
      // not reused while a write may still be reading them.
      batch.retain()
      const call = merge ? this.#merge(batch) : this.#store.copyFrom('execution_logs', COPY_COLUMNS, batch).then(() => [])
      call.then(() => batch.release(), () => batch.release())
      renamed = await this.#db(call, timeoutMs)
    } catch (e) {
      // A row already there (a replay) or a request id already taken that day: COPY has no ON CONFLICT.
      if (!merge && sqlState(e) === UNIQUE_VIOLATION) return await this.#write(batch, timeoutMs, true)
      if (!isRowError(e)) throw e
      const lines = batch.lines()
      if (lines.length === 1) { await this.#reject(lines, e); return 0 }
      const mid = lines.length >> 1
      return await this.#write(stringBatch(lines.slice(0, mid)), timeoutMs, merge) + await this.#write(stringBatch(lines.slice(mid)), timeoutMs, merge)
    }
    this.#writeSeconds.observe((performance.now() - t0) / 1000)
    this.#batches.inc()
    if (renamed.length > 0) {
      this.#n.renamed.inc(renamed.length)
      this.#log.warn({ rows: renamed.length, ids: renamed.slice(0, 5) }, 'execution log: request id already used that day; rows kept under a suffixed request id')
    }
    return batch.count
  }

  /**
   * The batch through a staging table, in one transaction on one connection: rows already there (by primary key)
   * are skipped; rows whose request id another row holds that day are inserted under `<id>~<row uuid>`. Resolves
   * with the ids of the renamed rows.
   */
  #merge(batch: CopyBatch): Promise<string[]> {
    return this.#store.transaction(async (tx) => {
      await tx.exec(STAGING_DDL)
      const staged = await tx.copyFrom(STAGING_TABLE, COPY_COLUMNS, batch)
      const inserted = (await tx.query(MERGE_SQL)).rowCount
      if (inserted >= staged) return []
      return (await tx.query<{ id: string }>(RENAME_SQL)).rows.map((r) => r.id)
    })
  }

  async #reject(rows: readonly string[], e: unknown, why = 'the database refused a row'): Promise<void> {
    this.#n.rejected.inc(rows.length)
    this.#log.error({ err: e, sqlState: sqlState(e), rows: rows.map((r) => r.slice(0, 120)) }, `execution log: ${why}; kept in the spool's rejected.ndjson`)
    await this.#spool?.reject(rows).catch(() => {})
  }

  #markDown(e: unknown): void {
    this.#failures.inc()
    this.#nextProbeAt = Date.now() + this.#retryMs
    if (!this.#dbUp) return
    this.#dbUp = false
    this.#downSince = Date.now()
    this.#log.warn({ err: e, spool: this.#spool !== undefined }, 'execution log: database unavailable; rows go to the spool until it answers again')
  }

  #markUp(): void {
    this.#dbUp = true
    this.#log.info({ downMs: Date.now() - this.#downSince, spoolRows: this.#spool?.rows ?? 0 }, 'execution log: database reachable again; replaying the spool')
  }

  // ---- queue and spool ---------------------------------------------------------------------------

  /** Lines the spool could not take go back to the head of the queue, as far as the bounds (rows and bytes) allow. */
  #requeue(lines: CopyLine[]): void {
    const room = Math.max(0, this.#maxQueue - this.#queue.length)
    let bytes = this.#maxQueueBytes - this.#queue.bytes
    let n = 0
    // As LineQueue counts them: the line and its newline.
    while (n < lines.length && n < room && bytes >= lines[n]!.length + 1) bytes -= lines[n++]!.length + 1
    if (n < lines.length) this.#drop(lines.length - n, this.#spool ? 'spool_unavailable' : 'no_spool')
    this.#queue.unshift(lines.slice(0, n))
  }

  /**
   * Appends the rows to the spool. True when every row is either in the spool or back in the queue (the spool
   * filled up or failed part way); false when none was taken (no spool, full, I/O error): the caller decides.
   */
  async #toSpool(lines: CopyLine[]): Promise<boolean> {
    if (!this.#spool) return false
    let i = 0
    try {
      for (; i < lines.length; i += SPILL_ROWS) {
        const part = lines.slice(i, i + SPILL_ROWS)
        if (!(await this.#spool.append(part))) { this.#logSpoolTrouble(undefined); break }
        this.#n.spooled.inc(part.length)
      }
    } catch (e) {
      this.#logSpoolTrouble(e)
    }
    if (i >= lines.length) return true
    if (i > 0) this.#requeue(lines.slice(i))
    return i > 0
  }

  #logSpoolTrouble(e: unknown): void {
    const now = Date.now()
    if (now - this.#spoolLogAt < 10_000) return
    this.#spoolLogAt = now
    if (e === undefined) this.#log.error({ bytes: this.#spool?.bytes }, 'execution log: the spool is full')
    else this.#log.error({ err: e }, 'execution log: writing to the spool failed')
  }

  #drop(n: number, reason: string): void {
    this.#n.dropped.inc(n)
    const d = this.#dropLog
    d.count += n
    const now = Date.now()
    if (now - d.at >= 10_000) {
      this.#log.error({ dropped: d.count, reason, queued: this.#queue.length }, 'execution log: rows dropped')
      d.at = now
      d.count = 0
    }
  }
}

/** Writer options from the environment (MCP_EXECUTION_LOG_*); unset variables keep the defaults. */
export function executionLogOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): Omit<ExecutionLogWriterOptions, 'store'> & { enabled: boolean } {
  const num = (name: string): number | undefined => {
    const v = env[name]
    if (v === undefined || v === '') return undefined
    const n = Number(v)
    if (!Number.isFinite(n) || n < 0) throw new RangeError(`${name} must be a non-negative number, got '${v}'`)
    return n
  }
  type EnvOptions = Omit<ExecutionLogWriterOptions, 'store'> & { enabled: boolean }
  const out: EnvOptions = { enabled: env['MCP_EXECUTION_LOG'] !== 'off' }
  const knobs = [
    ['batchSize', 'MCP_EXECUTION_LOG_BATCH_SIZE'], ['flushIntervalMs', 'MCP_EXECUTION_LOG_FLUSH_INTERVAL_MS'],
    ['maxQueue', 'MCP_EXECUTION_LOG_MAX_QUEUE'], ['writeTimeoutMs', 'MCP_EXECUTION_LOG_WRITE_TIMEOUT_MS'], ['retryMs', 'MCP_EXECUTION_LOG_RETRY_MS'],
  ] as const
  for (const [key, name] of knobs) {
    const v = num(name)
    if (v !== undefined) out[key] = v
  }
  const spool: NonNullable<ExecutionLogWriterOptions['spool']> = {}
  const maxBytes = num('MCP_EXECUTION_LOG_SPOOL_MAX_BYTES')
  const fsyncMs = num('MCP_EXECUTION_LOG_SPOOL_FSYNC_MS')
  if (maxBytes !== undefined) spool.maxBytes = maxBytes
  if (fsyncMs !== undefined) spool.fsyncIntervalMs = fsyncMs
  if (Object.keys(spool).length > 0) out.spool = spool
  return out
}
