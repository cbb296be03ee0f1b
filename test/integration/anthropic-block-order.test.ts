/**
 * A /v1/messages stream translated from another provider keeps its blocks in the order they began. Gemini sent a
 * function call, text, another function call, more text: the client got [tool_use f1, text "xy", tool_use f2] (the
 * one held-text accumulator took the text after f2 too), and the text after the first call only arrived at the end.
 * A scripted upstream speaks Gemini's streamGenerateContent SSE; the second half of the answer comes later.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'

const PAUSE_MS = 400
const gemini = (parts: unknown[], extra: Record<string, unknown> = {}): string =>
  `data: ${JSON.stringify({ candidates: [{ content: { role: 'model', parts }, index: 0, ...extra }], responseId: 'r1' })}\n\n`

describe('Anthropic stream encoder: blocks in the order they began', () => {
  let server: http.Server
  let tg: TestGateway

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.write(gemini([{ functionCall: { name: 'f1', args: { a: 1 } } }]) + gemini([{ text: 'x' }]))
        setTimeout(() => {
          res.end(gemini([{ functionCall: { name: 'f2', args: { b: 2 } } }]) + gemini([{ text: 'y' }], { finishReason: 'STOP' }))
        }, PAUSE_MS)
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
    const host = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    tg = await startGateway({ providers: { gg: { type: 'google', baseUrl: host, apiKey: 'AIzaBlockOrderKey0000000000001', models: ['m'] } } })
  })
  afterAll(async () => {
    await tg?.close()
    server.closeAllConnections()
    await new Promise<void>((r) => server.close(() => r()))
  })

  it('function call, text, function call, text: four blocks in that order, the text after the first call streamed', async () => {
    const t0 = Date.now()
    const r = await fetch(`${tg.url}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'gg/m', max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    })
    expect(r.status).toBe(200)
    const blocks: { type: string; name?: string; text: string; input: string }[] = []
    let xAt = -1
    const decoder = new TextDecoder()
    let buf = ''
    for await (const piece of r.body!) {
      buf += decoder.decode(piece as Uint8Array, { stream: true })
      let i: number
      while ((i = buf.indexOf('\n\n')) !== -1) {
        const ev = buf.slice(0, i)
        buf = buf.slice(i + 2)
        const data = JSON.parse(ev.split('\n').find((l) => l.startsWith('data: '))!.slice(6)) as Record<string, any>
        if (data['type'] === 'content_block_start') {
          blocks[data['index']] = { type: data['content_block'].type, name: data['content_block'].name, text: '', input: '' }
        } else if (data['type'] === 'content_block_delta') {
          const b = blocks[data['index']]!
          if (data['delta'].type === 'text_delta') {
            b.text += data['delta'].text
            if (data['delta'].text === 'x') xAt = Date.now() - t0
          } else b.input += data['delta'].partial_json
        }
      }
    }
    expect(blocks.map((b) => (b.type === 'text' ? `text:${b.text}` : `${b.type}:${b.name}:${b.input}`))).toEqual([
      'tool_use:f1:{"a":1}', 'text:x', 'tool_use:f2:{"b":2}', 'text:y',
    ])
    // "x" came before the upstream's pause, and reached the client then, not with the rest of the answer.
    expect(xAt).toBeGreaterThanOrEqual(0)
    expect(xAt).toBeLessThan(PAUSE_MS)
  })
})
