/**
 * Config of a `custom` provider entry: `module` is the path of the user's adapter module
 * (absolute, or relative to the process's working directory); `options` is handed to its factory
 * as is and checked by the adapter's own `validateConfig`.
 */
import { compileSchema, type JSONSchema } from '../../gateway/validate.ts'

export const customConfigSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'module'],
  properties: {
    type: { type: 'string' },
    module: { type: 'string', minLength: 1 },
    options: { type: 'object', default: {} },
    models: { type: 'array', items: { type: 'string', minLength: 1 } },
  },
}

export interface CustomConfig {
  type: string
  module: string
  options: Record<string, unknown>
  models?: string[]
}

const validate = compileSchema<CustomConfig>(customConfigSchema)

export function customConfigErrors(config: unknown): string[] {
  return validate(config) ? [] : validate.errors()
}
