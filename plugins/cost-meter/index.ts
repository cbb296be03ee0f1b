/**
 * cost-meter: the cost of every answer, from its actual usage (streams included) and the price catalogue
 * (gateway/cost/prices.json + `pricing.models`), in exact pico-USD; counters by provider and model; one usage
 * record per routed request into the rollups (`services.usage`), attributed to key, team, deployment, prompt
 * version, provider and model.
 *
 * Hooks: onRequestHeaders puts the meter in `ctx.slots.costMeter` (one property write); onComplete prices the
 * request through costOf(ctx) — computed once, by whoever asks first, so the execution log records the same cost
 * whether it runs before or after this plugin — counts it and hands the record to the aggregator (synchronous,
 * in memory; the aggregator flushes in the background). No onResponseChunk hook: pass-through stays on.
 *
 * See docs/cost.md for the billing rules (failed attempts, cut streams, estimates, unknown models).
 */
import { GatewayError } from '../../gateway/errors.ts'
import type { RequestCtx } from '../../gateway/context.ts'
import { effectiveFromErrors } from '../../gateway/cost/effective-from.ts'
import { DEFAULT_PROVIDER_TYPE_MAP, Pricing } from '../../gateway/cost/pricing.ts'
import { costOf, costReady, CostMeter } from '../../gateway/cost/meter.ts'
import type { CostBreakdown } from '../../gateway/cost/catalogue.ts'
import type { Outcome, PluginFactory } from '../../gateway/pipeline/types.ts'
import type { UsageRecord } from '../../store/usage-rollups.ts'
import { costMeterConfigSchema, type CostMeterConfig } from './config.ts'

/** Where usage records go: store/usage-rollups.ts UsageAggregator. */
export interface UsageSink {
  record(r: UsageRecord): void
}

declare module '../../gateway/pipeline/types.ts' {
  interface PluginServices {
    /** Usage rollups (store/usage-rollups.ts UsageAggregator), flushed by its own timer. */
    usage?: UsageSink
  }
}

/** Built-in provider type mapping; `providerTypeMap` entries are added on top (and may undo these). */
export { DEFAULT_PROVIDER_TYPE_MAP } from '../../gateway/cost/pricing.ts'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

function uuidOrNull(v: unknown): string | null {
  return typeof v === 'string' && UUID.test(v) ? v.toLowerCase() : null
}

const NO_EXECUTION: Readonly<{ deploymentId: null; promptVersionId: null }> = Object.freeze({ deploymentId: null, promptVersionId: null })

/** `ctx.slots.execution` belongs to the execute route (admin); read without depending on its declaration. */
function executionIds(ctx: RequestCtx): Readonly<{ deploymentId: string | null; promptVersionId: string | null }> {
  const e = (ctx.slots as Readonly<Record<string, unknown>>)['execution']
  if (e === null || typeof e !== 'object') return NO_EXECUTION
  const o = e as Readonly<Record<string, unknown>>
  return { deploymentId: uuidOrNull(o['deploymentId']), promptVersionId: uuidOrNull(o['promptVersionId']) }
}

let warnedNoSink = false

export const costMeterPlugin: PluginFactory<CostMeterConfig> = {
  name: 'cost-meter',
  configSchema: costMeterConfigSchema,
  sideEffects: 'none',
  // Streams on its routes ask the upstream for usage (stream_options.include_usage), hidden from clients that did not.
  needsUsage: true,
  // The router's lowest-cost strategy prices targets as this plugin prices answers (gateway/pipeline/compile.ts).
  pricing: (config) => new Pricing({ overrides: config.pricing.models, providerTypeMap: { ...DEFAULT_PROVIDER_TYPE_MAP, ...config.providerTypeMap } }),
  async create(config, deps) {
    const dates = effectiveFromErrors(config.pricing.models, 'pricing.models')
    if (dates.length > 0) throw new GatewayError('MCP_ERR_PLUGIN_CONFIG_INVALID', { plugin: 'cost-meter', reason: dates.join('; ') }, { details: 'config.plugin_invalid' })
    const meter = new CostMeter({
      overrides: config.pricing.models,
      providerTypeMap: { ...DEFAULT_PROVIDER_TYPE_MAP, ...config.providerTypeMap },
      estimateWhenMissing: config.estimateWhenMissing,
      maxSeries: config.maxSeries,
      metrics: deps.metrics,
      logger: deps.logger,
    })
    const sink = deps.services.usage
    if (!sink && !warnedNoSink) {
      warnedNoSink = true
      deps.logger.warn('cost-meter: no usage aggregator (services.usage): costs are counted but no usage rollups are written')
    }

    return {
      onRequestHeaders(ctx) {
        ctx.slots.costMeter = meter
      },

      onComplete(ctx, outcome) {
        // Never routed upstream (local reply before the upstream call): no usage, nothing to record.
        if (ctx.upstreamStart === 0) return
        // Completion time, taken now: the hour bucket must not move past a boundary while the estimate waits.
        const at = Date.now()
        // The first estimate after start waits for the tokenizer to load (costReady).
        const ready = costReady(ctx)
        if (ready) return ready.then(() => record(ctx, outcome, at))
        record(ctx, outcome, at)
      },
    }

    function record(ctx: RequestCtx, outcome: Outcome, at: number): void {
      const c = costOf(ctx)
      if (c === undefined) return
      // A resumed stream's parts by target (undefined for any other request), for the counters and the rollups.
      const parts = meter.parts(ctx)
      meter.count(ctx, c, parts)
      if (!sink) return
      const principal = ctx.slots.principal
      const exec = executionIds(ctx)
      const keyId = uuidOrNull(principal?.keyId)
      const team = principal?.team ?? null
      const error = outcome.errorCode !== undefined || outcome.status >= 400
      if (parts === undefined) {
        sink.record(usageRecord(at, keyId, team, exec, ctx.providerName || null, ctx.model || ctx.requestedModel || null, c, error, c.estimated, c.unknown, 1))
        return
      }
      // A resumed stream: each target's tokens and cost under its own provider and model. The request itself (and its
      // error, estimated and unpriced flags, for the whole cost) counts once, with the answering target.
      for (const [i, p] of parts.entries()) {
        const first = i === 0
        sink.record(usageRecord(at, keyId, team, exec, p.provider || null, p.model || null, p.cost, first && error, first && c.estimated, first && c.unknown, first ? 1 : 0))
      }
    }
  },
}

function usageRecord(
  at: number, keyId: string | null, team: string | null, exec: Readonly<{ deploymentId: string | null; promptVersionId: string | null }>,
  provider: string | null, model: string | null, c: CostBreakdown, error: boolean, estimated: boolean, unpriced: boolean, requests: number,
): UsageRecord {
  return {
    at, keyId, team, deploymentId: exec.deploymentId, promptVersionId: exec.promptVersionId, provider, model, error,
    inputTokens: c.inputTokens, cachedTokens: c.cachedTokens, cacheWriteTokens: c.cacheWriteTokens, outputTokens: c.outputTokens,
    reasoningTokens: c.reasoningTokens, pico: c.unknown ? 0 : c.pico, estimated, unpriced, requests,
  }
}
