/** Config of an `openai` provider entry; `openai-compatible` and `azure-openai` extend it. */
import { compileSchema, HEADER_VALUE_PATTERN, type JSONSchema } from '../../gateway/validate.ts'
import { baseUrlErrors } from '../shared/base-url.ts'
import { DEFAULT_MAX_RESPONSE_BYTES } from '../shared/http.ts'

export const timeoutsSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    connectMs: { type: 'integer', minimum: 1, default: 10_000 },
    firstByteMs: { type: 'integer', minimum: 1, default: 60_000 },
    idleMs: { type: 'integer', minimum: 1, default: 30_000 },
  },
  default: {},
}

/** A string sent as an HTTP header value (credentials, versions): refused at config time, not at every call. */
export const headerValue: JSONSchema = { type: 'string', pattern: HEADER_VALUE_PATTERN }

/**
 * Header names a provider's `headers` may not set, in any case: each makes every call through the provider fail or
 * go astray. undici refuses Transfer-Encoding, Keep-Alive, Upgrade, Expect and an odd Connection before sending; a
 * Content-Length (or Content-Encoding) that is not the body's breaks the framing; Host would address another virtual
 * host than the baseUrl names; the rest are hop-by-hop headers, the connection's business, not the provider's.
 */
export const FORBIDDEN_CONFIG_HEADERS: readonly string[] = [
  'host', 'content-length', 'transfer-encoding', 'content-encoding', 'connection', 'keep-alive', 'upgrade', 'expect',
  'te', 'trailer', 'proxy-connection', 'http2-settings',
]
/** FORBIDDEN_CONFIG_HEADERS as a case-insensitive pattern (JSON Schema patterns take no flags). */
export const FORBIDDEN_HEADER_PATTERN = `^(?:${FORBIDDEN_CONFIG_HEADERS.map((h) => [...h].map((c) => (/[a-z]/.test(c) ? `[${c}${c.toUpperCase()}]` : c)).join('')).join('|')})$`

/** Fields every provider entry accepts. */
export const commonProperties: Readonly<Record<string, JSONSchema>> = {
  type: { type: 'string' },
  baseUrl: { type: 'string', pattern: '^https?://' },
  apiKey: headerValue,
  models: { type: 'array', items: { type: 'string', minLength: 1 } },
  headers: {
    type: 'object',
    propertyNames: { pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", not: { pattern: FORBIDDEN_HEADER_PATTERN } },
    additionalProperties: headerValue,
  },
  timeouts: timeoutsSchema,
  dropUnsupportedParams: { type: 'boolean', default: false },
  maxResponseBytes: { type: 'integer', minimum: 1024, maximum: 2 ** 30, default: DEFAULT_MAX_RESPONSE_BYTES },
}

export const openaiConfigSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type'],
  properties: {
    ...commonProperties,
    baseUrl: { type: 'string', pattern: '^https?://', default: 'https://api.openai.com/v1' },
    organization: headerValue,
    project: headerValue,
  },
}

export interface OpenAIConfig {
  type: string
  baseUrl: string
  apiKey?: string
  models?: string[]
  headers?: Record<string, string>
  timeouts: { connectMs: number; firstByteMs: number; idleMs: number }
  dropUnsupportedParams: boolean
  organization?: string
  project?: string
}

const validate = compileSchema<OpenAIConfig>(openaiConfigSchema)

export function openaiConfigErrors(config: unknown): string[] {
  return validate(config) ? baseUrlErrors(config.baseUrl) : validate.errors()
}
