import { usageOf } from '../../plugins/execution-log/usage.ts'
const body = Buffer.from(JSON.stringify({ id: 'chatcmpl-x', object: 'chat.completion', created: 1, model: 'gpt-4o', system_fingerprint: 'fp', choices: [{ index: 0, message: { role: 'assistant', content: 'tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7 tok8 tok9 tok10 tok11', refusal: null }, logprobs: null, finish_reason: 'stop' }], usage: { prompt_tokens: 13, completion_tokens: 12, total_tokens: 25, prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 } } }))
const N = 300000
function time(l: string, f: () => void) { for (let i = 0; i < 30000; i++) f(); const t0 = process.hrtime.bigint(); for (let i = 0; i < N; i++) f(); console.log(l, (Number(process.hrtime.bigint() - t0) / N).toFixed(0), 'ns') }
time('full parse', () => { JSON.parse(body.toString('utf8')) })
time('usageOf', () => { const c = { rawBody: [body], finishReason: null, usage: undefined } as never; usageOf(c) })
const K = Buffer.from('"usage"')
time('lastIndexOf buf', () => { body.lastIndexOf(K) })
time('lastIndexOf str', () => { body.lastIndexOf('"usage"') })
time('indexOf finish', () => { body.indexOf('"finish_reason":"') })
console.log(body.length)
const big = Buffer.from(JSON.stringify({ id: 'x', choices: [{ index: 0, message: { role: 'assistant', content: 'word '.repeat(1000) }, finish_reason: 'stop' }], usage: { prompt_tokens: 13, completion_tokens: 1000, total_tokens: 1013 } }))
time('big full parse', () => { JSON.parse(big.toString('utf8')) })
time('big usageOf', () => { const c = { rawBody: [big], finishReason: null, usage: undefined } as never; usageOf(c) })
