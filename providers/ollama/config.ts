/**
 * Config of an `ollama` provider entry: `baseUrl` is the Ollama host (`http://127.0.0.1:11434`),
 * without `/api` or `/v1`; the adapter speaks the native API (/api/chat, /api/embed, /api/tags).
 */
import { compileSchema, type JSONSchema } from '../../gateway/validate.ts'
import { commonProperties } from '../openai/config.ts'

export const OLLAMA_DEFAULT_HOST = 'http://127.0.0.1:11434'

export const ollamaConfigSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type'],
  properties: {
    ...commonProperties,
    baseUrl: { type: 'string', pattern: '^https?://', default: OLLAMA_DEFAULT_HOST },
    /** Ollama's `keep_alive` (how long the model stays loaded): a duration string ('5m') or seconds. */
    keepAlive: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'number' }] },
  },
}

export interface OllamaConfig {
  type: string
  baseUrl: string
  /** Sent as a bearer token when set (an Ollama behind an authenticating proxy). */
  apiKey?: string
  models?: string[]
  headers?: Record<string, string>
  timeouts: { connectMs: number; firstByteMs: number; idleMs: number }
  /** Drop parameters Ollama cannot honour instead of answering 400. */
  dropUnsupportedParams: boolean
  keepAlive?: string | number
}

const validate = compileSchema<OllamaConfig>(ollamaConfigSchema)

export function ollamaConfigErrors(config: unknown): string[] {
  if (!validate(config)) return validate.errors()
  try {
    const u = new URL(config.baseUrl)
    if (u.search !== '' || u.hash !== '' || u.username !== '' || u.password !== '') return ['baseUrl: must not carry a query, a fragment or credentials']
    if (/\/(api|v1)\/?$/.test(u.pathname)) return ['baseUrl: give the Ollama host (http://127.0.0.1:11434) without /api or /v1']
  } catch {
    return ['baseUrl: not a valid URL']
  }
  return []
}
