/**
 * Token estimates for answers whose provider reported no usage (some OpenAI-compatible servers, custom
 * providers, a stream cut before its usage event). gpt-tokenizer (o200k_base) counts the prompt's text and the
 * delivered text; the result is flagged `estimated` wherever it is recorded. Only used off the hot path: an
 * answer with usage never gets here.
 *
 * The tokenizer (o200k ranks: about 35 MB of heap, ~45 MB of RSS, ~200 ms to load) is loaded on first need:
 * by the budget plugin at creation (its admissions count prompts), and by the cost meter only when a request's
 * cost is first to be estimated (see costReady in meter.ts), so gateways whose providers report usage never
 * carry it.
 */
import type { ChatRequest, EmbeddingRequest, Usage } from '../../providers/types.ts'

type Count = (text: string) => number
let count: Count | undefined
let loading: Promise<void> | undefined
let failed = false

/** Loads gpt-tokenizer (idempotent, one load shared by concurrent callers). Special tokens in the text are counted as plain text, never rejected. */
export function loadTokenizer(): Promise<void> {
  if (count) return Promise.resolve()
  return (loading ??= import('gpt-tokenizer').then((m) => {
    const opts = { disallowedSpecial: new Set<string>() }
    count = (text) => (text === '' ? 0 : m.encode(text, opts).length)
  }, (e: unknown) => {
    failed = true
    throw e
  }))
}

export function tokenizerLoaded(): boolean {
  return count !== undefined
}

/** Loaded, or failed to load (estimates then use ~4 characters a token): nothing left to wait for. */
export function tokenizerSettled(): boolean {
  return count !== undefined || failed
}

/** Tokens of a text; about 4 characters a token when the tokenizer is not loaded. */
export function countTokens(text: string): number {
  return count ? count(text) : Math.ceil(text.length / 4)
}

function contentText(c: unknown): string {
  if (typeof c === 'string') return c
  if (!Array.isArray(c)) return ''
  let s = ''
  for (const p of c) {
    if (p !== null && typeof p === 'object' && typeof (p as { text?: unknown }).text === 'string') s += (p as { text: string }).text
  }
  return s
}

/** OpenAI's chat accounting: 3 tokens per message, 1 per name, 3 to prime the reply; tools as their JSON. */
export function estimateChatPrompt(chat: ChatRequest): number {
  let n = 3
  for (const m of chat.messages) {
    n += 3 + countTokens(contentText(m.content))
    if ('name' in m && typeof m.name === 'string') n += 1
    if ('tool_calls' in m && Array.isArray(m.tool_calls)) n += countTokens(JSON.stringify(m.tool_calls))
    const legacyCall = (m as { function_call?: unknown }).function_call
    if (legacyCall !== undefined && legacyCall !== null) n += countTokens(JSON.stringify(legacyCall))
  }
  if (Array.isArray(chat.tools) && chat.tools.length > 0) n += countTokens(JSON.stringify(chat.tools))
  // The deprecated form of the same definitions.
  if (Array.isArray(chat['functions']) && chat['functions'].length > 0) n += countTokens(JSON.stringify(chat['functions']))
  return n
}

export function estimateEmbeddingInput(e: EmbeddingRequest): number {
  const input = e.input
  if (typeof input === 'string') return countTokens(input)
  let n = 0
  for (const x of input) {
    if (typeof x === 'string') n += countTokens(x)
    else if (typeof x === 'number') n += 1
    else if (Array.isArray(x)) n += x.length
  }
  return n
}

/** The text of a non-streaming chat.completion body (content and tool call arguments), or '' if unreadable. */
export function completionTextOfBody(parts: readonly Buffer[]): string {
  try {
    const json = JSON.parse(parts.length === 1 ? parts[0]!.toString('utf8') : Buffer.concat(parts).toString('utf8')) as { choices?: unknown }
    if (!Array.isArray(json.choices)) return ''
    let s = ''
    for (const c of json.choices as { message?: { content?: unknown; tool_calls?: { function?: { name?: unknown; arguments?: unknown } }[] } }[]) {
      s += contentText(c.message?.content)
      for (const t of c.message?.tool_calls ?? []) s += String(t.function?.name ?? '') + String(t.function?.arguments ?? '')
    }
    return s
  } catch {
    return ''
  }
}

/** An estimated canonical usage: prompt from the request, completion from the delivered text. */
export function estimateUsage(req: { chat?: ChatRequest | undefined; embedding?: EmbeddingRequest | undefined }, completionText: string): Usage {
  const prompt = req.chat ? estimateChatPrompt(req.chat) : req.embedding ? estimateEmbeddingInput(req.embedding) : 0
  const completion = completionText === '' ? 0 : countTokens(completionText)
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }
}
