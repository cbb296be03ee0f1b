/**
 * The fields of a canonical message that the anthropic, google and ollama translations read, by role (each one
 * translates them or refuses them itself). Any other field with a value has no place in those providers' messages:
 * OpenAI's assistant `audio` (a reference to an earlier spoken answer) and `annotations` (its URL citations), its
 * deprecated `function_call` (use `tool_calls`), a participant's `name` (only a tool or function result's name has a
 * place: it names the function, checked against its call by shared/tool-names.ts), or a field of another API. The
 * translations answer it with their 400 naming it (`messages[2].audio`), or drop it when the provider is configured
 * with `dropUnsupportedParams`; never silently. A null or an empty array carries nothing (the OpenAI SDK echoes an
 * assistant message as it got it: `refusal: null`, `annotations: []`, `audio: null`) and passes.
 */
const BASE = ['role', 'content']

/**
 * An earlier answer's reasoning trace as other servers return it (`reasoning_content`: vLLM, DeepSeek, llama.cpp;
 * `reasoning`: OpenRouter, Ollama's OpenAI API), echoed back by clients in the history. It is the model's own scratch
 * text, not part of the conversation: reasoning providers want it left out of later turns (DeepSeek refuses it), and
 * a history that came from such a model must still reach a fallback on another provider. Left out, not refused.
 */
const REASONING_TRACES: ReadonlySet<string> = new Set(['reasoning_content', 'reasoning'])

const READ: Readonly<Record<string, ReadonlySet<string>>> = {
  system: new Set(BASE),
  developer: new Set(BASE),
  user: new Set(BASE),
  // `thinking_blocks`: the Anthropic extension (see providers/types.ts), sent by anthropic, documented as left out by the others.
  assistant: new Set([...BASE, 'tool_calls', 'refusal', 'thinking_blocks']),
  // `is_error`, `cache_control`: the Anthropic extensions on tool results (google and ollama leave the hint out).
  tool: new Set([...BASE, 'name', 'tool_call_id', 'is_error', 'cache_control']),
  function: new Set([...BASE, 'name']),
}

const NONE: ReadonlySet<string> = new Set()

/** The first field of message `m` that its role's translation does not read and that carries a value; undefined if none. */
export function unreadMessageField(m: object): string | undefined {
  const role = (m as { role?: unknown }).role
  const read = typeof role === 'string' && Object.hasOwn(READ, role) ? READ[role]! : NONE
  // for...in over own keys (a parsed JSON object has no inherited enumerable ones): no entries array per message.
  for (const k in m) {
    if (read.has(k)) continue
    const v = (m as Record<string, unknown>)[k]
    if (v === null || v === undefined || (Array.isArray(v) && v.length === 0)) continue
    if (role === 'assistant' && REASONING_TRACES.has(k)) continue
    return k
  }
  return undefined
}
