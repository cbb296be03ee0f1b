/**
 * The `alerts:` settings block: rules (budget thresholds, a target's error rate, a provider down)
 * and the webhooks they notify. Validated once, like every settings block; cross references
 * (a rule naming an unknown webhook) are reported by alertsConfigErrors.
 */
import { compileSchema, HEADER_VALUE_PATTERN, type JSONSchema } from '../validate.ts'

export type AlertKind = 'budget' | 'error_rate' | 'provider_down'
export type AlertPeriod = 'hour' | 'day' | 'week' | 'month'

export interface AlertRule {
  name: string
  kind: AlertKind
  /** budget: percentages of the budget that each fire once per budget period (default 50, 80, 100). */
  thresholds: number[]
  /** budget: only this budget (by name); absent: every budget. */
  budget?: string
  /** error_rate: percentage of failed upstream attempts over the target's last minute. */
  threshold: number
  /** error_rate: attempts in that minute below which the rate is not judged. */
  minRequests: number
  /** error_rate, provider_down: only this provider (by name). */
  provider?: string
  /** error_rate, provider_down: fire at most once per target/provider in each such calendar period (UTC). */
  period: AlertPeriod
  /** Names in `webhooks`. */
  webhooks: string[]
}

export interface WebhookConfig {
  url: string
  /** HMAC-SHA256 key of the `x-mcp-signature` header. */
  secret: string
  timeoutMs: number
  /** Attempts after the first one, with exponential backoff. */
  retries: number
  backoffMs: number
  headers: Record<string, string>
}

export interface AlertsConfig {
  rules: AlertRule[]
  webhooks: Record<string, WebhookConfig>
  /** How often target states are checked for error_rate and provider_down rules. */
  intervalMs: number
  /** Prefix of the Redis keys (dedup markers, shared alert list). */
  keyPrefix: string
  /** Fired alerts kept for GET /api/v1/mcp/alerts. */
  history: number
  /** Deliveries waiting at most; past it the oldest is dropped (counted). */
  queueSize: number
  /** Deliveries in flight at once. */
  concurrency: number
}

const NAME = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'

export const alertsConfigSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    rules: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'kind', 'webhooks'],
        properties: {
          name: { type: 'string', pattern: NAME },
          kind: { enum: ['budget', 'error_rate', 'provider_down'] },
          thresholds: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'number', exclusiveMinimum: 0, maximum: 1000 }, default: [50, 80, 100] },
          budget: { type: 'string', pattern: NAME },
          threshold: { type: 'number', exclusiveMinimum: 0, maximum: 100, default: 50 },
          minRequests: { type: 'integer', minimum: 1, default: 10 },
          provider: { type: 'string', minLength: 1 },
          period: { enum: ['hour', 'day', 'week', 'month'], default: 'hour' },
          webhooks: { type: 'array', items: { type: 'string', minLength: 1 } },
        },
      },
    },
    webhooks: {
      type: 'object',
      default: {},
      propertyNames: { pattern: NAME },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['url', 'secret'],
        properties: {
          url: { type: 'string', pattern: '^https?://' },
          secret: { type: 'string', minLength: 16 },
          timeoutMs: { type: 'integer', minimum: 1, maximum: 60_000, default: 5000 },
          retries: { type: 'integer', minimum: 0, maximum: 20, default: 5 },
          backoffMs: { type: 'integer', minimum: 1, default: 1000 },
          // What a request can carry (fetch refuses anything else, so every delivery would fail and be retried).
          headers: { type: 'object', propertyNames: { pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" }, additionalProperties: { type: 'string', pattern: HEADER_VALUE_PATTERN }, default: {} },
        },
      },
    },
    // At most an hour (error rates are judged over the last minute); a timer past 2^31 - 1 ms fires every 1 ms.
    intervalMs: { type: 'integer', minimum: 100, maximum: 3_600_000, default: 10_000 },
    keyPrefix: { type: 'string', minLength: 1, default: 'mcp:{alerts}:' },
    history: { type: 'integer', minimum: 1, maximum: 100_000, default: 500 },
    queueSize: { type: 'integer', minimum: 1, default: 1000 },
    concurrency: { type: 'integer', minimum: 1, maximum: 64, default: 4 },
  },
}

export function alertsConfigErrors(c: AlertsConfig): string[] {
  const errors: string[] = []
  for (const [name, w] of Object.entries(c.webhooks)) if (!URL.canParse(w.url)) errors.push(`alerts.webhooks.${name}.url: not a valid URL`)
  const names = new Set<string>()
  for (const [i, r] of c.rules.entries()) {
    if (names.has(r.name)) errors.push(`alerts.rules[${i}].name: '${r.name}' is used twice`)
    names.add(r.name)
    for (const w of r.webhooks) if (!(w in c.webhooks)) errors.push(`alerts.rules[${i}].webhooks: no webhook named '${w}'`)
    if (r.kind !== 'budget' && r.budget !== undefined) errors.push(`alerts.rules[${i}].budget: only budget rules name a budget`)
  }
  return errors
}

const validate = compileSchema<AlertsConfig>(alertsConfigSchema)

/** Validates (defaults applied) and checks cross references; throws an Error naming every problem. */
export function parseAlertsConfig(raw: unknown): AlertsConfig {
  const copy = structuredClone(raw ?? {}) as AlertsConfig
  if (!validate(copy)) throw new Error(`alerts: ${validate.errors('alerts').join('; ')}`)
  const errs = alertsConfigErrors(copy)
  if (errs.length > 0) throw new Error(errs.join('; '))
  return copy
}
