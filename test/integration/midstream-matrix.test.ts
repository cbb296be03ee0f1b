/**
 * Mid-stream failures, the whole matrix: inbound {OpenAI, Anthropic} × provider {openai (pass-through and behind a
 * chunk hook), azure-openai, anthropic (translated, and native: a Messages request with a server tool, sent as it came),
 * google, ollama, openai-compatible} × failure {cut, stall past idleMs,
 * malformed event, the provider's in-stream error event, client abort}. For each: the client's stream ends with an
 * explicit error event in its own format (and the official SDKs throw), never a complete-looking answer; a client
 * abort closes the upstream socket; the execution log row says error, timeout or cancelled; no budget reservation
 * stays open; the error is counted under its code.
 */
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { PluginFactory } from '../../gateway/pipeline/types.ts'
import type { ExecutionLogRow, ExecutionLogSink } from '../../store/execution-log-rows.ts'
import { testPrincipalPlugin } from '../budget/helpers.ts'
import { startAnthropicMock } from '../helpers/anthropic-mock.ts'
import { startAzureMock } from '../helpers/azure-mock.ts'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startGeminiMock } from '../helpers/gemini-mock.ts'
import { startOllamaMock } from '../helpers/ollama-mock.ts'
import { startOpenAIMock } from '../helpers/openai-mock.ts'

interface Rec { aborted: boolean }
interface FaultableMock { fault: unknown; requests: Rec[]; close(): Promise<void>; reset(): void }

const IDLE_MS = 400
/** errorNoDone: OpenAI's own in-stream error, with no [DONE] after it (error: vLLM's, with [DONE] after it). */
type Failure = 'cut' | 'stall' | 'malformed' | 'error' | 'errorNoDone' | 'abort'
const FAILURES: Failure[] = ['cut', 'stall', 'malformed', 'error', 'errorNoDone', 'abort']

/** native: the request carries a server tool, so an Anthropic provider gets it as sent (native-messages.ts; Messages clients only). */
interface Case { label: string; provider: string; model: string; hooked: boolean; mock: () => FaultableMock; errorContent?: string; openaiWire?: true; native?: true }

const mocks: Record<string, FaultableMock> = {}
let plain: TestGateway
let hooked: TestGateway
const rows: ExecutionLogRow[] = []

const CASES: Case[] = [
  { label: 'openai (pass-through)', provider: 'openai', model: 'gpt-4o', hooked: false, mock: () => mocks['openai']!, openaiWire: true },
  { label: 'openai (chunk hook)', provider: 'openai', model: 'gpt-4o', hooked: true, mock: () => mocks['openai']!, openaiWire: true },
  { label: 'azure-openai', provider: 'azure', model: 'gpt-4o', hooked: false, mock: () => mocks['azure']!, openaiWire: true },
  // nativeMessages: false below, so /v1/messages is translated here too; the native lane is the next case.
  { label: 'anthropic (translated)', provider: 'anthropic', model: 'claude-sonnet-4-5', hooked: false, mock: () => mocks['anthropic']! },
  { label: 'anthropic (native: a server tool)', provider: 'anthropic', model: 'claude-sonnet-4-5', hooked: false, mock: () => mocks['anthropic']!, native: true },
  { label: 'google', provider: 'google', model: 'gemini-2.5-flash', hooked: false, mock: () => mocks['google']! },
  { label: 'ollama', provider: 'ollama', model: 'llama3.2', hooked: false, mock: () => mocks['ollama']!, errorContent: 'please stream error now' },
  { label: 'openai-compatible', provider: 'compat', model: 'meta-llama/Llama-3.1-8B', hooked: false, mock: () => mocks['compat']!, openaiWire: true },
]

function faultOf(c: Case, f: Failure): string | null {
  switch (f) {
    case 'cut': return 'cutAfter:3'
    case 'stall': return 'stallAfter:3'
    case 'malformed': return 'malformedAfter:3'
    case 'error': return c.errorContent ? null : 'errorAfter:3'
    case 'errorNoDone': return 'errorAfter:3,noDone'
    case 'abort': return 'chunkDelayMs:100'
  }
}

const chunkReader: PluginFactory = { name: 'chunk-reader', sideEffects: 'none', configSchema: { type: 'object' }, create: () => ({ onResponseChunk() {} }) }

function config(urls: Record<string, string>, hook: boolean): Record<string, unknown> {
  const t = { idleMs: IDLE_MS }
  return {
    providers: {
      openai: { type: 'openai', baseUrl: urls['openai'], apiKey: 'sk-midstream-openai-0001', timeouts: t },
      compat: { type: 'openai-compatible', baseUrl: urls['compat'], apiKey: 'vllm-midstream-key-0001', timeouts: t },
      azure: { type: 'azure-openai', baseUrl: urls['azure'], apiKey: 'azure-midstream-key-0001', timeouts: t },
      anthropic: { type: 'anthropic', baseUrl: urls['anthropic'], apiKey: 'sk-ant-midstream-0001', timeouts: t, nativeMessages: false },
      google: { type: 'google', baseUrl: urls['google'], apiKey: 'AIzaMidstreamKey00000000000001', timeouts: t },
      ollama: { type: 'ollama', baseUrl: urls['ollama'], timeouts: t },
    },
    plugins: { budget: { backend: 'local', keyPrefix: `test:midstream:${process.pid}:${hook ? 'h' : 'p'}:`, budgets: [{ name: 'per-key', scope: 'key', period: 'day', tokens: 100_000_000 }] } },
    chains: { matrix: ['request-id', 'auth', 'test-principal', 'budget', 'execution-log', ...(hook ? ['chunk-reader'] : [])] },
    routes: { chat: { chain: 'matrix' }, messages: { chain: 'matrix' } },
  }
}

beforeAll(async () => {
  const [openai, compat, azure, anthropic, google, ollama] = await Promise.all([
    startOpenAIMock(), startOpenAIMock(), startAzureMock(), startAnthropicMock(), startGeminiMock(), startOllamaMock(),
  ])
  Object.assign(mocks, { openai, compat, azure, anthropic, google, ollama })
  const urls = { openai: openai.url, compat: compat.url, azure: azure.url, anthropic: anthropic.url, google: google.url, ollama: ollama.url }
  const sink: ExecutionLogSink = { enqueue: (r) => { rows.push(r) }, accepting: () => true }
  plain = await startGateway(config(urls, false), { plugins: [testPrincipalPlugin, chunkReader], services: { executionLog: sink } })
  hooked = await startGateway(config(urls, true), { plugins: [testPrincipalPlugin, chunkReader], services: { executionLog: sink } })
  expect(plain.gw.holder.current.routes.get('chat')?.passthrough).toBe(true)
  expect(hooked.gw.holder.current.routes.get('chat')?.passthrough).toBe(false)
}, 30_000)

afterAll(async () => {
  await plain?.close()
  await hooked?.close()
  await Promise.all(Object.values(mocks).map((m) => m.close()))
})

async function scrape(g: TestGateway): Promise<string> {
  return (await fetch(`${g.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).text()
}

function metric(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? 0 : Number(line.slice(series.length + 1))
}

function request(inbound: 'openai' | 'anthropic', c: Case, fault: string | null, signal?: AbortSignal): Promise<Response> {
  const model = `${c.provider}/${c.model}`
  const content = c.errorContent && fault === null ? c.errorContent : 'hello there'
  const headers: Record<string, string> = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', 'x-test-key': 'midstream' }
  const body = inbound === 'openai'
    ? { model, stream: true, messages: [{ role: 'user', content }] }
    : { model, stream: true, max_tokens: 100, messages: [{ role: 'user', content }], ...(c.native ? { tools: [SERVER_TOOL] } : {}) }
  return fetch(`${(c.hooked ? hooked : plain).url}${inbound === 'openai' ? '/v1/chat/completions' : '/v1/messages'}`, { method: 'POST', headers, body: JSON.stringify(body), ...(signal ? { signal } : {}) })
}

const SERVER_TOOL = { type: 'web_search_20250305' as const, name: 'web_search' as const }

const STATUS: Record<Failure, string> = { cut: 'error', stall: 'timeout', malformed: 'error', error: 'error', errorNoDone: 'error', abort: 'cancelled' }

describe.each(['openai', 'anthropic'] as const)('%s inbound', (inbound) => {
  describe.each(CASES.filter((c) => !c.native || inbound === 'anthropic'))('→ $label', (c) => {
    it.each(FAILURES.filter((f) => f !== 'errorNoDone' || c.openaiWire))('%s', async (failure) => {
      const g = c.hooked ? hooked : plain
      const fault = faultOf(c, failure)
      const before = rows.length
      const mock = c.mock()
      mock.reset()
      mock.fault = fault
      const res = await request(inbound, c, fault, failure === 'abort' ? AbortSignal.timeout(350) : undefined)
      expect(res.status).toBe(200)

      if (failure === 'abort') {
        const err = await res.text().then(() => undefined, (e: unknown) => e)
        expect(err, 'the client aborted').toBeDefined()
        await vi.waitFor(() => expect(mock.requests.at(-1)?.aborted, 'upstream socket closed').toBe(true), { timeout: 2000, interval: 20 })
      } else {
        const text = await res.text()
        // The provider's own in-stream error event, forwarded as it came (pass-through bytes, the native Messages lane).
        const providerEvent = (failure === 'error' || failure === 'errorNoDone') && ((inbound === 'openai' && c.openaiWire === true && !c.hooked) || c.native === true)
        if (inbound === 'openai') {
          expect(text, 'never [DONE] after a failure').not.toContain('[DONE]')
          const events = text.split('\n\n').filter((e) => e.trim() !== '')
          const last = JSON.parse(events.at(-1)!.replace(/^data: /, '')) as { error?: { message: string; code: string } }
          expect(last.error, text.slice(-400)).toMatchObject({ message: expect.any(String), type: expect.any(String) })
          // The request's id, as in an error body (it was ''); a provider's own error event passed through as bytes is its own.
          if (!providerEvent) expect(last.error).toMatchObject({ request_id: res.headers.get('x-request-id') })
        } else {
          expect(text, 'no message_stop after a failure').not.toContain('message_stop')
          const events = text.split('\n\n').filter((e) => e.trim() !== '')
          const last = events.at(-1)!
          expect(last, text.slice(-400)).toMatch(/^event: error\n/)
          const data = JSON.parse(last.split('\n').find((l) => l.startsWith('data: '))!.slice(6)) as { type: string; error: { type: string; message: string } }
          expect(data).toMatchObject({ type: 'error', error: { type: expect.any(String), message: expect.any(String) } })
          if (!providerEvent) expect(data).toMatchObject({ request_id: res.headers.get('x-request-id') })
        }
      }

      // The execution log, the budget and the metrics.
      await vi.waitFor(() => expect(rows.length).toBeGreaterThan(before), { timeout: 3000, interval: 20 })
      const row = rows.at(-1)!
      if (c.native) expect((row.request as { tools?: unknown }).tools, 'logged as sent upstream').toEqual([SERVER_TOOL])
      const m = JSON.parse(String((row.metrics as { text: string }).text)) as { errorCode?: string; aborted: boolean }
      expect({ status: row.status, code: m.errorCode }).toMatchObject({ status: STATUS[failure], code: expect.stringMatching(/^MCP_ERR_|^\w+/) })
      await vi.waitFor(async () => {
        const t = await scrape(g)
        expect(metric(t, 'mcp_budget_reservations_open')).toBe(0)
        expect(metric(t, 'mcp_requests_in_flight')).toBe(0)
        expect(metric(t, `mcp_request_errors_total{route="${inbound === 'openai' ? 'chat' : 'messages'}",code="${m.errorCode}"}`)).toBeGreaterThanOrEqual(1)
      }, { timeout: 3000, interval: 25 })
      expect(mock.requests.length).toBe(1)
      // The native lane sent the body as the client did (the server tool included); the translated one never does.
      expect((mock.requests[0] as unknown as { body?: { tools?: unknown } }).body?.tools).toEqual(c.native ? [SERVER_TOOL] : inbound === 'anthropic' || c.provider !== 'anthropic' ? (mock.requests[0] as unknown as { body?: { tools?: unknown } }).body?.tools : undefined)

      // The official SDK's stream helper throws rather than returning a complete-looking answer.
      if (failure !== 'abort') {
        const content = c.errorContent && fault === null ? c.errorContent : 'hello there'
        const headers = { 'x-test-key': 'midstream' }
        const base = (c.hooked ? hooked : plain).url
        if (inbound === 'openai') {
          const client = new OpenAI({ apiKey: ADMIN_KEY, baseURL: `${base}/v1`, maxRetries: 0 })
          const s = await client.chat.completions.create({ model: `${c.provider}/${c.model}`, stream: true, messages: [{ role: 'user', content }] }, { headers })
          await expect((async () => { for await (const _ of s) { /* drain */ } })()).rejects.toBeInstanceOf(OpenAI.APIError)
        } else {
          const client = new Anthropic({ apiKey: ADMIN_KEY, baseURL: base, maxRetries: 0 })
          const s = client.messages.stream({ model: `${c.provider}/${c.model}`, max_tokens: 100, messages: [{ role: 'user', content }], ...(c.native ? { tools: [SERVER_TOOL] } : {}) }, { headers })
          await expect(s.finalMessage()).rejects.toBeInstanceOf(Anthropic.APIError)
        }
      }
    }, 10_000)
  })
})
