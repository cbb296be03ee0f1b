/**
 * OpenAI's default values of the request fields that the anthropic, google and ollama translations have no equivalent
 * for. SDKs and frameworks send defaults explicitly (`n: 1`, `logprobs: false`, `logit_bias: {}`,
 * `service_tier: 'auto'`, or `'default'`, standard processing); a default asks for what the provider does anyway, so it is accepted and not sent, alike on
 * all three. Any other value changes the answer (or how it is served) and is the translation's 400 naming the field, or
 * dropped with `dropUnsupportedParams`. A translation with an equivalent translates instead (google's `candidateCount`
 * for `n`, ollama's and google's penalties), and one field may mean more than its default on one provider (anthropic
 * sends `parallel_tool_calls: false` as `disable_parallel_tool_use`).
 */
const isEmptyObject = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0

const DEFAULTS: Readonly<Record<string, (v: unknown) => boolean>> = {
  n: (v) => v === 1,
  presence_penalty: (v) => v === 0,
  frequency_penalty: (v) => v === 0,
  logprobs: (v) => v === false,
  top_logprobs: (v) => v === 0,
  logit_bias: isEmptyObject,
  store: (v) => v === false,
  // 'default' is standard processing (no priority or flex capacity): what a provider without tiers always does.
  service_tier: (v) => v === 'auto' || v === 'default',
  parallel_tool_calls: (v) => v === true,
  modalities: (v) => Array.isArray(v) && v.length === 1 && v[0] === 'text',
}

/** Whether `value` is OpenAI's default for request field `key` (false for a field without a known default). */
export function isInertDefault(key: string, value: unknown): boolean {
  return Object.hasOwn(DEFAULTS, key) && DEFAULTS[key]!(value)
}
