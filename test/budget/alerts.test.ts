/**
 * Alerts: budget thresholds (50, 80, 100 %) fire exactly once each per period, end to end through the
 * budget plugin, to a local webhook receiver (signature verified; the first delivery fails and is
 * retried; no duplicates); a new period fires again; the admin API lists them. Provider down and error
 * rate from target states. Dedup shared through Redis: two managers, one alert.
 */
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import pino from 'pino'
import { AlertManager, type FiredAlert } from '../../gateway/alerts/manager.ts'
import { parseAlertsConfig } from '../../gateway/alerts/config.ts'
import { signatureHeader, verifySignature } from '../../gateway/alerts/sign.ts'
import { TargetState } from '../../gateway/routing/target-state.ts'
import type { RoutingSettings } from '../../gateway/routing/config.ts'
import { GatewayError } from '../../gateway/errors.ts'
import { Metrics } from '../../gateway/metrics.ts'
import { createBudgetPlugin } from '../../plugins/budget/index.ts'
import { ADMIN_KEY, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { adminGet, chat, deletePrefix, REDIS_URL, redisAvailable, startTestGateway, startWebhookReceiver, until, type WebhookReceiver } from './helpers.ts'

const SECRET = 'whsec-test-0123456789abcdef'
const silent = pino({ level: 'silent' })
const ROUTING: RoutingSettings = {
  retryBudget: { ratio: 0.2, min: 3 },
  breaker: { errorThresholdPercentage: 30, volumeThreshold: 20, rollingWindowMs: 10_000, resetTimeoutMs: 5000 },
  outlier: { consecutiveFailures: 3, baseEjectionMs: 5000, maxEjectionMs: 20_000 },
  health: { intervalMs: 15_000, enabled: false },
  unavailableRetryAfterS: 5,
}

function alertsConfig(hook: WebhookReceiver, rules: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { rules, webhooks: { ops: { url: hook.url, secret: SECRET, backoffMs: 10, retries: 3, timeoutMs: 2000 } }, ...extra }
}

describe('webhook signatures', () => {
  it('t=<unix>,v1=<hmac>: verified, tampered body or stale timestamp refused', () => {
    const body = '{"a":1}'
    const t = Math.floor(Date.now() / 1000)
    const h = signatureHeader(SECRET, body, t)
    expect(h).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/)
    expect(verifySignature(SECRET, h, body)).toBe(true)
    expect(verifySignature(SECRET, h, '{"a":2}')).toBe(false)
    expect(verifySignature('another-secret-0123456789', h, body)).toBe(false)
    expect(verifySignature(SECRET, signatureHeader(SECRET, body, t - 3600), body)).toBe(false)
    expect(verifySignature(SECRET, undefined, body)).toBe(false)
  })

  it('config: unknown webhook references and short secrets are refused', () => {
    expect(() => parseAlertsConfig({ rules: [{ name: 'r', kind: 'budget', webhooks: ['nope'] }] })).toThrow(/no webhook named 'nope'/)
    expect(() => parseAlertsConfig({ webhooks: { w: { url: 'http://127.0.0.1/x', secret: 'short' } } })).toThrow(/secret/)
    expect(parseAlertsConfig({ rules: [{ name: 'r', kind: 'budget', webhooks: [] }] }).rules[0]).toMatchObject({ thresholds: [50, 80, 100], period: 'hour' })
  })

  it('config: an intervalMs a timer cannot hold is refused (Node checked the targets every 1 ms)', () => {
    // Past 2^31 - 1 ms (24.8 days) setInterval warns and fires every millisecond.
    expect(() => parseAlertsConfig({ intervalMs: 3_000_000_000 })).toThrow(/alerts\.intervalMs/)
    expect(() => parseAlertsConfig({ intervalMs: 3_600_001 })).toThrow(/alerts\.intervalMs/)
    expect(parseAlertsConfig({ intervalMs: 3_600_000 }).intervalMs).toBe(3_600_000)
  })

  it('config: a webhook that no request can carry is refused (every delivery failed and was retried before)', async () => {
    const hook = (h: Record<string, unknown>): unknown => ({ webhooks: { w: { url: 'http://127.0.0.1:9/x', secret: SECRET, ...h } } })
    for (const bad of [
      { headers: { 'x-tenant': 'a\r\nx-injected: 1' } }, { headers: { 'x-emoji': 'ok \u{1F600}' } }, { headers: { 'bad name': 'v' } }, { headers: { 'x-a:b': 'v' } },
      { url: 'http://exa mple.com/hook' }, { url: 'https://' },
    ]) {
      expect(() => parseAlertsConfig(hook(bad)), JSON.stringify(bad)).toThrow(/webhooks\.w\.(headers|url)/)
    }
    // What was accepted before and is sendable still is.
    expect(parseAlertsConfig(hook({ headers: { 'x-tenant': 'acme; région=eu', Authorization: 'Bearer abc' } })).webhooks['w']!.headers).toEqual({ 'x-tenant': 'acme; région=eu', Authorization: 'Bearer abc' })
    // The refused shapes did fail every delivery: fetch cannot send them.
    await expect(fetch('http://127.0.0.1:9/x', { method: 'POST', headers: { 'x-tenant': 'a\r\nx-injected: 1' } })).rejects.toThrow(TypeError)
  })

  // fetch refuses a URL with credentials with a message quoting the whole URL: it went into the delivery's lastError
  // (GET /api/v1/mcp/alerts) and the 'webhook delivery failed' log line.
  it('a delivery that fails never puts the webhook URL in the log or the alert list', async () => {
    const lines: string[] = []
    const logger = pino({ level: 'info' }, { write: (l: string) => { lines.push(l) } })
    const url = 'http://user:CREDSECRET@127.0.0.1:9/hook/PATHSECRET?token=QUERYSECRET'
    const alerts = new AlertManager({ rules: [{ name: 'down', kind: 'provider_down', webhooks: ['w'] }], webhooks: { w: { url, secret: SECRET, retries: 0 } } }, { logger })
    const t = new TargetState('z', 'm', ROUTING)
    try {
      t.healthy = false
      alerts.checkTargets([t])
      await until(async () => (await alerts.list())[0]?.deliveries?.[0]?.status === 'failed', 5000)
      const listed = JSON.stringify(await alerts.list())
      expect(listed).toContain('http://127.0.0.1:9/[redacted]')
      expect(lines.join('\n')).toContain('webhook delivery failed')
      for (const text of [listed, lines.join('\n')]) for (const s of ['CREDSECRET', 'PATHSECRET', 'QUERYSECRET']) expect(text).not.toContain(s)
    } finally {
      await alerts.close()
      t.close()
    }
  })

  it('budgetFloor: the lowest threshold watching a budget (Infinity when none), following config changes', () => {
    let raw: unknown = { rules: [
      { name: 'team', kind: 'budget', budget: 'team', thresholds: [80, 50], webhooks: [] },
      { name: 'any', kind: 'budget', thresholds: [90], webhooks: [] },
      { name: 'down', kind: 'provider_down', webhooks: [] },
    ] }
    const alerts = new AlertManager(() => raw, { logger: pino({ level: 'silent' }) })
    expect(alerts.budgetFloor('team')).toBe(50)
    expect(alerts.budgetFloor('other')).toBe(90)
    raw = { rules: [{ name: 'team', kind: 'budget', budget: 'team', thresholds: [95], webhooks: [] }] }
    expect(alerts.budgetFloor('team')).toBe(95)
    expect(alerts.budgetFloor('other')).toBe(Infinity)
  })
})

describe('budget alerts end to end', () => {
  let mock: OpenAIMock
  let hook: WebhookReceiver
  let tg: TestGateway | undefined
  let alerts: AlertManager | undefined
  beforeAll(async () => { mock = await startOpenAIMock(); hook = await startWebhookReceiver() })
  afterAll(async () => { await mock.close(); await hook.close() })
  afterEach(async () => { await tg?.close(); tg = undefined; await alerts?.close(); alerts = undefined; hook.received.length = 0 })

  it('50, 80 and 100 % fire exactly once each per period; the first delivery fails and is retried; signed; listed', async () => {
    let now = Date.parse('2026-03-31T12:00:00Z')
    const clock = (): number => now
    alerts = new AlertManager(alertsConfig(hook, [{ name: 'team-budget', kind: 'budget', budget: 'team-req', thresholds: [50, 80, 100], webhooks: ['ops'] }]), { logger: silent, now: clock })
    tg = await startTestGateway({
      providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-alerts' } },
      plugins: { budget: { backend: 'local', keyPrefix: `test:alerts:${Date.now()}:`, budgets: [{ name: 'team-req', scope: 'team', period: 'month', requests: 10 }] } },
      chains: { default: ['test-principal', 'budget'] },
    }, { services: { alerts }, alerts, plugins: [createBudgetPlugin({ now: clock })] })
    hook.failNext(1, 503)
    const codes: number[] = []
    for (let i = 0; i < 13; i++) {
      const r = await chat(tg.url, { team: 'ml', maxTokens: 5 })
      codes.push(r.status)
      await r.arrayBuffer()
      await new Promise((res) => setTimeout(res, 5))
    }
    expect(codes.filter((c) => c === 200)).toHaveLength(10)
    await until(() => hook.received.filter((x) => x.status === 200).length >= 3)
    await alerts.idle()
    await new Promise((r) => setTimeout(r, 100))
    await alerts.idle()
    // 4 POSTs: one failed (503) and retried, then one per threshold.
    expect(hook.received).toHaveLength(4)
    expect(hook.received[0]!.status).toBe(503)
    for (const h of hook.received) expect(verifySignature(SECRET, h.headers['x-mcp-signature'] as string, h.body)).toBe(true)
    const delivered = hook.received.filter((x) => x.status === 200).map((x) => JSON.parse(x.body) as FiredAlert & { type: string })
    expect(delivered.map((d) => d.threshold).sort((a, b) => a! - b!)).toEqual([50, 80, 100])
    expect(new Set(delivered.map((d) => d.id)).size).toBe(3)
    expect(hook.received[0]!.headers['x-mcp-alert-id']).toBe(hook.received.find((x, i) => i > 0 && x.headers['x-mcp-alert-id'] === hook.received[0]!.headers['x-mcp-alert-id'])?.headers['x-mcp-alert-id'])
    const d100 = delivered.find((d) => d.threshold === 100)!
    expect(d100).toMatchObject({ type: 'mcp.alert', rule: 'team-budget', kind: 'budget', subject: { budget: 'team-req', scope: 'team', scopeId: 'ml' }, period: { start: '2026-03-01T00:00:00.000Z', end: '2026-04-01T00:00:00.000Z' } })
    expect(d100.message).toMatch(/Budget 'team-req' for team 'ml' reached 100%/)

    const listed = (await adminGet<{ data: FiredAlert[] }>(tg.adminUrl, '/api/v1/mcp/alerts')).data
    expect(listed.map((a) => a.threshold)).toEqual([100, 80, 50])
    const retried = listed.find((a) => a.id === hook.received[0]!.headers['x-mcp-alert-id'])!
    expect(retried.deliveries).toEqual([expect.objectContaining({ webhook: 'ops', status: 'delivered', attempts: 2, lastStatus: 200 })])

    // A new period: the same thresholds fire again, once.
    now = Date.parse('2026-04-01T00:00:01Z')
    for (let i = 0; i < 5; i++) await (await chat(tg.url, { team: 'ml', maxTokens: 5 })).arrayBuffer()
    await until(() => hook.received.length >= 5)
    await new Promise((r) => setTimeout(r, 100))
    await alerts.idle()
    expect(hook.received).toHaveLength(5)
    const april = JSON.parse(hook.received[4]!.body) as FiredAlert
    expect(april).toMatchObject({ threshold: 50, period: { start: '2026-04-01T00:00:00.000Z' } })
  })

  it('a refused oversized request on an almost unused budget fires nothing; the real crossings fire later', async () => {
    // Regression: a refusal counted as 100 %: one request with max_tokens 100000 fired 50, 80 and 100 % ("100.0%, a
    // request was refused") at 0.7 % of use, and the real crossings of that period never fired.
    alerts = new AlertManager(alertsConfig(hook, [{ name: 'usd', kind: 'budget', thresholds: [50, 80, 100], webhooks: ['ops'] }]), { logger: silent })
    tg = await startTestGateway({
      providers: {
        mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-alerts' },
        long: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-alerts', headers: { 'x-mock-tokens': '400' } },
      },
      plugins: { budget: { backend: 'local', keyPrefix: `test:alerts:${Date.now()}:o:`, estimate: { perMessageTokens: 0 }, budgets: [{ name: 'usd', scope: 'team', period: 'day', amountUsd: 0.001 }] } },
      chains: { default: ['test-principal', 'budget'] },
    }, { services: { alerts } })
    // 7,350 nano-USD of $0.001 (0.7 %), then one whose worst case ($0.06) is past the whole budget.
    expect((await chat(tg.url, { team: 'ml', maxTokens: 12 }).then(async (r) => { await r.arrayBuffer(); return r.status }))).toBe(200)
    const big = await chat(tg.url, { team: 'ml', maxTokens: 100_000 })
    expect(big.status).toBe(402)
    await big.arrayBuffer()
    await new Promise((r) => setTimeout(r, 100))
    await alerts.idle()
    expect(hook.received).toHaveLength(0)
    // 7 × (150 + 200 × 600) nano-USD more: 84.8 % spent, so 50 and 80 fire, 100 does not.
    for (let i = 0; i < 7; i++) expect((await chat(tg.url, { team: 'ml', model: 'long/gpt-4o-mini', maxTokens: 200 }).then(async (r) => { await r.arrayBuffer(); return r.status }))).toBe(200)
    await until(() => hook.received.length >= 2)
    await new Promise((r) => setTimeout(r, 100))
    await alerts.idle()
    const fired = hook.received.map((h) => JSON.parse(h.body) as FiredAlert)
    expect(fired.map((f) => f.threshold).sort((x, y) => x! - y!)).toEqual([50, 80])
    for (const f of fired) expect(f.message).not.toContain('refused')
  })

  it('a refusal fires the thresholds that spend and open reservations reach, saying a request was refused', async () => {
    alerts = new AlertManager(alertsConfig(hook, [{ name: 'usd', kind: 'budget', thresholds: [50, 80], webhooks: ['ops'] }]), { logger: silent })
    tg = await startTestGateway({
      providers: { slow: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-alerts', headers: { 'x-mock-chunk-delay-ms': '100' } } },
      plugins: { budget: { backend: 'local', keyPrefix: `test:alerts:${Date.now()}:r:`, estimate: { perMessageTokens: 0 }, budgets: [{ name: 'usd', scope: 'key', period: 'day', amountUsd: 0.000012 }] } },
      chains: { default: ['test-principal', 'budget'] },
    }, { services: { alerts } })
    // A stream holds 7,350 of 12,000 nano-USD reserved (61 %) while a second request is refused: 50 fires, 80 does not.
    const held = await chat(tg.url, { model: 'slow/gpt-4o-mini', maxTokens: 12, stream: true })
    expect(held.status).toBe(200)
    const refused = await chat(tg.url, { model: 'slow/gpt-4o-mini', maxTokens: 12 })
    expect(refused.status).toBe(402)
    await refused.arrayBuffer()
    await until(() => hook.received.length === 1)
    expect(JSON.parse(hook.received[0]!.body)).toMatchObject({ threshold: 50, message: expect.stringMatching(/reached 50% \(61\.3% spent and reserved, a request was refused\)/) })
    await held.text()
    await new Promise((r) => setTimeout(r, 100))
    await alerts.idle()
    expect(hook.received).toHaveLength(1)
  })
})

describe('GET /api/v1/mcp/alerts query', () => {
  it('a bad limit is a 400 MCP_ERR_ADMIN_QUERY_INVALID whose param names it, like the other admin routes', async () => {
    const alerts = new AlertManager({ rules: [] }, { logger: silent })
    const tg = await startTestGateway({}, { alerts })
    try {
      for (const limit of ['0', '1001', 'abc', '1.5', '', '-1', 'a%00b']) {
        const r = await fetch(`${tg.adminUrl}/api/v1/mcp/alerts?limit=${limit}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
        const body = await r.json() as { error: { code: string; param: string | null; message: string } }
        expect(r.status, `limit=${limit}`).toBe(400)
        expect(r.headers.get('x-mcp-error-code')).toBe('MCP_ERR_ADMIN_QUERY_INVALID')
        expect(body.error, `limit=${limit}`).toMatchObject({ code: 'MCP_ERR_ADMIN_QUERY_INVALID', param: 'limit' })
        expect(body.error.message).toMatch(/limit: /)
      }
      for (const limit of ['1', '1000']) {
        expect((await fetch(`${tg.adminUrl}/api/v1/mcp/alerts?limit=${limit}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).status).toBe(200)
      }
    } finally {
      await tg.close()
      await alerts.close()
    }
  })
})

describe('target alerts', () => {
  let hook: WebhookReceiver
  beforeAll(async () => { hook = await startWebhookReceiver() })
  afterAll(async () => { await hook.close() })
  afterEach(() => { hook.received.length = 0 })

  it("a webhook's configured headers never merge with the gateway's own (content type, signature), whatever their case", async () => {
    const alerts = new AlertManager({
      rules: [{ name: 'b', kind: 'budget', thresholds: [50], webhooks: ['ops'] }],
      webhooks: { ops: { url: hook.url, secret: SECRET, retries: 0, headers: { 'Content-Type': 'text/plain', 'X-MCP-Signature': 'forged', 'X-Tenant': 'acme' } } },
    }, { logger: silent })
    try {
      const now = Date.now()
      alerts.budgetUsage({ budget: 'team', scope: 'global', scopeId: '*', period: 'day', periodStart: now - 1000, periodEnd: now + 86_400_000, percent: 60, refused: false, spentUsd: 6, limitUsd: 10 })
      await until(() => hook.received.length === 1)
      const h = hook.received[0]!.headers
      expect(h['content-type']).toBe('application/json')
      expect(verifySignature(SECRET, h['x-mcp-signature'] as string, hook.received[0]!.body)).toBe(true)
      expect(h['x-tenant']).toBe('acme')
    } finally {
      await alerts.close()
    }
  })

  it("a 429's Retry-After is waited for before the retry (backoffMs alone would retry at once)", async () => {
    const alerts = new AlertManager({
      rules: [{ name: 'b', kind: 'budget', thresholds: [50], webhooks: ['ops'] }],
      webhooks: { ops: { url: hook.url, secret: SECRET, retries: 2, backoffMs: 10 } },
    }, { logger: silent })
    try {
      hook.failNext(1, 429, { 'retry-after': '1' })
      const now = Date.now()
      alerts.budgetUsage({ budget: 'team', scope: 'global', scopeId: '*', period: 'day', periodStart: now - 1000, periodEnd: now + 86_400_000, percent: 60, refused: false, spentUsd: 6, limitUsd: 10 })
      await until(() => hook.received.length === 1)
      const first = Date.now()
      await until(() => hook.received.length === 2, 5000)
      expect(Date.now() - first).toBeGreaterThanOrEqual(900)
      expect(hook.received[1]!.status).toBe(200)
    } finally {
      await alerts.close()
    }
  })

  it('provider down fires once per period while all its targets are down; error rate fires past its threshold', async () => {
    const alerts = new AlertManager(alertsConfig(hook, [
      { name: 'down', kind: 'provider_down', webhooks: ['ops'] },
      { name: 'errors', kind: 'error_rate', threshold: 50, minRequests: 5, webhooks: ['ops'] },
    ]), { logger: silent })
    const a = new TargetState('acme', 'm1', ROUTING)
    const b = new TargetState('acme', 'm2', ROUTING)
    const ok = new TargetState('other', 'm', ROUTING)
    try {
      a.healthy = false
      alerts.checkTargets([a, b, ok])
      await alerts.idle()
      expect(hook.received).toHaveLength(0) // one of acme's targets is still up
      b.healthy = false
      alerts.checkTargets([a, b, ok])
      alerts.checkTargets([a, b, ok])
      await until(() => hook.received.length === 1)
      await alerts.idle()
      expect(JSON.parse(hook.received[0]!.body)).toMatchObject({ rule: 'down', kind: 'provider_down', subject: { provider: 'acme' } })

      const err = new GatewayError('MCP_ERR_UPSTREAM_ERROR', { provider: 'other', status: 500, reason: 'x' }, { status: 500 })
      for (let i = 0; i < 6; i++) ok.recordFailure(err, ROUTING, Date.now())
      alerts.checkTargets([a, b, ok])
      alerts.checkTargets([a, b, ok])
      // Six consecutive failures also eject the only target of 'other': that provider is down too.
      await until(() => hook.received.length >= 3)
      await new Promise((r) => setTimeout(r, 50))
      await alerts.idle()
      expect(hook.received).toHaveLength(3)
      const later = hook.received.slice(1).map((h) => JSON.parse(h.body) as FiredAlert)
      expect(later).toEqual(expect.arrayContaining([
        expect.objectContaining({ rule: 'errors', kind: 'error_rate', subject: { target: 'other/m', provider: 'other', model: 'm' }, value: 100 }),
        expect.objectContaining({ rule: 'down', kind: 'provider_down', subject: { provider: 'other' } }),
      ]))
      expect((await alerts.list()).map((x) => x.rule).sort()).toEqual(['down', 'down', 'errors'])
    } finally {
      await alerts.close()
      for (const s of [a, b, ok]) s.close()
    }
  })

  it('config from a getter (the running settings): a new object takes effect, an invalid one is refused', async () => {
    let raw: unknown = alertsConfig(hook, [])
    const alerts = new AlertManager(() => raw, { logger: silent })
    const t = new TargetState('y', 'm', ROUTING)
    try {
      t.healthy = false
      alerts.checkTargets([t])
      await alerts.idle()
      expect(hook.received).toHaveLength(0)
      raw = alertsConfig(hook, [{ name: 'down', kind: 'provider_down', webhooks: ['ops'] }])
      expect(alerts.config.rules).toHaveLength(1)
      raw = { rules: [{ name: 'bad', kind: 'budget', webhooks: ['missing'] }] }
      expect(alerts.config.rules[0]!.name).toBe('down')
      alerts.checkTargets([t])
      await until(() => hook.received.length === 1)
    } finally {
      await alerts.close()
      t.close()
    }
  })

  it('a webhook that keeps failing is retried `retries` times, then marked failed; the queue length is a gauge', async () => {
    const metrics = new Metrics()
    const alerts = new AlertManager(alertsConfig(hook, [{ name: 'down', kind: 'provider_down', webhooks: ['ops'] }], { webhooks: { ops: { url: hook.url, secret: SECRET, backoffMs: 200, retries: 3, timeoutMs: 2000 } } }), { logger: silent, metrics })
    const t = new TargetState('x', 'm', ROUTING)
    const queued = (): number | undefined => {
      const line = metrics.render().split('\n').find((l) => l.startsWith('mcp_alerts_queue_length '))
      return line === undefined ? undefined : Number(line.slice('mcp_alerts_queue_length '.length))
    }
    try {
      expect(metrics.render()).toContain('# TYPE mcp_alerts_queue_length gauge')
      expect(queued()).toBe(0)
      t.healthy = false
      hook.failNext(100, 500)
      alerts.checkTargets([t])
      // Between attempts the delivery waits in the queue for its retry.
      await until(() => queued() === 1, 5000)
      await until(async () => (await alerts.list())[0]?.deliveries?.[0]?.status === 'failed', 10_000)
      expect(hook.received).toHaveLength(4) // first attempt + 3 retries
      expect((await alerts.list())[0]!.deliveries![0]).toMatchObject({ status: 'failed', attempts: 4, lastStatus: 500 })
      expect(queued()).toBe(0)
    } finally {
      hook.failNext(0)
      await alerts.close()
      t.close()
    }
  })
})

const redisUp = await redisAvailable()

describe.skipIf(!redisUp)('alerts dedup across instances (Redis)', () => {
  let hook: WebhookReceiver
  let r: Redis
  const prefix = `test:{alerts-${process.pid}-${Date.now()}}:`
  beforeAll(async () => { hook = await startWebhookReceiver(); r = new Redis(REDIS_URL) })
  afterAll(async () => { await hook.close(); await deletePrefix(r, prefix); r.disconnect() })

  it('two managers sharing Redis: each threshold fires once, and both list it', async () => {
    const cfg = alertsConfig(hook, [{ name: 'b', kind: 'budget', thresholds: [50, 80], webhooks: ['ops'] }], { keyPrefix: prefix })
    const m1 = new AlertManager(cfg, { logger: silent, redis: r })
    const m2 = new AlertManager(cfg, { logger: silent, redis: r })
    try {
      const start = Date.parse('2026-05-01T00:00:00Z')
      const ev = { budget: 'b', scope: 'key', scopeId: 'k', period: 'month', periodStart: start, periodEnd: Date.parse('2026-06-01T00:00:00Z'), refused: false, requests: 0 }
      for (let i = 0; i < 5; i++) { m1.budgetUsage({ ...ev, percent: 60 }); m2.budgetUsage({ ...ev, percent: 60 }) }
      m1.budgetUsage({ ...ev, percent: 85 })
      m2.budgetUsage({ ...ev, percent: 90 })
      await until(() => hook.received.length >= 2)
      await new Promise((res) => setTimeout(res, 100))
      await Promise.all([m1.idle(), m2.idle()])
      expect(hook.received.map((h) => (JSON.parse(h.body) as FiredAlert).threshold).sort()).toEqual([50, 80])
      const l1 = await m1.list()
      const l2 = await m2.list()
      expect(l1.map((a) => a.id).sort()).toEqual(l2.map((a) => a.id).sort())
      expect(l1).toHaveLength(2)
    } finally {
      await Promise.all([m1.close(), m2.close()])
    }
  })
})

describe('budget alerts after their period ended (a request admitted before the rollover settles after it)', () => {
  let hook: WebhookReceiver
  beforeAll(async () => { hook = await startWebhookReceiver() })
  afterAll(async () => { await hook.close() })

  const event = (end: number) => ({ budget: 'b', scope: 'key', scopeId: 'k', period: 'day', periodStart: end - 86_400_000, periodEnd: end, refused: false, percent: 60 })

  it('in-process: a threshold that fired in a period does not fire again for that period once it is over', async () => {
    let now = Date.parse('2026-03-31T23:59:59Z')
    const end = Date.parse('2026-04-01T00:00:00Z')
    const alerts = new AlertManager(alertsConfig(hook, [{ name: 'late', kind: 'budget', thresholds: [50], webhooks: [] }]), { logger: silent, now: () => now })
    try {
      alerts.budgetUsage(event(end))
      await until(async () => (await alerts.list()).length === 1)
      // 00:00:01: the request admitted at 23:59:59 settles, and its counters are the old day's.
      now = end + 1000
      alerts.budgetUsage(event(end))
      await new Promise((res) => setTimeout(res, 50))
      expect((await alerts.list()).map((a) => a.period.start)).toEqual(['2026-03-31T00:00:00.000Z'])
    } finally {
      await alerts.close()
    }
  })

  it.skipIf(!redisUp)('Redis: another instance (or this one restarted) does not fire it again either', async () => {
    const r = new Redis(REDIS_URL)
    const prefix = `test:{alerts-late-${process.pid}-${Date.now()}}:`
    const cfg = alertsConfig(hook, [{ name: 'late', kind: 'budget', thresholds: [50], webhooks: [] }], { keyPrefix: prefix })
    // Real time (Redis expires the markers by its own clock): a period ending 1.5 s from now.
    const end = Date.now() + 1500
    const m1 = new AlertManager(cfg, { logger: silent, redis: r })
    const m2 = new AlertManager(cfg, { logger: silent, redis: r })
    try {
      m1.budgetUsage(event(end))
      await until(async () => (await m1.list()).length === 1)
      await new Promise((res) => setTimeout(res, end + 300 - Date.now()))
      m2.budgetUsage(event(end))
      await new Promise((res) => setTimeout(res, 200))
      expect(await m2.list()).toHaveLength(1)
    } finally {
      await Promise.all([m1.close(), m2.close()])
      await deletePrefix(r, prefix)
      r.disconnect()
    }
  })
})
