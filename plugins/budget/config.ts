import type { PriceEntry } from '../../gateway/cost/catalogue.ts'
import { priceEntriesSchema } from '../../gateway/cost/price-entry.ts'
import type { JSONSchema } from '../../gateway/validate.ts'

export type BudgetScope = 'key' | 'team' | 'deployment' | 'model' | 'global'
export const BUDGET_SCOPES: readonly BudgetScope[] = ['key', 'team', 'deployment', 'model', 'global']
export type BudgetPeriod = 'day' | 'week' | 'month'

export interface BudgetRule {
  /** Names the budget in errors, headers, metrics, alerts, the admin API and Redis keys. Unique. */
  name: string
  /** Whose spending shares one counter: a key, a team, a prompt deployment, a model (alias or provider/model), or everyone. */
  scope: BudgetScope
  /** One specific key/team/deployment/model, or '*' (default): a separate counter for each. Ignored for 'global'. */
  id: string
  /** Calendar-aligned UTC: day from 00:00, week from Monday 00:00, month from the 1st 00:00. */
  period: BudgetPeriod
  /** USD per period. */
  amountUsd?: number
  /** Tokens (prompt + completion) per period. */
  tokens?: number
  /** Requests per period. */
  requests?: number
  /** 'hard' refuses with budget_exceeded before the provider is called; 'soft' admits, counts and alerts. */
  mode: 'hard' | 'soft'
  /** Hard only: a stream that would cross the budget ends with an explicit error event. */
  streamCutoff: boolean
}

export interface DowngradeRule {
  /** The requested alias this rule applies to. */
  alias: string
  /** The budget whose use decides (its counter for this request's scope). */
  whenBudget: string
  /** From this percentage of the budget spent (settled spend / limit, the highest of its units) on. */
  atPercent: number
  /** A cheaper alias, or `<provider>/<model>`. */
  to: string
}

export interface BudgetConfig {
  budgets: BudgetRule[]
  downgrade: DowngradeRule[]
  /** 'auto': Redis when `services.redis` exists, else in-process. */
  backend: 'auto' | 'local' | 'redis'
  /** Budget of one Redis call at admission, ms; past it the fail policy applies. */
  timeoutMs: number
  /** Redis slow or down: 'closed' refuses (503), 'open' admits unmetered, 'local' enforces in-process (per instance). */
  failMode: 'closed' | 'open' | 'local'
  /** Evaluate and count would-be refusals, admit everything. */
  shadow: boolean
  /** Prefix of every Redis key; keep a `{hash tag}` in it for Redis Cluster (every key of one admission must share a slot). */
  keyPrefix: string
  /** A reservation not settled within this long (crashed instance) is dropped at the next admission on its counter. */
  reservationTtlMs: number
  breakerFailures: number
  breakerCooldownMs: number
  estimate: {
    /** 'chars': characters / charsPerToken; 'tokenizer': gpt-tokenizer (o200k) on the text. */
    method: 'chars' | 'tokenizer'
    charsPerToken: number
    /** Added per message (role, separators), as chat formats do. */
    perMessageTokens: number
    /** Output tokens assumed when the request sets no max_tokens / max_completion_tokens. */
    defaultMaxTokens: number
    /** Web searches reserved for a server web search tool that sets no `max_uses` (it has no bound of its own). */
    webSearchesWithoutMaxUses: number
    /**
     * The processing tier a request that names none (or `auto`) is reserved at: `priority` for an OpenAI project
     * whose default tier is priority (the answer then says priority, and the request is settled at its rates).
     */
    autoServiceTier: 'default' | 'priority'
  }
  /**
   * When a hard amount or token budget applies and the request sets no output limit, send
   * `max_completion_tokens: defaultMaxTokens` upstream, so the reservation is a true worst case.
   */
  capMaxTokens: boolean
  /**
   * When a hard amount budget applies, a server web search tool without `max_uses` (a Messages request sent as sent) is
   * sent with `max_uses: estimate.webSearchesWithoutMaxUses`, so the searches reserved bound the searches made.
   */
  capWebSearches: boolean
  /** Stream cut-off: output tokens added to a stream's reservation at a time, once it used what it reserved. */
  extendTokens: number
  /** A model without a price (catalogue or target `price`): 'admit' it (amount budgets see cost 0, counted) or 'refuse'. */
  unpriced: 'admit' | 'refuse'
  /** Price overrides / additions (same shape as gateway/cost/prices.json entries). */
  prices: PriceEntry[]
  /** x-mcp-budget-remaining-* response headers. */
  headers: boolean
  /** Downgrade decisions read a counter's spend at most this stale, ms. */
  downgradeRefreshMs: number
}

const NAME = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'


export const budgetConfigSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    budgets: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'scope', 'period'],
        anyOf: [{ required: ['amountUsd'] }, { required: ['tokens'] }, { required: ['requests'] }],
        properties: {
          name: { type: 'string', pattern: NAME },
          scope: { enum: BUDGET_SCOPES },
          id: { type: 'string', minLength: 1, default: '*' },
          period: { enum: ['day', 'week', 'month'] },
          amountUsd: { type: 'number', minimum: 0, maximum: 9_000_000 },
          tokens: { type: 'integer', minimum: 0 },
          requests: { type: 'integer', minimum: 0 },
          mode: { enum: ['hard', 'soft'], default: 'hard' },
          streamCutoff: { type: 'boolean', default: false },
        },
      },
    },
    downgrade: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['alias', 'whenBudget', 'atPercent', 'to'],
        properties: {
          alias: { type: 'string', minLength: 1 },
          whenBudget: { type: 'string', pattern: NAME },
          atPercent: { type: 'number', minimum: 0, maximum: 100 },
          to: { type: 'string', minLength: 1 },
        },
      },
    },
    backend: { enum: ['auto', 'local', 'redis'], default: 'auto' },
    timeoutMs: { type: 'integer', minimum: 1, maximum: 5000, default: 100 },
    failMode: { enum: ['closed', 'open', 'local'], default: 'closed' },
    shadow: { type: 'boolean', default: false },
    keyPrefix: { type: 'string', minLength: 1, default: 'mcp:{budget}:' },
    // At most 7 days: the keepalive runs every TTL / 4, and a timer past 2^31 - 1 ms (24.8 days) fires every 1 ms.
    reservationTtlMs: { type: 'integer', minimum: 1000, maximum: 604_800_000, default: 900_000 },
    breakerFailures: { type: 'integer', minimum: 1, default: 3 },
    breakerCooldownMs: { type: 'integer', minimum: 10, default: 1000 },
    estimate: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        method: { enum: ['chars', 'tokenizer'], default: 'chars' },
        charsPerToken: { type: 'number', exclusiveMinimum: 0, default: 4 },
        perMessageTokens: { type: 'integer', minimum: 0, default: 4 },
        defaultMaxTokens: { type: 'integer', minimum: 1, default: 4096 },
        webSearchesWithoutMaxUses: { type: 'integer', minimum: 0, maximum: 1000, default: 10 },
        autoServiceTier: { enum: ['default', 'priority'], default: 'default' },
      },
    },
    capMaxTokens: { type: 'boolean', default: true },
    capWebSearches: { type: 'boolean', default: true },
    extendTokens: { type: 'integer', minimum: 1, default: 256 },
    unpriced: { enum: ['admit', 'refuse'], default: 'admit' },
    prices: priceEntriesSchema,
    headers: { type: 'boolean', default: true },
    downgradeRefreshMs: { type: 'integer', minimum: 0, default: 1000 },
  },
}

/** Cross-field checks the schema cannot express: unique names, downgrade references. */
export function budgetConfigErrors(c: BudgetConfig): string[] {
  const errors: string[] = []
  const names = new Set<string>()
  for (const [i, b] of c.budgets.entries()) {
    if (names.has(b.name)) errors.push(`budgets[${i}].name: '${b.name}' is used twice`)
    if (b.name.startsWith('principal.')) errors.push(`budgets[${i}].name: 'principal.' names the key records' own budgets (daily_usd, monthly_usd)`)
    names.add(b.name)
    if (b.streamCutoff && b.mode !== 'hard') errors.push(`budgets[${i}].streamCutoff: only hard budgets cut streams`)
  }
  for (const [i, d] of c.downgrade.entries()) {
    const b = c.budgets.find((x) => x.name === d.whenBudget)
    if (!b) errors.push(`downgrade[${i}].whenBudget: no budget named '${d.whenBudget}'`)
    if (d.to === d.alias) errors.push(`downgrade[${i}].to: must differ from alias`)
  }
  return errors
}
