/**
 * Execution logging on and off, same run, interleaved rounds (a script, not a test):
 *   node --experimental-strip-types test/durability/bench-logging.ts
 * Every variant runs gateway-entry.ts with the chain [request-id, auth, execution-log] against PostgreSQL
 * (MCP_TEST_DATABASE_URL) and the mock in its own process; autocannon runs here. Variants (BENCH_VARIANTS, default
 * off,on): off = MCP_EXECUTION_LOG=off (no writer, the plugin is a no-op); discard = rows built then thrown away
 * (the plugin's own cost); on = rows written to PostgreSQL. Reports req/s, gateway CPU per request and PostgreSQL
 * CPU per request (all postgres processes on this machine).
 * Knobs: BENCH_RATE (0 = saturation; else a fixed offered rate, where CPU per request is the figure), BENCH_ROUNDS
 * (3), BENCH_DURATION (8 s), BENCH_CONNECTIONS (50), BENCH_TOKENS (12) and BENCH_PROMPT_CHARS (50) for the size of
 * answer and prompt, BENCH_CHAIN=access-log to add the access log (info) to the chain.
 */
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../helpers/gateway-process.ts'
import { dropSchemas, freshSchema, querySchema } from './pg.ts'
import { ADMIN_KEY, spawnEntry, type EntryProcess } from './process.ts'

interface AcResult { requests: { average: number }; latency: { p50: number; p99: number }; non2xx: number; errors: number }
const autocannon = createRequire(import.meta.url)('autocannon') as (o: Record<string, unknown>) => Promise<AcResult>

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3)
const DURATION = Number(process.env['BENCH_DURATION'] ?? 8)
const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? 50)
/** BENCH_RATE > 0: a fixed offered rate (req/s) instead of saturation; compare gateway CPU per request. */
const RATE = Number(process.env['BENCH_RATE'] ?? 0)
/** Answer length (mock tokens) and prompt size: the defaults are tiny; 200 / 2000 is closer to a real chat turn. */
const TOKENS = Number(process.env['BENCH_TOKENS'] ?? 12)
const PROMPT_CHARS = Number(process.env['BENCH_PROMPT_CHARS'] ?? 50)

const mockPort = await freePort()
const mockProc = spawn(process.execPath, ['--experimental-strip-types', '--disable-warning=ExperimentalWarning', 'test/helpers/openai-mock.ts'], {
  env: { ...process.env, MOCK_PORT: String(mockPort) }, stdio: ['ignore', 'pipe', 'inherit'],
})
await new Promise<void>((resolve) => mockProc.stdout!.once('data', () => resolve()))
const mockUrl = `http://127.0.0.1:${mockPort}/v1`

const dataDir = await mkdtemp(join(tmpdir(), 'mcp-bench-logging-'))
const { schema, url } = await freshSchema('bench')
/** BENCH_CHAIN=access-log adds the access log (info, one JSON line per request to stdout), as in the default chain. */
const withAccessLog = process.env['BENCH_CHAIN'] === 'access-log'
const local = {
  chains: { default: withAccessLog ? ['request-id', 'auth', 'access-log', 'execution-log'] : ['request-id', 'auth', 'execution-log'] },
  providers: { mock: { type: 'openai', baseUrl: mockUrl, apiKey: 'sk-bench', headers: { 'x-mock-tokens': String(TOKENS) } } },
}
const logEnv = withAccessLog ? { MCP_LOG_LEVEL: 'info' } : {}
/** CPU seconds of every postgres process (the shared server on this machine), from /proc. */
function postgresCpuSeconds(): number {
  let total = 0
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() !== 'postgres') continue
      total += cpuSeconds(Number(d))
    } catch { /* gone */ }
  }
  return total
}

type Variant = 'off' | 'discard' | 'on'
/** off: no sink (the plugin is a no-op); discard: rows built, then thrown away; on: rows written to PostgreSQL. */
const VARIANTS = (process.env['BENCH_VARIANTS'] ?? 'off,on').split(',') as Variant[]
const ENV: Record<Variant, Record<string, string>> = {
  off: { MCP_EXECUTION_LOG: 'off' },
  discard: { MCP_EXECUTION_LOG: 'off', DURABILITY_SINK: 'discard' },
  on: {},
}
const procs = {} as Record<Variant, EntryProcess>
for (const v of VARIANTS) procs[v] = await spawnEntry(local, { MCP_DATABASE_URL: url, MCP_DATA_DIR: join(dataDir, v), ...logEnv, ...ENV[v] })
const prompt = 'Say hello to the benchmark, in twelve tokens or so. '
const body = JSON.stringify({ model: 'mock/gpt-4o', messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: prompt.repeat(Math.max(1, Math.round(PROMPT_CHARS / prompt.length))) }] })
const run = (p: EntryProcess, duration: number): Promise<AcResult> => autocannon({
  url: `${p.url}/v1/chat/completions`, method: 'POST', connections: CONNECTIONS, duration, body, ...(RATE > 0 ? { overallRate: RATE } : {}),
  headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
})

/** CPU seconds (user + system) of a process, from /proc. */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

for (const v of VARIANTS) await run(procs[v], 3)
const results = Object.fromEntries(VARIANTS.map((v) => [v, []])) as unknown as Record<Variant, AcResult[]>
const cpuPerRequestUs = Object.fromEntries(VARIANTS.map((v) => [v, []])) as unknown as Record<Variant, number[]>
const pgCpuPerRequestUs = Object.fromEntries(VARIANTS.map((v) => [v, []])) as unknown as Record<Variant, number[]>
for (let r = 0; r < ROUNDS; r++) {
  for (const v of r % 2 === 0 ? VARIANTS : [...VARIANTS].reverse()) {
    const pid = procs[v].proc.pid!
    const c0 = cpuSeconds(pid)
    const pg0 = postgresCpuSeconds()
    const res = await run(procs[v], DURATION)
    const cpuUs = ((cpuSeconds(pid) - c0) * 1e6) / (res.requests.average * DURATION)
    const pgUs = ((postgresCpuSeconds() - pg0) * 1e6) / (res.requests.average * DURATION)
    pgCpuPerRequestUs[v].push(pgUs)
    results[v].push(res)
    cpuPerRequestUs[v].push(cpuUs)
    console.log(JSON.stringify({ round: r, variant: v, rps: Math.round(res.requests.average), p50: res.latency.p50, p99: res.latency.p99, gatewayCpuUsPerRequest: Math.round(cpuUs), postgresCpuUsPerRequest: Math.round(pgUs), non2xx: res.non2xx, errors: res.errors }))
  }
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const summary: Record<string, unknown> = {}
const off = VARIANTS.includes('off') ? median(results.off.map((x) => x.requests.average)) : NaN
const cpuOff = VARIANTS.includes('off') ? median(cpuPerRequestUs.off) : NaN
for (const v of VARIANTS) {
  const rps = median(results[v].map((x) => x.requests.average))
  const cpu = median(cpuPerRequestUs[v])
  summary[v] = { medianRps: Math.round(rps), medianGatewayCpuUsPerRequest: Math.round(cpu), medianPostgresCpuUsPerRequest: Math.round(median(pgCpuPerRequestUs[v])), throughputCostPercent: +((1 - rps / off) * 100).toFixed(1), cpuCostPercent: +((cpu / cpuOff - 1) * 100).toFixed(1) }
}
if (procs.on) {
  procs.on.proc.kill('SIGTERM')
  await procs.on.exited
  summary['rowsWritten'] = (await querySchema<{ n: number }>(schema, 'SELECT count(*)::int AS n FROM execution_logs'))[0]!.n
}
console.log(JSON.stringify(summary))
for (const p of Object.values(procs)) await p.stop()
mockProc.kill('SIGTERM')
await dropSchemas()
await rm(dataDir, { recursive: true, force: true })
