/**
 * Graceful shutdown of the real process (docs/lifecycle.md, Shutdown): on SIGTERM readiness turns
 * 503 while the admin listener drains with the data plane, the data listener stops accepting, the
 * open stream finishes with every token and [DONE], and the process exits 0. Past the deadline, a
 * stream still running ends with an explicit error event and a request before its answer gets a 503, one still
 * receiving its body from a slow client included.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { ADMIN_KEY } from '../helpers/gateway.ts'
import { spawnGateway, type GatewayProcess } from '../helpers/gateway-process.ts'
import { startAnthropicMock } from '../helpers/anthropic-mock.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'

const TOKENS20 = Array.from({ length: 20 }, (_, i) => `tok${i}`).join(' ')

/** A chat request whose body never finishes arriving: its answer (or the error that ended it). */
function slowBody(port: number): { started: Promise<void>; answer: Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> } {
  let started!: () => void
  const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/chat/completions', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', 'content-length': '1000' } })
  const answer = new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      let body = ''
      res.on('data', (c: Buffer) => { body += c.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
      res.on('error', reject)
    })
    req.on('error', reject)
  })
  req.write('{"model":"mock/gpt-4o","messages":[', () => started())
  return { started: new Promise<void>((r) => { started = r }), answer }
}

function connectOutcome(port: number): Promise<'connected' | string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    s.once('connect', () => { s.destroy(); resolve('connected') })
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message))
  })
}

describe('SIGTERM', () => {
  let mock: OpenAIMock
  let gp: GatewayProcess

  beforeAll(async () => {
    mock = await startOpenAIMock()
    gp = await spawnGateway({
      providers: {
        // The gateway forwards the provider's configured headers: 20 tokens, 100 ms apart (~2 s).
        mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-shutdown', headers: { 'x-mock-tokens': '20', 'x-mock-chunk-delay-ms': '100' } },
      },
    })
  })
  afterAll(async () => {
    await gp?.stop()
    await mock?.close()
  })

  it('drains: readiness 503, new connections refused, the open stream completes, exit code 0', async () => {
    expect((await fetch(`${gp.adminUrl}/readyz`)).status).toBe(200)
    expect(await connectOutcome(gp.port)).toBe('connected')

    const res = await fetch(`${gp.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream: true }),
    })
    expect(res.status).toBe(200)
    const reader = res.body!.getReader()
    const dec = new TextDecoder()
    let body = dec.decode((await reader.read()).value, { stream: true })
    const reading = (async () => {
      for (;;) {
        const { value, done } = await reader.read()
        if (done) return
        body += dec.decode(value, { stream: true })
      }
    })()

    const sentAt = Date.now()
    gp.proc.kill('SIGTERM')

    await vi.waitFor(async () => {
      const r = await fetch(`${gp.adminUrl}/readyz`)
      expect(r.status).toBe(503)
      expect(await r.json()).toMatchObject({ status: 'draining', checks: { draining: false } })
    }, { timeout: 1000, interval: 20 })
    await vi.waitFor(async () => expect(await connectOutcome(gp.port)).toBe('ECONNREFUSED'), { timeout: 1000, interval: 20 })
    expect(gp.proc.exitCode).toBeNull() // still draining the stream

    await reading
    expect(body.trimEnd().endsWith('data: [DONE]')).toBe(true)
    expect(body).not.toContain('"error"')
    let text = ''
    for (const ev of body.split('\n\n')) {
      const d = ev.replace(/^data: /, '').trim()
      if (d === '' || d === '[DONE]') continue
      text += (JSON.parse(d) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? ''
    }
    expect(text).toBe(TOKENS20)
    expect(Date.now() - sentAt).toBeGreaterThan(1000) // the stream really outlived the signal

    const exit = await gp.exited
    expect(exit, gp.output()).toEqual({ code: 0, signal: null })
    expect(gp.output()).toContain('"clean":true')
    expect(mock.requests[0]?.aborted).toBe(false)
  })
})

describe('SIGTERM with budget alerts', () => {
  let mock: OpenAIMock
  let gp: GatewayProcess
  let hook: http.Server
  const received: unknown[] = []

  beforeAll(async () => {
    hook = http.createServer((req, res) => {
      let b = ''
      req.on('data', (c: Buffer) => { b += c.toString() })
      req.on('end', () => { received.push(JSON.parse(b)); res.writeHead(204).end() })
    })
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r))
    mock = await startOpenAIMock()
    gp = await spawnGateway({
      providers: {
        mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-shutdown', headers: { 'x-mock-tokens': '20', 'x-mock-chunk-delay-ms': '100' } },
      },
      chains: { default: ['request-id', 'auth', 'budget', 'cost-meter', 'access-log'] },
      plugins: { budget: { backend: 'local', budgets: [{ name: 'team', scope: 'global', period: 'day', amountUsd: 0.01 }] } },
      alerts: {
        webhooks: { ops: { url: `http://127.0.0.1:${(hook.address() as net.AddressInfo).port}/alerts`, secret: 'shutdown-secret-0123456789', retries: 0 } },
        rules: [{ name: 'team-budget', kind: 'budget', budget: 'team', thresholds: [1], webhooks: ['ops'] }],
      },
    })
  })
  afterAll(async () => {
    await gp?.stop()
    await mock?.close()
    await new Promise<void>((r) => hook?.close(() => r()))
  })

  it('an alert fired by a request that settles during the drain is still delivered', async () => {
    const res = await fetch(`${gp.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream: true, max_tokens: 30 }),
    })
    expect(res.status).toBe(200)
    const reader = res.body!.getReader()
    await reader.read()
    gp.proc.kill('SIGTERM')
    while (!(await reader.read()).done) { /* the rest of the stream, during the drain */ }
    const exit = await gp.exited
    expect(exit, gp.output()).toEqual({ code: 0, signal: null })
    // gpt-4o: 20 output tokens at $10/M and the prompt at $2.50/M, over 1 % of $0.01.
    expect(received, gp.output()).toHaveLength(1)
    expect(received[0]).toMatchObject({ rule: 'team-budget' })
  })
})

describe('SIGTERM past the shutdown deadline', () => {
  let mock: OpenAIMock
  let claude: Awaited<ReturnType<typeof startAnthropicMock>>
  const procs: GatewayProcess[] = []
  const dataDir = mkdtempSync(path.join(tmpdir(), 'mcp-shutdown-deadline-'))
  const settings = (): Record<string, unknown> => ({
    server: { shutdownDeadlineMs: 500 },
    providers: {
      // 20 tokens, 200 ms apart (~4 s): longer than the deadline.
      mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-shutdown', headers: { 'x-mock-tokens': '20', 'x-mock-chunk-delay-ms': '200' } },
      claude: { type: 'anthropic', baseUrl: claude.url, apiKey: 'sk-ant-shutdown' },
    },
    // A stream that may resume on another target must not resume there when the gateway itself ends it.
    models: { resilient: { streamRecovery: 'resume', targets: [{ provider: 'mock', model: 'gpt-4o' }, { provider: 'claude', model: 'claude-sonnet-4-5', priority: 1 }] } },
    chains: { default: ['request-id', 'auth', 'execution-log', 'cost-meter', 'access-log'] },
  })

  beforeAll(async () => { [mock, claude] = await Promise.all([startOpenAIMock(), startAnthropicMock()]) })
  afterAll(async () => {
    for (const p of procs) await p.stop()
    await mock?.close()
    await claude?.close()
    rmSync(dataDir, { recursive: true, force: true })
  })

  it('streams end with the error event of their API (the SDKs throw), a request before its answer gets a 503, upstreams are aborted, rows say terminated, exit 0', async () => {
    const gp = await spawnGateway(settings(), { MCP_DATA_DIR: dataDir })
    procs.push(gp)
    // Pass-through (OpenAI in, OpenAI out) and translated (Anthropic in), each through its official SDK.
    const openai = new OpenAI({ apiKey: ADMIN_KEY, baseURL: `${gp.url}/v1`, maxRetries: 0 })
    const anthropic = new Anthropic({ apiKey: ADMIN_KEY, baseURL: gp.url, maxRetries: 0 })
    const oStream = await openai.chat.completions.create({ model: 'mock/gpt-4o', stream: true, messages: [{ role: 'user', content: 'hi' }] })
    const aStream = anthropic.messages.stream({ model: 'mock/gpt-4o', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] })
    const rStream = await openai.chat.completions.create({ model: 'resilient', stream: true, messages: [{ role: 'user', content: 'hi' }] })
    let oText = ''
    let aText = ''
    let rText = ''
    aStream.on('text', (t) => { aText += t })
    const oDone = (async () => { for await (const c of oStream) oText += c.choices[0]?.delta.content ?? '' })().then(() => undefined, (e: unknown) => e)
    const aDone = aStream.finalMessage().then(() => undefined, (e: unknown) => e)
    const rDone = (async () => { for await (const c of rStream) rText += c.choices[0]?.delta.content ?? '' })().then(() => undefined, (e: unknown) => e)
    await vi.waitFor(() => { expect(oText).not.toBe(''); expect(aText).not.toBe(''); expect(rText).not.toBe('') }, { timeout: 3000, interval: 20 })
    // A non-streamed request whose upstream has not answered yet.
    mock.fault = 'delayMs:5000'
    const plain = fetch(`${gp.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'hi' }] }),
    })
    await vi.waitFor(() => expect(mock.requests).toHaveLength(4), { timeout: 3000, interval: 20 })
    // A slow client still sending its body: it used to be reset with its connection at the deadline.
    const slow = slowBody(gp.port)
    await slow.started
    await new Promise((r) => setTimeout(r, 100))

    const sentAt = Date.now()
    gp.proc.kill('SIGTERM')

    const oErr = await oDone
    expect(oErr).toBeInstanceOf(OpenAI.APIError)
    expect((oErr as InstanceType<typeof OpenAI.APIError>).code).toBe('MCP_ERR_SERVER_DRAINING')
    const rErr = await rDone
    expect(rErr).toBeInstanceOf(OpenAI.APIError)
    expect((rErr as InstanceType<typeof OpenAI.APIError>).code).toBe('MCP_ERR_SERVER_DRAINING')
    expect(claude.requests).toHaveLength(0)
    const aErr = await aDone
    expect(aErr).toBeInstanceOf(Anthropic.APIError)
    expect((aErr as Error).message).toContain('shutting down')
    const s503 = await slow.answer
    expect(s503.status, s503.body).toBe(503)
    expect(s503.headers['x-mcp-error-code']).toBe('MCP_ERR_SERVER_DRAINING')
    expect(JSON.parse(s503.body)).toMatchObject({ error: { code: 'MCP_ERR_SERVER_DRAINING' } })
    const r = await plain
    expect(r.status).toBe(503)
    expect(r.headers.get('x-mcp-error-code')).toBe('MCP_ERR_SERVER_DRAINING')
    expect(await r.json()).toMatchObject({ error: { code: 'MCP_ERR_SERVER_DRAINING' } })
    // The text so far reached the clients, then the error (not the whole answer).
    expect(oText).toMatch(/^tok0 tok1/)
    expect(oText).not.toBe(TOKENS20)
    expect(aText).toMatch(/^tok0 tok1/)
    expect(aText).not.toBe(TOKENS20)
    expect(Date.now() - sentAt).toBeLessThan(3000)

    const exit = await gp.exited
    expect(exit, gp.output()).toEqual({ code: 0, signal: null })
    // The gateway aborted every upstream call: the provider stops generating.
    await vi.waitFor(() => expect(mock.requests.map((q) => q.aborted)).toEqual([true, true, true, true]), { timeout: 2000, interval: 20 })

    // The execution-log rows were written before the exit, with the status that says why.
    const next = await spawnGateway(settings(), { MCP_DATA_DIR: dataDir })
    procs.push(next)
    const rows = await fetch(`${next.adminUrl}/api/v1/mcp/executions`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
    const listed = await rows.json() as { data: { status: string }[] }
    expect(listed.data.map((x) => x.status), gp.output()).toEqual(['terminated', 'terminated', 'terminated', 'terminated', 'terminated'])
  }, 30_000)
})
