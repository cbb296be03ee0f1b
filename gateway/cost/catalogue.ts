/**
 * The price catalogue: per provider type and model, USD per million tokens for input, cached input,
 * cache writes, output and reasoning, with effective dates and, for some models, a long-context tier and processing
 * tiers (OpenAI's flex and priority). Shipped as prices.json, overridable in
 * config (`pricing.models`). Costs are computed in integer pico-USD (1e-12 USD), so the same usage
 * always costs exactly the same and sums never drift.
 */
import { readFileSync } from 'node:fs'
import type { Usage } from '../../providers/types.ts'
import { parseEffectiveFrom } from './effective-from.ts'

export interface PriceEntry {
  provider: string
  model: string
  input: number
  cachedInput?: number
  cacheWrite?: number
  /**
   * Writes to Anthropic's 1-hour prompt cache (`cache_control.ttl: '1h'`; `cacheWrite` prices the default 5-minute
   * ones). Default: 2 × `input`, Anthropic's published rate. Only Anthropic answers report such writes.
   */
  cacheWrite1h?: number
  output: number
  reasoning?: number
  /**
   * Long-context pricing (Gemini 2.5 Pro, Claude Sonnet 4 and 4.5 with the 1M window): a request whose prompt (cached
   * and cache-write tokens included) is over `threshold` tokens has every token priced at these rates, output too.
   */
  longContext?: { threshold: number; input: number; cachedInput?: number; cacheWrite?: number; cacheWrite1h?: number; output: number; reasoning?: number }
  /** USD per 1,000 web searches a server tool made (Anthropic's web search: 10), on top of their tokens. */
  webSearch?: number
  /**
   * OpenAI's processing tiers with prices of their own (`service_tier`): `flex` (half the standard rates) and
   * `priority` (a premium). A request served at one of them (the answer's `service_tier` says which) has every token
   * priced at its rates; `default`, `auto`, `scale` and a tier without an entry are priced at the standard rates.
   */
  serviceTiers?: Partial<Record<ServiceTier, TierEntry>>
  effectiveFrom: string
}

/** The processing tiers priced apart from the standard rates. */
export type ServiceTier = 'flex' | 'priority'
export const SERVICE_TIERS: readonly ServiceTier[] = ['flex', 'priority']

/** One tier's rates, USD per million tokens (cachedInput and cacheWrite default to input, cacheWrite1h to 2 × input, reasoning to output). */
export interface TierEntry { input: number; cachedInput?: number; cacheWrite?: number; cacheWrite1h?: number; output: number; reasoning?: number }

/** The priced tier a `service_tier` value names, or undefined (standard rates). */
export function pricedTier(v: unknown): ServiceTier | undefined {
  return v === 'flex' || v === 'priority' ? v : undefined
}

/** One tier's prices in pico-USD per token (USD per million tokens × 1e6), integers. */
export interface TierPrices {
  input: number
  cachedInput: number
  cacheWrite: number
  /** Anthropic's 1-hour cache writes. */
  cacheWrite1h: number
  output: number
  reasoning: number
}

/** Prices in pico-USD per token, with the long-context tier when the model has one. */
export interface TokenPrices extends TierPrices {
  effectiveFrom: number
  /** The tier of requests whose prompt is over `threshold` tokens (PriceEntry.longContext). */
  longContext?: TierPrices & { threshold: number }
  /** pico-USD per web search (PriceEntry.webSearch, USD per 1,000 × 1e9). */
  webSearch?: number
  /** The rates of a processing tier priced apart (PriceEntry.serviceTiers). */
  serviceTiers?: Partial<Record<ServiceTier, TierPrices>>
}

/**
 * The rates a request pays: those of the processing tier that served it when the model prices that tier apart, else
 * those of its prompt's length (the long-context tier past its threshold), else the standard ones.
 */
export function tierFor(prices: TokenPrices, promptTokens: number, serviceTier?: ServiceTier): TierPrices {
  if (serviceTier !== undefined) {
    const t = prices.serviceTiers?.[serviceTier]
    if (t !== undefined) return t
  }
  const long = prices.longContext
  return long !== undefined && promptTokens > long.threshold ? long : prices
}

function tierOf(e: TierEntry): TierPrices {
  return {
    input: toPico(e.input),
    cachedInput: toPico(e.cachedInput ?? e.input),
    cacheWrite: toPico(e.cacheWrite ?? e.input),
    cacheWrite1h: toPico(e.cacheWrite1h ?? 2 * e.input),
    output: toPico(e.output),
    reasoning: toPico(e.reasoning ?? e.output),
  }
}

export interface CostBreakdown {
  /** Total in pico-USD (integer). */
  pico: number
  /** Total in USD (for display; computed from pico). */
  usd: number
  inputTokens: number
  cachedTokens: number
  cacheWriteTokens: number
  /** The part of cacheWriteTokens written to Anthropic's 1-hour cache (priced at cacheWrite1h); absent when none. */
  cacheWrite1hTokens?: number
  outputTokens: number
  reasoningTokens: number
  /** True when the model is not in the catalogue (cost unknown, reported, never silently 0). */
  unknown: boolean
  /** True when the token counts were estimated (the provider reported no usage). */
  estimated: boolean
  /** Web searches a server tool made, priced at PriceEntry.webSearch each; absent when none. */
  webSearchRequests?: number
  /** The processing tier whose own rates priced the tokens (flex, priority); absent at the standard rates. */
  serviceTier?: ServiceTier
}

const MEMO_MAX = 10_000

const toPico = (usdPerMillion: number): number => Math.round(usdPerMillion * 1e6)

/**
 * What may follow a catalogue name in a model name priced as it: a dated or numbered snapshot of that model
 * (`-2024-08-06`, `-20250929`, `@20250929`, `-001`, `-2411`) or `-latest`. A name part that is not a date or a
 * number of three digits or more is another model (`gpt-4o-mini` is not `gpt-4o`, `claude-sonnet-4-6` is not
 * `claude-sonnet-4`): unknown, and reported as such, rather than billed at a sibling's price.
 */
const SNAPSHOT_SUFFIX = /^[-@](?:latest|\d{3,}(?:-\d{1,4})*)$/

/** Model names are matched exactly, then by the longest catalogue name they are a snapshot of (SNAPSHOT_SUFFIX). */
export class PriceCatalogue {
  readonly #byKey = new Map<string, TokenPrices[]>()
  readonly #names = new Map<string, string[]>()
  /** provider type → model → its price list (null: unknown), see #listFor. */
  readonly #memo = new Map<string, Map<string, TokenPrices[] | null>>()
  /** Every entry's effective date, ascending, once each (nextChangeAfter). */
  readonly #changes: number[] = []

  constructor(entries: readonly PriceEntry[]) {
    for (const e of entries) {
      const key = `${e.provider}\u0000${e.model}`
      const p: TokenPrices = {
        ...tierOf(e),
        // Validated where config enters (effectiveFromErrors): never a local time, never a rolled-over date.
        effectiveFrom: parseEffectiveFrom(e.effectiveFrom),
      }
      if (e.longContext) p.longContext = { ...tierOf(e.longContext), threshold: e.longContext.threshold }
      if (e.webSearch !== undefined) p.webSearch = Math.round(e.webSearch * 1e9)
      if (e.serviceTiers) {
        const tiers: Partial<Record<ServiceTier, TierPrices>> = {}
        for (const t of SERVICE_TIERS) { const r = e.serviceTiers[t]; if (r) tiers[t] = tierOf(r) }
        p.serviceTiers = tiers
      }
      if (!this.#changes.includes(p.effectiveFrom)) this.#changes.push(p.effectiveFrom)
      const list = this.#byKey.get(key) ?? []
      list.push(p)
      list.sort((a, b) => a.effectiveFrom - b.effectiveFrom)
      this.#byKey.set(key, list)
      const names = this.#names.get(e.provider) ?? []
      if (!names.includes(e.model)) names.push(e.model)
      names.sort((a, b) => b.length - a.length)
      this.#names.set(e.provider, names)
    }
    this.#changes.sort((a, b) => a - b)
  }

  /**
   * The first effective date after `at` of any entry (Infinity: none): until then every lookup at or after `at`
   * answers what it answers at `at`. Price caches keep a result no longer than this (a scheduled change applies
   * from its date, not up to a cache lifetime later).
   */
  nextChangeAfter(at: number): number {
    for (const t of this.#changes) if (t > at) return t
    return Infinity
  }

  /** Prices in effect at `at` (epoch ms) for a provider type and model, or undefined if unknown. */
  lookup(providerType: string, model: string, at = Date.now()): TokenPrices | undefined {
    const list = this.#listFor(providerType, model)
    if (list === null) return undefined
    let cur: TokenPrices | undefined
    for (const p of list) if (p.effectiveFrom <= at) cur = p
    return cur ?? list[0]
  }

  /**
   * The price list of a provider type and model: resolved once per (type, model) and remembered (the request path
   * prices every answer, some twice; building the key and the prefix search cost more than the rest of a lookup).
   * Model names come from clients, so the memo is bounded: cleared when it holds MEMO_MAX names of one type.
   */
  #listFor(providerType: string, model: string): TokenPrices[] | null {
    let byModel = this.#memo.get(providerType)
    if (byModel === undefined) { byModel = new Map(); this.#memo.set(providerType, byModel) }
    let list = byModel.get(model)
    if (list !== undefined) return list
    list = this.#byKey.get(`${providerType}\u0000${model}`) ?? null
    if (list === null) {
      const base = this.#names.get(providerType)?.find((n) => model.length > n.length && model.startsWith(n) && SNAPSHOT_SUFFIX.test(model.slice(n.length)))
      if (base !== undefined) list = this.#byKey.get(`${providerType}\u0000${base}`) ?? null
    }
    if (byModel.size >= MEMO_MAX) byModel.clear()
    byModel.set(model, list)
    return list
  }

  /**
   * The exact cost of a usage under these prices (canonical usage: cached ⊂ prompt, reasoning ⊂ completion), at the
   * rates of `serviceTier` when the model prices it apart.
   */
  static cost(prices: TokenPrices | undefined, usage: Usage, estimated = false, serviceTier?: ServiceTier): CostBreakdown {
    const cached = usage.prompt_tokens_details?.cached_tokens ?? 0
    const cacheWrite = usage.prompt_tokens_details?.cache_creation_tokens ?? 0
    const write1h = Math.min(cacheWrite, usage.prompt_tokens_details?.cache_creation_1h_tokens ?? 0)
    const reasoning = usage.completion_tokens_details?.reasoning_tokens ?? 0
    const input = Math.max(0, (usage.prompt_tokens ?? 0) - cached - cacheWrite)
    // Embeddings report no completion_tokens.
    const output = Math.max(0, (usage.completion_tokens ?? 0) - reasoning)
    const b = { inputTokens: input, cachedTokens: cached, cacheWriteTokens: cacheWrite, outputTokens: output, reasoningTokens: reasoning, estimated }
    if (!prices) return { ...b, pico: 0, usd: 0, unknown: true }
    const t = tierFor(prices, usage.prompt_tokens ?? 0, serviceTier)
    let pico = input * t.input + cached * t.cachedInput + (cacheWrite - write1h) * t.cacheWrite + write1h * t.cacheWrite1h + output * t.output + reasoning * t.reasoning
    const searches = usage.server_tool_use?.web_search_requests ?? 0
    if (searches > 0) pico += searches * (prices.webSearch ?? 0)
    const c: CostBreakdown = { ...b, pico, usd: pico / 1e12, unknown: false }
    if (searches > 0) c.webSearchRequests = searches
    if (write1h > 0) c.cacheWrite1hTokens = write1h
    if (serviceTier !== undefined && t === prices.serviceTiers?.[serviceTier]) c.serviceTier = serviceTier
    return c
  }
}

let shipped: PriceEntry[] | undefined

/** The catalogue shipped in prices.json, plus config overrides (later entries win for the same date). */
export function loadCatalogue(overrides: readonly PriceEntry[] = []): PriceCatalogue {
  shipped ??= (JSON.parse(readFileSync(new URL('./prices.json', import.meta.url), 'utf8')) as { models: PriceEntry[] }).models
  const merged = new Map<string, PriceEntry>()
  for (const e of [...shipped, ...overrides]) merged.set(`${e.provider}\u0000${e.model}\u0000${e.effectiveFrom}`, e)
  return new PriceCatalogue([...merged.values()])
}
