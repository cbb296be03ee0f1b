/**
 * budget: config (io contract, defaults, unknown keys, cross-field checks), calendar periods, the
 * in-process store's admission semantics (all-or-nothing, settlement, TTL of orphans), and the
 * worst-case estimate (alias targets, output limit, unpriced models). Through the server: test/budget/.
 */
import pino from 'pino'
import { describe, expect, it, vi } from 'vitest'
import { streamedChatCtx } from '../../test/helpers/budget-ctx.ts'
import { validatePluginConfig } from '../../gateway/pipeline/compile.ts'
import { Metrics } from '../../gateway/metrics.ts'
import type { PluginDeps } from '../../gateway/pipeline/types.ts'
import type { ChatRequest } from '../../providers/types.ts'
import type { BudgetConfig } from './config.ts'
import type { RequestCtx } from '../../gateway/context.ts'
import { capWebSearches, maxWebSearches, nanoToUsd, ownPricing, picoToNano, promptTokens, requestedMaxOutput, worstCostNano, worstPrices, WORST_PRICES_TTL_MS, type Pricing } from './estimate.ts'
import { anthropicToCanonical } from '../../gateway/inbound/anthropic.ts'
import { clientBodyOf } from '../../gateway/inbound/anthropic-paths.ts'
import { budgetPlugin, createBudgetPlugin, fmtUsd, usedPercent } from './index.ts'
import { periodLabel, periodWindow } from './period.ts'
import { COUNTER_RETENTION_MS, LocalBudgetStore, type CounterSpec } from './store.ts'

const deps: PluginDeps = { services: {}, logger: pino({ level: 'silent' }), metrics: new Metrics(), env: { adminKey: undefined, production: false } }

describe('budget config', () => {
  it('has the io contract (timeoutMs, failMode), shadow, and defaults', () => {
    const cfg = validatePluginConfig(budgetPlugin, { budgets: [{ name: 'b', scope: 'key', period: 'day', amountUsd: 5 }] }, 'plugins.budget')
    expect(cfg).toMatchObject({ backend: 'auto', timeoutMs: 100, failMode: 'closed', shadow: false, capMaxTokens: true, keyPrefix: 'mcp:{budget}:' })
    expect((cfg['budgets'] as unknown[])[0]).toEqual({ name: 'b', scope: 'key', id: '*', period: 'day', amountUsd: 5, mode: 'hard', streamCutoff: false })
  })

  it('rejects unknown keys, a budget without an amount, bad scopes and periods, naming the field', () => {
    expect(() => validatePluginConfig(budgetPlugin, { limit: 1 }, 'plugins.budget')).toThrow(/plugins\.budget\.limit: unknown key/)
    expect(() => validatePluginConfig(budgetPlugin, { budgets: [{ name: 'b', scope: 'key', period: 'day' }] }, 'plugins.budget')).toThrow(/budgets/)
    expect(() => validatePluginConfig(budgetPlugin, { budgets: [{ name: 'b', scope: 'user', period: 'day', requests: 1 }] }, 'plugins.budget')).toThrow(/scope/)
    expect(() => validatePluginConfig(budgetPlugin, { budgets: [{ name: 'b', scope: 'key', period: 'year', requests: 1 }] }, 'plugins.budget')).toThrow(/period/)
  })

  it('a reservationTtlMs whose keepalive period (TTL / 4) a timer cannot hold is refused (Node ran it every 1 ms)', () => {
    const v = (ttl: number) => () => validatePluginConfig(budgetPlugin, { reservationTtlMs: ttl }, 'plugins.budget')
    // TTL / 4 past 2^31 - 1 ms (24.8 days): setInterval warns and fires every millisecond, refreshing every open reservation.
    expect(v(9_000_000_000)).toThrow(/plugins\.budget\.reservationTtlMs/)
    expect(v(8 * 86_400_000)).toThrow(/plugins\.budget\.reservationTtlMs/)
    expect(v(7 * 86_400_000)).not.toThrow()
  })

  it('create() refuses duplicate names, soft cut-offs and downgrades naming an unknown budget', async () => {
    const make = (c: Record<string, unknown>): Promise<unknown> => Promise.resolve(budgetPlugin.create(validatePluginConfig(budgetPlugin, c, 'plugins.budget') as unknown as BudgetConfig, deps))
    await expect(make({ budgets: [{ name: 'b', scope: 'key', period: 'day', requests: 1 }, { name: 'b', scope: 'team', period: 'day', requests: 1 }] })).rejects.toThrow(/'b' is used twice/)
    await expect(make({ budgets: [{ name: 'b', scope: 'key', period: 'day', requests: 1, mode: 'soft', streamCutoff: true }] })).rejects.toThrow(/only hard budgets cut streams/)
    await expect(make({ downgrade: [{ alias: 'a', whenBudget: 'nope', atPercent: 50, to: 'c' }] })).rejects.toThrow(/no budget named 'nope'/)
    await expect(make({ budgets: [{ name: 'principal.daily_usd', scope: 'key', period: 'day', amountUsd: 1 }] })).rejects.toThrow(/key records' own budgets/)
  })

  it('prices[].effectiveFrom is validated like the cost meter\'s: a time needs an offset, an impossible date is refused', async () => {
    const entry = (effectiveFrom: string) => ({ prices: [{ provider: 'openai', model: 'gpt-4o', input: 1, output: 2, effectiveFrom }] })
    const v = (c: unknown) => () => validatePluginConfig(budgetPlugin, c, 'plugins.budget')
    // Read as local time before: the switch moved with the server's time zone.
    expect(v(entry('2027-01-01T00:00'))).toThrow(/prices\[0\]\.effectiveFrom/)
    expect(v(entry('2027-01-01T00:00:00.5'))).toThrow(/prices\[0\]\.effectiveFrom/)
    expect(v(entry('2027-01-01 junk'))).toThrow(/prices\[0\]\.effectiveFrom/)
    const make = (c: Record<string, unknown>): Promise<unknown> => Promise.resolve(budgetPlugin.create(validatePluginConfig(budgetPlugin, c, 'plugins.budget') as unknown as BudgetConfig, deps))
    // Date.parse rolled these over (Feb 30 is Mar 2, 24:00 the next day).
    for (const bad of ['2025-02-30', '2025-02-29', '2025-04-31T10:00:00Z', '2025-01-01T24:00Z', '2025-01-01T10:00+24:00']) {
      await expect(make(entry(bad)), bad).rejects.toThrow(/prices\[0\]\.effectiveFrom: not a valid date/)
    }
    for (const good of ['2028-02-29', '2027-01-01T00:00Z', '2027-01-01T00:00:00.123+02:00']) await expect(make(entry(good)), good).resolves.toBeDefined()
  })

  it('adds a chunk hook only when a hard budget cuts streams (routes keep pass-through otherwise)', async () => {
    const make = async (c: Record<string, unknown>): Promise<Record<string, unknown>> => (await budgetPlugin.create(validatePluginConfig(budgetPlugin, c, 'plugins.budget') as unknown as BudgetConfig, deps)) as unknown as Record<string, unknown>
    expect((await make({ budgets: [{ name: 'b', scope: 'key', period: 'day', amountUsd: 1 }] }))['onResponseChunk']).toBeUndefined()
    expect(typeof (await make({ budgets: [{ name: 'b', scope: 'key', period: 'day', amountUsd: 1, streamCutoff: true }] }))['onResponseChunk']).toBe('function')
  })
})

describe('calendar periods (UTC)', () => {
  it('day, week (Monday) and month windows', () => {
    const t = Date.parse('2026-03-04T15:30:00Z') // a Wednesday
    expect(periodWindow('day', t)).toEqual({ start: Date.parse('2026-03-04T00:00:00Z'), end: Date.parse('2026-03-05T00:00:00Z') })
    expect(periodWindow('week', t)).toEqual({ start: Date.parse('2026-03-02T00:00:00Z'), end: Date.parse('2026-03-09T00:00:00Z') })
    expect(periodWindow('week', Date.parse('2026-03-08T23:59:59Z')).start).toBe(Date.parse('2026-03-02T00:00:00Z')) // Sunday
    expect(periodWindow('week', Date.parse('2026-03-09T00:00:00Z')).start).toBe(Date.parse('2026-03-09T00:00:00Z')) // Monday
    expect(periodWindow('month', t)).toEqual({ start: Date.parse('2026-03-01T00:00:00Z'), end: Date.parse('2026-04-01T00:00:00Z') })
    expect(periodWindow('month', Date.parse('2026-12-31T23:59:59.999Z')).end).toBe(Date.parse('2027-01-01T00:00:00Z'))
    expect(periodWindow('month', Date.parse('2028-02-29T12:00:00Z'))).toEqual({ start: Date.parse('2028-02-01T00:00:00Z'), end: Date.parse('2028-03-01T00:00:00Z') })
    expect(periodLabel(Date.parse('2026-03-01T00:00:00Z'))).toBe('2026-03-01T00:00Z')
  })
})

describe('LocalBudgetStore', () => {
  const day = Date.UTC(2030, 0, 1)
  const spec = (budget: string, limits: [number, number, number], hard = true): CounterSpec => ({ budget, scopeId: 's', periodStart: day, periodEnd: day + 86_400_000, hard, limits })

  it('admits all-or-nothing, settles the reservation, adds extensions to the same reservation', () => {
    const s = new LocalBudgetStore(60_000)
    const a = spec('a', [100, -1, -1])
    const b = spec('b', [-1, 10, -1])
    expect(s.admitSync('r1', [a, b], [60, 4, 1], true, day).status).toBe('ok')
    const refused = s.admitSync('r2', [a, b], [60, 4, 1], true, day)
    expect(refused).toMatchObject({ status: 'refused', failed: 0, unit: 0 })
    expect(s.peekSync([a, b], day).map((x) => x.reserved)).toEqual([[60, 4, 1], [60, 4, 1]])
    expect(s.admitSync('r1', [a, b], [0, 6, 0], true, day).status).toBe('ok')
    expect(s.admitSync('r3', [b], [0, 1, 1], true, day)).toMatchObject({ status: 'refused', unit: 1 })
    expect(s.settleSync('r1', [a, b], [50, 9, 1], day)).toMatchObject([{ spent: [50, 9, 1], reserved: [0, 0, 0] }, { spent: [50, 9, 1], reserved: [0, 0, 0] }])
    expect(s.openReservations()).toBe(0)
    // No settle marker in-process (the plugin's slot settles once): a second settle of an id counts again.
    expect(s.settleSync('r1', [a], [1, 0, 0], day)).toMatchObject([{ spent: [51, 9, 1], reserved: [0, 0, 0] }])
  })

  it('soft counters never refuse; shadow admissions are "over"; a zero amount passes a full budget', () => {
    const s = new LocalBudgetStore(60_000)
    const soft = spec('soft', [-1, -1, 1], false)
    const hard = spec('hard', [-1, -1, 1])
    expect(s.admitSync('1', [soft], [0, 0, 1], true, day).status).toBe('ok')
    expect(s.admitSync('2', [soft], [0, 0, 1], true, day).status).toBe('ok')
    expect(s.admitSync('3', [hard], [0, 0, 1], true, day).status).toBe('ok')
    expect(s.admitSync('4', [hard], [0, 0, 1], false, day).status).toBe('over')
    expect(s.admitSync('5', [hard], [0, 0, 0], true, day).status).toBe('ok')
    expect(usedPercent(soft, { spent: [0, 0, 3], reserved: [0, 0, 0] })).toBe(300)
  })

  it('an orphan reservation (crashed caller) is dropped after its TTL', () => {
    const s = new LocalBudgetStore(1000)
    const c = spec('ttl', [10, -1, -1])
    expect(s.admitSync('dead', [c], [10, 0, 0], true, day).status).toBe('ok')
    expect(s.admitSync('x', [c], [1, 0, 0], true, day + 999).status).toBe('refused')
    expect(s.admitSync('x', [c], [1, 0, 0], true, day + 1000).status).toBe('ok')
  })

  it('the counters kept per spec array are the live ones: after a counter expired and was swept, a new one is used', () => {
    const s = new LocalBudgetStore(60_000)
    const old = spec('roll', [-1, -1, 100])
    const list = [old]
    expect(s.admitSync('a', list, [0, 0, 1], true, day).states[0]!.reserved).toEqual([0, 0, 1])
    s.settleSync('a', list, [0, 0, 1], day)
    // Past its retention the counter is removed by the next sweep (every 1024 operations).
    const later = old.periodEnd + COUNTER_RETENTION_MS + 1
    const other = [spec('other', [-1, -1, -1])]
    for (let i = 0; i < 1100; i++) {
      s.admitSync(`o${i}`, other, [0, 0, 0], true, later)
      s.settleSync(`o${i}`, other, [0, 0, 0], later)
    }
    expect(s.peekSync(list, later)[0]).toEqual({ spent: [0, 0, 0], reserved: [0, 0, 0] })
    // The same array again: the store's own counter for it now, not the swept one.
    const r = s.admitSync('b', list, [0, 0, 1], true, later)
    expect(r.states[0]).toMatchObject({ spent: [0, 0, 0], reserved: [0, 0, 1] })
    expect(s.peekSync(list, later)[0]).toEqual({ spent: [0, 0, 0], reserved: [0, 0, 1] })
    expect(s.openReservations()).toBe(1)
  })
})

describe('worst-case estimate', () => {
  const est = { method: 'chars' as const, charsPerToken: 4, perMessageTokens: 4, defaultMaxTokens: 100, webSearchesWithoutMaxUses: 10, autoServiceTier: 'default' as const }

  it('prompt tokens: characters / charsPerToken, per-message overhead, tools, images', () => {
    const chat: ChatRequest = { model: 'm', messages: [{ role: 'system', content: 'abcd' }, { role: 'user', content: [{ type: 'text', text: 'abcdefgh' }, { type: 'image_url', image_url: { url: 'x' } }] }] }
    expect(promptTokens(chat, undefined, est)).toBe(8 + 3 + 1105)
    expect(promptTokens(undefined, { model: 'e', input: ['abcd', 'abcdefgh'] }, est)).toBe(3)
  })

  it("the 'chars' count from lengths equals the count of the concatenated text (tools, tool calls, schema, images)", () => {
    const chat: ChatRequest = {
      model: 'm',
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: [{ type: 'text', text: 'é😀 three' }, { type: 'image_url', image_url: { url: 'x' } }, { type: 'text', text: 'more' }] },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }] },
        { role: 'tool', tool_call_id: 'c1', content: 'result' },
      ],
      tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }],
      response_format: { type: 'json_schema', json_schema: { name: 's', schema: { type: 'object' } } },
    }
    const calls = [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }]
    const text = 'You are terse.' + 'é😀 three' + 'more' + JSON.stringify(calls) + 'result' + JSON.stringify(chat.tools) + JSON.stringify(chat.response_format)
    for (const charsPerToken of [1, 3, 4, 7.5]) {
      expect(promptTokens(chat, undefined, { ...est, charsPerToken })).toBe(4 * 4 + 1105 + Math.ceil(text.length / charsPerToken))
    }
    expect(promptTokens({ model: 'm', messages: [{ role: 'user', content: '' }] }, undefined, est)).toBe(4)
  })

  it('a native-only Messages request counts its whole body as sent (search results in the history are input), and its web searches', () => {
    const result = { type: 'web_search_result', url: 'https://example.com', title: 't', encrypted_content: 'x'.repeat(4000) }
    const body = {
      model: 'claude/claude-sonnet-4-5', max_tokens: 64,
      tools: [{ type: 'web_search_20250305', name: 'web_search', max_uses: 3 }, { type: 'web_search_20260209', name: 'web_search2', max_uses: 2 }, { type: 'web_fetch_20250910', name: 'web_fetch', max_uses: 9 }],
      messages: [
        { role: 'user', content: 'news?' },
        { role: 'assistant', content: [{ type: 'server_tool_use', id: 's1', name: 'web_search', input: { query: 'news' } }, { type: 'web_search_tool_result', tool_use_id: 's1', content: [result] }, { type: 'text', text: 'Found.' }] },
        { role: 'user', content: 'more' },
      ],
    }
    const chat = anthropicToCanonical(body)
    expect(promptTokens(chat, undefined, est)).toBe(chat.messages.length * 4 + Math.ceil(JSON.stringify(body).length / 4))
    expect(promptTokens(chat, undefined, est)).toBeGreaterThan(1000)
    expect(maxWebSearches(chat, 10)).toBe(5) // web fetches have no fee
    // A web search tool without max_uses has no bound of its own: reserved at webSearchesWithoutMaxUses.
    const unbounded = anthropicToCanonical({ ...body, tools: [{ type: 'web_search_20250305', name: 'web_search' }, body.tools[1]!, body.tools[2]!] })
    expect(maxWebSearches(unbounded, 10)).toBe(12)
    expect(maxWebSearches(unbounded, 0)).toBe(2)
    // Without a server tool the request is canonical: counted as such, no searches.
    const plain = anthropicToCanonical({ model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'abcd' }] })
    expect(promptTokens(plain, undefined, est)).toBe(4 + 1)
    expect(maxWebSearches(plain, 10)).toBe(0)
  })

  it('capWebSearches bounds the web search tools without max_uses in the body to be sent, and nothing else', () => {
    const tools = [{ type: 'web_search_20250305', name: 'a' }, { type: 'web_search_20260209', name: 'b', max_uses: 0 }, { type: 'web_fetch_20250910', name: 'f' }]
    const body = { model: 'claude/claude-sonnet-4-5', max_tokens: 64, tools, messages: [{ role: 'user', content: 'news?' }] }
    const chat = anthropicToCanonical(body)
    expect(capWebSearches(chat, 0)).toBe(0)
    expect(clientBodyOf(chat)).toBe(body)
    expect(capWebSearches(chat, 4)).toBe(1)
    // Only the tool without max_uses (an invalid one is Anthropic's to refuse), on a copy: the client's body is unchanged.
    expect(clientBodyOf(chat)).toEqual({ ...body, tools: [{ ...tools[0], max_uses: 4 }, tools[1], tools[2]] })
    expect(tools[0]).not.toHaveProperty('max_uses')
    expect(maxWebSearches(chat, 10)).toBe(4 + 10)
    // Again: nothing left to bound.
    expect(capWebSearches(chat, 4)).toBe(0)
    // A canonical request (no server tool) has no such body.
    expect(capWebSearches(anthropicToCanonical({ model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'abcd' }] }), 4)).toBe(0)
  })

  it("the deprecated function calling counts like its tool form (functions, an assistant's function_call)", () => {
    const fn = { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } }
    const call = { name: 'get_weather', arguments: '{"city":"Paris"}' }
    const legacy = { model: 'm', functions: [fn], messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: null, function_call: call }] } as unknown as ChatRequest
    const text = 'hi' + JSON.stringify(call) + JSON.stringify([fn])
    expect(promptTokens(legacy, undefined, { ...est, charsPerToken: 1 })).toBe(2 * 4 + text.length)
  })

  it('output: max_completion_tokens over max_tokens, times n; none when unset', () => {
    expect(requestedMaxOutput({ model: 'm', messages: [], max_tokens: 50 })).toBe(50)
    expect(requestedMaxOutput({ model: 'm', messages: [], max_tokens: 50, max_completion_tokens: 70, n: 2 })).toBe(140)
    expect(requestedMaxOutput({ model: 'm', messages: [] })).toBeUndefined()
  })

  it('cost in nano-USD from pico prices, rounded up', () => {
    const p = ownPricing([]).pricesFor('x', 'azure-openai', 'gpt-4o-mini', Date.now())
    expect(p).toMatchObject({ input: 150_000, output: 600_000 })
    expect(worstCostNano(10, 100, { input: p!.input, output: p!.output, unpriced: false })).toBe(61_500)
    expect(picoToNano(1)).toBe(1)
  })

  it('a long-context tier prices a prompt over its threshold at the tier (the catalogue\'s claude-sonnet-4-5: 6 and 22.5 over 200,000)', () => {
    const p = ownPricing([]).pricesFor('x', 'anthropic', 'claude-sonnet-4-5', Date.now())
    expect(p?.longContext).toMatchObject({ threshold: 200_000, input: 6_000_000, cacheWrite: 7_500_000, output: 22_500_000 })
    const w = { input: 3_750_000, output: 15_000_000, unpriced: false, long: { threshold: 200_000, input: 7_500_000, output: 22_500_000 } }
    expect(worstCostNano(200_000, 1_000, w)).toBe(picoToNano(200_000 * 3_750_000 + 1_000 * 15_000_000))
    expect(worstCostNano(200_001, 1_000, w)).toBe(picoToNano(200_001 * 7_500_000 + 1_000 * 22_500_000))
  })

  it('worst prices are reused for a minute per pricing, adapter and model, then looked up again', () => {
    let price = 1000
    const asked: string[] = []
    const pricing: Pricing = { pricesFor: (_n, _t, model, _at) => { asked.push(model); return { input: price, cachedInput: price, cacheWrite: price, cacheWrite1h: price, output: 2 * price, reasoning: 2 * price, effectiveFrom: 0 } } }
    const adapter = { name: 'p', type: 'openai' }
    const ctx = (model: string): RequestCtx => ({ providerName: 'p', adapter, model, alias: undefined }) as unknown as RequestCtx
    const t0 = 1_000_000
    expect(worstPrices(ctx('a'), pricing, t0)).toEqual({ input: 1000, output: 2000, unpriced: false })
    price = 5000
    expect(worstPrices(ctx('a'), pricing, t0 + 1000).input).toBe(1000)
    expect(worstPrices(ctx('b'), pricing, t0 + 1000).input).toBe(5000)
    expect(worstPrices(ctx('a'), pricing, t0 + WORST_PRICES_TTL_MS).input).toBe(5000)
    // A clock that goes back is not served from the memo either.
    price = 7000
    expect(worstPrices(ctx('a'), pricing, t0).input).toBe(7000)
    expect(asked).toEqual(['a', 'b', 'a', 'a'])
  })

  it("an Anthropic target's prompt is reserved at the 1-hour cache-write price (2 x input), others' not", () => {
    // Regression: a prompt of 1-hour cache writes settles at 2 x input; reserved at the 5-minute rate (1.25 x) it
    // could settle above its reservation.
    const pricing = ownPricing([])
    const ctx = (type: string, model: string): RequestCtx => ({ providerName: type, adapter: { name: type, type }, model, alias: undefined }) as unknown as RequestCtx
    expect(worstPrices(ctx('anthropic', 'claude-haiku-4-5'), pricing, Date.now()).input).toBe(2_000_000)
    expect(worstPrices(ctx('anthropic', 'claude-sonnet-4-5'), pricing, Date.now()).long).toMatchObject({ threshold: 200_000, input: 12_000_000 })
    expect(worstPrices(ctx('openai', 'gpt-4o-mini'), pricing, Date.now()).input).toBe(150_000)
    // A config entry's own 1-hour price wins over the default.
    const own = ownPricing([{ provider: 'anthropic', model: 'claude-haiku-4-5', input: 1, cacheWrite: 1.25, cacheWrite1h: 3, output: 5, effectiveFrom: '1970-01-01' }])
    expect(worstPrices(ctx('anthropic', 'claude-haiku-4-5'), own, Date.now()).input).toBe(3_000_000)
  })
})

describe('remaining-budget header amounts', () => {
  it('fmtUsd writes the same text as toFixed(9) of the dollar amount', () => {
    for (const nano of [0, 1, 9, 10, 999_999_999, 1_000_000_000, 1_000_000_001, 123_456_789_012, 61_500, 10 ** 15 + 7, 2 ** 53 - 1]) {
      expect(fmtUsd(nano), String(nano)).toBe(nano <= 2 ** 52 ? nanoToUsd(nano).toFixed(9) : fmtUsd(nano))
    }
    expect(fmtUsd(123_456_789_012)).toBe('123.456789012')
    expect(fmtUsd(2 ** 53 - 1)).toBe('9007199.254740991')
    // Not a whole non-negative nano amount: toFixed, as before.
    expect(fmtUsd(1.5)).toBe((1.5e-9).toFixed(9))
  })
})

describe('budget: a client gone while the downgrade reads its counter', () => {
  it('releases the reservation its admission makes afterwards, and refuses to call the provider', async () => {
    const cfg = validatePluginConfig(budgetPlugin, {
      backend: 'local', keyPrefix: 'mcp:test-gone:',
      budgets: [{ name: 'all', scope: 'global', period: 'day', amountUsd: 100 }],
      downgrade: [{ alias: 'smart', whenBudget: 'all', atPercent: 100, to: 'cheap' }],
    }, 'plugins.budget') as unknown as BudgetConfig
    const inst = await budgetPlugin.create(cfg, deps) as unknown as {
      onRequestBody(ctx: RequestCtx): void | Promise<void>
      onComplete(ctx: RequestCtx): void
      budgetReport(): Promise<{ rows: { budget: string; reserved: { usd: number; tokens: number; requests: number } }[] }>
    }
    const target = { provider: 'p', model: 'gpt-4o', adapter: { type: 'openai' }, price: { input: 2.5e-6, output: 1e-5 } }
    const ctx = {
      chat: { model: 'smart', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 100 },
      alias: { name: 'smart', targets: [target], rules: [], settings: { fallbacks: [] } },
      pipeline: { aliases: new Map() },
      slots: {}, stream: false, providerName: 'p', model: 'gpt-4o', requestedModel: 'smart', responseHeaders: {}, attempts: 0,
    } as unknown as RequestCtx
    const admitting = inst.onRequestBody(ctx)
    expect(admitting).toBeInstanceOf(Promise)
    // The client leaves while the downgrade's counter read is pending: the request completes without a slot.
    inst.onComplete(ctx)
    await expect(admitting).rejects.toMatchObject({ code: 'MCP_ERR_REQ_ABORTED' })
    // Nothing stays reserved: the admission that ran after the read released its reservation.
    const { rows } = await inst.budgetReport()
    expect(rows.map((r) => [r.budget, r.reserved])).toEqual([['all', { usd: 0, tokens: 0, requests: 0 }]])
  })
})

describe('budget: a stream open longer than reservationTtlMs', () => {
  it('keeps its reservation (refreshed while it is open), so no admission passes a hard limit meanwhile', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'] })
    let t = Date.UTC(2030, 0, 1, 12)
    try {
      const cfg = validatePluginConfig(budgetPlugin, {
        backend: 'local', keyPrefix: 'mcp:test-long-stream:', reservationTtlMs: 1000,
        budgets: [{ name: 'one-at-a-time', scope: 'global', period: 'day', requests: 1 }],
      }, 'plugins.budget') as unknown as BudgetConfig
      const inst = await createBudgetPlugin({ now: () => t }).create(cfg, deps) as unknown as {
        onRequestBody(ctx: RequestCtx): void | Promise<void>
        onComplete(ctx: RequestCtx): void
        close?(): void
      }
      const ctx = streamedChatCtx
      const long = ctx()
      inst.onRequestBody(long)
      // The stream stays open for ten TTLs.
      for (let i = 0; i < 40; i++) { t += 250; vi.advanceTimersByTime(250) }
      const other = ctx()
      expect(() => inst.onRequestBody(other)).toThrow(expect.objectContaining({ code: 'MCP_ERR_BUDGET_EXCEEDED' }) as Error)
      inst.onComplete(other)
      // Once it settled, the request it used is spent: still refused (a limit of 1 request a day).
      inst.onComplete(long)
      expect(() => inst.onRequestBody(ctx())).toThrow(expect.objectContaining({ code: 'MCP_ERR_BUDGET_EXCEEDED' }) as Error)
      inst.close?.()
    } finally {
      vi.useRealTimers()
    }
  })
})

describe('budget: reservationTtlMs raised by a reload (the in-process store is shared by key prefix)', () => {
  it('a running request keeps its reservation for the new TTL, between the new keepalive refreshes', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'] })
    let t = Date.UTC(2030, 0, 1, 12)
    try {
      const make = async (ttl: number) => await createBudgetPlugin({ now: () => t }).create(validatePluginConfig(budgetPlugin, {
        backend: 'local', keyPrefix: 'mcp:test-ttl-reload:', reservationTtlMs: ttl,
        budgets: [{ name: 'one-at-a-time', scope: 'global', period: 'day', requests: 1 }],
      }, 'plugins.budget') as unknown as BudgetConfig, deps) as unknown as {
        onRequestBody(ctx: RequestCtx): void | Promise<void>
        onComplete(ctx: RequestCtx): void
        close?(): void
      }
      const before = await make(1000)
      before.close?.()
      // The reload: TTL 60 s, so the keepalive refreshes every 15 s.
      const inst = await make(60_000)
      const long = streamedChatCtx()
      inst.onRequestBody(long)
      // 5 s into the stream: past the old TTL, long before the first refresh.
      for (let i = 0; i < 20; i++) { t += 250; vi.advanceTimersByTime(250) }
      const other = streamedChatCtx()
      expect(() => inst.onRequestBody(other)).toThrow(expect.objectContaining({ code: 'MCP_ERR_BUDGET_EXCEEDED' }) as Error)
      inst.onComplete(other)
      inst.onComplete(long)
      inst.close?.()
    } finally {
      vi.useRealTimers()
    }
  })
})

describe('budget: its own prices (no cost meter in the chain) are read like the cost meter\'s', () => {
  it('a model \'*\' entry and a provider-name entry price requests, so amount budgets hold', async () => {
    const make = async (prices: unknown[]) => await budgetPlugin.create(validatePluginConfig(budgetPlugin, {
      backend: 'local', keyPrefix: `mcp:test-own-prices:${prices.length}:${Math.random()}:`, unpriced: 'refuse',
      budgets: [{ name: 'one-dollar', scope: 'global', period: 'day', amountUsd: 0.5 }],
      prices,
    }, 'plugins.budget') as unknown as BudgetConfig, deps) as unknown as { onRequestBody(ctx: RequestCtx): void | Promise<void>; onComplete(ctx: RequestCtx): void }
    const ctx = (): RequestCtx => {
      const c = streamedChatCtx()
      Object.assign(c, { model: 'in-house-7b', requestedModel: 'p/in-house-7b', providerName: 'p' })
      Object.assign(c.chat!, { model: 'p/in-house-7b', max_completion_tokens: 10 })
      return c
    }
    // $0.10 a token (the most an entry may say): 10 output tokens alone are past a $0.50 budget.
    for (const entry of [{ provider: 'openai', model: '*' }, { provider: 'p', model: 'in-house-7b' }, { provider: 'p', model: '*' }]) {
      const inst = await make([{ ...entry, input: 100_000, output: 100_000, effectiveFrom: '2020-01-01' }])
      const c = ctx()
      let err: unknown
      try { await inst.onRequestBody(c) } catch (e) { err = e }
      expect(err, JSON.stringify(entry)).toMatchObject({ code: 'MCP_ERR_BUDGET_EXCEEDED', details: 'budget.exceeded' })
      inst.onComplete(c)
    }
  })
})
