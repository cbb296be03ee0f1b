import type { JSONSchema } from '../../gateway/validate.ts'

export interface AuthConfig {
  /** When no key is configured at all (development without MCP_ADMIN_KEY), let requests through. Never in production. */
  allowWithoutKeys: boolean
}

export const authConfigSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    allowWithoutKeys: { type: 'boolean', default: true },
  },
}
