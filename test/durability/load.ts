/**
 * Open-loop load for the durability tests: requests leave at a constant rate (not when earlier ones finish), each
 * with its own x-request-id, so rows in execution_logs can be matched one by one against what was sent.
 */
import { Pool } from 'undici'

export interface LoadResult {
  /** Every request id sent, in order. */
  sent: string[]
  /** Ids that got a complete HTTP response, with its status. */
  completed: Map<string, number>
  /** Ids that got no complete response (connection refused or reset, timeout), with the reason. */
  failed: Map<string, string>
  /** [ms since start when sent, latency ms] of every completed request. */
  latencies: [number, number][]
  elapsedMs: number
}

export interface LoadOptions {
  origin: string
  path: string
  rps: number
  durationMs: number
  idPrefix: string
  headers: Record<string, string>
  body: string
  connections?: number
}

export interface Load {
  readonly done: Promise<LoadResult>
  /** Stops sending; `done` resolves once the requests in flight settle. */
  stop(): void
  sentCount(): number
  completedCount(): number
}

export function startLoad(o: LoadOptions): Load {
  const pool = new Pool(o.origin, { connections: o.connections ?? 64, headersTimeout: 15_000, bodyTimeout: 15_000 })
  const sent: string[] = []
  const completed = new Map<string, number>()
  const failed = new Map<string, string>()
  const latencies: [number, number][] = []
  const inflight = new Set<Promise<void>>()
  const t0 = performance.now()
  let stopped = false

  const one = (id: string): void => {
    const at = performance.now()
    const p = pool.request({ method: 'POST', path: o.path, headers: { ...o.headers, 'x-request-id': id }, body: o.body })
      .then(async (res) => {
        await res.body.text()
        completed.set(id, res.statusCode)
        latencies.push([at - t0, performance.now() - at])
      })
      .catch((e: unknown) => { failed.set(id, (e as { code?: string }).code ?? (e as Error).message) })
      .finally(() => inflight.delete(p))
    inflight.add(p)
  }

  const done = new Promise<LoadResult>((resolve) => {
    const tick = setInterval(() => {
      const elapsed = performance.now() - t0
      if (stopped || elapsed >= o.durationMs) {
        clearInterval(tick)
        void (async () => {
          while (inflight.size > 0) await Promise.allSettled([...inflight])
          await pool.destroy().catch(() => {})
          resolve({ sent, completed, failed, latencies, elapsedMs: performance.now() - t0 })
        })()
        return
      }
      const due = Math.floor((elapsed * o.rps) / 1000)
      while (sent.length < due) {
        const id = `${o.idPrefix}-${sent.length}`
        sent.push(id)
        one(id)
      }
    }, 5)
  })
  return { done, stop() { stopped = true }, sentCount: () => sent.length, completedCount: () => completed.size }
}

/** The q-quantile (0..1) of a list of numbers. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}
