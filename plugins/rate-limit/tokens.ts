/**
 * Token estimate at admission, for tokens-per-minute rules: prompt characters / charsPerToken
 * (text parts, tool definitions, 4 tokens per message of framing) plus the completion budget
 * (max_completion_tokens, max_tokens, or defaultMaxTokens) times `n`. Embeddings: input only.
 * The estimate is corrected with the actual usage when the request completes, or without usage with the cost
 * meter's estimate of what was used. A response-cache hit uses no tokens.
 */
import type { RequestCtx } from '../../gateway/context.ts'
import { costOf } from '../../gateway/cost/meter.ts'
import type { Usage } from '../../providers/types.ts'

function textLength(content: unknown): number {
  if (typeof content === 'string') return content.length
  if (!Array.isArray(content)) return 0
  let n = 0
  for (const p of content as unknown[]) {
    if (p !== null && typeof p === 'object') {
      const t = (p as { text?: unknown }).text
      if (typeof t === 'string') n += t.length
    }
  }
  return n
}

export function estimateTokens(ctx: RequestCtx, charsPerToken: number, defaultMaxTokens: number): number {
  const chat = ctx.chat
  if (chat) {
    let chars = 0
    for (const m of chat.messages) chars += textLength((m as { content?: unknown }).content)
    if (chat.tools) chars += JSON.stringify(chat.tools).length
    if (Array.isArray(chat['functions'])) chars += JSON.stringify(chat['functions']).length
    const completion = chat.max_completion_tokens ?? chat.max_tokens ?? defaultMaxTokens
    const n = typeof chat.n === 'number' && chat.n > 1 ? chat.n : 1
    return Math.ceil(chars / charsPerToken) + 4 * chat.messages.length + completion * n
  }
  const emb = ctx.embedding
  if (emb) {
    const input = emb.input
    if (typeof input === 'string') return Math.ceil(input.length / charsPerToken)
    let total = 0
    for (const x of input as unknown[]) {
      if (typeof x === 'string') total += Math.ceil(x.length / charsPerToken)
      else if (typeof x === 'number') total += 1
      else if (Array.isArray(x)) total += x.length
    }
    return total
  }
  return 0
}

/**
 * Tokens of a completed request that reached a provider and got no usage back (a stream the client left, a server
 * that reports none), as the cost meter estimated them: its prompt and the text it was given, counted with the
 * tokenizer. Undefined without a cost meter on the route, or when nothing was estimated (then the admission estimate,
 * prompt plus the whole completion budget, stands).
 */
export function estimatedTokens(ctx: RequestCtx): number | undefined {
  if (ctx.upstreamStart === 0) return undefined
  const c = costOf(ctx)
  if (c === undefined || !c.estimated) return undefined
  return c.inputTokens + c.cachedTokens + c.cacheWriteTokens + c.outputTokens + c.reasoningTokens
}

/**
 * The response cache answered the request (plugins/cache sets `ctx.slots.cache.status`): it used no provider
 * tokens. Read without importing the cache plugin, which need not be on the route.
 */
export function cacheHit(ctx: RequestCtx): boolean {
  const c = (ctx.slots as Readonly<Record<string, unknown>>)['cache']
  return c !== null && typeof c === 'object' && (c as { status?: unknown }).status === 'hit'
}

/** Tokens a completed request actually used, or undefined when the usage is unknown. */
export function actualTokens(u: Usage | undefined): number | undefined {
  if (!u) return undefined
  // A pass-through answer's usage is the upstream's own JSON: only non-negative finite numbers count (a negative total
  // would hand tokens back to the limit, a string would be concatenated).
  const total = tokenCount(u.total_tokens)
  if (total !== undefined && total > 0) return total
  const prompt = tokenCount(u.prompt_tokens)
  const completion = tokenCount(u.completion_tokens)
  return prompt === undefined && completion === undefined ? total : (prompt ?? 0) + (completion ?? 0)
}

function tokenCount(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined
}
