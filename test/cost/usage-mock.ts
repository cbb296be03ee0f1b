/**
 * A purpose-built upstream for the cost tests: one fixed answer per provider wire format, with the richest usage
 * shape each provider documents (the shared mocks report no cached or reasoning tokens).
 *
 *   POST /v1/chat/completions, /openai/deployments/{d}/chat/completions   OpenAI / Azure OpenAI: JSON, or SSE with
 *        the usage chunk (choices: []) when stream_options.include_usage is set
 *        usage: OPENAI_USAGE (cached_tokens, reasoning_tokens)
 *   POST /v1/messages                                                     Anthropic: JSON, or SSE (message_start
 *        carries input and cache usage, message_delta the cumulative output_tokens)   usage: ANTHROPIC_USAGE
 *   POST /v1beta/models/{m}:generateContent | :streamGenerateContent?alt=sse     Gemini: usageMetadata with
 *        cachedContentTokenCount and thoughtsTokenCount (repeated, cumulative, on every stream event)
 *   POST /api/chat                                                         Ollama: JSON or NDJSON (last line done)
 *   POST /nousage/v1/chat/completions                                      OpenAI shape without any usage
 *   POST /cut/v1/chat/completions                                          stream: two content chunks, then the
 *        connection is destroyed (no finish, no usage, no [DONE])
 *   POST /long/v1/messages, /long/v1beta/models/{m}:...                    Anthropic and Gemini with prompts over
 *        200,000 tokens (ANTHROPIC_LONG_USAGE, GEMINI_LONG_USAGE): the long-context tiers
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'

export const TEXT_PIECES = ['The usage ', 'mock ', 'answers.']
export const TEXT = TEXT_PIECES.join('')

export const OPENAI_USAGE = {
  prompt_tokens: 1200, completion_tokens: 300, total_tokens: 1500,
  prompt_tokens_details: { cached_tokens: 1024, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 128, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
}
export const ANTHROPIC_USAGE = { input_tokens: 50, cache_creation_input_tokens: 500, cache_read_input_tokens: 2000, output_tokens: 120 }
export const GEMINI_USAGE = { promptTokenCount: 1500, cachedContentTokenCount: 1024, candidatesTokenCount: 200, thoughtsTokenCount: 350, totalTokenCount: 2050 }
export const OLLAMA_USAGE = { prompt_eval_count: 42, eval_count: 17 }
/** Prompts over 200,000 tokens (cache reads and writes included), for the long-context tiers: under `/long`. */
export const ANTHROPIC_LONG_USAGE = { input_tokens: 150_000, cache_creation_input_tokens: 20_000, cache_read_input_tokens: 40_000, output_tokens: 2_000 }
export const GEMINI_LONG_USAGE = { promptTokenCount: 250_000, cachedContentTokenCount: 100_000, candidatesTokenCount: 1_000, thoughtsTokenCount: 500, totalTokenCount: 251_500 }

export interface UsageMock {
  url: string
  requests: { path: string; body: Record<string, unknown> }[]
  close(): Promise<void>
}

function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    req.on('data', (c: Buffer) => parts.push(c))
    req.on('end', () => { try { resolve(JSON.parse(Buffer.concat(parts).toString('utf8') || '{}') as Record<string, unknown>) } catch (e) { reject(e as Error) } })
    req.on('error', reject)
  })
}

function json(res: http.ServerResponse, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function sse(res: http.ServerResponse, events: string[]): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  for (const e of events) res.write(e)
  res.end()
}

const created = 1_760_000_000

function openai(res: http.ServerResponse, body: Record<string, unknown>, withUsage: boolean, cut: boolean): void {
  const model = String(body['model'])
  if (body['stream'] !== true) {
    json(res, {
      id: 'chatcmpl-usage', object: 'chat.completion', created, model,
      choices: [{ index: 0, message: { role: 'assistant', content: TEXT, refusal: null }, finish_reason: 'stop', logprobs: null }],
      ...(withUsage ? { usage: OPENAI_USAGE } : {}),
    })
    return
  }
  const include = withUsage && (body['stream_options'] as { include_usage?: boolean } | undefined)?.include_usage === true
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}): string =>
    `data: ${JSON.stringify({ id: 'chatcmpl-usage', object: 'chat.completion.chunk', created, model, choices, ...(include ? { usage: null } : {}), ...extra })}\n\n`
  const events = [chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }])]
  for (const p of TEXT_PIECES) events.push(chunk([{ index: 0, delta: { content: p }, finish_reason: null }]))
  if (cut) {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write(events.slice(0, 3).join(''))
    setTimeout(() => res.destroy(), 20)
    return
  }
  events.push(chunk([{ index: 0, delta: {}, finish_reason: 'stop' }]))
  if (include) events.push(chunk([], { usage: OPENAI_USAGE }))
  events.push('data: [DONE]\n\n')
  sse(res, events)
}

function anthropic(res: http.ServerResponse, body: Record<string, unknown>, usage: typeof ANTHROPIC_USAGE = ANTHROPIC_USAGE): void {
  const model = String(body['model'])
  const msg = { id: 'msg_usage', type: 'message', role: 'assistant', model, stop_sequence: null }
  if (body['stream'] !== true) {
    json(res, { ...msg, content: [{ type: 'text', text: TEXT }], stop_reason: 'end_turn', usage })
    return
  }
  const ev = (type: string, data: Record<string, unknown>): string => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`
  const { output_tokens: out, ...input } = usage
  sse(res, [
    ev('message_start', { message: { ...msg, content: [], stop_reason: null, usage: { ...input, output_tokens: 1 } } }),
    ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
    ev('ping', {}),
    ...TEXT_PIECES.map((t) => ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: t } })),
    ev('content_block_stop', { index: 0 }),
    ev('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: out } }),
    ev('message_stop', {}),
  ])
}

function gemini(res: http.ServerResponse, model: string, stream: boolean, usage: typeof GEMINI_USAGE = GEMINI_USAGE): void {
  const cand = (text: string, finish?: string): unknown[] => [{ content: { role: 'model', parts: [{ text }] }, index: 0, ...(finish ? { finishReason: finish } : {}) }]
  const base = { modelVersion: model, responseId: 'gem-usage' }
  if (!stream) {
    json(res, { candidates: cand(TEXT, 'STOP'), usageMetadata: usage, ...base })
    return
  }
  const partial = { promptTokenCount: usage.promptTokenCount, cachedContentTokenCount: usage.cachedContentTokenCount, totalTokenCount: usage.promptTokenCount }
  const events = TEXT_PIECES.map((t) => `data: ${JSON.stringify({ candidates: cand(t), usageMetadata: partial, ...base })}\r\n\r\n`)
  events.push(`data: ${JSON.stringify({ candidates: cand('', 'STOP'), usageMetadata: usage, ...base })}\r\n\r\n`)
  sse(res, events)
}

function ollama(res: http.ServerResponse, body: Record<string, unknown>): void {
  const model = String(body['model'])
  const at = '2025-10-09T00:00:00Z'
  const done = { model, created_at: at, message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop', total_duration: 1000, ...OLLAMA_USAGE }
  if (body['stream'] === false) {
    json(res, { ...done, message: { role: 'assistant', content: TEXT } })
    return
  }
  res.writeHead(200, { 'content-type': 'application/x-ndjson' })
  for (const t of TEXT_PIECES) res.write(JSON.stringify({ model, created_at: at, message: { role: 'assistant', content: t }, done: false }) + '\n')
  res.end(JSON.stringify(done) + '\n')
}

export function startUsageMock(): Promise<UsageMock> {
  const requests: UsageMock['requests'] = []
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/'
    const path = url.split('?')[0]!
    readJson(req).then((body) => {
      requests.push({ path: url, body })
      if (path === '/v1/chat/completions' || /^\/openai\/deployments\/[^/]+\/chat\/completions$/.test(path)) return openai(res, body, true, false)
      if (path === '/nousage/v1/chat/completions') return openai(res, body, false, false)
      if (path === '/cut/v1/chat/completions') return openai(res, body, false, true)
      if (path === '/v1/messages') return anthropic(res, body)
      if (path === '/long/v1/messages') return anthropic(res, body, ANTHROPIC_LONG_USAGE)
      const g = /^(\/long)?\/v1beta\/models\/([^/:]+):(generateContent|streamGenerateContent)$/.exec(path)
      if (g) return gemini(res, decodeURIComponent(g[2]!), g[3] === 'streamGenerateContent', g[1] ? GEMINI_LONG_USAGE : GEMINI_USAGE)
      if (path === '/api/chat') return ollama(res, body)
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: { message: `usage mock: no route ${path}` } }))
    }).catch(() => { res.writeHead(400); res.end() })
  })
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as AddressInfo).port
      resolve({
        url: `http://127.0.0.1:${port}`,
        requests,
        close: () => new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections() }),
      })
    })
  })
}
