/**
 * Anthropic error bodies (`{type:'error', error:{type, message}, request_id}`) → GatewayError.
 * The provider's error type is kept as the provider code; `Retry-After` is passed on.
 */
import type { GatewayError } from '../../gateway/errors.ts'
import type { HeaderMap } from '../shared/http.ts'
import { parseJsonBody, upstreamError } from '../shared/upstream-error.ts'
import { table } from '../shared/table.ts'

/** Anthropic's documented error types and their HTTP statuses (used for errors inside a stream). */
export const STATUS_BY_ERROR_TYPE: Readonly<Record<string, number>> = table({
  invalid_request_error: 400,
  authentication_error: 401,
  billing_error: 402,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  timeout_error: 504,
  overloaded_error: 529,
})

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined
}

/** `payload` is the inner `error` object: `{type, message}`. */
export function anthropicErrorFromPayload(provider: string, payload: unknown, status: number, headers: HeaderMap): GatewayError {
  const e = (payload !== null && typeof payload === 'object' ? payload : {}) as Record<string, unknown>
  const type = str(e['type'])
  return upstreamError(provider, status, { message: str(e['message']), code: type, type }, headers)
}

/** An `event: error` inside a 200 stream: the status comes from the error type. */
export function anthropicStreamError(provider: string, payload: unknown): GatewayError {
  const type = str((payload as Record<string, unknown> | null)?.['type'])
  return anthropicErrorFromPayload(provider, payload, (type && STATUS_BY_ERROR_TYPE[type]) || 502, {})
}

export function toAnthropicError(provider: string, status: number, body: string, headers: HeaderMap): GatewayError {
  const json = parseJsonBody(body)
  const inner = json?.['error']
  const payload = inner !== null && typeof inner === 'object'
    ? inner
    : { message: json ? (str(json['message']) ?? str(inner)) : body.slice(0, 500) }
  return anthropicErrorFromPayload(provider, payload, status, headers)
}
