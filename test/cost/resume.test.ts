/**
 * A stream cut mid-way on one target and resumed on another (alias streamRecovery: resume): the first target's
 * provider billed its prompt and what it generated before the cut, so the request's usage, cost and rollups count
 * both attempts, each priced at its own model, and the rollups and cost counters by model attribute each attempt's
 * tokens and cost to its own target. Before, only the resuming target's usage was recorded, and then all of it under
 * the answering model.
 */
import { encode } from 'gpt-tokenizer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadCatalogue, PriceCatalogue } from '../../gateway/cost/catalogue.ts'
import type { Usage } from '../../providers/types.ts'
import { adminGet, CHAIN, chat, startCostGateway, type CostGateway } from './harness.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'

let first: OpenAIMock
let second: OpenAIMock
let g: CostGateway
const catalogue = loadCatalogue()

beforeAll(async () => {
  ;[first, second] = await Promise.all([startOpenAIMock(), startOpenAIMock()])
  g = await startCostGateway({
    providers: {
      p1: { type: 'openai', baseUrl: first.url, apiKey: 'sk-first-0000000001', headers: { 'x-mock-tokens': '60' } },
      p2: { type: 'openai', baseUrl: second.url, apiKey: 'sk-second-000000001' },
    },
    models: {
      relay: {
        streamRecovery: 'resume',
        targets: [
          { provider: 'p1', model: 'gpt-4o' },
          { provider: 'p2', model: 'gpt-4o-mini', priority: 1, supportsPrefill: true },
        ],
      },
    },
    chains: { default: CHAIN },
  })
})

afterAll(async () => {
  await g?.close()
  await Promise.all([first, second].map((m) => m?.close()))
})

describe('a resumed stream is billed for every attempt', () => {
  it('usage, cost and rollups include the cut attempt, priced at its own model', async () => {
    first.fault = 'cutAfter:5'
    const r = await chat(g, 'relay', { stream: true, includeUsage: true })
    expect(r.status).toBe(200)
    expect(r.text).toContain('data: [DONE]')
    const events = r.text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)) as { usage?: Usage })
    // What the client is told: the answering target's usage (its own answer).
    const answer = events.findLast((e) => e.usage)!.usage!
    const [o] = await g.completed(1)

    // The first attempt reported no usage before its cut: its prompt and the text it delivered, estimated.
    const prefill = (second.requests.at(-1) as { body: { messages: { role: string; content: string }[] } }).body.messages.at(-1)!
    expect(prefill.role).toBe('assistant')
    expect(prefill.content).toContain('tok4')
    const prompt = 3 + 3 + encode('How much does this cost?').length
    const cut: Usage = { prompt_tokens: prompt, completion_tokens: encode(prefill.content).length, total_tokens: prompt + encode(prefill.content).length }

    expect(o!.usage).toEqual({
      prompt_tokens: cut.prompt_tokens + answer.prompt_tokens,
      completion_tokens: cut.completion_tokens + answer.completion_tokens,
      total_tokens: cut.total_tokens + answer.total_tokens,
    })
    const c1 = PriceCatalogue.cost(catalogue.lookup('openai', 'gpt-4o'), cut, true)
    const c2 = PriceCatalogue.cost(catalogue.lookup('openai', 'gpt-4o-mini'), answer)
    expect(c1.pico).toBeGreaterThan(0)
    expect(o!.early).toEqual({
      pico: c1.pico + c2.pico, usd: (c1.pico + c2.pico) / 1e12,
      inputTokens: c1.inputTokens + c2.inputTokens, cachedTokens: 0, cacheWriteTokens: 0,
      outputTokens: c1.outputTokens + c2.outputTokens, reasoningTokens: 0,
      unknown: false, estimated: true,
    })
    expect(o!.late).toEqual(o!.early)

    expect(await g.aggregator.flush()).toBe(true)
    const body = (await adminGet(g, '/api/v1/mcp/usage?group_by=')).json() as { totals: Record<string, unknown> }
    expect(body.totals).toMatchObject({
      requests: 1,
      input_tokens: c1.inputTokens + c2.inputTokens,
      output_tokens: c1.outputTokens + c2.outputTokens,
      cost_pico_usd: String(c1.pico + c2.pico),
      estimated_requests: 1,
    })

    // By model: each attempt's tokens and cost where they were used; the request counts once, with the answering model.
    const byModel = (await adminGet(g, '/api/v1/mcp/usage?group_by=provider,model')).json() as { rows: Record<string, unknown>[] }
    const row = (model: string): Record<string, unknown> | undefined => byModel.rows.find((x) => x['model'] === model)
    expect(byModel.rows).toHaveLength(2)
    expect(row('gpt-4o')).toMatchObject({
      provider: 'p1', requests: 0, errors: 0, estimated_requests: 0,
      input_tokens: c1.inputTokens, output_tokens: c1.outputTokens, cost_pico_usd: String(c1.pico),
    })
    expect(row('gpt-4o-mini')).toMatchObject({
      provider: 'p2', requests: 1, errors: 0, estimated_requests: 1,
      input_tokens: c2.inputTokens, output_tokens: c2.outputTokens, cost_pico_usd: String(c2.pico),
    })

    // The cost meter's counters likewise, per provider and model.
    const m = await g.metrics()
    const value = (name: string, labels: string): number => Number(new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm').exec(m)?.[1])
    expect(value('mcp_cost_usd_total', 'provider="p1",model="gpt-4o"')).toBeCloseTo(c1.usd, 12)
    expect(value('mcp_cost_usd_total', 'provider="p2",model="gpt-4o-mini"')).toBeCloseTo(c2.usd, 12)
    expect(value('mcp_tokens_total', 'provider="p1",model="gpt-4o",type="output"')).toBe(c1.outputTokens)
    expect(value('mcp_tokens_total', 'provider="p2",model="gpt-4o-mini",type="output"')).toBe(c2.outputTokens)
    expect(value('mcp_cost_estimated_total', 'provider="p1",model="gpt-4o"')).toBe(1)
    expect(value('mcp_cost_estimated_total', 'provider="p2",model="gpt-4o-mini"')).toBe(0)
  })
})
