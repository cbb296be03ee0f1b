/**
 * Load shedding (the Node counterpart of Envoy's overload manager, @fastify/under-pressure's
 * thresholds). A timer samples, once per window: the event-loop delay p99 (the lateness of a 20 ms
 * probe timer and of the sampling timer itself; `monitorEventLoopDelay` loses the sample of a block
 * that spans a histogram reset), the V8 heap in use against its limit, and the resident set size.
 * New requests get 503 MCP_ERR_SERVER_OVERLOADED with Retry-After while the heap or RSS is over its
 * threshold, or once the delay has been over its threshold for `eventLoopWindows` windows in a row
 * (a single spike is not overload, and shedding after it would only turn one slow request into a
 * second of refusals). The first window under the thresholds ends it. The request path reads one
 * boolean, never a metric; requests already admitted (streams included) are not touched.
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks'
import { getHeapStatistics } from 'node:v8'
import type { SheddingSettings } from './config.ts'

export interface LoadSample {
  /** Event-loop delay p99 over the window, ms. */
  eventLoopDelayMs: number
  heapUsedRatio: number
  rssBytes: number
}

export class LoadShedder {
  readonly #s: SheddingSettings
  readonly #sample: () => LoadSample
  #histogram: RecordableHistogram | undefined
  #timer: NodeJS.Timeout | undefined
  #probe: NodeJS.Timeout | undefined
  #probeDue = 0
  #tickDue = 0
  /** True while new requests are refused. Read per request; written once per window. */
  overloaded = false
  /** Why the last window shed ('event_loop_delay', 'heap', 'rss'), '' when it did not. */
  reason = ''
  last: LoadSample = { eventLoopDelayMs: 0, heapUsedRatio: 0, rssBytes: 0 }
  #slowWindows = 0
  #onChange: ((overloaded: boolean, reason: string, sample: LoadSample) => void) | undefined

  constructor(settings: SheddingSettings, opts: { sample?: () => LoadSample; onChange?: (overloaded: boolean, reason: string, sample: LoadSample) => void } = {}) {
    this.#s = settings
    this.#sample = opts.sample ?? (() => this.#measure())
    this.#onChange = opts.onChange
  }

  start(): void {
    if (!this.#s.enabled || this.#timer) return
    const h = createHistogram()
    this.#histogram = h
    const probeMs = Math.max(5, Math.min(20, Math.floor(this.#s.sampleIntervalMs / 5)))
    this.#probeDue = performance.now() + probeMs
    // One block is one sample, in one window: whichever timer runs first after it takes the probe's lateness.
    const probe = (now: number): void => {
      if (now > this.#probeDue) h.record(Math.max(1, Math.round((now - this.#probeDue) * 1000)))
      this.#probeDue = now + probeMs
    }
    this.#probe = setInterval(() => probe(performance.now()), probeMs)
    this.#probe.unref()
    this.#tickDue = performance.now() + this.#s.sampleIntervalMs
    this.#timer = setInterval(() => {
      const now = performance.now()
      if (this.#tickDue < this.#probeDue) h.record(Math.max(1, Math.round((now - this.#tickDue) * 1000)))
      probe(now)
      this.#tickDue = now + this.#s.sampleIntervalMs
      this.tick()
    }, this.#s.sampleIntervalMs)
    this.#timer.unref()
  }

  stop(): void {
    clearInterval(this.#timer)
    clearInterval(this.#probe)
    this.#timer = undefined
    this.#probe = undefined
    this.#histogram = undefined
    this.overloaded = false
  }

  #measure(): LoadSample {
    const h = this.#histogram
    const eventLoopDelayMs = h && h.count > 0 ? h.percentile(99) / 1000 : 0
    h?.reset()
    const heap = getHeapStatistics()
    return { eventLoopDelayMs, heapUsedRatio: heap.used_heap_size / heap.heap_size_limit, rssBytes: process.memoryUsage.rss() }
  }

  /** Takes one sample and updates the state (the timer calls it once per window). */
  tick(): void {
    const s = this.#s
    const m = this.#sample()
    this.last = m
    this.#slowWindows = m.eventLoopDelayMs > s.eventLoopDelayMs ? this.#slowWindows + 1 : 0
    let reason = ''
    if (this.#slowWindows >= s.eventLoopWindows) reason = 'event_loop_delay'
    else if (s.heapUsedRatio > 0 && m.heapUsedRatio > s.heapUsedRatio) reason = 'heap'
    else if (s.rssBytes > 0 && m.rssBytes > s.rssBytes) reason = 'rss'
    const over = reason !== ''
    const changed = over !== this.overloaded
    this.overloaded = over
    this.reason = reason
    if (changed) this.#onChange?.(over, reason, m)
  }
}
