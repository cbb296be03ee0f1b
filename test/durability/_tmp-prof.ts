import { spawn } from 'node:child_process'
import { mkdtemp, readdir } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../helpers/gateway-process.ts'
import { dropSchemas, freshSchema } from './pg.ts'
import { ADMIN_KEY, spawnEntry } from './process.ts'
import { formatProfile, summarizeProfile } from '../../bench/profile.ts'
const autocannon = createRequire(import.meta.url)('autocannon') as (o: Record<string, unknown>) => Promise<{ requests: { average: number } }>
const variant = process.argv[2] ?? 'on'
const mockPort = await freePort()
const mockProc = spawn(process.execPath, ['--experimental-strip-types', '--disable-warning=ExperimentalWarning', 'test/helpers/openai-mock.ts'], { env: { ...process.env, MOCK_PORT: String(mockPort) }, stdio: ['ignore', 'pipe', 'inherit'] })
await new Promise<void>((r) => mockProc.stdout!.once('data', () => r()))
const dataDir = await mkdtemp(join(tmpdir(), 'mcp-prof-'))
const profDir = join(dataDir, 'prof')
const { url } = await freshSchema('prof')
const p = await spawnEntry({ chains: { default: ['request-id', 'auth', 'execution-log'] }, providers: { mock: { type: 'openai', baseUrl: `http://127.0.0.1:${mockPort}/v1`, apiKey: 'sk' } } },
  { MCP_DATABASE_URL: url, MCP_DATA_DIR: dataDir, NODE_OPTIONS: `--cpu-prof --cpu-prof-interval=100 --cpu-prof-dir=${profDir}`, ...(variant === 'off' ? { MCP_EXECUTION_LOG: 'off' } : {}) })
const body = JSON.stringify({ model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'Say hello to the benchmark, in twelve tokens or so.' }] })
const r = await autocannon({ url: `${p.url}/v1/chat/completions`, method: 'POST', connections: 50, duration: 10, overallRate: 2000, body, headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' } })
console.log('rps', r.requests.average)
p.proc.kill('SIGTERM'); await p.exited
const f = (await readdir(profDir)).find((n) => n.endsWith('.cpuprofile'))!
console.log(formatProfile(summarizeProfile(join(profDir, f), 30)))
mockProc.kill(); await p.stop(); await dropSchemas()
