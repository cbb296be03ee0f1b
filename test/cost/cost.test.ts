/**
 * Cost per request through the running gateway: for each provider's usage shape (cached, cache-write and
 * reasoning tokens included), streaming and not, the recorded cost equals the catalogue's computation exactly.
 * Also: unknown models (metric, rate-limited warning, cost flagged unknown), answers without usage (estimate,
 * flagged), cut streams, failures before any answer (cost 0), and the order of onComplete hooks.
 */
import { encode } from 'gpt-tokenizer'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { loadCatalogue, PriceCatalogue, type PriceEntry } from '../../gateway/cost/catalogue.ts'
import { costJson } from '../../gateway/cost/meter.ts'
import type { Usage } from '../../providers/types.ts'
import { CHAIN, chat, mockProviders, startCostGateway, type CostGateway } from './harness.ts'
import { ANTHROPIC_USAGE, GEMINI_USAGE, OLLAMA_USAGE, OPENAI_USAGE, startUsageMock, TEXT, type UsageMock } from './usage-mock.ts'
import { ADMIN_KEY } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'

const OVERRIDES: PriceEntry[] = [
  { provider: 'ollama', model: 'llama3.2', input: 0.1, output: 0.2, effectiveFrom: '1970-01-01' },
  { provider: 'nu', model: '*', input: 1, output: 2, effectiveFrom: '1970-01-01' },
  { provider: 'cut', model: '*', input: 1, output: 2, effectiveFrom: '1970-01-01' },
]
const catalogue = loadCatalogue(OVERRIDES)

/** The canonical usage each provider's documented shape maps to (cached ⊂ prompt, reasoning ⊂ completion). */
const EXPECTED_USAGE: Record<string, Usage> = {
  openai: OPENAI_USAGE,
  anthropic: {
    prompt_tokens: ANTHROPIC_USAGE.input_tokens + ANTHROPIC_USAGE.cache_read_input_tokens + ANTHROPIC_USAGE.cache_creation_input_tokens,
    completion_tokens: ANTHROPIC_USAGE.output_tokens,
    total_tokens: ANTHROPIC_USAGE.input_tokens + ANTHROPIC_USAGE.cache_read_input_tokens + ANTHROPIC_USAGE.cache_creation_input_tokens + ANTHROPIC_USAGE.output_tokens,
    prompt_tokens_details: { cached_tokens: ANTHROPIC_USAGE.cache_read_input_tokens, cache_creation_tokens: ANTHROPIC_USAGE.cache_creation_input_tokens },
  },
  google: {
    prompt_tokens: GEMINI_USAGE.promptTokenCount,
    completion_tokens: GEMINI_USAGE.candidatesTokenCount + GEMINI_USAGE.thoughtsTokenCount,
    total_tokens: GEMINI_USAGE.totalTokenCount,
    prompt_tokens_details: { cached_tokens: GEMINI_USAGE.cachedContentTokenCount },
    completion_tokens_details: { reasoning_tokens: GEMINI_USAGE.thoughtsTokenCount },
  },
  ollama: { prompt_tokens: OLLAMA_USAGE.prompt_eval_count, completion_tokens: OLLAMA_USAGE.eval_count, total_tokens: OLLAMA_USAGE.prompt_eval_count + OLLAMA_USAGE.eval_count },
}

const CASES: { name: string; model: string; priceType: string; priceModel: string; usage: Usage }[] = [
  { name: 'OpenAI (cached + reasoning)', model: 'oa/gpt-4o', priceType: 'openai', priceModel: 'gpt-4o', usage: EXPECTED_USAGE['openai']! },
  { name: 'Azure OpenAI (priced as openai)', model: 'az/gpt-4o-mini', priceType: 'openai', priceModel: 'gpt-4o-mini', usage: EXPECTED_USAGE['openai']! },
  { name: 'Anthropic (cache read + cache creation)', model: 'an/claude-sonnet-4-5', priceType: 'anthropic', priceModel: 'claude-sonnet-4-5', usage: EXPECTED_USAGE['anthropic']! },
  { name: 'Gemini (thoughts + cached)', model: 'gg/gemini-2.5-flash', priceType: 'google', priceModel: 'gemini-2.5-flash', usage: EXPECTED_USAGE['google']! },
  { name: 'Ollama (priced by config override)', model: 'ol/llama3.2', priceType: 'ollama', priceModel: 'llama3.2', usage: EXPECTED_USAGE['ollama']! },
]

let mock: UsageMock
let openai: OpenAIMock
let g: CostGateway

beforeAll(async () => {
  mock = await startUsageMock()
  openai = await startOpenAIMock()
  g = await startCostGateway({
    providers: {
      ...mockProviders(mock.url),
      down: { type: 'openai', baseUrl: 'http://127.0.0.1:9/v1', apiKey: 'x', timeouts: { connectMs: 500 } },
      om: { type: 'openai', baseUrl: openai.url, apiKey: 'sk-openai-mock' },
      // The same mock answering that another tier served the request (a project default, a priority request served
      // at the default tier).
      omd: { type: 'openai', baseUrl: openai.url, apiKey: 'sk-openai-mock', headers: { 'x-mock-service-tier': 'default' } },
      omp: { type: 'openai', baseUrl: openai.url, apiKey: 'sk-openai-mock', headers: { 'x-mock-service-tier': 'priority' } },
    },
    plugins: { 'cost-meter': { pricing: { models: OVERRIDES } } },
    chains: { default: CHAIN },
    // Streams of this alias go through the OpenAI adapter (chunks parsed and aggregated), not byte for byte.
    models: { 'om-resume': { targets: [{ provider: 'om', model: 'gpt-4o' }], streamRecovery: 'resume' } },
  })
})

afterAll(async () => {
  await g?.close()
  await mock?.close()
  await openai?.close()
})

async function one(model: string, opts: Parameters<typeof chat>[2] = {}): Promise<{ status: number; text: string; o: CostGateway['observed'][number] }> {
  const before = g.observed.length
  const r = await chat(g, model, opts)
  const all = await g.completed(before + 1)
  return { ...r, o: all[before]! }
}

describe('recorded cost = the catalogue\'s computation, for each provider\'s usage shape', () => {
  for (const c of CASES) {
    for (const stream of [false, true]) {
      it(`${c.name}, ${stream ? 'streaming' : 'non-streaming'}`, async () => {
        const { status, text, o } = await one(c.model, { stream })
        expect(status).toBe(200)
        expect(o.usage).toEqual(c.usage)
        const prices = catalogue.lookup(c.priceType, c.priceModel, Date.now())
        expect(prices).toBeDefined()
        const expected = PriceCatalogue.cost(prices, c.usage)
        expect(o.early).toEqual(expected)
        // Computed once: the hook that ran before the cost meter and the one after see the same object.
        expect(o.late).toBe(o.early)
        expect(o.early!.pico).toBeGreaterThan(0)
        expect(Number.isInteger(o.early!.pico)).toBe(true)
        expect(o.early!.estimated).toBe(false)
        expect(o.early!.unknown).toBe(false)
        if (stream) expect(text).toContain('[DONE]')
        else expect(text).toContain(TEXT)
      })
    }
  }

  it('OpenAI gpt-4o, worked by hand: 176 input, 1024 cached, 172 output, 128 reasoning → 0.00472 USD', async () => {
    const { o } = await one('oa/gpt-4o')
    // 176 × 2.50 + 1024 × 1.25 + 172 × 10 + 128 × 10 (USD per million) = 4720 µUSD
    expect(o.early).toMatchObject({ inputTokens: 176, cachedTokens: 1024, outputTokens: 172, reasoningTokens: 128, pico: 4_720_000_000 })
    expect(o.early!.usd).toBe(0.00472)
  })

  it('Anthropic claude-sonnet-4-5, worked by hand: cache writes at 3.75, reads at 0.30', async () => {
    const { o } = await one('an/claude-sonnet-4-5', { stream: true })
    // 50 × 3 + 2000 × 0.3 + 500 × 3.75 + 120 × 15 = 150 + 600 + 1875 + 1800 = 4425 µUSD
    expect(o.early).toMatchObject({ inputTokens: 50, cachedTokens: 2000, cacheWriteTokens: 500, outputTokens: 120, pico: 4_425_000_000 })
  })

  it('long context: a prompt over 200,000 tokens has every token priced at the long-context tier (Sonnet 4.5, Gemini 2.5 Pro), streamed or not', async () => {
    for (const stream of [false, true]) {
      // 150,000 × 6 + 40,000 × 0.6 + 20,000 × 7.5 + 2,000 × 22.5 = 900,000 + 24,000 + 150,000 + 45,000 µUSD = 1.119 USD
      // (at the base tier it would be 0.643 USD).
      const a = (await one('anl/claude-sonnet-4-5', { stream })).o
      expect(a.early).toMatchObject({ inputTokens: 150_000, cachedTokens: 40_000, cacheWriteTokens: 20_000, outputTokens: 2_000, pico: 1_119_000_000_000, unknown: false })
      // 150,000 × 2.5 + 100,000 × 0.25 + 1,000 × 15 + 500 × 15 = 375,000 + 25,000 + 15,000 + 7,500 µUSD = 0.4225 USD
      const g2 = (await one('ggl/gemini-2.5-pro', { stream })).o
      expect(g2.early).toMatchObject({ inputTokens: 150_000, cachedTokens: 100_000, outputTokens: 1_000, reasoningTokens: 500, pico: 422_500_000_000 })
      expect(g2.early).toEqual(PriceCatalogue.cost(catalogue.lookup('google', 'gemini-2.5-pro'), g2.usage!))
    }
    // At the threshold itself, the base tier: the rule is "over".
    const at = PriceCatalogue.cost(catalogue.lookup('anthropic', 'claude-sonnet-4-5'), { prompt_tokens: 200_000, completion_tokens: 1_000, total_tokens: 201_000 })
    expect(at.pico).toBe(200_000 * 3_000_000 + 1_000 * 15_000_000)
    // A model without a tier is priced as ever, however long the prompt.
    const flat = PriceCatalogue.cost(catalogue.lookup('google', 'gemini-2.5-flash'), { prompt_tokens: 500_000, completion_tokens: 0, total_tokens: 500_000 })
    expect(flat.pico).toBe(500_000 * 300_000)
  })

  it('a stream whose client did not ask for usage is still metered, and the usage chunk is not shown to it', async () => {
    const hidden = await one('oa/gpt-4o', { stream: true })
    expect(hidden.text).not.toContain('"usage":{')
    expect(hidden.o.early!.pico).toBe(4_720_000_000)
    const shown = await one('oa/gpt-4o', { stream: true, includeUsage: true })
    expect(shown.text).toContain('"usage":{"prompt_tokens":1200')
    expect(shown.o.early!.pico).toBe(4_720_000_000)
  })

  it('counts cost and tokens by provider, model and type', async () => {
    const m = await g.metrics()
    expect(m).toMatch(/mcp_cost_usd_total\{provider="oa",model="gpt-4o"\} [0-9.e-]+/)
    expect(m).toMatch(/mcp_tokens_total\{provider="an",model="claude-sonnet-4-5",type="cache_write"\} \d+/)
    expect(m).toMatch(/mcp_tokens_total\{provider="gg",model="gemini-2.5-flash",type="reasoning"\} \d+/)
  })
})

describe("OpenAI's processing tiers (service_tier): priced at the tier that served the request", () => {
  /** A chat to the OpenAI mock naming `tier` (none: not sent). */
  async function tiered(model: string, tier: string | undefined, o: { stream?: boolean } = {}): Promise<CostGateway['observed'][number]> {
    const before = g.observed.length
    const r = await fetch(`${g.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'How much does this cost?' }], ...(tier ? { service_tier: tier } : {}), ...(o.stream ? { stream: true } : {}) }),
    })
    const text = await r.text()
    expect(r.status, text).toBe(200)
    // The tier reaches OpenAI as sent, and its answer says which served it.
    if (tier) expect((openai.requests.at(-1)!.body as Record<string, unknown>)['service_tier']).toBe(tier)
    return (await g.completed(before + 1))[before]!
  }
  // The mock's usage for this prompt: 6 prompt tokens (24 characters / 4), 12 completion tokens.
  const standard = 6 * 2_500_000 + 12 * 10_000_000 // gpt-4o at 2.50 / 10 USD per million: 135 µUSD

  it('priority, answered and streamed (through the byte-for-byte lane and through the adapter): 4.25 / 17 USD per million', async () => {
    for (const [model, stream] of [['om/gpt-4o', false], ['om/gpt-4o', true], ['om-resume', true]] as const) {
      const o = await tiered(model, 'priority', { stream })
      expect(o.early, `${model} ${stream}`).toMatchObject({ inputTokens: 6, outputTokens: 12, pico: 6 * 4_250_000 + 12 * 17_000_000, serviceTier: 'priority', unknown: false })
      expect(o.early).toEqual(PriceCatalogue.cost(catalogue.lookup('openai', 'gpt-4o'), o.usage!, false, 'priority'))
      expect(costJson(o.early)).toMatchObject({ usd: 0.0002295, service_tier: 'priority' })
    }
  })

  it('flex: half the standard rates (o4-mini: 0.55 / 2.20)', async () => {
    for (const stream of [false, true]) {
      const o = await tiered('om/o4-mini', 'flex', { stream })
      expect(o.early).toMatchObject({ pico: 6 * 550_000 + 12 * 2_200_000, serviceTier: 'flex' })
    }
  })

  it('the tier that served it decides: priority asked, default served → standard; none asked, priority served (a project default) → priority', async () => {
    for (const stream of [false, true]) {
      const down = await tiered('omd/gpt-4o', 'priority', { stream })
      expect(down.early!.pico, `stream ${stream}`).toBe(standard)
      expect(down.early!.serviceTier).toBeUndefined()
      expect(costJson(down.early)).not.toHaveProperty('service_tier')
      const up = await tiered('omp/gpt-4o', undefined, { stream })
      expect(up.early).toMatchObject({ pico: 6 * 4_250_000 + 12 * 17_000_000, serviceTier: 'priority' })
    }
    // scale and auto are the standard rates; a tier the model has no rates for is priced at the standard ones.
    expect((await tiered('om/gpt-4o', 'scale')).early!.pico).toBe(standard)
    expect((await tiered('om/gpt-4o', 'auto')).early!.pico).toBe(standard)
    expect((await tiered('om/gpt-4o', 'flex')).early).toMatchObject({ pico: standard })
    expect((await tiered('om/gpt-4o', 'flex')).early!.serviceTier).toBeUndefined()
  })
})

describe('unknown models are reported, never silently free', () => {
  it('flags the cost unknown, counts the metric and warns once per model', async () => {
    const a = await one('oa/gpt-unknown-9000')
    const b = await one('oa/gpt-unknown-9000', { stream: true })
    for (const { o } of [a, b]) {
      expect(o.early).toMatchObject({ unknown: true, pico: 0, estimated: false, inputTokens: 176, cachedTokens: 1024 })
    }
    const m = await g.metrics()
    expect(m).toContain('mcp_cost_unknown_model_total{provider="oa",model="gpt-unknown-9000"} 2')
    const warnings = g.logs().filter((l) => typeof l['msg'] === 'string' && (l['msg'] as string).includes('not in the price catalogue') && l['model'] === 'gpt-unknown-9000')
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatchObject({ level: 40, provider: 'oa', providerType: 'openai' })
  })

  it('an Ollama model without a configured price is unknown (local types are not mapped to any catalogue)', async () => {
    const { o } = await one('ol/qwen3')
    expect(o.early).toMatchObject({ unknown: true, pico: 0 })
    expect(await g.metrics()).toContain('mcp_cost_unknown_model_total{provider="ol",model="qwen3"} 1')
  })
})

describe('answers without usage are estimated with the tokenizer, and flagged', () => {
  const prompt = 3 + 3 + encode('How much does this cost?').length

  it('non-streaming: prompt from the messages, completion from the delivered body', async () => {
    const { o } = await one('nu/local-model')
    expect(o.usage).toBeUndefined()
    const usage = { prompt_tokens: prompt, completion_tokens: encode(TEXT).length, total_tokens: prompt + encode(TEXT).length }
    expect(o.early).toEqual(PriceCatalogue.cost(catalogue.lookup('nu', '*'), usage, true))
    expect(o.early!.estimated).toBe(true)
    expect(await g.metrics()).toMatch(/mcp_cost_estimated_total\{provider="nu",model="local-model"\} [1-9]/)
  })

  it('streaming without a usage event: estimated (prompt at least), flagged', async () => {
    const { o } = await one('nu/local-model', { stream: true })
    expect(o.usage).toBeUndefined()
    expect(o.early).toMatchObject({ estimated: true, unknown: false, inputTokens: prompt })
    // The output the client was given counts too (about a token per event), as the budget charges it.
    expect(o.early!.outputTokens).toBeGreaterThan(0)
  })

  it('a stream cut midway is billed as an estimate of what was sent, never 0 and never silently', async () => {
    const { o } = await one('cut/local-model', { stream: true })
    expect(o.errorCode).toBe('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
    expect(o.early).toMatchObject({ estimated: true, unknown: false, inputTokens: prompt })
    expect(o.early!.outputTokens).toBeGreaterThan(0)
    expect(o.early!.pico).toBeGreaterThan(0)
  })

  it('a pass-through stream whose client left after the usage event is billed that usage, not an estimate', async () => {
    const before = g.observed.length
    const ac = new AbortController()
    // 300 ms between events: the client reads up to the usage event and leaves before [DONE].
    openai.fault = 'chunkDelayMs:300'
    const r = await fetch(`${g.url}/v1/chat/completions`, {
      method: 'POST', signal: ac.signal,
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'om/gpt-4o', messages: [{ role: 'user', content: 'How much does this cost?' }], stream: true, stream_options: { include_usage: true }, max_tokens: 2 }),
    })
    expect(r.status).toBe(200)
    const reader = r.body!.getReader()
    let seen = ''
    let usage: Usage | undefined
    while (usage === undefined) {
      const { value, done } = await reader.read()
      if (done) throw new Error(`stream ended before its usage event: ${seen}`)
      seen += new TextDecoder().decode(value)
      for (const line of seen.split('\n')) {
        if (!line.startsWith('data: {')) continue
        const u = (JSON.parse(line.slice(6)) as { usage?: Usage | null }).usage
        if (u) usage = u
      }
    }
    openai.fault = null
    expect(seen).not.toContain('[DONE]')
    ac.abort()
    await reader.cancel().catch(() => {})
    const o = (await g.completed(before + 1))[before]!
    expect(o.errorCode).toBe('MCP_ERR_REQ_ABORTED')
    expect(o.usage).toEqual(usage)
    expect(o.early).toEqual(PriceCatalogue.cost(catalogue.lookup('openai', 'gpt-4o'), usage))
    expect(o.early!.estimated).toBe(false)
  })

  it('a request that failed before any answer costs 0 (no estimate, not unknown)', async () => {
    const { status, o } = await one('down/gpt-4o')
    expect(status).toBeGreaterThanOrEqual(500)
    expect(o.early).toMatchObject({ pico: 0, estimated: false, unknown: false, inputTokens: 0, outputTokens: 0 })
  })
})

describe('chain order', () => {
  it('documents the chain this suite runs: probes before and after the cost meter', () => {
    expect(CHAIN.indexOf('cost-probe-late')).toBeLessThan(CHAIN.indexOf('cost-meter'))
    expect(CHAIN.indexOf('cost-probe-early')).toBeGreaterThan(CHAIN.indexOf('cost-meter'))
  })
})

describe('maxSeries bounds the label pairs across reloads and per-route meters', () => {
  it('reloads that change the cost-meter config, and a route with its own cost-meter, share one bound', async () => {
    const costMeter = (estimateWhenMissing: boolean) => ({ name: 'cost-meter', config: { maxSeries: 10, estimateWhenMissing } })
    const override: Record<string, unknown> = {
      providers: { om: { type: 'openai', baseUrl: openai.url, apiKey: 'sk-openai-mock' } },
      plugins: { 'cost-meter': { maxSeries: 10 } },
      chains: { default: CHAIN },
      // The embeddings route has a cost-meter of its own config: another meter on the same registry.
      routes: { embeddings: { plugins: ['request-id', 'auth', costMeter(false)] } },
    }
    const b = await startCostGateway(override)
    try {
      const series = async () => (await b.metrics()).split('\n').filter((l) => l.startsWith('mcp_cost_usd_total{') && !l.includes('model="_other"')).length
      let n = 0
      const embed = async (model: string) => {
        const r = await fetch(`${b.url}/v1/embeddings`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ model, input: 'x' }) })
        expect(r.status, await r.text()).toBe(200)
      }
      for (let round = 0; round < 4; round++) {
        if (round > 0) {
          // A changed cost-meter config: new meters on the default chain and on the route.
          override['plugins'] = { 'cost-meter': { maxSeries: 10, estimateWhenMissing: round % 2 === 0 } }
          override['routes'] = { embeddings: { plugins: ['request-id', 'auth', costMeter(round % 2 === 1)] } }
          expect((await b.gw.reload('test')).ok).toBe(true)
        }
        for (let i = 0; i < 8; i++) { expect((await chat(b, `om/r${round}-chat-${i}`)).status).toBe(200); n++ }
        for (let i = 0; i < 4; i++) await embed(`om/r${round}-embed-${i}`)
        await b.completed(n)
        // The embeddings route's meter counts after its last byte: waited for.
        await vi.waitFor(async () => expect(await series(), `round ${round}`).toBe(10), { timeout: 2000, interval: 20 })
      }
      // Further models are still counted, under model="_other".
      expect(await b.metrics()).toMatch(/mcp_cost_usd_total\{provider="om",model="_other"\}/)
    } finally {
      await b.close()
    }
  })
})
