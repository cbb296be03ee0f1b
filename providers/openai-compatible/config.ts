/**
 * Config of an `openai-compatible` provider entry (vLLM, llama.cpp server, LM Studio, TGI, ...):
 * `baseUrl` is required and includes the version prefix (`http://127.0.0.1:8000/v1`); `apiKey` is
 * optional and no Authorization header is sent without it.
 */
import { compileSchema, type JSONSchema } from '../../gateway/validate.ts'
import { commonProperties, type OpenAIConfig } from '../openai/config.ts'

export const openaiCompatibleConfigSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'baseUrl'],
  properties: { ...commonProperties },
}

export type OpenAICompatibleConfig = Omit<OpenAIConfig, 'organization' | 'project'>

const validate = compileSchema<OpenAICompatibleConfig>(openaiCompatibleConfigSchema)

export function openaiCompatibleConfigErrors(config: unknown): string[] {
  if (!validate(config)) return validate.errors()
  try {
    const u = new URL(config.baseUrl)
    if (u.search !== '' || u.hash !== '' || u.username !== '' || u.password !== '') return ['baseUrl: must not carry a query, a fragment or credentials']
  } catch {
    return ['baseUrl: not a valid URL']
  }
  return []
}
