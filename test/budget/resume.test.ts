/**
 * A stream cut mid-way on one target and resumed on another (alias streamRecovery: resume) settles into budgets
 * what the cost meter charges: each attempt at its own model's price, and every attempt's tokens. With the cost meter
 * in the chain the budget takes its cost; without it the budget prices each attempt itself, the same way. When the
 * resuming target reports no usage, its part is estimated from its own events only: the cut attempt's output is
 * already in its own usage (it was counted twice).
 */
import { encode } from 'gpt-tokenizer'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { loadCatalogue, PriceCatalogue } from '../../gateway/cost/catalogue.ts'
import { estimateChatPrompt, estimateUsage } from '../../gateway/cost/estimate.ts'
import { Pricing } from '../../gateway/cost/pricing.ts'
import { costOf, costReady } from '../../gateway/cost/meter.ts'
import type { CostBreakdown } from '../../gateway/cost/catalogue.ts'
import type { PluginFactory } from '../../gateway/pipeline/types.ts'
import { picoToNano } from '../../plugins/budget/estimate.ts'
import type { BudgetReportRow } from '../../plugins/budget/index.ts'
import type { Usage } from '../../providers/types.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { startUsageMock, TEXT, TEXT_PIECES, type UsageMock } from '../cost/usage-mock.ts'
import { adminGet, chat, metricValue, startTestGateway, until } from './helpers.ts'

const CONTENT = 'How much does this cost?'
const catalogue = loadCatalogue()
let prefixN = 0

let first: OpenAIMock
let second: OpenAIMock
let usageMock: UsageMock
/** The usage mock's provider without usage ('nu'), priced by the cost meter. */
const NU_PRICE = { provider: 'nu', model: '*', input: 1, output: 2, effectiveFrom: '1970-01-01' }
let tg: TestGateway | undefined
const costs: (CostBreakdown | undefined)[] = []

/** Records the request's cost as the cost meter computes it (undefined without a cost meter). */
const probe: PluginFactory = {
  name: 'cost-probe', configSchema: { type: 'object' }, sideEffects: 'none',
  create: () => ({
    onComplete(ctx) {
      const ready = costReady(ctx)
      if (ready) return ready.then(() => { costs.push(costOf(ctx)) })
      costs.push(costOf(ctx))
    },
  }),
}

/** A soft budget; `cutoff`: a hard one that counts a stream's characters as they go (streamCutoff, no output cap). */
function settings(chain: string[], cutoff = false): Record<string, unknown> {
  const all = { name: 'all', scope: 'global', period: 'day', amountUsd: 100, tokens: 1_000_000 }
  return {
    providers: {
      p1: { type: 'openai', baseUrl: first.url, apiKey: 'sk-first-0000000001', headers: { 'x-mock-tokens': '60' } },
      p2: { type: 'openai', baseUrl: second.url, apiKey: 'sk-second-000000001' },
      nu: { type: 'openai-compatible', baseUrl: `${usageMock.url}/nousage/v1` },
    },
    models: {
      relay: {
        streamRecovery: 'resume',
        targets: [
          { provider: 'p1', model: 'gpt-4o' },
          { provider: 'p2', model: 'gpt-4o-mini', priority: 1, supportsPrefill: true },
        ],
      },
      'relay-nu': {
        streamRecovery: 'resume',
        targets: [
          { provider: 'p1', model: 'gpt-4o' },
          { provider: 'nu', model: 'local-model', priority: 1, supportsPrefill: true },
        ],
      },
    },
    plugins: {
      budget: {
        backend: 'local', keyPrefix: `test:budget-resume:${process.pid}:${++prefixN}:`,
        estimate: { method: 'chars', charsPerToken: 4, perMessageTokens: 0 },
        budgets: [cutoff ? { ...all, mode: 'hard', streamCutoff: true } : { ...all, mode: 'soft' }],
        ...(cutoff ? { capMaxTokens: false } : {}),
      },
      'cost-meter': { pricing: { models: [NU_PRICE] } },
    },
    chains: { default: chain },
  }
}

beforeAll(async () => {
  ;[first, second, usageMock] = await Promise.all([startOpenAIMock(), startOpenAIMock(), startUsageMock()])
})

afterEach(async () => {
  await tg?.close()
  tg = undefined
  costs.length = 0
})

afterAll(async () => {
  await Promise.all([first, second, usageMock].map((m) => m?.close()))
})

/** One resumed stream: the cut attempt's usage (estimated), the answer's (reported), and the budget's row after settlement. */
async function resumed(chain: string[]): Promise<{ cut: Usage; answer: Usage; row: BudgetReportRow }> {
  tg = await startTestGateway(settings(chain), { plugins: [probe] })
  first.fault = 'cutAfter:5'
  const r = await chat(tg.url, { model: 'relay', content: CONTENT, stream: true, extra: { stream_options: { include_usage: true } } })
  const text = await r.text()
  first.fault = null
  expect(text).toContain('data: [DONE]')
  const events = text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)) as { usage?: Usage })
  const answer = events.findLast((e) => e.usage)!.usage!
  const t = tg
  await until(async () => (await metricValue(t.adminUrl, 'mcp_budget_reservations_open')) === 0 && (await metricValue(t.adminUrl, 'mcp_requests_in_flight')) === 0)
  const prefill = (second.requests.at(-1) as { body: { messages: { role: string; content: string }[] } }).body.messages.at(-1)!
  expect(prefill.role).toBe('assistant')
  const prompt = 3 + 3 + encode(CONTENT).length
  const out = encode(prefill.content).length
  const [row] = (await adminGet<{ data: BudgetReportRow[] }>(tg.adminUrl, '/api/v1/mcp/budgets')).data
  return { cut: { prompt_tokens: prompt, completion_tokens: out, total_tokens: prompt + out }, answer, row: row! }
}

describe('budget: a resumed stream settles every attempt, each at its own price', () => {
  it('with the cost meter: the budget spends the request\'s cost (gpt-4o cut, gpt-4o-mini answers)', async () => {
    const { cut, answer, row } = await resumed(['test-principal', 'cost-probe', 'cost-meter', 'budget'])
    const c1 = PriceCatalogue.cost(catalogue.lookup('openai', 'gpt-4o'), cut, true)
    const c2 = PriceCatalogue.cost(catalogue.lookup('openai', 'gpt-4o-mini'), answer)
    const cost = costs[0]!
    expect(cost.pico).toBe(c1.pico + c2.pico)
    expect(row.spent).toEqual({ usd: picoToNano(cost.pico) / 1e9, tokens: cut.total_tokens + answer.total_tokens!, requests: 1 })
  })

  it('without a cost meter: the budget prices each attempt at its own model (it priced both at gpt-4o-mini)', async () => {
    const { cut, answer, row } = await resumed(['test-principal', 'cost-probe', 'budget'])
    expect(costs).toEqual([undefined])
    const c1 = PriceCatalogue.cost(catalogue.lookup('openai', 'gpt-4o'), cut, true)
    const c2 = PriceCatalogue.cost(catalogue.lookup('openai', 'gpt-4o-mini'), answer)
    expect(row.spent).toEqual({ usd: picoToNano(c1.pico + c2.pico) / 1e9, tokens: cut.total_tokens + answer.total_tokens!, requests: 1 })
  })
})

describe('a resumed stream whose answering target reports no usage', () => {
  it.each([
    ['by events (a soft budget)', false],
    ['by characters (a stream cut-off counts them: the answer\'s own only)', true],
  ])('counts the cut attempt\'s output once, in its own usage, not again in the answer\'s estimate: %s', async (_, cutoff) => {
    tg = await startTestGateway(settings(['test-principal', 'cost-probe', 'cost-meter', 'budget'], cutoff), { plugins: [probe] })
    first.fault = 'cutAfter:5'
    const r = await chat(tg.url, { model: 'relay-nu', content: CONTENT, stream: true })
    const text = await r.text()
    first.fault = null
    expect(text).toContain('data: [DONE]')
    expect(text).not.toContain('"usage":{')
    const t = tg
    await until(async () => (await metricValue(t.adminUrl, 'mcp_budget_reservations_open')) === 0 && (await metricValue(t.adminUrl, 'mcp_requests_in_flight')) === 0)
    const prefill = (usageMock.requests.at(-1)!.body['messages'] as { role: string; content: string }[]).at(-1)!
    expect(prefill.role).toBe('assistant')
    expect(prefill.content).toContain('tok4')

    // The cut gpt-4o attempt: its prompt and the text it delivered (estimated), at gpt-4o's price.
    const cut = estimateUsage({ chat: { model: 'gpt-4o', messages: [{ role: 'user', content: CONTENT }] } }, prefill.content)
    const c1 = PriceCatalogue.cost(catalogue.lookup('openai', 'gpt-4o'), cut, true)
    // The answer: its prompt (the client's message and the prefill) and about a token per event it sent: a role
    // chunk, the text pieces and the finish chunk. It was charged the cut attempt's events too.
    const events = TEXT_PIECES.length + 2
    const nu = new Pricing({ overrides: [NU_PRICE] }).pricesFor('nu', 'openai-compatible', 'local-model', Date.now())!
    const answerPrompt = estimateChatPrompt({ model: 'local-model', messages: [{ role: 'user', content: CONTENT }, { role: 'assistant', content: prefill.content }] })
    const c2 = PriceCatalogue.cost(nu, { prompt_tokens: answerPrompt, completion_tokens: events, total_tokens: answerPrompt + events }, true)
    const cost = costs[0]!
    expect(cost.outputTokens).toBe(cut.completion_tokens + events)
    expect(cost.pico).toBe(c1.pico + c2.pico)

    // The budget (its own estimate: characters / 4): the cut attempt's usage at its price, the answer's prompt and
    // output at nu's; its output counted by events, or by its own characters when the cut-off counts them.
    const budgetPrompt = Math.ceil((CONTENT.length + prefill.content.length) / 4)
    const out = cutoff ? Math.max(events, Math.ceil(TEXT.length / 4)) : events
    expect(out).toBe(cutoff ? 6 : 5)
    const [row] = (await adminGet<{ data: BudgetReportRow[] }>(tg.adminUrl, '/api/v1/mcp/budgets')).data
    expect(row!.spent).toEqual({
      usd: picoToNano(c1.pico + budgetPrompt * nu.input + out * nu.output) / 1e9,
      tokens: cut.total_tokens + budgetPrompt + out,
      requests: 1,
    })
  })
})
