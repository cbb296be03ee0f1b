import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { Pool } from 'undici'
import type { GatewayError } from '../../gateway/errors.ts'
import type { ChatChunk, ExecuteParams, ProviderAdapter } from '../types.ts'
import { customFactory, isCustomModuleLoaded, loadCustomModule, preloadCustomModules } from './adapter.ts'
import pino from 'pino'
import { ModelCatalog } from '../../gateway/model-catalog.ts'

const ECHO = fileURLToPath(new URL('../../examples/custom-provider/echo-adapter.ts', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'mcp-custom-'))
const pool = new Pool('http://127.0.0.1:9')
const deps = { dispatcherFor: () => pool }
const params = (model = 'echo-1'): ExecuteParams => ({ model, signal: new AbortController().signal, deadline: Date.now() + 5000, requestId: 'req-cu' })

function write(name: string, body: string): string {
  const p = join(dir, name)
  writeFileSync(p, body)
  return p
}

function create(cfgIn: Record<string, unknown>, name = 'echo'): ProviderAdapter {
  const cfg = { type: 'custom', ...cfgIn }
  expect(customFactory.configErrors(cfg)).toEqual([])
  return customFactory.create(name, cfg, deps)
}

function createError(cfgIn: Record<string, unknown>): GatewayError {
  try { create(cfgIn) } catch (e) { return e as GatewayError }
  throw new Error('expected create to throw')
}

const GOOD_PARTS = `
  execute: async () => ({ id: 'x', object: 'chat.completion', created: 0, model: 'm', choices: [] }),
  validateConfig: () => true,
  getMetrics: () => ({ requests: 0, inflight: 0, errors: 0, errorsByCode: {}, latencyMs: { p50: 0, p99: 0 } }),
  healthCheck: async () => ({ ok: true, checkedAt: 0 }),
`

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true })
  await pool.close()
})

describe('custom provider', () => {
  it('validates the entry', () => {
    expect(customFactory.configErrors({ type: 'custom' })).toEqual(['module: is required'])
    expect(customFactory.configErrors({ type: 'custom', module: 'x.ts', baseUrl: 'http://h' })).toEqual(['baseUrl: unknown key'])
    const cfg: Record<string, unknown> = { type: 'custom', module: 'x.ts' }
    expect(customFactory.configErrors(cfg)).toEqual([])
    expect(cfg['options']).toEqual({})
  })

  it('refuses to create before the module is loaded, naming the hook', () => {
    const e = createError({ module: write('never-loaded.mjs', 'export default () => ({})') })
    expect(e.code).toBe('MCP_ERR_CONFIG_INVALID')
    expect(e.message).toContain('is not loaded')
    expect(e.message).toContain('preloadCustomModules')
  })

  it('loads the example by a cwd-relative path and executes', async () => {
    const rel = relative(process.cwd(), ECHO)
    expect(await preloadCustomModules({ echo: { type: 'custom', module: rel }, other: { type: 'openai' } })).toEqual([])
    expect(isCustomModuleLoaded(ECHO)).toBe(true)
    const a = create({ module: rel, options: { prefix: '> ' } })
    expect(a.type).toBe('custom')
    expect(a.name).toBe('echo')
    expect(a.listModels?.()).toEqual(['echo-1'])
    const r = await a.execute({ model: 'echo-1', messages: [{ role: 'system', content: 'x' }, { role: 'user', content: 'hello world' }] }, params())
    expect(r.choices[0]?.message.content).toBe('> dlrow olleh')
    expect(r.usage).toMatchObject({ completion_tokens: 4 })
    expect((await a.healthCheck()).ok).toBe(true)
  })

  it('wraps an async-generator stream into a ChatStream with final usage', async () => {
    await loadCustomModule(ECHO)
    const a = create({ module: ECHO, options: { chunkSize: 3 } })
    const s = await a.stream({ model: 'echo-1', messages: [{ role: 'user', content: 'abcdefgh' }] }, params())
    expect(s.status).toBe(200)
    const chunks: ChatChunk[] = []
    for await (const c of s) chunks.push(c)
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('hgfedcba')
    expect(chunks.slice(1, 4).map((c) => c.choices[0]?.delta.content)).toEqual(['hgf', 'edc', 'ba'])
    expect(chunks[chunks.length - 1]).toMatchObject({ choices: [], usage: { completion_tokens: 2 } })
    const final = await s.final
    expect(final.choices[0]).toMatchObject({ finish_reason: 'stop', message: { content: 'hgfedcba' } })
    expect(final.usage?.total_tokens).toBe(4)
  })

  it('reports errors before the first chunk as a rejected stream(); GatewayErrors keep their code', async () => {
    const a = create({ module: ECHO })
    await expect(a.stream({ model: 'echo-1', messages: [{ role: 'system', content: 'no user' }] }, params())).rejects.toMatchObject({ code: 'MCP_ERR_REQ_BODY_INVALID', param: 'messages' })
    await expect(a.execute({ model: 'echo-1', messages: [] }, params())).rejects.toMatchObject({ code: 'MCP_ERR_REQ_BODY_INVALID' })
    expect(a.getMetrics().errorsByCode).toEqual({ MCP_ERR_REQ_BODY_INVALID: 2 })
  })

  it("rejects options the adapter's validateConfig refuses", () => {
    const e = createError({ module: ECHO, options: { chunkSize: 0, colour: 'red' } })
    expect(e.code).toBe('MCP_ERR_CONFIG_INVALID')
    expect(e.message).toContain('options.colour: unknown key')
    expect(e.message).toContain('options.chunkSize: must be a positive integer')
  })

  it('names the missing functions of an incomplete adapter', async () => {
    const p = write('incomplete.mjs', `export default () => ({ execute: async () => ({}), validateConfig: () => true })`)
    await loadCustomModule(p)
    const e = createError({ module: p })
    expect(e.code).toBe('MCP_ERR_CONFIG_INVALID')
    expect(e.message).toContain('has no stream, getMetrics, healthCheck functions')
    const q = write('promise.mjs', `export default async () => ({})`)
    await loadCustomModule(q)
    expect(createError({ module: q }).message).toContain('returned a Promise')
  })

  it('accepts a default export object with create(); plain errors become 502 upstream errors', async () => {
    const p = write('object.mjs', `export default { create(options, ctx) { return {
      ${GOOD_PARTS}
      async *stream() { yield { id: 'c', object: 'chat.completion.chunk', created: 0, model: 'm', choices: [{ index: 0, delta: { content: ctx.name + ':' + options.word }, finish_reason: null }] }; throw new Error('backend fell over') },
      embed: async () => { throw new Error('no vectors') },
    } } }`)
    await loadCustomModule(p)
    const a = create({ module: p, options: { word: 'hi' } }, 'obj')
    const s = await a.stream({ model: 'm', messages: [] }, params())
    const seen: string[] = []
    let err: GatewayError | undefined
    try { for await (const c of s) seen.push(c.choices[0]?.delta.content ?? '') } catch (e) { err = e as GatewayError }
    expect(seen).toEqual(['obj:hi'])
    expect(err).toMatchObject({ code: 'MCP_ERR_UPSTREAM_ERROR', status: 502, details: 'custom.adapter_error' })
    expect(err?.message).toContain('backend fell over')
    await expect(s.final).rejects.toMatchObject({ code: 'MCP_ERR_UPSTREAM_ERROR' })
    await expect(a.embed!({ model: 'm', input: 'x' }, params())).rejects.toMatchObject({ code: 'MCP_ERR_UPSTREAM_ERROR' })
  })

  it("passes through the module's discoverModels: a provider without declared models is listed from it, within the signal", async () => {
    const p = write('discover.mjs', `export default (options) => ({
      ${GOOD_PARTS}
      async *stream() {},
      async discoverModels(signal) {
        if (options.mode === 'hang') return new Promise(() => {})
        if (options.mode === 'fail') throw new Error('list endpoint down')
        if (options.mode === 'bad') return [1, 2]
        if (!(signal instanceof AbortSignal)) throw new Error('no signal')
        return ['m-1', 'm-2', 'm-1']
      },
    })`)
    await loadCustomModule(p)
    const ok = create({ module: p }, 'disc')
    const s = { cacheTtlMs: 60_000, timeoutMs: 200 }
    const log = pino({ level: 'silent' })
    expect(await new ModelCatalog().list(new Map([['disc', ok]]), s, log)).toEqual([['disc', ['m-1', 'm-2']]])
    // Declared models win: the module is not asked.
    const declared = create({ module: p, models: ['d-1'], options: { mode: 'fail' } }, 'decl')
    expect(await new ModelCatalog().list(new Map([['decl', declared]]), s, log)).toEqual([['decl', ['d-1']]])
    // A module that ignores the signal still settles when it aborts, as a GatewayError; the listing leaves it out in time.
    const hung = create({ module: p, options: { mode: 'hang' } }, 'hung')
    await expect(hung.discoverModels!(AbortSignal.timeout(50))).rejects.toMatchObject({ code: expect.stringMatching(/^MCP_ERR_/) })
    const t0 = Date.now()
    expect(await new ModelCatalog().list(new Map([['hung', hung]]), s, log)).toEqual([['hung', []]])
    expect(Date.now() - t0).toBeLessThan(1000)
    await expect(create({ module: p, options: { mode: 'fail' } }, 'f').discoverModels!(AbortSignal.timeout(1000))).rejects.toMatchObject({ code: 'MCP_ERR_UPSTREAM_ERROR', details: 'custom.adapter_error' })
    await expect(create({ module: p, options: { mode: 'bad' } }, 'b').discoverModels!(AbortSignal.timeout(1000))).rejects.toMatchObject({ code: 'MCP_ERR_UPSTREAM_BAD_RESPONSE' })
    // A module without discoverModels gives an adapter without it (nothing to ask).
    expect(create({ module: ECHO }).discoverModels).toBeUndefined()
  })

  it("passes through the module's countTokens; a failure or a count that is not a whole number is a GatewayError", async () => {
    const p = write('count.mjs', `export default (options) => ({
      ${GOOD_PARTS}
      async *stream() {},
      async countTokens(req) {
        if (options.mode === 'fail') throw new Error('tokenizer down')
        if (options.mode === 'bad') return -1
        return req.messages.length * 10
      },
    })`)
    await loadCustomModule(p)
    const req = { model: 'm', messages: [{ role: 'user' as const, content: 'a' }, { role: 'user' as const, content: 'b' }] }
    expect(await create({ module: p }, 'c').countTokens!(req, params())).toBe(20)
    await expect(create({ module: p, options: { mode: 'fail' } }, 'c').countTokens!(req, params())).rejects.toMatchObject({ code: 'MCP_ERR_UPSTREAM_ERROR' })
    await expect(create({ module: p, options: { mode: 'bad' } }, 'c').countTokens!(req, params())).rejects.toMatchObject({ code: 'MCP_ERR_UPSTREAM_BAD_RESPONSE' })
    expect(create({ module: ECHO }).countTokens).toBeUndefined()
  })

  it('a stream that ends without a finish chunk is interrupted, not a complete answer', async () => {
    // Before: the generator returning early counted as success, so a truncated answer looked complete.
    const p = write('cut.mjs', `export default () => ({
      ${GOOD_PARTS}
      async *stream(req) {
        yield { id: 'c', object: 'chat.completion.chunk', created: 0, model: 'm', choices: [{ index: 0, delta: { role: 'assistant', content: 'half an ans' }, finish_reason: null }] }
        if (req.messages[0].content === 'finish') {
          yield { id: 'c', object: 'chat.completion.chunk', created: 0, model: 'm', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }
        }
      },
    })`)
    await loadCustomModule(p)
    const a = create({ module: p }, 'cut')
    const s = await a.stream({ model: 'm', messages: [{ role: 'user', content: 'cut' }] }, params())
    const seen: string[] = []
    let err: GatewayError | undefined
    try { for await (const c of s) seen.push(c.choices[0]?.delta.content ?? '') } catch (e) { err = e as GatewayError }
    expect(seen).toEqual(['half an ans'])
    expect(err).toMatchObject({ code: 'MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', details: 'upstream.stream_cut' })
    expect(err?.message).toContain('ended before a chunk with a finish_reason')
    await expect(s.final).rejects.toMatchObject({ code: 'MCP_ERR_UPSTREAM_STREAM_INTERRUPTED' })
    // With the finish chunk (and no usage chunk) the stream is complete.
    const ok = await a.stream({ model: 'm', messages: [{ role: 'user', content: 'finish' }] }, params())
    for await (const c of ok) void c
    expect((await ok.final).choices[0]).toMatchObject({ finish_reason: 'stop', message: { content: 'half an ans' } })
  })

  it('reports bad modules from preload, and re-imports a module whose file changed', async () => {
    const bad = write('bad-export.mjs', 'export const x = 1')
    const errs = await preloadCustomModules({ a: { type: 'custom', module: bad }, b: { type: 'custom', module: join(dir, 'absent.mjs') } })
    expect(errs).toHaveLength(2)
    expect(errs[0]).toMatch(/^providers\.a\.module: .*default export must be a function/)
    expect(errs[1]).toMatch(/^providers\.b\.module: .*absent\.mjs/)

    const p = write('versioned.mjs', `export default () => ({ ${GOOD_PARTS} stream: async () => [], listModels: () => ['v1'] })`)
    await loadCustomModule(p)
    expect(create({ module: p }).listModels?.()).toEqual(['v1'])
    writeFileSync(p, `export default () => ({ ${GOOD_PARTS} stream: async () => [], listModels: () => ['v2'] })`)
    const later = new Date(Date.now() + 5000)
    utimesSync(p, later, later)
    await loadCustomModule(p)
    expect(create({ module: p }).listModels?.()).toEqual(['v2'])
  })
})
