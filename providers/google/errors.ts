/**
 * Gemini API error bodies → GatewayError. Google's shape is `{error:{code, message, status, details}}`
 * (sometimes wrapped in a one-element array); `status` ('RESOURCE_EXHAUSTED', 'INVALID_ARGUMENT', ...)
 * is kept as the provider code. The retry delay comes from `Retry-After`, or else from a
 * `google.rpc.RetryInfo` detail (`retryDelay: "27s"`), rounded up to whole seconds.
 */
import type { GatewayError } from '../../gateway/errors.ts'
import type { HeaderMap } from '../shared/http.ts'
import { headerValue, parseJsonBody, upstreamError } from '../shared/upstream-error.ts'

const RETRY_INFO = 'type.googleapis.com/google.rpc.RetryInfo'

/** `"27s"`, `"1.5s"` (protobuf Duration in JSON) → whole seconds, rounded up. */
export function durationSeconds(d: unknown): number | undefined {
  if (typeof d !== 'string' || !d.endsWith('s')) return undefined
  const n = Number(d.slice(0, -1))
  return Number.isFinite(n) && n >= 0 ? Math.ceil(n) : undefined
}

/** The retry delay of a `RetryInfo` entry in `error.details`, in seconds. */
export function retryDelayFromDetails(details: unknown): number | undefined {
  if (!Array.isArray(details)) return undefined
  for (const d of details) {
    if (d !== null && typeof d === 'object' && (d as Record<string, unknown>)['@type'] === RETRY_INFO) {
      const s = durationSeconds((d as Record<string, unknown>)['retryDelay'])
      if (s !== undefined) return s
    }
  }
  return undefined
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : undefined
}

/** One `error` object (as in a body or an in-stream event) → GatewayError. */
export function googleErrorFromPayload(provider: string, payload: unknown, status: number, headers: HeaderMap): GatewayError {
  const e = (payload !== null && typeof payload === 'object' ? payload : {}) as Record<string, unknown>
  let h = headers
  if (headerValue(headers, 'retry-after') === undefined) {
    const delay = retryDelayFromDetails(e['details'])
    if (delay !== undefined) h = { ...headers, 'retry-after': String(delay) }
  }
  return upstreamError(provider, status, { message: str(e['message']), code: str(e['status']) ?? str(e['code']) }, h)
}

export function toGoogleError(provider: string, status: number, body: string, headers: HeaderMap): GatewayError {
  let json: unknown = parseJsonBody(body)
  if (Array.isArray(json)) json = json[0]
  const obj = json !== null && typeof json === 'object' ? (json as Record<string, unknown>) : undefined
  const payload = obj?.['error'] ?? (obj ? { message: obj['message'] } : { message: body.slice(0, 500) })
  return googleErrorFromPayload(provider, typeof payload === 'string' ? { message: payload } : payload, status, headers)
}
