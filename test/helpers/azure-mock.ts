/**
 * Azure OpenAI mock (node:http only): Azure's URLs, auth and content filter in front of an
 * internal openai-mock.ts, which produces the completions, streams, tool calls, embeddings and
 * faults. `url` is the resource endpoint (http://127.0.0.1:PORT), like an Azure `baseUrl`.
 *
 * Endpoints:
 *   POST /openai/deployments/{deployment}/chat/completions?api-version=...
 *   POST /openai/deployments/{deployment}/embeddings?api-version=...
 *   POST /openai/v1/chat/completions, /openai/v1/embeddings      (deployment in the body's `model`)
 *   GET  /openai/models?api-version=...,  GET /openai/v1/models
 * Checks, in order: `api-key` header (missing or, when `apiKey` was given, different -> 401
 * `{"error":{"code":"401","message":"Access denied due to invalid subscription key..."}}`);
 * `api-version` on the deployments surface (missing -> 404 `Resource not found`, like Azure);
 * the deployment (name starting with "missing", or absent from `deployments` when given ->
 * 404 `DeploymentNotFound`).
 * Content filter (chat): a user message containing "filtered" -> 400 `code: content_filter`,
 * `innererror: {code: ResponsibleAIPolicyViolation, content_filter_result: {..., violence: {filtered: true}}}`;
 * the last user message containing "unsafe output" -> 200 with finish_reason 'content_filter'
 * (streaming: a partial text chunk, then the finish chunk, then [DONE]).
 * Everything else goes to the inner OpenAI mock (same replies: "echo ...", "call tool", tool
 * results, tokN; `x-mock-tokens`), and a streamed answer starts with Azure's
 * `prompt_filter_results` event (choices: []).
 *
 * FAULTS: exactly openai-mock.ts's (`mock.fault = spec` or header `x-mock-fault`), applied by the
 * inner mock after Azure's checks; a `path:` filter matches the inner path (/v1/chat/completions).
 * A cut or reset upstream of the proxy cuts or resets the client's connection too.
 */
import { createServer, request as httpRequest } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { startOpenAIMock } from './openai-mock.ts'
import type { Fault, FaultSpec, MockRequestRecord, OpenAIMock } from './openai-mock.ts'

export type { Fault, FaultSpec, MockRequestRecord }

export interface AzureMock {
  /** The resource endpoint, e.g. http://127.0.0.1:PORT */
  readonly url: string
  readonly port: number
  /** Requests as Azure saw them (path with query, headers, parsed body). */
  readonly requests: MockRequestRecord[]
  get fault(): Fault | null
  set fault(spec: FaultSpec | null)
  /** The OpenAI mock behind the proxy. */
  readonly inner: OpenAIMock
  reset(): void
  close(): Promise<void>
}

export interface StartAzureMockOptions {
  port?: number
  host?: string
  /** Required `api-key` value; default: any non-empty key. */
  apiKey?: string
  /** Known deployments; default: any name not starting with "missing". */
  deployments?: readonly string[]
}

const FORWARDED_HEADERS = ['x-mock-fault', 'x-mock-tokens', 'x-mock-chunk-delay-ms', 'x-request-id'] as const

const FILTER_RESULT_SAFE = {
  hate: { filtered: false, severity: 'safe' },
  self_harm: { filtered: false, severity: 'safe' },
  sexual: { filtered: false, severity: 'safe' },
  violence: { filtered: false, severity: 'safe' },
}

const PROMPT_FILTER_EVENT = 'data: ' + JSON.stringify({
  choices: [], created: 0, id: '', model: '', object: '',
  prompt_filter_results: [{ prompt_index: 0, content_filter_results: { ...FILTER_RESULT_SAFE, jailbreak: { filtered: false, detected: false } } }],
}) + '\n\n'

function contentFilterBody(): string {
  return JSON.stringify({
    error: {
      message: "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
      type: null,
      param: 'prompt',
      code: 'content_filter',
      status: 400,
      innererror: {
        code: 'ResponsibleAIPolicyViolation',
        content_filter_result: {
          ...FILTER_RESULT_SAFE,
          jailbreak: { filtered: false, detected: false },
          violence: { filtered: true, severity: 'medium' },
        },
      },
    },
  })
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) return ''
  let s = ''
  for (const p of content) if (p !== null && typeof p === 'object' && typeof (p as { text?: unknown }).text === 'string') s += (p as { text: string }).text
  return s
}

function userTexts(body: Record<string, unknown>): string[] {
  const messages = Array.isArray(body['messages']) ? (body['messages'] as { role?: unknown; content?: unknown }[]) : []
  return messages.filter((m) => m?.role === 'user').map((m) => textOf(m.content))
}

function headerString(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v
}

type Route =
  | { kind: 'op'; op: 'chat/completions' | 'embeddings'; deployment: string | undefined; v1: boolean }
  | { kind: 'models'; v1: boolean }
  | { kind: 'none' }

function route(method: string, path: string): Route {
  if (method === 'GET' && path === '/openai/models') return { kind: 'models', v1: false }
  if (method === 'GET' && path === '/openai/v1/models') return { kind: 'models', v1: true }
  if (method !== 'POST') return { kind: 'none' }
  const d = /^\/openai\/deployments\/([^/]+)\/(chat\/completions|embeddings)$/.exec(path)
  if (d) return { kind: 'op', op: d[2] as 'chat/completions' | 'embeddings', deployment: decodeURIComponent(d[1] as string), v1: false }
  const v = /^\/openai\/v1\/(chat\/completions|embeddings)$/.exec(path)
  if (v) return { kind: 'op', op: v[1] as 'chat/completions' | 'embeddings', deployment: undefined, v1: true }
  return { kind: 'none' }
}

export async function startAzureMock(opts: StartAzureMockOptions = {}): Promise<AzureMock> {
  const host = opts.host ?? '127.0.0.1'
  const inner = await startOpenAIMock({ host: '127.0.0.1' })
  const innerUrl = new URL(inner.url)
  const requests: MockRequestRecord[] = []
  const sockets = new Set<Socket>()
  /** Responses the proxy cut or reset on purpose (not client aborts). */
  const serverClosed = new WeakSet<ServerResponse>()
  let closing = false

  function knows(deployment: string): boolean {
    if (deployment.startsWith('missing')) return false
    return opts.deployments === undefined || opts.deployments.includes(deployment)
  }

  function send(res: ServerResponse, rec: MockRequestRecord, status: number, body: string): void {
    if (res.destroyed) return
    rec.status = status
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'apim-request-id': `mock-${requests.length}` })
    res.end(body)
  }

  function sendError(res: ServerResponse, rec: MockRequestRecord, status: number, code: string, message: string): void {
    send(res, rec, status, JSON.stringify({ error: { code, message } }))
  }

  function filteredCompletion(res: ServerResponse, rec: MockRequestRecord, model: string, stream: boolean): void {
    const id = `chatcmpl-azf${requests.length}`
    const created = Math.floor(Date.now() / 1000)
    const filterResults = { ...FILTER_RESULT_SAFE, violence: { filtered: true, severity: 'high' } }
    if (!stream) {
      send(res, rec, 200, JSON.stringify({
        id, object: 'chat.completion', created, model,
        prompt_filter_results: [{ prompt_index: 0, content_filter_results: FILTER_RESULT_SAFE }],
        choices: [{ index: 0, message: { role: 'assistant', content: null }, finish_reason: 'content_filter', content_filter_results: filterResults }],
        usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 },
      }))
      return
    }
    rec.status = 200
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    const chunk = (delta: object, finish: string | null, extra: object = {}): string =>
      'data: ' + JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finish, ...extra }] }) + '\n\n'
    res.write(PROMPT_FILTER_EVENT)
    res.write(chunk({ role: 'assistant', content: 'Partial' }, null))
    res.write(chunk({}, 'content_filter', { content_filter_results: filterResults }))
    res.end('data: [DONE]\n\n')
  }

  function proxy(req: IncomingMessage, res: ServerResponse, rec: MockRequestRecord, op: string, body: Record<string, unknown>): void {
    const payload = JSON.stringify(body)
    const headers: Record<string, string> = { 'content-type': 'application/json', authorization: 'Bearer azure-mock-inner', 'content-length': String(Buffer.byteLength(payload)) }
    for (const h of FORWARDED_HEADERS) {
      const v = headerString(req.headers[h])
      if (v !== undefined) headers[h] = v
    }
    let upstreamEnded = false
    const up = httpRequest({ host: innerUrl.hostname, port: innerUrl.port, method: 'POST', path: `/v1/${op}`, headers }, (ir) => {
      const status = ir.statusCode ?? 502
      rec.status = status
      const isStream = status === 200 && String(ir.headers['content-type'] ?? '').startsWith('text/event-stream')
      const out: Record<string, string> = { 'content-type': String(ir.headers['content-type'] ?? 'application/json') }
      for (const h of ['retry-after', 'retry-after-ms']) if (ir.headers[h] !== undefined) out[h] = String(ir.headers[h])
      res.writeHead(status, out)
      if (isStream) res.write(PROMPT_FILTER_EVENT)
      ir.on('data', (c: Buffer) => { if (!res.destroyed) res.write(c) })
      ir.on('end', () => { upstreamEnded = true; if (!res.destroyed) res.end() })
      ir.on('error', () => undefined)
      ir.on('close', () => {
        // The inner mock cut the body (cutAfter): cut ours too.
        if (!upstreamEnded && !res.destroyed) {
          serverClosed.add(res)
          const s = res.socket
          if (s && !s.destroyed) s.end(() => s.destroy())
          else res.destroy()
        }
      })
    })
    up.on('error', () => {
      // The inner mock reset the connection before answering: reset the client's.
      serverClosed.add(res)
      if (res.headersSent) { res.destroy(); return }
      const s = req.socket
      if (typeof s.resetAndDestroy === 'function') s.resetAndDestroy()
      else s.destroy()
    })
    res.on('close', () => { if (!res.writableFinished) up.destroy() })
    up.end(payload)
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET'
    const url = new URL(req.url ?? '/', 'http://azure.mock')
    const rec: MockRequestRecord = { method, path: url.pathname + url.search, headers: req.headers, body: undefined, aborted: false, receivedAt: Date.now() }
    requests.push(rec)
    res.on('close', () => {
      rec.closedAt = Date.now()
      if (!res.writableFinished && !closing && !serverClosed.has(res)) rec.aborted = true
    })
    let raw = ''
    if (method !== 'GET' && method !== 'HEAD') {
      const chunks: Buffer[] = []
      try { for await (const c of req) chunks.push(c as Buffer) } catch { return }
      raw = Buffer.concat(chunks).toString('utf8')
    }
    let body: Record<string, unknown> = {}
    if (raw !== '') {
      try {
        const v: unknown = JSON.parse(raw)
        if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object')
        body = v as Record<string, unknown>
        rec.body = body
      } catch {
        rec.body = raw
        sendError(res, rec, 400, 'BadRequest', 'The request body is not valid JSON.')
        return
      }
    }

    const key = headerString(req.headers['api-key'])
    if (key === undefined || key === '' || (opts.apiKey !== undefined && key !== opts.apiKey)) {
      sendError(res, rec, 401, '401', 'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.')
      return
    }
    const r = route(method, url.pathname)
    if (r.kind === 'none') { sendError(res, rec, 404, '404', 'Resource not found'); return }
    if (!r.v1 && !url.searchParams.get('api-version')) { sendError(res, rec, 404, '404', 'Resource not found'); return }
    if (r.kind === 'models') {
      const ids = opts.deployments ?? ['gpt-4o', 'gpt-4o-mini', 'text-embedding-3-small']
      send(res, rec, 200, JSON.stringify({ object: 'list', data: ids.map((id) => ({ id, object: 'model', created_at: 1715367049, status: 'succeeded' })) }))
      return
    }
    const deployment = r.deployment ?? (typeof body['model'] === 'string' ? body['model'] : '')
    if (deployment === '') { sendError(res, rec, 400, 'BadRequest', "Missing required parameter: 'model'."); return }
    if (!knows(deployment)) {
      sendError(res, rec, 404, 'DeploymentNotFound', 'The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.')
      return
    }
    if (r.op === 'chat/completions') {
      const texts = userTexts(body)
      if (texts.some((t) => t.includes('filtered'))) { send(res, rec, 400, contentFilterBody()); return }
      if ((texts[texts.length - 1] ?? '').includes('unsafe output')) { filteredCompletion(res, rec, deployment, body['stream'] === true); return }
    }
    proxy(req, res, rec, r.op, r.v1 ? body : { ...body, model: deployment })
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(500, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ error: { code: 'InternalServerError', message: `mock internal error: ${err instanceof Error ? err.message : String(err)}` } }))
      } else {
        res.destroy()
      }
    })
  })
  server.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  server.on('clientError', (_e, socket) => { if (!socket.destroyed) socket.destroy() })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port ?? 0, host, () => { server.off('error', reject); resolve() })
  })
  const port = (server.address() as AddressInfo).port
  let closePromise: Promise<void> | undefined
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    requests,
    inner,
    get fault(): Fault | null { return inner.fault },
    set fault(spec: FaultSpec | null) { inner.fault = spec },
    reset(): void { requests.length = 0; inner.reset() },
    close(): Promise<void> {
      if (closePromise) return closePromise
      closing = true
      closePromise = Promise.all([
        new Promise<void>((res) => {
          server.close(() => res())
          server.closeAllConnections()
          for (const s of sockets) s.destroy()
          sockets.clear()
        }),
        inner.close(),
      ]).then(() => undefined)
      return closePromise
    },
  }
}
