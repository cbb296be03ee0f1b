/**
 * The usage aggregator's degraded modes: the database down (usage accumulates in memory and is written, exactly
 * once, when it answers again), the memory bound (attribution folded, totals exact), the final flush at close,
 * retention, and the migration's pico/micro columns.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Metrics } from '../../gateway/metrics.ts'
import { openStore } from '../../store/index.ts'
import type { Queryable, Store } from '../../store/types.ts'
import { formatUsd, HOUR_MS, DAY_MS, purgeUsageRollups, queryUsage, UsageAggregator, type UsageRecord } from '../../store/usage-rollups.ts'

/** A store whose queries fail like an unreachable PostgreSQL while `down`. */
function flaky(inner: Store): Store & { down: boolean } {
  const fail = (): never => { throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }) }
  const s = {
    down: false,
    engine: inner.engine,
    query: <T>(sql: string, params?: readonly unknown[]) => (s.down ? Promise.reject(new Error('x')).catch(fail) : inner.query<T>(sql, params)),
    exec: (sql: string) => (s.down ? Promise.resolve().then(fail) : inner.exec(sql)),
    copyFrom: (table: string, columns: readonly string[], lines: readonly string[]) => (s.down ? Promise.resolve().then(fail) : inner.copyFrom(table, columns, lines)),
    transaction: <T>(fn: (tx: Queryable) => Promise<T>) => (s.down ? Promise.resolve().then(fail) : inner.transaction(fn)),
    close: () => inner.close(),
    ping: async () => !s.down && inner.ping(),
  }
  return s
}

const T0 = Date.UTC(2026, 0, 15, 10, 30)

function rec(over: Partial<UsageRecord> = {}): UsageRecord {
  return {
    at: T0, keyId: null, team: null, deploymentId: null, promptVersionId: null, provider: 'oa', model: 'gpt-4o', error: false,
    inputTokens: 100, cachedTokens: 10, cacheWriteTokens: 0, outputTokens: 20, reasoningTokens: 5, pico: 1_234_567, estimated: false, unpriced: false,
    ...over,
  }
}

async function totals(store: Queryable, granularity: 'hour' | 'day' = 'hour'): Promise<Record<string, unknown>> {
  return (await queryUsage(store, { granularity, from: new Date(T0 - 2 * DAY_MS), to: new Date(T0 + 2 * DAY_MS), groupBy: [] })).totals
}

let base: Store
beforeAll(async () => { base = await openStore({ dataDir: 'memory://', partitionDaysAhead: 1 }) })
afterAll(async () => { await base?.close() })

describe('UsageAggregator', () => {
  it('database down: keeps accumulating in memory, retries, then writes everything exactly once', async () => {
    await base.query('DELETE FROM usage_rollups')
    const store = flaky(base)
    const metrics = new Metrics()
    const agg = new UsageAggregator({ store, metrics })
    agg.record(rec())
    agg.record(rec({ keyId: '7d0c7b1e-4a57-4a51-9a3c-0f0e8a1b2c3d', error: true }))
    store.down = true
    expect(await agg.flush()).toBe(false)
    expect(agg.stats()).toMatchObject({ pendingRows: 2, failedFlushes: 1, consecutiveFailures: 1 })
    agg.record(rec())
    agg.record(rec({ at: T0 + HOUR_MS }))
    expect(await agg.flush()).toBe(false)
    expect(agg.stats()).toMatchObject({ pendingRows: 3, consecutiveFailures: 2 })
    expect(metrics.render()).toContain('mcp_usage_rollup_pending_rows 3')
    expect(metrics.render()).toContain('mcp_usage_rollup_flushes_total{outcome="failed"} 2')
    store.down = false
    expect(await agg.flush()).toBe(true)
    expect(agg.stats()).toMatchObject({ pendingRows: 0, consecutiveFailures: 0 })
    const expected = { requests: 4, errors: 1, input_tokens: 400, cached_tokens: 40, output_tokens: 80, reasoning_tokens: 20, cost_pico_usd: String(4 * 1_234_567) }
    expect(await totals(base)).toMatchObject(expected)
    expect(await totals(base, 'day')).toMatchObject(expected)
    // Written once: another flush adds nothing.
    expect(await agg.flush()).toBe(true)
    expect(await totals(base)).toMatchObject({ requests: 4 })
    await agg.close()
  })

  it('a model name with NUL or a lone surrogate (sent by a client) cannot poison the flush of every other row', async () => {
    await base.query('DELETE FROM usage_rollups')
    const agg = new UsageAggregator({ store: base })
    agg.record(rec())
    agg.record(rec({ model: 'gpt\u0000evil', team: 'red\u0000' }))
    // Cut at 200 characters through a surrogate pair: its high half is left alone.
    agg.record(rec({ model: `${'m'.repeat(199)}\u{1F600}` }))
    expect(await agg.flush()).toBe(true)
    expect(agg.stats()).toMatchObject({ pendingRows: 0, consecutiveFailures: 0 })
    expect(await totals(base)).toMatchObject({ requests: 3 })
    const { rows } = await base.query<{ model: string; team: string | null }>("SELECT model, team FROM usage_rollups WHERE granularity = 'hour' ORDER BY model")
    expect(rows.map((r) => [r.model, r.team])).toEqual([['gpt-4o', null], ['gpt\uFFFDevil', 'red\uFFFD'], [`${'m'.repeat(199)}\uFFFD`, null]])
    await agg.close()
  })

  it('runs of records with the same dimensions share a row; other dimensions, hours and a flush in between start their own', async () => {
    await base.query('DELETE FROM usage_rollups')
    const agg = new UsageAggregator({ store: base })
    const k = '7d0c7b1e-4a57-4a51-9a3c-0f0e8a1b2c3d'
    for (const over of [{}, {}, { keyId: k }, {}, { at: T0 + HOUR_MS }, {}, { team: 'red' }, { team: 'red' }, {}]) agg.record(rec(over))
    const flushing = agg.flush()
    agg.record(rec())
    agg.record(rec({ keyId: k }))
    expect(await flushing).toBe(true)
    agg.record(rec())
    expect(await agg.flush()).toBe(true)
    const rows = (await base.query<{ bucket: string; key: string | null; team: string | null; requests: string }>(
      `SELECT extract(epoch FROM bucket_start)::bigint::text AS bucket, key_id::text AS key, team, requests::text AS requests
         FROM usage_rollups WHERE granularity = 'hour' ORDER BY bucket_start, key_id NULLS FIRST, team NULLS FIRST`)).rows
    const h0 = String((T0 - (T0 % HOUR_MS)) / 1000)
    const h1 = String((T0 + HOUR_MS - ((T0 + HOUR_MS) % HOUR_MS)) / 1000)
    expect(rows.map((r) => [r.bucket, r.key, r.team, Number(r.requests)])).toEqual([
      [h0, null, null, 5 + 2], [h0, null, 'red', 2], [h0, k, null, 1 + 1], [h1, null, null, 1],
    ])
    await agg.close()
  })

  it('pico-USD sums stay exact past 2^53 (a Number part carried into a BigInt)', async () => {
    await base.query('DELETE FROM usage_rollups')
    const agg = new UsageAggregator({ store: base })
    // 3 × 3,000,000,000,000,007 = 9,000,000,000,000,021 > 2^53; plus small amounts on both sides of a carry.
    for (const pico of [3_000_000_000_000_007, 1, 3_000_000_000_000_007, 2, 3_000_000_000_000_007, 3]) agg.record(rec({ pico }))
    expect(await agg.flush()).toBe(true)
    expect(await totals(base)).toMatchObject({ requests: 6, cost_pico_usd: (3n * 3_000_000_000_000_007n + 6n).toString() })
    await agg.close()
  })

  it('memory bound: past maxPendingRows new combinations lose their attribution, totals stay exact', async () => {
    await base.query('DELETE FROM usage_rollups')
    const store = flaky(base)
    store.down = true
    const agg = new UsageAggregator({ store, maxPendingRows: 2 })
    const keys = ['11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222', '33333333-3333-4333-8333-333333333333', '44444444-4444-4444-8444-444444444444']
    for (const k of keys) agg.record(rec({ keyId: k, team: 'a' }))
    expect(agg.stats()).toMatchObject({ pendingRows: 3, overflow: 2, dropped: 0 })
    // Past twice the bound: dropped and counted.
    for (let i = 0; i < 5; i++) agg.record(rec({ model: `m-${i}` }))
    expect(agg.stats().pendingRows).toBeLessThanOrEqual(4)
    expect(agg.stats().dropped).toBeGreaterThan(0)
    store.down = false
    await agg.close()
    const t = await totals(base)
    expect(t['requests']).toBe(4 + 5 - agg.stats().dropped)
  })

  it('close() writes what is pending; records after close are counted as dropped', async () => {
    await base.query('DELETE FROM usage_rollups')
    const agg = new UsageAggregator({ store: base, flushIntervalMs: 3_600_000 })
    agg.start()
    agg.record(rec())
    expect(await agg.close()).toBe(true)
    agg.record(rec())
    expect(agg.stats().dropped).toBe(1)
    expect(await totals(base)).toMatchObject({ requests: 1 })
  })

  it('the periodic flush runs on its own', async () => {
    await base.query('DELETE FROM usage_rollups')
    const agg = new UsageAggregator({ store: base, flushIntervalMs: 20 })
    agg.start()
    agg.record(rec())
    const until = Date.now() + 3000
    while (agg.stats().flushes === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10))
    expect(await totals(base)).toMatchObject({ requests: 1 })
    await agg.close()
  })

  it('cost_micro_usd stays floor(cost_pico_usd / 10^6) across upserts; pico sums beyond 2^53 stay exact', async () => {
    await base.query('DELETE FROM usage_rollups')
    const agg = new UsageAggregator({ store: base })
    agg.record(rec({ pico: 600_000 }))
    await agg.flush()
    agg.record(rec({ pico: 600_000 }))
    await agg.flush()
    const { rows } = await base.query<{ pico: string; micro: number }>("SELECT cost_pico_usd::text AS pico, cost_micro_usd AS micro FROM usage_rollups WHERE granularity = 'hour'")
    expect(rows).toEqual([{ pico: '1200000', micro: 1 }])
    for (let i = 0; i < 3; i++) agg.record(rec({ pico: Number.MAX_SAFE_INTEGER }))
    await agg.flush()
    const big = 3n * BigInt(Number.MAX_SAFE_INTEGER) + 1_200_000n
    expect((await totals(base))['cost_pico_usd']).toBe(big.toString())
    expect(formatUsd(big)).toBe('27021.597765422973')
  })

  it('retention deletes old hour rows before old day rows', async () => {
    await base.query('DELETE FROM usage_rollups')
    const agg = new UsageAggregator({ store: base })
    agg.record(rec({ at: T0 - 40 * DAY_MS }))
    agg.record(rec())
    await agg.flush()
    expect(await purgeUsageRollups(base, { hourDays: 30, dayDays: 365 }, T0)).toBe(1)
    const { rows } = await base.query<{ granularity: string; n: number }>('SELECT granularity, count(*)::int AS n FROM usage_rollups GROUP BY 1 ORDER BY 1')
    expect(rows).toEqual([{ granularity: 'day', n: 2 }, { granularity: 'hour', n: 1 }])
  })

  it('formatUsd is exact to the pico', () => {
    expect(formatUsd(0n)).toBe('0.000000000000')
    expect(formatUsd('4720000000')).toBe('0.004720000000')
    expect(formatUsd(1_000_000_000_001n)).toBe('1.000000000001')
  })
})

describe('the cost meter\'s usage record', () => {
  it('a request finishing just before the hour is in that hour, also when its estimate waits for the tokenizer', async () => {
    const { default: pino } = await import('pino')
    const { vi } = await import('vitest')
    const { costMeterPlugin } = await import('../../plugins/cost-meter/index.ts')
    const { validatePluginConfig } = await import('../../gateway/pipeline/compile.ts')
    const { tokenizerSettled } = await import('../../gateway/cost/estimate.ts')
    // The first estimate in this process: it waits for the tokenizer to load.
    expect(tokenizerSettled()).toBe(false)
    const records: UsageRecord[] = []
    const deps = { services: { usage: { record: (r: UsageRecord) => { records.push(r) } } }, logger: pino({ level: 'silent' }), metrics: new Metrics(), env: { adminKey: undefined, production: false } }
    const inst = await costMeterPlugin.create(validatePluginConfig(costMeterPlugin, {}, 'plugins.cost-meter') as never, deps as never)
    // A finished answer without usage (estimated).
    const ctx = {
      id: 'req-1', providerName: 'oa', model: 'gpt-4o', requestedModel: 'gpt-4o', adapter: { type: 'openai' },
      usage: undefined, rawBody: undefined, upstreamStart: 1, upstreamHeaders: 2, cost: undefined,
      chat: { model: 'gpt-4o', messages: [{ role: 'user', content: 'Hello there' }] }, embedding: undefined,
      slots: {}, res: { writableFinished: true, destroyed: false },
    } as never
    const hour = Date.UTC(2026, 0, 15, 11)
    vi.useFakeTimers({ toFake: ['Date'], now: hour - 10 })
    try {
      inst.onRequestHeaders!(ctx)
      const done = inst.onComplete!(ctx, { status: 200, errorCode: undefined, details: 'ok', aborted: false })
      vi.setSystemTime(hour + 200)
      await done
    } finally {
      vi.useRealTimers()
    }
    expect(records).toHaveLength(1)
    expect(records[0]).toMatchObject({ estimated: true, at: hour - 10 })
  })
})

describe('shutdown', () => {
  it('a request whose estimate waits for the tokenizer when the gateway shuts down is still in the final flush', async () => {
    const { vi } = await import('vitest')
    // Fresh modules: the tokenizer is not loaded, whatever ran before in this file.
    vi.resetModules()
    const { startCostGateway, mockProviders, CHAIN, chat } = await import('./harness.ts')
    const { startUsageMock } = await import('./usage-mock.ts')
    const { tokenizerSettled } = await import('../../gateway/cost/estimate.ts')
    const usage = await import('../../store/usage-rollups.ts')
    expect(tokenizerSettled()).toBe(false)
    const mock = await startUsageMock()
    const store = await openStore({ dataDir: 'memory://', partitionDaysAhead: 1 })
    try {
      const g = await startCostGateway({ providers: mockProviders(mock.url), chains: { default: CHAIN } }, { store })
      // An answer without usage: the first estimate after start waits for the tokenizer.
      expect((await chat(g, 'nu/local-model')).status).toBe(200)
      await g.close()
      const t = (await usage.queryUsage(store, { granularity: 'hour', from: new Date(Date.now() - DAY_MS), to: new Date(Date.now() + DAY_MS), groupBy: [] })).totals
      expect(t).toMatchObject({ requests: 1, estimated_requests: 1 })
      expect(g.aggregator.stats().dropped).toBe(0)
    } finally {
      await store.close()
      await mock.close()
    }
  }, 60_000)
})

describe('absurd usage from a provider', () => {
  it('a token count beyond BIGINT does not poison the flush of every other row', async () => {
    const { default: pino } = await import('pino')
    const { costMeterPlugin } = await import('../../plugins/cost-meter/index.ts')
    const { validatePluginConfig } = await import('../../gateway/pipeline/compile.ts')
    await base.query('DELETE FROM usage_rollups')
    const agg = new UsageAggregator({ store: base })
    const deps = { services: { usage: agg }, logger: pino({ level: 'silent' }), metrics: new Metrics(), env: { adminKey: undefined, production: false } }
    const inst = await costMeterPlugin.create(validatePluginConfig(costMeterPlugin, {}, 'plugins.cost-meter') as never, deps as never)
    const answer = (model: string, usage: unknown): void => {
      const ctx = {
        id: 'req-1', providerName: 'oa', model, requestedModel: model, adapter: { type: 'openai' },
        usage, rawBody: undefined, upstreamStart: 1, upstreamHeaders: 2, cost: undefined,
        chat: { model, messages: [{ role: 'user', content: 'Hello' }] }, embedding: undefined,
        slots: {}, res: { writableFinished: true, destroyed: false },
      } as never
      inst.onRequestHeaders!(ctx)
      void inst.onComplete!(ctx, { status: 200, errorCode: undefined, details: 'ok', aborted: false })
    }
    answer('gpt-4o', { prompt_tokens: 100, completion_tokens: 20, total_tokens: 120 })
    // A broken (or hostile) OpenAI-compatible server: 1e21 tokens ("1e+21" as a parameter is not a BIGINT).
    answer('gpt-4o-mini', { prompt_tokens: 1e21, completion_tokens: 1e19, total_tokens: 1.001e21 })
    expect(agg.stats().pendingRows).toBe(2)
    expect(await agg.flush()).toBe(true)
    const { rows } = await queryUsage(base, { granularity: 'hour', from: new Date(Date.now() - DAY_MS), to: new Date(Date.now() + DAY_MS), groupBy: ['model'] })
    expect(rows.find((r) => r.model === 'gpt-4o')).toMatchObject({ requests: 1, input_tokens: 100, output_tokens: 20 })
    expect(rows.find((r) => r.model === 'gpt-4o-mini')).toMatchObject({ requests: 1 })
  })
})

describe('two instances flushing the same rows (PostgreSQL)', () => {
  it('upserts in one order on every instance: no deadlock, every flush succeeds, totals exact', async () => {
    const { engines, dropSchemas } = await import('./engines.ts')
    const pg = (await engines()).find((e) => e.name === 'postgres')
    if (!pg) return
    const store = await pg.open()
    try {
      let failed = 0
      const N = 300
      const ROUNDS = 10
      for (let round = 0; round < ROUNDS; round++) {
        const a = new UsageAggregator({ store })
        const b = new UsageAggregator({ store })
        // The same combinations, arriving in opposite orders on the two instances.
        for (let i = 0; i < N; i++) a.record(rec({ model: `m${i}` }))
        for (let i = N - 1; i >= 0; i--) b.record(rec({ model: `m${i}` }))
        const ok = await Promise.all([a.flush(), b.flush()])
        failed += ok.filter((x) => !x).length
        for (const [i, agg] of [a, b].entries()) if (!ok[i]) await agg.flush()
      }
      expect(failed).toBe(0)
      expect(await totals(store)).toMatchObject({ requests: 2 * N * ROUNDS })
      expect(await totals(store, 'day')).toMatchObject({ requests: 2 * N * ROUNDS })
    } finally {
      await store.close()
      await dropSchemas()
    }
  }, 120_000)
})
