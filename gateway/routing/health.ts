/**
 * Active health checks, off the request path: every `routing.health.intervalMs`, each provider
 * that backs an alias target is probed with `healthCheck()`; its targets are marked unhealthy
 * while the probe fails. Probes never overlap and time out on their own.
 */
import type { Logger } from 'pino'
import type { PipelineHolder } from '../pipeline/holder.ts'

export class HealthChecker {
  readonly #holder: PipelineHolder
  readonly #log: Logger
  #timer: NodeJS.Timeout | undefined
  #running = false

  constructor(holder: PipelineHolder, log: Logger) {
    this.#holder = holder
    this.#log = log
  }

  start(): void {
    const h = this.#holder.current.settings.routing.health
    if (!h.enabled || this.#timer) return
    this.#timer = setInterval(() => void this.checkNow(), h.intervalMs)
    this.#timer.unref()
  }

  /** One round of probes (also used by tests). */
  async checkNow(): Promise<void> {
    if (this.#running) return
    this.#running = true
    try {
      const p = this.#holder.current
      if (!p.settings.routing.health.enabled) return
      const byProvider = new Map<string, { adapter: NonNullable<ReturnType<typeof p.providers.get>>; states: Set<import('./target-state.ts').TargetState> }>()
      for (const a of p.aliases.values()) {
        for (const t of a.targets) {
          let e = byProvider.get(t.provider)
          if (!e) { e = { adapter: t.adapter, states: new Set() }; byProvider.set(t.provider, e) }
          e.states.add(t.state)
        }
      }
      await Promise.all([...byProvider].map(async ([name, { adapter, states }]) => {
        const r = await adapter.healthCheck().catch((err: unknown) => ({ ok: false, checkedAt: Date.now(), detail: (err as Error).message }))
        for (const s of states) {
          if (s.healthy !== r.ok) this.#log.warn({ provider: name, target: s.id, healthy: r.ok, detail: r.detail }, 'target health changed')
          s.healthy = r.ok
          s.lastHealth = { ok: r.ok, checkedAt: r.checkedAt, detail: r.detail }
        }
      }))
    } finally {
      this.#running = false
    }
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }
}
