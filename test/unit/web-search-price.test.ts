/**
 * Web searches a server tool made are priced per search (PriceEntry.webSearch, USD per 1,000), on top of their tokens:
 * Anthropic reports them as usage.server_tool_use.web_search_requests; the canonical usage carries them through
 * normalisation and the combining of a resumed stream's attempts; fetches cost only their tokens.
 */
import { describe, expect, it } from 'vitest'
import { loadCatalogue, PriceCatalogue } from '../../gateway/cost/catalogue.ts'
import { normalizeUsage } from '../../gateway/cost/attempt-usage.ts'
import { toCanonicalUsage } from '../../providers/anthropic/response.ts'

describe('web search pricing', () => {
  it('Anthropic usage → canonical: the server-tool counts kept only when there are some', () => {
    expect(toCanonicalUsage({ input_tokens: 10, output_tokens: 2, server_tool_use: { web_search_requests: 3, web_fetch_requests: 1 } }).server_tool_use).toEqual({ web_search_requests: 3, web_fetch_requests: 1 })
    expect(toCanonicalUsage({ input_tokens: 10, output_tokens: 2, server_tool_use: { web_search_requests: 0 } })).not.toHaveProperty('server_tool_use')
    expect(toCanonicalUsage({ input_tokens: 10, output_tokens: 2 })).not.toHaveProperty('server_tool_use')
  })

  it('each search at the catalogue\'s fee, on top of the tokens; the shipped Anthropic prices have it ($10 per 1,000)', () => {
    const prices = loadCatalogue().lookup('anthropic', 'claude-haiku-4-5')!
    const usage = normalizeUsage({ prompt_tokens: 1000, completion_tokens: 100, total_tokens: 1100, server_tool_use: { web_search_requests: 3, web_fetch_requests: 2 } })
    expect(usage.server_tool_use).toEqual({ web_search_requests: 3 })
    // 1000 × $1 + 100 × $5 per million = $0.0015, and 3 × $0.01.
    expect(PriceCatalogue.cost(prices, usage)).toMatchObject({ webSearchRequests: 3, pico: 1_500_000_000 + 3e10, usd: 0.0315 })
    // No search: no field, tokens only.
    const plain = PriceCatalogue.cost(prices, normalizeUsage({ prompt_tokens: 1000, completion_tokens: 100, total_tokens: 1100 }))
    expect(plain).not.toHaveProperty('webSearchRequests')
    expect(plain.pico).toBe(1_500_000_000)
  })

  it('a price entry without a fee prices the tokens, and still reports the searches', () => {
    const c = loadCatalogue([{ provider: 'anthropic', model: 'claude-next', input: 1, output: 5, effectiveFrom: '2026-01-01' }])
    const cost = PriceCatalogue.cost(c.lookup('anthropic', 'claude-next'), normalizeUsage({ prompt_tokens: 1000, completion_tokens: 100, total_tokens: 1100, server_tool_use: { web_search_requests: 2 } }))
    expect(cost).toMatchObject({ webSearchRequests: 2, pico: 1_500_000_000 })
  })
})
