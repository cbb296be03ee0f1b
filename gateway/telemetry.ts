/**
 * The gateway's own Prometheus series: requests and latency by route and status, gateway overhead
 * (total minus time waiting on the upstream), in-flight requests, event-loop delay, heap and RSS.
 */
import { monitorEventLoopDelay, performance as perfHooks } from 'node:perf_hooks'
import type { RequestCtx } from './context.ts'
import { Metrics, type Counter, type CounterChild, type Histogram, type HistogramChild } from './metrics.ts'

export class GatewayMetrics {
  readonly registry: Metrics
  inflight = 0
  readonly #requests: Counter
  readonly #duration: Histogram
  readonly #overhead: Histogram
  readonly #ttft: Histogram
  readonly #errors: Counter
  /** GET /v1/models: a provider's model list that failed or timed out (gateway/model-catalog.ts), by provider. */
  readonly modelDiscoveryFailures: Counter
  readonly #byRoute = new Map<string, { byStatus: Map<number, CounterChild>; duration: HistogramChild; overhead: HistogramChild; ttft: HistogramChild }>()
  readonly #eld = monitorEventLoopDelay({ resolution: 20 })
  #elu = perfHooks.eventLoopUtilization()

  constructor(registry = new Metrics()) {
    this.registry = registry
    this.#eld.enable()
    this.#requests = registry.counter('mcp_requests_total', 'Requests answered, by route and HTTP status', ['route', 'status'])
    this.#errors = registry.counter('mcp_request_errors_total', 'Failed requests by route and error code', ['route', 'code'])
    this.modelDiscoveryFailures = registry.counter('mcp_model_discovery_failures_total', 'Provider model lists (GET /v1/models) that failed or timed out: served stale or left out', ['provider'])
    this.#duration = registry.histogram('mcp_request_duration_seconds', 'Request latency from arrival to last byte', ['route'])
    this.#overhead = registry.histogram('mcp_gateway_overhead_seconds', 'Latency added by the gateway: total minus time waiting on the upstream', ['route'])
    this.#ttft = registry.histogram('mcp_time_to_first_token_seconds', 'Time from arrival to the first streamed chunk', ['route'])
    registry.gauge('mcp_requests_in_flight', 'Requests being served', [], (set) => set(this.inflight))
    registry.gauge('mcp_event_loop_delay_seconds', 'Event-loop delay over the last scrape interval', ['quantile'], (set) => {
      set(this.#eld.percentile(50) / 1e9, '0.5')
      set(this.#eld.percentile(99) / 1e9, '0.99')
      set(this.#eld.max / 1e9, '1')
      this.#eld.reset()
    })
    registry.gauge('mcp_event_loop_utilization', 'Event-loop utilisation since the last scrape (0..1)', [], (set) => {
      const now = perfHooks.eventLoopUtilization()
      set(perfHooks.eventLoopUtilization(now, this.#elu).utilization)
      this.#elu = now
    })
    registry.gauge('mcp_process_resident_memory_bytes', 'Resident set size', [], (set) => set(process.memoryUsage.rss()))
    registry.gauge('mcp_process_heap_used_bytes', 'V8 heap in use', [], (set) => set(process.memoryUsage().heapUsed))
    // A running total: a counter (rate() over it is the CPU use), not a gauge.
    registry.counter('mcp_process_cpu_seconds_total', 'CPU time of the process (user + system)', [], (set) => {
      const c = process.cpuUsage()
      set((c.user + c.system) / 1e6)
    })
  }

  observe(ctx: RequestCtx, status: number, now: number): void {
    const route = ctx.route.name
    // The series of a route are looked up once, not by label strings on every request.
    let r = this.#byRoute.get(route)
    if (!r) {
      r = { byStatus: new Map(), duration: this.#duration.labels(route), overhead: this.#overhead.labels(route), ttft: this.#ttft.labels(route) }
      this.#byRoute.set(route, r)
    }
    let requests = r.byStatus.get(status)
    if (!requests) { requests = this.#requests.labels(route, String(status)); r.byStatus.set(status, requests) }
    requests.inc()
    if (ctx.errorCode !== undefined) this.#errors.labels(route, ctx.errorCode).inc()
    const total = ctx.elapsedMs(now)
    r.duration.observe(total / 1000)
    if (ctx.upstreamStart !== 0) r.overhead.observe(Math.max(0, total - ctx.upstreamMs(now)) / 1000)
    if (ctx.firstChunk !== 0 && ctx.stream) r.ttft.observe((ctx.firstChunk - ctx.startedAt) / 1000)
  }

  close(): void {
    this.#eld.disable()
  }
}
