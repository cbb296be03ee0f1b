/**
 * Config of model aliases (`models.<alias>`) and the global routing policy (`routing`).
 * Validated with the rest of the settings; compiled once per generation by alias.ts.
 */
import type { JSONSchema } from '../validate.ts'

export interface TargetTimeouts { connectMs?: number; firstByteMs?: number; firstTokenMs?: number; idleMs?: number; totalMs?: number }

export interface TargetSettings {
  provider: string
  model: string
  weight: number
  priority: number
  region?: string
  tags: string[]
  timeouts?: TargetTimeouts
  /** At most this many requests in flight to the target; beyond it the target is skipped. */
  maxConcurrent?: number
  /** Context window in tokens: a context_length_exceeded failure falls back to a larger one. */
  contextWindow?: number
  /** USD per million tokens; the price catalogue (when present) wins. */
  price?: { input: number; output: number }
  /** The target accepts a trailing assistant message as a prefix to continue (stream recovery). */
  supportsPrefill?: boolean
}

export interface RuleSettings {
  when: { header?: Record<string, string | string[]>; metadata?: Record<string, string | string[]>; param?: Record<string, unknown> }
  /** Route matching requests to these targets (by index in `targets`) or to another alias. */
  targets?: number[]
  alias?: string
}

export type Strategy = 'weighted' | 'random' | 'priority' | 'least-outstanding' | 'lowest-latency' | 'lowest-cost'

export interface AliasSettings {
  strategy: Strategy
  targets: TargetSettings[]
  rules: RuleSettings[]
  /** Consistent assignment by a request attribute: `header:<name>`, `user`, or `metadata:<key>`. */
  sticky?: string
  /** Aliases tried after this alias's own targets. */
  fallbacks: string[]
  retry: { maxAttempts: number; backoffBaseMs: number; backoffMaxMs: number; retryAfterCapMs: number }
  fallbackOn: { contentFilter: boolean; contextLength: boolean }
  /** After the first byte of a stream: end with an error event, or resume on another target. */
  streamRecovery: 'error' | 'resume'
  /**
   * A `service_tier: flex` request that a target refuses for want of flex capacity (a 429) is sent again at once to
   * the same target at the standard tier (`service_tier: default`), as OpenAI advises: it completes, at the standard
   * rates. Off: the refusal is retried like any 429 (another target, or a backoff).
   */
  flexFallback: boolean
}

export interface RoutingSettings {
  retryBudget: { ratio: number; min: number }
  breaker: { errorThresholdPercentage: number; volumeThreshold: number; rollingWindowMs: number; resetTimeoutMs: number }
  outlier: { consecutiveFailures: number; baseEjectionMs: number; maxEjectionMs: number }
  health: { intervalMs: number; enabled: boolean }
  /** When every target of an alias is down, the Retry-After sent with the fast 503. */
  unavailableRetryAfterS: number
}

const int = (min: number, def?: number): JSONSchema => (def === undefined ? { type: 'integer', minimum: min } : { type: 'integer', minimum: min, default: def })
const strOrList: JSONSchema = { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] }

const targetSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['provider', 'model'],
  properties: {
    provider: { type: 'string', minLength: 1 },
    model: { type: 'string', minLength: 1 },
    weight: { type: 'number', exclusiveMinimum: 0, default: 1 },
    priority: { type: 'integer', minimum: 0, default: 0 },
    region: { type: 'string' },
    tags: { type: 'array', items: { type: 'string' }, default: [] },
    timeouts: {
      type: 'object', additionalProperties: false,
      properties: { connectMs: int(1), firstByteMs: int(1), firstTokenMs: int(1), idleMs: int(1), totalMs: int(1) },
    },
    maxConcurrent: int(1),
    contextWindow: int(1),
    price: { type: 'object', additionalProperties: false, required: ['input', 'output'], properties: { input: { type: 'number', minimum: 0 }, output: { type: 'number', minimum: 0 } } },
    supportsPrefill: { type: 'boolean' },
  },
}

export const aliasSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['targets'],
  properties: {
    strategy: { enum: ['weighted', 'random', 'priority', 'least-outstanding', 'lowest-latency', 'lowest-cost'], default: 'priority' },
    targets: { type: 'array', minItems: 1, items: targetSchema },
    rules: {
      type: 'array',
      default: [],
      items: {
        type: 'object', additionalProperties: false, required: ['when'],
        properties: {
          when: {
            type: 'object', additionalProperties: false,
            properties: {
              header: { type: 'object', additionalProperties: strOrList },
              metadata: { type: 'object', additionalProperties: strOrList },
              param: { type: 'object' },
            },
          },
          targets: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } },
          alias: { type: 'string' },
        },
      },
    },
    sticky: { type: 'string', pattern: '^(user|header:[a-z0-9-]+|metadata:[A-Za-z0-9_.-]+)$' },
    fallbacks: { type: 'array', items: { type: 'string' }, default: [] },
    retry: {
      type: 'object', additionalProperties: false, default: {},
      properties: { maxAttempts: int(1, 3), backoffBaseMs: int(0, 500), backoffMaxMs: int(0, 5000), retryAfterCapMs: int(0, 10_000) },
    },
    fallbackOn: {
      type: 'object', additionalProperties: false, default: {},
      properties: { contentFilter: { type: 'boolean', default: false }, contextLength: { type: 'boolean', default: true } },
    },
    streamRecovery: { enum: ['error', 'resume'], default: 'error' },
    flexFallback: { type: 'boolean', default: false },
  },
}

export const routingSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    retryBudget: {
      type: 'object', additionalProperties: false, default: {},
      properties: { ratio: { type: 'number', minimum: 0, maximum: 1, default: 0.2 }, min: int(0, 3) },
    },
    breaker: {
      type: 'object', additionalProperties: false, default: {},
      properties: {
        errorThresholdPercentage: { type: 'number', minimum: 1, maximum: 100, default: 30 },
        volumeThreshold: int(1, 20),
        rollingWindowMs: int(1000, 10_000),
        resetTimeoutMs: int(100, 5000),
      },
    },
    outlier: {
      type: 'object', additionalProperties: false, default: {},
      properties: { consecutiveFailures: int(1, 3), baseEjectionMs: int(100, 5000), maxEjectionMs: int(100, 20_000) },
    },
    health: {
      type: 'object', additionalProperties: false, default: {},
      properties: { intervalMs: int(1000, 15_000), enabled: { type: 'boolean', default: true } },
    },
    unavailableRetryAfterS: int(1, 5),
  },
}
