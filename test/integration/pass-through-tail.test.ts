/**
 * Pass-through streams are judged by their last events: the tap reads a string finish_reason and the usage object
 * from the final TAIL (8) events once, when the stream ends, instead of searching every event (gateway/deliver.ts).
 * An upstream speaking OpenAI's chunk format answers with scripted streams that end without `data: [DONE]`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startScriptedUpstream, type ScriptedUpstream } from '../helpers/scripted-upstream.ts'

type Choice = { index: number; delta: Record<string, unknown>; finish_reason: string | null; content_filter_results?: unknown }
const chunk = (choices: Choice[], usage?: Record<string, number>): string =>
  `data: ${JSON.stringify({ id: 'chatcmpl-tail', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices, ...(usage ? { usage } : {}) })}\n\n`
const text = (index: number, content: string): Choice => ({ index, delta: { content }, finish_reason: null })
const usage = (completion: number): Record<string, number> => ({ prompt_tokens: 5, completion_tokens: completion, total_tokens: 5 + completion })

/** Each model name is one scripted stream; none sends [DONE]. */
const SCRIPTS: Record<string, string[]> = {
  // A finish followed by content-filter annotations (as Azure sends them) and a usage chunk: complete.
  trailing: [
    chunk([text(0, 'a')]), chunk([text(0, 'b')]), chunk([{ index: 0, delta: {}, finish_reason: 'stop' }]),
    ...Array.from({ length: 5 }, () => chunk([{ index: 0, delta: {}, finish_reason: null, content_filter_results: { hate: { filtered: false, severity: 'safe' } } }])),
    chunk([], usage(2)),
  ],
  // n = 2: choice 0 finishes early, choice 1 is cut in the middle: not complete.
  n2cut: [chunk([text(0, 'x'), text(1, 'y')]), chunk([{ index: 0, delta: {}, finish_reason: 'stop' }]), ...Array.from({ length: 10 }, (_, i) => chunk([text(1, `y${i}`)]))],
  // Running usage on every chunk (vLLM's continuous usage stats): the last one is the answer's.
  running: [...Array.from({ length: 20 }, (_, i) => chunk([text(0, `t${i}`)], usage(i + 1))), chunk([{ index: 0, delta: {}, finish_reason: 'length' }], usage(21))],
  // Azure's first event: prompt annotations with `choices: []` and no usage (not the usage-only chunk).
  azure: [
    `data: ${JSON.stringify({ id: '', object: '', created: 0, model: '', choices: [], prompt_filter_results: [{ prompt_index: 0, content_filter_results: { hate: { filtered: false, severity: 'safe' } } }] })}\n\n`,
    chunk([text(0, 'a')]), chunk([{ index: 0, delta: {}, finish_reason: 'stop' }]), chunk([], usage(1)), 'data: [DONE]\n\n',
  ],
  // A long answer whose finish is the last event: complete, and the usage in it is found.
  long: [...Array.from({ length: 40 }, (_, i) => chunk([text(0, `w${i}`)])), chunk([{ index: 0, delta: {}, finish_reason: 'stop' }], usage(40))],
}

describe('pass-through stream tail', () => {
  let upstream: ScriptedUpstream
  let tg: TestGateway

  beforeAll(async () => {
    upstream = await startScriptedUpstream((model, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      for (const e of SCRIPTS[model] ?? []) res.write(e)
      res.end()
    })
    tg = await startGateway({ providers: { up: { type: 'openai', baseUrl: upstream.url, apiKey: 'sk-tail-test-0123456789', models: Object.keys(SCRIPTS) } } })
  })
  afterAll(async () => {
    await tg?.close()
    await upstream?.close()
  })

  async function stream(model: string, includeUsage = true): Promise<{ body: string; log: Record<string, unknown> | undefined }> {
    const r = await fetch(`${tg.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', 'x-request-id': `tail-${model}` },
      body: JSON.stringify({ model: `up/${model}`, messages: [{ role: 'user', content: 'hi' }], stream: true, ...(includeUsage ? { stream_options: { include_usage: true } } : {}) }),
    })
    expect(r.status).toBe(200)
    const body = await r.text()
    await new Promise((res) => setTimeout(res, 50))
    return { body, log: tg.logs.find((l) => l['requestId'] === `tail-${model}` || l['request_id'] === `tail-${model}`) }
  }

  it('a finish followed by trailing annotation and usage events is a complete stream; the usage is recorded', async () => {
    const { body, log } = await stream('trailing')
    expect(body.trimEnd().endsWith('data: [DONE]')).toBe(true)
    expect(body).not.toContain('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
    expect(log).toMatchObject({ promptTokens: 5, completionTokens: 2 })
  })

  it('n = 2 with the second choice cut after the first finished: interrupted, never a silent end', async () => {
    const { body } = await stream('n2cut')
    expect(body).toContain('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
    expect(body).not.toContain('data: [DONE]')
  })

  it('usage on every chunk: the newest is recorded', async () => {
    const { body, log } = await stream('running')
    expect(body.trimEnd().endsWith('data: [DONE]')).toBe(true)
    expect(log).toMatchObject({ promptTokens: 5, completionTokens: 21 })
  })

  it('a long stream whose finish and usage are in its last event', async () => {
    const { body, log } = await stream('long')
    expect(body.trimEnd().endsWith('data: [DONE]')).toBe(true)
    expect(log).toMatchObject({ promptTokens: 5, completionTokens: 40 })
  })

  it("usage asked for by the gateway, not the client: only the usage-only event is left out, not Azure's prompt_filter_results event", async () => {
    const { body, log } = await stream('azure', false)
    expect(body).toContain('"prompt_filter_results"')
    expect(body).not.toContain('"usage"')
    expect(body.trimEnd().endsWith('data: [DONE]')).toBe(true)
    expect(log).toMatchObject({ promptTokens: 5, completionTokens: 1 })
  })
})
