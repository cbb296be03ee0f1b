/**
 * Usage of a request answered over several attempts. A stream cut mid-way and resumed on another target (alias
 * `streamRecovery: resume`) was billed by its provider for its prompt and what it generated before the cut: the
 * attempt is kept in `ctx.attemptLog` with that usage (its own usage report when it sent one before the cut, else
 * an estimate of its prompt and of the text the client got from it). The request's usage (`ctx.usage`) is then the
 * sum over its attempts, and its cost prices each attempt at its own provider and model (gateway/cost/meter.ts).
 */
import type { AttemptRecord, RequestCtx } from '../context.ts'
import type { Usage } from '../../providers/types.ts'
import type { GatewayError } from '../errors.ts'
import { estimateUsage, loadTokenizer, tokenizerLoaded } from './estimate.ts'

/**
 * Most tokens one answer is counted with (2^32, far past any context window). A provider's absurd count (1e21)
 * is no BIGINT (the parameter is '1e+21'), and sums near 2^63 overflow the rollup columns: either failed the
 * whole multi-row rollup upsert, at every retry, for every row.
 */
const MAX_TOKENS = 2 ** 32

function int(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.min(Math.floor(v), MAX_TOKENS) : 0
}

function usageOf(prompt: number, completion: number, cached: number, cacheWrite: number, reasoning: number, searches = 0, cacheWrite1h = 0): Usage {
  const out: Usage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }
  if (cached !== 0 || cacheWrite !== 0) out.prompt_tokens_details = { cached_tokens: cached, cache_creation_tokens: cacheWrite }
  // Anthropic's 1-hour cache writes (part of the cache writes, priced apart).
  if (cacheWrite1h !== 0) out.prompt_tokens_details!.cache_creation_1h_tokens = Math.min(cacheWrite, cacheWrite1h)
  if (reasoning !== 0) out.completion_tokens_details = { reasoning_tokens: reasoning }
  // Only what is priced (web searches, PriceEntry.webSearch): fetches cost their tokens alone.
  if (searches !== 0) out.server_tool_use = { web_search_requests: searches }
  return out
}

/** Usage as the provider reported it, made safe to price: non-negative integers, details within their totals. */
export function normalizeUsage(u: Usage): Usage {
  const prompt = int(u.prompt_tokens)
  const completion = int(u.completion_tokens)
  const cached = Math.min(prompt, int(u.prompt_tokens_details?.cached_tokens))
  const cacheWrite = Math.min(prompt - cached, int(u.prompt_tokens_details?.cache_creation_tokens))
  return usageOf(prompt, completion, cached, cacheWrite, Math.min(completion, int(u.completion_tokens_details?.reasoning_tokens)), int(u.server_tool_use?.web_search_requests), Math.min(cacheWrite, int(u.prompt_tokens_details?.cache_creation_1h_tokens)))
}

/** `a + sign·b`, field by field, never below 0 (normalised usages). */
function combine(a: Usage, b: Usage, sign: 1 | -1): Usage {
  const f = (x: number | undefined, y: number | undefined): number => Math.max(0, (x ?? 0) + sign * (y ?? 0))
  return usageOf(
    f(a.prompt_tokens, b.prompt_tokens), f(a.completion_tokens, b.completion_tokens),
    f(a.prompt_tokens_details?.cached_tokens, b.prompt_tokens_details?.cached_tokens),
    f(a.prompt_tokens_details?.cache_creation_tokens, b.prompt_tokens_details?.cache_creation_tokens),
    f(a.completion_tokens_details?.reasoning_tokens, b.completion_tokens_details?.reasoning_tokens),
    f(a.server_tool_use?.web_search_requests, b.server_tool_use?.web_search_requests),
    f(a.prompt_tokens_details?.cache_creation_1h_tokens, b.prompt_tokens_details?.cache_creation_1h_tokens),
  )
}

const NONE: readonly AttemptRecord[] = []

/** Cut attempts of this request that consumed tokens (resumed streams); usually none. */
export function billedAttempts(ctx: Pick<RequestCtx, 'attemptLog'>): readonly AttemptRecord[] {
  // Unit tests' fake contexts may have no attempt log.
  const log = ctx.attemptLog as RequestCtx['attemptLog'] | undefined
  return log === undefined || log.length === 0 ? NONE : log.filter((a) => a.usage !== undefined)
}

/**
 * The record of the attempt whose stream was just cut, taken now (its target, its request, what it delivered, the
 * `events` it gave the client), with its usage: `reported` when it sent one, else estimated (waits for the
 * tokenizer the first time).
 */
export async function cutAttempt(ctx: RequestCtx, g: GatewayError, sent: string, reported: Usage | undefined, events: number): Promise<AttemptRecord> {
  const record: AttemptRecord = { provider: ctx.providerName, model: ctx.model, error: g.code, status: g.status, providerType: ctx.adapter?.type ?? '', events }
  if (ctx.upstreamRequestId !== undefined) record.upstreamRequestId = ctx.upstreamRequestId
  if (reported) return { ...record, usage: normalizeUsage(reported) }
  const chat = ctx.chat
  if (!tokenizerLoaded()) await loadTokenizer().catch(() => { /* ~4 characters a token */ })
  return { ...record, usage: estimateUsage({ chat }, sent), estimated: true }
}

/** The usage of the whole request: the answering target's plus every cut attempt's (undefined while the answer's is unknown). */
export function usageWithAttempts(ctx: RequestCtx, answer: Usage | undefined): Usage | undefined {
  if (!answer) return undefined
  let sum = normalizeUsage(answer)
  for (const a of billedAttempts(ctx)) sum = combine(sum, a.usage!, 1)
  return sum
}

/** The answering target's own part of a request's usage that includes cut attempts (usageWithAttempts). */
export function answerPart(total: Usage, attempts: readonly AttemptRecord[]): Usage {
  let own = normalizeUsage(total)
  for (const a of attempts) own = combine(own, a.usage!, -1)
  return own
}

/**
 * Stream events the answering target gave the client: `ctx.streamEvents` counts every attempt's, and a cut
 * attempt's output is already in its own usage (an estimate of an answer without usage counts only its own).
 */
export function answerEvents(ctx: Pick<RequestCtx, 'streamEvents'>, attempts: readonly AttemptRecord[]): number {
  let n = ctx.streamEvents
  for (const a of attempts) n -= a.events ?? 0
  return Math.max(0, n)
}
