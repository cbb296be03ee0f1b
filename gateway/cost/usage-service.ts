/**
 * Usage tracking as the composition root starts it: the rollup aggregator (the cost-meter plugin's
 * `services.usage`) and, when configured, the billing webhook. Both run their own background I/O; `close()`
 * (at shutdown, after the gateway drained and before the store closes) writes the last rollups.
 */
import type { Logger } from 'pino'
import type { Metrics } from '../metrics.ts'
import type { Store } from '../../store/types.ts'
import { UsageAggregator } from '../../store/usage-rollups.ts'
import type { UsageSettings } from './usage-settings.ts'
import { UsageWebhook } from './usage-webhook.ts'

export interface UsageServices {
  readonly aggregator: UsageAggregator
  readonly webhook: UsageWebhook | undefined
  /** Puts their metrics on a registry (the gateway's, once it exists). */
  bindMetrics(m: Metrics): void
  start(): void
  /** Stops the webhook, flushes the aggregator; true when no usage was lost. */
  close(): Promise<boolean>
}

export function createUsageServices(opts: { store: Store; settings: UsageSettings; logger: Logger; metrics?: Metrics }): UsageServices {
  const s = opts.settings
  const log = opts.logger
  const aggregator = new UsageAggregator({
    store: opts.store, logger: log, ...(opts.metrics ? { metrics: opts.metrics } : {}),
    flushIntervalMs: s.flushIntervalMs, maxPendingRows: s.maxPendingRows, maxRetryDelayMs: s.maxRetryDelayMs, retention: s.retention,
  })
  const webhook = s.webhook ? new UsageWebhook({ store: opts.store, settings: s.webhook, logger: log, ...(opts.metrics ? { metrics: opts.metrics } : {}) }) : undefined
  return {
    aggregator,
    webhook,
    bindMetrics(m) {
      aggregator.bindMetrics(m)
      webhook?.bindMetrics(m)
    },
    start() {
      aggregator.start()
      webhook?.start()
    },
    async close() {
      await webhook?.stop()
      return aggregator.close()
    },
  }
}
