/**
 * execution-log: config (io contract, defaults, unknown keys), request capture (cap, truncation, redaction,
 * metadata), and through the real server with a PGlite-backed writer: one row per request on every outcome
 * (success, stream, local reply, upstream error, client abort, embeddings), then the admin API over those rows
 * (filters, keyset pagination, 400/404 on bad input), and failMode closed.
 */
import { createHash } from 'node:crypto'
import { Writable } from 'node:stream'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { registerExecutionRoutes } from '../../admin/routes/executions.ts'
import { AdminServer } from '../../admin/server.ts'
import { loadCatalogue, PriceCatalogue } from '../../gateway/cost/catalogue.ts'
import { Gateway } from '../../gateway/gateway.ts'
import { createLogger } from '../../gateway/logger.ts'
import { validatePluginConfig } from '../../gateway/pipeline/compile.ts'
import type { PluginDeps } from '../../gateway/pipeline/types.ts'
import { Metrics } from '../../gateway/metrics.ts'
import { ExecutionLogWriter, type ExecutionLogRow, type ExecutionLogSink } from '../../store/execution-log-writer.ts'
import { JsonText, METRIC_KEYS } from '../../store/execution-log-rows.ts'
import { openStore } from '../../store/index.ts'
import type { Store } from '../../store/types.ts'
import { ADMIN_KEY, testSettings } from '../../test/helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../../test/helpers/openai-mock.ts'
import { captureBody, jsonStringBytes } from './capture.ts'
import type { ExecutionLogConfig } from './config.ts'
import { executionLogPlugin, statusOf } from './index.ts'
import type { RequestCtx } from '../../gateway/context.ts'
import type { Usage } from '../../providers/types.ts'

const REDACT = new Set(['api_key', 'password'])

describe('execution-log config', () => {
  it('has the io contract (timeoutMs, failMode) and defaults', () => {
    const cfg = validatePluginConfig(executionLogPlugin, {}, 'plugins.execution-log')
    expect(cfg).toMatchObject({ timeoutMs: 1000, failMode: 'open', storeRequest: 'full', storeResponse: 'metadata', maxRequestBytes: 65536, maxResponseBytes: 65536 })
    expect(cfg['redactFields']).toContain('api_key')
    expect(Object.isFrozen(cfg)).toBe(true)
  })

  it('rejects unknown keys and bad values, naming the field', () => {
    expect(() => validatePluginConfig(executionLogPlugin, { storeBodies: true }, 'plugins.execution-log')).toThrow(/plugins\.execution-log\.storeBodies: unknown key/)
    expect(() => validatePluginConfig(executionLogPlugin, { storeRequest: 'all' }, 'plugins.execution-log')).toThrow(/storeRequest/)
    expect(() => validatePluginConfig(executionLogPlugin, { maxRequestBytes: 10 }, 'plugins.execution-log')).toThrow(/maxRequestBytes/)
  })
})

describe('request capture', () => {
  const body = { model: 'gpt-4o', temperature: 0.2, messages: [{ role: 'user', content: 'hello' }], tools: [{ type: 'function' }], user: 'u-123' }

  it('keeps a body under the cap by reference', () => {
    const c = captureBody(body, 'full', 65536, REDACT)
    expect(c.value).toBe(body)
    expect(c.bytes).toBeGreaterThan(JSON.stringify(body).length * 0.8)
    expect(c.bytes).toBeLessThan(JSON.stringify(body).length * 1.3)
  })

  it('redacts named keys at any depth in a copy, leaving the request untouched', () => {
    const b = { model: 'm', messages: [], metadata: { api_key: 'sk-secret', nested: [{ password: 'p' }] } }
    const c = captureBody(b, 'full', 65536, REDACT)
    expect(c.value).toEqual({ model: 'm', messages: [], metadata: { api_key: '[redacted]', nested: [{ password: '[redacted]' }] } })
    expect(b.metadata.api_key).toBe('sk-secret')
  })

  it('stores an over-cap body as {truncated, bytes, sha256, head}: valid JSON, redacted, within the cap', () => {
    const big = { model: 'gpt-4o', api_key: 'sk-leak', messages: [{ role: 'user', content: 'é'.repeat(50_000) }] }
    const c = captureBody(big, 'full', 4096, REDACT)
    const v = c.value as { truncated: boolean; bytes: number; sha256: string; head: string }
    const full = JSON.stringify({ ...big, api_key: '[redacted]' })
    expect(v.truncated).toBe(true)
    expect(v.bytes).toBe(Buffer.byteLength(full))
    expect(v.sha256).toBe(createHash('sha256').update(full).digest('hex'))
    expect(full.startsWith(v.head.replace(/\ufffd$/, ''))).toBe(true)
    expect(v.head).not.toContain('sk-leak')
    expect(Buffer.byteLength(JSON.stringify(v))).toBeLessThanOrEqual(4096)
  })

  it('metadata applies redactFields to the top-level parameters it keeps', () => {
    // Unknown top-level fields pass validation (gateway/http/schemas.ts): a key sent in the body must not be stored.
    const c = captureBody({ model: 'm', api_key: 'sk-secret', password: 'hunter2', messages: [] }, 'metadata', 65536, REDACT)
    expect(JSON.stringify(c.value)).not.toContain('sk-secret')
    expect(JSON.stringify(c.value)).not.toContain('hunter2')
    expect(c.value).toEqual({ model: 'm', api_key: '[redacted]', password: '[redacted]', messages_count: 0 })
  })

  it('keeps an over-cap body within the cap when its JSON is full of characters that escape again', () => {
    for (const content of ['"'.repeat(20_000), '\\'.repeat(20_000), '\u0001'.repeat(5_000)]) {
      const c = captureBody({ model: 'm', messages: [{ role: 'user', content }] }, 'full', 4096, REDACT)
      expect((c.value as { truncated: boolean }).truncated).toBe(true)
      expect(Buffer.byteLength(JSON.stringify(c.value))).toBeLessThanOrEqual(4096)
    }
  })

  it('maxRequestBytes caps the JSON stored, not the raw values: bodies that grow when escaped are truncated', () => {
    // Each under 65,536 counted raw (one character per character, 8 bytes per number), 86-360 KB as JSON.
    const bodies = {
      controls: { model: 'm', messages: [{ role: 'user', content: '\u0001'.repeat(60_000) }] },
      quotes: { model: 'm', messages: [{ role: 'user', content: '"'.repeat(60_000) }] },
      floats: { model: 'm', messages: [{ role: 'user', content: 'x' }], logit_bias: Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [String(i), -1.2345678901234567])) },
    }
    for (const [name, b] of Object.entries(bodies)) {
      expect(Buffer.byteLength(JSON.stringify(b)), name).toBeGreaterThan(65_536)
      const c = captureBody(b, 'full', 65_536, REDACT)
      expect(c.value, name).toMatchObject({ truncated: true, bytes: Buffer.byteLength(JSON.stringify(b)) })
      expect(Buffer.byteLength(JSON.stringify(c.value)), name).toBeLessThanOrEqual(65_536)
    }
  })

  it('measures the JSON size exactly when a body is near the cap, and keeps one that fits', () => {
    const strings = ['', 'plain', 'tab\there "q" \\ \b\f\n\r', '\u0000\u001f\u007f', 'é ü ß', '€ 中文', '😀 pair', 'lone \ud800 high', 'lone \udc00 low', 'end \ud83d', '\u2028\u2029']
    for (const s of strings) expect(jsonStringBytes(s), JSON.stringify(s)).toBe(Buffer.byteLength(JSON.stringify(s)))
    let all = ''
    for (let c = 0; c < 0x10000; c++) all += String.fromCharCode(c)
    expect(jsonStringBytes(all)).toBe(Buffer.byteLength(JSON.stringify(all)))
    // Near the cap, so the exact walk runs: the size is JSON.stringify's, to the byte, and the body is kept.
    const body = { model: 'm', n: 3, t: 0.123456789, ok: true, no: false, none: null, skip: undefined, list: [1, 'a', null, []], o: {},
      messages: [{ role: 'user', content: 'é"\n\u0001😀'.repeat(900) }] }
    const size = Buffer.byteLength(JSON.stringify(body))
    const kept = captureBody(body, 'full', size, REDACT)
    expect(kept.value).toBe(body)
    expect(kept.bytes).toBe(size)
    expect(captureBody(body, 'full', size - 1, REDACT).value).toMatchObject({ truncated: true, bytes: size })
  })

  it('metadata keeps parameters and counts, no content; none keeps nothing', () => {
    expect(captureBody(body, 'metadata', 65536, REDACT).value).toEqual({ model: 'gpt-4o', temperature: 0.2, messages_count: 1, tools_count: 1, user_count: 1 })
    expect(captureBody({ model: 'e', input: 'some text' }, 'metadata', 65536, REDACT).value).toEqual({ model: 'e', input_count: 1 })
    expect(captureBody(body, 'none', 65536, REDACT).value).toEqual({})
    expect(captureBody(undefined, 'full', 65536, REDACT).value).toEqual({})
  })

  it('a body nested deeper than the walk allows is stored truncated, not thrown', () => {
    let deep: unknown = 'x'
    for (let i = 0; i < 200; i++) deep = [deep]
    expect(captureBody({ messages: deep }, 'full', 65536, REDACT).value).toMatchObject({ truncated: true })
  })
})

describe('status of a row', () => {
  it('maps outcomes to ok, error, timeout, cancelled', () => {
    expect(statusOf({ status: 200, errorCode: undefined, details: 'ok', aborted: false })).toBe('ok')
    expect(statusOf({ status: 401, errorCode: 'MCP_ERR_AUTH_INVALID', details: 'auth.invalid_key', aborted: false })).toBe('error')
    expect(statusOf({ status: 504, errorCode: 'MCP_ERR_UPSTREAM_TIMEOUT', details: 'upstream.timeout', aborted: false })).toBe('timeout')
    expect(statusOf({ status: 499, errorCode: 'MCP_ERR_REQ_ABORTED', details: 'client_abort', aborted: true })).toBe('cancelled')
    expect(statusOf({ status: 200, errorCode: 'MCP_ERR_SERVER_DRAINING', details: 'server.shutdown_deadline', aborted: false })).toBe('terminated')
    expect(statusOf({ status: 503, errorCode: 'MCP_ERR_SERVER_DRAINING', details: 'server.shutdown_deadline', aborted: false })).toBe('terminated')
  })
})

describe('without a sink', () => {
  it('does nothing and warns once', async () => {
    const warnings: string[] = []
    const logger = { warn: (m: string) => warnings.push(m) } as unknown as PluginDeps['logger']
    const deps: PluginDeps = { services: {}, logger, metrics: new Metrics(), env: { adminKey: undefined, production: false } }
    const cfg = validatePluginConfig(executionLogPlugin, {}, 'plugins.execution-log') as unknown as ExecutionLogConfig
    expect(await executionLogPlugin.create(cfg, deps)).toEqual({})
    expect(await executionLogPlugin.create(cfg, deps)).toEqual({})
    expect(warnings.length).toBeLessThanOrEqual(1)
  })
})

interface Listed { data: Record<string, unknown>[]; next_cursor: string | null }

describe('execution-log through the gateway', () => {
  let mock: OpenAIMock
  let store: Store
  let writer: ExecutionLogWriter
  let gw: Gateway
  let admin: AdminServer
  let url = ''
  let adminUrl = ''

  beforeAll(async () => {
    mock = await startOpenAIMock()
    store = await openStore({ dataDir: 'memory://' })
    writer = await ExecutionLogWriter.open({ store, flushIntervalMs: 20 })
    const logger = createLogger('warn', new Writable({ write(_c, _e, cb) { cb() } }))
    gw = await Gateway.create({
      logger,
      services: { executionLog: writer },
      load: () => testSettings({
        plugins: { 'execution-log': { maxRequestBytes: 2048 } },
        // access-log reads the usage too (before execution-log: the finish reason must survive that).
        chains: { default: ['request-id', 'auth', 'cost-meter', 'execution-log', 'access-log'] },
        providers: {
          mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-upstream-exec-log', models: ['gpt-4o', 'text-embedding-3-small'] },
          slow: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-upstream-exec-log', headers: { 'x-mock-tokens': '40', 'x-mock-chunk-delay-ms': '50' } },
          cutter: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-upstream-exec-log', headers: { 'x-mock-tokens': '60', 'x-mock-fault': 'cutAfter:5' } },
        },
        // A stream cut on gpt-4o after 5 tokens and resumed on gpt-4o-mini.
        models: {
          // Falls back to gpt-4o-mini when gpt-4o fails.
          backup: { targets: [{ provider: 'mock', model: 'gpt-4o' }, { provider: 'mock', model: 'gpt-4o-mini', priority: 1 }] },
          relay: {
            streamRecovery: 'resume',
            targets: [{ provider: 'cutter', model: 'gpt-4o' }, { provider: 'mock', model: 'gpt-4o-mini', priority: 1, supportsPrefill: true }],
          },
        },
      }),
    })
    writer.bindMetrics(gw.metrics.registry)
    admin = new AdminServer(gw)
    registerExecutionRoutes(admin, store)
    url = `http://127.0.0.1:${(await gw.listen()).port}`
    adminUrl = `http://127.0.0.1:${(await admin.listen('127.0.0.1', 0, ADMIN_KEY)).port}`
  })
  afterAll(async () => {
    await gw?.shutdown(2000)
    await admin?.close()
    await writer?.close(2000)
    await store?.close()
    await mock?.close()
  })
  afterEach(() => mock.reset())

  function post(path: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
    return fetch(`${url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
      ...(signal ? { signal } : {}),
    })
  }

  async function rowOf(requestId: string): Promise<Record<string, unknown>> {
    let found: Record<string, unknown> | undefined
    await vi.waitFor(async () => {
      await writer.flush()
      const r = await fetch(`${adminUrl}/api/v1/mcp/executions/${encodeURIComponent(requestId)}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
      expect(r.status).toBe(200)
      found = await r.json() as Record<string, unknown>
    }, { timeout: 3000, interval: 20 })
    return found!
  }

  function list(query: string): Promise<Response> {
    return fetch(`${adminUrl}/api/v1/mcp/executions${query}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
  }

  it('records a resumed stream: usage and cost of every attempt, the cut one in failedAttempts with its usage', async () => {
    const res = await post('/v1/chat/completions', { model: 'relay', messages: [{ role: 'user', content: 'hello' }], stream: true }, { 'x-request-id': 'el-resumed-1' })
    expect(await res.text()).toContain('data: [DONE]')
    const row = await rowOf('el-resumed-1')
    const m = row['metrics'] as { promptTokens: number; completionTokens: number; failedAttempts: { usage: Usage }[]; cost: { tokens: { input: number; output: number }; pico: string } }
    expect(m.failedAttempts).toEqual([{
      provider: 'cutter', providerType: 'openai', model: 'gpt-4o', error: 'MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', status: 502, estimated: true, events: 6,
      usage: { prompt_tokens: expect.any(Number), completion_tokens: expect.any(Number), total_tokens: expect.any(Number) },
      // Each attempt's own id at the provider (the mock's x-request-id): the cut one's, and the answer's in the metrics.
      upstreamRequestId: expect.stringMatching(/^req_/),
    }])
    expect((m as unknown as { upstreamRequestId: string }).upstreamRequestId).toMatch(/^req_/)
    expect((m as unknown as { upstreamRequestId: string }).upstreamRequestId).not.toBe((m.failedAttempts[0] as unknown as { upstreamRequestId: string }).upstreamRequestId)
    const cut = m.failedAttempts[0]!.usage
    expect(cut.completion_tokens).toBeGreaterThan(0)
    // The answering target's own usage (what the mock reported) plus the cut attempt's, in the row and its cost.
    const answer = { prompt_tokens: m.promptTokens - cut.prompt_tokens, completion_tokens: m.completionTokens - cut.completion_tokens }
    expect(answer.completion_tokens).toBe(12) // the mock's default answer
    expect(row).toMatchObject({ provider: 'mock', model: 'gpt-4o-mini', status: 'ok', response: { usage: { prompt_tokens: m.promptTokens, completion_tokens: m.completionTokens } } })
    expect(m.cost.tokens).toMatchObject({ input: m.promptTokens, output: m.completionTokens })
    const catalogue = loadCatalogue()
    const pico = PriceCatalogue.cost(catalogue.lookup('openai', 'gpt-4o'), cut).pico
      + PriceCatalogue.cost(catalogue.lookup('openai', 'gpt-4o-mini'), { ...answer, total_tokens: answer.prompt_tokens + answer.completion_tokens }).pico
    expect(m.cost.pico).toBe(String(pico))
  })

  it('records a non-streaming chat completion: request, response, metrics, times', async () => {
    const t0 = Date.now()
    const res = await post('/v1/chat/completions', { model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'hello' }] }, { 'x-request-id': 'el-json-1' })
    expect(res.status).toBe(200)
    await res.json()
    const row = await rowOf('el-json-1')
    expect(row).toMatchObject({
      request_id: 'el-json-1', provider: 'mock', model: 'gpt-4o', status: 'ok', deployment_id: null, key_id: null,
      // The canonical request, after routing resolved the model (the client's name is metrics.requestedModel).
      request: { model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }] },
      response: { status: 200, usage: { prompt_tokens: 2, completion_tokens: 12 }, error: null },
      metrics: {
        route: 'chat', stream: false, status: 200, details: 'ok', aborted: false, attempts: 1, promptTokens: 2, completionTokens: 12, principal: 'bootstrap',
        requestedModel: 'mock/gpt-4o', failedAttempts: null, fallbackReason: null, upstreamRequestId: expect.stringMatching(/^req_/),
      },
    })
    // Priced by the cost meter (gpt-4o: $2.50 in, $10 out per million tokens): 2 × 2.5 + 12 × 10 = 125 µUSD.
    expect((row['metrics'] as { cost: unknown }).cost).toMatchObject({ usd: 0.000125, pico: '125000000', estimated: false, unknown: false, tokens: { input: 2, output: 12 } })
    expect((row['response'] as { finish_reason: unknown }).finish_reason).toBe('stop')
    // Stored without its null keys; the API puts every key back.
    const stored = (await store.query<{ metrics: Record<string, unknown> }>(`SELECT metrics FROM execution_logs WHERE request_id = 'el-json-1'`)).rows[0]!.metrics
    expect(stored).not.toHaveProperty('fallbackReason')
    expect(stored).toMatchObject({ route: 'chat', attempts: 1 })
    expect(Object.keys(row['metrics'] as object).sort()).toEqual([...METRIC_KEYS].sort())
    const m = row['metrics'] as Record<string, number>
    expect(m['latencyMs']).toBeGreaterThan(0)
    expect(m['upstreamMs']).toBeGreaterThan(0)
    expect(m['overheadMs']).toBeGreaterThanOrEqual(0)
    const created = Date.parse(row['created_at'] as string)
    expect(created).toBeGreaterThanOrEqual(t0 - 5)
    expect(Date.parse(row['completed_at'] as string)).toBeGreaterThanOrEqual(created)
  })

  it('records a stream with its time to first token and usage', async () => {
    const res = await post('/v1/chat/completions', { model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true } }, { 'x-request-id': 'el-stream-1' })
    expect(await res.text()).toContain('[DONE]')
    const row = await rowOf('el-stream-1')
    expect(row).toMatchObject({ status: 'ok', metrics: { stream: true, completionTokens: 12 }, response: { status: 200 } })
    expect((row['metrics'] as { ttftMs: number }).ttftMs).toBeGreaterThan(0)
    // A pass-through stream's finish reason, read from its last events as its usage is.
    expect((row['response'] as { finish_reason: unknown }).finish_reason).toBe('stop')
  })

  it('records each attempt\'s own id at the provider: the failed one\'s in failedAttempts, the answer\'s in the metrics', async () => {
    mock.fault = 'status:500 times:1'
    const res = await post('/v1/chat/completions', { model: 'backup', messages: [{ role: 'user', content: 'hello' }] }, { 'x-request-id': 'el-fallback' })
    expect(res.status).toBe(200)
    await res.json()
    const row = await rowOf('el-fallback')
    const m = row['metrics'] as { attempts: number; upstreamRequestId: string; failedAttempts: { model: string; status: number; upstreamRequestId: string }[] }
    expect(m.failedAttempts).toMatchObject([{ model: 'gpt-4o', status: 500, upstreamRequestId: expect.stringMatching(/^req_/) }])
    expect(m.upstreamRequestId).toMatch(/^req_/)
    expect(m.upstreamRequestId).not.toBe(m.failedAttempts[0]!.upstreamRequestId)
    expect(row).toMatchObject({ model: 'gpt-4o-mini', status: 'ok' })
  })

  it('records a local reply (bad key) before any body was read', async () => {
    const res = await post('/v1/chat/completions', { model: 'mock/gpt-4o', messages: [] }, { authorization: 'Bearer wrong', 'x-request-id': 'el-401' })
    expect(res.status).toBe(401)
    const row = await rowOf('el-401')
    expect(row).toMatchObject({
      status: 'error', provider: '', model: null, request: {},
      response: { status: 401, error: { code: 'MCP_ERR_AUTH_INVALID', details: 'auth.invalid_key' } },
      metrics: { status: 401, errorCode: 'MCP_ERR_AUTH_INVALID', upstreamMs: null, attempts: 0, upstreamRequestId: null },
    })
  })

  it('records an upstream error', async () => {
    mock.fault = 'status:400 code:context_length_exceeded'
    const res = await post('/v1/chat/completions', { model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'x' }] }, { 'x-request-id': 'el-upstream-400' })
    expect(res.status).toBe(400)
    const row = await rowOf('el-upstream-400')
    // The provider's id of the refused request is kept: what its support asks for.
    expect(row).toMatchObject({ status: 'error', provider: 'mock', metrics: { status: 400, upstreamRequestId: expect.stringMatching(/^req_/) }, response: { status: 400 } })
    expect((row['response'] as { error: { code: string } }).error.code).toMatch(/^MCP_ERR_UPSTREAM/)
  })

  it('records a client abort mid-stream as cancelled', async () => {
    const ac = new AbortController()
    const res = await post('/v1/chat/completions', { model: 'slow/gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream: true }, { 'x-request-id': 'el-abort' }, ac.signal)
    const reader = res.body!.getReader()
    await reader.read()
    ac.abort()
    const row = await rowOf('el-abort')
    expect(row).toMatchObject({ status: 'cancelled', provider: 'slow', metrics: { aborted: true, details: 'client_abort' } })
  })

  it('records embeddings with the canonical request', async () => {
    const res = await post('/v1/embeddings', { model: 'mock/text-embedding-3-small', input: 'abc' }, { 'x-request-id': 'el-embed' })
    expect(res.status).toBe(200)
    const row = await rowOf('el-embed')
    expect(row).toMatchObject({ status: 'ok', model: 'text-embedding-3-small', request: { input: 'abc' }, metrics: { route: 'embeddings' } })
  })

  it('caps a large request body at maxRequestBytes', async () => {
    const res = await post('/v1/chat/completions', { model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'z'.repeat(10_000) }] }, { 'x-request-id': 'el-big' })
    expect(res.status).toBe(200)
    const row = await rowOf('el-big')
    expect(row['request']).toMatchObject({ truncated: true, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) as unknown })
    expect((row['request'] as { bytes: number }).bytes).toBeGreaterThan(10_000)
  })

  it('caps at maxRequestBytes the JSON stored: control characters, quotes and long floats count as they are written', async () => {
    // Under the 2,048 cap counted raw; 3.9-11 KB as JSON.
    const bodies = {
      controls: { model: 'mock/gpt-4o', messages: [{ role: 'user', content: '\u0001'.repeat(1_900) }] },
      quotes: { model: 'mock/gpt-4o', messages: [{ role: 'user', content: '"'.repeat(1_900) }] },
      floats: { model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'x' }], logit_bias: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [String(i), -1.2345678901234567])) },
    }
    for (const [name, b] of Object.entries(bodies)) {
      const res = await post('/v1/chat/completions', b, { 'x-request-id': `el-escaped-${name}` })
      expect(res.status, name).toBe(200)
      await res.text()
      const row = await rowOf(`el-escaped-${name}`)
      expect(row['request'], name).toMatchObject({ truncated: true })
      expect(Buffer.byteLength(JSON.stringify(row['request'])), name).toBeLessThanOrEqual(2048)
    }
  })

  it('lists executions newest first, with filters and keyset pagination that visits every row once', async () => {
    for (let i = 0; i < 7; i++) {
      const r = await post('/v1/chat/completions', { model: 'mock/gpt-4o', messages: [{ role: 'user', content: `p${i}` }] }, { 'x-request-id': `el-page-${i}` })
      await r.text()
    }
    await rowOf('el-page-6')
    const ids: string[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const r = await list(`?limit=3&provider=mock&status=ok${cursor ? `&cursor=${cursor}` : ''}`)
      expect(r.status).toBe(200)
      const body = await r.json() as Listed
      for (const d of body.data) {
        expect(d).not.toHaveProperty('request')
        expect(d['provider']).toBe('mock')
        ids.push(d['request_id'] as string)
      }
      cursor = body.next_cursor
      pages++
    } while (cursor !== null && pages < 50)
    expect(new Set(ids).size).toBe(ids.length)
    for (let i = 0; i < 7; i++) expect(ids).toContain(`el-page-${i}`)
    expect(ids.indexOf('el-page-6')).toBeLessThan(ids.indexOf('el-page-0'))
    // Filters that match nothing, and time bounds.
    expect((await (await list('?model=nope')).json() as Listed).data).toEqual([])
    expect((await (await list(`?from=${new Date(Date.now() + 60_000).toISOString()}`)).json() as Listed).data).toEqual([])
    const recent = await (await list(`?from=${new Date(Date.now() - 60_000).toISOString()}&limit=200`)).json() as Listed
    expect(recent.data.length).toBeGreaterThanOrEqual(7)
    expect((await (await list('?status=cancelled')).json() as Listed).data.map((d) => d['request_id'])).toContain('el-abort')
  })

  it('answers 400 for malformed filters and cursors, 404 for unknown or malformed ids, never 500', async () => {
    for (const q of ['?limit=0', '?limit=201', '?limit=abc', '?cursor=!!!', `?cursor=${Buffer.from('["x","y"]').toString('base64url')}`,
      `?cursor=${Buffer.from('["2026-13-45 99:00:00+00","00000000-0000-0000-0000-000000000000"]').toString('base64url')}`,
      '?deployment_id=not-a-uuid', '?key_id=1', '?from=yesterday', `?model=${'m'.repeat(300)}`]) {
      const r = await list(q)
      expect(r.status, q).toBe(400)
      expect((await r.json() as { error: { code: string } }).error.code, q).toBe('MCP_ERR_ADMIN_QUERY_INVALID')
    }
    for (const id of ['00000000-0000-0000-0000-000000000000', 'no-such-request', 'x'.repeat(300), '%E0%A4%A', "'; DROP TABLE execution_logs; --"]) {
      const r = await fetch(`${adminUrl}/api/v1/mcp/executions/${encodeURIComponent(id)}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
      expect(r.status, id).toBe(404)
      expect((await r.json() as { error: { code: string } }).error.code).toBe('MCP_ERR_ADMIN_NOT_FOUND')
    }
    const row = await rowOf('el-json-1')
    const byId = await fetch(`${adminUrl}/api/v1/mcp/executions/${row['id'] as string}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
    expect(await byId.json()).toMatchObject({ request_id: 'el-json-1' })
    expect((await fetch(`${adminUrl}/api/v1/mcp/executions`)).status).toBe(401)
  })

  it('exports the writer metrics on the admin /metrics', async () => {
    const text = await (await fetch(`${adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).text()
    expect(text).toMatch(/mcp_execution_log_rows_total\{outcome="written"\} [1-9]/)
    expect(text).toContain('mcp_execution_log_database_up 1')
  })
})

describe('failMode closed', () => {
  it('refuses requests with 503 while the sink cannot take rows, and serves again once it can', async () => {
    const mock = await startOpenAIMock()
    let accepting = false
    const rows: ExecutionLogRow[] = []
    const sink: ExecutionLogSink = { enqueue: (r) => { rows.push(r) }, accepting: () => accepting }
    const logger = createLogger('warn', new Writable({ write(_c, _e, cb) { cb() } }))
    const gw = await Gateway.create({
      logger,
      services: { executionLog: sink },
      load: () => testSettings({
        plugins: { 'execution-log': { failMode: 'closed' } },
        chains: { default: ['request-id', 'auth', 'execution-log'] },
        providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-x' } },
      }),
    })
    const base = `http://127.0.0.1:${(await gw.listen()).port}`
    try {
      const call = (): Promise<Response> => fetch(`${base}/v1/chat/completions`, {
        method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'hi' }] }),
      })
      const refused = await call()
      expect(refused.status).toBe(503)
      expect(refused.headers.get('retry-after')).toBe('1')
      expect((await refused.json() as { error: { message: string } }).error.message).toMatch(/cannot be recorded/)
      accepting = true
      const ok = await call()
      expect(ok.status).toBe(200)
      await ok.text()
      // Both outcomes were offered to the sink: the refusal is a request too.
      await vi.waitFor(() => expect(rows.map((r) => r.status)).toEqual(['error', 'ok']))
      // metrics and response come as JSON text with their keys in jsonb's order (shorter first, then bytewise),
      // so PostgreSQL's sort of the keys finds them sorted.
      const jsonbOrder = (keys: string[]): string[] => [...keys].sort((a, b) => a.length - b.length || Buffer.compare(Buffer.from(a), Buffer.from(b)))
      for (const r of rows) {
        for (const v of [r.metrics, r.response]) {
          expect(v).toBeInstanceOf(JsonText)
          const keys = Object.keys(JSON.parse((v as JsonText).text) as object)
          expect(keys).toEqual(jsonbOrder(keys))
        }
        expect(Object.keys(JSON.parse((r.metrics as JsonText).text) as object)).toContain('latencyMs')
      }
    } finally {
      await gw.shutdown(1000)
      await mock.close()
    }
  })
})

