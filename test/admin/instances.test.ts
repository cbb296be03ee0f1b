/**
 * Instances sharing one database see each other (gateway_instances heartbeats), and an instance that keeps rate
 * limits and budgets in its own process while others share the database says so: a warning in its log,
 * mcp_gateway_limits_per_instance 1, /readyz degraded on `shared_limits`, GET /api/v1/mcp/instances. Real PostgreSQL
 * (two stacks on one schema) and real Redis; on the embedded store an instance is alone.
 */
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { openStore } from '../../store/index.ts'
import { redisAvailable, REDIS_URL } from '../budget/helpers.ts'
import { fleetHash, perInstanceOf, type PipelineView } from '../../admin/instances.ts'
import { startTestMcp, testEngines, type TestMcp } from './helpers.ts'

const HEARTBEAT_MS = 200
const engines = testEngines('instances')
const postgres = engines.find((e) => e.name === 'postgres')
const hasRedis = await redisAvailable()

const started: TestMcp[] = []
afterAll(async () => {
  for (const t of started.splice(0)) await t.close().catch(() => {})
})

async function stack(store: Awaited<ReturnType<typeof openStore>>, extra: Partial<Parameters<typeof startTestMcp>[0]> = {}): Promise<TestMcp> {
  const t = await startTestMcp({ store, instanceHeartbeatMs: HEARTBEAT_MS, ...extra })
  started.push(t)
  return t
}

const metric = async (t: TestMcp, name: string): Promise<number> => {
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec((await t.api('GET', '/metrics')).text)
  return m ? Number(m[1]) : NaN
}

describe('an instance on the embedded store', () => {
  it('is alone: one instance, limits not split, /readyz not degraded by shared_limits', async () => {
    const t = await stack(await openStore({ dataDir: 'memory://' }))
    const r = await t.api('GET', 'instances')
    expect(r.status, r.text).toBe(200)
    expect(r.body.data).toHaveLength(1)
    expect(r.body.data[0]).toMatchObject({ self: true, pid: process.pid, redis: false, per_instance: ['rate-limit', 'budget'] })
    expect(r.body.data[0].config_hash).toBe(fleetHash(t.mcp.gw.settings))
    expect(r.body.limits_per_instance).toBe(false)
    expect((await t.api('GET', '/readyz')).body.checks.shared_limits).toBe(true)
    expect(await metric(t, 'mcp_gateway_instances')).toBe(1)
    expect(await metric(t, 'mcp_gateway_limits_per_instance')).toBe(0)
    await t.close()
    started.splice(started.indexOf(t), 1)
  })
})

describe.runIf(postgres !== undefined)('instances sharing PostgreSQL', () => {
  it('two instances without Redis: each warns, reports degraded and counts the other; one leaving ends it', async () => {
    const [s1, s2] = await postgres!.openPair!()
    const a = await stack(s1)
    const b = await stack(s2)
    for (const t of [a, b]) {
      await vi.waitFor(async () => expect((await t.api('GET', '/readyz')).body.degraded).toContain('shared_limits'), { timeout: 5000, interval: 50 })
      expect((await t.api('GET', '/readyz')).status).toBe(200) // degraded, still ready
      expect(await metric(t, 'mcp_gateway_instances')).toBe(2)
      expect(await metric(t, 'mcp_gateway_limits_per_instance')).toBe(1)
      expect(t.logText()).toContain('2 gateway instances share this database, but this one keeps its rate-limit, budget state in its own process: ' +
        'each instance admits up to the whole of every limit and budget, so together they admit up to 2 times as much. Set MCP_REDIS_URL on every instance')
    }
    const list = await a.api('GET', 'instances')
    expect(list.body.data).toHaveLength(2)
    expect(list.body.data.filter((r: { self: boolean }) => r.self)).toHaveLength(1)
    expect(list.body.limits_per_instance).toBe(true)
    // Same configuration, same hash.
    expect(new Set(list.body.data.map((r: { config_hash: string }) => r.config_hash)).size).toBe(1)
    expect(await metric(a, 'mcp_gateway_config_hashes')).toBe(1)
    // b serves another configuration (an alias more): two hashes until a has it too.
    b.setConfig({ models: { drifted: { targets: [{ provider: 'mock', model: 'gpt-4o' }] } }, providers: { mock: { type: 'openai', baseUrl: 'http://127.0.0.1:9/v1', apiKey: 'sk-x' } } })
    expect((await b.api('POST', 'config/reload')).status).toBe(200)
    await vi.waitFor(async () => expect(await metric(a, 'mcp_gateway_config_hashes')).toBe(2), { timeout: 5000, interval: 50 })
    const drift = await a.api('GET', 'instances')
    expect(drift.body.data.find((r: { self: boolean }) => !r.self).config_hash).toBe(fleetHash(b.mcp.gw.settings))

    // b shuts down cleanly: its row goes at once, and a is alone again at its next heartbeat.
    await b.close()
    started.splice(started.indexOf(b), 1)
    await vi.waitFor(async () => expect((await a.api('GET', '/readyz')).body.checks.shared_limits).toBe(true), { timeout: 5000, interval: 50 })
    expect((await a.api('GET', 'instances')).body.data).toHaveLength(1)
    expect(a.logText()).toContain('limits, budgets and alerts no longer split across instances')
    await a.close()
    started.splice(started.indexOf(a), 1)
  }, 60_000)

  it.runIf(hasRedis)('instances whose limits and budgets live in Redis are not split; a crashed instance drops out after three heartbeats', async () => {
    const [s1, s2] = await postgres!.openPair!()
    const redis = [new Redis(REDIS_URL), new Redis(REDIS_URL)]
    try {
      const a = await stack(s1, { services: { redis: redis[0]! } })
      const b = await stack(s2, { services: { redis: redis[1]! } })
      await vi.waitFor(async () => expect((await a.api('GET', 'instances')).body.data).toHaveLength(2), { timeout: 5000, interval: 50 })
      const list = await a.api('GET', 'instances')
      expect(list.body.data.every((r: { redis: boolean; per_instance: string[] }) => r.redis && r.per_instance.length === 0)).toBe(true)
      expect(list.body.limits_per_instance).toBe(false)
      expect((await a.api('GET', '/readyz')).body.checks.shared_limits).toBe(true)
      expect(a.logText()).not.toContain('share this database')

      // A third instance whose row stops being written (as if killed) is counted only while its heartbeat is fresh.
      await s1.query(
        `INSERT INTO gateway_instances (id, hostname, pid, version, started_at, seen_at, redis, per_instance)
         VALUES ('ghost', 'elsewhere', 1, '0.0.0', now(), now(), false, ARRAY['rate-limit'])`,
      )
      await vi.waitFor(async () => expect((await a.api('GET', 'instances')).body.data).toHaveLength(3), { timeout: 2000, interval: 20 })
      await vi.waitFor(async () => expect((await a.api('GET', 'instances')).body.data).toHaveLength(2), { timeout: 5000, interval: 100 })
      // The ghost kept its limits in-process, not a: a is still not split.
      expect((await a.api('GET', '/readyz')).body.checks.shared_limits).toBe(true)
      await b.close()
      started.splice(started.indexOf(b), 1)
    } finally {
      for (const r of redis) r.disconnect()
    }
  }, 60_000)
})

describe('perInstanceOf: what an instance keeps that several must share', () => {
  const view = (plugins: string[], cfg: Record<string, unknown> = {}, rules: unknown[] = []): PipelineView => ({
    routes: new Map([['chat', { plugins }], ['models', { plugins: ['auth'] }]]),
    settings: { plugins: cfg, alerts: { rules } },
  })
  it('rate-limit and budget in a chain without Redis, or with backend: local; alerts with rules, a manager and no Redis', () => {
    expect(perInstanceOf(view(['auth', 'rate-limit', 'budget']), {})).toEqual(['rate-limit', 'budget'])
    expect(perInstanceOf(view(['auth', 'rate-limit', 'budget']), { redis: {} })).toEqual([])
    expect(perInstanceOf(view(['auth', 'rate-limit', 'budget'], { budget: { backend: 'local' } }), { redis: {} })).toEqual(['budget'])
    expect(perInstanceOf(view(['auth', 'cost-meter']), {})).toEqual([]) // not in a chain: nothing held at all
    expect(perInstanceOf(view(['auth'], {}, [{ name: 'down' }]), { alerts: {} })).toEqual(['alerts'])
    expect(perInstanceOf(view(['auth'], {}, [{ name: 'down' }]), { alerts: {}, redis: {} })).toEqual([])
    expect(perInstanceOf(view(['auth'], {}, [{ name: 'down' }]), {})).toEqual([]) // no manager: nothing fires
    expect(perInstanceOf(view(['auth'], {}, []), { alerts: {} })).toEqual([]) // no rules
  })
})

describe('fleetHash: what instances of one fleet share', () => {
  it('ignores listening ports and hosts, the data directory and the log level; sees everything else', () => {
    const base = { server: { port: 8080, host: '0.0.0.0', bodyLimitBytes: 1 }, admin: { port: 8081, host: '127.0.0.1', key: 'k' }, dataDir: '/a', log: { level: 'info' }, models: { m: 1 } }
    const other = { server: { port: 18080, host: '::', bodyLimitBytes: 1 }, admin: { port: 18081, host: '10.0.0.1', key: 'k' }, dataDir: '/b', log: { level: 'debug' }, models: { m: 1 } }
    expect(fleetHash(other)).toBe(fleetHash(base))
    expect(fleetHash({ ...base, models: { m: 2 } })).not.toBe(fleetHash(base))
    expect(fleetHash({ ...base, server: { ...base.server, bodyLimitBytes: 2 } })).not.toBe(fleetHash(base))
    expect(fleetHash({ ...base, admin: { ...base.admin, key: 'other' } })).not.toBe(fleetHash(base))
  })
})
