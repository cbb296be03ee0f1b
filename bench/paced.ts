/**
 * Open-loop, paced load generator: requests are sent on a fixed schedule (`rate` per second),
 * whether or not earlier ones have completed, over up to `connections` keep-alive connections
 * (one undici Pool). Latency is measured from each request's INTENDED send time to the end of its
 * response body (process.hrtime.bigint(), µs), so a stall on either side counts in full
 * (no coordinated omission). Scheduling lag (actual send - intended) is reported separately.
 *
 * Timers in Node have 1 ms granularity, too coarse for a 1 ms interval: a worker thread sleeps
 * with Atomics.wait (sub-ms) until shortly before each slot, spins the last `spinUs` µs and posts
 * a tick; the main thread sends every slot whose time has come.
 *
 * Usage (prints one JSON object on stdout, exits 0; meant to run in its own process):
 *   node --experimental-strip-types bench/paced.ts '{"origin":"http://127.0.0.1:9100","path":"/v1/chat/completions",
 *     "headers":{...},"body":"...","rate":1000,"durationMs":5000}'
 * Options: origin, path, method (POST), headers, body, rate (1000/s), durationMs (5000),
 * warmupMs (1000, same schedule, not recorded), connections (50), drainMs (5000: wait for the
 * last responses, then count the rest as unfinished), spinUs (60).
 */
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import { Pool } from 'undici'

export interface PacedOptions {
  origin: string
  path: string
  method?: string
  headers?: Record<string, string>
  body?: string
  rate?: number
  durationMs?: number
  warmupMs?: number
  connections?: number
  drainMs?: number
  spinUs?: number
}

export interface Percentiles { p50: number; p90: number; p99: number; p999: number; max: number; mean: number }

export interface PacedResult {
  targetRate: number
  achievedRate: number
  durationMs: number
  /** recorded (post-warm-up) requests scheduled / completed OK / failed / never finished */
  scheduled: number
  ok: number
  errors: number
  unfinished: number
  statusCodes: Record<string, number>
  errorSamples: string[]
  /** µs from intended send time to end of body (what a client sees; includes lag) */
  latencyUs: Percentiles
  /** µs from actual send to end of body */
  serviceUs: Percentiles
  /** µs from intended to actual send (generator lag) */
  lagUs: Percentiles
  maxInFlight: number
}

const TICKER = `
const { parentPort, workerData } = require('node:worker_threads')
const sab = new Int32Array(new SharedArrayBuffer(4))
const { t0, intervalNs, count, spinNs } = workerData
for (let k = 0; k < count; k++) {
  const target = t0 + BigInt(Math.round(k * intervalNs))
  const waitMs = Number(target - process.hrtime.bigint() - spinNs) / 1e6
  if (waitMs > 0) Atomics.wait(sab, 0, 0, waitMs)
  while (process.hrtime.bigint() < target) {}
  parentPort.postMessage(k)
}
`

export function percentiles(values: Float64Array): Percentiles {
  const n = values.length
  if (n === 0) return { p50: 0, p90: 0, p99: 0, p999: 0, max: 0, mean: 0 }
  const s = Float64Array.from(values).sort()
  const at = (q: number): number => s[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))] ?? 0
  let sum = 0
  for (let i = 0; i < n; i++) sum += s[i] ?? 0
  const r = (x: number): number => Math.round(x * 10) / 10
  return { p50: r(at(0.5)), p90: r(at(0.9)), p99: r(at(0.99)), p999: r(at(0.999)), max: r(s[n - 1] ?? 0), mean: r(sum / n) }
}

export async function runPaced(o: PacedOptions): Promise<PacedResult> {
  const rate = o.rate ?? 1000
  const durationMs = o.durationMs ?? 5000
  const warmupMs = o.warmupMs ?? 1000
  const drainMs = o.drainMs ?? 5000
  const intervalNs = 1e9 / rate
  const warmSlots = Math.floor((warmupMs * rate) / 1000)
  const slots = warmSlots + Math.floor((durationMs * rate) / 1000)
  const recorded = slots - warmSlots

  const pool = new Pool(o.origin, { connections: o.connections ?? 50, pipelining: 1 })
  const method = (o.method ?? 'POST') as 'POST'
  const reqOpts = { path: o.path, method, headers: o.headers ?? {}, body: o.body ?? null }

  const latency = new Float64Array(recorded)
  const service = new Float64Array(recorded)
  const lag = new Float64Array(recorded)
  let nLat = 0
  let ok = 0
  let errors = 0
  let inFlight = 0
  let maxInFlight = 0
  let done = 0
  const statusCodes: Record<string, number> = {}
  const errorSamples: string[] = []

  const t0 = process.hrtime.bigint() + 50_000_000n // first slot 50 ms from now (worker start-up)
  const intended = (k: number): bigint => t0 + BigInt(Math.round(k * intervalNs))
  let next = 0
  let allDone: () => void = () => {}
  const finished = new Promise<void>((resolve) => { allDone = resolve })

  const send = (k: number, due: bigint): void => {
    const sent = process.hrtime.bigint()
    inFlight++
    if (inFlight > maxInFlight) maxInFlight = inFlight
    const finish = (good: boolean, status: string): void => {
      const end = process.hrtime.bigint()
      inFlight--
      done++
      if (k >= warmSlots) {
        statusCodes[status] = (statusCodes[status] ?? 0) + 1
        if (good) {
          ok++
          latency[nLat] = Number(end - due) / 1000
          service[nLat] = Number(end - sent) / 1000
          lag[nLat] = Number(sent - due) / 1000
          nLat++
        } else {
          errors++
        }
      }
      if (done === slots) allDone()
    }
    pool.request(reqOpts).then(
      async ({ statusCode, body }) => {
        await body.arrayBuffer()
        finish(statusCode >= 200 && statusCode < 300, String(statusCode))
      },
      (err: Error) => {
        if (errorSamples.length < 5) errorSamples.push(err.message)
        finish(false, 'error')
      },
    )
  }

  const worker = new Worker(TICKER, { eval: true, workerData: { t0, intervalNs, count: slots, spinNs: BigInt((o.spinUs ?? 60) * 1000) } })
  worker.on('message', () => {
    const now = process.hrtime.bigint()
    while (next < slots) {
      const due = intended(next)
      if (due > now) break
      send(next, due)
      next++
    }
  })
  const workerExit = new Promise<void>((resolve) => worker.once('exit', () => resolve()))
  await workerExit
  // the last tick may have been processed before the exit event; send anything left
  while (next < slots) { send(next, intended(next)); next++ }

  let drained = false
  await Promise.race([finished.then(() => { drained = true }), new Promise<void>((r) => setTimeout(r, drainMs).unref())])
  const unfinished = drained ? 0 : slots - done
  await pool.destroy()

  const firstNs = intended(warmSlots)
  const lastNs = intended(slots - 1)
  const spanMs = Number(lastNs - firstNs) / 1e6 + 1000 / rate
  return {
    targetRate: rate,
    achievedRate: Math.round((ok / spanMs) * 1000 * 10) / 10,
    durationMs: Math.round(spanMs),
    scheduled: recorded,
    ok,
    errors,
    unfinished: Math.min(unfinished, recorded),
    statusCodes,
    errorSamples,
    latencyUs: percentiles(latency.subarray(0, nLat)),
    serviceUs: percentiles(service.subarray(0, nLat)),
    lagUs: percentiles(lag.subarray(0, nLat)),
    maxInFlight,
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const opts = JSON.parse(process.argv[2] ?? process.env['BENCH_PACED'] ?? '{}') as PacedOptions
  if (typeof opts.origin !== 'string' || typeof opts.path !== 'string') {
    process.stderr.write('usage: paced.ts \'{"origin":"http://127.0.0.1:PORT","path":"/v1/...","rate":1000,"durationMs":5000}\'\n')
    process.exit(2)
  }
  const hardLimit = (opts.warmupMs ?? 1000) + (opts.durationMs ?? 5000) + (opts.drainMs ?? 5000) + 10_000
  setTimeout(() => { process.stderr.write('paced: hard time limit reached\n'); process.exit(3) }, hardLimit).unref()
  const result = await runPaced(opts)
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exit(0)
}
