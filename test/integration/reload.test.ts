/**
 * Hot reload: swap, don't mutate. Valid swaps through the admin API, refused configs keep the old
 * generation serving, streams finish on the generation they started with, plugin state carries
 * over, and the real process reloads on a config file change and on SIGHUP.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import type { PluginFactory } from '../../gateway/pipeline/types.ts'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { spawnGateway, type GatewayProcess } from '../helpers/gateway-process.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { startGatewayWithPlugins } from '../helpers/plugin-gateway.ts'

const TOKENS12 = Array.from({ length: 12 }, (_, i) => `tok${i}`).join(' ')
const ADMIN = { authorization: `Bearer ${ADMIN_KEY}` }

interface DescribeBody {
  generation: number
  hash: string
  lastReload: { ok: boolean; source: string; generation: number; hash: string; error?: string }
  settings: { providers: Record<string, Record<string, unknown>> }
}

function chat(url: string, model: string, extra: Record<string, unknown> = {}): Promise<Response> {
  return fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { ...ADMIN, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], ...extra }),
  })
}

async function getConfig(tg: { adminUrl: string }): Promise<{ body: DescribeBody; text: string }> {
  const r = await fetch(`${tg.adminUrl}/api/v1/mcp/config`, { headers: ADMIN })
  expect(r.status).toBe(200)
  const text = await r.text()
  return { body: JSON.parse(text) as DescribeBody, text }
}

async function postReload(tg: { adminUrl: string }): Promise<Response> {
  return fetch(`${tg.adminUrl}/api/v1/mcp/config/reload`, { method: 'POST', headers: ADMIN })
}

/** Content deltas of an SSE body, joined. */
function sseText(body: string): string {
  let out = ''
  for (const ev of body.split('\n\n')) {
    const d = ev.replace(/^data: /, '').trim()
    if (d === '' || d === '[DONE]') continue
    const j = JSON.parse(d) as { choices?: { delta?: { content?: string } }[] }
    out += j.choices?.[0]?.delta?.content ?? ''
  }
  return out
}

describe('reload via the admin API (in-process)', () => {
  let mock: OpenAIMock
  let tg: TestGateway
  const one = (): Record<string, unknown> => ({ providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-first-provider-secret' } } })
  const two = (): Record<string, unknown> => ({
    providers: {
      mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-first-provider-secret' },
      added: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-added-provider-secret' },
    },
  })

  beforeAll(async () => {
    mock = await startOpenAIMock()
    tg = await startGateway(one())
  })
  afterAll(async () => {
    await tg?.close()
    await mock?.close()
  })
  afterEach(() => mock.reset())

  it('a valid swap: new requests see the added provider; GET config shows the new generation and hash, secrets redacted', async () => {
    const before = (await getConfig(tg)).body
    const miss = await chat(tg.url, 'added/gpt-4o')
    expect(miss.status).toBe(404)
    expect((await miss.json() as { error: { code: string } }).error.code).toBe('MCP_ERR_ROUTE_MODEL_NOT_FOUND')

    tg.setConfig(two())
    const r = await postReload(tg)
    expect(r.status).toBe(200)
    const result = await r.json() as DescribeBody['lastReload']
    expect(result).toMatchObject({ ok: true, source: 'api', generation: before.generation + 1 })
    expect(result.hash).not.toBe(before.hash)

    const hit = await chat(tg.url, 'added/gpt-4o')
    expect(hit.status).toBe(200)
    await hit.json()
    expect(mock.requests.at(-1)?.headers['authorization']).toBe('Bearer sk-added-provider-secret')

    const after = await getConfig(tg)
    expect(after.body.generation).toBe(before.generation + 1)
    expect(after.body.hash).toBe(result.hash)
    expect(after.body.lastReload).toMatchObject({ ok: true, source: 'api', generation: after.body.generation })
    expect(Object.keys(after.body.settings.providers)).toEqual(['mock', 'added'])
    expect(after.body.settings.providers['added']?.['apiKey']).toBe('[redacted]')
    expect(after.text).not.toContain('sk-added-provider-secret')
    expect(after.text).not.toContain('sk-first-provider-secret')
    expect(after.text).not.toContain(ADMIN_KEY)
    // Nor do the logs of the reload.
    expect(tg.logText()).not.toContain('sk-added-provider-secret')

    // Reloading the same config is a no-op that is still recorded.
    const same = await (await postReload(tg)).json() as DescribeBody['lastReload']
    expect(same).toMatchObject({ ok: true, generation: after.body.generation, hash: after.body.hash })
  })

  it('GET config shows an alert webhook URL as scheme and host only (a Slack-style URL is authorised by its path)', async () => {
    tg.setConfig({ ...one(), alerts: { webhooks: { slack: { url: 'https://hooks.slack.com/services/T000/B000/SLACKPATHSECRET', secret: 'whsec_0123456789abcdef' } } } })
    try {
      expect((await postReload(tg)).status).toBe(200)
      const { body, text } = await getConfig(tg)
      expect((body.settings as unknown as { alerts: { webhooks: Record<string, { url: string }> } }).alerts.webhooks['slack']?.url).toBe('https://hooks.slack.com/[redacted]')
      expect(text).not.toContain('SLACKPATHSECRET')
      expect(tg.logText()).not.toContain('SLACKPATHSECRET')
    } finally {
      tg.setConfig(one())
      await postReload(tg)
    }
  })

  it('says which changed settings apply only after a restart, and still swaps the rest', async () => {
    tg.setConfig(two())
    await postReload(tg)
    const before = (await getConfig(tg)).body
    tg.setConfig({ ...two(), pglite: { sharedBuffers: '64MB' }, upstream: { connectTimeoutMs: 1234 } })
    const r = await postReload(tg)
    expect(r.status).toBe(200)
    expect((await r.json() as DescribeBody['lastReload']).generation).toBe(before.generation + 1)
    const warned = tg.logs.filter((l) => l['msg'] === 'these settings take effect only after a restart').at(-1)
    expect(warned?.['sections']).toEqual(['upstream', 'pglite'])
    tg.setConfig(two())
    await postReload(tg)
  })

  it.each([
    ['a bad settings field', (): Record<string, unknown> => ({ ...two(), server: { port: 'eighty' } }), 'server.port: must be integer'],
    ['a bad plugin config', (): Record<string, unknown> => ({ ...two(), plugins: { auth: { bogus: 1 } } }), 'plugins.auth.bogus: unknown key'],
    ['a bad provider config', (): Record<string, unknown> => ({ providers: { ...(two()['providers'] as object), broken: { type: 'openai', baseUrl: 'ftp://nowhere' } } }), 'providers.broken.baseUrl'],
    ['an unknown plugin', (): Record<string, unknown> => ({ ...two(), chains: { default: ['auth', 'no-such-plugin'] } }), "no-such-plugin"],
  ])('an invalid config (%s) is refused with a clear error and the old pipeline keeps serving', async (_name, cfg, expected) => {
    tg.setConfig(two())
    await postReload(tg)
    const before = (await getConfig(tg)).body

    tg.setConfig(cfg())
    const r = await postReload(tg)
    expect(r.status).toBe(400)
    expect(r.headers.get('content-type')).toContain('application/json')
    const err = (await r.json() as { error: { code: string; message: string } }).error
    expect(err.code).toBe('MCP_ERR_CONFIG_INVALID')
    expect(err.message).toContain(expected)

    const after = (await getConfig(tg)).body
    expect(after.generation).toBe(before.generation)
    expect(after.hash).toBe(before.hash)
    expect(after.lastReload.ok).toBe(false)
    expect(after.lastReload.source).toBe('api')
    expect(after.lastReload.error).toContain(expected)

    for (const model of ['mock/gpt-4o', 'added/gpt-4o']) {
      const res = await chat(tg.url, model)
      expect(res.status).toBe(200)
      await res.json()
    }
    tg.setConfig(two())
  })

  it('a stream in flight during a swap finishes on the old generation', async () => {
    tg.setConfig(one())
    await postReload(tg)
    const gen = tg.gw.holder.current.generation
    mock.fault = 'chunkDelayMs:60' // 12 tokens, ~0.8 s
    const res = await chat(tg.url, 'mock/gpt-4o', { stream: true })
    expect(res.status).toBe(200)
    const reader = res.body!.getReader()
    const dec = new TextDecoder()
    let body = dec.decode((await reader.read()).value, { stream: true })

    // Swap to a config without the provider the stream is using.
    tg.setConfig({ providers: { other: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-other' } } })
    const r = await postReload(tg)
    expect(r.status).toBe(200)
    expect(tg.gw.holder.current.generation).toBe(gen + 1)
    expect(tg.gw.holder.retiring).toBe(1) // the old generation is draining the stream
    mock.fault = null
    const gone = await chat(tg.url, 'mock/gpt-4o')
    expect(gone.status).toBe(404) // new requests see the new generation
    await gone.arrayBuffer()

    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      body += dec.decode(value, { stream: true })
    }
    expect(body.trimEnd().endsWith('data: [DONE]')).toBe(true)
    expect(body).not.toContain('"error"')
    expect(sseText(body)).toBe(TOKENS12)
    await vi.waitFor(() => expect(tg.gw.holder.retiring).toBe(0), { timeout: 2000, interval: 10 })
    tg.setConfig(two())
    await postReload(tg)
  })
})

describe('plugin state across reloads (in-process)', () => {
  let mock: OpenAIMock
  let tg: TestGateway
  const closed: number[] = []
  let created = 0

  const counting: PluginFactory<{ step: number }> = {
    name: 'counting',
    sideEffects: 'none',
    configSchema: { type: 'object', additionalProperties: false, properties: { step: { type: 'integer', default: 1 } } },
    create(config) {
      const id = ++created
      let count = 0
      return {
        onResponseHeaders(ctx) { count += config.step; ctx.responseHeaders['x-count'] = `${id}:${count}` },
        close() { closed.push(id) },
      }
    },
  }

  const cfg = (step: number, extraProvider: boolean): Record<string, unknown> => ({
    providers: {
      mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-x' },
      ...(extraProvider ? { extra: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-y' } } : {}),
    },
    plugins: { counting: { step } },
    chains: { counted: ['request-id', 'counting'] },
    routes: { chat: { chain: 'counted' } },
  })

  async function count(): Promise<string | null> {
    const r = await chat(tg.url, 'mock/gpt-4o')
    expect(r.status).toBe(200)
    await r.arrayBuffer()
    return r.headers.get('x-count')
  }

  beforeAll(async () => {
    mock = await startOpenAIMock()
    tg = await startGatewayWithPlugins({}, [counting])
    tg.setConfig(cfg(1, false))
    expect((await tg.gw.reload('test')).ok).toBe(true)
  })
  afterAll(async () => {
    await tg?.close()
    await mock?.close()
  })

  it('survives a reload that leaves its config unchanged; a changed config gets a new instance and the old one is closed', async () => {
    const first = created
    expect(await count()).toBe(`${first}:1`)
    expect(await count()).toBe(`${first}:2`)
    const inst = [...tg.gw.holder.current.instances].find(([k]) => k.startsWith('counting:'))?.[1]

    tg.setConfig(cfg(1, true)) // unrelated change: a provider added
    const r1 = await postReload(tg)
    expect(r1.status).toBe(200)
    expect(await count()).toBe(`${first}:3`)
    expect([...tg.gw.holder.current.instances].find(([k]) => k.startsWith('counting:'))?.[1]).toBe(inst)

    tg.setConfig(cfg(5, true)) // its own config changed
    expect((await postReload(tg)).status).toBe(200)
    expect(await count()).toBe(`${first + 1}:5`)
    expect([...tg.gw.holder.current.instances].find(([k]) => k.startsWith('counting:'))?.[1]).not.toBe(inst)
    await vi.waitFor(() => expect(closed).toEqual([first]), { timeout: 2000, interval: 10 })

    tg.setConfig(cfg(5, false)) // unchanged again
    expect((await postReload(tg)).status).toBe(200)
    expect(await count()).toBe(`${first + 1}:10`)
  })
})

describe('instance lifetime across several quick reloads (in-process)', () => {
  let mock: OpenAIMock
  let tg: TestGateway
  const log: string[] = []

  const tracked: PluginFactory<{ v: number }> = {
    name: 'tracked',
    sideEffects: 'none',
    configSchema: { type: 'object', additionalProperties: false, properties: { v: { type: 'integer', default: 1 } } },
    create(config) {
      const id = `v${config.v}`
      let closed = false
      return {
        onComplete() { log.push(`${id}:complete${closed ? '-after-close' : ''}`) },
        close() { closed = true; log.push(`${id}:close`) },
      }
    },
  }

  const cfg = (v: number, extra: boolean): Record<string, unknown> => ({
    providers: {
      mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-x' },
      ...(extra ? { extra: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-y' } } : {}),
    },
    plugins: { tracked: { v } },
    chains: { t: ['tracked'] },
    routes: { chat: { chain: 't' } },
  })

  beforeAll(async () => {
    mock = await startOpenAIMock()
    tg = await startGatewayWithPlugins({}, [tracked])
    tg.setConfig(cfg(1, false))
    expect((await tg.gw.reload('test')).ok).toBe(true)
  })
  afterAll(async () => {
    await tg?.close()
    await mock?.close()
  })

  // Regression: gen A (stream in flight) → gen B carries the instance → gen C drops it. B drains at
  // once and closed the instance while A's stream still used it.
  it('an instance is not closed while an older generation that uses it is still draining', async () => {
    mock.fault = 'chunkDelayMs:50'
    const res = await chat(tg.url, 'mock/gpt-4o', { stream: true })
    expect(res.status).toBe(200)
    const reader = res.body!.getReader()
    await reader.read()

    tg.setConfig(cfg(1, true)) // B: unrelated change, the instance carries over
    expect((await postReload(tg)).status).toBe(200)
    tg.setConfig(cfg(2, true)) // C: the instance's config changed, B retires it
    expect((await postReload(tg)).status).toBe(200)
    await new Promise((r) => setTimeout(r, 100)) // B drains immediately (nothing in flight)

    while (!(await reader.read()).done) { /* drain the stream */ }
    await vi.waitFor(() => expect(log).toContain('v1:close'), { timeout: 2000, interval: 10 })
    expect(log).toEqual(['v1:complete', 'v1:close'])
  })
})

describe('reloads of the real process (file watch, SIGHUP)', () => {
  let mock: OpenAIMock
  let watching: GatewayProcess
  let manual: GatewayProcess
  const local = (extra: boolean, watch: boolean): Record<string, unknown> => ({
    log: { level: 'info' },
    reload: { watch, debounceMs: 50 },
    providers: {
      mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-process-secret' },
      ...(extra ? { extra: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-process-secret-2' } } : {}),
    },
  })

  beforeAll(async () => {
    mock = await startOpenAIMock()
    ;[watching, manual] = await Promise.all([spawnGateway(local(false, true)), spawnGateway(local(false, false))])
  })
  afterAll(async () => {
    await Promise.all([watching?.stop(), manual?.stop()])
    await mock?.close()
  })

  it('a change to local.yaml is picked up by the file watcher within 2 s', async () => {
    const before = await watching.config()
    expect(before.generation).toBe(1)
    expect((await chat(watching.url, 'extra/gpt-4o')).status).toBe(404)

    watching.writeLocal(local(true, true))
    const t0 = Date.now()
    await vi.waitFor(async () => expect((await watching.config()).generation).toBe(2), { timeout: 2000, interval: 50 })
    expect(Date.now() - t0).toBeLessThan(2000)
    const after = await watching.config()
    expect(after.lastReload).toMatchObject({ ok: true, source: 'file', generation: 2 })
    expect(after.hash).not.toBe(before.hash)
    const res = await chat(watching.url, 'extra/gpt-4o')
    expect(res.status).toBe(200)
    await res.arrayBuffer()

    // An invalid edit is refused; the running generation keeps serving.
    watching.writeLocal({ ...local(true, true), server: { bodyLimitBytes: 'big' } }) // (server.port comes from MCP_PORT)
    await vi.waitFor(async () => expect((await watching.config()).lastReload.ok).toBe(false), { timeout: 2000, interval: 50 })
    const refused = await watching.config()
    expect(refused.generation).toBe(2)
    expect(refused.lastReload.error).toContain('server.bodyLimitBytes: must be integer')
    expect((await chat(watching.url, 'extra/gpt-4o')).status).toBe(200)
  })

  it('SIGHUP reloads the configuration (recorded with source "signal")', async () => {
    // This process does not watch: the edit alone changes nothing.
    manual.writeLocal(local(true, false))
    await new Promise((r) => setTimeout(r, 400))
    expect((await manual.config()).generation).toBe(1)
    expect((await chat(manual.url, 'extra/gpt-4o')).status).toBe(404)

    manual.proc.kill('SIGHUP')
    await vi.waitFor(async () => expect((await manual.config()).generation).toBe(2), { timeout: 2000, interval: 50 })
    const after = await manual.config()
    expect(after.lastReload).toMatchObject({ ok: true, source: 'signal', generation: 2 })
    const res = await chat(manual.url, 'extra/gpt-4o')
    expect(res.status).toBe(200)
    await res.arrayBuffer()
    expect(manual.proc.exitCode).toBeNull() // SIGHUP did not kill it

    // SIGHUP to the watching process too: recorded even when nothing changed.
    watching.proc.kill('SIGHUP')
    await vi.waitFor(async () => expect((await watching.config()).lastReload.source).toBe('signal'), { timeout: 2000, interval: 50 })
    expect(manual.output()).not.toContain('sk-process-secret')
  })

  it('a YAML syntax error puts no secret in the reload answer, GET config, the log or the audit log, and names file and line', async () => {
    // The parser's message quoted the lines around the fault (here the apiKey line): the same text went into all four.
    const secret = 'sk-YAMLLEAKSECRET-123456'
    const file = path.join(manual.configDir, 'local.yaml')
    writeFileSync(file, `log: {level: info}\nreload: {watch: false}\nproviders:\n  mock:\n    type: openai\n    baseUrl: ${mock.url}\n    apiKey: ${secret}\n   headers: {a: b}\n`)
    const r = await postReload(manual)
    const text = await r.text()
    expect(r.status).toBe(400)
    const body = JSON.parse(text) as { error: { code: string; message: string } }
    expect(body.error.code).toBe('MCP_ERR_CONFIG_INVALID')
    expect(body.error.message).toBe(`Configuration rejected: ${file}: line 8, column 4: bad indentation of a mapping entry`)
    const config = await fetch(`${manual.adminUrl}/api/v1/mcp/config`, { headers: ADMIN })
    const configText = await config.text()
    expect((JSON.parse(configText) as DescribeBody).lastReload).toMatchObject({ ok: false, error: body.error.message })
    const audit = async (): Promise<string> => (await fetch(`${manual.adminUrl}/api/v1/mcp/audit?action=config.reload_refused&limit=50`, { headers: ADMIN })).text()
    await vi.waitFor(async () => expect(await audit()).toContain('bad indentation'), { timeout: 5000, interval: 100 })
    expect(manual.output()).toContain('bad indentation')
    for (const t of [text, configText, await audit(), manual.output()]) expect(t).not.toContain('YAMLLEAKSECRET')
  })

  it('NODE_CONFIG_DIR with several directories: a change in any of them is picked up', async () => {
    // node-config reads every directory of a path.delimiter-separated NODE_CONFIG_DIR, later ones overriding earlier
    // ones. The watcher used to watch the joined string as one path: it failed, and no edit was ever picked up.
    const overlay = mkdtempSync(path.join(tmpdir(), 'mcp-config-overlay-'))
    const overlayLocal = (extra: boolean): void => writeFileSync(path.join(overlay, 'local.yaml'), JSON.stringify(local(extra, true)))
    overlayLocal(false)
    let two: GatewayProcess | undefined
    try {
      // spawnGateway's own copy of config/ first (its local.yaml does not watch), then the overlay, which wins.
      two = await spawnGateway(local(false, false), (dir) => ({ NODE_CONFIG_DIR: `${dir}${path.delimiter}${overlay}` }))
      expect(two.output()).not.toContain('cannot watch')
      expect((await two.config()).generation).toBe(1)
      expect((await chat(two.url, 'extra/gpt-4o')).status).toBe(404)
      overlayLocal(true)
      await vi.waitFor(async () => expect((await two!.config()).generation).toBe(2), { timeout: 2000, interval: 50 })
      expect((await two.config()).lastReload).toMatchObject({ ok: true, source: 'file' })
      const res = await chat(two.url, 'extra/gpt-4o')
      expect(res.status).toBe(200)
      await res.arrayBuffer()
    } finally {
      await two?.stop()
      rmSync(overlay, { recursive: true, force: true })
    }
  })
})
