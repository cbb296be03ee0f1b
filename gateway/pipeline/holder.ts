/**
 * Holds the current pipeline generation. Swap, don't mutate: a new generation is swapped in with
 * one assignment; the old one drains (every request finishes on the generation it started with),
 * then the plugin instances and adapters it alone owned are closed.
 */
import type { Logger } from 'pino'
import type { Pipeline } from './pipeline.ts'

export class PipelineHolder {
  #current: Pipeline
  readonly log: Logger
  readonly #retiring = new Set<Pipeline>()

  constructor(first: Pipeline, log: Logger) {
    this.#current = first
    this.log = log
  }

  get current(): Pipeline {
    return this.#current
  }

  /** Generations still draining (for metrics and shutdown). */
  get retiring(): number {
    return this.#retiring.size
  }

  swap(next: Pipeline, drainTimeoutMs: number): void {
    if (next === this.#current) return
    const prev = this.#current
    this.#current = next
    this.#retiring.add(prev)
    void this.#retire(prev, drainTimeoutMs)
  }

  async #retire(prev: Pipeline, drainTimeoutMs: number): Promise<void> {
    const clean = await prev.drained(drainTimeoutMs)
    if (!clean) this.log.warn({ generation: prev.generation, inflight: prev.inflight }, 'pipeline generation did not drain in time; closing its plugins anyway')
    this.#retiring.delete(prev)
    // An instance or adapter may be shared with the current generation or with an older one still draining.
    const live = [this.#current, ...this.#retiring]
    const liveInstances = new Set(live.flatMap((p) => [...p.instances.values()]))
    const liveAdapters = new Set(live.flatMap((p) => [...p.providers.values()]))
    for (const inst of new Set(prev.instances.values())) {
      if (liveInstances.has(inst)) continue
      try { await inst.close?.() } catch (e) { this.log.error({ err: e }, 'plugin close failed') }
    }
    for (const a of prev.providers.values()) {
      if (liveAdapters.has(a)) continue
      try { await a.close() } catch (e) { this.log.error({ err: e }, 'adapter close failed') }
    }
  }

  /** Waits for every generation (current included) to finish its requests, up to the deadline. */
  async drainAll(timeoutMs: number): Promise<boolean> {
    const all = [this.#current, ...this.#retiring]
    const results = await Promise.all(all.map((p) => p.drained(timeoutMs)))
    return results.every(Boolean)
  }
}
