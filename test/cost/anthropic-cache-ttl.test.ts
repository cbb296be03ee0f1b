/**
 * Anthropic's 1-hour prompt cache writes (`cache_control.ttl: '1h'`) are billed at 2 × the input price, the default
 * 5-minute ones at 1.25 ×: through the running gateway against the Anthropic mock, streamed and not, the usage carries
 * the split (`cache_creation_1h_tokens`) and the recorded cost equals the catalogue's computation, and a by-hand one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadCatalogue, PriceCatalogue } from '../../gateway/cost/catalogue.ts'
import { startAnthropicMock, type AnthropicMock } from '../helpers/anthropic-mock.ts'
import { CHAIN, chat, startCostGateway, type CostGateway } from './harness.ts'

let mock: AnthropicMock
let g: CostGateway

beforeAll(async () => {
  mock = await startAnthropicMock()
  const an = (writes: string): Record<string, unknown> => ({ type: 'anthropic', baseUrl: mock.url, apiKey: 'an-test', headers: { 'x-mock-cache-creation': writes } })
  g = await startCostGateway({
    providers: { h1: an('0,100000'), mixed: an('3000,2000'), m5: an('4000,0') },
    chains: { default: CHAIN },
  })
})

afterAll(async () => {
  await g?.close()
  await mock?.close()
})

async function one(model: string, stream: boolean): Promise<{ status: number; o: CostGateway['observed'][number] }> {
  const before = g.observed.length
  const r = await chat(g, model, { stream })
  const all = await g.completed(before + 1)
  return { status: r.status, o: all[before]! }
}

describe("Anthropic's 1-hour cache writes, priced at their own rate", () => {
  const haiku = loadCatalogue().lookup('anthropic', 'claude-haiku-4-5', Date.now())!
  // claude-haiku-4-5: input 1, 5-minute writes 1.25, 1-hour writes 2 (2 × input), output 5 USD per million tokens.
  const PER = { input: 1_000_000, write5m: 1_250_000, write1h: 2_000_000, output: 5_000_000 }
  const cases = [
    { provider: 'h1', m5: 0, h1: 100_000 },
    { provider: 'mixed', m5: 3000, h1: 2000 },
    { provider: 'm5', m5: 4000, h1: 0 },
  ]
  for (const c of cases) {
    for (const stream of [false, true]) {
      it(`${c.m5} 5-minute and ${c.h1} 1-hour writes, ${stream ? 'streamed' : 'not streamed'}`, async () => {
        // Regression: the cache_creation breakdown was dropped and every write priced at the 5-minute rate
        // (100,000 1-hour writes cost $0.125 instead of $0.200).
        const { status, o } = await one(`${c.provider}/claude-haiku-4-5`, stream)
        expect(status).toBe(200)
        const u = o.usage!
        const input = u.prompt_tokens - c.m5 - c.h1
        expect(input).toBeGreaterThan(0)
        expect(u.prompt_tokens_details).toEqual({ cached_tokens: 0, cache_creation_tokens: c.m5 + c.h1, ...(c.h1 > 0 ? { cache_creation_1h_tokens: c.h1 } : {}) })
        const byHand = input * PER.input + c.m5 * PER.write5m + c.h1 * PER.write1h + u.completion_tokens * PER.output
        expect(o.early!.pico).toBe(byHand)
        expect(o.early).toEqual(PriceCatalogue.cost(haiku, u))
        expect(o.early!.cacheWriteTokens).toBe(c.m5 + c.h1)
        expect(o.early!.cacheWrite1hTokens).toBe(c.h1 > 0 ? c.h1 : undefined)
      })
    }
  }
})
