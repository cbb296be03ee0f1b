/**
 * GET /v1/models lists what the config can reach: every provider's declared models as `<provider>/<model>`, and
 * every alias by its own name (what clients call: `smart`), read with the official openai SDK.
 */
import { createHash } from 'node:crypto'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { startAnthropicMock, type AnthropicMock } from '../helpers/anthropic-mock.ts'
import { startGeminiMock, type GeminiMock } from '../helpers/gemini-mock.ts'
import { startOllamaMock, type OllamaMock } from '../helpers/ollama-mock.ts'
import { generateKey, parseKey, type KeyResolver } from '../../plugins/auth/api-key.ts'
import { UNRESTRICTED } from '../../plugins/auth/scopes.ts'

describe('GET /v1/models', () => {
  let mock: OpenAIMock
  let gw: TestGateway
  beforeAll(async () => {
    mock = await startOpenAIMock()
    gw = await startGateway({
      providers: { oa: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-models-list-0001', models: ['gpt-4o', 'gpt-4o-mini'] } },
      models: { smart: { targets: [{ provider: 'oa', model: 'gpt-4o' }, { provider: 'oa', model: 'gpt-4o-mini' }] } },
    })
  })
  afterAll(async () => { await gw?.close(); await mock?.close() })

  it('lists the declared models and the aliases, each callable by its id', async () => {
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: ADMIN_KEY })
    const ids: string[] = []
    for await (const m of client.models.list()) ids.push(m.id)
    expect(ids.sort()).toEqual(['oa/gpt-4o', 'oa/gpt-4o-mini', 'smart'])
    const r = await client.chat.completions.create({ model: 'smart', messages: [{ role: 'user', content: 'hi' }] })
    expect(r.choices[0]!.message.content).toBeTruthy()
  })

  it('GET /v1/models/{id}: the SDK\'s models.retrieve gets a listed model (the id\'s slash percent-encoded or not); another is a 404 (was a 404 for every id)', async () => {
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: ADMIN_KEY, maxRetries: 0 })
    expect(await client.models.retrieve('oa/gpt-4o')).toMatchObject({ id: 'oa/gpt-4o', object: 'model', owned_by: 'oa' })
    expect(await client.models.retrieve('smart')).toMatchObject({ id: 'smart', object: 'model', owned_by: 'mcp' })
    const raw = await fetch(`${gw.url}/v1/models/oa/gpt-4o-mini`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
    expect([raw.status, (await raw.json() as { id: string }).id]).toEqual([200, 'oa/gpt-4o-mini'])
    const e = await client.models.retrieve('oa/gpt-5-nope').then(() => undefined, (err: unknown) => err)
    expect(e).toBeInstanceOf(OpenAI.NotFoundError)
    expect(e).toMatchObject({ code: 'MCP_ERR_ROUTE_MODEL_NOT_FOUND', param: 'model' })
    // Only GET (and HEAD) is served there; the key is still required.
    const post = await fetch(`${gw.url}/v1/models/oa/gpt-4o`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}` } })
    expect([post.status, post.headers.get('allow')]).toEqual([405, 'GET, HEAD'])
    expect((await fetch(`${gw.url}/v1/models/oa/gpt-4o`, { headers: { authorization: 'Bearer wrong-key-0000000000000000000000' } })).status).toBe(401)
  })

  it('Anthropic clients (anthropic-version) get Anthropic\'s list shape, paginated, and models.retrieve; errors in Anthropic\'s shape', async () => {
    const anthropic = new Anthropic({ baseURL: gw.url, apiKey: ADMIN_KEY, maxRetries: 0 })
    const ids: string[] = []
    for await (const m of anthropic.models.list({ limit: 2 })) {
      expect(m).toMatchObject({ type: 'model', display_name: m.id })
      expect(Number.isNaN(Date.parse(m.created_at))).toBe(false)
      ids.push(m.id)
    }
    expect(ids.sort()).toEqual(['oa/gpt-4o', 'oa/gpt-4o-mini', 'smart'])
    const first = await anthropic.models.list({ limit: 2 })
    expect([first.data.length, first.has_more, first.first_id, first.last_id]).toEqual([2, true, first.data[0]!.id, first.data[1]!.id])
    const back = await anthropic.models.list({ before_id: first.data[1]!.id })
    expect(back.data.map((m) => m.id)).toEqual([first.data[0]!.id])
    expect(await anthropic.models.retrieve('oa/gpt-4o')).toMatchObject({ type: 'model', id: 'oa/gpt-4o' })
    const missing = await anthropic.models.retrieve('nope').then(() => undefined, (err: unknown) => err)
    expect(missing).toBeInstanceOf(Anthropic.NotFoundError)
    expect((missing as InstanceType<typeof Anthropic.NotFoundError>).error).toMatchObject({ type: 'error', error: { message: expect.stringContaining("'nope'") } })
    const badLimit = await anthropic.models.list({ limit: 0 }).then(() => undefined, (err: unknown) => err)
    expect(badLimit).toBeInstanceOf(Anthropic.BadRequestError)
    expect(String((badLimit as Error).message)).toContain('limit')
    const unknownAfter = await anthropic.models.list({ after_id: 'nope' }).then(() => undefined, (err: unknown) => err)
    expect(unknownAfter).toBeInstanceOf(Anthropic.BadRequestError)
    const unauth = await new Anthropic({ baseURL: gw.url, apiKey: 'wrong-key-0000000000000000000000', maxRetries: 0 }).models.list().then(() => undefined, (err: unknown) => err)
    expect(unauth).toBeInstanceOf(Anthropic.AuthenticationError)
    expect((unauth as InstanceType<typeof Anthropic.AuthenticationError>).error).toMatchObject({ type: 'error', error: { type: 'authentication_error' } })
  })
})

describe('GET /v1/models: providers without `models` are listed from their own list endpoints', () => {
  let oa: OpenAIMock
  let compat: OpenAIMock
  let dead: OpenAIMock
  let anth: AnthropicMock
  let gem: GeminiMock
  let oll: OllamaMock
  let gw: TestGateway
  const restricted = generateKey()
  const listPaths = (m: { requests: { method: string; path: string }[] }, part: string): string[] =>
    m.requests.filter((r) => r.method === 'GET' && r.path.includes(part)).map((r) => r.path)
  beforeAll(async () => {
    ;[oa, compat, dead, anth, gem, oll] = await Promise.all([
      startOpenAIMock(), startOpenAIMock({ limits: false }), startOpenAIMock(),
      startAnthropicMock({ maxPageSize: 2 }),
      startGeminiMock({ maxPageSize: 2, models: ['gemini-2.5-flash', 'gemini-2.5-pro', 'aqa', 'gemini-embedding-001'] }),
      startOllamaMock({ models: ['llama3.2:latest', 'qwen3:8b'] }),
    ])
    dead.fault = 'hang'
    const { prefix, secret } = parseKey(restricted.key)!
    const keys: KeyResolver = {
      lookup: (p) => (p !== prefix ? undefined : {
        id: '22222222-2222-4222-8222-222222222222', prefix, role: 'invoker', team: 'blue', limits: {}, budgets: {}, expiresAt: null,
        scopes: { ...UNRESTRICTED, models: ['anth/*', 'oa/gpt-4o'], aliases: ['smart'] },
        hash: createHash('sha256').update(secret).digest(),
      }),
      used: () => {},
    }
    gw = await startGateway({
      modelList: { timeoutMs: 500 },
      providers: {
        oa: { type: 'openai', baseUrl: oa.url, apiKey: 'sk-discover-oa-0001' },
        compat: { type: 'openai-compatible', baseUrl: compat.url, apiKey: 'sk-discover-compat-0001' },
        dead: { type: 'openai', baseUrl: dead.url, apiKey: 'sk-discover-dead-0001' },
        anth: { type: 'anthropic', baseUrl: anth.url, apiKey: 'sk-ant-discover-0001' },
        gem: { type: 'google', baseUrl: gem.url, apiKey: 'AIza-discover-0001' },
        oll: { type: 'ollama', baseUrl: oll.url },
      },
      models: { smart: { targets: [{ provider: 'oa', model: 'gpt-4o' }] }, other: { targets: [{ provider: 'gem', model: 'gemini-2.5-pro' }] } },
    }, { services: { keys } })
  })
  afterAll(async () => { await gw?.close(); await Promise.all([oa, compat, dead, anth, gem, oll].map((m) => m?.close())) })

  async function list(key = ADMIN_KEY): Promise<string[]> {
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 })
    const ids: string[] = []
    for await (const m of client.models.list()) ids.push(m.id)
    return ids.sort()
  }

  it('lists all five types from their mocks, pages followed, a hung provider left out within the timeout', async () => {
    const t0 = Date.now()
    const ids = await list()
    expect(Date.now() - t0).toBeLessThan(2000)
    expect(ids).toEqual([
      'anth/claude-haiku-4-5-20251001', 'anth/claude-opus-4-1-20250805', 'anth/claude-sonnet-4-5-20250929',
      'compat/gpt-4.1', 'compat/gpt-4o', 'compat/gpt-4o-mini', 'compat/o3-mini', 'compat/text-embedding-3-small',
      'gem/gemini-2.5-flash', 'gem/gemini-2.5-pro', 'gem/gemini-embedding-001',
      'oa/gpt-4.1', 'oa/gpt-4o', 'oa/gpt-4o-mini', 'oa/o3-mini', 'oa/text-embedding-3-small',
      'oll/llama3.2:latest', 'oll/qwen3:8b',
      'other', 'smart',
    ])
    // Anthropic: two pages (after_id = the first page's last_id); Gemini: two pages (pageToken).
    expect(listPaths(anth, '/v1/models')).toEqual(['/v1/models?limit=1000', '/v1/models?limit=1000&after_id=claude-haiku-4-5-20251001'])
    const gemPaths = listPaths(gem, '/v1beta/models')
    expect(gemPaths).toHaveLength(2)
    expect(gemPaths[1]).toMatch(/pageToken=/)
    expect(gw.logs.some((l) => l['msg']?.toString().startsWith('model discovery failed') && l['provider'] === 'dead')).toBe(true)
    expect(gw.logText()).not.toContain('sk-discover')
    // The degraded mode is counted.
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).text()
    expect(metrics).toContain('mcp_model_discovery_failures_total{provider="dead"} 1')
    expect(metrics).not.toMatch(/mcp_model_discovery_failures_total\{provider="(oa|anth|gem|oll|compat)"\}/)
    // Each discovered model is callable by its id.
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: ADMIN_KEY, maxRetries: 0 })
    const r = await client.chat.completions.create({ model: 'oll/qwen3:8b', messages: [{ role: 'user', content: 'hi' }] })
    expect(r.choices[0]!.message.content).toBeTruthy()
  })

  it('caches each provider list: within the TTL the mocks are not asked again, the failed one not at once either', async () => {
    const before = [oa, compat, dead].map((m) => listPaths(m, '/models').length)
    const [a, g, o] = [listPaths(anth, '/v1/models').length, listPaths(gem, '/models').length, listPaths(oll, '/api/tags').length]
    // The first listing asked each provider once (Anthropic and Gemini: two pages).
    expect([...before, a, g, o]).toEqual([1, 1, 1, 2, 2, 1])
    const t0 = Date.now()
    await list()
    await list()
    expect(Date.now() - t0).toBeLessThan(400)
    expect([oa, compat, dead].map((m) => listPaths(m, '/models').length)).toEqual(before)
    expect([listPaths(anth, '/v1/models').length, listPaths(gem, '/models').length, listPaths(oll, '/api/tags').length]).toEqual([a, g, o])
  })

  it('a restricted key sees only the models and aliases it may call', async () => {
    expect(await list(restricted.key)).toEqual([
      'anth/claude-haiku-4-5-20251001', 'anth/claude-opus-4-1-20250805', 'anth/claude-sonnet-4-5-20250929', 'oa/gpt-4o', 'smart',
    ])
  })
})

describe('GET /v1/models: a key scoped to bare model names (`gpt-4o`)', () => {
  let mock: OpenAIMock
  let gw: TestGateway
  const bare = generateKey()
  beforeAll(async () => {
    mock = await startOpenAIMock()
    const { prefix, secret } = parseKey(bare.key)!
    const keys: KeyResolver = {
      lookup: (p) => (p !== prefix ? undefined : {
        id: '33333333-3333-4333-8333-333333333333', prefix, role: 'invoker', team: 'blue', limits: {}, budgets: {}, expiresAt: null,
        scopes: { ...UNRESTRICTED, models: ['gpt-4o', 'gpt-4o-mini'] },
        hash: createHash('sha256').update(secret).digest(),
      }),
      used: () => {},
    }
    gw = await startGateway({
      providers: {
        oa: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-models-bare-0001', models: ['gpt-4o', 'gpt-4.1'] },
        // Also declares gpt-4o, but the bare name goes to `oa` (first listed wins): only `oa`'s is callable bare.
        ob: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-models-bare-0002', models: ['gpt-4o', 'gpt-4o-mini'] },
      },
    }, { services: { keys } })
  })
  afterAll(async () => { await gw?.close(); await mock?.close() })

  it('lists the bare names the key may call, and each listed id is callable while the prefixed one is refused', async () => {
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: bare.key, maxRetries: 0 })
    const ids: string[] = []
    for await (const m of client.models.list()) ids.push(m.id)
    expect(ids.sort()).toEqual(['gpt-4o', 'gpt-4o-mini'])
    for (const id of ids) {
      const r = await client.chat.completions.create({ model: id, messages: [{ role: 'user', content: 'hi' }] })
      expect(r.choices[0]!.message.content).toBeTruthy()
    }
    // The same rule judges the prefixed name: out of the key's scope, so it is not listed.
    await expect(client.chat.completions.create({ model: 'oa/gpt-4o', messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({ status: 403 })
  })

  it('models.retrieve answers what the key may call and a 404 for the rest, as the list shows', async () => {
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: bare.key, maxRetries: 0 })
    expect(await client.models.retrieve('gpt-4o')).toMatchObject({ id: 'gpt-4o', owned_by: 'oa' })
    for (const id of ['oa/gpt-4o', 'gpt-4.1']) await expect(client.models.retrieve(id)).rejects.toBeInstanceOf(OpenAI.NotFoundError)
  })
})
