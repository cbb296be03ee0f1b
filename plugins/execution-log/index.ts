/**
 * execution-log: one execution_logs row per request that entered the route (successes, local replies, upstream
 * errors, timeouts, client aborts), built in onComplete after the last byte and handed to the sink
 * (`services.executionLog`, the store's ExecutionLogWriter) synchronously: the request never waits on the database.
 *
 * The row: request (canonical body, redacted and capped), response (status, finish reason, usage, error), metrics
 * (latency, time to first token, upstream time, gateway overhead, tokens, attempts, fallback reason, prompt
 * version, cost from the cost meter when one is configured), request arrival and completion times, key, deployment and
 * prompt version when known (the execute route sets `ctx.slots.execution`). The key column takes the principal's
 * key id when it is a UUID (API keys); the bootstrap admin key and anonymous callers leave it NULL
 * (`metrics.principal` names them). The row id is the request's generated id (`ctx.generatedId`, a UUIDv7,
 * gateway/uuid7.ts), whatever request id the client sent: time-ordered, so the table's primary key grows at its right
 * edge, and known at request time, so the execute route answers it as `execution_id`.
 */
import type { RequestCtx } from '../../gateway/context.ts'
import { costJson, costOf, costReady } from '../../gateway/cost/meter.ts'
import type { Outcome, PluginFactory } from '../../gateway/pipeline/types.ts'
import type { ExecutionLogSink } from '../../store/execution-log-writer.ts'
import { JsonText } from '../../store/execution-log-rows.ts'
import { captureBody } from './capture.ts'
import { nativeRequestOf } from '../../gateway/upstream/native-messages.ts'
import { ObjectText, responseText } from './json.ts'
import { executionLogConfigSchema, type ExecutionLogConfig } from './config.ts'

declare module '../../gateway/pipeline/types.ts' {
  interface PluginServices {
    /** Where execution-log rows go (store/execution-log-writer.ts). */
    executionLog?: ExecutionLogSink
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

function uuidOrNull(v: unknown): string | null {
  return typeof v === 'string' && UUID.test(v) ? v : null
}

function stringOrNull(v: unknown): string | null {
  return typeof v === 'string' && v !== '' ? v : null
}

export function statusOf(o: Outcome): string {
  if (o.aborted) return 'cancelled'
  // Ended by the gateway's shutdown past its deadline (a stream's error event, or a 503): not the upstream's failure.
  if (o.errorCode === 'MCP_ERR_SERVER_DRAINING') return 'terminated'
  if (o.errorCode === 'MCP_ERR_UPSTREAM_TIMEOUT' || o.errorCode === 'MCP_ERR_REQ_TIMEOUT') return 'timeout'
  if (o.errorCode !== undefined || o.status >= 400) return 'error'
  return 'ok'
}

interface ExecutionInfo {
  deploymentId: string | null
  promptVersionId: string | null
  promptId: string | null
  version: number | null
  environment: string | null
  label: string | null
}
const NO_EXECUTION: ExecutionInfo = { deploymentId: null, promptVersionId: null, promptId: null, version: null, environment: null, label: null }

/** `ctx.slots.execution` is set by the execute route (admin/execute.ts); read structurally, plugins do not import admin. */
function executionOf(ctx: RequestCtx): ExecutionInfo {
  const e = (ctx.slots as Readonly<Record<string, unknown>>)['execution']
  if (e === null || typeof e !== 'object') return NO_EXECUTION
  const o = e as Readonly<Record<string, unknown>>
  return {
    deploymentId: stringOrNull(o['deploymentId']), promptVersionId: stringOrNull(o['promptVersionId']), promptId: stringOrNull(o['promptId']),
    version: typeof o['version'] === 'number' ? o['version'] : null, environment: stringOrNull(o['environment']), label: stringOrNull(o['label']),
  }
}

let warnedNoSink = false

export const executionLogPlugin: PluginFactory<ExecutionLogConfig> = {
  name: 'execution-log',
  configSchema: executionLogConfigSchema,
  sideEffects: 'io',
  create(config, deps) {
    const sink = deps.services.executionLog
    if (!sink) {
      if (!warnedNoSink) deps.logger.warn('execution-log: no sink configured (services.executionLog); requests are not recorded')
      warnedNoSink = true
      return {}
    }
    const rows: ExecutionLogSink = sink
    const redact: ReadonlySet<string> = new Set(config.redactFields)
    const { storeRequest, storeResponse, maxRequestBytes } = config

    return {
      ...(config.failMode === 'closed'
        ? {
            onRequestHeaders() {
              if (sink.accepting()) return undefined
              return {
                status: 503,
                code: 'MCP_ERR_UPSTREAM_UNAVAILABLE',
                message: 'Requests cannot be recorded right now (execution-log failMode is closed)',
                details: 'execution_log.unavailable',
                headers: { 'retry-after': '1' },
              } as const
            },
          }
        : {}),

      onComplete(ctx, outcome) {
        const now = performance.now()
        const wall = Date.now()
        // The first estimated cost after start waits for the tokenizer (costReady); times are taken now.
        const ready = costReady(ctx)
        if (ready) return ready.then(() => write(ctx, outcome, now, wall))
        write(ctx, outcome, now, wall)
      },
    }

    function write(ctx: RequestCtx, outcome: Outcome, now: number, wall: number): void {
      const total = ctx.elapsedMs(now)
      const upstream = ctx.upstreamMs(now)
      const u = ctx.usage
      const exec = executionOf(ctx)
      const principal = ctx.slots.principal
      // A native-only Messages request is logged as it went upstream (its server tools included), not as its canonical form.
      const req = captureBody(nativeRequestOf(ctx) ?? ctx.chat ?? ctx.embedding, storeRequest, maxRequestBytes, redact)
      rows.enqueue({
        // The generated request id (a UUIDv7), also when the client sent its own id (which may repeat): unique per
        // request and known from its start, so the execute route answers it as the execution id (admin/execute.ts).
        id: ctx.generatedId,
        requestId: ctx.id,
        deploymentId: uuidOrNull(exec.deploymentId),
        provider: ctx.providerName,
        model: ctx.model || ctx.requestedModel || null,
        status: statusOf(outcome),
        keyId: uuidOrNull(principal?.keyId),
        promptVersionId: uuidOrNull(exec.promptVersionId),
        createdAt: wall - total,
        completedAt: wall,
        request: req.value,
        response: storeResponse === 'none' ? null : new JsonText(responseText(outcome.status, ctx.finishReason, u,
          outcome.errorCode === undefined ? null : { code: outcome.errorCode, details: outcome.details })),
        // Keys in jsonb's own order (shorter first, then bytewise), so PostgreSQL's sort of them is a check.
        metrics: new JsonText(new ObjectText()
          .any('cost', costJson(costOf(ctx))).str('route', ctx.route.name)
          .num('status', outcome.status).bool('stream', ctx.stream).ms('ttftMs', ctx.firstChunk !== 0 ? ctx.firstChunk - ctx.startedAt : null)
          .bool('aborted', outcome.aborted).str('details', outcome.details).str('inbound', ctx.inbound)
          .num('attempts', ctx.attempts).str('promptId', exec.promptId)
          .str('errorCode', outcome.errorCode).ms('latencyMs', total).str('principal', principal?.keyId)
          .ms('overheadMs', total - upstream).ms('upstreamMs', ctx.upstreamStart !== 0 ? upstream : null)
          .str('environment', exec.environment)
          .num('cachedTokens', u?.prompt_tokens_details?.cached_tokens).num('promptTokens', u?.prompt_tokens).str('trafficLabel', exec.label)
          .num('promptVersion', exec.version)
          .any('failedAttempts', ctx.attemptLog.length > 0 ? ctx.attemptLog : null).str('fallbackReason', ctx.fallbackReason).str('requestedModel', ctx.requestedModel || null)
          .str('promptVersionId', exec.promptVersionId).num('reasoningTokens', u?.completion_tokens_details?.reasoning_tokens)
          .num('completionTokens', u?.completion_tokens).str('upstreamRequestId', ctx.upstreamRequestId)
          .toString()),
        bytes: req.bytes + 500,
      })
    }
  },
}
