/**
 * Holds the current pipeline generation. Swap, don't mutate: a new generation is swapped in with
 * one assignment; the old one drains (every request finishes on the generation it started with),
 * then the plugin instances and adapters it alone owned are closed.
 */
import type { Logger } from 'pino'
import { retiredAdapters, retiredInstances } from './compile.ts'
import type { Pipeline } from './pipeline.ts'

export class PipelineHolder {
  #current: Pipeline
  readonly #log: Logger
  readonly #retiring = new Set<Pipeline>()

  constructor(first: Pipeline, log: Logger) {
    this.#current = first
    this.#log = log
  }

  get current(): Pipeline {
    return this.#current
  }

  /** Generations still draining (for metrics and shutdown). */
  get retiring(): number {
    return this.#retiring.size
  }

  swap(next: Pipeline, drainTimeoutMs: number): void {
    const prev = this.#current
    this.#current = next
    this.#retiring.add(prev)
    void this.#retire(prev, next, drainTimeoutMs)
  }

  async #retire(prev: Pipeline, next: Pipeline, drainTimeoutMs: number): Promise<void> {
    const clean = await prev.drained(drainTimeoutMs)
    if (!clean) this.#log.warn({ generation: prev.generation, inflight: prev.inflight }, 'pipeline generation did not drain in time; closing its plugins anyway')
    // Instances carried into later generations must survive; compare against the generation current now.
    const now = this.#current
    for (const inst of retiredInstances(prev, next)) {
      if ([...now.instances.values()].includes(inst)) continue
      try { await inst.close?.() } catch (e) { this.#log.error({ err: e }, 'plugin close failed') }
    }
    for (const a of retiredAdapters(prev, next)) {
      if ([...now.providers.values()].includes(a)) continue
      try { await a.close() } catch (e) { this.#log.error({ err: e }, 'adapter close failed') }
    }
    this.#retiring.delete(prev)
  }

  /** Waits for every generation (current included) to finish its requests, up to the deadline. */
  async drainAll(timeoutMs: number): Promise<boolean> {
    const all = [this.#current, ...this.#retiring]
    const results = await Promise.all(all.map((p) => p.drained(timeoutMs)))
    return results.every(Boolean)
  }
}
