/**
 * Usage tracking end to end, on both engines (PGlite in memory, PostgreSQL in a schema of its own): N requests
 * through the gateway → rollups flushed → GET /api/v1/mcp/usage totals equal the sum of the recorded costs
 * exactly, at hour and day granularity, grouped and filtered; CSV format and the export download; query
 * validation; the billing webhook (signed, retried, at-least-once with an idempotency key per bucket).
 */
import { createHmac } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseUsageQuery } from '../../admin/routes/usage.ts'
import { parseUsageSettings } from '../../gateway/cost/usage-settings.ts'
import { UsageWebhook, usageIdempotencyKey } from '../../gateway/cost/usage-webhook.ts'
import type { Store } from '../../store/types.ts'
import { HOUR_MS, type UsageRecord } from '../../store/usage-rollups.ts'
import { adminGet, CHAIN, chat, mockProviders, startCostGateway, type CostGateway } from './harness.ts'
import { dropSchemas, engines } from './engines.ts'
import { startUsageMock, type UsageMock } from './usage-mock.ts'

const ENGINES = await engines()

const KEY = '7d0c7b1e-4a57-4a51-9a3c-0f0e8a1b2c3d'
const OTHER_KEY = '0b9f4c2a-1111-4222-8333-944455556666'
const DEPLOYMENT = 'a1b2c3d4-0000-4000-8000-000000000001'
const VERSION = 'a1b2c3d4-0000-4000-8000-000000000002'
const TEAM = 'growth, "north"'

interface UsageBody {
  granularity: string
  group_by: string[]
  rows: Record<string, unknown>[]
  totals: Record<string, unknown>
  truncated: boolean
}

afterAll(async () => { await dropSchemas() })

describe('usage time range', () => {
  it('a timestamp without an offset is UTC, whatever the server time zone (not local time)', () => {
    const tz = process.env['TZ']
    process.env['TZ'] = 'America/New_York'
    try {
      const p = parseUsageQuery(new URLSearchParams('from=2026-01-02T03:00:00&to=2026-01-02 05:30'), { groupBy: ['bucket'], format: 'json' })
      expect(p.query.from.toISOString()).toBe('2026-01-02T03:00:00.000Z')
      expect(p.query.to.toISOString()).toBe('2026-01-02T05:30:00.000Z')
      // Offsets and fractions are honoured; a date alone is midnight UTC.
      const q = parseUsageQuery(new URLSearchParams('from=2026-01-01&to=2026-01-02T01:00:00.250%2B02:00'), { groupBy: ['bucket'], format: 'json' })
      expect(q.query.from.toISOString()).toBe('2026-01-01T00:00:00.000Z')
      expect(q.query.to.toISOString()).toBe('2026-01-01T23:00:00.250Z')
    } finally {
      if (tz === undefined) delete process.env['TZ']
      else process.env['TZ'] = tz
    }
  })
})

for (const engine of ENGINES) {
  describe(`usage rollups and API (${engine.name})`, () => {
    let mock: UsageMock
    let g: CostGateway
    let store: Store

    beforeAll(async () => {
      mock = await startUsageMock()
      store = await engine.open()
      g = await startCostGateway({
        providers: { ...mockProviders(mock.url), down: { type: 'openai', baseUrl: 'http://127.0.0.1:9/v1', apiKey: 'x', timeouts: { connectMs: 500 } } },
        plugins: { 'cost-meter': { pricing: { models: [{ provider: 'ollama', model: '*', input: 0.5, output: 1.5 }] } } },
        chains: { default: CHAIN },
      }, { store })
    }, 60_000)

    afterAll(async () => {
      await g?.close()
      await store?.close()
      await mock?.close()
    })

    const attributed = { 'x-test-key': KEY, 'x-test-team': TEAM, 'x-test-deployment': DEPLOYMENT, 'x-test-prompt-version': VERSION }

    it('N requests → usage totals equal the sum of the recorded costs exactly (hour and day)', async () => {
      const plan: [string, Parameters<typeof chat>[2]][] = [
        ['oa/gpt-4o', { headers: attributed }],
        ['oa/gpt-4o', { headers: attributed, stream: true }],
        ['an/claude-sonnet-4-5', { headers: attributed, stream: true }],
        ['an/claude-sonnet-4-5', { headers: attributed }],
        ['gg/gemini-2.5-pro', { headers: attributed }],
        ['az/gpt-4.1', { headers: { 'x-test-key': OTHER_KEY } }],
        ['ol/llama3.2', { headers: { 'x-test-key': OTHER_KEY }, stream: true }],
        ['oa/gpt-4o-mini', {}],
        ['down/gpt-4o', { headers: { 'x-test-key': OTHER_KEY } }],
      ]
      for (const [model, opts] of plan) await chat(g, model, opts)
      const observed = await g.completed(plan.length)
      expect(await g.aggregator.flush()).toBe(true)

      const sum = (pick: (c: NonNullable<(typeof observed)[number]['early']>) => number): number => observed.reduce((n, o) => n + pick(o.early!), 0)
      const pico = observed.reduce((n, o) => n + BigInt(o.early!.pico), 0n)
      expect(pico).toBeGreaterThan(0n)

      for (const granularity of ['hour', 'day']) {
        const r = await adminGet(g, `/api/v1/mcp/usage?granularity=${granularity}&group_by=key,team,deployment,prompt_version,provider,model`)
        expect(r.status).toBe(200)
        const body = r.json() as UsageBody
        expect(body.totals).toMatchObject({
          requests: plan.length,
          errors: 1,
          input_tokens: sum((c) => c.inputTokens),
          cached_tokens: sum((c) => c.cachedTokens),
          cache_write_tokens: sum((c) => c.cacheWriteTokens),
          output_tokens: sum((c) => c.outputTokens),
          reasoning_tokens: sum((c) => c.reasoningTokens),
          estimated_requests: 0,
          unpriced_requests: 0,
          cost_pico_usd: pico.toString(),
        })
        expect(body.totals['cost_usd']).toBe(`0.${pico.toString().padStart(12, '0')}`)
        // Attribution: the rows of the attributed key carry its team, deployment and prompt version.
        const mine = body.rows.filter((row) => row['key_id'] === KEY)
        expect(mine.map((row) => row['model']).sort()).toEqual(['claude-sonnet-4-5', 'gemini-2.5-pro', 'gpt-4o'])
        for (const row of mine) expect(row).toMatchObject({ team: TEAM, deployment_id: DEPLOYMENT, prompt_version_id: VERSION })
        const gpt4o = mine.find((row) => row['model'] === 'gpt-4o')!
        expect(gpt4o).toMatchObject({ provider: 'oa', requests: 2, cost_pico_usd: String(2 * 4_720_000_000), cost_usd: '0.009440000000' })
        // The bootstrap key has no UUID: its usage is recorded without a key.
        expect(body.rows.some((row) => row['key_id'] === null && row['model'] === 'gpt-4o-mini')).toBe(true)
      }
    })

    it('a second batch adds into the same rows (upsert), and filters narrow the totals', async () => {
      await chat(g, 'oa/gpt-4o', { headers: attributed })
      await g.completed(10)
      await g.aggregator.flush()
      const r = await adminGet(g, `/api/v1/mcp/usage?key_id=${KEY}&model=gpt-4o&group_by=`)
      const body = r.json() as UsageBody
      expect(body.rows).toHaveLength(1)
      expect(body.totals).toMatchObject({ requests: 3, cost_pico_usd: String(3 * 4_720_000_000) })
      const bucket = (adminGet(g, `/api/v1/mcp/usage?key_id=${KEY}`))
      const rows = ((await bucket).json() as UsageBody).rows
      expect(rows).toHaveLength(1)
      expect(Date.parse(rows[0]!['bucket_start'] as string) % HOUR_MS).toBe(0)
      const { rows: stored } = await store.query<{ n: string }>("SELECT count(*)::text AS n FROM usage_rollups WHERE key_id = $1::uuid AND model = 'gpt-4o' AND granularity = 'hour'", [KEY])
      expect(stored[0]!.n).toBe('1')
    })

    it('CSV: a header row, one line per row, CRLF, RFC 4180 quoting', async () => {
      const r = await adminGet(g, `/api/v1/mcp/usage?format=csv&group_by=team,model&key_id=${KEY}`)
      expect(r.status).toBe(200)
      expect(r.headers.get('content-type')).toMatch(/^text\/csv/)
      const lines = r.text.split('\r\n')
      expect(lines.at(-1)).toBe('')
      expect(lines[0]).toBe('team,model,requests,errors,input_tokens,cached_tokens,cache_write_tokens,output_tokens,reasoning_tokens,estimated_requests,unpriced_requests,cost_usd,cost_pico_usd')
      expect(lines).toHaveLength(1 + 3 + 1)
      expect(lines[1]).toMatch(/^"growth, ""north""",claude-sonnet-4-5,2,0,100,4000,1000,240,0,0,0,0\.008850000000,8850000000$/)
    })

    it('export: a download (CSV by default, JSON on request) with every dimension', async () => {
      const csv = await adminGet(g, '/api/v1/mcp/usage/export?granularity=day')
      expect(csv.status).toBe(200)
      expect(csv.headers.get('content-disposition')).toMatch(/^attachment; filename="mcp-usage-day-\d{8}T\d{4}-\d{8}T\d{4}\.csv"$/)
      expect(csv.text.split('\r\n')[0]).toMatch(/^bucket_start,key_id,team,deployment_id,prompt_version_id,provider,model,requests,/)
      const json = await adminGet(g, '/api/v1/mcp/usage/export?format=json')
      expect(json.headers.get('content-disposition')).toMatch(/\.json"$/)
      expect((json.json() as UsageBody).group_by).toEqual(['bucket', 'key', 'team', 'deployment', 'prompt_version', 'provider', 'model'])
    })

    it('a malformed query is a 400 naming the parameter', async () => {
      for (const [q, param] of [
        ['granularity=week', 'granularity'], ['group_by=bucket,colour', 'group_by'], ['from=yesterday', 'from'],
        ['from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z', 'from'], ['key_id=nope', 'key_id'], ['format=xml', 'format'],
        ['limit=0', 'limit'], ['groupby=key', 'groupby'], ['granularity=hour&from=2020-01-01T00:00:00Z&to=2021-01-01T00:00:00Z', 'from'],
        // year 0000 parses in JavaScript, not in PostgreSQL
        ['from=0000-01-01T00:00:00Z&to=0000-01-01T05:00:00Z', 'to'],
        // and an offset pushing the year past 9999 is written +010000-…, which PostgreSQL does not read (a 500)
        ['from=9999-12-31T20:00:00Z&to=9999-12-31T23:00:00-05:00', 'to'],
        // Impossible dates and times are refused, not rolled over into another day (Date.parse reads Feb 30 as Mar 2).
        ['from=2026-02-30T00:00:00Z&to=2026-03-03T00:00:00Z', 'from'], ['to=2026-04-31', 'to'], ['from=2026-01-01T24:30:00Z', 'from'],
        ['from=2026-01-02,Z', 'from'], ['to=2026-01-02T03:04:05%2B25:00', 'to'],
      ] as const) {
        const r = await adminGet(g, `/api/v1/mcp/usage?${q}`)
        expect(r.status, q).toBe(400)
        expect(r.json(), q).toMatchObject({ error: { code: 'MCP_ERR_ADMIN_QUERY_INVALID', param } })
      }
    })

    it('a to early in year 1 without a from: the default range starts at year 1, not in year 0 (was a 500)', async () => {
      for (const q of ['to=0001-01-01T05:00:00Z', 'granularity=day&to=0001-01-15T00:00:00Z']) {
        const r = await adminGet(g, `/api/v1/mcp/usage?${q}`)
        expect(r.status, q).toBe(200)
        expect((r.json() as UsageBody & { from: string }).from, q).toBe('0001-01-01T00:00:00.000Z')
      }
      const r = await adminGet(g, '/api/v1/mcp/usage?to=0001-01-01T00:00:00Z')
      expect(r.status).toBe(400)
      expect(r.json()).toMatchObject({ error: { code: 'MCP_ERR_ADMIN_QUERY_INVALID', param: 'from' } })
    })

    it('webhook: closed buckets POSTed signed, retried after a failure, at-least-once with one idempotency key per bucket', async () => {
      const now = Date.now()
      const bucket = Math.floor(now / HOUR_MS) * HOUR_MS - 3 * HOUR_MS
      const rec = (at: number, pico: number): UsageRecord => ({
        at, keyId: KEY, team: 'billing', deploymentId: null, promptVersionId: null, provider: 'oa', model: 'gpt-4o', error: false,
        inputTokens: 10, cachedTokens: 0, cacheWriteTokens: 0, outputTokens: 5, reasoningTokens: 0, pico, estimated: false, unpriced: false,
      })
      g.aggregator.record(rec(bucket + 60_000, 1_000_000_001))
      g.aggregator.record(rec(bucket + 120_000, 2))
      g.aggregator.record(rec(bucket + HOUR_MS + 5, 7))
      await g.aggregator.flush()

      const got: { headers: http.IncomingHttpHeaders; body: string }[] = []
      let fail = 1
      const receiver = http.createServer((req, res) => {
        const parts: Buffer[] = []
        req.on('data', (c: Buffer) => parts.push(c))
        req.on('end', () => {
          got.push({ headers: req.headers, body: Buffer.concat(parts).toString('utf8') })
          if (fail > 0) { fail--; res.writeHead(500); res.end('try later'); return }
          res.writeHead(204); res.end()
        })
      })
      await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r))
      const secret = 'whsec_0123456789abcdef'
      const settings = parseUsageSettings({ webhook: { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/usage`, secret, maxAttempts: 3, backoffMs: 5, closeDelayMs: 0 } }).webhook!
      let clock = now
      const hook = new UsageWebhook({ store, settings, now: () => clock })
      try {
        expect(await hook.runOnce()).toBe('ok')
        // Bucket 1: a 500, then a 204. Bucket 2: a 204. The current hour is not closed: not sent.
        expect(got).toHaveLength(3)
        const keys = got.map((x) => x.headers['idempotency-key'])
        expect(keys).toEqual([usageIdempotencyKey(new Date(bucket)), usageIdempotencyKey(new Date(bucket)), usageIdempotencyKey(new Date(bucket + HOUR_MS))])
        for (const x of got) {
          const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(x.headers['x-mcp-signature']))
          expect(m).not.toBeNull()
          expect(m![2]).toBe(createHmac('sha256', secret).update(`${m![1]}.${x.body}`).digest('hex'))
        }
        const first = JSON.parse(got[1]!.body) as { idempotency_key: string; from: string; to: string; rows: Record<string, unknown>[]; totals: Record<string, unknown> }
        expect(first).toMatchObject({ idempotency_key: usageIdempotencyKey(new Date(bucket)), from: new Date(bucket).toISOString(), to: new Date(bucket + HOUR_MS).toISOString() })
        expect(first.rows).toEqual([expect.objectContaining({ bucket_start: new Date(bucket).toISOString(), key_id: KEY, team: 'billing', requests: 2, cost_pico_usd: '1000000003', cost_usd: '0.001000000003' })])
        expect(first.totals).toMatchObject({ requests: 2, cost_pico_usd: '1000000003' })
        const { rows } = await store.query<{ last_bucket_end: Date }>("SELECT last_bucket_end FROM usage_exports WHERE name = 'webhook'")
        // Past the last bucket with usage, up to the start of the current (open) hour.
        expect(rows[0]!.last_bucket_end.getTime()).toBe(bucket + 3 * HOUR_MS)

        // Nothing new: nothing sent.
        expect(await hook.runOnce()).toBe('idle')
        expect(got).toHaveLength(3)

        // A bucket that fails every attempt stays pending and goes again, with the same key, at the next run.
        const later = bucket + 3 * HOUR_MS
        g.aggregator.record(rec(later + 1, 5))
        await g.aggregator.flush()
        clock += HOUR_MS
        fail = 100
        expect(await hook.runOnce()).toBe('failed')
        expect(got).toHaveLength(6)
        fail = 0
        expect(await hook.runOnce()).toBe('ok')
        expect(got).toHaveLength(7)
        expect(new Set(got.slice(3).map((x) => x.headers['idempotency-key']))).toEqual(new Set([usageIdempotencyKey(new Date(later))]))
      } finally {
        await hook.stop()
        await new Promise<void>((r) => receiver.close(() => r()))
      }
    })
  })
}

describe('usage webhook shutdown', () => {
  it('stop() during a POST does not wait out the backoff (the final rollup flush runs after it)', async () => {
    const { openStore } = await import('../../store/index.ts')
    const store = await openStore({ dataDir: 'memory://', partitionDaysAhead: 1 })
    try {
      const bucket = Math.floor(Date.now() / HOUR_MS) * HOUR_MS - 2 * HOUR_MS
      await store.query(`INSERT INTO usage_rollups (granularity, bucket_start, provider, model, requests) VALUES ('hour', $1::timestamptz, 'oa', 'gpt-4o', 1)`, [new Date(bucket).toISOString()])
      let posted!: () => void
      const inFetch = new Promise<void>((r) => { posted = r })
      // A receiver that hangs until the POST is aborted.
      const hanging = ((_url: unknown, init?: RequestInit) => new Promise<Response>((_resolve, reject) => {
        init?.signal?.addEventListener('abort', () => reject(new Error('aborted')))
        posted()
      })) as typeof fetch
      const settings = parseUsageSettings({ webhook: { url: 'http://127.0.0.1:9/usage', secret: 'whsec_0123456789abcdef', backoffMs: 30_000, closeDelayMs: 0 } }).webhook!
      const hook = new UsageWebhook({ store, settings, fetch: hanging })
      const run = hook.runOnce()
      await inFetch
      const t0 = Date.now()
      await hook.stop()
      expect(Date.now() - t0).toBeLessThan(5_000)
      expect(await run).toBe('stopped')
    } finally {
      await store.close()
    }
  }, 60_000)
})
