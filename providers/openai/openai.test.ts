/**
 * OpenAI's limits on translated requests (a `/v1/messages` client's, or a route without pass-through), judged by the
 * gateway before the call: the client gets a 400 naming its field and the provider, not OpenAI's naming one it never
 * sent. The `openai` and `azure-openai` adapters against the OpenAI and Azure mocks, which refuse what OpenAI refuses;
 * `openai-compatible` against a mock without OpenAI's limits (vLLM has none).
 */
import { Pool } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { GatewayError } from '../../gateway/errors.ts'
import { anthropicToCanonical } from '../../gateway/inbound/anthropic.ts'
import { startAzureMock, type AzureMock } from '../../test/helpers/azure-mock.ts'
import { startOpenAIMock, type OpenAIMock } from '../../test/helpers/openai-mock.ts'
import { adapterFactory } from '../registry.ts'
import type { ChatRequest, ExecuteParams, ProviderAdapter } from '../types.ts'

let openai: OpenAIMock
let compat: OpenAIMock
let azure: AzureMock
const pools: Pool[] = []

function adapter(type: string, name: string, url: string, extra: Record<string, unknown> = {}): ProviderAdapter {
  const pool = new Pool(new URL(url).origin)
  pools.push(pool)
  return adapterFactory(type)!.create(name, { type, baseUrl: url, apiKey: 'k', timeouts: { firstByteMs: 2000, idleMs: 1000 }, ...extra } as never, { dispatcherFor: () => pool })
}

const params = (model: string): ExecuteParams => ({ model, signal: new AbortController().signal, deadline: Date.now() + 5000, requestId: 'r1' })

async function rejection(p: Promise<unknown>): Promise<GatewayError> {
  try { await p } catch (e) { if (e instanceof GatewayError) return e; throw e }
  throw new Error('expected a GatewayError')
}

/** An Anthropic client's request, as the gateway hands it to a provider. */
const messages = (extra: Record<string, unknown>): ChatRequest =>
  anthropicToCanonical({ model: 'm', max_tokens: 16, messages: [{ role: 'user', content: 'echo hi' }], ...extra })

beforeAll(async () => {
  ;[openai, compat, azure] = await Promise.all([startOpenAIMock(), startOpenAIMock({ limits: false }), startAzureMock()])
})

afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()))
  await Promise.all([openai.close(), compat.close(), azure.close()])
})

describe('stop: OpenAI and Azure take at most 4 sequences (a Messages client sending 5 got OpenAI\'s 400 naming stop)', () => {
  const five = messages({ stop_sequences: ['a', 'b', 'c', 'd', 'e'] })

  it('openai and azure-openai: a 400 naming stop and the provider, before any call', async () => {
    for (const [a, mock] of [[adapter('openai', 'oa', openai.url), openai], [adapter('azure-openai', 'az', azure.url, { apiMode: 'deployments', deployments: {} }), azure]] as const) {
      const before = mock.requests.length
      const e = await rejection(a.execute(five, params('gpt-4o')))
      expect([e.status, e.code, e.param]).toEqual([400, 'MCP_ERR_REQ_BODY_INVALID', 'stop'])
      expect(e.message).toMatch(new RegExp(`provider ${a.name} takes at most 4 stop sequences, got 5`))
      expect(mock.requests.length).toBe(before)
      expect((await a.execute(messages({ stop_sequences: ['a', 'b', 'c', 'd'] }), params('gpt-4o'))).choices[0]!.message.content).toBe('echo: hi')
    }
  })

  it('openai-compatible: sent as they are (vLLM has no such limit)', async () => {
    const r = await adapter('openai-compatible', 'vllm', compat.url).execute(five, params('llama'))
    expect(r.choices[0]!.message.content).toBe('echo: hi')
    expect(compat.requests.at(-1)!.body['stop']).toEqual(['a', 'b', 'c', 'd', 'e'])
  })
})

describe('a failed tool result (is_error) from a Messages client: its text blocks one line break apart', () => {
  it('"line one" + "line two" → "Error: line one\\nline two" (was "line oneline two")', async () => {
    const req = messages({
      tools: [{ name: 'w', input_schema: { type: 'object' } }],
      messages: [
        { role: 'user', content: 'call tool' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'w', input: {} }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', is_error: true, content: [{ type: 'text', text: 'line one' }, { type: 'text', text: 'line two' }] }] },
      ],
    })
    await adapter('openai', 'oa', openai.url).execute(req, params('gpt-4o'))
    expect((openai.requests.at(-1)!.body['messages'] as { content: unknown }[])[2]!.content).toBe('Error: line one\nline two')
  })
})

describe('a plain-text document from a Messages client reaches OpenAI and Azure as text (a text/plain file part was their 400: PDF files only)', () => {
  const doc = (title?: string) => messages({ messages: [{ role: 'user', content: [
    { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'hello doc\nline 2' }, ...(title ? { title } : {}) },
    { type: 'text', text: 'what' },
  ] }] })

  it('openai and azure-openai: a text part, the title on its first line', async () => {
    for (const [a, mock] of [[adapter('openai', 'oa', openai.url), openai], [adapter('azure-openai', 'az', azure.url, { apiMode: 'deployments', deployments: {} }), azure]] as const) {
      await a.execute(doc('notes.txt'), params('gpt-4o'))
      expect((mock.requests.at(-1)!.body['messages'] as { content: unknown }[])[0]!.content).toEqual([{ type: 'text', text: 'notes.txt\n\nhello doc\nline 2' }, { type: 'text', text: 'what' }])
      await a.execute(doc(), params('gpt-4o'))
      expect((mock.requests.at(-1)!.body['messages'] as { content: unknown }[])[0]!.content).toEqual([{ type: 'text', text: 'hello doc\nline 2' }, { type: 'text', text: 'what' }])
    }
  })

  it('a PDF stays a file part; a percent-encoded or charset-labelled text/plain one becomes text too', async () => {
    const a = adapter('openai', 'oa', openai.url)
    const req = (file_data: string): ChatRequest => ({ model: 'm', messages: [{ role: 'user', content: [{ type: 'file', file: { file_data } }, { type: 'text', text: 'what' }] }] } as ChatRequest)
    await a.execute(req('data:application/pdf;base64,JVBERi0x'), params('gpt-4o'))
    expect((openai.requests.at(-1)!.body['messages'] as { content: { type: string }[] }[])[0]!.content[0]!.type).toBe('file')
    await a.execute(req('data:text/plain,caf%C3%A9'), params('gpt-4o'))
    expect((openai.requests.at(-1)!.body['messages'] as { content: unknown[] }[])[0]!.content[0]).toEqual({ type: 'text', text: 'café' })
    await a.execute(req(`data:text/plain;charset=iso-8859-1;base64,${Buffer.from([0x63, 0x61, 0x66, 0xe9]).toString('base64')}`), params('gpt-4o'))
    expect((openai.requests.at(-1)!.body['messages'] as { content: unknown[] }[])[0]!.content[0]).toEqual({ type: 'text', text: 'café' })
  })
})

describe('tool names: OpenAI and Azure take ^[a-zA-Z0-9_-]{1,64}$ (a Messages client\'s tool my.tool got OpenAI\'s 400 naming tools[0].function.name)', () => {
  const dotted = messages({ tools: [{ name: 'ok', input_schema: { type: 'object' } }, { name: 'my.tool', input_schema: { type: 'object' } }] })

  it('openai and azure-openai: a 400 naming the tool and the provider, before any call', async () => {
    for (const [a, mock] of [[adapter('openai', 'oa', openai.url), openai], [adapter('azure-openai', 'az', azure.url, { apiMode: 'deployments', deployments: {} }), azure]] as const) {
      const before = mock.requests.length
      const e = await rejection(a.execute(dotted, params('gpt-4o')))
      expect([e.status, e.code, e.param]).toEqual([400, 'MCP_ERR_REQ_BODY_INVALID', 'tools[1].function.name'])
      expect(e.message).toContain(`provider ${a.name} takes function names of letters (a-z, A-Z), digits, underscores and dashes, at most 64 characters, got "my.tool"`)
      expect(mock.requests.length).toBe(before)
      const ok = messages({ tools: [{ name: 'get-weather_2', input_schema: { type: 'object' } }] })
      expect((await a.execute(ok, params('gpt-4o'))).choices[0]!.message.content).toBe('echo: hi')
    }
  })

  it('openai-compatible: sent as it is (vLLM takes any name)', async () => {
    const r = await adapter('openai-compatible', 'vllm', compat.url).execute(dotted, params('llama'))
    expect(r.choices[0]!.message.content).toBe('echo: hi')
  })
})
