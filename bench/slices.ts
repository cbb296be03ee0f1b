/**
 * BENCH_SLICES: a scenario's saturation run in one round, measured as several short slices taking turns with the
 * other scenarios', merged back into one run (see bench/run.ts KNOBS.slices).
 */

/** A saturation run (bench/run.ts SatRun), whole or one slice of it. */
export interface SliceRun {
  round: number
  rps: number
  /** Seconds measured (autocannon's own duration). */
  durationS: number
  requests: number
  errors: number
  /** HTTP status → count, plus 'errors'/'timeouts' (connection errors, 10 s timeouts) */
  statusCodes: Record<string, number>
  latencyMs: { p50: number; p99: number; p999: number }
  cpuUsPerReq: Record<string, number>
  rssPeakMB: Record<string, number>
  readsPerReq: Record<string, number>
  writesPerReq: Record<string, number>
}

/** The median of the finite values (NaN when there are none). */
export function median(xs: readonly number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return Number.NaN
  const m = Math.floor(v.length / 2)
  return v.length % 2 === 1 ? (v[m] ?? Number.NaN) : ((v[m - 1] ?? 0) + (v[m] ?? 0)) / 2
}

/**
 * One scenario's slices of a round as one run: requests, errors and status codes summed; rates and per-request
 * figures over the total (each slice's per-request figure weighted by its requests); RSS the peak; latency
 * percentiles the median of the slices' (autocannon reports no histogram to merge).
 */
export function mergeSlices<T extends SliceRun>(parts: readonly T[]): T {
  if (parts.length === 1) return parts[0]!
  const requests = parts.reduce((a, p) => a + p.requests, 0)
  const durationS = parts.reduce((a, p) => a + p.durationS, 0)
  const weighted = (pick: (p: T) => Record<string, number>): Record<string, number> => {
    const out: Record<string, number> = {}
    for (const k of new Set(parts.flatMap((p) => Object.keys(pick(p))))) {
      const total = parts.reduce((a, p) => a + (pick(p)[k] ?? 0) * p.requests, 0)
      out[k] = requests > 0 ? Math.round((total / requests) * 100) / 100 : 0
    }
    return out
  }
  const statusCodes: Record<string, number> = {}
  for (const p of parts) for (const [k, v] of Object.entries(p.statusCodes)) statusCodes[k] = (statusCodes[k] ?? 0) + v
  const rssPeakMB: Record<string, number> = {}
  for (const p of parts) for (const [k, v] of Object.entries(p.rssPeakMB)) rssPeakMB[k] = Math.max(rssPeakMB[k] ?? 0, v)
  const cpu = weighted((p) => p.cpuUsPerReq)
  for (const k of Object.keys(cpu)) cpu[k] = Math.round(cpu[k]! * 10) / 10
  return {
    ...parts[0]!,
    rps: durationS > 0 ? Math.round(requests / durationS) : 0,
    durationS,
    requests,
    errors: parts.reduce((a, p) => a + p.errors, 0),
    statusCodes,
    latencyMs: { p50: median(parts.map((p) => p.latencyMs.p50)), p99: median(parts.map((p) => p.latencyMs.p99)), p999: median(parts.map((p) => p.latencyMs.p999)) },
    cpuUsPerReq: cpu,
    rssPeakMB,
    readsPerReq: weighted((p) => p.readsPerReq),
    writesPerReq: weighted((p) => p.writesPerReq),
  }
}
