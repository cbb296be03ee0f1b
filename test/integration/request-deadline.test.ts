/**
 * `server.requestDeadlineMs` bounds the whole request, not only the wait for the upstream's headers: an upstream that
 * answers its headers at once and then takes its time (a slow body, a stream that keeps flowing) is let go at the
 * deadline, and the client gets MCP_ERR_UPSTREAM_TIMEOUT: a 504 before its answer started, the error event after.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { authHeaders, startGateway, type TestGateway } from '../helpers/gateway.ts'

let gw: TestGateway
let upstream: http.Server
let url = ''
const DEADLINE_MS = 1500

beforeAll(async () => {
  // Headers at once; then a stream's events every 300 ms without end, or a JSON body that never comes.
  upstream = http.createServer((req, res) => {
    let body = ''
    req.on('data', (d: Buffer) => { body += d.toString('utf8') })
    req.on('end', () => {
      const j = JSON.parse(body) as { stream?: boolean; model: string }
      if (j.stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        let i = 0
        const iv = setInterval(() => {
          if (res.destroyed) { clearInterval(iv); return }
          res.write(`data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 1, model: j.model, choices: [{ index: 0, delta: { content: `t${i++} ` }, finish_reason: null }] })}\n\n`)
        }, 300)
        res.on('close', () => clearInterval(iv))
        return
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.flushHeaders()
    })
  })
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()))
  url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
  gw = await startGateway({
    server: { requestDeadlineMs: DEADLINE_MS },
    providers: {
      slow: { type: 'openai', baseUrl: `${url}/v1`, apiKey: 'sk-slow-00000000001' },
      slowant: { type: 'anthropic', baseUrl: url, apiKey: 'sk-ant-slow-0000001' },
    },
    routing: { health: { enabled: false } },
    models: {
      slowalias: { targets: [{ provider: 'slow', model: 'gpt-4o' }] },
      slowclaude: { targets: [{ provider: 'slowant', model: 'claude-sonnet-4-5' }] },
    },
  })
})

afterAll(async () => {
  await gw?.close()
  upstream?.closeAllConnections()
  await new Promise<void>((r) => upstream?.close(() => r()))
})

async function call(model: string, stream: boolean): Promise<{ status: number; headers: Headers; text: string; ms: number }> {
  const t0 = performance.now()
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: authHeaders(),
    body: JSON.stringify({ model, stream, max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] }),
    signal: AbortSignal.timeout(10_000),
  })
  const text = await res.text()
  return { status: res.status, headers: res.headers, text, ms: performance.now() - t0 }
}

describe('server.requestDeadlineMs after the upstream headers', () => {
  it.each(['slowclaude', 'slowant/claude-sonnet-4-5'])('a body that does not come in time: 504 MCP_ERR_UPSTREAM_TIMEOUT at the deadline (%s)', async (model) => {
    const r = await call(model, false)
    expect(r.status).toBe(504)
    expect(r.headers.get('x-mcp-error-code')).toBe('MCP_ERR_UPSTREAM_TIMEOUT')
    expect(JSON.parse(r.text).error.message).toMatch(/request deadline/)
    expect(r.ms).toBeGreaterThanOrEqual(DEADLINE_MS - 50)
    expect(r.ms).toBeLessThan(DEADLINE_MS + 1000)
    // The request's time ran out: not the target's failure, and no second attempt.
    const s = gw.gw.targets.find('slowant/claude-sonnet-4-5')
    expect(s?.failures ?? 0).toBe(0)
  })

  it.each(['slowalias', 'slow/gpt-4o'])('a stream still flowing at the deadline ends with the timeout error event, no [DONE] (%s)', async (model) => {
    const r = await call(model, true)
    expect(r.status).toBe(200)
    const events = r.text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6))
    expect(events.at(-1)).not.toBe('[DONE]')
    expect(JSON.parse(events.at(-1)!).error.code).toBe('MCP_ERR_UPSTREAM_TIMEOUT')
    expect(events.length).toBeGreaterThan(1)
    expect(r.ms).toBeLessThan(DEADLINE_MS + 1000)
  })
})
