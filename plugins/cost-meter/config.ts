import { priceEntriesSchema } from '../../gateway/cost/price-entry.ts'
import type { JSONSchema } from '../../gateway/validate.ts'

/** A price entry in config: USD per million tokens; `provider` is a provider type or a provider name; model `*` = every model. */
export interface PriceOverride {
  provider: string
  model: string
  input: number
  cachedInput?: number
  cacheWrite?: number
  output: number
  reasoning?: number
  /** Default 1970-01-01: in effect now, ahead of the shipped price. A later date schedules a price change. */
  effectiveFrom: string
}

export interface CostMeterConfig {
  /** Overrides and additions to gateway/cost/prices.json. */
  pricing: { models: PriceOverride[] }
  /**
   * Provider type → the type whose prices apply, on top of the built-in `azure-openai → openai`. Types without
   * prices (openai-compatible, ollama, custom) are unknown unless priced here or in `pricing.models`
   * (local models can be priced 0: `{provider: ollama, model: '*', input: 0, output: 0}`).
   */
  providerTypeMap: Record<string, string>
  /** An answer without usage from the provider is priced from a tokenizer estimate (flagged); false: cost unknown. */
  estimateWhenMissing: boolean
  /** Distinct (provider, model) metric series before further models share model="_other". */
  maxSeries: number
}

export const costMeterConfigSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    pricing: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        models: priceEntriesSchema,
      },
    },
    providerTypeMap: {
      type: 'object',
      additionalProperties: { type: 'string', minLength: 1 },
      default: {},
    },
    estimateWhenMissing: { type: 'boolean', default: true },
    maxSeries: { type: 'integer', minimum: 1, maximum: 100_000, default: 1000 },
  },
}
