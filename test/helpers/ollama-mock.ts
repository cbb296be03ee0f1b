/**
 * Ollama native-API mock server (node:http only), for the ollama adapter's tests, the contract
 * suite and benchmarks. Listens on 127.0.0.1 by default; `url` is the host (no path), like an
 * Ollama `baseUrl`.
 *
 * Endpoints:
 *   POST /api/chat    non-streaming JSON, or NDJSON when `stream` is true or absent (Ollama's default)
 *   POST /api/embed   `input` string or string[] -> `embeddings` (8 deterministic floats, or `dimensions`)
 *   GET  /api/tags    installed models; GET /api/version; GET / -> "Ollama is running"
 * Errors use Ollama's shape `{"error": "..."}`: invalid JSON -> 400, no `model` -> 400,
 * chat without `messages` -> 400, unknown model -> 404 `model "x" not found, try pulling it first`
 * (a model is unknown when its name starts with "missing", or when `models` was given and does not
 * list it). Other paths -> 404 text `404 page not found`. No auth (recorded headers show any sent).
 *
 * Deterministic chat replies (same conventions as openai-mock.ts):
 *   - last message is a user message starting with "echo "    -> "echo: <rest>"
 *   - `tools` present and the last user message contains "call tool"
 *       -> one tool call of tools[0] with arguments {"city":"Paris"} (an object, as Ollama sends it),
 *          content '', done_reason 'stop' (Ollama does not say 'tool_calls')
 *   - last message has role 'tool'                             -> "tool result: <its content>"
 *   - the last user message contains "stream error" (streaming only)
 *       -> one content line, then `{"error":"..."}` and the end of the body (a mid-stream error)
 *   - otherwise "tok0 tok1 ... tok{N-1}", N = header `x-mock-tokens` (default 12), capped by
 *     options.num_predict (then done_reason 'length').
 *   Streaming: one line per word ("tok0", " tok1", ...), the tool call in one line, then the
 *   `done: true` line with done_reason, prompt_eval_count (ceil(chars/4), min 1) and eval_count.
 *   `think` true or a level name (Ollama's thinking models): the reasoning trace THINKING comes in
 *   `message.thinking`, apart from the answer (streaming: one line with only `thinking`, before the content
 *   lines); `think` that is not a boolean, null or a string → 400, as Ollama answers.
 *
 * FAULTS: the same spec and DSL as openai-mock.ts (`parseFault`): `mock.fault = spec` or header
 * `x-mock-fault: spec`. status/message/retryAfter/retryAfterMs/times/path/delayMs/reset/hang apply
 * as there (error bodies are `{"error": message}`); for streams, "content chunks" are the lines
 * before the done line: cutAfter:k closes the socket after k of them, stallAfter:k goes silent,
 * malformedAfter:k sends `{not json` and continues, noDone omits the done line, chunkDelayMs
 * spaces the lines. `code`, `type` and `param` are accepted and ignored (Ollama has no codes).
 *
 * Standalone: `node --experimental-strip-types test/helpers/ollama-mock.ts` listens on MOCK_PORT
 * (default 9200) and prints `{"url":"http://127.0.0.1:9200"}`.
 */
import { createServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { pathToFileURL } from 'node:url'
import { parseFault } from './openai-mock.ts'
import type { Fault, FaultSpec, MockRequestRecord } from './openai-mock.ts'

export type { Fault, FaultSpec, MockRequestRecord }

export interface OllamaMock {
  /** e.g. http://127.0.0.1:PORT (the Ollama host; paths start with /api) */
  readonly url: string
  readonly port: number
  readonly requests: MockRequestRecord[]
  /** Parsed current fault (with `times` = remaining uses), or null. Setter accepts DSL strings. */
  get fault(): Fault | null
  set fault(spec: FaultSpec | null)
  /** Clears requests, fault, header-fault counters and unconsumed abort records. */
  reset(): void
  /** Destroys all sockets (incl. hung/stalled), cancels delays, stops listening. */
  close(): Promise<void>
  /** Resolves with an aborted request record (oldest unconsumed, else the next one). Default 5000ms. */
  waitForAbort(timeoutMs?: number): Promise<MockRequestRecord>
}

export interface StartOllamaMockOptions {
  port?: number
  host?: string
  /** default true */
  record?: boolean
  /** Installed models (for /api/tags and the 404 check). Default: any name not starting with "missing". */
  models?: readonly string[]
}

const DEFAULT_TAGS: readonly string[] = ['llama3.2:latest', 'qwen2.5:7b', 'nomic-embed-text:latest']
const TOOL_ARGS: Readonly<Record<string, unknown>> = { city: 'Paris' }
const MAX_TOKENS_HEADER = 100000

type Plan =
  | { kind: 'text'; pieces: string[]; finish: 'stop' | 'length'; streamError: boolean }
  | { kind: 'tool'; name: string }

function textOf(content: unknown): string {
  if (typeof content === 'string') return content
  return ''
}

function splitWords(text: string): string[] {
  if (text === '') return []
  return text.split(' ').map((w, i) => (i === 0 ? w : ' ' + w))
}

function promptTokens(messages: unknown[]): number {
  let chars = 0
  for (const m of messages) if (m !== null && typeof m === 'object') chars += textOf((m as { content?: unknown }).content).length
  return Math.max(1, Math.ceil(chars / 4))
}

function headerString(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v
}

function headerInt(v: string | string[] | undefined, def: number, max: number): number {
  const s = headerString(v)
  if (s === undefined) return def
  const n = Number.parseInt(s, 10)
  return Number.isFinite(n) && n >= 0 ? Math.min(n, max) : def
}

/** FNV-1a 32-bit */
function hash32(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

function embeddingFor(text: string, dims: number): number[] {
  let x = hash32(text) || 1
  const v = new Array<number>(dims)
  let norm = 0
  for (let i = 0; i < dims; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    const f = x / 0xffffffff - 0.5
    v[i] = f
    norm += f * f
  }
  norm = Math.sqrt(norm) || 1
  for (let i = 0; i < dims; i++) v[i] = Math.fround((v[i] as number) / norm)
  return v
}

/** The reasoning trace of a thinking request (`think` true or a level). */
export const THINKING = 'The user wants an echo. Reply with the words.'

function thinks(body: Record<string, unknown>): boolean {
  const t = body['think']
  return t === true || (typeof t === 'string' && t !== '')
}

function planReply(body: Record<string, unknown>, messages: unknown[], tokens: number): Plan {
  const last = messages[messages.length - 1] as { role?: unknown; content?: unknown } | undefined
  const text = last ? textOf(last.content) : ''
  if (last?.role === 'user') {
    if (text.startsWith('echo ')) return { kind: 'text', pieces: splitWords('echo: ' + text.slice(5)), finish: 'stop', streamError: false }
    const tools = body['tools']
    if (Array.isArray(tools) && tools.length > 0 && text.includes('call tool')) {
      const t = tools[0] as { function?: { name?: unknown } } | undefined
      return { kind: 'tool', name: typeof t?.function?.name === 'string' ? t.function.name : 'tool' }
    }
  } else if (last?.role === 'tool') {
    return { kind: 'text', pieces: splitWords('tool result: ' + text), finish: 'stop', streamError: false }
  }
  let n = tokens
  let finish: 'stop' | 'length' = 'stop'
  const cap = (body['options'] as { num_predict?: unknown } | undefined)?.num_predict
  if (typeof cap === 'number' && cap >= 0 && cap < n) { n = Math.floor(cap); finish = 'length' }
  const pieces = Array.from({ length: n }, (_, i) => (i === 0 ? 'tok0' : ' tok' + i))
  return { kind: 'text', pieces, finish, streamError: last?.role === 'user' && text.includes('stream error') }
}

const DEFAULT_MESSAGE: Readonly<Record<number, string>> = {
  400: 'invalid request (mock)',
  401: 'unauthorized (mock)',
  404: 'model "mock" not found, try pulling it first',
  429: 'too many requests (mock)',
  503: 'server busy, please try again. maximum pending requests exceeded',
}

interface ReqCtx { rec: MockRequestRecord; serverClosed: boolean }
interface PendingSleep { timer: NodeJS.Timeout; resolve: () => void }
interface AbortWaiter { resolve: (r: MockRequestRecord) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }

export function startOllamaMock(opts: StartOllamaMockOptions = {}): Promise<OllamaMock> {
  const host = opts.host ?? '127.0.0.1'
  const record = opts.record ?? true
  const installed = opts.models
  const requests: MockRequestRecord[] = []
  const sockets = new Set<Socket>()
  const sleeps = new Set<PendingSleep>()
  const abortQueue: MockRequestRecord[] = []
  const abortWaiters: AbortWaiter[] = []
  const headerFaultUses = new Map<string, number>()
  let propFault: Fault | null = null
  let closing = false

  function sleep(ms: number): Promise<void> {
    if (!(ms > 0) || closing) return Promise.resolve()
    return new Promise<void>((resolve) => {
      const e: PendingSleep = { timer: setTimeout(() => { sleeps.delete(e); resolve() }, ms), resolve }
      sleeps.add(e)
    })
  }

  function onAbort(rec: MockRequestRecord): void {
    const w = abortWaiters.shift()
    if (w) { clearTimeout(w.timer); w.resolve(rec); return }
    abortQueue.push(rec)
    if (abortQueue.length > 100) abortQueue.shift()
  }

  function selectFault(path: string, header: string | undefined): Fault | Error | null {
    if (header !== undefined && header.trim() !== '') {
      let f: Fault
      try { f = parseFault(header) } catch (e) { return e instanceof Error ? e : new Error(String(e)) }
      if (f.path !== undefined && !path.includes(f.path)) return null
      if (f.times !== undefined) {
        const used = headerFaultUses.get(header) ?? 0
        if (used >= f.times) return null
        headerFaultUses.set(header, used + 1)
      }
      return f
    }
    const f = propFault
    if (f === null || (f.path !== undefined && !path.includes(f.path))) return null
    if (f.times !== undefined) {
      if (f.times <= 0) { propFault = null; return null }
      f.times -= 1
      if (f.times <= 0) propFault = null
    }
    return f
  }

  function knows(model: string): boolean {
    if (model.startsWith('missing')) return false
    return installed === undefined || installed.includes(model) || installed.includes(`${model}:latest`)
  }

  function send(res: ServerResponse, ctx: ReqCtx, status: number, body: string, type = 'application/json; charset=utf-8', extra?: Record<string, string>): void {
    if (res.destroyed) return
    ctx.rec.status = status
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...extra })
    res.end(body)
  }

  function sendError(res: ServerResponse, ctx: ReqCtx, status: number, message: string, extra?: Record<string, string>): void {
    send(res, ctx, status, JSON.stringify({ error: message }), undefined, extra)
  }

  function sendFault(res: ServerResponse, ctx: ReqCtx, f: Fault): void {
    const status = f.status ?? 500
    const extra: Record<string, string> = {}
    if (f.retryAfter !== undefined) extra['retry-after'] = String(f.retryAfter)
    if (f.retryAfterMs !== undefined) extra['retry-after-ms'] = String(f.retryAfterMs)
    sendError(res, ctx, status, f.message ?? DEFAULT_MESSAGE[status] ?? 'internal server error (mock)', extra)
  }

  function cutSocket(res: ServerResponse, ctx: ReqCtx): void {
    ctx.serverClosed = true
    const sock = res.socket
    if (sock && !sock.destroyed) sock.end(() => sock.destroy())
    else res.destroy()
  }

  function base(model: string): string {
    return `{"model":${JSON.stringify(model)},"created_at":"${new Date().toISOString()}"`
  }

  function finalFields(finish: string, prompt: number, completion: number): string {
    return `"done_reason":"${finish}","done":true,"total_duration":1200000,"load_duration":100000,` +
      `"prompt_eval_count":${prompt},"prompt_eval_duration":300000,"eval_count":${completion},"eval_duration":800000}`
  }

  function chatJson(model: string, plan: Plan, prompt: number, thinking: boolean): string {
    if (plan.kind === 'tool') {
      const msg = { role: 'assistant', content: '', tool_calls: [{ function: { name: plan.name, arguments: TOOL_ARGS } }] }
      return `${base(model)},"message":${JSON.stringify(msg)},${finalFields('stop', prompt, 8)}`
    }
    const msg = thinking ? { role: 'assistant', content: plan.pieces.join(''), thinking: THINKING } : { role: 'assistant', content: plan.pieces.join('') }
    return `${base(model)},"message":${JSON.stringify(msg)},${finalFields(plan.finish, prompt, plan.pieces.length)}`
  }

  async function streamChat(res: ServerResponse, ctx: ReqCtx, model: string, plan: Plan, prompt: number, f: Fault | null, delayHeader: number, thinking: boolean): Promise<void> {
    ctx.rec.status = 200
    res.writeHead(200, { 'content-type': 'application/x-ndjson' })
    const delay = f?.chunkDelayMs ?? delayHeader
    const lines: string[] = plan.kind === 'tool'
      ? [`${base(model)},"message":${JSON.stringify({ role: 'assistant', content: '', tool_calls: [{ function: { name: plan.name, arguments: TOOL_ARGS } }] })},"done":false}\n`]
      : plan.pieces.map((p) => `${base(model)},"message":${JSON.stringify({ role: 'assistant', content: p })},"done":false}\n`)
    if (thinking) lines.unshift(`${base(model)},"message":${JSON.stringify({ role: 'assistant', content: '', thinking: THINKING })},"done":false}\n`)
    const total = lines.length
    const at = (k: number | undefined, sent: number): boolean => k !== undefined && Math.min(k, total) === sent
    const write = async (s: string): Promise<boolean> => {
      if (res.destroyed || closing) return false
      if (delay > 0) { await sleep(delay); if (res.destroyed || closing) return false }
      res.write(s)
      return true
    }
    let malformedDone = false
    const checkpoint = async (sent: number): Promise<boolean> => {
      if (f === null) return true
      if (!malformedDone && at(f.malformedAfter, sent)) { malformedDone = true; if (!(await write('{not json\n'))) return false }
      if (at(f.cutAfter, sent)) { cutSocket(res, ctx); return false }
      if (at(f.stallAfter, sent)) return false
      return true
    }
    if (!(await checkpoint(0))) return
    for (let i = 0; i < total; i++) {
      if (!(await write(lines[i] as string))) return
      if (plan.kind === 'text' && plan.streamError) {
        if (await write('{"error":"an error was encountered while running the model: mock failure"}\n')) res.end()
        return
      }
      if (!(await checkpoint(i + 1))) return
    }
    if (f?.noDone !== true) {
      const completion = plan.kind === 'tool' ? 8 : plan.pieces.length
      const finish = plan.kind === 'tool' ? 'stop' : plan.finish
      if (!(await write(`${base(model)},"message":{"role":"assistant","content":""},${finalFields(finish, prompt, completion)}\n`))) return
    }
    res.end()
  }

  async function handleChat(req: IncomingMessage, res: ServerResponse, ctx: ReqCtx, body: Record<string, unknown>, f: Fault | null): Promise<void> {
    const model = body['model'] as string
    const messages = body['messages']
    if (!Array.isArray(messages)) { sendError(res, ctx, 400, 'messages is required'); return }
    const think = body['think']
    if (think !== undefined && think !== null && typeof think !== 'boolean' && typeof think !== 'string') {
      sendError(res, ctx, 400, `invalid think value: ${JSON.stringify(think)} (must be "high", "medium", "low", true, or false)`)
      return
    }
    const plan = planReply(body, messages, headerInt(req.headers['x-mock-tokens'], 12, MAX_TOKENS_HEADER))
    const prompt = promptTokens(messages)
    if (body['stream'] === false) {
      send(res, ctx, 200, chatJson(model, plan, prompt, thinks(body)))
      return
    }
    await streamChat(res, ctx, model, plan, prompt, f, headerInt(req.headers['x-mock-chunk-delay-ms'], 0, 600000), thinks(body))
  }

  function handleEmbed(res: ServerResponse, ctx: ReqCtx, body: Record<string, unknown>): void {
    const input = body['input']
    let inputs: string[]
    if (typeof input === 'string') inputs = [input]
    else if (Array.isArray(input) && input.length > 0 && input.every((x) => typeof x === 'string')) inputs = input as string[]
    else { sendError(res, ctx, 400, 'invalid input type'); return }
    const d = body['dimensions']
    const dims = typeof d === 'number' && d >= 1 && d <= 4096 ? Math.floor(d) : 8
    let prompt = 0
    const embeddings = inputs.map((t) => { prompt += Math.max(1, Math.ceil(t.length / 4)); return embeddingFor(t, dims) })
    send(res, ctx, 200, JSON.stringify({ model: body['model'], embeddings, total_duration: 500000, load_duration: 100000, prompt_eval_count: prompt }))
  }

  function tags(): string {
    const names = installed ?? DEFAULT_TAGS
    return JSON.stringify({
      models: names.map((name) => ({
        name,
        model: name,
        modified_at: '2025-01-01T00:00:00Z',
        size: 2019393189,
        digest: hash32(name).toString(16).padStart(8, '0').repeat(8),
        details: { parent_model: '', format: 'gguf', family: 'llama', families: ['llama'], parameter_size: '3.2B', quantization_level: 'Q4_K_M' },
      })),
    })
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET'
    const rawPath = req.url ?? '/'
    const q = rawPath.indexOf('?')
    const path = q === -1 ? rawPath : rawPath.slice(0, q)
    const rec: MockRequestRecord = { method, path: rawPath, headers: record ? req.headers : {}, body: undefined, aborted: false, receivedAt: Date.now() }
    const ctx: ReqCtx = { rec, serverClosed: false }
    if (record) requests.push(rec)
    res.on('close', () => {
      rec.closedAt = Date.now()
      if (!res.writableFinished && !ctx.serverClosed && !closing) { rec.aborted = true; onAbort(rec) }
    })

    let raw = ''
    if (method !== 'GET' && method !== 'HEAD') {
      const chunks: Buffer[] = []
      try { for await (const c of req) chunks.push(c as Buffer) } catch { return }
      raw = Buffer.concat(chunks).toString('utf8')
    }
    let body: unknown
    let jsonError = false
    if (raw !== '') {
      try { body = JSON.parse(raw) } catch { jsonError = true }
      if (record) rec.body = jsonError ? raw : body
    }

    const f = selectFault(path, headerString(req.headers['x-mock-fault']))
    if (f instanceof Error) { sendError(res, ctx, 400, `invalid x-mock-fault: ${f.message}`); return }
    if (f !== null) {
      if (f.delayMs !== undefined && f.delayMs > 0) { await sleep(f.delayMs); if (res.destroyed || closing) return }
      if (f.reset === true) {
        ctx.serverClosed = true
        const sock = req.socket
        if (typeof sock.resetAndDestroy === 'function') sock.resetAndDestroy()
        else sock.destroy()
        return
      }
      if (f.hang === true) return
      if (f.status !== undefined) { sendFault(res, ctx, f); return }
    }

    if ((method === 'GET' || method === 'HEAD') && path === '/') { send(res, ctx, 200, 'Ollama is running', 'text/plain; charset=utf-8'); return }
    if (method === 'GET' && path === '/api/tags') { send(res, ctx, 200, tags()); return }
    if (method === 'GET' && path === '/api/version') { send(res, ctx, 200, '{"version":"0.12.0-mock"}'); return }
    const isChat = path === '/api/chat'
    const isEmbed = path === '/api/embed'
    if (method !== 'POST' || (!isChat && !isEmbed)) { send(res, ctx, 404, '404 page not found', 'text/plain'); return }
    if (jsonError) { sendError(res, ctx, 400, "invalid character looking for beginning of value"); return }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) { sendError(res, ctx, 400, 'request body must be a JSON object'); return }
    const obj = body as Record<string, unknown>
    const model = obj['model']
    if (typeof model !== 'string' || model === '') { sendError(res, ctx, 400, 'model is required'); return }
    if (!knows(model)) { sendError(res, ctx, 404, `model "${model}" not found, try pulling it first`); return }
    if (isChat) await handleChat(req, res, ctx, obj, f)
    else handleEmbed(res, ctx, obj)
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(500, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ error: `mock internal error: ${err instanceof Error ? err.message : String(err)}` }))
      } else {
        res.destroy()
      }
    })
  })
  server.keepAliveTimeout = 65000
  server.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  server.on('clientError', (_e, socket) => { if (!socket.destroyed) socket.destroy() })

  return new Promise<OllamaMock>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject)
      const port = (server.address() as AddressInfo).port
      const urlHost = host.includes(':') ? `[${host}]` : host
      let closePromise: Promise<void> | undefined
      resolve({
        url: `http://${urlHost}:${port}`,
        port,
        requests,
        get fault(): Fault | null { return propFault },
        set fault(spec: FaultSpec | null) { propFault = spec === null ? null : parseFault(spec) },
        reset(): void {
          requests.length = 0
          propFault = null
          headerFaultUses.clear()
          abortQueue.length = 0
        },
        waitForAbort(timeoutMs = 5000): Promise<MockRequestRecord> {
          const queued = abortQueue.shift()
          if (queued) return Promise.resolve(queued)
          return new Promise<MockRequestRecord>((res, rej) => {
            const w: AbortWaiter = {
              resolve: res,
              reject: rej,
              timer: setTimeout(() => {
                const i = abortWaiters.indexOf(w)
                if (i !== -1) abortWaiters.splice(i, 1)
                rej(new Error(`ollama-mock: no aborted request within ${timeoutMs}ms`))
              }, timeoutMs),
            }
            abortWaiters.push(w)
          })
        },
        close(): Promise<void> {
          if (closePromise) return closePromise
          closing = true
          for (const s of sleeps) { clearTimeout(s.timer); s.resolve() }
          sleeps.clear()
          for (const w of abortWaiters.splice(0)) { clearTimeout(w.timer); w.reject(new Error('ollama-mock closed')) }
          closePromise = new Promise<void>((res) => {
            server.close(() => res())
            server.closeAllConnections()
            for (const s of sockets) s.destroy()
            sockets.clear()
          })
          return closePromise
        },
      })
    })
  })
}

const entry = process.argv[1]
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  const mock = await startOllamaMock({ port: Number(process.env['MOCK_PORT'] ?? 9200), host: process.env['MOCK_HOST'] ?? '127.0.0.1', record: process.env['MOCK_RECORD'] === '1' })
  process.stdout.write(JSON.stringify({ url: mock.url }) + '\n')
  const stop = (): void => { void mock.close().then(() => process.exit(0)) }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
