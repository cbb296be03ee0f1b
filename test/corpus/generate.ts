/**
 * Writes the malformed-input corpus: `test/corpus/cases.jsonl`, one case per line, replayed byte for
 * byte over raw TCP by corpus.test.ts against the data-plane and admin listeners.
 *
 *   node --experimental-strip-types test/corpus/generate.ts
 *
 * A case: { id, category, description, target: 'data' | 'admin', raw: base64 of the exact bytes
 * (or parts: [[base64, repeat], ...] for the few large ones), expect }. `expect.status` is the
 * accepted [lo, hi] range (never 5xx); `close` says the server must close the connection after
 * answering (framing errors, smuggling); `canary` says no answer may come from the smuggled request
 * (`/smuggled-canary`); `responses` is how many answers to wait for (pipelining); `slow` marks cases
 * that only end with a server timeout (requestTimeout / headersTimeout).
 *
 * The generator is deterministic: same code, same file. Regenerate after changing it and commit both.
 */
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ADMIN_KEY } from '../helpers/gateway.ts'
import type { CorpusCase, CorpusExpect } from './case.ts'

const cases: CorpusCase[] = []
const counters = new Map<string, number>()
const KEY = ADMIN_KEY
const MODEL = 'mock/gpt-4o'
const EMB_MODEL = 'mock/text-embedding-3-small'
const AUTH = `Authorization: Bearer ${KEY}\r\n`
const CANARY = `GET /smuggled-canary HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`

const BAD: [number, number] = [400, 499]
const ANY: [number, number] = [200, 499]

/** Run-length parts: literal stretches, and units of 1..64 bytes repeated at least 512 bytes' worth. */
function compress(buf: Buffer): [Buffer, number][] {
  const out: [Buffer, number][] = []
  let lit = 0
  let i = 0
  while (i < buf.length) {
    let best: [number, number] | undefined
    for (let L = 1; L <= 64 && i + 2 * L <= buf.length; L++) {
      let reps = 1
      while (i + (reps + 1) * L <= buf.length && buf.compare(buf, i, i + L, i + reps * L, i + (reps + 1) * L) === 0) reps++
      if (reps * L >= 512 && (!best || reps * L > best[0] * best[1])) best = [L, reps]
    }
    if (!best) { i++; continue }
    if (i > lit) out.push([buf.subarray(lit, i), 1])
    out.push([buf.subarray(i, i + best[0]), best[1]])
    i += best[0] * best[1]
    lit = i
  }
  if (lit < buf.length) out.push([buf.subarray(lit), 1])
  return out
}

function add(category: string, description: string, target: 'data' | 'admin', bytes: Buffer | string | [Buffer | string, number][], expect: CorpusExpect): void {
  const n = (counters.get(category) ?? 0) + 1
  counters.set(category, n)
  const c: CorpusCase = { id: `${category}-${String(n).padStart(4, '0')}`, category, description, target, expect }
  const parts: [Buffer, number][] = Array.isArray(bytes)
    ? bytes.flatMap(([x, r]) => (r === 1 ? compress(Buffer.from(x as string | Buffer)) : [[Buffer.from(x as string | Buffer), r] as [Buffer, number]]))
    : compress(Buffer.from(bytes as string | Buffer))
  if (parts.length === 1 && parts[0]![1] === 1) c.raw = parts[0]![0].toString('base64')
  else c.parts = parts.map(([x, r]) => [x.toString('base64'), r])
  cases.push(c)
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1')

/** A well-framed HTTP/1.1 request; `body` bytes get an exact Content-Length unless headers set framing. */
function req(method: string, target: string, opts: { headers?: string; body?: Buffer | string; auth?: boolean; ct?: string | null; noLength?: boolean } = {}): Buffer {
  const body = opts.body === undefined ? undefined : Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(opts.body, 'utf8')
  let head = `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n`
  if (opts.auth !== false) head += AUTH
  if (body !== undefined && opts.ct !== null) head += `Content-Type: ${opts.ct ?? 'application/json'}\r\n`
  if (body !== undefined && !opts.noLength) head += `Content-Length: ${body.length}\r\n`
  head += opts.headers ?? ''
  head += '\r\n'
  return body === undefined ? b(head) : Buffer.concat([b(head), body])
}

const CHAT = '/v1/chat/completions'
const EMB = '/v1/embeddings'
const MSGS = '/v1/messages'
const chatBody = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], ...extra })
const embBody = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ model: EMB_MODEL, input: 'hi', ...extra })
const msgBody = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ model: MODEL, max_tokens: 16, messages: [{ role: 'user', content: 'hi' }], ...extra })
const ROUTES: [string, (e?: Record<string, unknown>) => Record<string, unknown>][] = [[CHAT, chatBody], [EMB, embBody], [MSGS, msgBody]]

// ---- 1. broken JSON ----------------------------------------------------------------------------------
{
  for (const [route, mk] of ROUTES) {
    const valid = JSON.stringify(mk())
    // Every truncation point of a valid body.
    for (let i = 1; i < valid.length; i += Math.max(1, Math.floor(valid.length / 24))) {
      add('broken-json', `${route}: valid body truncated at ${i}`, 'data', req('POST', route, { body: valid.slice(0, i) }), { status: BAD })
    }
    const broken: [string, string][] = [
      ['empty body', ''], ['whitespace only', '   \n\t '], ['null', 'null'], ['array', '[]'], ['string', '"chat"'], ['number', '42'], ['true', 'true'],
      ['trailing garbage', valid + 'xyz'], ['two objects', valid + valid], ['trailing comma', valid.slice(0, -1) + ',}'],
      ['single quotes', valid.replace(/"/g, "'")], ['unquoted keys', valid.replace(/"(\w+)":/g, '$1:')], ['comment', `/* c */${valid}`],
      ['line comment', `${valid}// c`], ['NaN', JSON.stringify(mk({ temperature: 0 })).replace('"temperature":0', '"temperature":NaN')],
      ['Infinity', JSON.stringify(mk({ temperature: 0 })).replace('"temperature":0', '"temperature":Infinity')],
      ['hex number', JSON.stringify(mk({ temperature: 0 })).replace('"temperature":0', '"temperature":0x1')],
      ['leading zero number', JSON.stringify(mk({ temperature: 0 })).replace('"temperature":0', '"temperature":01')],
      ['plus number', JSON.stringify(mk({ temperature: 0 })).replace('"temperature":0', '"temperature":+1')],
      ['raw control char in string', valid.replace('hi', 'h\u0001i')], ['raw newline in string', valid.replace('hi', 'h\ni')],
      ['bad escape', valid.replace('hi', 'h\\qi')], ['truncated unicode escape', valid.replace('hi', 'h\\u12')],
      ['unterminated string', '{"model":"abc'], ['unbalanced braces', '{{}'], ['only open', '{'], ['only close', '}'],
      ['nested unbalanced', '{"a":[1,2}'], ['missing colon', '{"model" "x"}'], ['missing value', '{"model":}'],
      ['double comma', '{"model":"x",,"messages":[]}'], ['JSON lines', `${valid}\n${valid}`], ['undefined literal', '{"model":undefined}'],
      ['python literals', '{"stream":True,"x":None}'], ['backslash at end', valid.replace('hi', 'hi\\')],
    ]
    for (const [name, body] of broken) add('broken-json', `${route}: ${name}`, 'data', req('POST', route, { body }), { status: BAD })
    // Valid JSON that is not the request object.
    for (const [name, body] of [['duplicate keys (last wins)', valid.replace('{', `{"model":1,`)], ['BOM before JSON', `\ufeff${valid}`], ['surrounding whitespace', `\n\n ${valid} \n`]] as const) {
      add('broken-json', `${route}: ${name}`, 'data', req('POST', route, { body }), { status: ANY })
    }
  }
  const adminValid = '{"state":"open"}'
  for (let i = 1; i < adminValid.length; i++) add('broken-json', `admin breaker body truncated at ${i}`, 'admin', req('POST', '/api/v1/mcp/targets/nosuch/model/breaker', { body: adminValid.slice(0, i) }), { status: BAD })
  for (const body of ['', 'null', '[]', '"open"', '{"state":1}', '{"state":"nope"}', '{"state":"open",}', "{'state':'open'}", '{"state":"open"}x']) {
    add('broken-json', `admin breaker body ${JSON.stringify(body)}`, 'admin', req('POST', '/api/v1/mcp/targets/nosuch/model/breaker', { body }), { status: BAD })
  }
}

// ---- 2. wrong types for every known field -------------------------------------------------------------
{
  const values: Record<string, unknown> = {
    string: 'x', emptyString: '', int: 7, negative: -3, float: 1.5, bool: true, null: null, array: [1, 'a'], emptyArray: [], object: { a: 1 }, emptyObject: {},
  }
  const kindOf = (v: unknown): string[] => {
    if (v === null) return ['null']
    if (Array.isArray(v)) return ['array']
    if (typeof v === 'number') return Number.isInteger(v) ? ['integer', 'number'] : ['number']
    return [typeof v]
  }
  // Field → JSON types it accepts (gateway/http/schemas.ts). A value of another type must be a 400.
  const chatFields: Record<string, string[]> = {
    model: ['string'], messages: ['array'], stream: ['boolean', 'null'], stream_options: ['object', 'null'], temperature: ['number', 'null'],
    top_p: ['number', 'null'], max_tokens: ['integer', 'null'], max_completion_tokens: ['integer', 'null'], n: ['integer', 'null'],
    stop: ['string', 'array', 'null'], presence_penalty: ['number', 'null'], frequency_penalty: ['number', 'null'], seed: ['integer', 'null'],
    user: ['string'], metadata: ['object', 'null'], tools: ['array'], tool_choice: ['string', 'object'], parallel_tool_calls: ['boolean'],
    response_format: ['object'], logprobs: ['boolean', 'null'], top_logprobs: ['integer', 'null'],
  }
  for (const [field, accepted] of Object.entries(chatFields)) {
    for (const [vn, v] of Object.entries(values)) {
      const wrong = !kindOf(v).some((k) => accepted.includes(k))
      add('wrong-type', `chat ${field} = ${vn}`, 'data', req('POST', CHAT, { body: JSON.stringify(chatBody({ [field]: v })) }), { status: wrong ? BAD : ANY })
    }
  }
  const messageFields: Record<string, string[]> = { role: ['string'], content: ['string', 'array', 'null'], name: ['string'], tool_call_id: ['string'], tool_calls: ['array'] }
  for (const [field, accepted] of Object.entries(messageFields)) {
    for (const [vn, v] of Object.entries(values)) {
      const wrong = !kindOf(v).some((k) => accepted.includes(k))
      add('wrong-type', `chat messages[0].${field} = ${vn}`, 'data', req('POST', CHAT, { body: JSON.stringify(chatBody({ messages: [{ role: 'user', content: 'hi', [field]: v }] })) }), { status: wrong ? BAD : ANY })
    }
  }
  for (const [vn, v] of Object.entries(values)) {
    add('wrong-type', `chat messages = [${vn}]`, 'data', req('POST', CHAT, { body: JSON.stringify(chatBody({ messages: [v] })) }), { status: BAD })
    add('wrong-type', `chat tools = [${vn}]`, 'data', req('POST', CHAT, { body: JSON.stringify(chatBody({ tools: [v] })) }), { status: BAD })
    add('wrong-type', `chat messages[0].content = [${vn}]`, 'data', req('POST', CHAT, { body: JSON.stringify(chatBody({ messages: [{ role: 'user', content: [v] }] })) }), { status: BAD })
  }
  const embFields: Record<string, string[]> = { model: ['string'], input: ['string', 'array'], encoding_format: ['string'], dimensions: ['integer'], user: ['string'] }
  for (const [field, accepted] of Object.entries(embFields)) {
    for (const [vn, v] of Object.entries(values)) {
      const wrong = !kindOf(v).some((k) => accepted.includes(k))
      add('wrong-type', `embeddings ${field} = ${vn}`, 'data', req('POST', EMB, { body: JSON.stringify(embBody({ [field]: v })) }), { status: wrong ? BAD : ANY })
    }
  }
  const msgFields = ['model', 'max_tokens', 'messages', 'system', 'temperature', 'top_p', 'top_k', 'stop_sequences', 'stream', 'tools', 'tool_choice', 'metadata', 'thinking']
  for (const field of msgFields) {
    for (const [vn, v] of Object.entries(values)) {
      add('wrong-type', `messages ${field} = ${vn}`, 'data', req('POST', MSGS, { body: JSON.stringify(msgBody({ [field]: v })) }), { status: ANY })
    }
  }
  for (const [vn, v] of Object.entries(values)) {
    add('wrong-type', `messages messages[0].content = [${vn}]`, 'data', req('POST', MSGS, { body: JSON.stringify(msgBody({ messages: [{ role: 'user', content: [v] }] })) }), { status: ANY })
    add('wrong-type', `messages messages[0] = ${vn}`, 'data', req('POST', MSGS, { body: JSON.stringify(msgBody({ messages: [v] })) }), { status: ANY })
  }
  for (const f of ['api_base', 'base_url', 'api_key']) {
    for (const [route, mk] of ROUTES) add('wrong-type', `${route}: routing field ${f} in the body`, 'data', req('POST', route, { body: JSON.stringify(mk({ [f]: 'http://169.254.169.254/' })) }), { status: BAD })
  }
}

// ---- 3. huge and odd numbers --------------------------------------------------------------------------
{
  const nums = ['1e308', '-1e308', '1e309', '-1e309', '-0', '0', '-1', '18446744073709551616', '9007199254740993', '1e-400', '123456789012345678901234567890', '0.1e1', '1E2', '2.5', '-0.0']
  const fields = ['temperature', 'top_p', 'max_tokens', 'max_completion_tokens', 'n', 'seed', 'presence_penalty', 'top_logprobs']
  for (const f of fields) {
    for (const n of nums) add('huge-number', `chat ${f} = ${n}`, 'data', req('POST', CHAT, { body: JSON.stringify(chatBody({ [f]: 0 })).replace(`"${f}":0`, `"${f}":${n}`) }), { status: ANY })
  }
  for (const n of nums) {
    add('huge-number', `embeddings dimensions = ${n}`, 'data', req('POST', EMB, { body: `{"model":"${EMB_MODEL}","input":"hi","dimensions":${n}}` }), { status: ANY })
    add('huge-number', `embeddings input = [${n}]`, 'data', req('POST', EMB, { body: `{"model":"${EMB_MODEL}","input":[${n}]}` }), { status: ANY })
    add('huge-number', `messages max_tokens = ${n}`, 'data', req('POST', MSGS, { body: `{"model":"${MODEL}","max_tokens":${n},"messages":[{"role":"user","content":"hi"}]}` }), { status: ANY })
  }
  add('huge-number', 'a number with 100k digits', 'data', req('POST', CHAT, { body: `{"model":"${MODEL}","messages":[{"role":"user","content":"hi"}],"seed":${'9'.repeat(100_000)}}` }), { status: ANY })
  add('huge-number', 'an exponent with 10k digits', 'data', req('POST', CHAT, { body: `{"model":"${MODEL}","messages":[{"role":"user","content":"hi"}],"temperature":1e${'9'.repeat(10_000)}}` }), { status: ANY })
}

// ---- 4. deep nesting, huge arrays and strings ----------------------------------------------------------
{
  for (const depth of [100, 1000, 10_000, 100_000]) {
    const arr = '['.repeat(depth) + ']'.repeat(depth)
    const obj = '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)
    add('deep-nesting', `chat body is an array nested ${depth} deep`, 'data', req('POST', CHAT, { body: arr }), { status: BAD })
    add('deep-nesting', `chat messages[0].content nested arrays ${depth}`, 'data', req('POST', CHAT, { body: `{"model":"${MODEL}","messages":[{"role":"user","content":${arr}}]}` }), { status: BAD })
    add('deep-nesting', `chat metadata nested objects ${depth}`, 'data', req('POST', CHAT, { body: `{"model":"${MODEL}","messages":[{"role":"user","content":"hi"}],"metadata":${obj}}` }), { status: BAD })
    add('deep-nesting', `chat tools[0].function.parameters nested ${depth}`, 'data', req('POST', CHAT, { body: `{"model":"${MODEL}","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":${obj}}}]}` }), { status: ANY })
    add('deep-nesting', `chat unknown field nested ${depth}`, 'data', req('POST', CHAT, { body: `{"model":"${MODEL}","messages":[{"role":"user","content":"hi"}],"x_extra":${obj}}` }), { status: ANY })
    add('deep-nesting', `chat response_format.json_schema nested ${depth}`, 'data', req('POST', CHAT, { body: `{"model":"${MODEL}","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":${obj}}}` }), { status: ANY })
    add('deep-nesting', `embeddings input nested ${depth}`, 'data', req('POST', EMB, { body: `{"model":"${EMB_MODEL}","input":${arr}}` }), { status: BAD })
    add('deep-nesting', `messages content nested ${depth}`, 'data', req('POST', MSGS, { body: `{"model":"${MODEL}","max_tokens":8,"messages":[{"role":"user","content":${arr}}]}` }), { status: ANY })
    add('deep-nesting', `messages tools input_schema nested ${depth}`, 'data', req('POST', MSGS, { body: `{"model":"${MODEL}","max_tokens":8,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"f","input_schema":${obj}}]}` }), { status: ANY })
    add('deep-nesting', `messages metadata nested ${depth}`, 'data', req('POST', MSGS, { body: `{"model":"${MODEL}","max_tokens":8,"messages":[{"role":"user","content":"hi"}],"metadata":${obj}}` }), { status: ANY })
    add('deep-nesting', `admin breaker body nested ${depth}`, 'admin', req('POST', '/api/v1/mcp/targets/nosuch/model/breaker', { body: `{"state":${obj}}` }), { status: BAD })
  }
  const big = (n: number, unit: string): [Buffer | string, number][] => [[unit, n]]
  const framed = (route: string, prefix: string, unit: string, n: number, suffix: string): [Buffer | string, number][] => {
    const len = Buffer.byteLength(prefix) + Buffer.byteLength(unit) * n + Buffer.byteLength(suffix)
    return [[`POST ${route} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nContent-Length: ${len}\r\n\r\n${prefix}`, 1], ...big(n, unit), [suffix, 1]]
  }
  add('huge-payload', 'chat with a 5 MB message string', 'data', framed(CHAT, `{"model":"${MODEL}","messages":[{"role":"user","content":"`, 'abcdefgh', 655_360, '"}]}'), { status: ANY })
  add('huge-payload', 'chat with 100k messages', 'data', framed(CHAT, `{"model":"${MODEL}","messages":[`, '{"role":"user","content":"a"},', 100_000, '{"role":"user","content":"a"}]}'), { status: ANY })
  add('huge-payload', 'chat with 10k stop strings', 'data', framed(CHAT, `{"model":"${MODEL}","messages":[{"role":"user","content":"a"}],"stop":[`, '"s",', 10_000, '"s"]}'), { status: BAD })
  add('huge-payload', 'chat with 200k unknown keys', 'data', framed(CHAT, `{"model":"${MODEL}","messages":[{"role":"user","content":"a"}],"x":{`, '"k":1,', 200_000, '"k":1}}'), { status: ANY })
  add('huge-payload', 'chat with 50k tools', 'data', framed(CHAT, `{"model":"${MODEL}","messages":[{"role":"user","content":"a"}],"tools":[`, '{"type":"function","function":{"name":"f"}},', 50_000, '{"type":"function","function":{"name":"f"}}]}'), { status: ANY })
  add('huge-payload', 'embeddings with 20k inputs', 'data', framed(EMB, `{"model":"${EMB_MODEL}","input":[`, '"a",', 20_000, '"a"]}'), { status: ANY })
  add('huge-payload', 'messages with a 5 MB system prompt', 'data', framed(MSGS, `{"model":"${MODEL}","max_tokens":8,"system":"`, 'abcdefgh', 655_360, '","messages":[{"role":"user","content":"a"}]}'), { status: ANY })
  add('huge-payload', 'chat with a model name of 1 MB', 'data', framed(CHAT, '{"model":"', 'm', 1_000_000, '","messages":[{"role":"user","content":"a"}]}'), { status: BAD })
  add('huge-payload', 'chat with a 1 MB key', 'data', framed(CHAT, `{"model":"${MODEL}","messages":[{"role":"user","content":"a"}],"`, 'k', 1_000_000, '":1}'), { status: ANY })
  add('huge-payload', 'chat with a string of 1M escapes', 'data', framed(CHAT, `{"model":"${MODEL}","messages":[{"role":"user","content":"`, '\\u00e9', 1_000_000, '"}]}'), { status: ANY })
  add('huge-payload', 'body over the 10 MiB limit with Content-Length', 'data', framed(CHAT, '{"x":"', 'aaaaaaaaaaaaaaaa', 700_000, '"}'), { status: [413, 413], close: true })
  add('huge-payload', 'chunked body over the 10 MiB limit', 'data', [[`POST ${CHAT} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`, 1], [`10000\r\n${'a'.repeat(0x10000)}\r\n`, 170], ['0\r\n\r\n', 1]], { status: [413, 413], close: true })
  add('huge-payload', 'admin breaker body over its 64 KiB limit', 'admin', framed('/api/v1/mcp/targets/nosuch/model/breaker', '{"state":"', 'a', 100_000, '"}'), { status: [413, 413], close: true })
}

// ---- 5. invalid UTF-8, overlong encodings, BOMs ---------------------------------------------------------
{
  const seqs: [string, number[]][] = [
    ['lone continuation byte', [0x80]], ['two continuation bytes', [0x80, 0xbf]], ['overlong slash (2 bytes)', [0xc0, 0xaf]],
    ['overlong slash (3 bytes)', [0xe0, 0x80, 0xaf]], ['overlong slash (4 bytes)', [0xf0, 0x80, 0x80, 0xaf]], ['overlong NUL', [0xc0, 0x80]],
    ['overlong quote', [0xc0, 0xa2]], ['encoded high surrogate', [0xed, 0xa0, 0x80]], ['encoded low surrogate', [0xed, 0xbf, 0xbf]],
    ['surrogate pair as CESU-8', [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80]], ['code point above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
    ['5-byte sequence', [0xf8, 0x88, 0x80, 0x80, 0x80]], ['6-byte sequence', [0xfc, 0x84, 0x80, 0x80, 0x80, 0x80]], ['byte FE', [0xfe]],
    ['byte FF', [0xff]], ['truncated 2-byte', [0xc3]], ['truncated 3-byte', [0xe2, 0x82]], ['truncated 4-byte', [0xf0, 0x9f, 0x98]],
    ['start byte followed by ASCII', [0xc3, 0x41]], ['latin-1 e-acute', [0xe9]], ['C1 as latin-1', [0x85]], ['raw NUL', [0x00]],
  ]
  for (const [route, mk] of ROUTES) {
    const valid = JSON.stringify(mk())
    const at = valid.indexOf('hi')
    for (const [name, bytes] of seqs) {
      const body = Buffer.concat([b(valid.slice(0, at)), Buffer.from(bytes), b(valid.slice(at))])
      add('invalid-utf8', `${route}: ${name} inside a string`, 'data', req('POST', route, { body }), { status: BAD })
    }
    const keyAt = valid.indexOf('model')
    add('invalid-utf8', `${route}: invalid byte inside a key`, 'data', req('POST', route, { body: Buffer.concat([b(valid.slice(0, keyAt)), Buffer.from([0xff]), b(valid.slice(keyAt))]) }), { status: BAD })
    add('invalid-utf8', `${route}: invalid byte between tokens`, 'data', req('POST', route, { body: Buffer.concat([b('{'), Buffer.from([0xc0, 0xaf]), b(valid.slice(1))]) }), { status: BAD })
    add('invalid-utf8', `${route}: UTF-16LE body with BOM`, 'data', req('POST', route, { body: Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(valid, 'utf16le')]) }), { status: BAD })
    add('invalid-utf8', `${route}: UTF-16BE body with BOM`, 'data', req('POST', route, { body: Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(valid, 'utf16le').swap16()]) }), { status: BAD })
    add('invalid-utf8', `${route}: UTF-32 body`, 'data', req('POST', route, { body: Buffer.concat([Buffer.from([0xff, 0xfe, 0, 0]), ...[...valid].map((c) => Buffer.from([c.charCodeAt(0), 0, 0, 0]))]) }), { status: BAD })
    add('invalid-utf8', `${route}: two UTF-8 BOMs`, 'data', req('POST', route, { body: `\ufeff\ufeff${valid}` }), { status: BAD })
    add('invalid-utf8', `${route}: lone surrogate escape (valid JSON)`, 'data', req('POST', route, { body: valid.replace('hi', '\\ud800') }), { status: ANY })
    add('invalid-utf8', `${route}: escaped NUL (valid JSON)`, 'data', req('POST', route, { body: valid.replace('hi', 'a\\u0000b') }), { status: ANY })
    add('invalid-utf8', `${route}: non-characters U+FFFE (valid UTF-8)`, 'data', req('POST', route, { body: valid.replace('hi', '\ufffe\uffff') }), { status: ANY })
    add('invalid-utf8', `${route}: invalid UTF-8 in the Authorization header`, 'data', req('POST', route, { body: valid, auth: false, headers: 'Authorization: Bearer \xff\xfe\xc0\xaf\r\n' }), { status: BAD })
  }
  add('invalid-utf8', 'invalid UTF-8 in the admin key', 'admin', req('GET', '/api/v1/mcp/config', { auth: false, headers: 'Authorization: Bearer \xc0\xaf\xff\r\n' }), { status: BAD })
  add('invalid-utf8', 'invalid UTF-8 in the admin breaker body', 'admin', req('POST', '/api/v1/mcp/targets/nosuch/model/breaker', { body: Buffer.concat([b('{"state":"'), Buffer.from([0xed, 0xa0, 0x80]), b('"}')]) }), { status: BAD })
  for (const p of ['/v1/models\xff', '/v1/\xc0\xafmodels', '/api/v1/mcp/\xc0\xaeconfig']) {
    add('invalid-utf8', `raw high bytes in the path ${JSON.stringify(p)}`, 'data', b(`GET ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`), { status: BAD })
    add('invalid-utf8', `raw high bytes in the admin path ${JSON.stringify(p)}`, 'admin', b(`GET ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`), { status: BAD })
  }
  add('invalid-utf8', 'percent-encoded invalid UTF-8 in an admin path parameter', 'admin', req('GET', '/api/v1/mcp/targets/%C0%AF/%FF'), { status: BAD })
  add('invalid-utf8', 'malformed percent-encoding in an admin path parameter', 'admin', req('GET', '/api/v1/mcp/targets/%ZZ/%'), { status: BAD })
}

// ---- 6. wrong content types ------------------------------------------------------------------------------
{
  const types = [
    'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'text/json', 'application/jsonx',
    'application/javascript', 'application/octet-stream', '*/*', 'json', 'application/', '/json', 'application/json,text/plain', 'text/html; charset=utf-8',
    'application/x-ndjson', 'a'.repeat(8000),
  ]
  for (const [route, mk] of ROUTES) {
    const body = JSON.stringify(mk())
    for (const t of types) add('content-type', `${route}: Content-Type ${t.slice(0, 40)}`, 'data', req('POST', route, { body, ct: t }), { status: BAD })
    for (const t of ['APPLICATION/JSON', 'application/json; charset=utf-8', 'application/json;charset=latin1', 'application/vnd.api+json', 'application/json ; x=y']) {
      add('content-type', `${route}: accepted Content-Type ${t}`, 'data', req('POST', route, { body, ct: t }), { status: ANY })
    }
    add('content-type', `${route}: empty Content-Type`, 'data', req('POST', route, { body, ct: '' }), { status: ANY })
    add('content-type', `${route}: no Content-Type`, 'data', req('POST', route, { body, ct: null }), { status: ANY })
    add('content-type', `${route}: two Content-Types`, 'data', req('POST', route, { body, ct: 'text/plain', headers: 'Content-Type: application/json\r\n' }), { status: ANY })
    add('content-type', `${route}: form-encoded body`, 'data', req('POST', route, { body: `model=${MODEL}&messages=hi`, ct: 'application/x-www-form-urlencoded' }), { status: BAD })
    add('content-type', `${route}: multipart body`, 'data', req('POST', route, { body: `--x\r\nContent-Disposition: form-data; name="model"\r\n\r\n${MODEL}\r\n--x--\r\n`, ct: 'multipart/form-data; boundary=x' }), { status: BAD })
    add('content-type', `${route}: Content-Encoding gzip on a plain body`, 'data', req('POST', route, { body, headers: 'Content-Encoding: gzip\r\n' }), { status: ANY })
    add('content-type', `${route}: gzip bytes as JSON`, 'data', req('POST', route, { body: Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3, 0xab, 0xae, 5, 0]), headers: 'Content-Encoding: gzip\r\n' }), { status: BAD })
  }
  for (const t of ['text/plain', 'application/xml', 'multipart/form-data']) {
    add('content-type', `admin breaker with Content-Type ${t}`, 'admin', req('POST', '/api/v1/mcp/targets/nosuch/model/breaker', { body: '{"state":"auto"}', ct: t }), { status: BAD })
  }
}

// ---- 7. missing, malformed and oversize headers; bad framing ---------------------------------------------
{
  const body = JSON.stringify(chatBody())
  const targets: ['data' | 'admin', string, string][] = [['data', 'POST', CHAT], ['data', 'GET', '/v1/models'], ['admin', 'GET', '/api/v1/mcp/config'], ['admin', 'POST', '/api/v1/mcp/targets/nosuch/model/breaker']]
  for (const [target, method, p] of targets) {
    const withBody = method === 'POST'
    const bodyHead = withBody ? 'Content-Type: application/json\r\n' : ''
    const bdy = withBody ? body : ''
    const raw = (headers: string, tail = bdy): Buffer => b(`${method} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}${bodyHead}${headers}\r\n${tail}`)
    const t = `${target} ${method} ${p}`
    add('headers', `${t}: no Host header`, target, b(`${method} ${p} HTTP/1.1\r\n${AUTH}${bodyHead}Content-Length: ${bdy.length}\r\n\r\n${bdy}`), { status: withBody ? ANY : ANY })
    add('headers', `${t}: two Host headers`, target, raw(`Host: y\r\nContent-Length: ${bdy.length}\r\n`), { status: ANY })
    add('headers', `${t}: header block over 16 KiB`, target, raw(`X-Big: ${'a'.repeat(17_000)}\r\nContent-Length: ${bdy.length}\r\n`), { status: [431, 431], close: true })
    add('headers', `${t}: 400 small headers`, target, raw(`${Array.from({ length: 400 }, (_, i) => `X-H${i}: v\r\n`).join('')}Content-Length: ${bdy.length}\r\n`), { status: ANY })
    add('headers', `${t}: 3000 tiny headers (over maxHeadersCount, under the size limit)`, target, raw(`${Array.from({ length: 3000 }, () => 'A: \r\n').join('')}Content-Length: ${bdy.length}\r\n`), { status: ANY })
    add('headers', `${t}: 1000 headers over 16 KiB`, target, raw(`${Array.from({ length: 1000 }, (_, i) => `X-Header-${i}: value-${i}\r\n`).join('')}Content-Length: ${bdy.length}\r\n`), { status: [431, 431], close: true })
    add('headers', `${t}: request target over 16 KiB`, target, b(`${method} ${p}?${'q'.repeat(17_000)} HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`), { status: [431, 431], close: true })
    add('headers', `${t}: Authorization over 16 KiB`, target, b(`${method} ${p} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'k'.repeat(17_000)}\r\n\r\n`), { status: [431, 431], close: true })
    add('headers', `${t}: header without a colon`, target, raw(`NoColonHere\r\nContent-Length: ${bdy.length}\r\n`), { status: BAD, close: true })
    add('headers', `${t}: empty header name`, target, raw(`: value\r\nContent-Length: ${bdy.length}\r\n`), { status: BAD, close: true })
    add('headers', `${t}: space in a header name`, target, raw(`X Y: v\r\nContent-Length: ${bdy.length}\r\n`), { status: BAD, close: true })
    add('headers', `${t}: space before the colon`, target, raw(`X-A : v\r\nContent-Length: ${bdy.length}\r\n`), { status: BAD, close: true })
    add('headers', `${t}: NUL in a header value`, target, raw(`X-A: a\x00b\r\nContent-Length: ${bdy.length}\r\n`), { status: BAD, close: true })
    add('headers', `${t}: bare CR in a header value`, target, raw(`X-A: a\rb\r\nContent-Length: ${bdy.length}\r\n`), { status: BAD, close: true })
    add('headers', `${t}: DEL in a header name`, target, raw(`X-\x7fA: v\r\nContent-Length: ${bdy.length}\r\n`), { status: BAD, close: true })
    add('headers', `${t}: obs-fold continuation line`, target, raw(`X-A: a\r\n folded\r\nContent-Length: ${bdy.length}\r\n`), { status: BAD, close: true })
    add('headers', `${t}: bare LF line endings`, target, b(`${method} ${p} HTTP/1.1\nHost: x\n${AUTH.replace('\r\n', '\n')}Content-Length: ${bdy.length}\n\n${bdy}`), { status: BAD, close: true })
    add('headers', `${t}: bare CR line endings`, target, b(`${method} ${p} HTTP/1.1\rHost: x\r\rContent-Length: 0\r\r`), { status: BAD, close: true })
    add('headers', `${t}: mixed LF after the request line`, target, b(`${method} ${p} HTTP/1.1\nHost: x\r\n${AUTH}Content-Length: ${bdy.length}\r\n\r\n${bdy}`), { status: BAD, close: true })
    add('headers', `${t}: high bytes in a header name`, target, raw(`X-\xe9: v\r\nContent-Length: ${bdy.length}\r\n`), { status: BAD, close: true })
    add('headers', `${t}: 8 KiB header name`, target, raw(`${'N'.repeat(8000)}: v\r\nContent-Length: ${bdy.length}\r\n`), { status: ANY })
    // Content-Length forms
    for (const [name, cl] of [['negative', '-1'], ['letters', 'abc'], ['exponent', '1e3'], ['hex', '0x10'], ['plus sign', '+10'], ['20 digits', '99999999999999999999'], ['comma list', `${bdy.length}, ${bdy.length}`], ['empty', ''], ['decimal', '1.0'], ['embedded space', '1 0']]) {
      add('framing', `${t}: Content-Length ${name}`, target, raw(`Content-Length: ${cl}\r\n`), { status: BAD, close: true })
    }
    add('framing', `${t}: Content-Length with leading whitespace`, target, raw(`Content-Length:    ${bdy.length}\r\n`), { status: ANY })
    add('framing', `${t}: Content-Length with trailing whitespace`, target, raw(`Content-Length: ${bdy.length}   \r\n`), { status: ANY })
    add('framing', `${t}: Content-Length with a tab`, target, raw(`Content-Length:\t${bdy.length}\r\n`), { status: ANY })
    add('framing', `${t}: two equal Content-Lengths`, target, raw(`Content-Length: ${bdy.length}\r\nContent-Length: ${bdy.length}\r\n`), { status: BAD, close: true })
    add('framing', `${t}: two different Content-Lengths`, target, raw(`Content-Length: ${bdy.length}\r\nContent-Length: ${bdy.length + 5}\r\n`), { status: BAD, close: true })
    add('framing', `${t}: Content-Length longer than the body (slow)`, target, raw(`Content-Length: ${bdy.length + 100}\r\n`), { status: withBody ? [408, 408] : ANY, slow: true })
    add('framing', `${t}: Content-Length shorter than the body, then a request`, target, Buffer.concat([raw(`Content-Length: ${Math.max(0, bdy.length - 3)}\r\n`)]), { status: ANY, responses: 1 })
    add('framing', `${t}: a huge Content-Length and no body`, target, raw('Content-Length: 1000000000\r\n', ''), { status: withBody ? BAD : ANY, ...(withBody ? { close: true } : { slow: true }) })
    add('framing', `${t}: headers never finished (slow)`, target, b(`${method} ${p} HTTP/1.1\r\nHost: x\r\nX-Partial: `), { status: [408, 408], slow: true, close: true })
  }
  add('headers', 'HTTP/1.0 request', 'data', b('GET /v1/models HTTP/1.0\r\n' + AUTH + '\r\n'), { status: ANY })
  add('headers', 'HTTP/1.0 request on admin', 'admin', b('GET /api/v1/mcp/config HTTP/1.0\r\n' + AUTH + '\r\n'), { status: ANY })
  for (const v of ['HTTP/0.9', 'HTTP/2.0']) {
    // llhttp accepts these versions; the answer is HTTP/1.1 and an ordinary one.
    add('headers', `version ${v}`, 'data', b(`GET /v1/models ${v}\r\nHost: x\r\n${AUTH}\r\n`), { status: ANY })
    add('headers', `admin version ${v}`, 'admin', b(`GET /healthz ${v}\r\nHost: x\r\n\r\n`), { status: ANY })
  }
  for (const v of ['HTTP/1.2', 'HTTP/9.9', 'HTTP/1', 'HTTP/1.1.1', 'http/1.1', 'HTTPS/1.1', 'HTTP/01.1', 'XYZ']) {
    add('headers', `version ${v}`, 'data', b(`GET /v1/models ${v}\r\nHost: x\r\n${AUTH}\r\n`), { status: BAD, close: true })
    add('headers', `admin version ${v}`, 'admin', b(`GET /healthz ${v}\r\nHost: x\r\n\r\n`), { status: BAD, close: true })
  }
  for (const [name, line] of [['no version', 'GET /v1/models'], ['two spaces', 'GET  /v1/models HTTP/1.1'], ['tab separator', 'GET\t/v1/models\tHTTP/1.1'], ['trailing space', 'GET /v1/models HTTP/1.1 '], ['empty request line', ''], ['only method', 'GET'], ['leading CRLF garbage', '\x00\x01\x02'], ['TLS ClientHello', '\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03'], ['HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM'], ['SSH banner', 'SSH-2.0-OpenSSH_9.6']] as const) {
    // llhttp tolerates a doubled space in the request line: an ordinary (401) answer, the connection kept.
    const close = name !== 'two spaces'
    add('headers', `request line: ${name}`, 'data', b(`${line}\r\nHost: x\r\n\r\n`), { status: BAD, ...(close ? { close } : {}) })
    add('headers', `admin request line: ${name}`, 'admin', b(`${line}\r\nHost: x\r\n\r\n`), { status: BAD, ...(close ? { close } : {}) })
  }
  add('headers', 'leading empty lines before the request line (tolerated)', 'data', b(`\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`), { status: ANY })
  for (const [name, h] of [['Expect: 100-continue', 'Expect: 100-continue\r\n'], ['Expect: something-else', 'Expect: something-else\r\n'], ['Expect: 200-ok', 'Expect: 200-ok\r\n'], ['Upgrade: websocket', 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n'], ['Upgrade: h2c', 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n'], ['Connection: close', 'Connection: close\r\n'], ['Connection: keep-alive, Upgrade', 'Connection: keep-alive, Upgrade\r\n'], ['Proxy-Connection', 'Proxy-Connection: keep-alive\r\n'], ['Max-Forwards 0', 'Max-Forwards: 0\r\n'], ['X-HTTP-Method-Override DELETE', 'X-HTTP-Method-Override: DELETE\r\n']] as const) {
    add('headers', `chat with ${name}`, 'data', req('POST', CHAT, { body: JSON.stringify(chatBody()), headers: h }), { status: name.startsWith('Expect: s') || name.startsWith('Expect: 2') ? [417, 417] : ANY })
    add('headers', `admin breaker with ${name}`, 'admin', req('POST', '/api/v1/mcp/targets/nosuch/model/breaker', { body: '{"state":"x"}', headers: h }), { status: name.startsWith('Expect: s') || name.startsWith('Expect: 2') ? [417, 417] : BAD })
  }
}

// ---- 8. request smuggling -------------------------------------------------------------------------------
{
  const body = JSON.stringify(chatBody())
  const vectors: [string, (method: string, p: string) => string, boolean][] = [
    // [name, request builder, must the connection close]
    ['CL.TE: Content-Length and Transfer-Encoding: chunked', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${CANARY}`, true],
    ['TE.CL: chunked first, Content-Length second', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n${CANARY}`, true],
    ['TE.TE: xchunked', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${CANARY}`, true],
    ['TE.TE: chunked, identity', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${CANARY}`, true],
    ['TE.TE: identity + CL', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${CANARY}`, true],
    ['TE.TE: two TE headers, second not chunked', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n${CANARY}`, true],
    ['TE.TE: space before the colon', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${CANARY}`, true],
    ['TE.TE: tab before the value', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Transfer-Encoding:\tchunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${CANARY}`, true],
    ['TE.TE: obs-fold value', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Transfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${CANARY}`, true],
    ['TE.TE: vertical tab', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Transfer-Encoding:\x0bchunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${CANARY}`, true],
    ['TE.TE: NUL in value', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Transfer-Encoding: chunked\x00\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${CANARY}`, true],
    ['TE.TE: quoted chunked', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Transfer-Encoding: "chunked"\r\n\r\n0\r\n\r\n${CANARY}`, true],
    ['TE.TE: chunked;q=1', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n${CANARY}`, true],
    // Transfer_Encoding is not Transfer-Encoding: Content-Length frames the body and the next request is a real one.
    ['Transfer_Encoding (underscore) is an ordinary header; CL frames', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Transfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`, false],
    ['TE.TE: bare LF before TE', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}X: y\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${CANARY}`, true],
    ['TE on HTTP/1.0', (m, p) => `${m} ${p} HTTP/1.0\r\nHost: x\r\n${AUTH}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${CANARY}`, true],
    ['CL: comma list with different values', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Length: 5, 40\r\n\r\n0\r\n\r\n${CANARY}`, true],
    ['CL: space before the colon', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Length : 5\r\n\r\n0\r\n\r\n${CANARY}`, true],
    ['CL: obs-fold value', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Length:\r\n 5\r\n\r\n0\r\n\r\n${CANARY}`, true],
    ['CL: duplicate differing', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Length: 0\r\nContent-Length: 44\r\n\r\n${CANARY}`, true],
    ['chunk size overflow', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n{}\r\n0\r\n\r\n${CANARY}`, true],
    ['chunk size with 0x prefix', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\n{}\r\n0\r\n\r\n${CANARY}`, true],
    ['negative chunk size', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\n{}\r\n0\r\n\r\n${CANARY}`, true],
    ['chunk size with leading space', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n 2\r\n{}\r\n0\r\n\r\n${CANARY}`, true],
    ['chunk data longer than its size', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}xx\r\n0\r\n\r\n${CANARY}`, true],
    ['chunk without CRLF after data', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}0\r\n\r\n${CANARY}`, true],
    ['bare LF chunk lines', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\n{}\n0\n\n${CANARY}`, true],
    ['bare CR in a chunk extension', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2;a=\rb\r\n{}\r\n0\r\n\r\n${CANARY}`, true],
    ['chunk extension with a quoted CRLF', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2;a="\r\n"\r\n{}\r\n0\r\n\r\n${CANARY}`, true],
    ['trailer with a Content-Length', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nContent-Length: 50\r\n\r\n${CANARY}`, false],
    ['GET with a body hiding a request', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Length: ${CANARY.length}\r\n\r\n${CANARY}`, false],
    ['valid chunk extension', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${(body.length).toString(16)};name=value\r\n${body}\r\n0\r\n\r\n`, false],
    ['valid chunked body in many 1-byte chunks', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${[...body].map((c) => `1\r\n${c}\r\n`).join('')}0\r\n\r\n`, false],
    ['uppercase CHUNKED', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nTransfer-Encoding: CHUNKED\r\n\r\n${(body.length).toString(16)}\r\n${body}\r\n0\r\n\r\n`, false],
    ['chunk extension of 20 KiB', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2;${'e'.repeat(20_000)}\r\n{}\r\n0\r\n\r\n`, false],
    ['Upgrade: h2c with a body', (m, p) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 0\r\n\r\n`, false],
    ['absolute-form with a different host', (m, p) => `${m} http://evil.example${p} HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Length: 0\r\n\r\n`, false],
    ['CONNECT tunnel request', () => `CONNECT 169.254.169.254:80 HTTP/1.1\r\nHost: 169.254.169.254:80\r\n${AUTH}\r\n${CANARY}`, true],
  ]
  const targets: ['data' | 'admin', string, string][] = [['data', 'POST', CHAT], ['data', 'POST', MSGS], ['data', 'GET', '/v1/models'], ['admin', 'POST', '/api/v1/mcp/targets/nosuch/model/breaker'], ['admin', 'GET', '/api/v1/mcp/config']]
  for (const [target, m, p] of targets) {
    for (const [name, build, close] of vectors) {
      add('smuggling', `${target} ${m} ${p}: ${name}`, target, b(build(m, p)), { status: ANY, canary: close, ...(close ? { close: true } : {}) })
    }
  }
}

// ---- 9. path confusion, methods, request targets ---------------------------------------------------------
{
  const adminPaths = [
    '/api/v1/mcp/../config', '/api/v1/mcp/./config', '/api/v1/mcp/config/..', '//api/v1/mcp/config', '/api//v1/mcp/config', '/api/v1/mcp/config/',
    '/api/v1/mcp/config;x=1', '/api/v1/mcp/config;', '/api/v1/mcp/%2e%2e/config', '/%2e%2e/api/v1/mcp/config', '/api/v1/mcp/%2E%2E/config',
    '/api%2fv1%2fmcp%2fconfig', '/api/v1/mcp/config%2f', '/api/v1/mcp/config%00', '/api/v1/mcp/config%20', '/api/v1/mcp/config.json',
    '/API/V1/MCP/CONFIG', '/Api/v1/mcp/config', '/api/v1/mcp/config#frag', '/api/v1/mcp/config?x=%zz', '/api/v1/mcp/%63onfig',
    '\\api\\v1\\mcp\\config', '/api/v1/mcp/config\\', '/..;/api/v1/mcp/config', '/api/v1/mcp;/config', '/./api/v1/mcp/config',
    '/metrics/', '/metrics;x', '/metrics/..', '/%6detrics', '/METRICS', '/healthz/../metrics', '/healthz/', '/healthz;', '/HEALTHZ', '/readyz/..',
    '/api/v1/mcp/config/reload/..', '/api/v1/mcp/targets/a/b/breaker/..', '/api/v1/mcp/targets/../../metrics', '/api/v1/mcp/targets/%2f/%2f',
    '/api/v1/mcp/targets/a%2fb/c', '/api/v1/mcp/targets/' + 'x'.repeat(5000) + '/m', '/' + 'a/'.repeat(4000), '/api/v1/mcp/targets/..%2f..%2fmetrics/x',
    '/api/v1/mcp/targets/%u002e/x', '/api/v1/mcp/config\t', '/api/v1/mcp/config%09', '/v1/chat/completions', '/admin', '/api',
  ]
  const methods = ['GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'OPTIONS', 'TRACE', 'HEAD']
  for (const p of adminPaths) {
    for (const m of methods) {
      const raw = (auth: boolean): Buffer => b(`${m} ${p} HTTP/1.1\r\nHost: x\r\n${auth ? AUTH : ''}${m === 'POST' || m === 'PUT' || m === 'PATCH' ? 'Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}' : '\r\n'}`)
      // Without the key every non-probe path is a 401; with it, an unknown path is 404/405 (or 400 for bytes llhttp refuses).
      add('path-confusion', `admin ${m} ${p.slice(0, 60)} without key`, 'admin', raw(false), { status: /[\t\\#]/.test(p) ? BAD : p.startsWith('/healthz') || p.startsWith('/readyz') || p.startsWith('/HEALTHZ') ? ANY : [401, 401] })
      add('path-confusion', `admin ${m} ${p.slice(0, 60)} with key`, 'admin', raw(true), { status: p.includes('?') ? ANY : BAD })
    }
  }
  const dataPaths = [
    '/api/v1/mcp/config', '/metrics', '/v1/../api/v1/mcp/config', '/v1/../metrics', '/%2e%2e/metrics', '//v1/models', '/v1//models', '/v1/models/',
    '/V1/MODELS', '/v1/models;x', '/v1/models%2f', '/v1/models/..', '/v1/chat/completions/../models', '/v1/chat%2fcompletions', '/v1/chat/completions;',
    '/v1/chat/completions/', '/v1/messages/', '/v1/%6dodels', '/v1/models#x', '/v1/models\\', '/admin', '/admin/keys', '/v1/proxy/anything',
    '/.env', '/../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/v1/models%00', '/' + 'x'.repeat(8000), '/v1/models?' + 'a=1&'.repeat(2000),
  ]
  for (const p of dataPaths) {
    for (const m of methods) {
      const raw = b(`${m} ${p} HTTP/1.1\r\nHost: x\r\n${AUTH}${m === 'POST' || m === 'PUT' || m === 'PATCH' ? `Content-Type: application/json\r\nContent-Length: ${JSON.stringify(chatBody()).length}\r\n\r\n${JSON.stringify(chatBody())}` : '\r\n'}`)
      add('path-confusion', `data ${m} ${p.slice(0, 60)}`, 'data', raw, { status: p.startsWith('/v1/models?') && (m === 'GET' || m === 'HEAD') ? ANY : BAD })
    }
  }
  const odd = ['PROPFIND', 'MKCOL', 'PURGE', 'LINK', 'UNLINK', 'SEARCH', 'LOCK', 'REPORT', 'M-SEARCH', 'NOTIFY', 'SUBSCRIBE', 'SOURCE', 'QUERY', 'FOO', 'get', 'G\x00ET', 'GET\xff', 'X'.repeat(100)]
  for (const m of odd) {
    add('methods', `data method ${JSON.stringify(m).slice(0, 40)}`, 'data', b(`${m} /v1/models HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`), { status: BAD })
    add('methods', `admin method ${JSON.stringify(m).slice(0, 40)}`, 'admin', b(`${m} /api/v1/mcp/config HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`), { status: BAD })
  }
  const targetForms = ['*', 'http://127.0.0.1/api/v1/mcp/config', 'http://evil.example/metrics', 'https://127.0.0.1/v1/models', 'http://user:pass@127.0.0.1/v1/models', '127.0.0.1:80', 'api/v1/mcp/config', 'v1/models', '?x=1', 'http:///v1/models', 'file:///etc/passwd', '//evil.example/v1/models']
  for (const t of targetForms) {
    for (const m of ['GET', 'OPTIONS']) {
      add('request-target', `data ${m} ${t}`, 'data', b(`${m} ${t} HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`), { status: BAD })
      add('request-target', `admin ${m} ${t} with key`, 'admin', b(`${m} ${t} HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`), { status: BAD })
    }
  }
  for (const host of ['evil.example', '169.254.169.254', 'localhost:8081', '', 'a'.repeat(5000), 'x/admin', '[::1]', '127.0.0.1@evil']) {
    add('request-target', `data Host: ${host.slice(0, 40)}`, 'data', b(`GET /api/v1/mcp/config HTTP/1.1\r\nHost: ${host}\r\n${AUTH}\r\n`), { status: BAD })
    add('request-target', `admin Host: ${host.slice(0, 40)} without key`, 'admin', b(`GET /api/v1/mcp/config HTTP/1.1\r\nHost: ${host}\r\n\r\n`), { status: [401, 401] })
  }
  // Pipelined requests: each answered, in order.
  add('pipelining', 'three pipelined GETs on the data plane', 'data', b(`GET /v1/models HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`.repeat(3)), { status: ANY, responses: 3 })
  add('pipelining', 'a POST then a GET, pipelined', 'data', Buffer.concat([req('POST', CHAT, { body: JSON.stringify(chatBody()) }), b(`GET /nope HTTP/1.1\r\nHost: x\r\n\r\n`)]), { status: ANY, responses: 2 })
  add('pipelining', 'a valid request then garbage', 'data', b(`GET /v1/models HTTP/1.1\r\nHost: x\r\n${AUTH}\r\nGARBAGE\x00\x01\r\n\r\n`), { status: ANY, responses: 1 })
  add('pipelining', 'admin: two pipelined probes', 'admin', b('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\n'), { status: ANY, responses: 2 })
}

const FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'cases.jsonl')
const text = cases.map((c) => JSON.stringify(c)).join('\n') + '\n'
writeFileSync(FILE, text)
const byCat = new Map<string, number>()
for (const c of cases) byCat.set(c.category, (byCat.get(c.category) ?? 0) + 1)
process.stdout.write(`${cases.length} cases, ${(text.length / 1024 / 1024).toFixed(2)} MB → ${FILE}\n${[...byCat].map(([k, v]) => `  ${k}: ${v}`).join('\n')}\n`)
