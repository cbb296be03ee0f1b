/**
 * Secret hygiene, by canary: the whole stack (startMcp on PGlite in memory, the shared Redis under a unique prefix
 * when reachable, every plugin that keeps state: execution log, rate limit, budget, cache, cost meter) runs a
 * representative workload with canary secrets — provider keys (file and API-added, rotated), the bootstrap key,
 * API keys (created, rotated) — and then every place a secret could land is searched for them, raw, URL-encoded
 * (both forms), base64 (standard and url-safe, at the three byte alignments) and JSON-escaped:
 *   every log line, every response body and header (data plane, admin API, /metrics), every row of every table
 *   (execution_logs, audit_log, api_keys, provider_configs, ...), every Redis key and value under the prefix, and
 *   what the mock upstream received apart from its Authorization header.
 * Allowed, explicitly: the provider key in the upstream's Authorization header, and an API key in the one answer
 * that creates it (creation, rotation).
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { registerExecutionRoutes } from '../../admin/routes/executions.ts'
import { registerTargetRoutes } from '../../admin/routes/targets.ts'
import { registerUsageRoutes } from '../../admin/routes/usage.ts'
import { createRedis, type Redis } from '../../gateway/redis.ts'
import { parseKey } from '../../plugins/auth/api-key.ts'
import { ExecutionLogWriter } from '../../store/execution-log-writer.ts'
import type { Store } from '../../store/types.ts'
import { startTestMcp, testEngines, type TestMcp } from '../admin/helpers.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'

const [pglite] = testEngines('canary')
const hex = (n: number): string => randomBytes(n).toString('hex')

const PROVIDER_CANARY = `sk-canary-${hex(16)}`
const API_PROVIDER_CANARY = `sk-canary-api-${hex(16)}`
const API_PROVIDER_CANARY2 = `sk-canary-api2-${hex(16)}`
// '+', '/' and '=' make the URL-encoded forms differ from the raw one; '"' and '\' the JSON-escaped one.
const BOOTSTRAP_CANARY = `boot+canary/${hex(12)}=x"q\\z`

/** Every form a secret could take when it leaks. */
export function encodings(secret: string): Map<string, string> {
  const out = new Map<string, string>()
  out.set('raw', secret)
  out.set('url', encodeURIComponent(secret))
  out.set('form', new URLSearchParams({ x: secret }).toString().slice(2))
  out.set('json', JSON.stringify(secret).slice(1, -1))
  for (let k = 0; k < 3; k++) {
    const b64 = Buffer.concat([Buffer.alloc(k, 0x20), Buffer.from(secret)]).toString('base64')
    const inner = b64.slice(Math.ceil((8 * k) / 6), b64.length - 4)
    out.set(`base64@${k}`, inner)
    out.set(`base64url@${k}`, inner.replace(/\+/g, '-').replace(/\//g, '_'))
  }
  return out
}

interface Place { where: string; text: string }
interface Finding { secret: string; encoding: string; where: string; context: string }

function scan(places: readonly Place[], secrets: ReadonlyMap<string, string>): Finding[] {
  const findings: Finding[] = []
  for (const [name, secret] of secrets) {
    for (const [enc, needle] of encodings(secret)) {
      if (needle.length < 12) continue
      for (const p of places) {
        const i = p.text.indexOf(needle)
        if (i !== -1) findings.push({ secret: name, encoding: enc, where: p.where, context: p.text.slice(Math.max(0, i - 80), i + needle.length + 40) })
      }
    }
  }
  return findings
}

async function probeRedis(url: string): Promise<Redis | undefined> {
  const r = createRedis(url, { connectTimeoutMs: 500 })
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('timeout')), 1500)
      r.once('ready', () => { clearTimeout(t); resolve() })
    })
    await r.ping()
    return r
  } catch {
    r.disconnect()
    return undefined
  }
}

describe('canary: secrets appear nowhere', () => {
  let t: TestMcp
  let store: Store
  let mock: OpenAIMock
  let writer: ExecutionLogWriter
  let redis: Redis | undefined
  const prefix = `mcp-canary-${hex(6)}:`
  const places: Place[] = []
  const allowed: Place[] = []
  const secrets = new Map<string, string>([
    ['provider key (file)', PROVIDER_CANARY], ['provider key (API)', API_PROVIDER_CANARY], ['provider key (API, rotated)', API_PROVIDER_CANARY2],
    ['bootstrap key', BOOTSTRAP_CANARY],
  ])

  async function call(base: 'admin' | 'data', method: string, path: string, body?: unknown, headers: Record<string, string> = {}, opts: { allowed?: boolean; key?: string | null } = {}): Promise<{ status: number; body: any; text: string }> {
    const url = (base === 'admin' ? t.adminUrl : t.url) + (path.startsWith('/') ? path : `/api/v1/mcp/${path}`)
    const key = opts.key === undefined ? BOOTSTRAP_CANARY : opts.key
    const r = await fetch(url, {
      method,
      headers: { ...(key !== null ? { authorization: `Bearer ${key}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    })
    const text = await r.text()
    const place = { where: `response ${method} ${path} (${r.status})`, text: `${[...r.headers].map(([k, v]) => `${k}: ${v}`).join('\n')}\n\n${text}` }
    ;(opts.allowed ? allowed : places).push(place)
    let parsed: any
    try { parsed = JSON.parse(text) } catch { parsed = undefined }
    return { status: r.status, body: parsed, text }
  }

  beforeAll(async () => {
    mock = await startOpenAIMock()
    store = await pglite!.open()
    writer = await ExecutionLogWriter.open({ store, flushIntervalMs: 50 })
    redis = await probeRedis(process.env['MCP_REDIS_URL'] ?? 'redis://127.0.0.1:6379')
    if (!redis) console.warn('[canary] Redis unreachable: the stateful plugins use their in-process backends')
    const chain = ['request-id', 'auth', 'access-log', 'execution-log', 'rate-limit', 'budget', 'cost-meter', 'cache']
    t = await startTestMcp({
      store,
      ownStore: false,
      keyUsageFlushMs: 100,
      services: { executionLog: writer, ...(redis ? { redis } : {}) },
      adminRoutes: (admin, _cp, gw) => {
        registerTargetRoutes(admin, gw)
        registerExecutionRoutes(admin, store)
        registerUsageRoutes(admin, store)
      },
      override: {
        admin: { key: BOOTSTRAP_CANARY },
        security: { allowHttpProviderUrls: true, providerUrlAllowlist: ['127.0.0.1'] },
        providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: PROVIDER_CANARY } },
        models: { smart: { targets: [{ provider: 'mock', model: 'gpt-4o' }] } },
        plugins: {
          'execution-log': { storeRequest: 'full', storeResponse: 'full' },
          'rate-limit': { limits: [{ name: 'per-key', scope: 'key', rpm: 10_000 }], keyPrefix: `${prefix}rl:` },
          budget: { budgets: [{ name: 'daily', scope: 'key', period: 'day', amountUsd: 1000 }], keyPrefix: `${prefix}{budget}:` },
          'cost-meter': {},
          cache: { keyPrefix: `${prefix}cache:`, keys: ['*'] },
        },
        chains: { default: chain },
      },
    })
  }, 60_000)

  let closed = false
  afterAll(async () => {
    if (!closed) await t?.mcp.close(2000).catch(() => {})
    await writer?.close(2000).catch(() => {})
    await store?.close()
    await mock?.close()
    redis?.disconnect()
  })

  it('runs the workload, then finds no canary anywhere', async () => {
    // ---- admin: keys, providers (credentials), prompts, deployments, reload, audit, config ----
    const created = await call('admin', 'POST', 'keys', { name: 'canary', role: 'developer', team: 'blue' }, {}, { allowed: true })
    expect(created.status, created.text).toBe(201)
    const apiKey = created.body.key as string
    secrets.set('API key', apiKey)
    secrets.set('API key secret', parseKey(apiKey)!.secret)
    const invoker = await call('admin', 'POST', 'keys', { role: 'invoker', team: 'blue' }, {}, { key: apiKey, allowed: true })
    expect(invoker.status, invoker.text).toBe(201)
    secrets.set('minted key secret', parseKey(invoker.body.key)!.secret)
    const rotated = await call('admin', 'POST', `keys/${invoker.body.id}/rotate`, { overlap_seconds: 60 }, {}, { key: apiKey, allowed: true })
    expect(rotated.status, rotated.text).toBe(201)
    secrets.set('rotated key secret', parseKey(rotated.body.key)!.secret)
    await call('admin', 'GET', 'keys')
    await call('admin', 'GET', `keys/${invoker.body.id}`, undefined, {}, { key: apiKey })
    await call('admin', 'PATCH', `keys/${invoker.body.id}`, { name: 'renamed' }, {}, { key: apiKey })

    const prov = await call('admin', 'POST', 'providers', { name: 'live', provider: 'openai', config: { baseUrl: mock.url, models: ['gpt-4o'] }, credentials: { apiKey: API_PROVIDER_CANARY } })
    expect(prov.status, prov.text).toBe(201)
    expect((await call('admin', 'PUT', `providers/${prov.body.id}`, { credentials: { apiKey: API_PROVIDER_CANARY2 } }, { 'if-match': '*' })).status).toBe(200)
    await call('admin', 'GET', `providers/${prov.body.id}`)
    await call('admin', 'GET', 'providers')
    // A provider config with a secret-looking key is refused: the refusal must not echo the value.
    await call('admin', 'POST', 'providers', { name: 'bad', provider: 'openai', config: { baseUrl: mock.url, apiKey: PROVIDER_CANARY } })

    const p = await call('admin', 'POST', 'prompts', { name: 'canary', team: 'blue' }, {}, { key: apiKey })
    await call('admin', 'POST', `prompts/${p.body.id}/versions`, { template: 'echo hello {{name}}', model: 'mock/gpt-4o' }, {}, { key: apiKey })
    const dep = await call('admin', 'POST', 'deployments', { prompt_id: p.body.id, environment: 'staging' }, {}, { key: apiKey })
    expect(dep.status, dep.text).toBe(201)
    expect((await call('admin', 'POST', 'config/reload')).status).toBe(200)
    await call('admin', 'GET', 'config')
    await call('admin', 'GET', 'targets')

    // ---- data plane: success, stream, alias, the API-added provider, execute, errors ----
    const chat = (key: string, body: Record<string, unknown>, headers: Record<string, string> = {}) =>
      call('data', 'POST', '/v1/chat/completions', { messages: [{ role: 'user', content: 'echo ping' }], ...body }, headers, { key })
    expect((await chat(apiKey, { model: 'mock/gpt-4o' })).status).toBe(200)
    expect((await chat(BOOTSTRAP_CANARY, { model: 'mock/gpt-4o' })).status).toBe(200)
    expect((await chat(rotated.body.key, { model: 'smart' })).status).toBe(200)
    expect((await chat(apiKey, { model: 'live/gpt-4o' })).status).toBe(200)
    expect((await chat(apiKey, { model: 'mock/gpt-4o', stream: true, stream_options: { include_usage: true } })).status).toBe(200)
    expect((await call('data', 'POST', '/v1/chat/completions', { model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'hi' }] }, { 'x-api-key': apiKey }, { key: null })).status).toBe(200)
    expect((await call('data', 'POST', '/api/v1/mcp/execute', { deployment_id: dep.body.id, variables: { name: 'Ada' } }, {}, { key: apiKey })).status).toBe(200)
    expect((await call('admin', 'POST', 'execute', { deployment_id: dep.body.id, variables: { name: 'Ada' }, stream: true }, {}, { key: apiKey })).status).toBe(200)
    expect((await chat(apiKey, { model: 'nope/nope-model' })).status).not.toBe(200)
    expect((await call('data', 'POST', '/v1/chat/completions', '{not json', {}, { key: apiKey })).status).toBe(400)
    // The upstream echoes the provider key in its error body (as OpenAI does for a wrong key), plain and streaming.
    for (const secret of [PROVIDER_CANARY, API_PROVIDER_CANARY2]) {
      const fault = JSON.stringify({ status: 401, code: 'invalid_api_key', message: `Incorrect API key provided: ${secret}. You can find your API key at https://platform.openai.com/account/api-keys.` })
      const model = secret === PROVIDER_CANARY ? 'mock/gpt-4o' : 'live/gpt-4o'
      // Distinct messages: the cache must not answer these.
      const msg = (n: number) => ({ messages: [{ role: 'user', content: `fault ${n} ${hex(4)}` }] })
      mock.fault = fault
      expect((await chat(apiKey, { model, ...msg(1) })).status).toBeGreaterThanOrEqual(400)
      expect((await chat(apiKey, { model, stream: true, ...msg(2) })).status).toBeGreaterThanOrEqual(400)
      mock.fault = JSON.stringify({ status: 500, message: `upstream saw Authorization: Bearer ${secret}` })
      expect((await chat(apiKey, { model, ...msg(3) })).status).toBeGreaterThanOrEqual(500)
      mock.fault = null
    }
    // Wrong keys close to the real ones: never echoed, logged or audited beyond the public prefix.
    for (const bad of [`${apiKey}x`, `${apiKey.slice(0, -1)}${apiKey.endsWith('A') ? 'B' : 'A'}`, `${BOOTSTRAP_CANARY}x`, BOOTSTRAP_CANARY.slice(0, -1)]) {
      expect((await chat(bad, { model: 'mock/gpt-4o' })).status).toBe(401)
      expect((await call('admin', 'GET', 'prompts', undefined, {}, { key: bad })).status).toBe(401)
    }
    expect((await call('admin', 'POST', 'providers', { name: 'x', provider: 'openai' }, {}, { key: invoker.body.key })).status).toBe(403) // in its overlap; an invoker lacks the action
    expect((await call('admin', 'DELETE', `keys/${invoker.body.id}`, undefined, {}, { key: apiKey })).status).toBe(204)
    expect((await chat(invoker.body.key, { model: 'mock/gpt-4o' })).status).toBe(401)

    // ---- reads: audit, executions, usage, metrics ----
    await new Promise((r) => setTimeout(r, 400)) // background audit rows, execution log batches
    await writer.flush()
    const audit = await call('admin', 'GET', 'audit?limit=200')
    expect(audit.body.data.length).toBeGreaterThan(10)
    const ex = await call('admin', 'GET', 'executions?limit=200')
    expect(ex.status).toBe(200)
    for (const e of (ex.body.data as { id: string }[]).slice(0, 50)) await call('admin', 'GET', `executions/${e.id}`)
    await call('admin', 'GET', 'usage')
    const metrics = await call('admin', 'GET', '/metrics')
    expect(metrics.status).toBe(200)

    // ---- collect: logs (after shutdown too), every table, Redis, what the upstream received ----
    await t.mcp.close(2000)
    closed = true
    await writer.flush()
    places.push({ where: 'logs', text: t.logText() })
    const { rows: tables } = await store.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
    )
    const counts: Record<string, number> = {}
    for (const { table_name } of tables) {
      const { rows } = await store.query<{ j: string }>(`SELECT row_to_json(x)::text AS j FROM "${table_name}" x`)
      counts[table_name] = rows.length
      for (const r of rows) places.push({ where: `table ${table_name}`, text: r.j })
    }
    expect(counts['audit_log']).toBeGreaterThan(10)
    expect(counts['execution_logs']).toBeGreaterThan(10)
    let redisKeys = 0
    if (redis) {
      const keys = await redis.keys(`${prefix}*`)
      redisKeys = keys.length
      for (const k of keys) {
        const type = await redis.type(k)
        const value = type === 'string' ? await redis.getBuffer(k).then((b) => b?.toString('latin1') ?? '')
          : type === 'hash' ? JSON.stringify(await redis.hgetall(k))
          : type === 'zset' ? JSON.stringify(await redis.zrange(k, '0', '-1', 'WITHSCORES'))
          : type === 'list' ? JSON.stringify(await redis.lrange(k, 0, -1))
          : type === 'set' ? JSON.stringify(await redis.smembers(k)) : ''
        places.push({ where: `redis ${k}`, text: `${k}\n${value}` })
      }
      if (keys.length > 0) await redis.del(...keys)
    }
    for (const r of mock.requests) {
      const { authorization, ...headers } = r.headers
      places.push({ where: `upstream ${r.method} ${r.path}`, text: JSON.stringify({ headers, body: r.body }) })
      // The gateway's own keys never go upstream, not even in Authorization.
      allowed.push({ where: 'upstream authorization', text: String(authorization ?? '') })
    }

    const findings = scan(places, secrets)
    const gatewaySecrets = new Map([...secrets].filter(([n]) => !n.startsWith('provider')))
    const upstreamAuth = scan(allowed.filter((a) => a.where === 'upstream authorization'), gatewaySecrets)
    console.log(`[canary] ${secrets.size} secrets × ${encodings('x'.repeat(40)).size} encodings over ${places.length} places (${counts['execution_logs']} execution logs, ${counts['audit_log']} audit rows, ${redisKeys} Redis keys, ${mock.requests.length} upstream requests): ${findings.length + upstreamAuth.length} findings`)
    for (const f of [...findings, ...upstreamAuth].slice(0, 20)) console.log(`  ✗ ${f.secret} (${f.encoding}) in ${f.where}: …${f.context}…`)
    expect(findings).toEqual([])
    expect(upstreamAuth).toEqual([])
    // The allowed places really hold what they are allowed to (the test sees the secrets where they must be).
    expect(scan(allowed, new Map([['API key', apiKey]])).length).toBeGreaterThan(0)
    expect(scan(allowed, new Map([['provider', PROVIDER_CANARY]])).length).toBeGreaterThan(0)
  }, 120_000)
})
