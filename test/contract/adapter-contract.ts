/**
 * The provider adapter contract (STYLE.md §3): one suite every adapter passes against a mock that
 * speaks its provider's wire format. `runAdapterContract(spec)` registers the checks for one
 * adapter; test/contract/adapters.test.ts runs it for each built-in provider and the custom
 * example adapter.
 *
 * Adapters are built the way the gateway builds them: `factory.configErrors(cfg)` (which applies
 * the schema defaults in place) must return [], then `await factory.prepare?.(cfg)`, then
 * `factory.create(name, cfg, { dispatcherFor })` with one real undici Pool per origin.
 *
 * A check that does not apply to an adapter is named in its spec's `capabilities` with the reason
 * ({ na: '...' }); it is not registered as a test. One test per adapter checks that every such
 * entry names its reason and prints the list, so the report shows what was not checked and why.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { createServer } from 'node:net'
import { inspect } from 'node:util'
import { Pool } from 'undici'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { GatewayError, type ErrorCode } from '../../gateway/errors.ts'
import type {
  AdapterDeps, AdapterFactory, ChatChunk, ChatRequest, ChatResponse, ChatStream, ExecuteParams,
  ProviderAdapter, ProviderConfig, ToolDefinition, Usage,
} from '../../providers/types.ts'

// ---------- spec ----------

/** Upstream time limits every contract config uses (short, so hang and stall checks are fast). */
export const CONTRACT_TIMEOUTS = { firstByteMs: 1500, idleMs: 1000 } as const

/** Extra time allowed on top of a timeout before the check calls it a hang. */
const SLACK_MS = 1500

/** A check that does not apply to an adapter, with the reason. */
export interface NotApplicable { na: string }
export type Capability<T = true> = T | NotApplicable

export function isNA(c: unknown): c is NotApplicable {
  return c !== null && typeof c === 'object' && typeof (c as { na?: unknown }).na === 'string'
}

/** The fault keys the contract uses; every mock accepts them in object form. */
export interface ContractFault {
  status?: number
  message?: string
  retryAfter?: number
  reset?: boolean
  hang?: boolean
  cutAfter?: number
  stallAfter?: number
  malformedAfter?: number
  chunkDelayMs?: number
  /** Mock-specific variants: a stream that ends without the provider's completion signal, or with an in-stream error. */
  noDone?: boolean
  noStop?: boolean
  noFinish?: boolean
  errorAfter?: number
}

export interface ContractMockRequest {
  method: string
  path: string
  headers: IncomingHttpHeaders
  body: unknown
  aborted: boolean
}

/** What the suite needs from a provider mock (test/helpers/*-mock.ts, adapted by the spec). */
export interface ContractMock {
  /** The mock's own URL form (host, or host + /v1): what `config()` receives as `mockUrl`. */
  readonly url: string
  readonly requests: readonly ContractMockRequest[]
  setFault(f: ContractFault | null): void
  /** Clears requests and the fault. */
  reset(): void
  close(): Promise<void>
}

/** What the upstream side of an HTTP adapter looks like. */
export interface UpstreamCapability {
  /** The (lower-case) header that carries the provider credential. */
  credentialHeader: string
  /** Its value for a configured key (`Bearer <key>`, or the key itself). */
  credentialValue(apiKey: string): string
  /** The provider's own error code the adapter must keep (`providerCode`), per HTTP status; null = the provider sends none. */
  providerCodes: Readonly<Record<429 | 400 | 401 | 500 | 503, string | null>>
  /** A unique key in the provider's real format (Azure: 32 hex characters, ...); `sk-contract-<random>` when absent. */
  nativeKey?: () => string
}

export interface AdapterContractSpec {
  /** Suite title, e.g. 'azure-openai (v1 mode)'. */
  title: string
  factory: AdapterFactory
  /** The provider's name in config (`providers.<name>`). */
  providerName: string
  /** A fresh valid config entry each call (the validator fills defaults in place). Must use CONTRACT_TIMEOUTS. */
  config(env: { mockUrl: string; apiKey: string }): Record<string, unknown>
  /** A top-level field and a value of the wrong type for it. */
  wrongType: { field: string; value: unknown }
  /** Provider-side model for chat (ExecuteParams.model). */
  model: string
  /** What the adapter answers to the user text `text` (the mocks: 'echo hello' → 'echo: hello'). */
  reply(text: string): string
  /** Starts the provider's mock; absent for adapters that make no upstream calls. */
  startMock?: () => Promise<ContractMock>
  capabilities: {
    /** Upstream HTTP checks (errors, resets, timeouts, cut/stalled/malformed streams, headers, health against a closed port). */
    upstream: Capability<UpstreamCapability>
    /** Single tool calls (execute, stream, round trip). */
    tools: Capability
    /** The mock can answer with two tool calls in one turn. */
    parallelToolCalls: Capability
    /** Final usage of a stream the client did not ask usage for (no stream_options): the provider reports it anyway. */
    streamUsageUnrequested: Capability
    /** A fault under which the mock ends the body cleanly but without the provider's completion signal. */
    endWithoutCompletion: Capability<{ fault: ContractFault }>
    /** How the mock sends an error event inside a 200 stream, and the provider code the adapter must keep. */
    midStreamError: Capability<{ fault?: ContractFault; prompt?: string; providerCode: string | null }>
    /** Embeddings: the model to use, or why the adapter has none. */
    embeddings: Capability<{ model: string }>
    /**
     * How the metrics test produces a failed call: 'upstream-500' (a 500 from the mock) or a
     * request the adapter itself rejects.
     */
    failingCall: 'upstream-500' | { request: ChatRequest }
  }
}

// ---------- helpers ----------

const TOOLS: ToolDefinition[] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Current weather in a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  },
  {
    type: 'function',
    function: {
      name: 'get_time',
      description: 'Local time in a time zone',
      parameters: { type: 'object', properties: { tz: { type: 'string' } }, required: ['tz'] },
    },
  },
]

function uniqueKey(): string {
  return `sk-contract-${Math.random().toString(36).slice(2, 12)}${Date.now().toString(36)}`
}

function ask(model: string, text: string, extra: Partial<ChatRequest> = {}): ChatRequest {
  return { model, messages: [{ role: 'user', content: text }], ...extra }
}

async function rejectionOf(p: Promise<unknown>): Promise<GatewayError> {
  try {
    await p
  } catch (e) {
    if (e instanceof GatewayError) return e
    throw new Error(`expected a GatewayError, got ${inspect(e)}`)
  }
  throw new Error('expected a rejection, the call succeeded')
}

interface Drained {
  chunks: ChatChunk[]
  error: unknown
  /** ms from the start of iteration to the end (error or return). */
  elapsedMs: number
  /** ms from the last chunk (or the start) to the end. */
  sinceLastChunkMs: number
}

/** Iterates a stream to its end; `each` runs after every chunk (return 'break' to stop early). */
async function drain(stream: ChatStream, each?: (c: ChatChunk, i: number) => void | 'break'): Promise<Drained> {
  const chunks: ChatChunk[] = []
  const t0 = performance.now()
  let last = t0
  let error: unknown
  try {
    for await (const c of stream) {
      last = performance.now()
      chunks.push(c)
      if (each?.(c, chunks.length - 1) === 'break') break
    }
  } catch (e) {
    error = e
  }
  const t1 = performance.now()
  return { chunks, error, elapsedMs: t1 - t0, sinceLastChunkMs: t1 - last }
}

function textOf(chunks: readonly ChatChunk[]): string {
  let s = ''
  for (const c of chunks) for (const ch of c.choices) if (ch.index === 0 && typeof ch.delta.content === 'string') s += ch.delta.content
  return s
}

function finishReasons(chunks: readonly ChatChunk[]): string[] {
  const out: string[] = []
  for (const c of chunks) for (const ch of c.choices) if (ch.finish_reason) out.push(ch.finish_reason)
  return out
}

function expectCanonicalChunk(c: ChatChunk): void {
  expect(c.object).toBe('chat.completion.chunk')
  expect(Array.isArray(c.choices)).toBe(true)
  expect(typeof c.id).toBe('string')
  expect(c.id.length).toBeGreaterThan(0)
  expect(typeof c.created).toBe('number')
  expect(typeof c.model).toBe('string')
  for (const ch of c.choices) {
    expect(typeof ch.index).toBe('number')
    expect(ch.delta).toBeTypeOf('object')
  }
}

function expectUsage(u: Usage | null | undefined): asserts u is Usage {
  expect(u, 'usage').toBeDefined()
  expect(u).not.toBeNull()
  const usage = u as Usage
  for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens'] as const) {
    expect(Number.isInteger(usage[k]), `${k} is an integer`).toBe(true)
    expect(usage[k]).toBeGreaterThan(0)
  }
  expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens)
}

function expectCode(e: unknown, ...codes: ErrorCode[]): asserts e is GatewayError {
  expect(e, 'a GatewayError').toBeInstanceOf(GatewayError)
  expect(codes).toContain((e as GatewayError).code)
}

async function waitUntil(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()))
  const port = (srv.address() as { port: number }).port
  await new Promise<void>((r) => srv.close(() => r()))
  return port
}

/** Everything an error carries that could reach a client or a log line. */
function errorSurface(e: GatewayError): string {
  return [e.message, JSON.stringify(e), JSON.stringify(e.headers ?? {}), e.stack ?? '', inspect(e, { depth: 6 })].join('\n')
}

/** A describe block when `active`; otherwise its body runs only to list its checks as not applicable. */
function groupIf(active: boolean, title: string, body: () => void): void {
  if (active) describe(title, body)
  else body()
}

/** Checks that do not apply to the adapter being registered, with their reasons (see runAdapterContract). */
let notApplicable: { title: string; reason: string }[] = []

/** Registers a check; one that does not apply is not registered but listed with its reason. */
function check(title: string, applies: Capability<unknown>, fn: () => Promise<void> | void, timeout?: number): void {
  if (isNA(applies)) notApplicable.push({ title, reason: applies.na })
  else it(title, fn, timeout)
}

// ---------- the suite ----------

export function runAdapterContract(spec: AdapterContractSpec): void {
  const caps = spec.capabilities
  const up = caps.upstream
  const upstream = isNA(up) ? undefined : up

  describe(`adapter contract: ${spec.title}`, () => {
    notApplicable = []
    let mock: ContractMock | undefined
    const pools = new Map<string, Pool>()
    const deps: AdapterDeps = {
      dispatcherFor(origin: string): Pool {
        let p = pools.get(origin)
        if (!p) { p = new Pool(origin); pools.set(origin, p) }
        return p
      },
    }
    const built: ProviderAdapter[] = []
    const apiKey = uniqueKey()
    let adapter: ProviderAdapter

    const mockUrl = (): string => mock?.url ?? 'http://127.0.0.1:9'
    const freshConfig = (key = apiKey, url = mockUrl()): Record<string, unknown> => spec.config({ mockUrl: url, apiKey: key })

    /** configErrors (defaults in place) → prepare → create, as the gateway does. */
    async function build(key = apiKey, url = mockUrl()): Promise<ProviderAdapter> {
      const cfg = freshConfig(key, url)
      expect(spec.factory.configErrors(cfg)).toEqual([])
      if (spec.factory.prepare) expect(await spec.factory.prepare(cfg as ProviderConfig)).toEqual([])
      const a = spec.factory.create(spec.providerName, cfg as ProviderConfig, deps)
      built.push(a)
      return a
    }

    const params = (extra: Partial<ExecuteParams> = {}): ExecuteParams => ({
      model: spec.model,
      signal: new AbortController().signal,
      deadline: Date.now() + 30_000,
      requestId: `contract-req-${Math.random().toString(36).slice(2, 10)}`,
      ...extra,
    })

    const chatRecords = (): ContractMockRequest[] => (mock?.requests ?? []).filter((r) => r.method === 'POST')

    function fault(f: ContractFault): void {
      if (!mock) throw new Error('no mock for this adapter')
      mock.setFault(f)
    }

    beforeAll(async () => {
      if (spec.startMock) mock = await spec.startMock()
      adapter = await build()
    })

    beforeEach(() => { mock?.reset() })

    afterAll(async () => {
      for (const a of built) await a.close()
      await mock?.close()
      await Promise.all([...pools.values()].map((p) => p.close()))
    })

    // 1
    it('1. config: accepts the valid entry, rejects an unknown key and a wrong type naming the field', () => {
      const good = freshConfig()
      expect(spec.factory.configErrors(good)).toEqual([])
      expect(adapter.configErrors(freshConfig())).toEqual([])
      expect(adapter.validateConfig(freshConfig())).toBe(true)

      const unknown = { ...freshConfig(), contractBogusKey: true }
      const e1 = spec.factory.configErrors(unknown)
      expect(e1.length).toBeGreaterThan(0)
      expect(e1.join('\n')).toContain('contractBogusKey')
      expect(adapter.validateConfig({ ...freshConfig(), contractBogusKey: true })).toBe(false)
      expect(adapter.configErrors({ ...freshConfig(), contractBogusKey: true }).join('\n')).toContain('contractBogusKey')

      const wrong = { ...freshConfig(), [spec.wrongType.field]: spec.wrongType.value }
      const e2 = spec.factory.configErrors(wrong)
      expect(e2.length).toBeGreaterThan(0)
      expect(e2.join('\n')).toContain(spec.wrongType.field)
      expect(adapter.validateConfig({ ...freshConfig(), [spec.wrongType.field]: spec.wrongType.value })).toBe(false)
    })

    // 2
    it('2. execute: text answer, finish stop, consistent usage, canonical envelope', async () => {
      const res = await adapter.execute(ask(spec.model, 'echo hello'), params())
      expect(res.object).toBe('chat.completion')
      expect(typeof res.id).toBe('string')
      expect(res.id.length).toBeGreaterThan(0)
      expect(typeof res.model).toBe('string')
      expect(res.model.length).toBeGreaterThan(0)
      expect(typeof res.created).toBe('number')
      expect(res.choices).toHaveLength(1)
      const c = res.choices[0]!
      expect(c.index).toBe(0)
      expect(c.message.role).toBe('assistant')
      expect(c.message.content).toBe(spec.reply('echo hello'))
      expect(c.finish_reason).toBe('stop')
      expectUsage(res.usage)
    })

    // 3
    it('3. stream: canonical chunks, exact text, one finish reason, final agrees (usage included)', async () => {
      const stream = await adapter.stream(ask(spec.model, 'echo hello', { stream: true, stream_options: { include_usage: true } }), params())
      expect(stream.status).toBe(200)
      const d = await drain(stream)
      expect(d.error).toBeUndefined()
      expect(d.chunks.length).toBeGreaterThan(0)
      for (const c of d.chunks) expectCanonicalChunk(c)
      expect(new Set(d.chunks.map((c) => c.id)).size, 'one id for the whole stream').toBe(1)
      expect(textOf(d.chunks)).toBe(spec.reply('echo hello'))
      expect(finishReasons(d.chunks)).toEqual(['stop'])
      const usageChunks = d.chunks.filter((c) => c.usage)
      expect(usageChunks.length, 'chunks carrying usage').toBe(1)
      expectUsage(usageChunks[0]!.usage)

      const final: ChatResponse = await stream.final
      expect(final.object).toBe('chat.completion')
      expect(final.choices[0]?.message.content).toBe(spec.reply('echo hello'))
      expect(final.choices[0]?.finish_reason).toBe('stop')
      expect(final.usage).toEqual(usageChunks[0]!.usage)
    })

    it('3c. stream with the text lane asked for: laneBatches items stand for exactly the chunks of test 3', async () => {
      const plain = await drain(await adapter.stream(ask(spec.model, 'echo hello', { stream: true, stream_options: { include_usage: true } }), params()))
      const stream = await adapter.stream(ask(spec.model, 'echo hello', { stream: true, stream_options: { include_usage: true } }), params({ textLane: true }))
      const items: Array<ChatChunk | string> = []
      if (stream.laneBatches) { for await (const b of stream.laneBatches()) items.push(...b) } else { for await (const c of stream) items.push(c) }
      // Adapters without a lane send only chunks; with one, each text item is the chunk textChunk makes of it.
      const chunks = items.map((x) => (typeof x === 'string' ? stream.textChunk!(x) : x))
      for (const x of items) if (typeof x === 'string') expect(x, 'a lane item is text that needs no JSON escaping').toMatch(/^[^"\\\u0000-\u001f]+$/)
      const shape = (cs: readonly ChatChunk[]): unknown[] => cs.map((c) => ({ ...c, id: '', created: 0 }))
      expect(shape(chunks)).toEqual(shape(plain.chunks))
      const final: ChatResponse = await stream.final
      expect(final.choices[0]?.message.content).toBe(spec.reply('echo hello'))
    })

    check('3b. stream without stream_options: same text and finish; final usage when the provider always reports it', caps.streamUsageUnrequested, async () => {
      const stream = await adapter.stream(ask(spec.model, 'echo hello', { stream: true }), params())
      const d = await drain(stream)
      expect(d.error).toBeUndefined()
      expect(textOf(d.chunks)).toBe(spec.reply('echo hello'))
      expect(finishReasons(d.chunks)).toEqual(['stop'])
      const final = await stream.final
      expect(final.choices[0]?.message.content).toBe(spec.reply('echo hello'))
      expectUsage(final.usage)
    })

    // 4
    check('4. tool call (execute): name, JSON arguments, id, finish tool_calls', caps.tools, async () => {
      const res = await adapter.execute(ask(spec.model, 'please call tool', { tools: TOOLS }), params())
      const c = res.choices[0]!
      expect(c.finish_reason).toBe('tool_calls')
      const calls = c.message.tool_calls ?? []
      expect(calls).toHaveLength(1)
      const call = calls[0]!
      expect(call.type).toBe('function')
      expect(typeof call.id).toBe('string')
      expect(call.id.length).toBeGreaterThan(0)
      expect(call.function.name).toBe('get_weather')
      expect(JSON.parse(call.function.arguments)).toEqual({ city: 'Paris' })
    })

    // 5
    check('5. tool call (stream): fragments reassemble, id/name once on the first delta, finish tool_calls', caps.tools, async () => {
      const stream = await adapter.stream(ask(spec.model, 'please call tool', { tools: TOOLS, stream: true }), params())
      const d = await drain(stream)
      expect(d.error).toBeUndefined()
      for (const c of d.chunks) expectCanonicalChunk(c)
      const byIndex = new Map<number, { id: string; name: string; args: string; deltas: number }>()
      for (const c of d.chunks) {
        for (const ch of c.choices) {
          for (const t of ch.delta.tool_calls ?? []) {
            expect(typeof t.index).toBe('number')
            const seen = byIndex.get(t.index)
            if (!seen) {
              expect(typeof t.id, 'id on the first delta').toBe('string')
              expect(t.id!.length).toBeGreaterThan(0)
              expect(t.function?.name, 'name on the first delta').toBe('get_weather')
              byIndex.set(t.index, { id: t.id!, name: t.function!.name!, args: t.function?.arguments ?? '', deltas: 1 })
            } else {
              expect(t.id, `id only on the first delta of index ${t.index}`).toBeUndefined()
              expect(t.function?.name, `name only on the first delta of index ${t.index}`).toBeUndefined()
              seen.args += t.function?.arguments ?? ''
              seen.deltas++
            }
          }
        }
      }
      expect([...byIndex.keys()]).toEqual([0])
      const call = byIndex.get(0)!
      expect(JSON.parse(call.args)).toEqual({ city: 'Paris' })
      expect(finishReasons(d.chunks)).toEqual(['tool_calls'])
      const final = await stream.final
      expect(final.choices[0]?.finish_reason).toBe('tool_calls')
      const fc = final.choices[0]?.message.tool_calls?.[0]
      expect(fc?.id).toBe(call.id)
      expect(fc?.function.name).toBe('get_weather')
      expect(JSON.parse(fc?.function.arguments ?? 'null')).toEqual({ city: 'Paris' })
    })

    // 6
    check('6a. two tool calls produced in one turn', isNA(caps.tools) ? caps.tools : caps.parallelToolCalls, async () => {
      const res = await adapter.execute(ask(spec.model, 'please call two tools', { tools: TOOLS, parallel_tool_calls: true }), params())
      const calls = res.choices[0]?.message.tool_calls ?? []
      expect(calls).toHaveLength(2)
      expect(new Set(calls.map((c) => c.id)).size).toBe(2)
      expect(res.choices[0]?.finish_reason).toBe('tool_calls')
    })

    check('6b. two tool calls in one assistant turn and their two results go upstream', caps.tools, async () => {
      const res = await adapter.execute({
        model: spec.model,
        tools: TOOLS,
        messages: [
          { role: 'user', content: 'please call tool' },
          {
            role: 'assistant',
            content: null,
            tool_calls: [
              { id: 'call_contract_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
              { id: 'call_contract_b', type: 'function', function: { name: 'get_time', arguments: '{"tz":"Europe/Paris"}' } },
            ],
          },
          { role: 'tool', tool_call_id: 'call_contract_a', content: 'cloudy' },
          { role: 'tool', tool_call_id: 'call_contract_b', content: 'sunny' },
        ],
      }, params())
      expect(res.choices[0]?.message.content).toMatch(/^tool result: .*sunny/)
      expect(res.choices[0]?.finish_reason).toBe('stop')
      if (mock) {
        const sent = JSON.stringify(chatRecords()[0]?.body)
        for (const s of ['cloudy', 'sunny', 'get_weather', 'get_time', 'Europe/Paris']) expect(sent, `upstream body carries ${s}`).toContain(s)
      }
    })

    // 7
    check('7. tool-result round trip', caps.tools, async () => {
      const first = await adapter.execute(ask(spec.model, 'please call tool', { tools: TOOLS }), params())
      const call = first.choices[0]!.message.tool_calls![0]!
      const second = await adapter.execute({
        model: spec.model,
        tools: TOOLS,
        messages: [
          { role: 'user', content: 'please call tool' },
          { role: 'assistant', content: null, tool_calls: [call] },
          { role: 'tool', tool_call_id: call.id, content: 'sunny, 21C' },
        ],
      }, params())
      expect(second.choices[0]?.message.content).toMatch(/^tool result: .*sunny/)
      expect(second.choices[0]?.finish_reason).toBe('stop')
      expectUsage(second.usage)
    })

    // 8
    // Every check of this group needs the upstream: without one its checks are only listed as n/a.
    groupIf(upstream !== undefined, '8. upstream error statuses', () => {
      check('429 with Retry-After: status, retry-after header and provider code kept', up, async () => {
        fault({ status: 429, retryAfter: 7 })
        const e = await rejectionOf(adapter.execute(ask(spec.model, 'echo hello'), params()))
        expect(e.status).toBe(429)
        expect(e.headers?.['retry-after']).toBe('7')
        expect(e.providerCode).toBe(upstream!.providerCodes[429])
        // A stream is refused the same way, before any chunk.
        fault({ status: 429, retryAfter: 7 })
        const s = await rejectionOf(adapter.stream(ask(spec.model, 'echo hello', { stream: true }), params()))
        expect(s.status).toBe(429)
        expect(s.headers?.['retry-after']).toBe('7')
      })

      check('400: status and the provider message', up, async () => {
        fault({ status: 400, message: 'contract: the field frobnicate is invalid' })
        const e = await rejectionOf(adapter.execute(ask(spec.model, 'echo hello'), params()))
        expect(e.status).toBe(400)
        expect(e.message).toContain('contract: the field frobnicate is invalid')
        expect(e.providerCode).toBe(upstream!.providerCodes[400])
      })

      check('500 and 503: same status', up, async () => {
        for (const status of [500, 503] as const) {
          fault({ status })
          const e = await rejectionOf(adapter.execute(ask(spec.model, 'echo hello'), params()))
          expect(e.status).toBe(status)
          expect(e.providerCode).toBe(upstream!.providerCodes[status])
        }
      })

      const unauthorized = async (key: string): Promise<void> => {
        const a = await build(key)
        // Upstreams echo (parts of) the key in 401 messages; the raw key must not survive.
        fault({ status: 401, message: `Incorrect API key provided: ${key}. You can find your API key in the console.` })
        const e = await rejectionOf(a.execute(ask(spec.model, 'echo hello'), params()))
        expect(e.status).toBe(401)
        expect(errorSurface(e), 'the echoed key is scrubbed').not.toContain(key)
        // The mock's default 401 body too.
        fault({ status: 401 })
        const e2 = await rejectionOf(a.execute(ask(spec.model, 'echo hello'), params()))
        expect(e2.status).toBe(401)
        expect(errorSurface(e2)).not.toContain(key)
      }

      check('401: status 401, the configured key (sk-contract-…) appears nowhere in the error', up, async () => {
        await unauthorized(uniqueKey())
      })

      check("401: the same with a key in the provider's own format", isNA(up) || up.nativeKey ? up : { na: 'the sk- form is the native format' }, async () => {
        await unauthorized(upstream!.nativeKey!())
      })
    })

    // 9
    check('9. connection reset before headers → MCP_ERR_UPSTREAM_RESET (a rejection, not a hang)', up, async () => {
      fault({ reset: true })
      const e = await rejectionOf(adapter.execute(ask(spec.model, 'echo hello'), params()))
      expectCode(e, 'MCP_ERR_UPSTREAM_RESET', 'MCP_ERR_UPSTREAM_CONNECT')
      fault({ reset: true })
      const s = await rejectionOf(adapter.stream(ask(spec.model, 'echo hello', { stream: true }), params()))
      expectCode(s, 'MCP_ERR_UPSTREAM_RESET', 'MCP_ERR_UPSTREAM_CONNECT')
    }, 10_000)

    // 10
    check('10. no answer (hang) → MCP_ERR_UPSTREAM_TIMEOUT within firstByteMs + slack', up, async () => {
      fault({ hang: true })
      const t0 = performance.now()
      const [e, s] = await Promise.all([
        rejectionOf(adapter.execute(ask(spec.model, 'echo hello'), params())),
        rejectionOf(adapter.stream(ask(spec.model, 'echo hello', { stream: true }), params())),
      ])
      const elapsed = performance.now() - t0
      expectCode(e, 'MCP_ERR_UPSTREAM_TIMEOUT')
      expectCode(s, 'MCP_ERR_UPSTREAM_TIMEOUT')
      expect(elapsed).toBeGreaterThanOrEqual(CONTRACT_TIMEOUTS.firstByteMs - 100)
      expect(elapsed).toBeLessThan(CONTRACT_TIMEOUTS.firstByteMs + SLACK_MS)
    }, 10_000)

    check('10b. ExecuteParams.deadline earlier than firstByteMs wins → MCP_ERR_UPSTREAM_TIMEOUT', up, async () => {
      fault({ hang: true })
      const t0 = performance.now()
      const e = await rejectionOf(adapter.execute(ask(spec.model, 'echo hello'), params({ deadline: Date.now() + 300 })))
      const elapsed = performance.now() - t0
      expectCode(e, 'MCP_ERR_UPSTREAM_TIMEOUT')
      // undici's coarse timers (~0.5 s ticks) may fire late, never later than the configured firstByteMs.
      expect(elapsed).toBeLessThan(CONTRACT_TIMEOUTS.firstByteMs)
    }, 10_000)

    // 11
    check('11. stream cut after k chunks → first chunks, then MCP_ERR_UPSTREAM_STREAM_INTERRUPTED; final rejects', up, async () => {
      const full = await adapter.execute(ask(spec.model, 'hello'), params())
      fault({ cutAfter: 3 })
      const stream = await adapter.stream(ask(spec.model, 'hello', { stream: true }), params())
      const d = await drain(stream)
      expectCode(d.error, 'MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
      const text = textOf(d.chunks)
      expect(text.length, 'text before the cut').toBeGreaterThan(0)
      const whole = full.choices[0]?.message.content ?? ''
      expect(whole.startsWith(text) && text.length < whole.length, `"${text}" is a strict prefix of "${whole}"`).toBe(true)
      expect(finishReasons(d.chunks)).toEqual([])
      const f = await rejectionOf(stream.final)
      expectCode(f, 'MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
    }, 10_000)

    check('11b. stream ends cleanly without the completion signal → MCP_ERR_UPSTREAM_STREAM_INTERRUPTED, never a silent success', caps.endWithoutCompletion, async () => {
      fault((caps.endWithoutCompletion as { fault: ContractFault }).fault)
      const stream = await adapter.stream(ask(spec.model, 'hello', { stream: true }), params())
      const d = await drain(stream)
      expectCode(d.error, 'MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
      expect(textOf(d.chunks).length).toBeGreaterThan(0)
      expectCode(await rejectionOf(stream.final), 'MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
    })

    // 12
    check('12. stream stalled with the socket open → MCP_ERR_UPSTREAM_TIMEOUT within idleMs + slack', up, async () => {
      fault({ stallAfter: 2 })
      const stream = await adapter.stream(ask(spec.model, 'hello', { stream: true }), params())
      const d = await drain(stream)
      expectCode(d.error, 'MCP_ERR_UPSTREAM_TIMEOUT')
      expect(textOf(d.chunks).length).toBeGreaterThan(0)
      expect(d.sinceLastChunkMs).toBeGreaterThanOrEqual(CONTRACT_TIMEOUTS.idleMs - 250)
      expect(d.elapsedMs).toBeLessThan(CONTRACT_TIMEOUTS.idleMs + SLACK_MS)
      expectCode(await rejectionOf(stream.final), 'MCP_ERR_UPSTREAM_TIMEOUT')
    }, 10_000)

    // 13
    check("13. malformed event mid-stream → MCP_ERR_UPSTREAM_STREAM_INTERRUPTED, details 'upstream.malformed_event'", up, async () => {
      fault({ malformedAfter: 2 })
      const stream = await adapter.stream(ask(spec.model, 'hello', { stream: true }), params())
      const d = await drain(stream)
      expectCode(d.error, 'MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
      expect(d.error.details).toBe('upstream.malformed_event')
      expect(textOf(d.chunks).length).toBeGreaterThan(0)
      expectCode(await rejectionOf(stream.final), 'MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
    }, 10_000)

    check('13b. error event inside a 200 stream → GatewayError with the provider code; final rejects', caps.midStreamError, async () => {
      const m = caps.midStreamError as { fault?: ContractFault; prompt?: string; providerCode: string | null }
      if (m.fault) fault(m.fault)
      const stream = await adapter.stream(ask(spec.model, m.prompt ?? 'hello', { stream: true }), params())
      const d = await drain(stream)
      expectCode(d.error, 'MCP_ERR_UPSTREAM_ERROR')
      expect(d.error.providerCode).toBe(m.providerCode)
      expect(d.error.status).toBeGreaterThanOrEqual(400)
      expect(textOf(d.chunks).length).toBeGreaterThan(0)
      expect(finishReasons(d.chunks)).toEqual([])
      expect((await rejectionOf(stream.final)).code).toBe(d.error.code)
    })

    // 14
    it('14. abort mid-stream: iteration ends (error or return) and the upstream sees the close', async () => {
      if (mock) fault({ chunkDelayMs: 100 })
      const ac = new AbortController()
      const stream = await adapter.stream(ask(spec.model, mock ? 'hello' : 'echo a longer sentence to stream in chunks', { stream: true }), params({ signal: ac.signal }))
      const d = await drain(stream, (_c, i) => { if (i === 1) ac.abort() })
      expect(d.chunks.length).toBeGreaterThanOrEqual(2)
      if (d.error !== undefined) expectCode(d.error, 'MCP_ERR_REQ_ABORTED')
      expect(finishReasons(d.chunks)).toEqual([])
      if (mock) await waitUntil(() => chatRecords()[0]?.aborted === true, 3000, 'the mock to see the client close')
      await waitUntil(() => adapter.getMetrics().inflight === 0, 3000, 'inflight back to 0')
    }, 10_000)

    // 15
    it('15. early break after 2 chunks cancels the upstream', async () => {
      if (mock) fault({ chunkDelayMs: 100 })
      const stream = await adapter.stream(ask(spec.model, mock ? 'hello' : 'echo a longer sentence to stream in chunks', { stream: true }), params())
      const d = await drain(stream, (_c, i) => (i === 1 ? 'break' : undefined))
      expect(d.error).toBeUndefined()
      expect(d.chunks).toHaveLength(2)
      if (mock) await waitUntil(() => chatRecords()[0]?.aborted === true, 3000, 'the mock to see the client close')
      await waitUntil(() => adapter.getMetrics().inflight === 0, 3000, 'inflight back to 0')
      const settled = await Promise.race([
        stream.final.then(() => 'resolved', () => 'rejected'),
        new Promise((r) => setTimeout(() => r('pending'), 1000)),
      ])
      expect(settled, 'final settles after an early break').not.toBe('pending')
    }, 10_000)

    // 16
    it('16. getMetrics: requests and errors move, inflight returns to 0', async () => {
      const before = adapter.getMetrics()
      await adapter.execute(ask(spec.model, 'echo hello'), params())
      if (mock) fault({ chunkDelayMs: 50 })
      const s = await adapter.stream(ask(spec.model, mock ? 'hello' : 'echo a longer sentence to stream in chunks', { stream: true }), params())
      let midStream = -1
      const d = await drain(s, (_c, i) => { if (i === 1) midStream = adapter.getMetrics().inflight })
      expect(d.error).toBeUndefined()
      expect(midStream, 'a stream still being received is in flight').toBe(before.inflight + 1)
      const failing = caps.failingCall
      if (failing === 'upstream-500') {
        fault({ status: 500 })
        await rejectionOf(adapter.execute(ask(spec.model, 'echo hello'), params()))
      } else {
        await rejectionOf(adapter.execute(failing.request, params()))
      }
      const after = adapter.getMetrics()
      expect(after.requests).toBeGreaterThanOrEqual(before.requests + 3)
      expect(after.errors).toBe(before.errors + 1)
      expect(Object.values(after.errorsByCode).reduce((a, b) => a + b, 0)).toBe(Object.values(before.errorsByCode).reduce((a, b) => a + b, 0) + 1)
      expect(after.inflight).toBe(0)
      expect(after.latencyMs.p50).toBeGreaterThanOrEqual(0)
      expect(after.latencyMs.p99).toBeGreaterThanOrEqual(after.latencyMs.p50)
    })

    // 17
    it('17a. healthCheck: ok', async () => {
      const h = await adapter.healthCheck()
      expect(h.ok).toBe(true)
      expect(typeof h.checkedAt).toBe('number')
    })

    check('17b. healthCheck against a closed port: not ok, no throw', up, async () => {
      const port = await closedPort()
      const u = new URL(mockUrl())
      u.port = String(port)
      const a = await build(apiKey, u.href.replace(/\/$/, ''))
      const h = await a.healthCheck()
      expect(h.ok).toBe(false)
      expect(typeof h.detail).toBe('string')
    }, 10_000)

    // 18
    check('18. only the provider credential and x-request-id go upstream (no client key)', up, async () => {
      const key = uniqueKey()
      const a = await build(key)
      const p = params()
      await a.execute(ask(spec.model, 'echo hello'), p)
      const s = await a.stream(ask(spec.model, 'echo hello', { stream: true }), { ...p, requestId: `${p.requestId}-s` })
      await drain(s)
      const recs = chatRecords()
      expect(recs).toHaveLength(2)
      const credentialHeaders = ['authorization', 'x-api-key', 'api-key', 'x-goog-api-key', 'proxy-authorization', 'cookie']
      recs.forEach((r, i) => {
        const h = r.headers
        expect(h['x-request-id']).toBe(i === 0 ? p.requestId : `${p.requestId}-s`)
        const present = credentialHeaders.filter((n) => h[n] !== undefined)
        expect(present).toEqual([upstream!.credentialHeader])
        expect(h[upstream!.credentialHeader]).toBe(upstream!.credentialValue(key))
        const carrying = Object.entries(h).filter(([, v]) => String(v).includes(key)).map(([n]) => n)
        expect(carrying).toEqual([upstream!.credentialHeader])
        expect(r.path).not.toContain(key)
        expect(JSON.stringify(r.body)).not.toContain(key)
      })
    })

    // 19
    check('19. embeddings: string and array input', caps.embeddings, async () => {
      const model = (caps.embeddings as { model: string }).model
      const one = await adapter.embed!({ model, input: 'hello world' }, params({ model }))
      expect(one.object).toBe('list')
      expect(one.data).toHaveLength(1)
      expect(one.data[0]?.index).toBe(0)
      expect(one.data[0]?.object).toBe('embedding')
      expect(Array.isArray(one.data[0]?.embedding) && (one.data[0]!.embedding as number[]).length > 0).toBe(true)
      expect(one.usage.prompt_tokens).toBeGreaterThanOrEqual(0)
      expect(one.usage.total_tokens).toBeGreaterThanOrEqual(one.usage.prompt_tokens)

      const inputs = ['alpha', 'beta beta', 'gamma gamma gamma']
      const many = await adapter.embed!({ model, input: inputs }, params({ model }))
      expect(many.object).toBe('list')
      expect(many.data.map((d) => d.index)).toEqual([0, 1, 2])
      for (const d of many.data) expect((d.embedding as number[]).length).toBe((one.data[0]!.embedding as number[]).length)
      expect(many.data[0]?.embedding).not.toEqual(many.data[1]?.embedding)
      expect(many.usage).toBeDefined()
      expect(many.usage.total_tokens).toBeGreaterThan(0)
    })

    if (isNA(caps.embeddings)) {
      it(`19'. no embeddings: the adapter says so (${caps.embeddings.na})`, async () => {
        if (adapter.embed === undefined) return
        const e = await rejectionOf(adapter.embed({ model: 'x', input: 'hello' }, params()))
        expectCode(e, 'MCP_ERR_ROUTE_OPERATION_UNSUPPORTED')
      })
    }
    const skipped = notApplicable
    it(`every check that does not apply names why (${skipped.length} not applicable)`, () => {
      for (const n of skipped) expect(n.reason.trim(), `${n.title}: no reason given`).not.toBe('')
      if (skipped.length > 0) console.info(`[contract ${spec.title}] not applicable: ${skipped.map((n) => `${n.title} (${n.reason})`).join('; ')}`)
    })
  })
}
