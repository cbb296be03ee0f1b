/**
 * The one schema of a price entry, wherever config takes them (the cost meter's `pricing.models`, the budget's and
 * the cache's `prices`): the same entry is accepted, refused and read the same everywhere (gateway/cost/pricing.ts).
 * Prices are USD per million tokens, at most 100,000 (an absurd price makes costs Infinity, which settles as 0);
 * `effectiveFrom` defaults to 1970-01-01 (always in effect), and its calendar is checked by effectiveFromErrors.
 */
import type { JSONSchema } from '../validate.ts'
import { SERVICE_TIERS } from './catalogue.ts'
import { effectiveFromSchema } from './effective-from.ts'

const usdPerMillion: JSONSchema = { type: 'number', minimum: 0, maximum: 100_000 }

export const priceEntrySchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['provider', 'model', 'input', 'output'],
  properties: {
    provider: { type: 'string', minLength: 1, maxLength: 100 },
    model: { type: 'string', minLength: 1, maxLength: 200 },
    input: usdPerMillion,
    cachedInput: usdPerMillion,
    cacheWrite: usdPerMillion,
    cacheWrite1h: usdPerMillion,
    output: usdPerMillion,
    reasoning: usdPerMillion,
    /** Every token of a request whose prompt is over `threshold` tokens at these prices (catalogue.ts PriceEntry). */
    longContext: {
      type: 'object',
      additionalProperties: false,
      required: ['threshold', 'input', 'output'],
      properties: {
        threshold: { type: 'integer', minimum: 1, maximum: 1e9 },
        input: usdPerMillion,
        cachedInput: usdPerMillion,
        cacheWrite: usdPerMillion,
        cacheWrite1h: usdPerMillion,
        output: usdPerMillion,
        reasoning: usdPerMillion,
      },
    },
    /** OpenAI's processing tiers priced apart (catalogue.ts PriceEntry.serviceTiers): every token of a request served at one at its rates. */
    serviceTiers: {
      type: 'object',
      additionalProperties: false,
      properties: Object.fromEntries(SERVICE_TIERS.map((t) => [t, {
        type: 'object',
        additionalProperties: false,
        required: ['input', 'output'],
        properties: { input: usdPerMillion, cachedInput: usdPerMillion, cacheWrite: usdPerMillion, cacheWrite1h: usdPerMillion, output: usdPerMillion, reasoning: usdPerMillion },
      }])),
    },
    /** USD per 1,000 web searches (a server tool's fee, on top of its tokens). */
    webSearch: { type: 'number', minimum: 0, maximum: 100_000 },
    effectiveFrom: effectiveFromSchema('1970-01-01'),
  },
}

/** A list of price entries (default empty). */
export const priceEntriesSchema: JSONSchema = { type: 'array', default: [], items: priceEntrySchema }
