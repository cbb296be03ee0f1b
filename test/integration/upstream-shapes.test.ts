/**
 * Answers a provider should never send, with a 200: the gateway must answer in the client's API, never a 500, never a
 * body that is not JSON, and never pass on an embeddings answer a client cannot use. An Ollama answer with a number
 * for a vector went to the client as `"embedding": 5`, and an answer with fewer vectors than inputs (Ollama or Gemini)
 * went on short: clients pair vectors with inputs by index, so the gap was silent. Both are a 502 now.
 * One HTTP server plays every provider: it answers every request with the shape under test.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'

const SHAPES: unknown[] = [
  null, [], 5, 'x', {}, { content: 5 }, { content: [5] }, { content: [{ type: 'tool_use', id: 5, name: {}, input: 'x' }] },
  { choices: 'x' }, { choices: [null] }, { choices: [{ message: 5 }] }, { candidates: 'x' }, { candidates: [null] },
  { candidates: [{ content: { parts: 'x' } }] }, { message: 5 }, { message: { content: 5, tool_calls: 'x' } },
  { usage: 'x', content: [] }, { usageMetadata: 'x', candidates: [] }, { embeddings: 'x' }, { embeddings: [5] },
  { embeddings: [[0.1], 'x'] }, { embeddings: [{ values: ['a'] }, { values: [1] }] }, { embedding: 5 }, { data: 'x' },
]

describe('answers a provider should never send', () => {
  let server: http.Server
  let tg: TestGateway
  let current: unknown = null

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        const b = JSON.stringify(current)
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b) })
        res.end(b)
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
    const host = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    tg = await startGateway({
      providers: {
        an: { type: 'anthropic', baseUrl: host, apiKey: 'sk-ant-shapes-0123456789', models: ['m'] },
        gm: { type: 'google', baseUrl: host, apiKey: 'gm-shapes-0123456789', models: ['m'] },
        ol: { type: 'ollama', baseUrl: host, models: ['m'] },
      },
    })
  })
  afterAll(async () => {
    await tg?.close()
    server.closeAllConnections()
    server.close()
  })

  const post = async (path: string, body: unknown): Promise<{ status: number; text: string }> => {
    const r = await fetch(`${tg.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify(body),
    })
    return { status: r.status, text: await r.text() }
  }

  it('every shape, every translated provider, chat, messages and embeddings: 200 or 502, always JSON', async () => {
    const wrong: string[] = []
    for (const p of ['an', 'gm', 'ol']) {
      const calls: [string, unknown][] = [
        ['/v1/chat/completions', { model: `${p}/m`, messages: [{ role: 'user', content: 'hi' }] }],
        ['/v1/embeddings', { model: `${p}/m`, input: ['a', 'b'] }],
      ]
      // Anthropic's Messages go to an Anthropic provider as sent (its answer too): translated for the others only.
      if (p !== 'an') calls.push(['/v1/messages', { model: `${p}/m`, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }])
      for (const [path, body] of calls) {
        for (const s of SHAPES) {
          current = s
          const r = await post(path, body)
          let json = true
          try { JSON.parse(r.text) } catch { json = false }
          if ((r.status !== 200 && r.status !== 502 && r.status !== 400) || !json) wrong.push(`${p} ${path} ${JSON.stringify(s)} → ${r.status} ${r.text.slice(0, 120)}`)
          if (path === '/v1/embeddings' && r.status === 200) {
            const data = (JSON.parse(r.text) as { data: { embedding: unknown }[] }).data
            if (data.length !== 2 || !data.every((d) => Array.isArray(d.embedding) && d.embedding.every((x) => typeof x === 'number'))) wrong.push(`${p} embeddings ${JSON.stringify(s)} → 200 ${r.text.slice(0, 120)}`)
          }
        }
      }
    }
    expect(wrong).toEqual([])
  }, 60_000)

  it('embeddings: a vector that is not numbers, or fewer vectors than inputs, is a 502 that says so', async () => {
    const cases: [string, unknown, string][] = [
      ['ol', { embeddings: [5, [0.5]] }, 'embedding 0 is not a list of numbers'],
      ['ol', { embeddings: [[0.5]] }, '1 embeddings for 2 inputs'],
      ['gm', { embeddings: [{ values: [0.5] }] }, '1 embeddings for 2 inputs'],
      ['gm', { embeddings: [{ values: ['x'] }, { values: [0.5] }] }, 'embedding 0 is not a list of numbers'],
    ]
    for (const [p, shape, reason] of cases) {
      current = shape
      const r = await post('/v1/embeddings', { model: `${p}/m`, input: ['a', 'b'], encoding_format: 'float' })
      expect(r.status, `${p} ${JSON.stringify(shape)}`).toBe(502)
      const e = (JSON.parse(r.text) as { error: { code: string; message: string } }).error
      expect(e.code).toBe('MCP_ERR_UPSTREAM_BAD_RESPONSE')
      expect(e.message).toContain(reason)
    }
    // A whole answer still goes through.
    current = { embeddings: [[0.5, 0.25], [0.125, 1]] }
    const ok = await post('/v1/embeddings', { model: 'ol/m', input: ['a', 'b'], encoding_format: 'float' })
    expect(ok.status).toBe(200)
    expect((JSON.parse(ok.text) as { data: { embedding: number[] }[] }).data.map((d) => d.embedding)).toEqual([[0.5, 0.25], [0.125, 1]])
  })
})
