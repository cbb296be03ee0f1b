/**
 * `npm run bench`: starts the OpenAI mock, the bare reference proxy and the gateway variants (each
 * its own process on its own port), warms them up, then measures every selected scenario
 * interleaved, for BENCH_ROUNDS rounds (order rotated each round):
 *   - saturation: autocannon, BENCH_CONNECTIONS (50) connections for BENCH_DURATION s
 *   - latency at a fixed BENCH_RATE req/s: bench/paced.ts (open loop, µs) in its own process
 * and per run the CPU time (/proc/<pid>/stat) and peak RSS (/proc/<pid>/status) of every
 * server process. Prints a table of medians across rounds plus the ratios that matter, and
 * writes everything to bench/results/<timestamp>.json. See bench/README.md.
 *
 * Only ratios within ONE run mean anything: the machine is shared and noisy.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createWriteStream, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import type { PacedResult } from './paced.ts'
import { parentPid, ProcSampler, rssBytes, treeCpuMicros } from './proc.ts'
import type { ProcUsage } from './proc.ts'
import { formatProfile, summarizeProfile } from './profile.ts'
import { median, mergeSlices, type SliceRun } from './slices.ts'
import type { ProfileSummary } from './profile.ts'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const BENCH = join(ROOT, 'bench')
const NODE_TS = ['--experimental-strip-types', '--disable-warning=ExperimentalWarning']

// ---------------------------------------------------------------------------------------------
// Knobs
// ---------------------------------------------------------------------------------------------

function envNum(name: string, def: number): number {
  const v = process.env[name]
  if (v === undefined || v === '') return def
  const n = Number(v)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${v}`)
  return n
}

/** The V8 flags `npm start` runs the gateway with (package.json `scripts.start`), so the bench measures what ships. */
function startFlags(): string[] {
  const pkg = createRequire(import.meta.url)('../package.json') as { scripts: { start: string } }
  return pkg.scripts.start.split(/\s+/).filter((a) => a.startsWith('--') && !NODE_TS.includes(a))
}

const KNOBS = {
  rounds: Math.round(envNum('BENCH_ROUNDS', 3)),
  durationS: envNum('BENCH_DURATION', 5),
  rate: envNum('BENCH_RATE', 1000),
  connections: Math.round(envNum('BENCH_CONNECTIONS', 50)),
  pacedConnections: Math.round(envNum('BENCH_PACED_CONNECTIONS', 50)),
  warmupS: envNum('BENCH_WARMUP', 3),
  pauseMs: envNum('BENCH_PAUSE_MS', 500),
  logLevel: process.env['BENCH_LOG_LEVEL'] ?? 'info',
  scenarios: (process.env['BENCH_SCENARIOS'] ?? '').split(',').map((s) => s.trim()).filter(Boolean),
  /** '' = off; '1' = gw-default; or a comma list of server names */
  profile: process.env['BENCH_PROFILE'] === '0' ? '' : (process.env['BENCH_PROFILE'] ?? ''),
  resultsDir: process.env['BENCH_OUT'] ?? join(BENCH, 'results'),
  /** MCP_DATABASE_URL for the gateways (default: none, i.e. the gateway's embedded store under a temp MCP_DATA_DIR) */
  databaseUrl: process.env['BENCH_DATABASE_URL'] ?? '',
  /** node flags of the gateway processes: those of `npm start` (package.json), unless BENCH_GATEWAY_NODE_FLAGS is set */
  gatewayNodeFlags: process.env['BENCH_GATEWAY_NODE_FLAGS'] !== undefined ? process.env['BENCH_GATEWAY_NODE_FLAGS'].split(' ').filter(Boolean) : startFlags(),
  /**
   * 1 = new processes every round, mocks included (then each warmed up again): one process of a configuration can
   * run several percent faster or slower than another of the same (heap layout, JIT timing), for its whole life, so
   * ratios between two processes carry that luck unless the processes change between rounds.
   */
  restart: process.env['BENCH_RESTART'] === '1',
  /**
   * n > 1: each round's saturation runs are cut in n slices of BENCH_DURATION / n seconds, the scenarios taking
   * turns slice by slice, and each scenario's slices summed (requests, CPU) into its run for the round. A shared
   * machine's speed drifts within seconds; scenarios measured in alternating slices see the same drift.
   */
  slices: Math.max(1, Math.round(envNum('BENCH_SLICES', 1))),
}

// ---------------------------------------------------------------------------------------------
// Server processes and scenarios: extend these two tables to add scenarios.
// ---------------------------------------------------------------------------------------------

export interface Ctx {
  /** data port per server name */
  ports: Record<string, number>
  /** admin port per gateway server name */
  adminPorts: Record<string, number>
  adminKey: string
  tmp: string
  mockOrigin: string
}

export interface ServerDef {
  name: string
  /** the script to run (relative to the repo root) */
  script: string
  /** extra node flags */
  nodeFlags?: string[]
  env(ctx: Ctx): Record<string, string>
  /** URL that answers 200 when the server is ready */
  ready(ctx: Ctx): { url: string; headers?: Record<string, string> }
  /** gets an admin port too */
  admin?: boolean
  /** may run under --cpu-prof (BENCH_PROFILE) */
  profileable?: boolean
  /** after it is ready (every start, restarts included): state its scenarios need, e.g. a deployment to execute */
  setup?(ctx: Ctx): Promise<void>
}

export interface RequestDef { path: string; method: 'POST' | 'GET'; headers: Record<string, string>; body?: string }

export interface ScenarioDef {
  name: string
  label: string
  /** the server the client talks to */
  server: string
  /** servers whose CPU/RSS are reported for this scenario (the serving one first) */
  procs: string[]
  request(ctx: Ctx): RequestDef
  saturation: boolean
  paced: boolean
}

const MESSAGES = [{ role: 'user', content: 'Say hello to the benchmark.' }]

function chatBody(model: string, stream = false): string {
  return JSON.stringify(stream ? { model, messages: MESSAGES, stream: true } : { model, messages: MESSAGES })
}

function json(ctx: Ctx): Record<string, string> {
  return { authorization: `Bearer ${ctx.adminKey}`, 'content-type': 'application/json' }
}

/** A gateway process with a NODE_CONFIG override merged over config/default.yaml. */
export function gatewayServer(name: string, override: (ctx: Ctx) => Record<string, unknown>): ServerDef {
  return {
    name,
    script: 'main.ts',
    nodeFlags: KNOBS.gatewayNodeFlags,
    admin: true,
    profileable: true,
    env: (ctx) => ({
      MCP_PORT: String(ctx.ports[name]),
      MCP_ADMIN_PORT: String(ctx.adminPorts[name]),
      MCP_ADMIN_KEY: ctx.adminKey,
      MCP_LOG_LEVEL: KNOBS.logLevel,
      MCP_DATA_DIR: join(ctx.tmp, `${name}-data`),
      ...(KNOBS.databaseUrl !== '' ? { MCP_DATABASE_URL: KNOBS.databaseUrl } : {}),
      NODE_CONFIG: JSON.stringify({
        reload: { watch: false },
        providers: { mock: { type: 'openai', baseUrl: `${ctx.mockOrigin}/v1`, apiKey: 'sk-bench' } },
        ...override(ctx),
      }),
    }),
    ready: (ctx) => ({ url: `http://127.0.0.1:${ctx.adminPorts[name]}/readyz` }),
  }
}

/** An admin API call of a bench gateway; its status and JSON body. */
async function adminCall(ctx: Ctx, name: string, method: 'POST' | 'GET', path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await request(`http://127.0.0.1:${ctx.adminPorts[name]}/api/v1/mcp/${path}`, {
    method, headers: { authorization: `Bearer ${ctx.adminKey}`, 'content-type': 'application/json' },
    body: body === undefined ? null : JSON.stringify(body), headersTimeout: 10_000, bodyTimeout: 10_000,
  })
  const text = await res.body.text()
  return { status: res.statusCode, json: text === '' ? {} : JSON.parse(text) as Record<string, unknown> }
}

/** The prompt a gateway's execute scenario runs: one per gateway and run (a shared database keeps it across restarts). */
const execPrompt = (ctx: Ctx, name: string): string => `bench-${basename(ctx.tmp)}-${name}`

/**
 * Issue 5's route: `POST /api/v1/mcp/execute` of a deployed prompt, with execution logging on (the route's default
 * chain, `recorded`) or off (the same chain without `execution-log`). The prompt, its version and its production
 * deployment are created once per run through the admin API.
 */
function execGateway(name: string, logged: boolean): ServerDef {
  return {
    ...gatewayServer(name, () => (logged ? {} : { routes: { execute: { chain: 'default' } } })),
    async setup(ctx) {
      const p = await adminCall(ctx, name, 'POST', 'prompts', { name: execPrompt(ctx, name) })
      if (p.status === 409) return // created at an earlier start of this run (restarts keep the database)
      if (p.status !== 201) throw new Error(`${name}: creating the bench prompt: HTTP ${p.status} ${JSON.stringify(p.json)}`)
      const id = String(p.json['id'])
      const v = await adminCall(ctx, name, 'POST', `prompts/${id}/versions`, { template: [{ role: 'user', content: 'Say hello to {{ who }}.' }], model: 'mock/gpt-4o' })
      if (v.status !== 201) throw new Error(`${name}: creating the bench prompt's version: HTTP ${v.status} ${JSON.stringify(v.json)}`)
      const d = await adminCall(ctx, name, 'POST', 'deployments', { prompt_id: id, environment: 'production', version: 1 })
      if (d.status !== 201) throw new Error(`${name}: deploying the bench prompt: HTTP ${d.status} ${JSON.stringify(d.json)}`)
    },
  }
}

export const SERVERS: ServerDef[] = [
  {
    name: 'mock',
    script: 'test/helpers/openai-mock.ts',
    env: (ctx) => ({ MOCK_PORT: String(ctx.ports['mock']), MOCK_RECORD: '0' }),
    ready: (ctx) => ({ url: `${ctx.mockOrigin}/v1/models`, headers: { authorization: 'Bearer x' } }),
  },
  {
    name: 'bare',
    script: 'bench/bare-proxy.ts',
    profileable: true,
    env: (ctx) => ({ BARE_PORT: String(ctx.ports['bare']), UPSTREAM: ctx.mockOrigin }),
    ready: (ctx) => ({ url: `http://127.0.0.1:${ctx.ports['bare']}/v1/models`, headers: { authorization: 'Bearer x' } }),
  },
  {
    name: 'anthropic-mock',
    script: 'bench/anthropic-mock-server.ts',
    env: (ctx) => ({ MOCK_PORT: String(ctx.ports['anthropic-mock']) }),
    ready: (ctx) => ({ url: `http://127.0.0.1:${ctx.ports['anthropic-mock']}/v1/models`, headers: { 'x-api-key': 'x', 'anthropic-version': '2023-06-01' } }),
  },
  gatewayServer('gw-noplugins', () => ({ chains: { default: [] } })),
  gatewayServer('gw-default', () => ({})),
  // Issue 2's chain: request ids, auth, access log.
  gatewayServer('gw-core', () => ({ chains: { default: ['request-id', 'auth', 'access-log'] } })),
  // Issue 3: the same chain, OpenAI in, an Anthropic upstream (translated both ways).
  gatewayServer('gw-translate', (ctx) => ({
    chains: { default: ['request-id', 'auth', 'access-log'] },
    // The OpenAI mock too: this gateway also serves issue 3's same-process pass-through baselines.
    providers: {
      mock: { type: 'openai', baseUrl: `${ctx.mockOrigin}/v1`, apiKey: 'sk-bench' },
      claude: { type: 'anthropic', baseUrl: `http://127.0.0.1:${ctx.ports['anthropic-mock']}`, apiKey: 'sk-ant-bench' },
      // The same upstream with /v1/messages translated there and back (the `claude` provider sends it as it came).
      claudet: { type: 'anthropic', baseUrl: `http://127.0.0.1:${ctx.ports['anthropic-mock']}`, apiKey: 'sk-ant-bench', nativeMessages: false },
    },
  })),
  // Issue 4: an alias of one target against one of five, health tracking on (all point at the mock).
  gatewayServer('gw-alias', (ctx) => ({
    chains: { default: ['request-id', 'auth', 'access-log'] },
    providers: Object.fromEntries(['m1', 'm2', 'm3', 'm4', 'm5'].map((n) => [n, { type: 'openai', baseUrl: `${ctx.mockOrigin}/v1`, apiKey: 'sk-bench' }])),
    routing: { health: { enabled: true, intervalMs: 5000 } },
    models: {
      one: { targets: [{ provider: 'm1', model: 'gpt-4o' }] },
      five: { strategy: 'least-outstanding', targets: ['m1', 'm2', 'm3', 'm4', 'm5'].map((p) => ({ provider: p, model: 'gpt-4o' })) },
    },
  })),
  // Issue 6: auth alone, auth + in-process rate limits, auth + Redis rate limits (nothing is refused).
  gatewayServer('gw-auth', () => ({ chains: { default: ['auth'] } })),
  gatewayServer('gw-rl-local', () => ({
    chains: { default: ['auth', 'rate-limit'] },
    plugins: { 'rate-limit': { backend: 'local', limits: [{ name: 'per-key', scope: 'key', rpm: 1e9, tpm: 1e9 }, { name: 'per-ip', scope: 'ip', rps: 1e9 }] } },
  })),
  gatewayServer('gw-rl-redis', () => ({
    chains: { default: ['auth', 'rate-limit'] },
    redisUrl: process.env['BENCH_REDIS_URL'] ?? 'redis://127.0.0.1:6379',
    plugins: { 'rate-limit': { backend: 'redis', keyPrefix: `mcp:bench:${process.pid}:`, limits: [{ name: 'per-key', scope: 'key', rpm: 1e9, tpm: 1e9 }, { name: 'per-ip', scope: 'ip', rps: 1e9 }] } },
  })),
  // Issues 5 and 7: the core chain plus execution logging, cost metering and a budget that never runs out.
  gatewayServer('gw-logged', () => ({ chains: { default: ['request-id', 'auth', 'execution-log', 'access-log'] } })),
  execGateway('gw-exec', true),
  execGateway('gw-exec-nolog', false),
  gatewayServer('gw-metered', () => ({
    chains: { default: ['request-id', 'auth', 'budget', 'cost-meter', 'access-log'] },
    plugins: { budget: { backend: 'local', budgets: [{ name: 'team', scope: 'global', period: 'month', amountUsd: 1e6 }] } },
  })),
]

const chat = (model: string, stream = false) => (ctx: Ctx): RequestDef =>
  ({ path: '/v1/chat/completions', method: 'POST', headers: json(ctx), body: chatBody(model, stream) })

/** An Anthropic Messages request (`/v1/messages`), as the Anthropic SDK sends it. */
const messages = (model: string, stream = false) => (ctx: Ctx): RequestDef =>
  ({ path: '/v1/messages', method: 'POST', headers: { ...json(ctx), 'anthropic-version': '2023-06-01' }, body: JSON.stringify({ model, max_tokens: 256, messages: MESSAGES, ...(stream ? { stream: true } : {}) }) })

const execute = (server: string) => (ctx: Ctx): RequestDef =>
  ({ path: '/api/v1/mcp/execute', method: 'POST', headers: json(ctx), body: JSON.stringify({ prompt: execPrompt(ctx, server), environment: 'production', variables: { who: 'the benchmark' } }) })

export const SCENARIOS: ScenarioDef[] = [
  { name: 'direct', label: '(a) mock directly', server: 'mock', procs: ['mock'], request: chat('gpt-4o'), saturation: true, paced: true },
  { name: 'bare', label: '(b) bare proxy', server: 'bare', procs: ['bare', 'mock'], request: chat('gpt-4o'), saturation: true, paced: true },
  { name: 'gw-noplugins', label: '(c) gateway, no plugins', server: 'gw-noplugins', procs: ['gw-noplugins', 'mock'], request: chat('mock/gpt-4o'), saturation: true, paced: true },
  { name: 'gw-default', label: '(d) gateway, default chain', server: 'gw-default', procs: ['gw-default', 'mock'], request: chat('mock/gpt-4o'), saturation: true, paced: true },
  { name: 'gw-core', label: '(d2) gateway, issue-2 chain [request-id, auth, access-log]', server: 'gw-core', procs: ['gw-core', 'mock'], request: chat('mock/gpt-4o'), saturation: true, paced: true },
  { name: 'gw-translate', label: '(3) OpenAI in → Anthropic mock (translated)', server: 'gw-translate', procs: ['gw-translate', 'anthropic-mock'], request: chat('claude/claude-sonnet-4-5'), saturation: true, paced: false },
  { name: 'gw-translate-stream', label: '(3) stream: OpenAI in → Anthropic mock (translated)', server: 'gw-translate', procs: ['gw-translate', 'anthropic-mock'], request: chat('claude/claude-sonnet-4-5', true), saturation: true, paced: false },
  { name: 'gw-core-stream', label: '(3) stream: OpenAI in → OpenAI mock (pass-through)', server: 'gw-core', procs: ['gw-core', 'mock'], request: chat('mock/gpt-4o', true), saturation: true, paced: false },
  // Issue 3's pass-through baselines served by the translating gateway itself (same process, same chain): the
  // comparison of translation against pass-through without the difference between two processes.
  { name: 'gw-translate-pt', label: '(3) OpenAI in → OpenAI mock (pass-through), translating gateway', server: 'gw-translate', procs: ['gw-translate', 'mock', 'anthropic-mock'], request: chat('mock/gpt-4o'), saturation: true, paced: false },
  { name: 'gw-translate-pt-stream', label: '(3) stream: OpenAI in → OpenAI mock (pass-through), translating gateway', server: 'gw-translate', procs: ['gw-translate', 'mock', 'anthropic-mock'], request: chat('mock/gpt-4o', true), saturation: true, paced: false },
  // Anthropic in → Anthropic mock: as sent (nativeMessages, the default) against translated there and back.
  { name: 'gw-messages-native-stream', label: '(3) stream: Anthropic in → Anthropic mock, as sent', server: 'gw-translate', procs: ['gw-translate', 'anthropic-mock'], request: messages('claude/claude-sonnet-4-5', true), saturation: true, paced: false },
  { name: 'gw-messages-translated-stream', label: '(3) stream: Anthropic in → Anthropic mock, translated both ways', server: 'gw-translate', procs: ['gw-translate', 'anthropic-mock'], request: messages('claudet/claude-sonnet-4-5', true), saturation: true, paced: false },
  { name: 'gw-alias1', label: '(4) alias with 1 target', server: 'gw-alias', procs: ['gw-alias', 'mock'], request: chat('one'), saturation: false, paced: true },
  { name: 'gw-alias5', label: '(4) alias with 5 targets, health tracking', server: 'gw-alias', procs: ['gw-alias', 'mock'], request: chat('five'), saturation: false, paced: true },
  { name: 'gw-auth', label: '(6) auth only', server: 'gw-auth', procs: ['gw-auth', 'mock'], request: chat('mock/gpt-4o'), saturation: true, paced: false },
  { name: 'gw-rl-local', label: '(6) auth + rate limits in-process', server: 'gw-rl-local', procs: ['gw-rl-local', 'mock'], request: chat('mock/gpt-4o'), saturation: true, paced: false },
  { name: 'gw-rl-redis', label: '(6) auth + rate limits in Redis', server: 'gw-rl-redis', procs: ['gw-rl-redis', 'mock'], request: chat('mock/gpt-4o'), saturation: true, paced: false },
  { name: 'gw-logged', label: '(5) core chain + execution logging', server: 'gw-logged', procs: ['gw-logged', 'mock'], request: chat('mock/gpt-4o'), saturation: true, paced: false },
  { name: 'gw-exec', label: '(5) execute a deployed prompt, execution logging on (the route default)', server: 'gw-exec', procs: ['gw-exec', 'mock'], request: execute('gw-exec'), saturation: true, paced: false },
  { name: 'gw-exec-nolog', label: '(5) execute a deployed prompt, execution logging off', server: 'gw-exec-nolog', procs: ['gw-exec-nolog', 'mock'], request: execute('gw-exec-nolog'), saturation: true, paced: false },
  { name: 'gw-metered', label: '(7) core chain + budget + cost metering', server: 'gw-metered', procs: ['gw-metered', 'mock'], request: chat('mock/gpt-4o'), saturation: true, paced: false },
  { name: 'direct-stream', label: '(e) stream: mock directly', server: 'mock', procs: ['mock'], request: chat('gpt-4o', true), saturation: true, paced: false },
  { name: 'bare-stream', label: '(e) stream: bare proxy', server: 'bare', procs: ['bare', 'mock'], request: chat('gpt-4o', true), saturation: true, paced: false },
  { name: 'gw-default-stream', label: '(e) stream: gateway, default chain', server: 'gw-default', procs: ['gw-default', 'mock'], request: chat('mock/gpt-4o', true), saturation: true, paced: false },
]

/** The figures the acceptance criteria are about: [numerator, denominator] scenario pairs. */
const RATIO_PAIRS: Array<{ num: string; den: string }> = [
  { num: 'gw-default', den: 'bare' },
  { num: 'gw-noplugins', den: 'bare' },
  { num: 'gw-default-stream', den: 'bare-stream' },
  { num: 'gw-core', den: 'bare' },
  { num: 'gw-translate', den: 'gw-core' },
  { num: 'gw-messages-native-stream', den: 'gw-messages-translated-stream' },
  { num: 'gw-translate-stream', den: 'gw-core-stream' },
  { num: 'gw-translate', den: 'gw-translate-pt' },
  { num: 'gw-translate-stream', den: 'gw-translate-pt-stream' },
  { num: 'gw-rl-local', den: 'gw-noplugins' },
  { num: 'gw-rl-redis', den: 'gw-noplugins' },
  { num: 'gw-auth', den: 'gw-noplugins' },
  { num: 'gw-logged', den: 'gw-core' },
  { num: 'gw-exec', den: 'gw-exec-nolog' },
  { num: 'gw-metered', den: 'gw-core' },
]
const BASELINE = 'direct'
const LIMITS = { cpuRatio: 1.5, rpsRatio: 0.7, addedP50Ms: 0.6, addedP99Ms: 3, rssMB: 200 }
const ACCEPTANCE_SUBJECT = 'gw-default'
const ACCEPTANCE_REFERENCE = 'bare'

// ---------------------------------------------------------------------------------------------
// Process management
// ---------------------------------------------------------------------------------------------

interface Running { def: ServerDef; child: ChildProcess; pid: number; exited: Promise<void>; profileDir?: string }

const running: Running[] = []
const helpers = new Set<ChildProcess>()

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer()
    s.once('error', rej)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => res(port))
    })
  })
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

function startServer(def: ServerDef, ctx: Ctx, profileDir: string | undefined, stamp: string): Running {
  const args = [...NODE_TS, ...(def.nodeFlags ?? [])]
  if (profileDir !== undefined) args.push('--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', `${def.name}-${stamp}.cpuprofile`)
  args.push(def.script)
  const errFile = join(ctx.tmp, `${def.name}.stderr`)
  // stdout (the access log: one line per request) goes to /dev/null, never to a pipe that can fill up
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...def.env(ctx) },
    stdio: ['ignore', openSync('/dev/null', 'w'), openSync(errFile, 'w')],
  })
  if (child.pid === undefined) throw new Error(`could not start ${def.name}`)
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  const r: Running = { def, child, pid: child.pid, exited }
  if (profileDir !== undefined) r.profileDir = profileDir
  running.push(r)
  return r
}

async function waitReady(r: Running, ctx: Ctx, timeoutMs = 30_000): Promise<void> {
  await untilReady(r, ctx, timeoutMs)
  await r.def.setup?.(ctx)
}

async function untilReady(r: Running, ctx: Ctx, timeoutMs: number): Promise<void> {
  const { url, headers } = r.def.ready(ctx)
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (Date.now() < deadline) {
    if (r.child.exitCode !== null) throw new Error(`${r.def.name} exited with code ${r.child.exitCode} (stderr: ${join(ctx.tmp, `${r.def.name}.stderr`)})`)
    try {
      const res = await request(url, { headers: headers ?? {}, headersTimeout: 2000, bodyTimeout: 2000 })
      await res.body.dump()
      if (res.statusCode === 200) return
      last = `HTTP ${res.statusCode}`
    } catch (e) {
      last = (e as Error).message
    }
    await sleep(100)
  }
  throw new Error(`${r.def.name} not ready after ${timeoutMs} ms (${last})`)
}

async function stopAll(): Promise<void> {
  for (const h of helpers) { try { if (h.pid !== undefined && h.exitCode === null) process.kill(h.pid, 'SIGKILL') } catch { /* gone */ } }
  // SIGTERM lets --cpu-prof write its profile; SIGKILL whatever is still alive after 15 s
  for (const r of running) { try { if (r.child.exitCode === null) process.kill(r.pid, 'SIGTERM') } catch { /* gone */ } }
  await Promise.race([Promise.all(running.map((r) => r.exited)), sleep(15_000)])
  for (const r of running) { try { if (r.child.exitCode === null && r.child.signalCode === null) process.kill(r.pid, 'SIGKILL') } catch { /* gone */ } }
}

/** Stops the gateway processes (never the mocks) and starts new ones on the same ports (BENCH_RESTART). */
/**
 * Stops every server process (mocks and the bare proxy too) and starts new ones on the same ports (BENCH_RESTART):
 * the mocks first, as at the start. A mock's speed for its life moves the gateway's cost per request with it (a
 * slower upstream, less work per event-loop turn), so a mock kept for the whole run biased every round alike.
 */
async function restartServers(ctx: Ctx, profileDir: string, profiled: ReadonlySet<string>, stamp: string, round: number): Promise<void> {
  const old = [...running]
  for (const r of old) { try { if (r.child.exitCode === null) process.kill(r.pid, 'SIGTERM') } catch { /* gone */ } }
  await Promise.race([Promise.all(old.map((r) => r.exited)), sleep(15_000)])
  for (const r of old) {
    try { if (r.child.exitCode === null && r.child.signalCode === null) process.kill(r.pid, 'SIGKILL') } catch { /* gone */ }
    running.splice(running.indexOf(r), 1)
  }
  await Promise.all(old.map((r) => r.exited))
  const start = (r: Running): Running => startServer(r.def, ctx, r.def.profileable === true && profiled.has(r.def.name) ? profileDir : undefined, `${stamp}-round${round + 1}`)
  // The OpenAI mock (everything may proxy to it), then the other servers without an admin API, then the gateways.
  for (const group of [old.filter((r) => r.def.name === 'mock'), old.filter((r) => r.def.name !== 'mock' && r.def.admin !== true), old.filter((r) => r.def.admin === true)]) {
    await Promise.all(group.map(start).map((r) => waitReady(r, ctx)))
  }
}

let stopping: Promise<void> | undefined
function shutdown(code: number): void {
  stopping ??= stopAll()
  void stopping.finally(() => process.exit(code))
}
process.on('SIGINT', () => { process.stderr.write('\nbench: interrupted, stopping child processes\n'); shutdown(130) })
process.on('SIGTERM', () => shutdown(143))
process.on('exit', () => {
  for (const r of running) { try { if (r.child.exitCode === null && r.child.signalCode === null) process.kill(r.pid, 'SIGKILL') } catch { /* gone */ } }
  for (const h of helpers) { try { if (h.pid !== undefined && h.exitCode === null) process.kill(h.pid, 'SIGKILL') } catch { /* gone */ } }
})

// ---------------------------------------------------------------------------------------------
// Load: autocannon (saturation) and paced.ts (fixed rate)
// ---------------------------------------------------------------------------------------------

interface AutocannonResult {
  duration: number
  errors: number
  timeouts: number
  non2xx: number
  '2xx': number
  latency: { p50: number; p99: number; p99_9: number; average: number; max: number }
  requests: { total: number; average: number }
  statusCodeStats?: Record<string, { count: number }>
}
interface AutocannonInstance { stop(): void }
type Autocannon = (opts: Record<string, unknown>, cb: (err: Error | null, res: AutocannonResult) => void) => AutocannonInstance
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon

function saturate(origin: string, req: RequestDef, durationS: number, connections: number): Promise<AutocannonResult> {
  return new Promise((res, rej) => {
    const opts: Record<string, unknown> = { url: `${origin}${req.path}`, method: req.method, headers: req.headers, connections, pipelining: 1, duration: durationS, timeout: 10 }
    if (req.body !== undefined) opts['body'] = req.body
    const inst = autocannon(opts, (err, result) => { clearTimeout(guard); if (err !== null) rej(err); else res(result) })
    const guard = setTimeout(() => inst.stop(), (durationS + 20) * 1000)
  })
}

function paced(origin: string, req: RequestDef, durationMs: number): Promise<PacedResult> {
  const opts = { origin, path: req.path, method: req.method, headers: req.headers, body: req.body, rate: KNOBS.rate, durationMs, warmupMs: 1000, connections: KNOBS.pacedConnections, drainMs: 5000 }
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [...NODE_TS, join(BENCH, 'paced.ts'), JSON.stringify(opts)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
    helpers.add(child)
    let out = ''
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d })
    const guard = setTimeout(() => { if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL') }, durationMs + 30_000)
    child.once('exit', (code) => {
      clearTimeout(guard)
      helpers.delete(child)
      if (code !== 0) { rej(new Error(`paced.ts exited with ${code}`)); return }
      try { res(JSON.parse(out) as PacedResult) } catch (e) { rej(e as Error) }
    })
  })
}

// ---------------------------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------------------------

interface Usage {
  cpuUsPerReq: Record<string, number>
  rssPeakMB: Record<string, number>
  /** read-/write-family system calls per request (/proc/<pid>/io) */
  readsPerReq: Record<string, number>
  writesPerReq: Record<string, number>
}

/** One saturation run (bench/slices.ts declares its fields, as slices merge them). */
type SatRun = SliceRun
interface PacedRun extends Usage {
  round: number
  achievedRate: number
  ok: number
  errors: number
  statusCodes: Record<string, number>
  latencyUs: PacedResult['latencyUs']
  serviceUs: PacedResult['serviceUs']
  lagUs: PacedResult['lagUs']
  maxInFlight: number
}

function usageOf(u: Record<string, ProcUsage>, procs: string[], requests: number): Usage {
  const cpuUsPerReq: Record<string, number> = {}
  const rssPeakMB: Record<string, number> = {}
  const readsPerReq: Record<string, number> = {}
  const writesPerReq: Record<string, number> = {}
  const per = (n: number): number => (requests > 0 ? Math.round((n / requests) * 100) / 100 : 0)
  for (const p of procs) {
    const x = u[p]
    if (x === undefined) continue
    cpuUsPerReq[p] = Math.round(per(x.cpuMicros) * 10) / 10
    rssPeakMB[p] = Math.round((x.rssPeakBytes / 1048576) * 10) / 10
    readsPerReq[p] = per(x.readSyscalls)
    writesPerReq[p] = per(x.writeSyscalls)
  }
  return { cpuUsPerReq, rssPeakMB, readsPerReq, writesPerReq }
}

function pidsOf(names: string[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const r of running) if (names.includes(r.def.name)) out[r.def.name] = r.pid
  return out
}

/**
 * The postmaster of BENCH_DATABASE_URL's server when it runs on this machine (its CPU is then read from /proc:
 * `db µs/req`, the database's share of a request, e.g. writing execution logs); undefined otherwise.
 */
async function databaseServerPid(): Promise<number | undefined> {
  if (KNOBS.databaseUrl === '') return undefined
  let host: string
  try { host = new URL(KNOBS.databaseUrl).hostname } catch { return undefined }
  if (!['127.0.0.1', 'localhost', '[::1]', ''].includes(host)) return undefined
  const pg = (await import('pg')).default
  const client = new pg.Client({ connectionString: KNOBS.databaseUrl })
  try {
    await client.connect()
    const r = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
    const root = parentPid(Number(r.rows[0]?.pid))
    // Read once now: a server whose processes /proc does not show (another namespace) throws here, and is left out.
    treeCpuMicros(root)
    return root
  } catch {
    return undefined
  } finally {
    await client.end().catch(() => {})
  }
}
let dbRoot: number | undefined

async function runSaturation(s: ScenarioDef, ctx: Ctx, round: number, durationS = KNOBS.durationS): Promise<SatRun> {
  const sampler = new ProcSampler(pidsOf(s.procs))
  const req = s.request(ctx)
  sampler.start()
  const db0 = dbRoot === undefined ? 0 : treeCpuMicros(dbRoot)
  const r = await saturate(`http://127.0.0.1:${ctx.ports[s.server]}`, req, durationS, KNOBS.connections)
  const db1 = dbRoot === undefined ? 0 : treeCpuMicros(dbRoot)
  const u = sampler.stop()
  const completed = r['2xx'] + r.non2xx
  const usage = usageOf(u, s.procs, completed)
  if (dbRoot !== undefined && completed > 0) usage.cpuUsPerReq['db'] = Math.round(((db1 - db0) / completed) * 10) / 10
  const statusCodes: Record<string, number> = {}
  for (const [code, v] of Object.entries(r.statusCodeStats ?? {})) statusCodes[code] = v.count
  if (r.errors > 0) statusCodes['errors'] = r.errors
  if (r.timeouts > 0) statusCodes['timeouts'] = r.timeouts
  return {
    round,
    rps: Math.round(completed / r.duration),
    durationS: r.duration,
    requests: completed,
    errors: r.non2xx + r.errors + r.timeouts,
    statusCodes,
    latencyMs: { p50: r.latency.p50, p99: r.latency.p99, p999: r.latency.p99_9 },
    ...usage,
  }
}

async function runPacedScenario(s: ScenarioDef, ctx: Ctx, round: number): Promise<PacedRun> {
  const sampler = new ProcSampler(pidsOf(s.procs))
  const req = s.request(ctx)
  sampler.start()
  const r = await paced(`http://127.0.0.1:${ctx.ports[s.server]}`, req, KNOBS.durationS * 1000)
  const u = sampler.stop()
  // the CPU window includes paced.ts' 1 s warm-up at the same rate
  const sent = r.ok + r.errors + Math.round(KNOBS.rate)
  return {
    round,
    achievedRate: r.achievedRate,
    ok: r.ok,
    errors: r.errors + r.unfinished,
    statusCodes: r.unfinished > 0 ? { ...r.statusCodes, unfinished: r.unfinished } : r.statusCodes,
    latencyUs: r.latencyUs,
    serviceUs: r.serviceUs,
    lagUs: r.lagUs,
    maxInFlight: r.maxInFlight,
    ...usageOf(u, s.procs, sent),
  }
}

async function sanityCheck(s: ScenarioDef, ctx: Ctx): Promise<void> {
  const req = s.request(ctx)
  const res = await request(`http://127.0.0.1:${ctx.ports[s.server]}${req.path}`, {
    method: req.method, headers: req.headers, body: req.body ?? null, headersTimeout: 10_000, bodyTimeout: 10_000,
  })
  const text = await res.body.text()
  const streaming = req.body?.includes('"stream":true') === true
  const complete = req.path === '/v1/messages' ? (streaming ? text.includes('event: message_stop') : text.includes('"type":"message"')) : streaming ? text.includes('data: [DONE]') : text.includes('"chat.completion"')
  if (res.statusCode !== 200 || !complete) {
    throw new Error(`sanity check of ${s.name} failed: HTTP ${res.statusCode}: ${text.slice(0, 300)}`)
  }
}

// ---------------------------------------------------------------------------------------------
// Aggregation and output
// ---------------------------------------------------------------------------------------------

const r1 = (x: number): number => Math.round(x * 10) / 10
const r3 = (x: number): number => Math.round(x * 1000) / 1000

function medianUsage(runs: Usage[]): Usage {
  const cpu: Record<string, number> = {}
  const rss: Record<string, number> = {}
  const reads: Record<string, number> = {}
  const writes: Record<string, number> = {}
  const names = new Set(runs.flatMap((r) => Object.keys(r.cpuUsPerReq)))
  for (const n of names) {
    cpu[n] = r1(median(runs.map((r) => r.cpuUsPerReq[n] ?? Number.NaN)))
    // The database server (db) has CPU only: it is not one of the bench's processes, so no RSS or syscalls.
    if (!runs.some((r) => n in r.rssPeakMB)) continue
    rss[n] = r1(Math.max(...runs.map((r) => r.rssPeakMB[n] ?? 0)))
    reads[n] = Math.round(median(runs.map((r) => r.readsPerReq[n] ?? Number.NaN)) * 100) / 100
    writes[n] = Math.round(median(runs.map((r) => r.writesPerReq[n] ?? Number.NaN)) * 100) / 100
  }
  return { cpuUsPerReq: cpu, rssPeakMB: rss, readsPerReq: reads, writesPerReq: writes }
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? []
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ')).join('\n')
}

const fmt = (x: number | undefined, d = 1): string => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d))

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  const known = new Set(SCENARIOS.map((s) => s.name))
  for (const n of KNOBS.scenarios) if (!known.has(n)) throw new Error(`unknown scenario ${n} (known: ${[...known].join(', ')})`)
  const scenarios = KNOBS.scenarios.length > 0 ? SCENARIOS.filter((s) => KNOBS.scenarios.includes(s.name)) : SCENARIOS
  const needed = new Set<string>(['mock'])
  for (const s of scenarios) { needed.add(s.server); for (const p of s.procs) needed.add(p) }
  const servers = SERVERS.filter((d) => needed.has(d.name))
  const profiled = new Set(KNOBS.profile === '' ? [] : KNOBS.profile === '1' ? ['gw-default'] : KNOBS.profile.split(',').map((x) => x.trim()))
  const profileDir = join(KNOBS.resultsDir, 'profiles')
  if (profiled.size > 0) mkdirSync(profileDir, { recursive: true })

  const tmp = mkdtempSync(join(tmpdir(), 'mcp-bench-'))
  const ports: Record<string, number> = {}
  const adminPorts: Record<string, number> = {}
  for (const d of servers) {
    ports[d.name] = await freePort()
    if (d.admin === true) adminPorts[d.name] = await freePort()
  }
  const ctx: Ctx = { ports, adminPorts, adminKey: 'bench-admin-key-0123456789abcdef-0123456789', tmp, mockOrigin: `http://127.0.0.1:${ports['mock']}` }

  const cpuInfo = `${process.platform} ${process.arch}, node ${process.version}, ${(await import('node:os')).availableParallelism()} cpus`
  console.log(`MCP bench ${stamp}: ${cpuInfo}`)
  console.log(`rounds=${KNOBS.rounds} duration=${KNOBS.durationS}s connections=${KNOBS.connections} paced=${KNOBS.rate} req/s (${KNOBS.pacedConnections} conns) warmup=${KNOBS.warmupS}s${KNOBS.slices > 1 ? ` slices=${KNOBS.slices}` : ''} log=${KNOBS.logLevel}${KNOBS.gatewayNodeFlags.length > 0 ? ` gateway flags: ${KNOBS.gatewayNodeFlags.join(' ')}` : ''}${profiled.size > 0 ? ` PROFILING ${[...profiled].join(',')} (its numbers are distorted)` : ''}`)
  console.log(`scenarios: ${scenarios.map((s) => s.name).join(', ')}`)
  dbRoot = await databaseServerPid()
  if (dbRoot !== undefined) console.log(`database server on this machine (postmaster pid ${dbRoot}): its CPU per request is reported as db µs/req`)

  // mock first (everything proxies to it), then the rest in parallel
  const mock = startServer(servers[0] as ServerDef, ctx, undefined, stamp)
  await waitReady(mock, ctx)
  const rest = servers.slice(1).map((d) => startServer(d, ctx, d.profileable === true && profiled.has(d.name) ? profileDir : undefined, stamp))
  await Promise.all(rest.map((r) => waitReady(r, ctx)))
  console.log(`started: ${running.map((r) => `${r.def.name} pid ${r.pid} :${ports[r.def.name]}`).join(', ')}`)
  await sleep(1000)
  const idleRss: Record<string, number> = {}
  for (const r of running) idleRss[r.def.name] = r1(rssBytes(r.pid) / 1048576)
  console.log(`RSS when ready, before any load (MB): ${Object.entries(idleRss).map(([k, v]) => `${k} ${v}`).join(', ')}`)

  for (const s of scenarios) await sanityCheck(s, ctx)
  process.stdout.write('warm-up:')
  for (const s of scenarios) {
    await saturate(`http://127.0.0.1:${ports[s.server]}`, s.request(ctx), KNOBS.warmupS, KNOBS.connections)
    process.stdout.write(` ${s.name}`)
  }
  process.stdout.write('\n')

  const sat: Record<string, SatRun[]> = {}
  const pac: Record<string, PacedRun[]> = {}
  for (let round = 0; round < KNOBS.rounds; round++) {
    if (KNOBS.restart && round > 0) {
      await restartServers(ctx, profileDir, profiled, stamp, round)
      for (const s of scenarios) await saturate(`http://127.0.0.1:${ports[s.server]}`, s.request(ctx), KNOBS.warmupS, KNOBS.connections)
      console.log(`  round ${round + 1}: new processes (${running.map((r) => `${r.def.name} pid ${r.pid}`).join(', ')}), warmed up`)
    }
    // rotate the order each round so no scenario always runs first or right after another
    const order = scenarios.map((_, i) => scenarios[(i + round) % scenarios.length] as ScenarioDef)
    const slices: Record<string, SatRun[]> = {}
    for (let slice = 0; slice < KNOBS.slices; slice++) {
      for (const s of order.filter((x) => x.saturation)) {
        await sleep(KNOBS.slices > 1 ? Math.min(KNOBS.pauseMs, 100) : KNOBS.pauseMs)
        ;(slices[s.name] ??= []).push(await runSaturation(s, ctx, round, KNOBS.durationS / KNOBS.slices))
      }
    }
    for (const s of order.filter((x) => x.saturation)) {
      const r = mergeSlices(slices[s.name]!)
      ;(sat[s.name] ??= []).push(r)
      console.log(`  round ${round + 1} sat   ${s.name.padEnd(18)} ${String(r.rps).padStart(6)} req/s  p50 ${r.latencyMs.p50} ms  p99 ${r.latencyMs.p99} ms  cpu/req ${Object.entries(r.cpuUsPerReq).map(([k, v]) => `${k}=${v}µs`).join(' ')}${r.errors > 0 ? `  ERRORS ${r.errors} ${JSON.stringify(r.statusCodes)}` : ''}`)
    }
    for (const s of order.filter((x) => x.paced)) {
      await sleep(KNOBS.pauseMs)
      const r = await runPacedScenario(s, ctx, round)
      ;(pac[s.name] ??= []).push(r)
      console.log(`  round ${round + 1} paced ${s.name.padEnd(18)} ${String(r.achievedRate).padStart(6)} req/s  p50 ${r3(r.latencyUs.p50 / 1000)} ms  p99 ${r3(r.latencyUs.p99 / 1000)} ms  p99.9 ${r3(r.latencyUs.p999 / 1000)} ms  lag p50 ${r.lagUs.p50} µs${r.errors > 0 ? `  ERRORS ${r.errors} ${JSON.stringify(r.statusCodes)}` : ''}`)
    }
  }

  // ---- medians across rounds
  interface Summary {
    name: string; label: string
    saturation?: { rps: number; latencyMs: { p50: number; p99: number; p999: number }; errors: number } & Usage
    paced?: { achievedRate: number; latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number }; serviceMs: { p50: number; p99: number }; lagUs: { p50: number; p99: number }; addedMs?: { p50: number; p99: number; p999: number }; errors: number } & Usage
  }
  const summaries: Summary[] = []
  const basePaced = pac[BASELINE]
  for (const s of scenarios) {
    const sum: Summary = { name: s.name, label: s.label }
    const sr = sat[s.name]
    if (sr !== undefined) {
      sum.saturation = {
        rps: Math.round(median(sr.map((r) => r.rps))),
        latencyMs: { p50: median(sr.map((r) => r.latencyMs.p50)), p99: median(sr.map((r) => r.latencyMs.p99)), p999: median(sr.map((r) => r.latencyMs.p999)) },
        errors: sr.reduce((a, r) => a + r.errors, 0),
        ...medianUsage(sr),
      }
    }
    const pr = pac[s.name]
    if (pr !== undefined) {
      const ms = (f: (r: PacedRun) => number): number => r3(median(pr.map(f)) / 1000)
      sum.paced = {
        achievedRate: r1(median(pr.map((r) => r.achievedRate))),
        latencyMs: { p50: ms((r) => r.latencyUs.p50), p90: ms((r) => r.latencyUs.p90), p99: ms((r) => r.latencyUs.p99), p999: ms((r) => r.latencyUs.p999), max: ms((r) => r.latencyUs.max) },
        serviceMs: { p50: ms((r) => r.serviceUs.p50), p99: ms((r) => r.serviceUs.p99) },
        lagUs: { p50: r1(median(pr.map((r) => r.lagUs.p50))), p99: r1(median(pr.map((r) => r.lagUs.p99))) },
        errors: pr.reduce((a, r) => a + r.errors, 0),
        ...medianUsage(pr),
      }
      if (basePaced !== undefined && s.name !== BASELINE) {
        // per round: this scenario minus the baseline measured in the same round, then the median
        const diff = (f: (r: PacedRun) => number): number =>
          r3(median(pr.map((r) => { const b = basePaced.find((x) => x.round === r.round); return b === undefined ? Number.NaN : (f(r) - f(b)) / 1000 })))
        sum.paced.addedMs = { p50: diff((r) => r.latencyUs.p50), p99: diff((r) => r.latencyUs.p99), p999: diff((r) => r.latencyUs.p999) }
      }
    }
    summaries.push(sum)
  }

  // ---- ratios (per round, then median)
  interface Ratio { num: string; den: string; cpuPerReq: number; rps: number }
  const ratios: Ratio[] = []
  for (const { num, den } of RATIO_PAIRS) {
    const a = sat[num]
    const b = sat[den]
    if (a === undefined || b === undefined) continue
    const pa = SCENARIOS.find((x) => x.name === num)?.server ?? num
    const pb = SCENARIOS.find((x) => x.name === den)?.server ?? den
    const per = (f: (x: SatRun, y: SatRun) => number): number =>
      r3(median(a.map((x) => { const y = b.find((z) => z.round === x.round); return y === undefined ? Number.NaN : f(x, y) })))
    ratios.push({
      num, den,
      cpuPerReq: per((x, y) => (x.cpuUsPerReq[pa] ?? Number.NaN) / (y.cpuUsPerReq[pb] ?? Number.NaN)),
      rps: per((x, y) => x.rps / y.rps),
    })
  }

  // ---- print
  console.log('\nMedians across rounds. Saturation: autocannon, ms resolution. Paced: open loop at the fixed rate, latency from intended send time.')
  const db = dbRoot !== undefined
  const head = ['scenario', 'sat req/s', 'p50', 'p99', 'p99.9', 'cpu µs/req', 'mock µs/req', ...(db ? ['db µs/req'] : []), 'RSS MB', '| paced p50', 'p99', 'p99.9', '+p50', '+p99', 'lag p99', 'cpu µs/req', 'RSS MB', 'err']
  const rows: string[][] = [head]
  for (const s of summaries) {
    const serving = SCENARIOS.find((x) => x.name === s.name)?.server ?? ''
    const st = s.saturation
    const pc = s.paced
    rows.push([
      s.name,
      st === undefined ? '-' : String(st.rps),
      fmt(st?.latencyMs.p50, 0), fmt(st?.latencyMs.p99, 0), fmt(st?.latencyMs.p999, 0),
      fmt(st?.cpuUsPerReq[serving]), serving === 'mock' ? '=' : fmt(st?.cpuUsPerReq['mock']), ...(db ? [fmt(st?.cpuUsPerReq['db'])] : []), fmt(st?.rssPeakMB[serving]),
      `| ${fmt(pc?.latencyMs.p50, 3)}`, fmt(pc?.latencyMs.p99, 3), fmt(pc?.latencyMs.p999, 3),
      fmt(pc?.addedMs?.p50, 3), fmt(pc?.addedMs?.p99, 3), fmt(pc === undefined ? undefined : pc.lagUs.p99 / 1000, 3),
      fmt(pc?.cpuUsPerReq[serving]), fmt(pc?.rssPeakMB[serving]),
      String((st?.errors ?? 0) + (pc?.errors ?? 0)),
    ])
  }
  console.log(table(rows))
  console.log('(sat latency in whole ms from autocannon; paced latency, +p50/+p99 (added over direct, same round) and lag p99 (the generator\'s own send delay, already inside the latency) in ms)')

  const sys: string[][] = [['syscalls per request (saturation)', 'server reads', 'server writes', 'mock reads', 'mock writes']]
  for (const s of summaries) {
    const serving = SCENARIOS.find((x) => x.name === s.name)?.server ?? ''
    const st = s.saturation
    if (st === undefined) continue
    sys.push([s.name, fmt(st.readsPerReq[serving], 2), fmt(st.writesPerReq[serving], 2), serving === 'mock' ? '=' : fmt(st.readsPerReq['mock'], 2), serving === 'mock' ? '=' : fmt(st.writesPerReq['mock'], 2)])
  }
  console.log(`\n${table(sys)}`)

  console.log('\nRatios (per round, median):')
  for (const r of ratios) console.log(`  ${r.num} / ${r.den}: CPU per request ${fmt(r.cpuPerReq, 2)}x, throughput ${fmt(r.rps * 100, 1)}%`)
  const peakRss: Record<string, number> = {}
  for (const s of summaries) for (const u of [s.saturation, s.paced]) for (const [k, v] of Object.entries(u?.rssPeakMB ?? {})) peakRss[k] = Math.max(peakRss[k] ?? 0, v)
  console.log(`  RSS peak under load (MB): ${Object.entries(peakRss).map(([k, v]) => `${k} ${v}`).join(', ')}`)

  const checks: Array<{ name: string; value: number; limit: number; pass: boolean }> = []
  const acc = ratios.find((r) => r.num === ACCEPTANCE_SUBJECT && r.den === ACCEPTANCE_REFERENCE)
  if (acc !== undefined) {
    checks.push({ name: `${ACCEPTANCE_SUBJECT} CPU/req ÷ ${ACCEPTANCE_REFERENCE} CPU/req ≤ ${LIMITS.cpuRatio}`, value: acc.cpuPerReq, limit: LIMITS.cpuRatio, pass: acc.cpuPerReq <= LIMITS.cpuRatio })
    checks.push({ name: `${ACCEPTANCE_SUBJECT} req/s ÷ ${ACCEPTANCE_REFERENCE} req/s ≥ ${LIMITS.rpsRatio}`, value: acc.rps, limit: LIMITS.rpsRatio, pass: acc.rps >= LIMITS.rpsRatio })
  }
  const subj = summaries.find((s) => s.name === ACCEPTANCE_SUBJECT)
  if (subj?.paced?.addedMs !== undefined) {
    checks.push({ name: `added latency over direct at ${KNOBS.rate} req/s, p50 ≤ ${LIMITS.addedP50Ms} ms`, value: subj.paced.addedMs.p50, limit: LIMITS.addedP50Ms, pass: subj.paced.addedMs.p50 <= LIMITS.addedP50Ms })
    checks.push({ name: `added latency over direct at ${KNOBS.rate} req/s, p99 ≤ ${LIMITS.addedP99Ms} ms`, value: subj.paced.addedMs.p99, limit: LIMITS.addedP99Ms, pass: subj.paced.addedMs.p99 <= LIMITS.addedP99Ms })
  }
  if (peakRss[ACCEPTANCE_SUBJECT] !== undefined) {
    const v = peakRss[ACCEPTANCE_SUBJECT]
    checks.push({ name: `${ACCEPTANCE_SUBJECT} RSS under load ≤ ${LIMITS.rssMB} MB`, value: v, limit: LIMITS.rssMB, pass: v <= LIMITS.rssMB })
  }
  if (checks.length > 0) {
    console.log(`\nAcceptance (${ACCEPTANCE_SUBJECT}):`)
    for (const c of checks) console.log(`  ${c.pass ? 'PASS' : 'FAIL'}  ${c.name}: ${c.value}`)
    if (profiled.size > 0) console.log('  (profiling was on: the profiled process is slowed down, do not judge these numbers)')
  }

  // ---- stop (profiles are written on exit), then summarise profiles
  stopping ??= stopAll()
  await stopping
  const profiles: ProfileSummary[] = []
  for (const r of running) {
    if (r.profileDir === undefined) continue
    const f = readdirSync(r.profileDir).find((x) => x === `${r.def.name}-${stamp}.cpuprofile`)
    if (f === undefined) { console.log(`\nno CPU profile written by ${r.def.name}`); continue }
    const sumP = summarizeProfile(join(r.profileDir, f), 25, ROOT)
    profiles.push(sumP)
    console.log(`\n${r.def.name}: ${formatProfile(sumP)}`)
  }

  mkdirSync(KNOBS.resultsDir, { recursive: true })
  const outFile = join(KNOBS.resultsDir, `${stamp}.json`)
  const out = {
    timestamp: stamp, machine: cpuInfo, knobs: KNOBS, limits: LIMITS,
    servers: running.map((r) => ({ name: r.def.name, pid: r.pid, port: ports[r.def.name], profiled: r.profileDir !== undefined })),
    summaries, ratios, checks, idleRssMB: idleRss, peakRssMB: peakRss,
    runs: { saturation: sat, paced: pac },
    profiles,
  }
  const ws = createWriteStream(outFile)
  ws.end(`${JSON.stringify(out, null, 2)}\n`)
  await new Promise<void>((r) => ws.once('finish', () => r()))
  console.log(`\nwrote ${outFile}`)
  rmSync(tmp, { recursive: true, force: true })
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`)
    shutdown(1)
  },
)
