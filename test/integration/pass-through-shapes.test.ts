/**
 * Pass-through streams are read by a tap that searches each event's text for compact JSON's keys (gateway/deliver.ts).
 * Upstreams that serialize otherwise used to break it: an event of several data lines (pretty-printed JSON, valid SSE)
 * was re-framed with `data:` on its first line only, so the OpenAI SDK threw "malformed server-sent event JSON"; with
 * Python's json.dumps spacing (`"finish_reason": "stop"`, `"choices": []`) the usage was never metered, the usage
 * chunk the gateway asked for leaked to a client that had not, and a finish then EOF was reported as a cut; one space
 * after the JSON (or a second one before it) was a "malformed event". The same tap forwarded an upstream error event
 * that came after the finish and then wrote `[DONE]` itself, recording a success; and a stream that ended after its
 * finish without the usage chunk it was asked for (and without [DONE]) looked complete, with nothing metered.
 * A scripted upstream speaking OpenAI's chunk format answers each model with one stream.
 */
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startScriptedUpstream, type ScriptedUpstream } from '../helpers/scripted-upstream.ts'

/** Python's json.dumps with its default separators (`, ` and `: `). */
function pyDumps(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(pyDumps).join(', ')}]`
  if (v !== null && typeof v === 'object') return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${pyDumps(x)}`).join(', ')}}`
  return JSON.stringify(v)
}
const base = { id: 'chatcmpl-shape', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o' }
const HI = { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: 'Hi' }, finish_reason: null }] }
const FINISH = { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }
const USAGE = { ...base, choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }
const ERROR = { error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: null } }
const compact = (o: unknown): string => `data: ${JSON.stringify(o)}\n\n`
const py = (o: unknown): string => `data: ${pyDumps(o)}\n\n`
/** Pretty-printed: one data line per line of the JSON, as the SSE standard allows. */
const pretty = (o: unknown): string => `${JSON.stringify(o, null, 1).split('\n').map((l) => `data: ${l}`).join('\n')}\n\n`
/** A second space before the JSON and one after it. */
const spaced = (o: unknown): string => `data:  ${JSON.stringify(o)} \n\n`
const DONE = 'data: [DONE]\n\n'

const SCRIPTS: Record<string, string[]> = {
  'py-done': [py(HI), py(FINISH), py(USAGE), DONE],
  'py-no-done': [py(HI), py(FINISH), py(USAGE)],
  'py-cut': [py(HI)],
  pretty: [pretty(HI), pretty(FINISH), pretty(USAGE), DONE],
  spaced: [spaced(HI), spaced(FINISH), spaced(USAGE), 'data:  [DONE] \n\n'],
  'error-after-finish': [compact(HI), compact(FINISH), compact(ERROR)],
  'pretty-error-after-finish': [pretty(HI), pretty(FINISH), pretty(ERROR)],
  'no-usage': [compact(HI), compact(FINISH)],
  'py-no-usage': [py(HI), py(FINISH)],
  'no-usage-done': [compact(HI), compact(FINISH), DONE],
}

describe('pass-through streams in other serializations than compact JSON', () => {
  let upstream: ScriptedUpstream
  /** The default chain: it meters, so it asks upstream for usage and hides it from clients that did not ask. */
  let metered: TestGateway
  /** A chain without metering: nothing is asked upstream that the client did not ask. */
  let plain: TestGateway

  beforeAll(async () => {
    upstream = await startScriptedUpstream((model, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.end((SCRIPTS[model] ?? []).join(''))
    })
    const providers = { up: { type: 'openai', baseUrl: upstream.url, apiKey: 'sk-shape-test-0123456789', models: Object.keys(SCRIPTS) } }
    metered = await startGateway({ providers })
    plain = await startGateway({ providers, chains: { plain: ['request-id', 'auth', 'access-log'] }, routes: { chat: { chain: 'plain' } } })
  })
  afterAll(async () => {
    await metered?.close()
    await plain?.close()
    await upstream?.close()
  })

  let n = 0
  async function stream(tg: TestGateway, model: string, includeUsage = false): Promise<{ body: string; log: Record<string, unknown> | undefined }> {
    const id = `shape-${model}-${++n}`
    const r = await fetch(`${tg.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', 'x-request-id': id },
      body: JSON.stringify({ model: `up/${model}`, messages: [{ role: 'user', content: 'hi' }], stream: true, ...(includeUsage ? { stream_options: { include_usage: true } } : {}) }),
    })
    expect(r.status).toBe(200)
    const body = await r.text()
    await new Promise((res) => setTimeout(res, 50))
    return { body, log: tg.logs.find((l) => l['plugin'] === 'access-log' && l['requestId'] === id) }
  }
  const sdk = (tg: TestGateway): OpenAI => new OpenAI({ apiKey: ADMIN_KEY, baseURL: `${tg.url}/v1`, maxRetries: 0, timeout: 10_000 })

  it('pretty-printed events, usage hidden: re-framed with one data line per line; the SDK reads them (it threw a JSON parse error)', async () => {
    const { body, log } = await stream(metered, 'pretty')
    for (const e of body.slice(0, -2).split('\n\n')) for (const line of e.split('\n')) expect(line.startsWith('data: ')).toBe(true)
    expect(body).not.toContain('"usage"')
    expect(body.endsWith(DONE)).toBe(true)
    expect(log).toMatchObject({ status: 200, promptTokens: 3, completionTokens: 2 })
    expect(log?.['errorCode']).toBeUndefined()
    const s = await sdk(metered).chat.completions.create({ model: 'up/pretty', stream: true, messages: [{ role: 'user', content: 'hi' }] })
    let text = ''
    let finish: string | null = null
    for await (const c of s) { text += c.choices[0]?.delta.content ?? ''; finish = c.choices[0]?.finish_reason ?? finish }
    expect([text, finish]).toEqual(['Hi', 'stop'])
  })

  for (const model of ['py-done', 'py-no-done']) {
    it(`${model}: Python's spacing, usage hidden: the usage chunk is left out, metered, and the stream is complete`, async () => {
      const { body, log } = await stream(metered, model)
      expect(body).not.toContain('"usage"')
      expect(body).not.toContain('"error"')
      expect(body.endsWith(DONE)).toBe(true)
      expect(log).toMatchObject({ status: 200, promptTokens: 3, completionTokens: 2 })
      expect(log?.['errorCode']).toBeUndefined()
    })
  }

  it("Python's spacing, usage asked by the client: passed on, metered; a finish then EOF is complete on a chain that meters nothing", async () => {
    const asked = await stream(plain, 'py-no-done', true)
    expect(asked.body).toContain('"usage": {"prompt_tokens": 3')
    expect(asked.body.endsWith(DONE)).toBe(true)
    expect(asked.log).toMatchObject({ status: 200, promptTokens: 3, completionTokens: 2 })
    const notAsked = await stream(plain, 'py-no-usage')
    expect(notAsked.body).not.toContain('"error"')
    expect(notAsked.body.endsWith(DONE)).toBe(true)
    expect(notAsked.log?.['errorCode']).toBeUndefined()
  })

  it("Python's spacing, cut before the finish: still a cut", async () => {
    const { body, log } = await stream(plain, 'py-cut')
    expect(body).toContain('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
    expect(body).not.toContain(DONE)
    expect(log).toMatchObject({ errorCode: 'MCP_ERR_UPSTREAM_STREAM_INTERRUPTED' })
  })

  for (const [name, tg] of [['usage hidden', () => metered], ['usage asked', () => plain]] as const) {
    it(`whitespace around the JSON (and around [DONE]), ${name}: not a malformed event`, async () => {
      const { body, log } = await stream(tg(), 'spaced', name === 'usage asked')
      expect(body).not.toContain('"error"')
      expect(body).toContain('"content":"Hi"')
      expect(log).toMatchObject({ status: 200, promptTokens: 3, completionTokens: 2 })
      expect(log?.['errorCode']).toBeUndefined()
      if (name === 'usage hidden') expect(body).not.toContain('"usage"')
    })
  }

  for (const model of ['error-after-finish', 'pretty-error-after-finish']) {
    for (const [name, tg] of [['usage hidden', () => metered], ['plain', () => plain]] as const) {
      it(`${model} (${name}): the upstream's error event ends the stream, recorded as an error, never followed by [DONE]`, async () => {
        const { body, log } = await stream(tg(), model)
        expect(body).toContain('The server had an error while processing your request.')
        expect(body).not.toContain('[DONE]')
        expect(log).toMatchObject({ errorCode: 'MCP_ERR_UPSTREAM_ERROR' })
      })
    }
  }

  for (const model of ['no-usage', 'py-no-usage']) {
    it(`${model}: usage asked upstream, finish then EOF without the usage chunk or [DONE]: a cut, metered as one`, async () => {
      for (const [tg, includeUsage] of [[metered, false], [plain, true]] as const) {
        const { body, log } = await stream(tg, model, includeUsage)
        const last = body.slice(0, -2).split('\n\n').at(-1)!
        expect(JSON.parse(last.slice(6))).toMatchObject({ error: { code: 'MCP_ERR_UPSTREAM_STREAM_INTERRUPTED' } })
        expect(body).not.toContain('data: [DONE]')
        expect(log).toMatchObject({ errorCode: 'MCP_ERR_UPSTREAM_STREAM_INTERRUPTED' })
      }
    })
  }

  it('usage asked, finish and [DONE] without a usage chunk: complete (the upstream said it was done)', async () => {
    const { body, log } = await stream(metered, 'no-usage-done')
    expect(body.endsWith(DONE)).toBe(true)
    expect(body).not.toContain('"error"')
    expect(log?.['errorCode']).toBeUndefined()
  })
})
