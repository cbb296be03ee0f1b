import type { JSONSchema } from '../../gateway/validate.ts'

export interface RequestIdConfig {
  header: string
  /** Accept a well-formed id sent by the client (or a proxy in front) instead of generating one. */
  trustIncoming: boolean
}

export const requestIdConfigSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    header: { type: 'string', pattern: '^[a-z0-9-]+$', default: 'x-request-id' },
    trustIncoming: { type: 'boolean', default: true },
  },
}
