import type { JSONSchema } from '../../gateway/validate.ts'

export interface AccessLogConfig {
  level: 'trace' | 'debug' | 'info' | 'warn'
}

export const accessLogConfigSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    level: { enum: ['trace', 'debug', 'info', 'warn'], default: 'info' },
  },
}
