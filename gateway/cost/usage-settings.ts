/**
 * Settings of usage tracking (the `usage:` block of the configuration): how often the in-memory rollups are
 * flushed to the database, how many may wait, how long rollups are kept, and the optional billing webhook.
 * Validated once at start (unknown keys rejected, defaults applied), like every other settings block.
 */
import { compileSchema, type JSONSchema } from '../validate.ts'

export interface UsageWebhookSettings {
  /** Where closed hour buckets are POSTed (JSON). */
  url: string
  /** HMAC-SHA256 key of the `x-mcp-signature` header (MCP_USAGE_WEBHOOK_SECRET). */
  secret: string
  /** How often the exporter looks for closed buckets. */
  intervalMs: number
  /** One POST attempt. */
  timeoutMs: number
  /** Attempts per bucket in one run (exponential backoff between them); the next run starts over. */
  maxAttempts: number
  /** First backoff; doubles per attempt, capped at 60 s, with jitter. */
  backoffMs: number
  /** An hour bucket is exported once it ended this long ago (so every instance has flushed into it). */
  closeDelayMs: number
}

export interface UsageSettings {
  /** In-memory rollups are written to the database this often (and at shutdown). */
  flushIntervalMs: number
  /** Rollup rows waiting in memory (the database down); past it, new rows lose their key/team/deployment. */
  maxPendingRows: number
  /** A flush that fails is retried after flushIntervalMs × 2^n, up to this. */
  maxRetryDelayMs: number
  retention: { hourDays: number; dayDays: number }
  webhook?: UsageWebhookSettings
}

const int = (min: number, dflt: number, max?: number): JSONSchema => ({ type: 'integer', minimum: min, ...(max !== undefined ? { maximum: max } : {}), default: dflt })

export const usageSettingsSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    flushIntervalMs: int(100, 10_000, 3_600_000),
    maxPendingRows: int(100, 100_000),
    // Timer settings have maximums: a timer past 2^31 - 1 ms (24.8 days) fires after 1 ms.
    maxRetryDelayMs: int(100, 60_000, 3_600_000),
    retention: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { hourDays: int(1, 90), dayDays: int(1, 1095) },
    },
    webhook: {
      type: 'object',
      additionalProperties: false,
      required: ['url', 'secret'],
      properties: {
        url: { type: 'string', pattern: '^https?://' },
        secret: { type: 'string', minLength: 16 },
        intervalMs: int(100, 300_000, 86_400_000),
        timeoutMs: int(100, 10_000, 600_000),
        maxAttempts: int(1, 5, 20),
        backoffMs: int(1, 1_000),
        closeDelayMs: int(0, 300_000),
      },
    },
  },
}

const validate = compileSchema<UsageSettings>(usageSettingsSchema)

/** What the schema cannot say: the webhook's url must parse (fetch refuses it otherwise, and every export would fail). */
export function usageSettingsErrors(s: UsageSettings, where = 'usage'): string[] {
  return s.webhook !== undefined && !URL.canParse(s.webhook.url) ? [`${where}.webhook.url: not a valid URL`] : []
}

/** Validates (defaults applied) a `usage:` block; throws an Error naming every bad field. */
export function parseUsageSettings(raw: unknown, where = 'usage'): UsageSettings {
  const copy = structuredClone(raw ?? {}) as unknown
  if (!validate(copy)) throw new Error(`Invalid settings: ${validate.errors(where).join('; ')}`)
  const errors = usageSettingsErrors(copy, where)
  if (errors.length > 0) throw new Error(`Invalid settings: ${errors.join('; ')}`)
  return copy
}
