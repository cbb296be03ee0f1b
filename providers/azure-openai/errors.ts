/**
 * Azure OpenAI error bodies → GatewayError. The shape is OpenAI's (`{error:{message,code,param}}`),
 * plus content-filter rejections: 400 with `code: 'content_filter'` and
 * `innererror: {code: 'ResponsibleAIPolicyViolation', content_filter_result: {<category>: {filtered, ...}}}`.
 * Those keep the provider code `content_filter` and name the filtered categories.
 */
import type { GatewayError } from '../../gateway/errors.ts'
import type { HeaderMap } from '../shared/http.ts'
import { parseJsonBody, upstreamError } from '../shared/upstream-error.ts'
import { toOpenAIError } from '../openai/errors.ts'

type Obj = Record<string, unknown>

function obj(v: unknown): Obj | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : undefined
}

/** Categories whose result says `filtered: true` (hate, sexual, violence, self_harm, jailbreak, profanity, custom_blocklists, ...). */
export function filteredCategories(results: unknown): string[] {
  const r = obj(results)
  if (!r) return []
  return Object.keys(r).filter((k) => obj(r[k])?.['filtered'] === true)
}

export function isContentFilterError(err: Obj): boolean {
  return err['code'] === 'content_filter' || obj(err['innererror'])?.['code'] === 'ResponsibleAIPolicyViolation'
}

export function toAzureError(provider: string, status: number, body: string, headers: HeaderMap): GatewayError {
  const err = obj(parseJsonBody(body)?.['error'])
  if (!err || !isContentFilterError(err)) return toOpenAIError(provider, status, body, headers)
  const inner = obj(err['innererror'])
  const categories = filteredCategories(inner?.['content_filter_result'] ?? inner?.['content_filter_results'])
  const named = categories.length > 0 ? categories.join(', ') : 'none reported'
  return upstreamError(provider, status, {
    message: `Azure OpenAI's content filter blocked the request (filtered categories: ${named})`,
    code: 'content_filter',
    param: typeof err['param'] === 'string' ? err['param'] : undefined,
  }, headers)
}
