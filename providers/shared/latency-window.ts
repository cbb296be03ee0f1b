/** A fixed-size ring of recent latencies with on-demand quantiles (for getMetrics, never per request). */
export class LatencyWindow {
  readonly #buf: Float64Array
  #n = 0
  #i = 0

  constructor(size: number) {
    this.#buf = new Float64Array(size)
  }

  add(ms: number): void {
    this.#buf[this.#i] = ms
    this.#i = (this.#i + 1) % this.#buf.length
    if (this.#n < this.#buf.length) this.#n++
  }

  quantile(q: number): number {
    if (this.#n === 0) return 0
    const sorted = Array.from(this.#buf.subarray(0, this.#n)).sort((a, b) => a - b)
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
  }
}
