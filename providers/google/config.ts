/** Config of a `google` provider entry: the Gemini API (generativelanguage.googleapis.com). */
import { compileSchema, type JSONSchema } from '../../gateway/validate.ts'
import { baseUrlErrors } from '../shared/base-url.ts'
import { commonProperties } from '../openai/config.ts'

export interface SafetySetting {
  category: string
  threshold: string
}

export const googleConfigSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type'],
  properties: {
    ...commonProperties,
    /** The host only; the API version is its own field. A path prefix (a proxy) is kept. */
    baseUrl: { type: 'string', pattern: '^https?://', default: 'https://generativelanguage.googleapis.com' },
    apiVersion: { type: 'string', pattern: '^v[0-9]+[a-z0-9]*$', default: 'v1beta' },
    /** Sent as `safetySettings` on every generateContent call, untouched. */
    safetySettings: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['category', 'threshold'],
        properties: { category: { type: 'string', minLength: 1 }, threshold: { type: 'string', minLength: 1 } },
      },
    },
  },
}

export interface GoogleConfig {
  type: string
  baseUrl: string
  /** Sent as the `x-goog-api-key` header, never in the URL. */
  apiKey?: string
  apiVersion: string
  models?: string[]
  headers?: Record<string, string>
  timeouts: { connectMs: number; firstByteMs: number; idleMs: number }
  dropUnsupportedParams: boolean
  safetySettings?: SafetySetting[]
}

const validate = compileSchema<GoogleConfig>(googleConfigSchema)

export function googleConfigErrors(config: unknown): string[] {
  return validate(config) ? baseUrlErrors(config.baseUrl) : validate.errors()
}
