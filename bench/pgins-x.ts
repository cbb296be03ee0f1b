import pg from 'pg'
import { randomUUID } from 'node:crypto'
import { toWire, batchParam, INSERT_SQL } from '../store/execution-log-rows.ts'
const c = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/mcp_bench' })
await c.connect()
const row = () => toWire({ id: randomUUID(), requestId: randomUUID(), deploymentId: null, provider: 'mock', model: 'gpt-4o', status: 'ok', keyId: null, promptVersionId: null, createdAt: Date.now(), completedAt: Date.now(),
  request: { model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'Say hello to the benchmark.' }] },
  response: { status: 200, finish_reason: 'stop', usage: { prompt_tokens: 7, completion_tokens: 12, total_tokens: 19 }, error: null },
  metrics: { route: 'chat', inbound: 'openai', stream: false, status: 200, details: 'ok', errorCode: null, aborted: false, latencyMs: 1.234, ttftMs: 1.2, upstreamMs: 1.0, overheadMs: 0.2, promptTokens: 7, completionTokens: 12, cachedTokens: null, reasoningTokens: null, cost: null, attempts: 1, failedAttempts: null, fallbackReason: null, promptVersionId: null, promptId: null, promptVersion: null, environment: null, trafficLabel: null, requestedModel: 'mock/gpt-4o', principal: 'admin' } })
const mode = process.argv[2] ?? 'insert'
console.log('row bytes', row().length)
const pid = (await c.query('select pg_backend_pid() as p')).rows[0].p
const cpu = async () => { const fs = await import('node:fs'); const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(' '); return (Number(s[13]) + Number(s[14])) * 10000 }
const N = 20000, B = 500
const c0 = await cpu(); const t0 = performance.now()
for (let i = 0; i < N; i += B) {
  const rows = Array.from({ length: B }, row)
  if (mode === 'insert') await c.query(INSERT_SQL, [batchParam(rows)])
  else if (mode === 'json') await c.query(INSERT_SQL.replace('jsonb_array_elements($1::jsonb)', 'json_array_elements($1::json)').replace('e->10, NULLIF(e->11, \'null\'::jsonb), NULLIF(e->12, \'null\'::jsonb)', "(e->10)::jsonb, NULLIF((e->>11), 'null')::jsonb, NULLIF((e->>12), 'null')::jsonb"), [batchParam(rows)])
  else if (mode === 'noidx') await c.query(INSERT_SQL.replace('INSERT INTO execution_logs', 'INSERT INTO exl_noidx'), [batchParam(rows)])
  else if (mode === 'async') { await c.query('SET synchronous_commit = off'); await c.query(INSERT_SQL, [batchParam(rows)]) }
}
const c1 = await cpu()
console.log(mode, 'pg backend cpu us/row', ((c1 - c0) / N).toFixed(1), 'wall us/row', ((performance.now() - t0) * 1000 / N).toFixed(1))
await c.end()
