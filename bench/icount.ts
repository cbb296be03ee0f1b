/**
 * Instructions per request, counted by valgrind's callgrind: the same on a busy machine as on a quiet one. Ratios of
 * CPU time between two gateway processes move by tens of per cent on this shared machine (bench/README.md, "Process
 * luck"); instruction counts do not depend on what else the machine runs, so they can tell a change of a few per cent.
 * They are not CPU time (cache misses, branch mispredictions and system calls are not in them), so they complement
 * bench/run.ts, never replace it.
 *
 *   node --experimental-strip-types bench/icount.ts [translate|metered|logged] [rounds] [requests per round]
 *
 * - translate: one gateway (issue 3's core chain), four kinds of request in turn: OpenAI in to the OpenAI mock as sent
 *   (`pt`, `pt-stream`) and to the Anthropic mock translated (`tr`, `tr-stream`). Ratios tr ÷ pt.
 * - metered: two gateways, the core chain and the core chain plus budget and cost meter (issue 7). Ratio metered ÷ core.
 * - logged: two gateways, the core chain and the core chain plus execution logging (issue 5), to BENCH_DATABASE_URL
 *   when set (its server's own work is not counted), else to the embedded store in the gateway's process.
 *
 * Each gateway runs under `valgrind --tool=callgrind` with instrumentation off, one at a time (two under callgrind at
 * once gave the first one 1.3 to 2.7 times its count alone). It is warmed up first: ICOUNT_WARMUP requests of each kind,
 * 8 at a time (default 30,000: at full speed the gateway's code, Node's and undici's stop being deoptimized after about
 * 30,000 requests; under callgrind a round in four still recompiles, so read the minimum). Then instrumentation is
 * turned on (`callgrind_control -i on`) and every round sends each kind's requests one at a time on one keep-alive connection,
 * the counters zeroed before and dumped after. Reported per round: instructions per request, all of them and without
 * V8's compilers (optimizing compilation still lands in a round now and then, on its own threads); a major garbage
 * collection that lands in a round shows as that round's outlier, so read the minimum and the median.
 * ICOUNT_ANNOTATE=1 also runs the gateways with `--perf-basic-prof` (JavaScript functions named in /tmp/perf-<pid>.map)
 * and prints the functions whose instructions per request differ most between the two sides of the last round.
 * ICOUNT_KEEP=1 keeps the dumps (and the maps) for callgrind_annotate.
 *
 * What it does not see: time. Cache misses, branch mispredictions and the kernel's share of system calls are not
 * instructions, and requests go one at a time (about 50 a second instrumented), so work done on a timer (a usage
 * rollup flush, an execution-log batch) is shared by about a hundred times fewer requests than at saturation: measure
 * the metered and logged chains with BENCH_DATABASE_URL (the flush is then a `pg` query, not the embedded store running
 * in the gateway's own process).
 *
 * Slow: a gateway under callgrind serves about 250 requests a second uninstrumented and 50 instrumented; with the
 * defaults `translate` takes about ten minutes, `metered` and `logged` about eight. Traffic goes to 127.0.0.1 only;
 * every process started is ended by its PID.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { endChildren, startChild, whenReady } from './children.ts'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const [scenario = 'translate', roundsArg = '3', perRoundArg = '400'] = process.argv.slice(2)
if (!['translate', 'metered', 'logged'].includes(scenario)) {
  console.error('usage: bench/icount.ts [translate|metered|logged] [rounds] [requests per round]')
  process.exit(2)
}
const ROUNDS = Number(roundsArg)
const PER_ROUND = Number(perRoundArg)
const WARMUP = Number(process.env['ICOUNT_WARMUP'] ?? 30000)
const ANNOTATE = process.env['ICOUNT_ANNOTATE'] === '1'
const KEY = 'bench-icount-admin-key-00000000000000'
const TS = ['--experimental-strip-types', '--disable-warning=ExperimentalWarning']
/** What `npm start` runs (package.json scripts.start). */
const GATEWAY_FLAGS = ['--max-semi-space-size=8', '--heap-growing-percent=20', ...TS]
/** Functions of V8's compilers (they run on their own threads, whenever a function tiers up). */
const COMPILER = /v8::internal::(compiler|maglev|baseline)::|turboshaft|v8::internal::wasm::(Liftoff|WasmCompil|TurboshaftGraphBuildingInterface)/

for (const tool of ['valgrind', 'callgrind_control', 'callgrind_annotate']) {
  try { execFileSync('which', [tool], { stdio: 'ignore' }) } catch { console.error(`${tool} is not installed (Debian: apt install valgrind)`); process.exit(2) }
}

const MESSAGES = [{ role: 'user', content: 'Say hello to the benchmark.' }]
const chat = (model: string, stream: boolean): string => JSON.stringify({ model, messages: MESSAGES, ...(stream ? { stream: true } : {}) })
const KINDS: Record<string, string> = {
  'pt': chat('mock/gpt-4o', false),
  'tr': chat('claude/claude-sonnet-4-5', false),
  'pt-stream': chat('mock/gpt-4o', true),
  'tr-stream': chat('claude/claude-sonnet-4-5', true),
}

/** `n` chat requests, `concurrency` at a time, each on a keep-alive connection; throws unless every one is a 200. */
async function send(port: number, body: string, n: number, concurrency: number): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency })
  let sent = 0
  let failed = 0
  const one = (): Promise<void> => new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent, headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' } }, (res) => {
      if (res.statusCode !== 200) failed++
      res.resume()
      res.once('end', resolve)
      res.once('error', reject)
    })
    req.once('error', reject)
    req.end(body)
  })
  const worker = async (): Promise<void> => { while (sent < n) { sent++; await one() } }
  try {
    await Promise.all(Array.from({ length: concurrency }, worker))
  } finally {
    agent.destroy()
  }
  if (failed > 0) throw new Error(`${failed} of ${n} requests failed (not 200)`)
}

interface Gateway { name: string; port: number; valgrindPid: number; out: string; dumps: number; kinds: string[] }

/** Self instructions per function of one callgrind dump (its `fn=` blocks; the inclusive cost after `calls=` skipped). */
function selfCosts(file: string): Map<string, number> {
  const names = new Map<string, string>()
  const costs = new Map<string, number>()
  let fn = ''
  let skipNext = false
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.startsWith('fn=')) {
      const m = /^fn=\((\d+)\)(?: (.*))?$/.exec(line)
      if (m) { if (m[2] !== undefined) names.set(m[1]!, m[2]); fn = names.get(m[1]!) ?? m[1]! } else fn = line.slice(3)
      continue
    }
    if (line.startsWith('cfn=')) {
      // A called function's name is defined where it first appears, here too.
      const m = /^cfn=\((\d+)\) (.*)$/.exec(line)
      if (m) names.set(m[1]!, m[2]!)
      continue
    }
    if (line.startsWith('calls=')) { skipNext = true; continue }
    const c = line.charCodeAt(0)
    if (!(c >= 48 && c <= 57) && c !== 43 && c !== 45 && c !== 42) continue
    if (skipNext) { skipNext = false; continue }
    const parts = line.split(' ')
    const ir = Number(parts[1] ?? 0)
    if (ir > 0) costs.set(fn, (costs.get(fn) ?? 0) + ir)
  }
  return costs
}

function newestDump(g: Gateway): string {
  g.dumps++
  const file = `${g.out}.${g.dumps}`
  if (!existsSync(file)) throw new Error(`no callgrind dump ${file}`)
  return file
}

/** JavaScript functions and regular expressions by code address (V8's --perf-basic-prof map), for names in a diff. */
function perfMap(pid: number): (name: string) => string {
  const file = `/tmp/perf-${pid}.map`
  if (!existsSync(file)) return (n) => n
  const entries = readFileSync(file, 'utf8').split('\n').flatMap((l) => {
    const m = /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(l)
    return m ? [{ start: parseInt(m[1]!, 16), size: parseInt(m[2]!, 16), name: m[3]! }] : []
  }).sort((a, b) => a.start - b.start)
  return (n) => {
    const m = /^0x([0-9a-f]+)$/.exec(n)
    if (!m) return n
    const a = parseInt(m[1]!, 16)
    let lo = 0
    let hi = entries.length - 1
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (entries[mid]!.start <= a) lo = mid; else hi = mid - 1 }
    const e = entries[lo]
    return e && e.start <= a && a < e.start + e.size ? `JS ${e.name}` : n
  }
}

const providers = (mockPort: number, anthropicPort: number): Record<string, unknown> => ({
  mock: { type: 'openai', baseUrl: `http://127.0.0.1:${mockPort}/v1`, apiKey: 'sk-bench' },
  claude: { type: 'anthropic', baseUrl: `http://127.0.0.1:${anthropicPort}`, apiKey: 'sk-ant-bench' },
})
const CORE = ['request-id', 'auth', 'access-log']
const SIDES: Record<string, { name: string; kinds: string[]; config: Record<string, unknown> }[]> = {
  translate: [{ name: 'gateway', kinds: ['pt', 'tr', 'pt-stream', 'tr-stream'], config: { chains: { default: CORE } } }],
  metered: [
    { name: 'core', kinds: ['pt'], config: { chains: { default: CORE } } },
    {
      name: 'metered', kinds: ['pt'], config: {
        chains: { default: ['request-id', 'auth', 'budget', 'cost-meter', 'access-log'] },
        plugins: { budget: { backend: 'local', budgets: [{ name: 'team', scope: 'global', period: 'month', amountUsd: 1e6 }] } },
      },
    },
  ],
  logged: [
    { name: 'core', kinds: ['pt'], config: { chains: { default: CORE } } },
    { name: 'logged', kinds: ['pt'], config: { chains: { default: ['request-id', 'auth', 'execution-log', 'access-log'] } } },
  ],
}

const base = 21000 + Math.floor(Math.random() * 200) * 20
startChild(process.execPath, [...TS, 'test/helpers/openai-mock.ts'], ROOT, { MOCK_PORT: String(base), MOCK_RECORD: '0' })
startChild(process.execPath, [...TS, 'bench/anthropic-mock-server.ts'], ROOT, { MOCK_PORT: String(base + 1) })
const work = mkdtempSync(join(tmpdir(), 'mcp-icount-'))
const control = (g: Gateway, ...args: string[]): void => { execFileSync('callgrind_control', [...args, String(g.valgrindPid)], { stdio: 'ignore' }) }
await whenReady(`http://127.0.0.1:${base}/v1/models`, { authorization: 'Bearer x' })
await whenReady(`http://127.0.0.1:${base + 1}/v1/models`, { 'x-api-key': 'x', 'anthropic-version': '2023-06-01' })

interface Row { round: number; side: string; kind: string; all: number; noCompile: number; file: string }
const rows: Row[] = []
const gateways: Gateway[] = []
// One gateway at a time, each alone on the machine from its start to its end: with two under callgrind at once the
// first one's count came out at 1.3 to 2.7 times what it was alone (its code kept being deoptimized and compiled again).
for (const [i, side] of SIDES[scenario]!.entries()) {
  const port = base + 2 + i * 2
  const out = join(work, `callgrind.${side.name}`)
  const cfg = {
    reload: { watch: false },
    // Under callgrind the event loop lags by hundreds of milliseconds: nothing may be shed.
    server: { shedding: { enabled: false } },
    providers: providers(base, base + 1),
    ...side.config,
  }
  const env: Record<string, string> = {
    MCP_PORT: String(port), MCP_ADMIN_PORT: String(port + 1), MCP_ADMIN_KEY: KEY, MCP_LOG_LEVEL: 'info',
    MCP_DATA_DIR: mkdtempSync(join(work, `data-${side.name}-`)), NODE_CONFIG: JSON.stringify(cfg),
  }
  const dbUrl = process.env['BENCH_DATABASE_URL']
  if (dbUrl) env['MCP_DATABASE_URL'] = dbUrl
  const proc = startChild('valgrind', ['-q', '--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${out}`, process.execPath, ...GATEWAY_FLAGS, ...(ANNOTATE ? ['--perf-basic-prof'] : []), 'main.ts'], ROOT, env)
  const g: Gateway = { name: side.name, port, valgrindPid: proc.pid!, out, dumps: 0, kinds: side.kinds }
  gateways.push(g)
  await whenReady(`http://127.0.0.1:${port + 1}/readyz`, {}, 150_000, 250)
  console.log(`${scenario}: ${g.name} (valgrind pid ${g.valgrindPid}); warm-up ${WARMUP} requests of each kind`)
  for (let r = 0; r < 3; r++) for (const k of g.kinds) await send(g.port, KINDS[k]!, Math.ceil(WARMUP / 3), 8)
  control(g, '-i', 'on')
  // Instrumenting the request path again (valgrind re-translates its code): not measured.
  for (const k of g.kinds) await send(g.port, KINDS[k]!, 200, 1)
  for (let round = 1; round <= ROUNDS; round++) {
    for (const kind of g.kinds) {
      control(g, '-z')
      await send(g.port, KINDS[kind]!, PER_ROUND, 1)
      control(g, '-d', `${kind}-${round}`)
      const file = newestDump(g)
      let all = 0
      let compile = 0
      for (const [fn, ir] of selfCosts(file)) { all += ir; if (COMPILER.test(fn)) compile += ir }
      rows.push({ round, side: g.name, kind, all: all / PER_ROUND, noCompile: (all - compile) / PER_ROUND, file })
      console.log(`round ${round} ${g.name} ${kind}: ${Math.round(all / PER_ROUND)} instructions a request, ${Math.round((all - compile) / PER_ROUND)} without compilation`)
    }
  }
  // Ended now (its dumps stay): the next side has the machine to itself. Its perf map is read at the end.
  process.kill(g.valgrindPid, 'SIGTERM')
  await new Promise<void>((resolve) => { if (proc.exitCode !== null) resolve(); else proc.once('exit', () => resolve()) })
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2 }
const pairs: [string, string, string, string][] = scenario === 'translate'
  ? [['gateway', 'tr', 'gateway', 'pt'], ['gateway', 'tr-stream', 'gateway', 'pt-stream']]
  : [[gateways[1]!.name, 'pt', 'core', 'pt']]
console.log('\nwithout compilation (min / median of rounds), and the ratio per round:')
for (const [sa, ka, sb, kb] of pairs) {
  const a = rows.filter((r) => r.side === sa && r.kind === ka)
  const b = rows.filter((r) => r.side === sb && r.kind === kb)
  const ratios = a.map((r, i) => r.noCompile / b[i]!.noCompile)
  console.log(`  ${sa === sb ? '' : `${sa} `}${ka}: min ${Math.round(Math.min(...a.map((r) => r.noCompile)))}, median ${Math.round(median(a.map((r) => r.noCompile)))}` +
    ` | ${sa === sb ? '' : `${sb} `}${kb}: min ${Math.round(Math.min(...b.map((r) => r.noCompile)))}, median ${Math.round(median(b.map((r) => r.noCompile)))}` +
    ` | ratio per round ${ratios.map((x) => x.toFixed(3)).join(' ')}; of the minimums ${(Math.min(...a.map((r) => r.noCompile)) / Math.min(...b.map((r) => r.noCompile))).toFixed(3)}, median ${median(ratios).toFixed(3)}`)
  if (ANNOTATE) {
    // The last round's two dumps, function by function (JavaScript named from each process's perf map).
    const last = (rs: Row[]): Row => rs[rs.length - 1]!
    const nameA = perfMap(gateways.find((g) => g.name === sa)!.valgrindPid)
    const nameB = perfMap(gateways.find((g) => g.name === sb)!.valgrindPid)
    const per = (file: string, name: (n: string) => string): Map<string, number> => {
      const m = new Map<string, number>()
      for (const [fn, ir] of selfCosts(file)) if (!COMPILER.test(fn)) { const k = name(fn); m.set(k, (m.get(k) ?? 0) + ir / PER_ROUND) }
      return m
    }
    const ma = per(last(a).file, nameA)
    const mb = per(last(b).file, nameB)
    const diff = [...new Set([...ma.keys(), ...mb.keys()])].map((k) => ({ k, d: (ma.get(k) ?? 0) - (mb.get(k) ?? 0), a: ma.get(k) ?? 0, b: mb.get(k) ?? 0 }))
      .sort((x, y) => Math.abs(y.d) - Math.abs(x.d)).slice(0, 30)
    console.log(`  functions that differ most (instructions a request, ${ka} − ${kb}):`)
    for (const r of diff) console.log(`    ${(r.d >= 0 ? '+' : '') + Math.round(r.d)}`.padEnd(12) + `${Math.round(r.a)} / ${Math.round(r.b)}  ${r.k.slice(0, 140)}`)
  }
}
endChildren()
if (process.env['ICOUNT_KEEP'] === '1') {
  console.log(`\ncallgrind dumps kept in ${work} (callgrind_annotate <file>)${ANNOTATE ? `, perf maps: ${gateways.map((g) => `/tmp/perf-${g.valgrindPid}.map`).join(' ')}` : ''}`)
} else {
  rmSync(work, { recursive: true, force: true })
  if (ANNOTATE) for (const g of gateways) rmSync(`/tmp/perf-${g.valgrindPid}.map`, { force: true })
}
