/**
 * The plugin pipeline: hook order and short-circuit through the real server (test plugins injected
 * with GatewayOptions.plugins), and plugin config compilation (validation, defaults, freezing,
 * unknown plugins, io plugins, instance carry-over) through compilePipeline with fake deps.
 */
import { TargetRegistry } from '../../gateway/routing/target-state.ts'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { pino } from 'pino'
import { GatewayError } from '../../gateway/errors.ts'
import { Metrics } from '../../gateway/metrics.ts'
import { compilePipeline, type CompileDeps } from '../../gateway/pipeline/compile.ts'
import type { Pipeline } from '../../gateway/pipeline/pipeline.ts'
import type { Outcome, PluginFactory, PluginInstance } from '../../gateway/pipeline/types.ts'
import { parseSettings, type Settings } from '../../gateway/settings.ts'
import { pluginFactory } from '../../plugins/index.ts'
import { adapterFactory } from '../../providers/registry.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { startGatewayWithPlugins } from '../helpers/plugin-gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'

// ---------------------------------------------------------------------------------------------
// Recording test plugins
// ---------------------------------------------------------------------------------------------

const events: string[] = []
const outcomes: { plugin: string; outcome: Outcome }[] = []

interface RecConfig { denyAt: 'none' | 'headers' | 'body' }

function recorder(name: string): PluginFactory<RecConfig> {
  return {
    name,
    sideEffects: 'none',
    configSchema: { type: 'object', additionalProperties: false, properties: { denyAt: { enum: ['none', 'headers', 'body'], default: 'none' } } },
    create(config) {
      const deny = { code: 'MCP_ERR_AUTH_FORBIDDEN', params: { action: `pass ${name}` }, details: `test.${name}_denied` } as const
      return {
        onRequestHeaders() { events.push(`${name}:headers`); return config.denyAt === 'headers' ? deny : undefined },
        onRequestBody() { events.push(`${name}:body`); return config.denyAt === 'body' ? deny : undefined },
        interceptUpstream(next) {
          return async (ctx) => {
            events.push(`${name}:open>`)
            const r = await next(ctx)
            events.push(`${name}:open<`)
            return r
          }
        },
        onResponseHeaders(ctx) { events.push(`${name}:resHeaders`); ctx.responseHeaders[`x-${name}`] = '1' },
        onResponseChunk() { events.push(`${name}:chunk`) },
        onComplete(_ctx, outcome) { events.push(`${name}:complete`); outcomes.push({ plugin: name, outcome }) },
      }
    },
  }
}

const RECORDERS = [recorder('rec-a'), recorder('rec-b'), recorder('rec-c')]

describe('pipeline hooks through the real server', () => {
  let mock: OpenAIMock
  let tg: TestGateway

  const config = (plugins: Record<string, unknown> = {}): Record<string, unknown> => ({
    providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-pipeline-test-key' } },
    chains: { rec: ['rec-a', 'rec-b', 'rec-c'] },
    routes: { chat: { chain: 'rec' } },
    plugins,
  })

  async function reloadWith(plugins: Record<string, unknown>): Promise<void> {
    tg.setConfig(config(plugins))
    const r = await tg.gw.reload('test')
    expect(r.ok, r.error).toBe(true)
  }

  async function chat(body: Record<string, unknown> = {}): Promise<Response> {
    return fetch(`${tg.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'hi' }], ...body }),
    })
  }

  /** onComplete runs on the server's 'close' event, which may come after the client saw the end. */
  async function completed(n = 3): Promise<void> {
    await vi.waitFor(() => expect(outcomes.length).toBe(n), { timeout: 2000, interval: 5 })
  }

  beforeAll(async () => {
    mock = await startOpenAIMock()
    tg = await startGatewayWithPlugins({}, RECORDERS)
    await reloadWith({})
  })
  afterAll(async () => {
    await tg?.close()
    await mock?.close()
  })
  afterEach(async () => {
    events.length = 0
    outcomes.length = 0
    mock.reset()
  })

  it('decode hooks run in config order, encode hooks in reverse, the first listed interceptor is outermost', async () => {
    const res = await chat()
    expect(res.status).toBe(200)
    await res.json()
    await completed()
    expect(events).toEqual([
      'rec-a:headers', 'rec-b:headers', 'rec-c:headers',
      'rec-a:body', 'rec-b:body', 'rec-c:body',
      'rec-a:open>', 'rec-b:open>', 'rec-c:open>',
      'rec-c:open<', 'rec-b:open<', 'rec-a:open<',
      'rec-c:resHeaders', 'rec-b:resHeaders', 'rec-a:resHeaders',
      'rec-c:complete', 'rec-b:complete', 'rec-a:complete',
    ])
    expect(res.headers.get('x-rec-a')).toBe('1')
    expect(mock.requests).toHaveLength(1)
    for (const o of outcomes) expect(o.outcome).toEqual({ status: 200, errorCode: undefined, details: 'ok', aborted: false })
  })

  it('chunk hooks run in reverse order for every streamed chunk', async () => {
    const res = await chat({ stream: true })
    const text = await res.text()
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true)
    await completed()
    const chunkEvents = events.filter((e) => e.endsWith(':chunk'))
    expect(chunkEvents.length).toBeGreaterThanOrEqual(3 * 13) // role chunk + 12 tokens (+ finish)
    expect(chunkEvents.length % 3).toBe(0)
    for (let i = 0; i < chunkEvents.length; i += 3) expect(chunkEvents.slice(i, i + 3)).toEqual(['rec-c:chunk', 'rec-b:chunk', 'rec-a:chunk'])
    expect(events.slice(-3)).toEqual(['rec-c:complete', 'rec-b:complete', 'rec-a:complete'])
  })

  it('a local reply from the 2nd plugin in onRequestHeaders stops the 3rd, reads no body and calls no upstream; onComplete still runs', async () => {
    await reloadWith({ 'rec-b': { denyAt: 'headers' } })
    const res = await chat()
    expect(res.status).toBe(403)
    expect(res.headers.get('x-mcp-error-code')).toBe('MCP_ERR_AUTH_FORBIDDEN')
    const body = await res.json() as { error: { code: string; type: string; message: string } }
    expect(body.error).toMatchObject({ code: 'MCP_ERR_AUTH_FORBIDDEN', type: 'permission_error', message: 'This key may not pass rec-b' })
    await completed()
    expect(events).toEqual([
      'rec-a:headers', 'rec-b:headers',
      'rec-c:resHeaders', 'rec-b:resHeaders', 'rec-a:resHeaders',
      'rec-c:complete', 'rec-b:complete', 'rec-a:complete',
    ])
    expect(mock.requests).toHaveLength(0)
    for (const o of outcomes) {
      expect(o.outcome).toEqual({ status: 403, errorCode: 'MCP_ERR_AUTH_FORBIDDEN', details: 'test.rec-b_denied', aborted: false })
    }
  })

  it('a local reply from the 2nd plugin in onRequestBody stops the 3rd and calls no upstream', async () => {
    await reloadWith({ 'rec-b': { denyAt: 'body' } })
    const res = await chat()
    expect(res.status).toBe(403)
    await res.json()
    await completed()
    expect(events).toEqual([
      'rec-a:headers', 'rec-b:headers', 'rec-c:headers',
      'rec-a:body', 'rec-b:body',
      'rec-c:resHeaders', 'rec-b:resHeaders', 'rec-a:resHeaders',
      'rec-c:complete', 'rec-b:complete', 'rec-a:complete',
    ])
    expect(mock.requests).toHaveLength(0)
    expect(outcomes.map((o) => o.outcome.errorCode)).toEqual(['MCP_ERR_AUTH_FORBIDDEN', 'MCP_ERR_AUTH_FORBIDDEN', 'MCP_ERR_AUTH_FORBIDDEN'])
    await reloadWith({})
  })
})

// ---------------------------------------------------------------------------------------------
// Compile: plugin config validation and carry-over
// ---------------------------------------------------------------------------------------------

const silent = pino({ level: 'silent' })

function rawSettings(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    server: {}, admin: { key: 'k'.repeat(32) }, log: {}, dataDir: './data', upstream: {}, reload: {},
    plugins: {}, chains: { default: [] }, routes: {}, providers: {},
    ...over,
  }
}

function settings(over: Record<string, unknown> = {}): Settings {
  return parseSettings(rawSettings(over), {})
}

function deps(extra: readonly PluginFactory[]): CompileDeps & { created: { name: string; config: Readonly<Record<string, unknown>> }[] } {
  const byName = new Map(extra.map((f) => [f.name, f]))
  const created: { name: string; config: Readonly<Record<string, unknown>> }[] = []
  return {
    created,
    plugin: (n) => {
      const f = byName.get(n) ?? pluginFactory(n)
      if (!f) return undefined
      return { ...f, create: (cfg, d) => { created.push({ name: f.name, config: cfg }); return f.create(cfg, d) } }
    },
    adapter: adapterFactory,
    dispatcherFor: () => { throw new Error('unit tests open no upstream') },
    pluginDeps: () => ({ services: {}, logger: silent, metrics: new Metrics(), env: { adminKey: 'k'.repeat(32), production: false } }),
    terminal: () => Promise.reject(new Error('unit tests open no upstream')),
    targets: new TargetRegistry(),
  }
}

async function compileError(s: Settings, d: CompileDeps, prev?: Pipeline): Promise<GatewayError> {
  try {
    await compilePipeline(s, d, prev, 1)
  } catch (e) {
    expect(e).toBeInstanceOf(GatewayError)
    return e as GatewayError
  }
  throw new Error('expected the compile to fail')
}

const shaped: PluginFactory = {
  name: 'shaped',
  sideEffects: 'none',
  configSchema: {
    type: 'object', additionalProperties: false,
    properties: {
      tag: { type: 'string', default: 'default-tag' },
      limits: { type: 'object', additionalProperties: false, properties: { n: { type: 'integer', default: 7 } }, default: {} },
    },
  },
  create: () => ({}),
}

const ioPlugin: PluginFactory = {
  name: 'io-thing',
  sideEffects: 'io',
  configSchema: {
    type: 'object', additionalProperties: false,
    properties: { timeoutMs: { type: 'integer', minimum: 1 }, failMode: { enum: ['open', 'closed'] } },
  },
  create: () => ({}),
}

describe('compilePipeline: plugin configs', () => {
  it('rejects an unknown key in a global plugin config, naming its path', async () => {
    const e = await compileError(settings({ plugins: { auth: { bogus: true } }, chains: { default: ['auth'] } }), deps([]))
    expect(e.code).toBe('MCP_ERR_PLUGIN_CONFIG_INVALID')
    expect(e.message).toContain('plugins.auth.bogus: unknown key')
  })

  it('rejects an unknown key in a route override, naming routes.<route>.plugins[i].config.<key>', async () => {
    const s = settings({ routes: { chat: { plugins: ['request-id', { name: 'auth', config: { bogus: 1 } }] } } })
    const e = await compileError(s, deps([]))
    expect(e.code).toBe('MCP_ERR_PLUGIN_CONFIG_INVALID')
    expect(e.message).toContain('routes.chat.plugins[1].config.bogus: unknown key')
  })

  // Regression: the global config and the override are merged before validation, so a bad key in
  // plugins.auth was reported at the route override's path, pointing the operator at the wrong place.
  it('a bad key in the global config is named at plugins.<name> even when a route overrides that plugin', async () => {
    const s = settings({ plugins: { auth: { bogus: 1 } }, routes: { chat: { plugins: [{ name: 'auth', config: { allowWithoutKeys: false } }] } } })
    const e = await compileError(s, deps([]))
    expect(e.message).toContain('plugins.auth.bogus: unknown key')
    expect(e.message).not.toContain('routes.chat.plugins[0].config.bogus')
  })

  it('names a value of the wrong type', async () => {
    const e = await compileError(settings({ plugins: { auth: { allowWithoutKeys: 'yes' } }, chains: { default: ['auth'] } }), deps([]))
    expect(e.message).toContain('plugins.auth.allowWithoutKeys: must be boolean')
    const e2 = await compileError(settings({ plugins: { shaped: { limits: { n: 'x' } } }, chains: { default: ['shaped'] } }), deps([shaped]))
    expect(e2.message).toContain('plugins.shaped.limits.n: must be integer')
  })

  it('applies defaults and freezes the config the plugin receives (nested objects included)', async () => {
    const d = deps([shaped])
    await compilePipeline(settings({ chains: { default: ['shaped'] } }), d, undefined, 1)
    const got = d.created.find((c) => c.name === 'shaped')
    expect(got?.config).toEqual({ tag: 'default-tag', limits: { n: 7 } })
    expect(Object.isFrozen(got?.config)).toBe(true)
    expect(Object.isFrozen(got?.config['limits'])).toBe(true)
    expect(() => { (got!.config as Record<string, unknown>)['tag'] = 'changed' }).toThrow(TypeError)
  })

  it('a route override is merged over the global plugin config', async () => {
    const d = deps([shaped])
    const s = settings({ plugins: { shaped: { tag: 'global' } }, routes: { chat: { plugins: [{ name: 'shaped', config: { limits: { n: 2 } } }] } } })
    await compilePipeline(s, d, undefined, 1)
    expect(d.created.map((c) => c.config)).toContainEqual({ tag: 'global', limits: { n: 2 } })
  })

  it('rejects an unknown plugin name, naming the plugin and the route', async () => {
    const e = await compileError(settings({ routes: { embeddings: { plugins: ['request-id', 'no-such-plugin'] } } }), deps([]))
    expect(e.code).toBe('MCP_ERR_PLUGIN_UNKNOWN')
    expect(e.message).toContain("'no-such-plugin'")
    expect(e.message).toContain('routes.embeddings')
  })

  // Regression: a config block under a misspelt plugin name was silently ignored.
  it('rejects a plugins.<name> block for a plugin that does not exist', async () => {
    const e = await compileError(settings({ plugins: { 'acess-log': { level: 'debug' } }, chains: { default: ['request-id'] } }), deps([]))
    expect(e.code).toBe('MCP_ERR_PLUGIN_UNKNOWN')
    expect(e.message).toContain('acess-log')
  })

  it('closes the instances a failed compile created', async () => {
    const close = vi.fn()
    const closing: PluginFactory = { name: 'closing', sideEffects: 'none', configSchema: { type: 'object' }, create: () => ({ close }) }
    await compileError(settings({ chains: { default: ['closing', 'no-such-plugin'] } }), deps([closing]))
    expect(close).toHaveBeenCalledTimes(1)
  })

  it("rejects an 'io' plugin without timeoutMs and failMode, accepts it with both", async () => {
    const e = await compileError(settings({ chains: { default: ['io-thing'] } }), deps([ioPlugin]))
    expect(e.code).toBe('MCP_ERR_PLUGIN_CONFIG_INVALID')
    expect(e.message).toMatch(/timeoutMs.*failMode/)
    const e2 = await compileError(settings({ plugins: { 'io-thing': { timeoutMs: 100 } }, chains: { default: ['io-thing'] } }), deps([ioPlugin]))
    expect(e2.message).toMatch(/failMode/)
    const ok = await compilePipeline(settings({ plugins: { 'io-thing': { timeoutMs: 100, failMode: 'open' } }, chains: { default: ['io-thing'] } }), deps([ioPlugin]), undefined, 1)
    expect(ok.routes.get('chat')?.plugins).toEqual(['io-thing'])
  })

  it('carries instances over when their config is unchanged, creates new ones when it changed', async () => {
    const d = deps([shaped])
    const base = { plugins: { shaped: { tag: 'one' } }, chains: { default: ['shaped', 'request-id'] } }
    const g1 = await compilePipeline(settings(base), d, undefined, 1)
    const inst = (p: Pipeline, name: string): PluginInstance | undefined => [...p.instances].find(([k]) => k.startsWith(`${name}:`))?.[1]
    expect(d.created).toHaveLength(2) // one instance per (plugin, config), shared by the five routes

    const g2 = await compilePipeline(settings({ ...base, log: { level: 'warn' } }), d, g1, 2)
    expect(inst(g2, 'shaped')).toBe(inst(g1, 'shaped'))
    expect(inst(g2, 'request-id')).toBe(inst(g1, 'request-id'))
    expect(d.created).toHaveLength(2)

    const g3 = await compilePipeline(settings({ ...base, plugins: { shaped: { tag: 'two' } } }), d, g2, 3)
    expect(inst(g3, 'shaped')).not.toBe(inst(g2, 'shaped'))
    expect(inst(g3, 'request-id')).toBe(inst(g1, 'request-id'))
    expect(d.created).toHaveLength(3)
    expect(d.created[2]?.config).toEqual({ tag: 'two', limits: { n: 7 } })
  })
})

describe('lowest-cost routing prices targets like the cost meter', () => {
  const providers = {
    a: { type: 'openai', baseUrl: 'http://127.0.0.1:9/v1', apiKey: 'sk-unit-test-0001' },
    g: { type: 'google', baseUrl: 'http://127.0.0.1:9', apiKey: 'g-unit-test-0001' },
  }
  const models = { cheap: { strategy: 'lowest-cost', targets: [{ provider: 'a', model: 'gpt-4o' }, { provider: 'a', model: 'gpt-4o-mini' }, { provider: 'g', model: 'models/gemini-2.5-flash' }] } }
  const d = (): CompileDeps => ({ ...deps([]), dispatcherFor: () => ({}) as never })
  const order = (p: Pipeline): string[] => {
    const alias = p.aliases.get('cheap')!
    return alias.order(alias.targets, undefined).map((t) => `${t.provider}/${t.model}`)
  }

  it('without a cost meter: the catalogue (Gemini resource names priced without models/)', async () => {
    const p = await compilePipeline(settings({ providers, models }), d(), undefined, 1)
    expect(p.aliases.get('cheap')!.targets[2]!.price).toBeDefined()
    expect(order(p)).toEqual(['a/gpt-4o-mini', 'g/models/gemini-2.5-flash', 'a/gpt-4o'])
  })

  it("with the cost meter in the chain: its configured prices (by provider name or type) change which target is cheapest", async () => {
    const plugins = { 'cost-meter': { pricing: { models: [
      { provider: 'a', model: 'gpt-4o-mini', input: 50, output: 100 },                 // by provider name
      { provider: 'openai', model: 'gpt-4o', input: 0.01, output: 0.02 },              // a negotiated price, by type
    ] } } }
    const p = await compilePipeline(settings({ providers, models, plugins, chains: { default: ['cost-meter'] } }), d(), undefined, 1)
    expect(p.aliases.get('cheap')!.targets[0]!.price).toEqual({ input: 0.01, output: 0.02 })
    expect(order(p)).toEqual(['a/gpt-4o', 'g/models/gemini-2.5-flash', 'a/gpt-4o-mini'])
  })
})

