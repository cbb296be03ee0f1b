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

/** Fields every provider entry accepts. */
export const commonProperties: Readonly<Record<string, JSONSchema>> = {
  type: { type: 'string' },
  baseUrl: { type: 'string', pattern: '^https?://' },
  apiKey: headerValue,
  models: { type: 'array', items: { type: 'string', minLength: 1 } },
  headers: { type: 'object', propertyNames: { pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" }, additionalProperties: headerValue },
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
