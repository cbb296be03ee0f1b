import type { PriceEntry } from '../../gateway/cost/catalogue.ts'
import type { JSONSchema } from '../../gateway/validate.ts'
import { priceEntriesSchema } from '../../gateway/cost/price-entry.ts'

export interface CacheConfig {
  /** 'auto': Redis when `services.redis` exists, else the in-process LRU. */
  backend: 'auto' | 'memory' | 'redis'
  /** Budget of one Redis call, ms. */
  timeoutMs: number
  /** Redis slow or down: 'open' = a miss, nothing stored; 'local' = the in-process LRU meanwhile. */
  failMode: 'open' | 'local'
  ttlSeconds: number
  /** 'key': entries are private to the API key that created them; 'global': shared by every key. */
  scope: 'key' | 'global'
  /** Requested models (alias or provider/model) whose requests are cached; '*' = every model. */
  aliases: string[]
  /** Key ids whose requests are cached; '*' = every key. */
  keys: string[]
  /** A request may opt in with `x-mcp-cache: on` (any request may opt out with `x-mcp-cache: off`). */
  headerOptIn: boolean
  /** Also cache requests whose temperature is not 0 (absent = the provider's default, usually 1). */
  cacheNonDeterministic: boolean
  maxEntries: number
  maxBytes: number
  /** A larger answer is not stored. */
  maxEntryBytes: number
  keyPrefix: string
  /** Price overrides for the saved-cost figure (used when the chain has no cost-meter). */
  prices: PriceEntry[]
}

export const cacheConfigSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    backend: { enum: ['auto', 'memory', 'redis'], default: 'auto' },
    timeoutMs: { type: 'integer', minimum: 1, maximum: 5000, default: 50 },
    failMode: { enum: ['open', 'local'], default: 'open' },
    ttlSeconds: { type: 'integer', minimum: 1, maximum: 30 * 86_400, default: 3600 },
    scope: { enum: ['key', 'global'], default: 'key' },
    aliases: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
    keys: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
    headerOptIn: { type: 'boolean', default: false },
    cacheNonDeterministic: { type: 'boolean', default: false },
    maxEntries: { type: 'integer', minimum: 1, default: 10_000 },
    maxBytes: { type: 'integer', minimum: 1024, default: 64 * 1024 * 1024 },
    maxEntryBytes: { type: 'integer', minimum: 256, default: 1024 * 1024 },
    keyPrefix: { type: 'string', minLength: 1, default: 'mcp:cache:' },
    prices: priceEntriesSchema,
  },
}
