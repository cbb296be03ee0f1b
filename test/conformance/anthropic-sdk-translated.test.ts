/**
 * The official @anthropic-ai/sdk against the running gateway, routed to non-Anthropic providers whose answers are
 * scripted byte for byte (a small upstream that replies with the next queued answer, whatever the path): several
 * tool calls in one turn (interleaved, or whole in one event as Gemini and Ollama send them), text around them,
 * stop reasons, usage, errors. The SDK's stream helpers must reassemble what the non-streamed answer says.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import Anthropic from '@anthropic-ai/sdk'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'

interface Scripted { status?: number; headers?: Record<string, string>; body: string | string[] }

let server: Server
let url = ''
const queue: Scripted[] = []
const seen: { path: string; body: Record<string, unknown> }[] = []
let gw: TestGateway

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let raw = ''
    req.on('data', (d: Buffer) => { raw += d.toString() })
    req.on('end', () => {
      seen.push({ path: req.url ?? '', body: raw === '' ? {} : JSON.parse(raw) as Record<string, unknown> })
      const s = queue.shift()
      if (!s) { res.writeHead(500, { 'content-type': 'application/json' }); res.end('{"error":{"message":"nothing scripted"}}'); return }
      const stream = Array.isArray(s.body)
      res.writeHead(s.status ?? 200, { 'content-type': stream ? 'text/event-stream' : 'application/json', ...s.headers })
      if (!stream) { res.end(s.body); return }
      for (const part of s.body) res.write(part)
      res.end()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  gw = await startGateway({
    providers: {
      openai: { type: 'openai', baseUrl: `${url}/v1`, apiKey: 'sk-scripted-openai-0001' },
      google: { type: 'google', baseUrl: url, apiKey: 'AIzaScriptedKey0000000000000001' },
      ollama: { type: 'ollama', baseUrl: url },
      vllm: { type: 'openai-compatible', baseUrl: `${url}/v1` },
    },
  })
})

afterAll(async () => {
  await gw?.close()
  await new Promise<void>((r) => server.close(() => r()))
})

beforeEach(() => { queue.length = 0; seen.length = 0 })

const client = (): Anthropic => new Anthropic({ apiKey: ADMIN_KEY, baseURL: gw.url, maxRetries: 0 })
const TOOLS: Anthropic.Tool[] = [
  { name: 'get_weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } },
  { name: 'get_time', input_schema: { type: 'object', properties: {} } },
]
const sseData = (o: unknown): string => `data: ${JSON.stringify(o)}\n\n`
const oaChunk = (delta: object, finish: string | null = null, extra: object = {}): string =>
  sseData({ id: 'chatcmpl-abc', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices: [{ index: 0, delta, finish_reason: finish }], ...extra })

/** The raw SSE of one streamed request: event names and parsed data. */
async function rawEvents(model: string, body: object): Promise<{ event: string; data: Record<string, unknown> }[]> {
  const r = await fetch(`${gw.url}/v1/messages`, {
    method: 'POST', headers: { 'x-api-key': ADMIN_KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
    body: JSON.stringify({ model, max_tokens: 1024, stream: true, messages: [{ role: 'user', content: 'hi' }], ...body }),
  })
  const text = await r.text()
  return text.split('\n\n').filter((b) => b.trim() !== '').map((b) => {
    const ev = /^event: (.*)$/m.exec(b)?.[1] ?? ''
    const data = /^data: (.*)$/m.exec(b)?.[1] ?? '{}'
    return { event: ev, data: JSON.parse(data) as Record<string, unknown> }
  })
}

function checkBlocks(events: { event: string; data: Record<string, unknown> }[]): void {
  let next = 0
  let open: number | null = null
  for (const e of events) {
    if (e.event === 'content_block_start') { expect(open).toBeNull(); expect(e.data['index']).toBe(next); open = next; next++ }
    if (e.event === 'content_block_delta') expect(e.data['index']).toBe(open)
    if (e.event === 'content_block_stop') { expect(e.data['index']).toBe(open); open = null }
  }
  expect(open).toBeNull()
}

describe('a tool call cut by max_tokens (finish_reason length)', () => {
  const cut = '{"city":"Pa'
  it('non-streamed: a Message with stop_reason max_tokens and the tool_use block, as the stream gives (was a 502)', async () => {
    queue.push({ body: JSON.stringify({
      id: 'chatcmpl-cut', object: 'chat.completion', created: 1, model: 'gpt-4o',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Checking.', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: cut } }] }, finish_reason: 'length' }],
      usage: { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 },
    }) })
    const json = await client().messages.create({ model: 'openai/gpt-4o', max_tokens: 5, tools: TOOLS, messages: [{ role: 'user', content: 'hi' }] })
    queue.push({ body: [
      oaChunk({ role: 'assistant', content: 'Checking.' }),
      oaChunk({ tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: cut } }] }),
      oaChunk({}, 'length'),
      sseData({ id: 'chatcmpl-cut', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices: [], usage: { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 } }),
      'data: [DONE]\n\n',
    ] })
    const streamed = await client().messages.stream({ model: 'openai/gpt-4o', max_tokens: 5, tools: TOOLS, messages: [{ role: 'user', content: 'hi' }] }).finalMessage()
    expect(json.stop_reason).toBe('max_tokens')
    expect(json.content).toEqual([{ type: 'text', text: 'Checking.' }, { type: 'tool_use', id: 'call_1', name: 'get_weather', input: {} }])
    expect(streamed.stop_reason).toBe('max_tokens')
    expect(streamed.content).toEqual(json.content)
  })

  it('a finished turn whose tool arguments are not JSON is still the gateway\'s 502', async () => {
    queue.push({ body: JSON.stringify({
      id: 'chatcmpl-bad', object: 'chat.completion', created: 1, model: 'gpt-4o',
      choices: [{ index: 0, message: { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: cut } }] }, finish_reason: 'tool_calls' }],
    }) })
    const err = await client().messages.create({ model: 'openai/gpt-4o', max_tokens: 64, tools: TOOLS, messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(Anthropic.InternalServerError)
    expect((err as InstanceType<typeof Anthropic.InternalServerError>).status).toBe(502)
  })
})

describe('stop_sequence from an openai-compatible server (vLLM names the stop string it matched in choices[].stop_reason)', () => {
  it('create() and stream().finalMessage() say stop_sequence with the sequence (were end_turn, null)', async () => {
    queue.push({ body: JSON.stringify({
      id: 'chatcmpl-v', object: 'chat.completion', created: 1, model: 'llama',
      choices: [{ index: 0, message: { role: 'assistant', content: 'one two' }, finish_reason: 'stop', stop_reason: 'END' }],
      usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
    }) })
    const params = { model: 'vllm/llama', max_tokens: 64, stop_sequences: ['END'], messages: [{ role: 'user' as const, content: 'count' }] }
    const json = await client().messages.create(params)
    queue.push({ body: [
      sseData({ id: 'chatcmpl-v', object: 'chat.completion.chunk', created: 1, model: 'llama', choices: [{ index: 0, delta: { role: 'assistant', content: 'one two' }, finish_reason: null }] }),
      sseData({ id: 'chatcmpl-v', object: 'chat.completion.chunk', created: 1, model: 'llama', choices: [{ index: 0, delta: {}, finish_reason: 'stop', stop_reason: 'END' }] }),
      'data: [DONE]\n\n',
    ] })
    const streamed = await client().messages.stream(params).finalMessage()
    for (const m of [json, streamed]) {
      expect(m.stop_reason).toBe('stop_sequence')
      expect(m.stop_sequence).toBe('END')
    }
  })

  it('a natural end (stop_reason null, or a stop token id) is end_turn', async () => {
    for (const stopReason of [null, 128009]) {
      queue.push({ body: JSON.stringify({
        id: 'chatcmpl-v', object: 'chat.completion', created: 1, model: 'llama',
        choices: [{ index: 0, message: { role: 'assistant', content: 'one two' }, finish_reason: 'stop', stop_reason: stopReason }],
      }) })
      const m = await client().messages.create({ model: 'vllm/llama', max_tokens: 64, messages: [{ role: 'user', content: 'count' }] })
      expect(m.stop_reason).toBe('end_turn')
      expect(m.stop_sequence).toBeNull()
    }
  })
})

