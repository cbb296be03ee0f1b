/**
 * ExecutionLogWriter against both engines (PGlite in memory; PostgreSQL in a schema of its own): batching, the
 * flush timer, the bounded queue, the spool while the database fails or hangs, replay (idempotent, old spool lines
 * included), drop counting, rows PostgreSQL would refuse, values that need COPY escaping, duplicate row ids and
 * reused request ids (the merge path), close(), and the metrics it exports.
 * Database failures are caused by a wrapper around the real store (refuse, hang, refuse one row's content).
 */
import { randomUUID } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { Metrics } from '../../gateway/metrics.ts'
import { ExecutionLogWriter, type ExecutionLogRow, type ExecutionLogWriterOptions } from '../../store/execution-log-writer.ts'
import { fromCopyLine, toCopyLine } from '../../store/execution-log-rows.ts'
import { openStore } from '../../store/index.ts'
import { Spool } from '../../store/spool.ts'
import { isCopyChunks, type Store } from '../../store/types.ts'
import { dropSchemas, freshSchema, postgresOrSkip } from './pg.ts'

const pgSkip = await postgresOrSkip()

interface Engine { name: string; open(): Promise<Store> }
const engines: Engine[] = [{ name: 'pglite', open: () => openStore({ dataDir: 'memory://' }) }]
if (pgSkip === undefined) {
  engines.push({ name: 'postgres', open: async () => openStore({ dataDir: 'unused', databaseUrl: (await freshSchema('writer')).url, onError: () => {} }) })
}

afterAll(async () => { if (pgSkip === undefined) await dropSchemas() })

/** The real store behind a switch: refuse (connection refused), hang (never answers), or refuse one row's content. */
interface Faulty { store: Store; mode: 'up' | 'down' | 'hang'; poison: string | undefined; hung: (() => void)[] }
function faulty(inner: Store): Faulty {
  const guard = <T>(run: () => Promise<T>, values: readonly unknown[] | undefined): Promise<T> => {
    if (f.mode === 'down') return Promise.reject(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }))
    if (f.mode === 'hang') return new Promise<T>((resolve, reject) => f.hung.push(() => { run().then(resolve, reject) }))
    if (f.poison !== undefined && values?.some((p) => typeof p === 'string' && p.includes(f.poison!))) return Promise.reject(Object.assign(new Error('invalid input syntax'), { code: '22P02' }))
    return run()
  }
  const f: Faulty = {
    mode: 'up',
    poison: undefined,
    hung: [],
    store: {
      ...inner,
      engine: inner.engine,
      query: ((sql: string, params?: readonly unknown[]) => guard(() => inner.query(sql, params), params)) as Store['query'],
      // A COPY is one statement: one poisoned line fails all of it, as the database would.
      copyFrom: (table, columns, data) => guard(() => inner.copyFrom(table, columns, data), isCopyChunks(data) ? data.chunks.map((c) => Buffer.from(c).toString('utf8')) : data),
      transaction: ((fn: Parameters<Store['transaction']>[0]) => guard(() => inner.transaction(fn), undefined)) as Store['transaction'],
    },
  }
  return f
}

/** A spool line as versions before the COPY form wrote it: one JSON array per row (their toWire). */
function legacyLine(r: ExecutionLogRow): string {
  return JSON.stringify([r.id, r.requestId, r.deploymentId, r.provider, r.model, r.status, r.keyId, r.promptVersionId, r.createdAt, r.completedAt, r.request, r.response, r.metrics])
}

function row(i: number, over: Partial<ExecutionLogRow> = {}): ExecutionLogRow {
  const now = Date.now()
  return {
    id: randomUUID(), requestId: `req-${i}`, deploymentId: null, provider: 'openai', model: 'gpt-4o', status: 'ok',
    keyId: null, promptVersionId: null, createdAt: now - 5, completedAt: now,
    request: { model: 'gpt-4o', messages: [{ role: 'user', content: `hello ${i}` }] },
    response: { status: 200, finish_reason: 'stop' }, metrics: { latencyMs: 5 }, ...over,
  }
}

async function count(store: Store, where = 'true', params: unknown[] = []): Promise<number> {
  const { rows } = await store.query<{ n: number }>(`SELECT count(*)::int AS n FROM execution_logs WHERE ${where}`, params)
  return rows[0]!.n
}

const dirs: string[] = []
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'mcp-writer-'))
  dirs.push(d)
  return d
}

describe.each(engines)('ExecutionLogWriter on $name', (engine) => {
  let base: Store
  let f: Faulty
  const writers: ExecutionLogWriter[] = []
  async function writer(opts: Partial<ExecutionLogWriterOptions> = {}): Promise<ExecutionLogWriter> {
    const w = await ExecutionLogWriter.open({ store: f.store, flushIntervalMs: 50, retryMs: 50, ...opts })
    writers.push(w)
    return w
  }

  beforeAll(async () => { base = await engine.open() }, 60_000)
  afterAll(async () => { await base?.close() })
  afterEach(async () => {
    f.mode = 'up'
    for (const release of f.hung.splice(0)) release()
    for (const w of writers.splice(0)) await w.close(2_000)
    await base.query('DELETE FROM execution_logs')
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
  })
  // A fresh switch per test over the same database.
  beforeAll(() => { f = faulty(base) })

  it('writes full batches at once and the remainder on the flush timer, one COPY per batch', async () => {
    const w = await writer({ batchSize: 500, flushIntervalMs: 100 })
    for (let i = 0; i < 1200; i++) w.enqueue(row(i))
    await vi.waitFor(() => expect(w.stats().written).toBe(1000), { timeout: 5_000, interval: 5 })
    expect(w.stats().queued).toBe(200)
    await vi.waitFor(() => expect(w.stats().written).toBe(1200), { timeout: 5_000, interval: 10 })
    expect(w.stats()).toMatchObject({ batches: 3, queued: 0, dropped: 0, failures: 0 })
    expect(await count(base)).toBe(1200)
  })

  it('stores every column, jsonb as JSON and times to the millisecond', async () => {
    const w = await writer()
    const r = row(1, { deploymentId: randomUUID(), keyId: randomUUID(), promptVersionId: randomUUID(), status: 'timeout', createdAt: Date.parse('2026-03-04T05:06:07.089Z'), completedAt: Date.parse('2026-03-04T05:06:08.001Z') })
    w.enqueue(r)
    await w.flush()
    const { rows } = await base.query<Record<string, unknown>>('SELECT id::text AS id, request_id, deployment_id::text AS d, key_id::text AS k, prompt_version_id::text AS p, provider, model, status, created_at, completed_at, request, response, metrics FROM execution_logs')
    expect(rows).toEqual([{
      id: r.id, request_id: 'req-1', d: r.deploymentId, k: r.keyId, p: r.promptVersionId, provider: 'openai', model: 'gpt-4o', status: 'timeout',
      created_at: new Date('2026-03-04T05:06:07.089Z'), completed_at: new Date('2026-03-04T05:06:08.001Z'),
      request: r.request, response: r.response, metrics: r.metrics,
    }])
  })

  it('neutralises what PostgreSQL would refuse: NUL, lone surrogates, malformed UUIDs, over-long strings', async () => {
    const w = await writer()
    w.enqueue(row(1, {
      requestId: 'r'.repeat(150), model: 'gpt\u0000-4o', provider: 'p'.repeat(80), keyId: 'bootstrap', deploymentId: 'not-a-uuid',
      request: { messages: [{ role: 'user', content: 'nul \u0000 here, lone \ud800 there, pair \ud83d\ude00, literal \\u0000 stays' }] },
    }))
    await w.flush()
    expect(w.stats()).toMatchObject({ written: 1, rejected: 0 })
    const { rows } = await base.query<{ request_id: string; model: string; provider: string; key_id: null; deployment_id: null; request: { messages: { content: string }[] } }>('SELECT request_id, model, provider, key_id, deployment_id, request FROM execution_logs')
    expect(rows[0]).toMatchObject({ request_id: 'r'.repeat(128), model: 'gpt\ufffd-4o', provider: 'p'.repeat(50), key_id: null, deployment_id: null })
    expect(rows[0]!.request.messages[0]!.content).toBe('nul \ufffd here, lone \ufffd there, pair \ud83d\ude00, literal \\u0000 stays')
  })

  it('bounds the queue: with the database down and no spool, rows past maxQueue are dropped and counted', async () => {
    f.mode = 'down'
    const w = await writer({ maxQueue: 100 })
    for (let i = 0; i < 150; i++) w.enqueue(row(i))
    expect(w.stats()).toMatchObject({ queued: 100, dropped: 50 })
    expect(w.accepting()).toBe(false)
    await vi.waitFor(() => expect(w.stats().failures).toBeGreaterThan(0), { timeout: 2_000 })
    // Nothing was lost beyond the drops: the queued rows are written once the database is back.
    f.mode = 'up'
    await vi.waitFor(() => expect(w.stats().written).toBe(100), { timeout: 5_000 })
    expect(await count(base)).toBe(100)
  })

  it('rows put back after a failed batch respect maxQueueBytes too, not only maxQueue', async () => {
    const w = await writer({ maxQueue: 10_000, maxQueueBytes: 40_000, batchSize: 10_000, writeTimeoutMs: 300 })
    f.mode = 'down'
    // How many rows the byte bound holds.
    let cap = 0
    while (w.stats().dropped === 0) w.enqueue(row(cap++))
    cap--
    // The batch leaves the queue and hangs; the queue fills again meanwhile; the batch fails and comes back.
    f.mode = 'hang'
    const flushing = w.flush()
    await vi.waitFor(() => expect(w.stats().queued).toBe(0), { timeout: 2_000 })
    for (let i = 0; i < cap; i++) w.enqueue(row(10_000 + i))
    f.mode = 'down'
    await flushing
    // Room for `cap` rows by bytes: the rest of the returning batch is dropped and counted, not kept past the bound.
    expect(w.stats().queued).toBeLessThanOrEqual(cap)
    expect(w.stats().queued + w.stats().dropped).toBe(2 * cap + 1)
    // The hung write timed out: it must never run later (afterEach would release it into the next test's table).
    f.hung.splice(0)
  })

  it('spools while the database is down and replays once it answers, deleting the segments', async () => {
    const spoolDir = await tempDir()
    const w = await writer({ spoolDir })
    f.mode = 'down'
    for (let i = 0; i < 300; i++) w.enqueue(row(i))
    await w.flush()
    expect(w.stats()).toMatchObject({ queued: 0, spooled: 300, written: 0, databaseUp: false })
    expect((await readdir(spoolDir)).some((n) => n.startsWith('seg-'))).toBe(true)
    // More rows while it is down go straight to the spool.
    for (let i = 300; i < 400; i++) w.enqueue(row(i))
    await vi.waitFor(() => expect(w.stats().spooled).toBe(400), { timeout: 2_000 })
    f.mode = 'up'
    await vi.waitFor(() => expect(w.stats()).toMatchObject({ spooled: 0, written: 400, replayed: 400, databaseUp: true }), { timeout: 5_000 })
    expect(await count(base)).toBe(400)
    expect((await readdir(spoolDir)).filter((n) => n.startsWith('seg-'))).toEqual([])
  })

  it('a write slower than writeTimeoutMs goes to the spool; its late commit and the replay do not duplicate rows', async () => {
    const spoolDir = await tempDir()
    const w = await writer({ spoolDir, writeTimeoutMs: 100 })
    f.mode = 'hang'
    for (let i = 0; i < 50; i++) w.enqueue(row(i))
    await vi.waitFor(() => expect(w.stats()).toMatchObject({ spooled: 50, failures: 1, databaseUp: false }), { timeout: 2_000 })
    // The hung COPY finally commits, then the database answers again: the spool replays the same rows.
    f.mode = 'up'
    for (const release of f.hung.splice(0)) release()
    await vi.waitFor(() => expect(w.stats()).toMatchObject({ spooled: 0, replayed: 50 }), { timeout: 5_000 })
    expect(await count(base)).toBe(50)
    expect(w.stats().renamed).toBe(0)
  })

  it('replay is idempotent: a spool whose rows were already committed adds nothing', async () => {
    const w = await writer()
    const rows = Array.from({ length: 20 }, (_, i) => row(i))
    for (const r of rows) w.enqueue(r)
    await w.flush()
    expect(await count(base)).toBe(20)
    // The same rows left in a spool (a crash after the commit, before the segment was deleted).
    const spoolDir = await tempDir()
    const s = await Spool.open({ dir: spoolDir })
    await s.append(rows.map(toCopyLine))
    await s.close()
    const w2 = await writer({ spoolDir })
    await vi.waitFor(() => expect(w2.stats()).toMatchObject({ spooled: 0, replayed: 20 }), { timeout: 5_000 })
    expect(await count(base)).toBe(20)
    expect(w2.stats().renamed).toBe(0)
  })

  it('counts drops when both the queue and the spool are full, never blocking', async () => {
    const spoolDir = await tempDir()
    const w = await writer({ spoolDir, spool: { maxBytes: 4_000 }, maxQueue: 10 })
    f.mode = 'down'
    for (let i = 0; i < 100; i++) w.enqueue(row(i))
    await w.flush()
    for (let i = 100; i < 200; i++) w.enqueue(row(i))
    await w.flush()
    const s = w.stats()
    expect(s.dropped).toBeGreaterThan(0)
    expect(s.spooled).toBeGreaterThan(0)
    expect(s.spooled + s.queued + s.dropped).toBe(200)
    f.mode = 'up'
    await vi.waitFor(() => expect(w.stats()).toMatchObject({ spooled: 0, queued: 0 }), { timeout: 5_000 })
    expect(await count(base)).toBe(200 - s.dropped)
  })

  it('a row the database refuses for its content is set aside; the rest of its batch is written', async () => {
    const spoolDir = await tempDir()
    const w = await writer({ spoolDir })
    f.poison = 'req-poison'
    for (let i = 0; i < 40; i++) w.enqueue(row(i, i === 17 ? { requestId: 'req-poison' } : {}))
    await w.flush()
    f.poison = undefined
    expect(w.stats()).toMatchObject({ written: 39, rejected: 1, databaseUp: true, spooled: 0 })
    expect(await count(base)).toBe(39)
    expect(await readFile(join(spoolDir, 'rejected.ndjson'), 'utf8')).toContain('req-poison')
  })

  it('keeps both rows when a client reuses a request id the same day', async () => {
    const w = await writer()
    const a = row(1, { requestId: 'client-chosen-id' })
    const b = row(2, { requestId: 'client-chosen-id' })
    w.enqueue(a)
    await w.flush()
    w.enqueue(b)
    await w.flush()
    expect(w.stats().renamed).toBe(1)
    const { rows } = await base.query<{ id: string; request_id: string }>('SELECT id::text AS id, request_id FROM execution_logs ORDER BY request_id')
    expect(rows).toEqual([{ id: a.id, request_id: 'client-chosen-id' }, { id: b.id, request_id: `client-chosen-id~${b.id}` }])
  })

  it('stores a 128-character request id whole, and renames a reused one within the column', async () => {
    const w = await writer()
    const long = 'L'.repeat(128)
    const a = row(1, { requestId: long })
    const b = row(2, { requestId: long })
    w.enqueue(a)
    await w.flush()
    w.enqueue(b)
    await w.flush()
    expect(w.stats()).toMatchObject({ written: 2, renamed: 1, rejected: 0 })
    const { rows } = await base.query<{ id: string; request_id: string }>("SELECT id::text AS id, request_id FROM execution_logs WHERE request_id LIKE 'LLL%' ORDER BY length(request_id) DESC")
    expect(rows).toEqual([{ id: a.id, request_id: long }, { id: b.id, request_id: `${'L'.repeat(63)}~${b.id}` }])
  })

  it('keeps both rows when two rows of one batch share a request id', async () => {
    const w = await writer()
    const a = row(1, { requestId: 'same-batch-id' })
    const b = row(2, { requestId: 'same-batch-id' })
    w.enqueue(a)
    w.enqueue(b)
    w.enqueue(row(3))
    await w.flush()
    expect(w.stats()).toMatchObject({ written: 3, renamed: 1, rejected: 0 })
    const { rows } = await base.query<{ id: string; request_id: string }>("SELECT id::text AS id, request_id FROM execution_logs WHERE request_id LIKE 'same-batch-id%' ORDER BY request_id")
    expect(rows).toEqual([{ id: a.id, request_id: 'same-batch-id' }, { id: b.id, request_id: `same-batch-id~${b.id}` }])
  })

  it('writes a batch that repeats committed rows and its own rows (a replay) without error and without duplicates', async () => {
    const w = await writer()
    const a = row(1)
    const b = row(2)
    w.enqueue(a)
    await w.flush()
    for (const r of [row(3), a, b, b, row(4)]) w.enqueue(r)
    await w.flush()
    expect(w.stats()).toMatchObject({ rejected: 0, renamed: 0, failures: 0, queued: 0 })
    expect(await count(base)).toBe(4)
    const { rows } = await base.query<{ id: string; n: number }>('SELECT id::text AS id, count(*)::int AS n FROM execution_logs GROUP BY id HAVING count(*) > 1')
    expect(rows).toEqual([])
  })

  it('round-trips tabs, newlines, backslashes, quotes and unicode in request_id, model and the JSON columns, and NULLs', async () => {
    const w = await writer()
    const odd = 'tab\there, newline\nthere, cr\r, back\\slash, \\N, \\., "double" \'single\', é 日本 😀 \u2028 end\\'
    const r = row(1, {
      requestId: `id\t1\n"q"\\é😀`, model: `m ${odd}`, deploymentId: null, keyId: null, promptVersionId: null, completedAt: null,
      request: { messages: [{ role: 'user', content: odd }], nested: { list: [1, 2.5, true, null, 'a\\b'], empty: {} }, [odd]: odd },
      response: { text: odd }, metrics: null,
    })
    // The line form alone gives the row back.
    const line = toCopyLine(r)
    expect(line.split('\t')).toHaveLength(13)
    expect(line).not.toMatch(/[\n\r]/)
    const { bytes: _, ...back } = fromCopyLine(line)
    expect(back).toEqual(r)
    w.enqueue(r)
    await w.flush()
    expect(w.stats()).toMatchObject({ written: 1, rejected: 0 })
    const { rows } = await base.query<Record<string, unknown>>('SELECT id::text AS id, request_id, deployment_id, key_id, prompt_version_id, provider, model, status, created_at, completed_at, request, response, metrics FROM execution_logs')
    expect(rows).toEqual([{
      id: r.id, request_id: r.requestId, deployment_id: null, key_id: null, prompt_version_id: null, provider: 'openai', model: r.model, status: 'ok',
      created_at: new Date(r.createdAt), completed_at: null, request: r.request, response: r.response, metrics: null,
    }])
  })

  it('replays spool lines of the earlier JSON-array form, committed ones included, next to current lines', async () => {
    const w0 = await writer()
    const committed = row(1)
    w0.enqueue(committed)
    await w0.flush()
    const spoolDir = await tempDir()
    const s = await Spool.open({ dir: spoolDir })
    // A line exactly as the previous version spooled it, then more of that form and current lines.
    const old = '["0190f3c2-7a4b-7c1d-8e2f-3a4b5c6d7e8f","legacy-req",null,"openai","gpt-4o","ok",null,null,'
      + `${Date.parse('2026-03-04T05:06:07.089Z')},${Date.parse('2026-03-04T05:06:07.120Z')},{"model":"gpt-4o","messages":[{"role":"user","content":"hi \\"there\\"\\n\\ufffd"}]},{"status":200,"finish_reason":"stop"},null]`
    const fresh = [row(2), row(3, { requestId: 'legacy-tab\there' })]
    await s.append([old, legacyLine(committed), legacyLine(fresh[0]!), toCopyLine(fresh[1]!)])
    await s.close()
    const w = await writer({ spoolDir })
    await vi.waitFor(() => expect(w.stats()).toMatchObject({ spooled: 0, replayed: 4 }), { timeout: 5_000 })
    expect(w.stats()).toMatchObject({ rejected: 0, renamed: 0 })
    expect(await count(base)).toBe(4)
    const { rows } = await base.query<Record<string, unknown>>("SELECT request_id, model, created_at, completed_at, request, response, metrics FROM execution_logs WHERE id = '0190f3c2-7a4b-7c1d-8e2f-3a4b5c6d7e8f'")
    expect(rows).toEqual([{
      request_id: 'legacy-req', model: 'gpt-4o', created_at: new Date('2026-03-04T05:06:07.089Z'), completed_at: new Date('2026-03-04T05:06:07.120Z'),
      request: { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi "there"\n\ufffd' }] }, response: { status: 200, finish_reason: 'stop' }, metrics: null,
    }])
    expect(await count(base, 'request_id = $1', ['legacy-tab\there'])).toBe(1)
    expect(await count(base, 'id = $1', [fresh[0]!.id])).toBe(1)
  })

  it('writes a batch of 6,000 rows in one COPY', async () => {
    const w = await writer({ batchSize: 10_000, flushIntervalMs: 10_000 })
    for (let i = 0; i < 6_000; i++) w.enqueue(row(i))
    await w.flush()
    expect(await count(base)).toBe(6_000)
    expect(w.stats().batches).toBe(1)
  }, 60_000)

  it('replay sets aside a corrupt spool line and writes the others', async () => {
    const spoolDir = await tempDir()
    const s = await Spool.open({ dir: spoolDir })
    const rows = Array.from({ length: 9 }, (_, i) => row(i))
    await s.append([...rows.slice(0, 4).map(toCopyLine), '["not-a-uuid","x"]', '{"foreign":true}', ...rows.slice(4).map(toCopyLine)])
    await s.close()
    const w = await writer({ spoolDir })
    await vi.waitFor(() => expect(w.stats()).toMatchObject({ spooled: 0, replayed: 9, rejected: 2 }), { timeout: 5_000 })
    expect(await count(base)).toBe(9)
    expect((await readFile(join(spoolDir, 'rejected.ndjson'), 'utf8')).split('\n').filter(Boolean)).toEqual(['["not-a-uuid","x"]', '{"foreign":true}'])
  })

  it('close() flushes the queue to the database, then refuses (counts) later rows', async () => {
    const w = await writer({ flushIntervalMs: 10_000 })
    for (let i = 0; i < 250; i++) w.enqueue(row(i))
    expect(await w.close(5_000)).toEqual({ written: 250, spooled: 0, dropped: 0 })
    w.enqueue(row(999))
    expect(w.stats().dropped).toBe(1)
    expect(await count(base)).toBe(250)
  })

  it('close() with the database down spools the queue; the next writer replays it at open', async () => {
    const spoolDir = await tempDir()
    f.mode = 'down'
    const w = await writer({ spoolDir, flushIntervalMs: 10_000 })
    for (let i = 0; i < 120; i++) w.enqueue(row(i))
    expect(await w.close(1_000)).toEqual({ written: 0, spooled: 120, dropped: 0 })
    f.mode = 'up'
    const next = await writer({ spoolDir })
    await vi.waitFor(() => expect(next.stats()).toMatchObject({ spooled: 0, replayed: 120 }), { timeout: 5_000 })
    expect(await count(base)).toBe(120)
  })

  it('create() takes rows at once while the spool opens in the background', async () => {
    const spoolDir = join(await tempDir(), 'not', 'yet', 'there')
    f.mode = 'down'
    const w = ExecutionLogWriter.create({ store: f.store, spoolDir, flushIntervalMs: 20, retryMs: 50 })
    writers.push(w)
    for (let i = 0; i < 30; i++) w.enqueue(row(i))
    await vi.waitFor(() => expect(w.stats()).toMatchObject({ queued: 0, spooled: 30 }), { timeout: 2_000 })
    f.mode = 'up'
    await vi.waitFor(() => expect(w.stats()).toMatchObject({ spooled: 0, replayed: 30 }), { timeout: 5_000 })
    expect(await count(base)).toBe(30)
  })

  it('exports its state as metrics', async () => {
    const metrics = new Metrics()
    const w = await writer({ metrics })
    for (let i = 0; i < 7; i++) w.enqueue(row(i))
    await w.flush()
    const text = metrics.render()
    expect(text).toContain('mcp_execution_log_rows_total{outcome="written"} 7')
    expect(text).toContain('mcp_execution_log_batches_total 1')
    expect(text).toContain('mcp_execution_log_queue_rows 0')
    expect(text).toContain('mcp_execution_log_database_up 1')
    expect(text).toMatch(/mcp_execution_log_write_seconds_count 1/)
  })
})
