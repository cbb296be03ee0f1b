/**
 * access-log: one JSON line per request (id, route, status, upstream, latency, gateway overhead),
 * after the last byte. The line is built directly and written to the logger's own destination:
 * every field is known and secret-free, so pino's per-line redaction and serialisation (the
 * largest cost of a request in the profile) are skipped. The format matches pino's.
 */
import { pino } from 'pino'
import type { PluginFactory } from '../../gateway/pipeline/types.ts'
import { accessLogConfigSchema, type AccessLogConfig } from './config.ts'

const LEVELS: Readonly<Record<AccessLogConfig['level'], number>> = { trace: 10, debug: 20, info: 30, warn: 40 }

interface Destination { write(s: string): unknown }

const round = (ms: number): number => Math.round(ms * 1000) / 1000

export const accessLogPlugin: PluginFactory<AccessLogConfig> = {
  name: 'access-log',
  configSchema: accessLogConfigSchema,
  sideEffects: 'none',
  create(config, deps) {
    const log = deps.logger
    const level = config.level
    if (!log.isLevelEnabled(level)) return {}
    const dest = (log as unknown as Record<symbol, Destination | undefined>)[pino.symbols.streamSym]
    const head = `{"level":${LEVELS[level]},"pid":${process.pid},"plugin":"access-log"`
    return {
      onComplete(ctx, outcome) {
        const now = performance.now()
        const total = ctx.elapsedMs(now)
        const upstream = ctx.upstreamMs(now)
        const u = ctx.usage
        let line = `${head},"time":${Date.now()},"requestId":${JSON.stringify(ctx.id)},"route":"${ctx.route.name}","method":"${ctx.req.method}","status":${outcome.status},"details":${JSON.stringify(outcome.details)}`
        if (outcome.errorCode !== undefined) line += `,"errorCode":"${outcome.errorCode}"`
        if (outcome.aborted) line += ',"aborted":true'
        if (ctx.stream) line += ',"stream":true'
        if (ctx.providerName) line += `,"provider":${JSON.stringify(ctx.providerName)},"model":${JSON.stringify(ctx.model)}`
        if (ctx.upstreamRequestId !== undefined) line += `,"upstreamRequestId":"${ctx.upstreamRequestId}"`
        if (ctx.alias) line += `,"alias":${JSON.stringify(ctx.alias.name)}`
        if (ctx.attempts) line += `,"attempts":${ctx.attempts}`
        if (ctx.fallbackReason !== undefined) line += `,"fallbackReason":${JSON.stringify(ctx.fallbackReason)}`
        line += `,"latencyMs":${round(total)}`
        if (ctx.upstreamStart) line += `,"upstreamMs":${round(upstream)}`
        line += `,"overheadMs":${round(total - upstream)}`
        if (ctx.firstChunk) line += `,"ttftMs":${round(ctx.firstChunk - ctx.startedAt)}`
        if (u) {
          // Counts as the upstream reported them: only numbers are written (an embeddings answer has no completion
          // count, and a pass-through answer's usage is the upstream's own JSON, not checked: a string there would
          // otherwise be written into the line as it is).
          const p = u.prompt_tokens
          const c = u.completion_tokens
          if (typeof p === 'number' && Number.isFinite(p)) line += `,"promptTokens":${p}`
          if (typeof c === 'number' && Number.isFinite(c)) line += `,"completionTokens":${c}`
        }
        line += ',"msg":"request"}\n'
        if (dest) dest.write(line)
        else log[level](JSON.parse(line), 'request')
      },
    }
  },
}
