import { randomUUID } from 'node:crypto'
import { toWire, INSERT_SQL, batchParam } from '../../store/execution-log-rows.ts'
import { openStore } from '../../store/index.ts'
import { freshSchema, dropSchemas } from './pg.ts'
const { url } = await freshSchema('pgcost')
const store = await openStore({ dataDir: 'unused', databaseUrl: url })
const mk = () => ({ id: randomUUID(), requestId: randomUUID(), deploymentId: null, provider: 'mock', model: 'gpt-4o', status: 'ok', keyId: null, promptVersionId: null, createdAt: Date.now(), completedAt: Date.now(),
  request: { model: 'gpt-4o', messages: [{ role: 'user', content: 'Say hello to the benchmark, in twelve tokens or so.' }] },
  response: { status: 200, finish_reason: 'stop', usage: { prompt_tokens: 13, completion_tokens: 12, total_tokens: 25, prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 } }, error: null },
  metrics: { route: 'chat', inbound: 'openai', stream: false, status: 200, details: 'ok', errorCode: null, aborted: false, latencyMs: 1.234, ttftMs: null, upstreamMs: 0.9, overheadMs: 0.334, promptTokens: 13, completionTokens: 12, cachedTokens: null, reasoningTokens: null, cost: null, attempts: 1, fallbackReason: null, promptVersionId: null, requestedModel: 'mock/gpt-4o', principal: 'bootstrap' } })
const COLS = 'id, request_id, deployment_id, provider, model, status, key_id, prompt_version_id, created_at, completed_at, request, response, metrics'
function valuesSql(n: number) { const r: string[] = []; for (let i = 0; i < n; i++) { const b = i * 13; r.push('(' + Array.from({ length: 13 }, (_, c) => `$${b + c + 1}`).join(',') + ')') } return `INSERT INTO execution_logs (${COLS}) VALUES ${r.join(',')} ON CONFLICT DO NOTHING` }
const B = 500, ROUNDS = 60
console.log('row bytes', toWire(mk()).length)
for (const mode of ['jsonb', 'values', 'jsonb', 'values']) {
  let ms = 0
  for (let r = 0; r < ROUNDS; r++) {
    const rows = Array.from({ length: B }, mk)
    let sql: string, params: unknown[]
    if (mode === 'jsonb') { sql = INSERT_SQL; params = [batchParam(rows.map(toWire))] }
    else { sql = valuesSql(B); params = rows.flatMap((x) => [x.id, x.requestId, null, x.provider, x.model, x.status, null, null, new Date(x.createdAt).toISOString(), new Date(x.completedAt).toISOString(), JSON.stringify(x.request), JSON.stringify(x.response), JSON.stringify(x.metrics)]) }
    const t0 = performance.now(); await store.query(sql, params); ms += performance.now() - t0
  }
  console.log(mode, 'us per row (round trip, local PG)', (ms * 1000 / (B * ROUNDS)).toFixed(1))
}
await store.close(); await dropSchemas()
