/** request-id: accepts a well-formed incoming id (or keeps the generated one) and echoes it on the response. */
import type { PluginFactory } from '../../gateway/pipeline/types.ts'
import { requestIdConfigSchema, type RequestIdConfig } from './config.ts'

const WELL_FORMED = /^[A-Za-z0-9._:\-]{1,128}$/

export const requestIdPlugin: PluginFactory<RequestIdConfig> = {
  name: 'request-id',
  configSchema: requestIdConfigSchema,
  sideEffects: 'none',
  create(config) {
    const header = config.header
    const trust = config.trustIncoming
    return {
      onRequestHeaders(ctx) {
        if (trust) {
          const v = ctx.headers[header]
          if (typeof v === 'string' && WELL_FORMED.test(v)) ctx.id = v
        }
        ctx.responseHeaders[header] = ctx.id
      },
    }
  },
}
