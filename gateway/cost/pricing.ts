/**
 * Which prices apply to a provider (by name and type) and model: config entries by provider name, then by (mapped)
 * type, then the shipped catalogue merged with them (docs/cost.md "Price catalogue"). The cost meter prices answers
 * with it, the budget plugin reservations (through the cost meter), and the router's lowest-cost strategy targets.
 */
import { loadCatalogue, PriceCatalogue, type PriceEntry, type TokenPrices } from './catalogue.ts'
import { table } from '../../providers/shared/table.ts'

/** Provider types priced like another: Azure OpenAI's list prices are OpenAI's. */
export const DEFAULT_PROVIDER_TYPE_MAP: Readonly<Record<string, string>> = table({ 'azure-openai': 'openai' })

export interface PricingOptions {
  /** Config price entries: by provider type (`openai`) or by provider name (`providers.<name>`); model `*` prices every model. */
  overrides?: readonly PriceEntry[] | undefined
  /** Provider type → the type whose prices apply (complete: DEFAULT_PROVIDER_TYPE_MAP is not added). */
  providerTypeMap?: Readonly<Record<string, string>> | undefined
}

/** The prices when they are in effect at `at` (a config entry dated later does not apply yet). */
function inEffect(p: TokenPrices | undefined, at: number): TokenPrices | undefined {
  return p !== undefined && p.effectiveFrom <= at ? p : undefined
}

/** Gemini's `models/gemini-2.5-flash` is priced as `gemini-2.5-flash`. */
export function modelKey(model: string): string {
  return model.startsWith('models/') ? model.slice(7) : model
}

export class Pricing {
  /** The shipped catalogue plus the config overrides. */
  readonly catalogue: PriceCatalogue
  /** The config entries alone, looked up first: by provider name, then by (mapped) type. */
  readonly #overrides: PriceCatalogue
  readonly #typeMap: Readonly<Record<string, string>>

  constructor(opts: PricingOptions = {}) {
    const overrides = opts.overrides ?? []
    this.catalogue = loadCatalogue(overrides)
    this.#overrides = new PriceCatalogue(overrides)
    this.#typeMap = opts.providerTypeMap ?? {}
  }

  /** The first time after `at` when some price changes (an entry's effectiveFrom), Infinity when none is scheduled. */
  nextChangeAfter(at: number): number {
    return this.catalogue.nextChangeAfter(at)
  }

  /** The prices that apply to a provider (name and type) and model at `at`, or undefined (unknown model). */
  pricesFor(providerName: string, providerType: string, model: string, at: number): TokenPrices | undefined {
    const m = modelKey(model)
    const type = this.#typeMap[providerType] ?? providerType
    const o = this.#overrides
    // Config entries in effect win over the shipped ones whatever their dates; a future-dated config entry
    // applies from its date, through the merged catalogue.
    return inEffect(o.lookup(providerName, m, at), at) ?? inEffect(o.lookup(providerName, '*', at), at) ?? inEffect(o.lookup(type, m, at), at)
      ?? inEffect(o.lookup(type, '*', at), at) ?? this.catalogue.lookup(type, m, at) ?? this.catalogue.lookup(type, '*', at)
  }
}
