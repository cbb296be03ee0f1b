/**
 * What a request may cost at most, before it is sent: prompt tokens (estimated) × the highest input
 * price + output tokens (the request's max_tokens / max_completion_tokens, else a default) × the
 * highest output price. For an alias the most expensive target the router could pick is priced
 * (its own targets, rule aliases and fallback aliases), since the budget is reserved before routing.
 *
 * Prices come from the cost meter when the chain has one (its overrides and provider type map), else
 * from the catalogue with this plugin's `prices`; a target's `price` in the alias config is the last
 * resort. Amounts are integer nano-USD (1e-9): budgets up to $9M stay exact in Redis' Lua numbers.
 */
import type { RequestCtx } from '../../gateway/context.ts'
import { pricedTier, SERVICE_TIERS, type PriceEntry, type ServiceTier, type TierPrices, type TokenPrices } from '../../gateway/cost/catalogue.ts'
import { DEFAULT_PROVIDER_TYPE_MAP, Pricing as CostPricing } from '../../gateway/cost/pricing.ts'
import { countTokens } from '../../gateway/cost/estimate.ts'
import type { CompiledAlias } from '../../gateway/routing/alias.ts'
import { clientBodyOf, nativeOnlyOf, replaceClientBody } from '../../gateway/inbound/anthropic-paths.ts'
import type { ChatRequest, EmbeddingRequest, Usage } from '../../providers/types.ts'
import type { BudgetConfig } from './config.ts'

/** pico-USD → nano-USD, rounded up (never under-reserve, never under-charge by more than 1 nano-USD). */
export const picoToNano = (pico: number): number => Math.ceil(pico / 1000)
export const nanoToUsd = (nano: number): number => nano / 1e9

/** The highest per-token prices of a set of candidates (pico-USD / token). */
export interface WorstPrices {
  input: number
  output: number
  /** Some candidate has no price. */
  unpriced: boolean
  /**
   * The highest long-context prices of the candidates that have a long-context tier, from the lowest of their
   * thresholds: a prompt over it may be priced at them (gateway/cost/catalogue.ts tierFor).
   */
  long?: { threshold: number; input: number; output: number }
  /** The highest fee per web search (pico-USD) of the candidates that have one (PriceEntry.webSearch). */
  webSearch?: number
  /**
   * Per processing tier some candidate prices apart (flex, priority): the highest rates a request served at it may
   * pay, each candidate at that tier's rates when it has them, else at its standard ones.
   */
  tiers?: Partial<Record<ServiceTier, { input: number; output: number }>>
}

export interface Pricing {
  pricesFor(providerName: string, providerType: string, model: string, at: number): TokenPrices | undefined
  /** The first time after `at` when some price changes (Infinity: none scheduled); worst prices are kept no longer. */
  nextChangeAfter?(at: number): number
}

/**
 * The plugin's own prices when no cost meter is in the chain: its `prices` over the shipped catalogue, read as the
 * cost meter reads its entries (by provider name, then type; model `*`; Azure priced as OpenAI).
 */
export function ownPricing(prices: readonly PriceEntry[]): Pricing {
  return new CostPricing({ overrides: prices, providerTypeMap: DEFAULT_PROVIDER_TYPE_MAP })
}

/** The cost meter's pricing when the chain has one (same prices as the recorded cost). */
export function pricingOf(ctx: RequestCtx, own: Pricing): Pricing {
  const meter = (ctx.slots as Readonly<Record<string, unknown>>)['costMeter'] as Pricing | undefined
  return meter !== undefined && typeof meter.pricesFor === 'function' ? meter : own
}

function fromTargetPrice(p: { input: number; output: number } | undefined): TokenPrices | undefined {
  if (!p) return undefined
  const i = Math.round(p.input * 1e6)
  const o = Math.round(p.output * 1e6)
  return { input: i, cachedInput: i, cacheWrite: i, cacheWrite1h: 2 * i, output: o, reasoning: o, effectiveFrom: 0 }
}

function collectTargets(alias: CompiledAlias, aliases: ReadonlyMap<string, CompiledAlias>, seen: Set<string>, out: CompiledAlias['targets'][number][]): void {
  if (seen.has(alias.name)) return
  seen.add(alias.name)
  out.push(...alias.targets)
  for (const r of alias.rules) if (r.alias !== undefined) { const a = aliases.get(r.alias); if (a) collectTargets(a, aliases, seen, out) }
  for (const f of alias.settings.fallbacks) { const a = aliases.get(f); if (a) collectTargets(a, aliases, seen, out) }
}

/**
 * How long a worst-price result is reused at most. It is never reused past the next scheduled price change (an
 * entry's effectiveFrom), nor for a time before it was computed: a request is reserved at the prices in effect when it
 * arrived, the ones it is settled at (and the cost meter prices it at, gateway/cost/meter.ts).
 */
export const WORST_PRICES_TTL_MS = 60_000
const MEMO_MAX = 1000

/** Worst prices in effect over [from, until). */
interface Memo { from: number; until: number; w: Readonly<WorstPrices> }
/**
 * Worst prices per pricing (the cost meter's or the plugin's own; a reload makes new ones), then per alias, or per
 * adapter and model: a lookup walks up to six catalogue maps per candidate, on every admission otherwise. Model
 * names come from clients: a memo holds at most MEMO_MAX of them.
 */
const memos = new WeakMap<Pricing, { aliases: WeakMap<CompiledAlias, Memo>; direct: WeakMap<object, Map<string, Memo>> }>()

const fresh = (m: Memo | undefined, at: number): m is Memo => m !== undefined && at >= m.from && at < m.until
const memoOf = (pricing: Pricing, at: number, w: Readonly<WorstPrices>): Memo => ({ from: at, until: Math.min(at + WORST_PRICES_TTL_MS, pricing.nextChangeAfter?.(at) ?? Infinity), w })

/** Highest input and output prices over what this request may be sent to (read-only: results are shared). */
export function worstPrices(ctx: RequestCtx, pricing: Pricing, at: number): Readonly<WorstPrices> {
  let memo = memos.get(pricing)
  if (!memo) { memo = { aliases: new WeakMap(), direct: new WeakMap() }; memos.set(pricing, memo) }
  const alias = ctx.alias
  if (alias) {
    const m = memo.aliases.get(alias)
    if (fresh(m, at)) return m.w
    const w = computeWorst(ctx, pricing, at)
    memo.aliases.set(alias, memoOf(pricing, at, w))
    return w
  }
  const adapter = ctx.adapter
  if (!adapter) return computeWorst(ctx, pricing, at)
  let byModel = memo.direct.get(adapter)
  if (!byModel) { byModel = new Map(); memo.direct.set(adapter, byModel) }
  const m = byModel.get(ctx.model)
  if (fresh(m, at)) return m.w
  const w = computeWorst(ctx, pricing, at)
  if (byModel.size >= MEMO_MAX) byModel.clear()
  byModel.set(ctx.model, memoOf(pricing, at, w))
  return w
}

/**
 * Provider types whose answers may report 1-hour cache writes (priced at cacheWrite1h, 2 × input by default): every
 * prompt token of a request to them may be one. Other providers' prompts are never priced at that rate.
 */
const ONE_HOUR_CACHE_WRITES: ReadonlySet<string> = new Set(['anthropic'])

/** The highest price a prompt token may be charged at these rates: input, a cache write, or a 1-hour one where possible. */
function worstInput(r: TierPrices, oneHour: boolean): number {
  return Math.max(r.input, r.cacheWrite, oneHour ? r.cacheWrite1h : 0)
}

function computeWorst(ctx: RequestCtx, pricing: Pricing, at: number): WorstPrices {
  const w: WorstPrices = { input: 0, output: 0, unpriced: false }
  const all: { p: TokenPrices; oneHour: boolean }[] = []
  const add = (p: TokenPrices | undefined, providerType: string): void => {
    if (!p) { w.unpriced = true; return }
    const oneHour = ONE_HOUR_CACHE_WRITES.has(providerType)
    all.push({ p, oneHour })
    w.input = Math.max(w.input, worstInput(p, oneHour))
    w.output = Math.max(w.output, p.output, p.reasoning)
    if (p.webSearch !== undefined) w.webSearch = Math.max(w.webSearch ?? 0, p.webSearch)
    const l = p.longContext
    if (l) {
      const cur = w.long ?? { threshold: l.threshold, input: 0, output: 0 }
      w.long = { threshold: Math.min(cur.threshold, l.threshold), input: Math.max(cur.input, worstInput(l, oneHour)), output: Math.max(cur.output, l.output, l.reasoning) }
    }
  }
  if (ctx.alias) {
    const targets: CompiledAlias['targets'][number][] = []
    collectTargets(ctx.alias, ctx.pipeline.aliases, new Set(), targets)
    for (const t of targets) add(pricing.pricesFor(t.provider, t.adapter.type, t.model, at) ?? fromTargetPrice(t.price), t.adapter.type)
  } else {
    add(pricing.pricesFor(ctx.providerName, ctx.adapter?.type ?? '', ctx.model, at), ctx.adapter?.type ?? '')
  }
  for (const tier of SERVICE_TIERS) {
    if (!all.some(({ p }) => p.serviceTiers?.[tier] !== undefined)) continue
    let input = 0
    let output = 0
    for (const { p, oneHour } of all) {
      const r = p.serviceTiers?.[tier] ?? p
      input = Math.max(input, worstInput(r, oneHour))
      output = Math.max(output, r.output, r.reasoning)
    }
    ;(w.tiers ??= {})[tier] = { input, output }
  }
  return w
}

/**
 * The processing tier a request is reserved at: the one it names (flex, priority), `default` as the standard rates,
 * and none or `auto` as `estimate.autoServiceTier` says. A flex request that its alias may send again at the standard
 * tier (`flexFallback`) is reserved at the standard rates, the most it can cost.
 */
export function requestTier(chat: ChatRequest | undefined, est: Estimate, flexFallback = false): ServiceTier | undefined {
  const asked = chat?.service_tier
  if (asked === 'default' || (asked === 'flex' && flexFallback)) return undefined
  return pricedTier(asked) ?? (est.autoServiceTier === 'priority' ? 'priority' : undefined)
}

/** Tokens counted for an image or other non-text part (an upper bound of a high-detail 2048 px image). */
const MEDIA_TOKENS = 1105

export type Estimate = BudgetConfig['estimate']

function tokensOf(text: string, est: Estimate): number {
  if (text === '') return 0
  return est.method === 'tokenizer' ? countTokens(text) : Math.ceil(text.length / est.charsPerToken)
}

/** The prompt's text as it is read: its length alone for the 'chars' method (no text built), the text for the tokenizer. */
interface PromptText { readonly byLength: boolean; chars: number; text: string }

function addText(p: PromptText, s: string): void {
  if (p.byLength) p.chars += s.length
  else p.text += s
}

/**
 * Prompt tokens of a chat: its messages' text, tool calls, tools and JSON schema, plus per-message and per-image
 * allowances. A native-only Messages request (server tools, their results in the history: gateway/upstream/
 * native-messages.ts) has parts its canonical form does not hold: its whole body as the client sent it is counted.
 */
function chatPromptTokens(chat: ChatRequest, est: Estimate): number {
  const p: PromptText = { byLength: est.method === 'chars', chars: 0, text: '' }
  let n = 0
  if (nativeOnlyOf(chat) !== undefined) {
    const body = clientBodyOf(chat)
    if (body !== undefined) {
      addText(p, JSON.stringify(body))
      return chat.messages.length * est.perMessageTokens + (p.byLength ? Math.ceil(p.chars / est.charsPerToken) : tokensOf(p.text, est))
    }
  }
  for (const m of chat.messages) {
    n += est.perMessageTokens
    const c = m.content
    if (typeof c === 'string') addText(p, c)
    else if (Array.isArray(c)) {
      for (const part of c as unknown[]) {
        if (part === null || typeof part !== 'object') continue
        const o = part as { type?: unknown; text?: unknown }
        if (typeof o.text === 'string') addText(p, o.text)
        else if (o.type === 'image_url' || o.type === 'input_audio' || o.type === 'file') n += MEDIA_TOKENS
      }
    }
    if ('tool_calls' in m && Array.isArray(m.tool_calls)) addText(p, JSON.stringify(m.tool_calls))
    const legacyCall = (m as { function_call?: unknown }).function_call
    if (legacyCall !== undefined && legacyCall !== null) addText(p, JSON.stringify(legacyCall))
  }
  if (Array.isArray(chat.tools) && chat.tools.length > 0) addText(p, JSON.stringify(chat.tools))
  if (Array.isArray(chat['functions']) && chat['functions'].length > 0) addText(p, JSON.stringify(chat['functions']))
  if (chat.response_format && typeof chat.response_format === 'object' && chat.response_format.type === 'json_schema') addText(p, JSON.stringify(chat.response_format))
  return n + (p.byLength ? Math.ceil(p.chars / est.charsPerToken) : tokensOf(p.text, est))
}

/** Prompt tokens of a chat or embeddings request (an estimate, meant to be at or above the provider's count). */
export function promptTokens(chat: ChatRequest | undefined, embedding: EmbeddingRequest | undefined, est: Estimate): number {
  if (chat) return chatPromptTokens(chat, est)
  if (embedding) {
    const input = embedding.input
    if (typeof input === 'string') return tokensOf(input, est)
    let n = 0
    for (const x of input) {
      if (typeof x === 'string') n += tokensOf(x, est)
      else if (typeof x === 'number') n += 1
      else if (Array.isArray(x)) n += x.length
    }
    return n
  }
  return 0
}

/** The request's own output limit, or undefined when it sets none. `n` choices multiply it. */
export function requestedMaxOutput(chat: ChatRequest | undefined): number | undefined {
  if (!chat) return undefined
  const m = chat.max_completion_tokens ?? chat.max_tokens
  if (typeof m !== 'number' || !Number.isFinite(m) || m < 0) return undefined
  return Math.ceil(m) * choices(chat)
}

export function choices(chat: ChatRequest | undefined): number {
  const n = chat?.n
  return typeof n === 'number' && Number.isInteger(n) && n > 1 ? n : 1
}

/**
 * The most web searches a request's server tools may make: the `max_uses` of its web search tools (a native-only
 * Messages request), and `withoutMaxUses` for one that sets none (it has no bound of its own; docs/budgets.md); 0 for
 * any other request.
 */
export function maxWebSearches(chat: ChatRequest | undefined, withoutMaxUses: number): number {
  if (chat === undefined || nativeOnlyOf(chat) === undefined) return 0
  const tools = clientBodyOf(chat)?.['tools']
  if (!Array.isArray(tools)) return 0
  let n = 0
  for (const t of tools as unknown[]) {
    if (!isWebSearchTool(t)) continue
    n += typeof t.max_uses === 'number' && Number.isInteger(t.max_uses) && t.max_uses > 0 ? t.max_uses : withoutMaxUses
  }
  return n
}

/** A server web search tool of a Messages body (`web_search_20250305` and the versions after it). */
function isWebSearchTool(t: unknown): t is { type: string; max_uses?: unknown } {
  return t !== null && typeof t === 'object' && typeof (t as { type?: unknown }).type === 'string' && (t as { type: string }).type.startsWith('web_search_')
}

/**
 * Gives the web search tools of a native-only Messages request that set no `max_uses` the bound the reservation assumes
 * for them (`max_uses: n`, estimate.webSearchesWithoutMaxUses), so that a request under a hard amount budget cannot
 * search more than it reserved. The body sent upstream (and logged) is a copy with that key added; the client's own
 * object and any tool that sets `max_uses` (a valid one or not: Anthropic judges it) are left as they are. Returns how
 * many tools it bounded.
 */
export function capWebSearches(chat: ChatRequest, n: number): number {
  if (n < 1 || nativeOnlyOf(chat) === undefined) return 0
  const body = clientBodyOf(chat)
  const tools = body?.['tools']
  if (!Array.isArray(tools)) return 0
  let capped = 0
  const bounded = tools.map((t: unknown) => {
    if (!isWebSearchTool(t) || t.max_uses !== undefined) return t
    capped++
    return { ...t, max_uses: n }
  })
  if (capped > 0) replaceClientBody(chat, { ...body, tools: bounded })
  return capped
}

/** nano-USD of a token count at worst prices (pico per token), at a processing tier's when the request names one. */
export function worstCostNano(prompt: number, output: number, w: Readonly<WorstPrices>, tier?: ServiceTier): number {
  const l = w.long
  const r = tier !== undefined ? w.tiers?.[tier] : undefined
  if (r !== undefined) {
    // A tier's rates; a prompt past a long-context threshold may be served at the standard tier's long rates instead.
    if (l !== undefined && prompt > l.threshold) return picoToNano(prompt * Math.max(r.input, l.input) + output * Math.max(r.output, l.output))
    return picoToNano(prompt * r.input + output * r.output)
  }
  if (l !== undefined && prompt > l.threshold) return picoToNano(prompt * Math.max(w.input, l.input) + output * Math.max(w.output, l.output))
  return picoToNano(prompt * w.input + output * w.output)
}

/** Output tokens of streamed text so far (the cut-off's running count). */
export function outputTokensOf(chars: number, est: Estimate): number {
  return chars === 0 ? 0 : Math.ceil(chars / (est.method === 'tokenizer' ? 4 : est.charsPerToken))
}

/** Tokens of a usage (prompt + completion). */
export function usageTokens(u: Usage): number {
  const t = u.total_tokens
  return typeof t === 'number' && Number.isFinite(t) && t >= 0 ? t : (u.prompt_tokens ?? 0) + (u.completion_tokens ?? 0)
}
