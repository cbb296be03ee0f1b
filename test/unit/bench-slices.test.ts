/**
 * bench/slices.ts mergeSlices: a scenario measured in alternating slices is one run again, with per-request
 * figures over all its requests (a slice with more requests weighs more), sums where sums belong, peaks for RSS.
 */
import { describe, expect, it } from 'vitest'
import { median, mergeSlices, type SliceRun } from '../../bench/slices.ts'

const run = (requests: number, durationS: number, cpu: number, extra: Partial<SliceRun> = {}): SliceRun => ({
  round: 2, rps: Math.round(requests / durationS), durationS, requests, errors: 0, statusCodes: { 200: requests },
  latencyMs: { p50: 4, p99: 10, p999: 20 }, cpuUsPerReq: { gw: cpu, db: cpu / 10 }, rssPeakMB: { gw: 100 },
  readsPerReq: { gw: 2 }, writesPerReq: { gw: 2 }, ...extra,
})

describe('bench/slices.ts mergeSlices', () => {
  it('sums requests and time, weights per-request CPU by requests, keeps the peak RSS and the slices\' median latency', () => {
    const m = mergeSlices([
      run(1000, 1, 100, { latencyMs: { p50: 3, p99: 9, p999: 30 } }),
      run(3000, 1, 120, { errors: 2, statusCodes: { 200: 2998, 502: 2 }, rssPeakMB: { gw: 140 } }),
      run(2000, 1, 110, { latencyMs: { p50: 5, p99: 12, p999: 25 } }),
    ])
    expect(m.requests).toBe(6000)
    expect(m.durationS).toBe(3)
    expect(m.rps).toBe(2000)
    // (1000*100 + 3000*120 + 2000*110) / 6000 = 113.33...
    expect(m.cpuUsPerReq['gw']).toBe(113.3)
    expect(m.cpuUsPerReq['db']).toBe(11.3)
    expect(m.errors).toBe(2)
    expect(m.statusCodes).toEqual({ 200: 5998, 502: 2 })
    expect(m.rssPeakMB).toEqual({ gw: 140 })
    expect(m.latencyMs).toEqual({ p50: 4, p99: 10, p999: 25 })
    expect(m.round).toBe(2)
  })

  it('one slice is the run itself; median ignores what is not a number', () => {
    const one = run(10, 1, 50)
    expect(mergeSlices([one])).toBe(one)
    expect(median([3, Number.NaN, 1, 2])).toBe(2)
    expect(median([])).toBeNaN()
  })
})
