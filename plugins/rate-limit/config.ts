import type { JSONSchema } from '../../gateway/validate.ts'

export type Scope = 'key' | 'team' | 'model' | 'ip' | 'route' | 'global'
export const SCOPES: readonly Scope[] = ['key', 'team', 'model', 'ip', 'route', 'global']

export interface LimitConfig {
  /** Names the limit in headers, metrics (`limit` label), logs and Redis keys. Unique. */
  name: string
  /** Whose traffic shares one budget; an array combines scopes (['key', 'model'] = per key and model). */
  scope: Scope | Scope[]
  /** Requests per second. */
  rps?: number
  /** Requests per minute. */
  rpm?: number
  /** Tokens per minute: estimated at admission, corrected with the actual usage on completion. */
  tpm?: number
  /** Requests in flight at once. */
  concurrency?: number
  /** Requests admitted at once for the rps and rpm rules of this limit (default: the rule's own limit). */
  burst?: number
  /** Only requests on these routes / for these models (exact, or a prefix ending with '*') count. */
  match?: { route?: string[]; model?: string[] }
}

export interface RateLimitConfig {
  limits: LimitConfig[]
  /** 'shadow' evaluates and counts would-be rejections, but admits every request. */
  mode: 'enforce' | 'shadow'
  /** 'auto': Redis when `services.redis` exists (MCP_REDIS_URL), else in-process. */
  backend: 'auto' | 'local' | 'redis'
  /** Budget of one Redis call at admission, ms; past it the fail policy applies. */
  timeoutMs: number
  /** When Redis is slow or down: 'local' in-process limits, 'closed' 503, 'open' admit. */
  failMode: 'local' | 'closed' | 'open'
  /** After this many consecutive Redis failures, skip Redis for `breakerCooldownMs` (then probe). */
  breakerFailures: number
  breakerCooldownMs: number
  /** Prefix of every Redis key. */
  keyPrefix: string
  /** x-ratelimit-* response headers (enforce mode only). */
  headers: boolean
  /** A concurrency slot held in Redis expires after this long if its release never arrives (crash). */
  concurrencyTtlMs: number
  /** Token estimate at admission: prompt characters / charsPerToken + max_tokens (or defaultMaxTokens). */
  estimate: { charsPerToken: number; defaultMaxTokens: number }
}

const positiveInt = { type: 'integer', minimum: 1 }

export const rateLimitConfigSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    limits: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'scope'],
        anyOf: [{ required: ['rps'] }, { required: ['rpm'] }, { required: ['tpm'] }, { required: ['concurrency'] }],
        properties: {
          name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' },
          scope: {
            anyOf: [
              { enum: SCOPES },
              { type: 'array', minItems: 1, uniqueItems: true, items: { enum: SCOPES } },
            ],
          },
          rps: positiveInt,
          rpm: positiveInt,
          tpm: positiveInt,
          concurrency: positiveInt,
          burst: positiveInt,
          match: {
            type: 'object',
            additionalProperties: false,
            properties: {
              route: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
              model: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
            },
          },
        },
      },
    },
    mode: { enum: ['enforce', 'shadow'], default: 'enforce' },
    backend: { enum: ['auto', 'local', 'redis'], default: 'auto' },
    timeoutMs: { type: 'integer', minimum: 1, maximum: 5000, default: 50 },
    failMode: { enum: ['local', 'closed', 'open'], default: 'local' },
    breakerFailures: { type: 'integer', minimum: 1, default: 3 },
    breakerCooldownMs: { type: 'integer', minimum: 10, default: 1000 },
    keyPrefix: { type: 'string', default: 'mcp:rl:' },
    headers: { type: 'boolean', default: true },
    concurrencyTtlMs: { type: 'integer', minimum: 1000, default: 600_000 },
    estimate: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        charsPerToken: { type: 'number', exclusiveMinimum: 0, default: 4 },
        defaultMaxTokens: { type: 'integer', minimum: 0, default: 1024 },
      },
    },
  },
}
