/**
 * Two builds of the gateway, side by side: the same config, the same mocks, both loaded at the same time at a fixed
 * rate (autocannon `overallRate`, below saturation), CPU per request of each from /proc, new processes every trial.
 * It answers "did this change cost the request path anything?", which same-run ratios against a baseline cannot: on a
 * shared machine a gateway's CPU per request moves by tens of per cent from one run to the next, and both sides of a
 * ratio move with it. Loaded at once, the two builds see the same machine.
 *
 *   node --experimental-strip-types bench/ab.ts <old checkout> <new checkout> [metered|stream|pt-stream|core] [trials] [rate] [seconds]
 *
 * A checkout is a directory holding the gateway (a `git worktree add /tmp/old <rev>`, with node_modules linked). Prints
 * each trial's CPU per request and new ÷ old, then the median, the mean and its standard error. Traffic goes to
 * 127.0.0.1 only; every process started is ended by its PID, on exit and on failure.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startChild, whenReady } from './children.ts'
import { cpuMicros } from './proc.ts'

interface Result { requests: { total: number }; non2xx: number; errors: number }
type Autocannon = (opts: Record<string, unknown>, cb: (err: Error | null, res: Result) => void) => { stop(): void }
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const [oldDir, newDir, scenario = 'metered', trialsArg = '12', rateArg = '1500', secondsArg = '8'] = process.argv.slice(2)
if (oldDir === undefined || newDir === undefined || !['metered', 'stream', 'pt-stream', 'core'].includes(scenario)) {
  console.error('usage: bench/ab.ts <old checkout> <new checkout> [metered|stream|pt-stream|core] [trials] [rate] [seconds]')
  process.exit(2)
}
const TRIALS = Number(trialsArg)
const RATE = Number(rateArg)
const SECONDS = Number(secondsArg)
const KEY = 'bench-ab-admin-key-0000000000000000'
const TS = ['--experimental-strip-types', '--disable-warning=ExperimentalWarning']
const GATEWAY_FLAGS = ['--max-semi-space-size=8', '--heap-growing-percent=20', ...TS]
const BUILDS = [['old', oldDir], ['new', newDir]] as const

function load(url: string, body: string, seconds: number): Promise<Result> {
  return new Promise((resolve, reject) => {
    const inst = autocannon({
      url, method: 'POST', connections: 20, overallRate: RATE, duration: seconds, timeout: 10, body,
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    }, (e, r) => { clearTimeout(guard); if (e !== null) reject(e); else resolve(r) })
    const guard = setTimeout(() => inst.stop(), (seconds + 20) * 1000)
  })
}

function config(mockPort: number, anthropicPort: number): Record<string, unknown> {
  const providers = {
    mock: { type: 'openai', baseUrl: `http://127.0.0.1:${mockPort}/v1`, apiKey: 'sk-bench' },
    claude: { type: 'anthropic', baseUrl: `http://127.0.0.1:${anthropicPort}`, apiKey: 'sk-ant-bench' },
  }
  if (scenario === 'metered') {
    return {
      reload: { watch: false }, providers,
      chains: { default: ['request-id', 'auth', 'budget', 'cost-meter', 'access-log'] },
      plugins: { budget: { backend: 'local', budgets: [{ name: 'team', scope: 'global', period: 'month', amountUsd: 1e6 }] } },
    }
  }
  return { reload: { watch: false }, providers, chains: { default: ['request-id', 'auth', 'access-log'] } }
}

const MESSAGES = [{ role: 'user', content: 'Say hello to the benchmark.' }]
// stream: OpenAI in, the Anthropic mock upstream (translated); pt-stream: OpenAI in, the OpenAI mock (as sent).
const BODY = scenario === 'stream'
  ? JSON.stringify({ model: 'claude/claude-sonnet-4-5', messages: MESSAGES, stream: true })
  : scenario === 'pt-stream'
    ? JSON.stringify({ model: 'mock/gpt-4o', messages: MESSAGES, stream: true })
    : JSON.stringify({ model: 'mock/gpt-4o', messages: MESSAGES })

// Below the ephemeral range, so a port is not taken by a connection's local end.
let nextPort = 21000 + Math.floor(Math.random() * 200) * 20
const ratios: number[] = []
for (let t = 1; t <= TRIALS; t++) {
  const base = (nextPort += 20)
  const mock = startChild(process.execPath, [...TS, 'test/helpers/openai-mock.ts'], ROOT, { MOCK_PORT: String(base), MOCK_RECORD: '0' })
  const anthropic = startChild(process.execPath, [...TS, 'bench/anthropic-mock-server.ts'], ROOT, { MOCK_PORT: String(base + 1) })
  const cfg = JSON.stringify(config(base, base + 1))
  // Started in alternating order: neither build is always the first to warm up.
  const order = t % 2 === 0 ? [...BUILDS].reverse() : [...BUILDS]
  const gateways = new Map<string, { proc: ChildProcess; port: number }>()
  for (const [i, [name, dir]] of order.entries()) {
    const port = base + 2 + i * 2
    gateways.set(name, {
      port,
      proc: startChild(process.execPath, [...GATEWAY_FLAGS, 'main.ts'], dir, {
        MCP_PORT: String(port), MCP_ADMIN_PORT: String(port + 1), MCP_ADMIN_KEY: KEY, MCP_LOG_LEVEL: 'info',
        MCP_DATA_DIR: mkdtempSync(join(tmpdir(), 'mcp-ab-')), NODE_CONFIG: cfg,
      }),
    })
  }
  await whenReady(`http://127.0.0.1:${base}/v1/models`, { authorization: 'Bearer x' })
  await whenReady(`http://127.0.0.1:${base + 1}/v1/models`, { 'x-api-key': 'x', 'anthropic-version': '2023-06-01' })
  for (const g of gateways.values()) await whenReady(`http://127.0.0.1:${g.port + 1}/readyz`)
  const url = (name: string): string => `http://127.0.0.1:${gateways.get(name)!.port}/v1/chat/completions`
  // Warm-up (V8 compiles the request path for its first tens of thousands of requests), then the measured run.
  await Promise.all(BUILDS.map(([name]) => load(url(name), BODY, 4)))
  const before = BUILDS.map(([name]) => cpuMicros(gateways.get(name)!.proc.pid!))
  const results = await Promise.all(BUILDS.map(([name]) => load(url(name), BODY, SECONDS)))
  const after = BUILDS.map(([name]) => cpuMicros(gateways.get(name)!.proc.pid!))
  const per = BUILDS.map((_, i) => ({ us: (after[i]! - before[i]!) / results[i]!.requests.total, n: results[i]!.requests.total, bad: results[i]!.non2xx + results[i]!.errors }))
  const ratio = per[1]!.us / per[0]!.us
  ratios.push(ratio)
  console.log(`trial ${t}: old ${per[0]!.us.toFixed(1)} µs/req (${per[0]!.n} requests, ${per[0]!.bad} failed), new ${per[1]!.us.toFixed(1)} µs/req (${per[1]!.n}, ${per[1]!.bad} failed), new/old ${ratio.toFixed(3)}`)
  for (const c of [...gateways.values()].map((g) => g.proc).concat([mock, anthropic])) if (c.pid !== undefined) process.kill(c.pid, 'SIGTERM')
  await new Promise((r) => setTimeout(r, 1500))
}
const sorted = [...ratios].sort((a, b) => a - b)
const mean = ratios.reduce((a, b) => a + b, 0) / ratios.length
const se = ratios.length > 1 ? Math.sqrt(ratios.reduce((a, b) => a + (b - mean) ** 2, 0) / (ratios.length - 1) / ratios.length) : NaN
console.log(`${scenario}: new/old median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(3)}, mean ${mean.toFixed(3)} ± ${se.toFixed(3)} (standard error), ${ratios.length} trials, ${sorted[0]!.toFixed(3)} to ${sorted.at(-1)!.toFixed(3)}`)
