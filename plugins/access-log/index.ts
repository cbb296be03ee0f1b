/** access-log: one JSON line per request (id, route, status, upstream, latency, gateway overhead), after the last byte. */
import type { PluginFactory } from '../../gateway/pipeline/types.ts'
import { accessLogConfigSchema, type AccessLogConfig } from './config.ts'

export const accessLogPlugin: PluginFactory<AccessLogConfig> = {
  name: 'access-log',
  configSchema: accessLogConfigSchema,
  sideEffects: 'none',
  create(config, deps) {
    const log = deps.logger
    const level = config.level
    if (!log.isLevelEnabled(level)) return {}
    return {
      onComplete(ctx, outcome) {
        const now = performance.now()
        const total = ctx.elapsedMs(now)
        const upstream = ctx.upstreamMs(now)
        const u = ctx.usage
        log[level]({
          requestId: ctx.id,
          route: ctx.route.name,
          method: ctx.req.method,
          status: outcome.status,
          details: outcome.details,
          errorCode: outcome.errorCode,
          aborted: outcome.aborted || undefined,
          stream: ctx.stream || undefined,
          provider: ctx.providerName || undefined,
          model: ctx.model || undefined,
          attempts: ctx.attempts || undefined,
          latencyMs: Math.round(total * 1000) / 1000,
          upstreamMs: ctx.upstreamStart ? Math.round(upstream * 1000) / 1000 : undefined,
          overheadMs: Math.round((total - upstream) * 1000) / 1000,
          ttftMs: ctx.firstChunk ? Math.round((ctx.firstChunk - ctx.startedAt) * 1000) / 1000 : undefined,
          promptTokens: u?.prompt_tokens,
          completionTokens: u?.completion_tokens,
        }, 'request')
      },
    }
  },
}
