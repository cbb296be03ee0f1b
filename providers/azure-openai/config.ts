/**
 * Config of an `azure-openai` provider entry. `baseUrl` is the resource endpoint
 * (`https://NAME.openai.azure.com`), without `/openai`; the adapter builds the paths.
 */
import { compileSchema, type JSONSchema } from '../../gateway/validate.ts'
import { commonProperties, headerValue } from '../openai/config.ts'

/** A current GA data-plane version, used in `deployments` mode when none is configured. */
export const DEFAULT_AZURE_API_VERSION = '2024-10-21'

export const azureConfigSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'baseUrl', 'apiKey'],
  properties: {
    ...commonProperties,
    apiKey: { ...headerValue, minLength: 1 },
    /** `deployments`: /openai/deployments/{deployment}/...?api-version=; `v1`: /openai/v1/... with the deployment as `model`. */
    apiMode: { enum: ['deployments', 'v1'], default: 'deployments' },
    /** Required by `deployments` mode (default DEFAULT_AZURE_API_VERSION); in `v1` mode only sent when set (e.g. 'preview'). */
    apiVersion: { type: 'string', minLength: 1, pattern: '^[A-Za-z0-9.-]+$' },
    /** Model name → deployment name; a model absent from the map uses its own name. */
    deployments: {
      type: 'object',
      additionalProperties: { type: 'string', minLength: 1, pattern: '^[A-Za-z0-9._-]+$' },
      default: {},
    },
  },
}

export interface AzureConfig {
  type: string
  baseUrl: string
  apiKey: string
  models?: string[]
  headers?: Record<string, string>
  timeouts: { connectMs: number; firstByteMs: number; idleMs: number }
  dropUnsupportedParams: boolean
  apiMode: 'deployments' | 'v1'
  apiVersion?: string
  deployments: Record<string, string>
}

const validate = compileSchema<AzureConfig>(azureConfigSchema)

export function azureConfigErrors(config: unknown): string[] {
  if (!validate(config)) return validate.errors()
  const errors: string[] = []
  let u: URL
  try { u = new URL(config.baseUrl) } catch { return ['baseUrl: not a valid URL'] }
  if (/(^|\/)openai(\/|$)/.test(u.pathname)) errors.push('baseUrl: give the resource endpoint (https://NAME.openai.azure.com) without /openai; the adapter adds the paths')
  if (u.search !== '' || u.hash !== '' || u.username !== '' || u.password !== '') errors.push('baseUrl: must not carry a query, a fragment or credentials')
  return errors
}
