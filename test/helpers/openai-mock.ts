/**
 * OpenAI Chat Completions wire-format mock server (node:http only), used by the
 * gateway's tests and benchmarks. Listens on 127.0.0.1 by default.
 *
 * Endpoints (all under /v1):
 *   POST /v1/chat/completions   non-streaming `chat.completion` or SSE `chat.completion.chunk` stream
 *   POST /v1/embeddings         8 deterministic floats per input (or `dimensions`); base64 supported
 *   GET  /v1/models, GET /v1/models/:id
 * Anything else -> 404 in OpenAI's error shape `{error:{message,type,param,code}}`.
 * Every request needs `Authorization: Bearer <anything non-empty>` (else 401 invalid_api_key).
 * Invalid JSON -> 400; missing `model` -> 400; chat without `messages` -> 400. Content OpenAI refuses -> 400 in its
 * words: a message whose content is an empty array, an assistant message with no content and no tool calls.
 * Limits of OpenAI's own API -> 400 in its words (off with `limits: false`, for an OpenAI-compatible server such as
 * vLLM, which has none of them): more than 4 `stop` sequences, a function name in `tools` outside `^[a-zA-Z0-9_-]+$` or
 * longer than 64, a file part whose `file_data` is not a base64 PDF data URL (Chat Completions takes PDF files only).
 *
 * Deterministic replies (chat):
 *   - last message is a user message starting with "echo "  -> content "echo: <rest of that message>"
 *   - `tools` present (and tool_choice != 'none') and last user message contains "call tool"
 *       -> tool call of tools[0] with arguments '{"city": "Paris"}', content null, finish_reason 'tool_calls'
 *   - last message has role 'tool'                            -> content "tool result: <its content>"
 *   - otherwise "tok0 tok1 ... tok{N-1}", N = header `x-mock-tokens` (default 12), capped by
 *     max_completion_tokens / max_tokens (then finish_reason 'length').
 *   Streaming deltas join to exactly the non-streaming content: "tok0", " tok1", " tok2", ...
 *   prompt_tokens = ceil(total chars of message text / 4), min 1.
 *   Header `x-mock-chunk-delay-ms`: delay between SSE events.
 *   Header `x-mock-response-model`: the model the answer names (as OpenAI names a dated snapshot,
 *     `gpt-4o-2024-08-06` for `gpt-4o`); default the request's `model`.
 *   `service_tier` of the answer and of every chunk: the tier that served it, the request's `flex`, `priority` or
 *     `scale`, else `default`; header `x-mock-service-tier` names another (a project whose default is priority).
 *
 * FAULTS. Set `mock.fault = <spec>` (applies to subsequent requests) or send header
 * `x-mock-fault: <spec>` on one request (header wins over the property). A spec is either a
 * Fault object, a JSON object string ('{"status":400,"message":"a, b"}') or the DSL:
 *   items separated by ',' ';' or whitespace; each item `key:value`, `key=value` or a bare flag.
 *   A bare 3-digit number is shorthand for `status:<n>`.
 *     status:<4xx|5xx>   reply with an OpenAI error body. Defaults per status: 400/404
 *                        invalid_request_error, 401 invalid_api_key, 429 rate_limit_exceeded
 *                        (type 'requests'), 5xx server_error.
 *     code:<code>        error code; alone it implies a status: context_length_exceeded (400,
 *                        param 'messages'), content_filter (400), invalid_api_key (401),
 *                        model_not_found (404), rate_limit_exceeded / insufficient_quota (429),
 *                        server_error (500). Also type:<t>, param:<p>, message:<word> (use JSON
 *                        form for messages with spaces).
 *     retryAfter:<s>     `Retry-After: <s>` header (implies status 429 if no status given)
 *     retryAfterMs:<ms>  `retry-after-ms` header (also honoured by the official SDKs)
 *     shouldRetry:<true|false>  `x-should-retry` header (the official SDKs obey it over their own retry rules)
 *     times:<n>          fault applies to the next n matching requests only, then healthy again.
 *     every:<n>          fault applies to every n-th matching request only (every:2 = half).
 *                        For the property: counted on the property. For the header: counted per
 *                        distinct header value (reset() clears the counters).
 *     path:<substr>      only requests whose path contains <substr> match (others are healthy
 *                        and do not consume `times`)
 *     delayMs:<ms>       wait before sending headers (slow first byte); combinable with anything
 *     reset              destroy the socket with a TCP RST before any headers
 *     hang               read the request, never answer (socket stays open until client/close())
 *     cutAfter:<k>       streaming: role chunk + k content chunks, then close the socket (no
 *                        finish chunk, no [DONE]; client sees a truncated chunked body)
 *     stallAfter:<k>     streaming: role chunk + k content chunks, then silence forever
 *     malformedAfter:<k> streaming: after k content chunks send `data: {not json\n\n`, continue
 *     noDone             streaming: send everything (incl. usage chunk) but no `data: [DONE]`
 *     errorAfter:<k>     streaming: after k content chunks an in-stream error event
 *                        `data: {"error":{message,type:'server_error',param:null,code:null}}`, then
 *                        `data: [DONE]` and the end, as vLLM does (noDone: no [DONE] after it)
 *     chunkDelayMs:<ms>  streaming: delay between events (like the x-mock-chunk-delay-ms header)
 *   "content chunks" are token deltas (text) or argument fragments (tool calls); k larger than
 *   the number of content chunks means "after the last one".
 *   Examples: "status:429,retryAfter:2,times:1"  "503"  "code:context_length_exceeded"
 *             "reset"  "hang"  "cutAfter:3"  "delayMs:200 status:500"  "stallAfter:0"
 * An unparseable x-mock-fault header gets a 400 with code 'mock_invalid_fault'.
 *
 * Hung/stalled sockets and pending delays are destroyed/cancelled by close().
 * Each request is recorded (unless record:false) in `requests`; `aborted` becomes true when the
 * client closed the connection before the response finished (server-initiated closes from
 * faults and close() do not count). waitForAbort() returns the oldest not-yet-consumed aborted
 * record, or waits for the next one.
 *
 * Standalone: `node --experimental-strip-types test/helpers/openai-mock.ts` listens on
 * MOCK_PORT (default 9100, MOCK_HOST default 127.0.0.1, recording off unless MOCK_RECORD=1) and
 * prints `{"url":"http://127.0.0.1:9100/v1"}` on one line.
 */
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';

export interface MockRequestRecord {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: any;
  aborted: boolean;
  closedAt?: number;
  receivedAt: number;
  /** HTTP status sent (undefined if no headers were sent: reset/hang/abort before headers). */
  status?: number;
}

export interface Fault {
  status?: number;
  code?: string | null;
  type?: string;
  param?: string | null;
  message?: string;
  retryAfter?: number;
  retryAfterMs?: number;
  /** `x-should-retry` header ('true' or 'false'), the hint the official SDKs obey over their own retry rules. */
  shouldRetry?: string;
  times?: number;
  /** The fault applies to every n-th matching request only (every:2 = half of them); the others are healthy. */
  every?: number;
  path?: string;
  delayMs?: number;
  reset?: boolean;
  hang?: boolean;
  cutAfter?: number;
  stallAfter?: number;
  malformedAfter?: number;
  noDone?: boolean;
  errorAfter?: number;
  chunkDelayMs?: number;
}

/** A Fault object or its string form (DSL or JSON). */
export type FaultSpec = Fault | string;

export interface OpenAIMock {
  /** e.g. http://127.0.0.1:PORT/v1 (includes /v1 like the official SDK baseURL) */
  readonly url: string;
  readonly port: number;
  readonly requests: MockRequestRecord[];
  /** Parsed current fault (with `times` = remaining uses), or null. Setter accepts DSL strings. */
  get fault(): Fault | null;
  set fault(spec: FaultSpec | null);
  /** Clears requests, fault, header-fault counters and unconsumed abort records. */
  reset(): void;
  /** Destroys all sockets (incl. hung/stalled), cancels delays, stops listening. */
  close(): Promise<void>;
  /** Resolves with an aborted request record (oldest unconsumed, else the next one). Default 5000ms. */
  waitForAbort(timeoutMs?: number): Promise<MockRequestRecord>;
}

export interface StartOpenAIMockOptions {
  port?: number;
  host?: string;
  /** default true; benchmarks pass false so memory stays flat */
  record?: boolean;
  /** default true: refuse what OpenAI's own API refuses beyond content (limitRefusal); false for an OpenAI-compatible server */
  limits?: boolean;
}

const FINGERPRINT = 'fp_mock0001';
const MODELS: readonly string[] = ['gpt-4o', 'gpt-4o-mini', 'gpt-4.1', 'o3-mini', 'text-embedding-3-small'];
const MODEL_CREATED = 1715367049;
const TOOL_ARG_FRAGMENTS: readonly string[] = ['{"ci', 'ty": "Pa', 'ris"}'];
const TOOL_ARGS = TOOL_ARG_FRAGMENTS.join('');
const STREAM_BATCH_BYTES = 16384;
const MAX_TOKENS_HEADER = 100000;

// ---------------------------------------------------------------------------------------------
// Fault parsing
// ---------------------------------------------------------------------------------------------

const NUMERIC_KEYS = new Set([
  'status', 'retryAfter', 'retryAfterMs', 'times', 'delayMs', 'cutAfter', 'stallAfter', 'malformedAfter', 'errorAfter', 'chunkDelayMs', 'every',
]);
const FLAG_KEYS = new Set(['reset', 'hang', 'noDone']);
const STRING_KEYS = new Set(['code', 'type', 'param', 'message', 'path', 'shouldRetry']);

const CODE_STATUS: Readonly<Record<string, number>> = {
  context_length_exceeded: 400,
  content_filter: 400,
  content_policy_violation: 400,
  invalid_request_error: 400,
  invalid_api_key: 401,
  model_not_found: 404,
  rate_limit_exceeded: 429,
  insufficient_quota: 429,
  server_error: 500,
};

/** Parse a fault spec (object, JSON string or DSL string). Throws on invalid input. */
export function parseFault(spec: FaultSpec): Fault {
  if (typeof spec !== 'string') return validateFault({ ...spec });
  const s = spec.trim();
  if (s.startsWith('{')) {
    const obj: unknown = JSON.parse(s);
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new Error('fault JSON must be an object');
    return validateFault({ ...(obj as Fault) });
  }
  const out: Record<string, unknown> = {};
  for (const item of s.split(/[,;\s]+/)) {
    if (item === '') continue;
    if (/^\d{3}$/.test(item)) {
      out['status'] = Number(item);
      continue;
    }
    const m = /^([A-Za-z]+)(?:[:=](.*))?$/.exec(item);
    if (!m) throw new Error(`bad fault item "${item}"`);
    const key = m[1] as string;
    const value = m[2];
    if (FLAG_KEYS.has(key)) {
      out[key] = value === undefined || value === '' || value === 'true' || value === '1';
    } else if (NUMERIC_KEYS.has(key)) {
      const n = Number(value);
      if (value === undefined || value === '' || !Number.isFinite(n)) throw new Error(`fault "${key}" needs a number`);
      out[key] = n;
    } else if (STRING_KEYS.has(key)) {
      if (value === undefined) throw new Error(`fault "${key}" needs a value`);
      out[key] = key === 'param' && value === 'null' ? null : value;
    } else {
      throw new Error(`unknown fault key "${key}"`);
    }
  }
  return validateFault(out as Fault);
}

function validateFault(f: Fault): Fault {
  for (const key of Object.keys(f)) {
    if (!NUMERIC_KEYS.has(key) && !FLAG_KEYS.has(key) && !STRING_KEYS.has(key)) throw new Error(`unknown fault key "${key}"`);
  }
  if (f.status !== undefined && (!Number.isInteger(f.status) || f.status < 400 || f.status > 599)) {
    throw new Error(`fault status must be 4xx/5xx, got ${String(f.status)}`);
  }
  if (f.shouldRetry !== undefined && f.shouldRetry !== 'true' && f.shouldRetry !== 'false') {
    throw new Error(`fault shouldRetry must be true or false, got ${String(f.shouldRetry)}`);
  }
  if (f.status === undefined) {
    const implied = f.code != null ? CODE_STATUS[f.code] : undefined;
    if (implied !== undefined) f.status = implied;
    else if (f.retryAfter !== undefined || f.retryAfterMs !== undefined) f.status = 429;
    else if (f.code != null) f.status = 400;
  }
  return f;
}

function errorBody(f: Fault): { status: number; body: string } {
  const status = f.status ?? 500;
  let type: string;
  let code: string | null;
  let param: string | null = null;
  let message: string;
  if (status === 401) {
    type = 'invalid_request_error';
    code = 'invalid_api_key';
    message = 'Incorrect API key provided: sk-mock***. You can find your API key at https://platform.openai.com/account/api-keys.';
  } else if (status === 429) {
    type = f.code === 'insufficient_quota' ? 'insufficient_quota' : 'requests';
    code = 'rate_limit_exceeded';
    message = 'Rate limit reached for requests (mock). Please try again later.';
  } else if (status >= 500) {
    type = 'server_error';
    code = 'server_error';
    message = 'The server had an error while processing your request. Sorry about that! (mock)';
  } else if (status === 404) {
    type = 'invalid_request_error';
    code = 'model_not_found';
    message = 'The model does not exist or you do not have access to it. (mock)';
  } else {
    type = 'invalid_request_error';
    code = null;
    message = 'Invalid request (mock).';
  }
  if (f.code !== undefined) code = f.code;
  if (code === 'context_length_exceeded') {
    param = 'messages';
    type = 'invalid_request_error';
    message = "This model's maximum context length is 128000 tokens. However, your messages resulted in 200000 tokens. Please reduce the length of the messages.";
  } else if (code === 'content_filter' || code === 'content_policy_violation') {
    type = 'invalid_request_error';
    message = 'Your request was rejected as a result of our safety system. (mock)';
  } else if (code === 'insufficient_quota') {
    type = 'insufficient_quota';
    message = 'You exceeded your current quota, please check your plan and billing details. (mock)';
  }
  if (f.type !== undefined) type = f.type;
  if (f.param !== undefined) param = f.param;
  if (f.message !== undefined) message = f.message;
  return { status, body: JSON.stringify({ error: { message, type, param, code } }) };
}

function isErrorFault(f: Fault): boolean {
  return f.status !== undefined;
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    let s = '';
    for (const part of content) {
      if (part !== null && typeof part === 'object' && typeof (part as { text?: unknown }).text === 'string') {
        s += (part as { text: string }).text;
      }
    }
    return s;
  }
  return '';
}

function countPromptTokens(messages: unknown[]): number {
  let chars = 0;
  for (const m of messages) {
    if (m !== null && typeof m === 'object') chars += textOf((m as { content?: unknown }).content).length;
  }
  return Math.max(1, Math.ceil(chars / 4));
}

function splitWords(text: string): string[] {
  if (text === '') return [];
  return text.split(' ').map((w, i) => (i === 0 ? w : ' ' + w));
}

function usageObj(prompt: number, completion: number): object {
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

/** FNV-1a 32-bit */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function embeddingFor(text: string, dims: number): number[] {
  let x = hash32(text) || 1;
  const v: number[] = new Array<number>(dims);
  let norm = 0;
  for (let i = 0; i < dims; i++) {
    // xorshift32
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const f = x / 0xffffffff - 0.5;
    v[i] = f;
    norm += f * f;
  }
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < dims; i++) v[i] = Math.fround((v[i] as number) / norm);
  return v;
}

function headerString(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function headerInt(v: string | string[] | undefined, def: number, max: number): number {
  const s = headerString(v);
  if (s === undefined) return def;
  const n = Number.parseInt(s, 10);
  if (!Number.isFinite(n) || n < 0) return def;
  return Math.min(n, max);
}

type ReplyPlan =
  | { kind: 'text'; pieces: string[]; content: string; finish: 'stop' | 'length'; fixed: boolean }
  | { kind: 'tool'; name: string };

function planReply(body: Record<string, unknown>, messages: unknown[], tokensHeader: number): ReplyPlan {
  const last = messages[messages.length - 1] as { role?: unknown; content?: unknown } | undefined;
  const role = last?.role;
  const lastText = last ? textOf(last.content) : '';
  if (role === 'user') {
    if (lastText.startsWith('echo ')) {
      const content = 'echo: ' + lastText.slice(5);
      return { kind: 'text', pieces: splitWords(content), content, finish: 'stop', fixed: false };
    }
    const tools = body['tools'];
    if (Array.isArray(tools) && tools.length > 0 && body['tool_choice'] !== 'none' && lastText.includes('call tool')) {
      const t = tools[0] as { function?: { name?: unknown }; name?: unknown } | undefined;
      const name = typeof t?.function?.name === 'string' ? t.function.name : typeof t?.name === 'string' ? t.name : 'tool';
      return { kind: 'tool', name };
    }
  } else if (role === 'tool') {
    const content = 'tool result: ' + lastText;
    return { kind: 'text', pieces: splitWords(content), content, finish: 'stop', fixed: false };
  }
  let n = tokensHeader;
  let finish: 'stop' | 'length' = 'stop';
  const cap = typeof body['max_completion_tokens'] === 'number' ? body['max_completion_tokens'] : body['max_tokens'];
  if (typeof cap === 'number' && cap >= 0 && cap < n) {
    n = Math.floor(cap);
    finish = 'length';
  }
  const pieces: string[] = new Array<string>(n);
  for (let i = 0; i < n; i++) pieces[i] = i === 0 ? 'tok0' : ' tok' + i;
  return { kind: 'text', pieces, content: pieces.join(''), finish, fixed: true };
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

interface ReqCtx {
  rec: MockRequestRecord;
  /** the server closed the connection on purpose (fault) – not a client abort */
  serverClosed: boolean;
}

interface PendingSleep {
  timer: NodeJS.Timeout;
  resolve: () => void;
}

interface AbortWaiter {
  resolve: (r: MockRequestRecord) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Message content OpenAI refuses (400, its wording): an empty array of parts, and an assistant message with no
 * content (null or absent) and no tool_calls / function_call.
 */
function contentRefusal(messages: unknown[]): { message: string; code: string; param: string } | undefined {
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as { role?: unknown; content?: unknown; tool_calls?: unknown; function_call?: unknown } | null;
    const c = m?.content;
    if (Array.isArray(c) && c.length === 0) {
      return { message: `Invalid 'messages[${i}].content': empty array. Expected an array with minimum length 1, but got an empty array instead.`, code: 'empty_array', param: `messages[${i}].content` };
    }
    const calls = Array.isArray(m?.tool_calls) && m.tool_calls.length > 0;
    if (m?.role === 'assistant' && c == null && !calls && m.function_call == null) {
      return { message: "Invalid value for 'content': expected a string, got null.", code: 'invalid_value', param: `messages.[${i}].content` };
    }
  }
  return undefined;
}

/** OpenAI's limits on a chat request's parameters (400, its wording), or undefined. */
function limitRefusal(body: Record<string, unknown>): { message: string; code: string; param: string } | undefined {
  const stop = body['stop'];
  if (Array.isArray(stop) && stop.length > 4) {
    return { message: `Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with length ${stop.length} instead.`, code: 'array_above_max_length', param: 'stop' };
  }
  // Chat Completions takes files as PDFs only (text is sent as text).
  const messages = Array.isArray(body['messages']) ? (body['messages'] as { content?: unknown }[]) : [];
  for (let i = 0; i < messages.length; i++) {
    const c = messages[i]?.content;
    if (!Array.isArray(c)) continue;
    for (let j = 0; j < c.length; j++) {
      const data = (c[j] as { type?: unknown; file?: { file_data?: unknown } } | null)?.type === 'file' ? (c[j] as { file?: { file_data?: unknown } }).file?.file_data : undefined;
      if (typeof data !== 'string' || data.startsWith('data:application/pdf;base64,')) continue;
      const param = `messages[${i}].content[${j}].file.file_data`;
      const mime = /^data:([^;,]*)/.exec(data)?.[1] ?? '';
      return { message: `Invalid file data: '${param}'. Expected a base64-encoded data URL with an application/pdf MIME type (e.g. 'data:application/pdf;base64,SGVsbG8sIHdvcmxkIQ=='), but got unsupported MIME type '${mime}'.`, code: 'invalid_value', param };
    }
  }
  const tools = Array.isArray(body['tools']) ? (body['tools'] as { function?: { name?: unknown } }[]) : [];
  for (let i = 0; i < tools.length; i++) {
    const name = tools[i]?.function?.name;
    const param = `tools[${i}].function.name`;
    if (typeof name !== 'string') continue;
    if (name.length > 64) {
      return { message: `Invalid '${param}': string too long. Expected a string with maximum length 64, but got a string with length ${name.length} instead.`, code: 'string_above_max_length', param };
    }
    if (!/^[a-zA-Z0-9_-]+$/.test(name)) {
      return { message: `Invalid '${param}': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.`, code: 'invalid_value', param };
    }
  }
  return undefined;
}

export function startOpenAIMock(opts: StartOpenAIMockOptions = {}): Promise<OpenAIMock> {
  const host = opts.host ?? '127.0.0.1';
  const record = opts.record ?? true;
  const limits = opts.limits ?? true;

  const requests: MockRequestRecord[] = [];
  const sockets = new Set<Socket>();
  const sleeps = new Set<PendingSleep>();
  const abortQueue: MockRequestRecord[] = [];
  const abortWaiters: AbortWaiter[] = [];
  const headerFaultUses = new Map<string, number>();
  const headerFaultCache = new Map<string, Fault | Error>();
  const completionCache = new Map<string, string>();
  let propFault: Fault | null = null;
  let closing = false;
  let seq = 0;
  const idPrefix = Math.random().toString(36).slice(2, 8);

  function sleep(ms: number): Promise<void> {
    if (!(ms > 0) || closing) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const entry: PendingSleep = {
        timer: setTimeout(() => {
          sleeps.delete(entry);
          resolve();
        }, ms),
        resolve,
      };
      sleeps.add(entry);
    });
  }

  function onAbort(rec: MockRequestRecord): void {
    const w = abortWaiters.shift();
    if (w) {
      clearTimeout(w.timer);
      w.resolve(rec);
      return;
    }
    abortQueue.push(rec);
    if (abortQueue.length > 100) abortQueue.shift();
  }

  /** Select the fault for this request; consumes `times`. Returns Error for an invalid header. */
  function selectFault(path: string, headerValue: string | undefined): Fault | Error | null {
    if (headerValue !== undefined && headerValue.trim() !== '') {
      let f = headerFaultCache.get(headerValue);
      if (f === undefined) {
        try {
          f = parseFault(headerValue);
        } catch (e) {
          f = e instanceof Error ? e : new Error(String(e));
        }
        if (headerFaultCache.size > 1000) headerFaultCache.clear();
        headerFaultCache.set(headerValue, f);
      }
      if (f instanceof Error) return f;
      if (f.path !== undefined && !path.includes(f.path)) return null;
      if (f.times !== undefined) {
        const used = headerFaultUses.get(headerValue) ?? 0;
        if (used >= f.times) return null;
        headerFaultUses.set(headerValue, used + 1);
      }
      return f;
    }
    const f = propFault;
    if (f === null) return null;
    if (f.path !== undefined && !path.includes(f.path)) return null;
    if (f.every !== undefined) {
      everyCount += 1;
      if (everyCount % f.every !== 0) return null;
    }
    if (f.times !== undefined) {
      if (f.times <= 0) {
        propFault = null;
        return null;
      }
      f.times -= 1;
      if (f.times <= 0) propFault = null;
    }
    return f;
  }

  let everyCount = 0;

  function nextId(): string {
    seq += 1;
    return idPrefix + seq.toString(36);
  }

  function sendJson(res: ServerResponse, ctx: ReqCtx, status: number, body: string, extra?: Record<string, string>): void {
    if (res.destroyed) return;
    ctx.rec.status = status;
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'x-request-id': 'req_' + nextId(),
      'openai-processing-ms': 1,
    };
    if (extra) Object.assign(headers, extra);
    res.writeHead(status, headers);
    res.end(body);
  }

  function sendError(
    res: ServerResponse,
    ctx: ReqCtx,
    status: number,
    message: string,
    type: string,
    code: string | null,
    param: string | null = null,
  ): void {
    sendJson(res, ctx, status, JSON.stringify({ error: { message, type, param, code } }));
  }

  function sendFaultError(res: ServerResponse, ctx: ReqCtx, f: Fault): void {
    const { status, body } = errorBody(f);
    const extra: Record<string, string> = {};
    if (f.retryAfter !== undefined) extra['retry-after'] = String(f.retryAfter);
    if (f.retryAfterMs !== undefined) extra['retry-after-ms'] = String(f.retryAfterMs);
    if (f.shouldRetry !== undefined) extra['x-should-retry'] = f.shouldRetry;
    sendJson(res, ctx, status, body, extra);
  }

  // ---- chat completions -----------------------------------------------------------------------

  function nonStreamingCompletion(
    res: ServerResponse,
    ctx: ReqCtx,
    model: string,
    plan: ReplyPlan,
    promptTokens: number,
    tier: string,
  ): void {
    const head = `{"id":"chatcmpl-${nextId()}","object":"chat.completion","created":${Math.floor(Date.now() / 1000)}`;
    let tail: string | undefined;
    let key: string | undefined;
    if (plan.kind === 'text' && plan.fixed) {
      key = `${model}\u0000${plan.pieces.length}\u0000${plan.finish}\u0000${promptTokens}\u0000${tier}`;
      tail = completionCache.get(key);
    }
    if (tail === undefined) {
      let message: object;
      let finish: string;
      let completionTokens: number;
      if (plan.kind === 'tool') {
        message = {
          role: 'assistant',
          content: null,
          refusal: null,
          annotations: [],
          tool_calls: [{ id: 'call_' + nextId(), type: 'function', function: { name: plan.name, arguments: TOOL_ARGS } }],
        };
        finish = 'tool_calls';
        completionTokens = Math.max(1, Math.ceil((plan.name.length + TOOL_ARGS.length) / 4));
      } else {
        message = { role: 'assistant', content: plan.content, refusal: null, annotations: [] };
        finish = plan.finish;
        completionTokens = plan.pieces.length;
      }
      const rest = JSON.stringify({
        model,
        choices: [{ index: 0, message, logprobs: null, finish_reason: finish }],
        usage: usageObj(promptTokens, completionTokens),
        service_tier: tier,
        system_fingerprint: FINGERPRINT,
      });
      tail = ',' + rest.slice(1);
      if (key !== undefined) {
        if (completionCache.size > 1000) completionCache.clear();
        completionCache.set(key, tail);
      }
    }
    sendJson(res, ctx, 200, head + tail);
  }

  async function streamingCompletion(
    res: ServerResponse,
    ctx: ReqCtx,
    model: string,
    plan: ReplyPlan,
    promptTokens: number,
    includeUsage: boolean,
    chunkDelay: number,
    f: Fault | null,
    tier: string,
  ): Promise<void> {
    const created = Math.floor(Date.now() / 1000);
    const head =
      `data: {"id":"chatcmpl-${nextId()}","object":"chat.completion.chunk","created":${created},` +
      `"model":${JSON.stringify(model)},"service_tier":"${tier}","system_fingerprint":"${FINGERPRINT}","choices":[`;
    const tail = includeUsage ? '],"usage":null}\n\n' : ']}\n\n';
    const chunk = (delta: object, finish: string | null): string =>
      head + JSON.stringify({ index: 0, delta, logprobs: null, finish_reason: finish }) + tail;

    let first: string;
    let contents: string[];
    let finish: string;
    let completionTokens: number;
    if (plan.kind === 'tool') {
      first = chunk(
        {
          role: 'assistant',
          content: null,
          tool_calls: [{ index: 0, id: 'call_' + nextId(), type: 'function', function: { name: plan.name, arguments: '' } }],
          refusal: null,
        },
        null,
      );
      contents = TOOL_ARG_FRAGMENTS.map((a) => chunk({ tool_calls: [{ index: 0, function: { arguments: a } }] }, null));
      finish = 'tool_calls';
      completionTokens = Math.max(1, Math.ceil((plan.name.length + TOOL_ARGS.length) / 4));
    } else {
      first = chunk({ role: 'assistant', content: '', refusal: null }, null);
      contents = plan.pieces.map((p) => chunk({ content: p }, null));
      finish = plan.finish;
      completionTokens = plan.pieces.length;
    }

    ctx.rec.status = 200;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-request-id': 'req_' + nextId(),
      'openai-processing-ms': 1,
    });

    let buf = '';
    let events = 0;
    const flush = async (): Promise<boolean> => {
      if (res.destroyed || closing) return false;
      if (buf !== '') {
        const s = buf;
        buf = '';
        if (!res.write(s)) {
          await new Promise<void>((resolve) => {
            const done = (): void => {
              res.off('drain', done);
              res.off('close', done);
              resolve();
            };
            res.on('drain', done);
            res.on('close', done);
          });
        }
      }
      return !res.destroyed && !closing;
    };
    const emit = async (s: string): Promise<boolean> => {
      if (chunkDelay > 0 && events > 0) {
        if (!(await flush())) return false;
        await sleep(chunkDelay);
        if (res.destroyed || closing) return false;
      }
      events += 1;
      buf += s;
      if (chunkDelay > 0 || buf.length >= STREAM_BATCH_BYTES) return flush();
      return true;
    };

    const total = contents.length;
    const at = (k: number | undefined, sent: number): boolean => k !== undefined && Math.min(k, total) === sent;
    let malformedDone = false;
    /** returns false when the stream must stop here */
    const checkpoint = async (sent: number): Promise<boolean> => {
      if (f === null) return true;
      if (!malformedDone && at(f.malformedAfter, sent)) {
        malformedDone = true;
        if (!(await emit('data: {not json\n\n'))) return false;
      }
      if (at(f.errorAfter, sent)) {
        const err = { error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: null } };
        if (!(await emit(`data: ${JSON.stringify(err)}\n\n`))) return false;
        if (f.noDone !== true && !(await emit('data: [DONE]\n\n'))) return false;
        if (await flush()) res.end();
        return false;
      }
      if (at(f.cutAfter, sent)) {
        await flush();
        const sock = res.socket;
        ctx.serverClosed = true;
        if (sock && !sock.destroyed) sock.end(() => sock.destroy());
        else res.destroy();
        return false;
      }
      if (at(f.stallAfter, sent)) {
        await flush();
        return false; // keep the socket open silently; close() destroys it
      }
      return true;
    };

    if (!(await emit(first))) return;
    if (!(await checkpoint(0))) return;
    for (let i = 0; i < total; i++) {
      if (!(await emit(contents[i] as string))) return;
      if (!(await checkpoint(i + 1))) return;
    }
    if (!(await emit(chunk({}, finish)))) return;
    if (includeUsage) {
      const u = head + '],"usage":' + JSON.stringify(usageObj(promptTokens, completionTokens)) + '}\n\n';
      if (!(await emit(u))) return;
    }
    if (!(f?.noDone === true)) {
      if (!(await emit('data: [DONE]\n\n'))) return;
    }
    if (!(await flush())) return;
    res.end();
  }

  async function handleChat(
    req: IncomingMessage,
    res: ServerResponse,
    ctx: ReqCtx,
    body: Record<string, unknown>,
    f: Fault | null,
  ): Promise<void> {
    const named = req.headers['x-mock-response-model'];
    const model = typeof named === 'string' && named !== '' ? named : body['model'] as string;
    const messages = body['messages'];
    if (!Array.isArray(messages)) {
      sendError(res, ctx, 400, "Missing required parameter: 'messages'.", 'invalid_request_error', 'missing_required_parameter', 'messages');
      return;
    }
    const refused = contentRefusal(messages) ?? (limits ? limitRefusal(body) : undefined);
    if (refused) {
      sendError(res, ctx, 400, refused.message, 'invalid_request_error', refused.code, refused.param);
      return;
    }
    const tokens = headerInt(req.headers['x-mock-tokens'], 12, MAX_TOKENS_HEADER);
    const plan = planReply(body, messages, tokens);
    const promptTokens = countPromptTokens(messages);
    // The tier that served it, as OpenAI answers: the one asked for, `default` for `auto` (a project without another
    // default) or none; header x-mock-service-tier overrides (a project whose default is priority, a priority request
    // served at the default tier).
    const askedTier = body['service_tier'];
    const namedTier = req.headers['x-mock-service-tier'];
    const tier = typeof namedTier === 'string' && /^[a-z]{1,20}$/.test(namedTier) ? namedTier
      : askedTier === 'flex' || askedTier === 'priority' || askedTier === 'scale' ? askedTier : 'default';
    if (body['stream'] === true) {
      const so = body['stream_options'] as { include_usage?: unknown } | null | undefined;
      const includeUsage = so !== null && typeof so === 'object' && so.include_usage === true;
      const chunkDelay = f?.chunkDelayMs ?? headerInt(req.headers['x-mock-chunk-delay-ms'], 0, 600000);
      await streamingCompletion(res, ctx, model, plan, promptTokens, includeUsage, chunkDelay, f, tier);
    } else {
      nonStreamingCompletion(res, ctx, model, plan, promptTokens, tier);
    }
  }

  // ---- embeddings / models ----------------------------------------------------------------------

  function handleEmbeddings(res: ServerResponse, ctx: ReqCtx, body: Record<string, unknown>): void {
    const input = body['input'];
    let inputs: string[];
    if (typeof input === 'string') inputs = [input];
    else if (Array.isArray(input) && input.length > 0) {
      inputs = input.map((x) => (typeof x === 'string' ? x : JSON.stringify(x)));
    } else {
      sendError(res, ctx, 400, "Missing required parameter: 'input'.", 'invalid_request_error', 'missing_required_parameter', 'input');
      return;
    }
    const dimsReq = body['dimensions'];
    const dims = typeof dimsReq === 'number' && dimsReq >= 1 && dimsReq <= 4096 ? Math.floor(dimsReq) : 8;
    const base64 = body['encoding_format'] === 'base64';
    let promptTokens = 0;
    const data = inputs.map((text, index) => {
      promptTokens += Math.max(1, Math.ceil(text.length / 4));
      const v = embeddingFor(text, dims);
      const embedding = base64 ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v;
      return { object: 'embedding', index, embedding };
    });
    sendJson(
      res,
      ctx,
      200,
      JSON.stringify({ object: 'list', data, model: body['model'], usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } }),
    );
  }

  function modelObj(id: string): object {
    return { id, object: 'model', created: MODEL_CREATED, owned_by: id.startsWith('text-') ? 'openai-internal' : 'system' };
  }

  // ---- request entry ----------------------------------------------------------------------------

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const rawPath = req.url ?? '/';
    const q = rawPath.indexOf('?');
    const path = q === -1 ? rawPath : rawPath.slice(0, q);
    const rec: MockRequestRecord = {
      method,
      path: rawPath,
      headers: record ? req.headers : {},
      body: undefined,
      aborted: false,
      receivedAt: Date.now(),
    };
    const ctx: ReqCtx = { rec, serverClosed: false };
    if (record) requests.push(rec);
    res.on('close', () => {
      rec.closedAt = Date.now();
      if (!res.writableFinished && !ctx.serverClosed && !closing) {
        rec.aborted = true;
        onAbort(rec);
      }
    });

    // Read the body.
    let raw = '';
    if (method !== 'GET' && method !== 'HEAD') {
      const chunks: Buffer[] = [];
      try {
        for await (const c of req) chunks.push(c as Buffer);
      } catch {
        return; // client went away mid-body; 'close' handler records the abort
      }
      raw = chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8');
    }
    let body: unknown;
    let jsonError = false;
    if (raw !== '') {
      try {
        body = JSON.parse(raw);
      } catch {
        jsonError = true;
      }
      if (record) rec.body = jsonError ? raw : body;
    }

    // Faults.
    const f = selectFault(path, headerString(req.headers['x-mock-fault']));
    if (f instanceof Error) {
      sendError(res, ctx, 400, `invalid x-mock-fault: ${f.message}`, 'invalid_request_error', 'mock_invalid_fault');
      return;
    }
    if (f !== null) {
      if (f.delayMs !== undefined && f.delayMs > 0) {
        await sleep(f.delayMs);
        if (res.destroyed || closing) return;
      }
      if (f.reset === true) {
        ctx.serverClosed = true;
        const sock = req.socket;
        if (typeof sock.resetAndDestroy === 'function') sock.resetAndDestroy();
        else sock.destroy();
        return;
      }
      if (f.hang === true) return; // never answer
      if (isErrorFault(f)) {
        sendFaultError(res, ctx, f);
        return;
      }
    }

    // Auth.
    const auth = headerString(req.headers['authorization']);
    if (auth === undefined || !/^Bearer\s+\S/i.test(auth)) {
      sendError(
        res,
        ctx,
        401,
        "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        'invalid_request_error',
        'invalid_api_key',
      );
      return;
    }

    // Routing.
    if (method === 'GET' && path === '/v1/models') {
      sendJson(res, ctx, 200, JSON.stringify({ object: 'list', data: MODELS.map(modelObj) }));
      return;
    }
    if (method === 'GET' && path.startsWith('/v1/models/')) {
      const id = decodeURIComponent(path.slice('/v1/models/'.length));
      if (MODELS.includes(id)) sendJson(res, ctx, 200, JSON.stringify(modelObj(id)));
      else sendError(res, ctx, 404, `The model '${id}' does not exist`, 'invalid_request_error', 'model_not_found', 'model');
      return;
    }
    const isChat = path === '/v1/chat/completions';
    const isEmb = path === '/v1/embeddings';
    if (method !== 'POST' || (!isChat && !isEmb)) {
      sendError(res, ctx, 404, `Invalid URL (${method} ${path})`, 'invalid_request_error', null);
      return;
    }
    if (jsonError) {
      sendError(
        res,
        ctx,
        400,
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
        'invalid_request_error',
        null,
      );
      return;
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      sendError(res, ctx, 400, 'The request body must be a JSON object.', 'invalid_request_error', null);
      return;
    }
    const obj = body as Record<string, unknown>;
    if (typeof obj['model'] !== 'string' || obj['model'] === '') {
      sendError(res, ctx, 400, 'you must provide a model parameter', 'invalid_request_error', null);
      return;
    }
    if (isChat) await handleChat(req, res, ctx, obj, f);
    else handleEmbeddings(res, ctx, obj);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent && !res.destroyed) {
        const msg = err instanceof Error ? err.message : String(err);
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `mock internal error: ${msg}`, type: 'server_error', param: null, code: 'server_error' } }));
      } else {
        res.destroy();
      }
    });
  });
  server.keepAliveTimeout = 65000;
  server.headersTimeout = 66000;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('clientError', (_err, socket) => {
    if (!socket.destroyed) socket.destroy();
  });

  return new Promise<OpenAIMock>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      const port = (server.address() as AddressInfo).port;
      const urlHost = host.includes(':') ? `[${host}]` : host;
      let closePromise: Promise<void> | undefined;
      const mock: OpenAIMock = {
        url: `http://${urlHost}:${port}/v1`,
        port,
        requests,
        get fault(): Fault | null {
          return propFault;
        },
        set fault(spec: FaultSpec | null) {
          propFault = spec === null ? null : parseFault(spec);
        },
        reset(): void {
          requests.length = 0;
          propFault = null;
          headerFaultUses.clear();
          abortQueue.length = 0;
        },
        waitForAbort(timeoutMs = 5000): Promise<MockRequestRecord> {
          const queued = abortQueue.shift();
          if (queued) return Promise.resolve(queued);
          return new Promise<MockRequestRecord>((res, rej) => {
            const w: AbortWaiter = {
              resolve: res,
              reject: rej,
              timer: setTimeout(() => {
                const i = abortWaiters.indexOf(w);
                if (i !== -1) abortWaiters.splice(i, 1);
                rej(new Error(`openai-mock: no aborted request within ${timeoutMs}ms`));
              }, timeoutMs),
            };
            abortWaiters.push(w);
          });
        },
        close(): Promise<void> {
          if (closePromise) return closePromise;
          closing = true;
          for (const s of sleeps) {
            clearTimeout(s.timer);
            s.resolve();
          }
          sleeps.clear();
          for (const w of abortWaiters.splice(0)) {
            clearTimeout(w.timer);
            w.reject(new Error('openai-mock closed'));
          }
          closePromise = new Promise<void>((res) => {
            server.close(() => res());
            server.closeAllConnections();
            for (const s of sockets) s.destroy();
            sockets.clear();
          });
          return closePromise;
        },
      };
      resolve(mock);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Standalone mode
// ---------------------------------------------------------------------------------------------

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  const port = Number(process.env['MOCK_PORT'] ?? 9100);
  const host = process.env['MOCK_HOST'] ?? '127.0.0.1';
  const mock = await startOpenAIMock({ port, host, record: process.env['MOCK_RECORD'] === '1' });
  process.stdout.write(JSON.stringify({ url: mock.url }) + '\n');
  const stop = (): void => {
    void mock.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
