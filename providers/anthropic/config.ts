/** Config of an `anthropic` provider entry. */
import { compileSchema, type JSONSchema } from '../../gateway/validate.ts'
import { baseUrlErrors } from '../shared/base-url.ts'
import { commonProperties, headerValue } from '../openai/config.ts'

export const anthropicConfigSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type'],
  properties: {
    ...commonProperties,
    /** The host, like the official SDK's `baseURL`; `/v1/messages` is appended. */
    baseUrl: { type: 'string', pattern: '^https?://', default: 'https://api.anthropic.com' },
    anthropicVersion: { ...headerValue, minLength: 1, default: '2023-06-01' },
    /** Anthropic requires `max_tokens`; used when the request carries neither `max_tokens` nor `max_completion_tokens`. */
    defaultMaxTokens: { type: 'integer', minimum: 1, default: 4096 },
    /** Send a client's `anthropic-beta` header on (merged with `headers['anthropic-beta']`); false: only the config's. */
    forwardClientBetas: { type: 'boolean', default: true },
    /**
     * A `/v1/messages` request goes to this provider as the client sent it (`model` replaced) when its route has no chunk
     * hooks, instead of being translated there and back; false: translated (what only Anthropic takes still goes as sent).
     */
    nativeMessages: { type: 'boolean', default: true },
    /**
     * The server tools a request may give this provider (its `tools[i].type`: `web_search_20250305`, ...), exact or a
     * prefix ending in `*`; the others are a 400 naming the tool. Server tools run, and are billed, on the provider's
     * key: `[]` allows none.
     */
    serverTools: { type: 'array', items: { type: 'string', pattern: '^[A-Za-z0-9_.-]*\\*?$', minLength: 1, maxLength: 100 }, default: ['*'] },
  },
}

export interface AnthropicConfig {
  type: string
  baseUrl: string
  apiKey?: string
  anthropicVersion: string
  defaultMaxTokens: number
  forwardClientBetas: boolean
  nativeMessages: boolean
  serverTools: string[]
  models?: string[]
  headers?: Record<string, string>
  timeouts: { connectMs: number; firstByteMs: number; idleMs: number }
  dropUnsupportedParams: boolean
}

const validate = compileSchema<AnthropicConfig>(anthropicConfigSchema)

export function anthropicConfigErrors(config: unknown): string[] {
  return validate(config) ? baseUrlErrors(config.baseUrl) : validate.errors()
}
