import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { Pool } from 'undici'
import type { GatewayError } from '../../gateway/errors.ts'
import type { ChatChunk, ChatRequest, ExecuteParams, ProviderAdapter, ToolDefinition } from '../types.ts'
import { startAzureMock, type AzureMock } from '../../test/helpers/azure-mock.ts'
import { azureOpenAIFactory, azureTranslations } from './adapter.ts'
import { ChunkAggregator } from '../shared/aggregate.ts'
import { toAzureError } from './errors.ts'
import { azurePath, azureRoute, toAzureChat } from './request.ts'
import type { AzureConfig } from './config.ts'

const KEY = 'azure-test-key'
const WEATHER: ToolDefinition = { type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }

function config(extra: Record<string, unknown>): AzureConfig {
  const cfg = { type: 'azure-openai', baseUrl: 'https://res.openai.azure.com', apiKey: 'k', ...extra }
  expect(azureOpenAIFactory.configErrors(cfg)).toEqual([])
  return cfg as unknown as AzureConfig
}

describe('azure-openai config and URLs', () => {
  it('validates the config', () => {
    expect(azureOpenAIFactory.configErrors({ type: 'azure-openai', baseUrl: 'https://r.openai.azure.com' })).toEqual(['apiKey: is required'])
    expect(azureOpenAIFactory.configErrors({ type: 'azure-openai', baseUrl: 'https://r.openai.azure.com/openai/deployments/x', apiKey: 'k' })[0]).toContain('without /openai')
    expect(azureOpenAIFactory.configErrors({ type: 'azure-openai', baseUrl: 'https://r.openai.azure.com', apiKey: 'k', apiMode: 'v2' })[0]).toContain('apiMode')
    expect(azureOpenAIFactory.configErrors({ type: 'azure-openai', baseUrl: 'https://r.openai.azure.com', apiKey: 'k', deployments: { a: 'x/../y' } })[0]).toContain('deployments.a')
    const cfg = config({})
    expect(cfg.apiMode).toBe('deployments')
    expect(cfg.deployments).toEqual({})
  })

  it('builds deployments and v1 paths', () => {
    const dep = azureRoute(config({ deployments: { 'gpt-4o': 'prod-4o' } }), '')
    expect(azurePath(dep, 'chat', 'gpt-4o')).toBe('/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21')
    expect(azurePath(dep, 'embeddings', 'emb')).toBe('/openai/deployments/emb/embeddings?api-version=2024-10-21')
    expect(azurePath(azureRoute(config({ apiVersion: '2025-04-01-preview' }), '/gw'), 'chat', 'a b')).toBe('/gw/openai/deployments/a%20b/chat/completions?api-version=2025-04-01-preview')
    const v1 = azureRoute(config({ apiMode: 'v1', deployments: { 'gpt-4o': 'prod-4o' } }), '')
    expect(azurePath(v1, 'chat', 'gpt-4o')).toBe('/openai/v1/chat/completions')
    expect(azurePath(azureRoute(config({ apiMode: 'v1', apiVersion: 'preview' }), ''), 'embeddings', 'e')).toBe('/openai/v1/embeddings?api-version=preview')
    const req: ChatRequest = { model: 'client-name', messages: [{ role: 'user', content: 'hi' }], temperature: 0.5 }
    expect(toAzureChat(req, 'gpt-4o', false, v1).body).toEqual({ model: 'prod-4o', messages: req.messages, temperature: 0.5 })
    expect(toAzureChat(req, 'gpt-4o', true, dep).body).toMatchObject({ model: 'gpt-4o', stream: true })
  })

  it('sends max_tokens as max_completion_tokens to reasoning models (o-series, gpt-5), which refuse max_tokens, and max_tokens to the rest', () => {
    const dep = azureRoute(config({ deployments: { reasoner: 'o3-mini-prod', 'gpt-4o': 'prod-4o' } }), '')
    const v1 = azureRoute(config({ apiMode: 'v1', deployments: { smart: 'gpt-5-mini' } }), '')
    const req: ChatRequest = { model: 'x', messages: [{ role: 'user', content: 'hi' }], max_tokens: 100 }
    // By the model name or by the deployment's name.
    for (const [model, route] of [['o3', dep], ['o4-mini', dep], ['o1-2024-12-17', dep], ['gpt-5', dep], ['GPT-5.1-chat', dep], ['reasoner', dep], ['smart', v1]] as const) {
      const body = toAzureChat(req, model, false, route).body as Record<string, unknown>
      expect(body, model).toMatchObject({ max_completion_tokens: 100 })
      expect(body, model).not.toHaveProperty('max_tokens')
    }
    for (const model of ['gpt-4o', 'gpt-4.1', 'gpt-35-turbo', 'omni-moderation', 'o-custom']) {
      const body = toAzureChat(req, model, false, dep).body as Record<string, unknown>
      expect(body, model).toMatchObject({ max_tokens: 100 })
      expect(body, model).not.toHaveProperty('max_completion_tokens')
    }
    // A client's own max_completion_tokens is kept as sent.
    expect(toAzureChat({ ...req, max_completion_tokens: 50 }, 'o3', false, dep).body).toMatchObject({ max_tokens: 100, max_completion_tokens: 50 })
  })

  it('a model named like an Object.prototype member is its own deployment, not the inherited member', () => {
    const dep = azureRoute(config({ deployments: { 'gpt-4o': 'prod-4o' } }), '')
    expect(azurePath(dep, 'chat', 'constructor')).toBe('/openai/deployments/constructor/chat/completions?api-version=2024-10-21')
    expect(azurePath(dep, 'chat', 'toString')).toBe('/openai/deployments/toString/chat/completions?api-version=2024-10-21')
    const v1 = azureRoute(config({ apiMode: 'v1' }), '')
    expect(toAzureChat({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }, 'hasOwnProperty', false, v1).body).toMatchObject({ model: 'hasOwnProperty' })
  })

  it('maps content-filter errors, keeping the code and naming the categories', () => {
    const body = JSON.stringify({
      error: {
        message: 'The response was filtered', type: null, param: 'prompt', code: 'content_filter', status: 400,
        innererror: { code: 'ResponsibleAIPolicyViolation', content_filter_result: { hate: { filtered: true, severity: 'high' }, sexual: { filtered: false, severity: 'safe' }, jailbreak: { filtered: true, detected: true } } },
      },
    })
    const e = toAzureError('az', 400, body, {})
    expect(e.status).toBe(400)
    expect(e.providerCode).toBe('content_filter')
    expect(e.param).toBe('prompt')
    expect(e.message).toContain('hate, jailbreak')
    expect(e.message).not.toContain('sexual')
    const other = toAzureError('az', 404, '{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}', {})
    expect(other.providerCode).toBe('DeploymentNotFound')
    expect(toAzureError('az', 401, '{"statusCode":401,"message":"Unauthorized. Access token is missing"}', {}).message).toContain('Access token is missing')
  })

  it('offers pass-through with Azure paths (v1 only when no model is renamed)', () => {
    const pool = new Pool('https://res.openai.azure.com')
    const deps = { dispatcherFor: () => pool }
    const a = azureOpenAIFactory.create('az', config({ deployments: { 'gpt-4o': 'prod-4o' } }) as never, deps)
    expect(a.passthrough?.path('chat', 'gpt-4o')).toBe('/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21')
    expect(a.passthrough?.headers['api-key']).toBe('k')
    expect(a.passthrough?.headers['authorization']).toBeUndefined()
    expect(a.passthrough?.origin).toBe('https://res.openai.azure.com')
    expect(azureOpenAIFactory.create('az', config({ apiMode: 'v1' }) as never, deps).passthrough?.path('chat', 'x')).toBe('/openai/v1/chat/completions')
    expect(azureOpenAIFactory.create('az', config({ apiMode: 'v1', deployments: { a: 'b' } }) as never, deps).passthrough).toBeUndefined()
    void pool.close()
  })
})

describe('azure-openai asynchronous filter stream', () => {
  // With the Asynchronous Filter, Azure interleaves annotation messages whose choice has content_filter_offsets and
  // content_filter_results but no delta; a policy violation ends the stream with such a choice and finish_reason content_filter.
  const offsets = { check_offset: 0, start_offset: 0, end_offset: 2 }
  const results = { hate: { filtered: false, severity: 'safe' } }
  const chunk = (choice: object) => ({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices: [choice] })
  const annotation = (finish: string | null) => ({ id: '', object: '', created: 0, model: '', choices: [{ index: 0, finish_reason: finish, content_filter_offsets: offsets, content_filter_results: results }] })
  function run(evs: object[]): { chunks: ChatChunk[]; agg: ChunkAggregator } {
    const m = azureTranslations('az', azureRoute(config({}), '')).chat.createStreamMapper('gpt-4o', 'req')
    const chunks = evs.flatMap((e) => m.push({ event: 'message', data: JSON.stringify(e) }) ?? [])
    m.end()
    const agg = new ChunkAggregator()
    for (const c of chunks) agg.add(c)
    return { chunks, agg }
  }

  it('annotation messages without delta are left out; the answer reassembles', () => {
    const { chunks, agg } = run([
      { id: '', object: '', created: 0, model: '', choices: [], prompt_filter_results: [{ prompt_index: 0, content_filter_results: results }] },
      chunk({ index: 0, delta: { role: 'assistant', content: 'Hi' }, finish_reason: null }),
      annotation(null),
      chunk({ index: 0, delta: {}, finish_reason: 'stop' }),
      annotation(null),
    ])
    expect(chunks).toHaveLength(2)
    expect(chunks.every((c) => c.choices.every((x) => x.delta !== undefined))).toBe(true)
    expect(agg.toResponse().choices[0]).toMatchObject({ message: { content: 'Hi' }, finish_reason: 'stop' })
  })

  it('a content_filter finish without delta ends the answer', () => {
    const { chunks, agg } = run([
      chunk({ index: 0, delta: { role: 'assistant', content: 'Part' }, finish_reason: null }),
      annotation('content_filter'),
    ])
    expect(chunks[1]?.choices[0]).toMatchObject({ delta: {}, finish_reason: 'content_filter' })
    expect(agg.toResponse().choices[0]).toMatchObject({ message: { content: 'Part' }, finish_reason: 'content_filter' })
  })
})

describe('azure-openai adapter against the mock', () => {
  let mock: AzureMock
  const pools = new Map<string, Pool>()
  const deps = {
    dispatcherFor(origin: string): Pool {
      let p = pools.get(origin)
      if (!p) { p = new Pool(origin, { connections: 4 }); pools.set(origin, p) }
      return p
    },
  }
  const params = (model = 'gpt-4o'): ExecuteParams => ({ model, signal: new AbortController().signal, deadline: Date.now() + 10_000, requestId: 'req-az' })

  function adapter(extra: Record<string, unknown> = {}): ProviderAdapter {
    const cfg = { type: 'azure-openai', baseUrl: mock.url, apiKey: KEY, ...extra }
    expect(azureOpenAIFactory.configErrors(cfg)).toEqual([])
    return azureOpenAIFactory.create('az', cfg, deps)
  }

  async function drain(a: ProviderAdapter, req: ChatRequest, p = params()): Promise<{ chunks: ChatChunk[]; text: string; err?: GatewayError; stream: Awaited<ReturnType<ProviderAdapter['stream']>> }> {
    const stream = await a.stream(req, p)
    const chunks: ChatChunk[] = []
    let err: GatewayError | undefined
    try { for await (const c of stream) chunks.push(c) } catch (e) { err = e as GatewayError }
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')
    return err ? { chunks, text, err, stream } : { chunks, text, stream }
  }

  beforeAll(async () => { mock = await startAzureMock({ apiKey: KEY }) })
  beforeEach(() => mock.reset())
  afterAll(async () => {
    await Promise.all([...pools.values()].map((p) => p.close()))
    await mock.close()
  })

  it('executes on the deployments surface with api-key and api-version', async () => {
    const r = await adapter({ deployments: { 'gpt-4o': 'prod-4o' } }).execute({ model: 'az/gpt-4o', messages: [{ role: 'user', content: 'echo hi azure' }] }, params())
    expect(r.choices[0]?.message.content).toBe('echo: hi azure')
    expect(r.usage?.total_tokens).toBeGreaterThan(0)
    const rec = mock.requests[0]!
    expect(rec.path).toBe('/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21')
    expect(rec.headers['api-key']).toBe(KEY)
    expect(rec.headers['authorization']).toBeUndefined()
    expect(rec.body.model).toBe('gpt-4o')
  })

  it('executes on the v1 surface with the deployment as model', async () => {
    const r = await adapter({ apiMode: 'v1', deployments: { 'gpt-4o': 'prod-4o' } }).execute({ model: 'x', messages: [{ role: 'user', content: 'echo v1' }] }, params())
    expect(r.choices[0]?.message.content).toBe('echo: v1')
    expect(mock.requests[0]).toMatchObject({ path: '/openai/v1/chat/completions', body: { model: 'prod-4o' } })
  })

  it('streams text with usage (Azure prompt_filter_results event dropped)', async () => {
    const { text, err, stream, chunks } = await drain(adapter(), { model: 'x', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'echo streaming from azure' }] })
    expect(err).toBeUndefined()
    expect(text).toBe('echo: streaming from azure')
    expect(chunks[0]?.choices[0]?.delta.role).toBe('assistant')
    expect(chunks.filter((c) => c.choices.length === 0).map((c) => c.usage?.total_tokens)).toEqual([expect.any(Number)])
    const final = await stream.final
    expect(final.choices[0]?.finish_reason).toBe('stop')
    expect(final.usage?.completion_tokens).toBeGreaterThan(0)
  })

  it('streams tool calls', async () => {
    const { stream, err } = await drain(adapter({ apiMode: 'v1' }), { model: 'x', tools: [WEATHER], messages: [{ role: 'user', content: 'call tool please' }] })
    expect(err).toBeUndefined()
    const final = await stream.final
    expect(final.choices[0]?.finish_reason).toBe('tool_calls')
    expect(final.choices[0]?.message.tool_calls?.[0]?.function).toEqual({ name: 'get_weather', arguments: '{"city": "Paris"}' })
  })

  it('turns a content-filter rejection into a 400 keeping code content_filter', async () => {
    const a = adapter()
    const err = await a.execute({ model: 'x', messages: [{ role: 'user', content: 'this gets filtered' }] }, params()).catch((e: GatewayError) => e)
    expect(err).toMatchObject({ code: 'MCP_ERR_UPSTREAM_ERROR', status: 400, providerCode: 'content_filter', param: 'prompt' })
    expect((err as GatewayError).message).toContain('violence')
    await expect(a.stream({ model: 'x', messages: [{ role: 'user', content: 'filtered again' }] }, params())).rejects.toMatchObject({ providerCode: 'content_filter' })
    expect(a.getMetrics().errorsByCode).toEqual({ content_filter: 2 })
  })

  it('passes a content_filter finish reason through', async () => {
    const a = adapter()
    const r = await a.execute({ model: 'x', messages: [{ role: 'user', content: 'write unsafe output' }] }, params())
    expect(r.choices[0]?.finish_reason).toBe('content_filter')
    const s = await drain(a, { model: 'x', messages: [{ role: 'user', content: 'unsafe output' }] })
    expect(s.err).toBeUndefined()
    expect(s.text).toBe('Partial')
    expect((await s.stream.final).choices[0]?.finish_reason).toBe('content_filter')
  })

  it('maps auth, deployment and fault errors', async () => {
    await expect(adapter({ apiKey: 'wrong' }).execute({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }, params())).rejects.toMatchObject({ status: 401 })
    await expect(adapter().execute({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }, params('missing-dep'))).rejects.toMatchObject({ status: 404, providerCode: 'DeploymentNotFound' })
    mock.fault = 'status:429,retryAfter:3,times:1'
    const e = await adapter().execute({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }, params()).catch((x: GatewayError) => x)
    expect(e).toMatchObject({ status: 429, providerCode: 'rate_limit_exceeded', headers: { 'retry-after': '3' } })
  })

  it('passes on retry-after-ms with or without Retry-After (Azure sends both on 429)', async () => {
    mock.fault = 'status:429,retryAfter:2,retryAfterMs:1500,times:1'
    const both = await adapter().execute({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }, params()).catch((x: GatewayError) => x)
    expect(both).toMatchObject({ status: 429, headers: { 'retry-after': '2', 'retry-after-ms': '1500' } })
    mock.fault = 'retryAfterMs:250,times:1'
    const msOnly = await adapter().stream({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }, params()).catch((x: GatewayError) => x)
    expect(msOnly).toMatchObject({ status: 429, headers: { 'retry-after-ms': '250' } })
  })

  it('a retry-after-ms without Retry-After also gives Retry-After in whole seconds, rounded up, for clients that read only it', async () => {
    mock.fault = 'retryAfterMs:1200,times:1'
    const e = await adapter().execute({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }, params()).catch((x: GatewayError) => x)
    expect(e).toMatchObject({ status: 429, headers: { 'retry-after': '2', 'retry-after-ms': '1200' } })
  })

  it('a cut stream is interrupted', async () => {
    mock.fault = 'cutAfter:2'
    const { err, stream } = await drain(adapter(), { model: 'x', messages: [{ role: 'user', content: 'hi' }] })
    expect(err?.code).toBe('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
    await expect(stream.final).rejects.toMatchObject({ code: 'MCP_ERR_UPSTREAM_STREAM_INTERRUPTED' })
  })

  it('embeds on both surfaces', async () => {
    const e1 = await adapter({ deployments: { emb: 'text-embedding-3-small' } }).embed!({ model: 'x', input: ['a', 'b'] }, params('emb'))
    expect(e1.data).toHaveLength(2)
    const e2 = await adapter({ apiMode: 'v1' }).embed!({ model: 'x', input: 'a' }, params('text-embedding-3-small'))
    expect(e2.data).toHaveLength(1)
    expect(mock.requests.map((r) => r.path)).toEqual(['/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21', '/openai/v1/embeddings'])
  })

  it('health checks the models list on either surface', async () => {
    expect((await adapter().healthCheck()).ok).toBe(true)
    expect((await adapter({ apiMode: 'v1' }).healthCheck()).ok).toBe(true)
    expect((await adapter({ apiKey: 'wrong' }).healthCheck()).ok).toBe(false)
    expect(mock.requests.map((r) => r.path)).toEqual(['/openai/models?api-version=2024-10-21', '/openai/v1/models', '/openai/models?api-version=2024-10-21'])
  })
})
