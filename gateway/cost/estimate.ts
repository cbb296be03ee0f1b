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
/** The tokenizer's own count of a text (no bounds: see countTokens). */
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

/**
 * A run of more than this many characters without whitespace, or of whitespace, is counted in slices of this length.
 * gpt-tokenizer merges each pre-tokenized piece in time quadratic in its length, and a piece is such a run: 32,000
 * characters of CJK text took 5.8 s, of one repeated letter 0.6 s, of spaces 0.7 s, all of it blocking the event
 * loop. Slices cost a token at most where they cut (text in CJK scripts is about one token a character anyway).
 */
const RUN_SLICE = 64
const LONG_RUN = /\S{65}|\s{65}/
const LONG_RUNS = /\S{65,}|\s{65,}/g
/** Texts up to this many characters are counted whole; longer ones from SAMPLE_WINDOWS windows of SAMPLE_CHARS. */
export const EXACT_MAX_CHARS = 32_768
const SAMPLE_WINDOWS = 16
const SAMPLE_CHARS = 1_024

/** `i`, or `i + 1` where `i` would split a surrogate pair (a slice never ends in half a character). */
function boundary(text: string, i: number): number {
  const u = text.charCodeAt(i)
  return u >= 0xdc00 && u <= 0xdfff && i > 0 ? i + 1 : i
}

/** The first whitespace at or after `i` within RUN_SLICE characters (a window starts and ends between words), else boundary(i). */
function wordBoundary(text: string, i: number): number {
  const end = Math.min(text.length, i + RUN_SLICE)
  for (let j = i; j < end; j++) {
    const u = text.charCodeAt(j)
    if (u === 32 || u === 10 || u === 9 || u === 13) return j
  }
  return boundary(text, i)
}

/** The tokenizer's count with long runs sliced (RUN_SLICE): time linear in the text's length. */
function countRuns(text: string, c: Count): number {
  if (text.length <= RUN_SLICE || !LONG_RUN.test(text)) return c(text)
  let n = 0
  let from = 0
  for (const m of text.matchAll(LONG_RUNS)) {
    if (m.index > from) n += c(text.slice(from, m.index))
    const run = m[0]
    for (let i = 0; i < run.length;) {
      const j = boundary(run, i + RUN_SLICE)
      n += c(run.slice(i, j))
      i = j
    }
    from = m.index + run.length
  }
  if (from < text.length) n += c(text.slice(from))
  return n
}

/**
 * Tokens of a text; about 4 characters a token when the tokenizer is not loaded. Bounded work whatever the text: a
 * text longer than EXACT_MAX_CHARS is counted from evenly spaced windows (16,384 characters in all) and scaled to its
 * length, so a 10 MB prompt costs what a 16 KB one does (counts are estimates wherever they are used: budgets'
 * admissions, answers without usage, count_tokens for providers that count none).
 */
export function countTokens(text: string): number {
  const c = count
  if (!c) return Math.ceil(text.length / 4)
  if (text.length <= EXACT_MAX_CHARS) return countRuns(text, c)
  const step = Math.floor(text.length / SAMPLE_WINDOWS)
  let sampled = 0
  let chars = 0
  for (let w = 0; w < SAMPLE_WINDOWS; w++) {
    const from = wordBoundary(text, w * step)
    const to = wordBoundary(text, from + SAMPLE_CHARS)
    sampled += countRuns(text.slice(from, to), c)
    chars += to - from
  }
  return Math.ceil(sampled * (text.length / chars))
}

/** Tokens of several texts of one request: each counted whole while they add up to EXACT_MAX_CHARS, else as one text. */
function countAll(texts: readonly string[]): number {
  let total = 0
  for (const t of texts) total += t.length
  if (total > EXACT_MAX_CHARS) return countTokens(texts.join(''))
  let n = 0
  for (const t of texts) if (t !== '') n += countTokens(t)
  return n
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
  const texts: string[] = []
  for (const m of chat.messages) {
    n += 3
    texts.push(contentText(m.content))
    if ('name' in m && typeof m.name === 'string') n += 1
    if ('tool_calls' in m && Array.isArray(m.tool_calls)) texts.push(JSON.stringify(m.tool_calls))
    const legacyCall = (m as { function_call?: unknown }).function_call
    if (legacyCall !== undefined && legacyCall !== null) texts.push(JSON.stringify(legacyCall))
  }
  if (Array.isArray(chat.tools) && chat.tools.length > 0) texts.push(JSON.stringify(chat.tools))
  // The deprecated form of the same definitions.
  if (Array.isArray(chat['functions']) && chat['functions'].length > 0) texts.push(JSON.stringify(chat['functions']))
  return n + countAll(texts)
}

export function estimateEmbeddingInput(e: EmbeddingRequest): number {
  const input = e.input
  if (typeof input === 'string') return countTokens(input)
  let n = 0
  const texts: string[] = []
  for (const x of input) {
    if (typeof x === 'string') texts.push(x)
    else if (typeof x === 'number') n += 1
    else if (Array.isArray(x)) n += x.length
  }
  return n + countAll(texts)
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
