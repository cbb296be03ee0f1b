/** OpenAI error bodies (`{error:{message,type,param,code}}`) → GatewayError. */
import type { GatewayError } from '../../gateway/errors.ts'
import type { HeaderMap } from '../shared/http.ts'
import { parseJsonBody, upstreamError } from '../shared/upstream-error.ts'

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined
}

export function openaiErrorFromPayload(provider: string, payload: unknown, status: number, headers: HeaderMap): GatewayError {
  const e = (payload ?? {}) as Record<string, unknown>
  return upstreamError(provider, status, { message: str(e['message']), code: str(e['code']), type: str(e['type']), param: str(e['param']) }, headers)
}

/**
 * Besides OpenAI's `{error: {...}}`: vLLM's flat `{object: 'error', message, type, param, code}`, TGI's
 * `{error: '<text>', error_type}`, and `{message}` / `{detail}` bodies (Azure's gateway, FastAPI servers).
 */
export function toOpenAIError(provider: string, status: number, body: string, headers: HeaderMap): GatewayError {
  const json = parseJsonBody(body)
  const payload = json?.['error'] ??
    (json?.['object'] === 'error' ? json : json ? { message: json['message'] ?? json['detail'] } : { message: body.slice(0, 500) })
  return openaiErrorFromPayload(provider, typeof payload === 'string' ? { message: payload, code: json?.['error_type'] } : payload, status, headers)
}
