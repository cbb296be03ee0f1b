/**
 * Builds the GatewayError for a provider's error answer: the provider's status, code and message
 * are kept (credentials scrubbed), `Retry-After`, `retry-after-ms` and `x-should-retry` are passed on.
 */
import { GatewayError } from '../../gateway/errors.ts'
import type { HeaderMap } from './http.ts'

/** Key-shaped substrings: OpenAI/Anthropic style keys, Google API keys, bearer tokens, key query params. */
const SECRET_PATTERNS: readonly (readonly [RegExp, string])[] = [
  [/\b(?:sk|pk|rk)-[A-Za-z0-9_-]{8,}/g, '[redacted]'],
  [/\bAIza[0-9A-Za-z_-]{20,}/g, '[redacted]'],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, '$1 [redacted]'],
  [/([?&](?:key|api[-_]?key|access_token|token)=)[^&\s"']+/gi, '$1[redacted]'],
]

export function scrubSecrets(text: string): string {
  let out = text
  for (const [re, rep] of SECRET_PATTERNS) out = out.replace(re, rep)
  return out
}

const CREDENTIAL_HEADERS = new Set(['authorization', 'api-key', 'x-api-key', 'x-goog-api-key', 'proxy-authorization'])

/**
 * The credential values carried by a provider's upstream headers (`Bearer` stripped), for literal redaction, each
 * also in the spellings an upstream echoes it in when they differ from the value (a key with `/`, `+`, `=`, `"` or
 * `\`): URL-encoded (a URL in a message) and JSON-escaped, also with `\/` (a JSON body before it is parsed). Keys
 * made of letters, digits, `-` and `_` (the usual ones) have no other spelling, so stream redaction stays one search.
 */
export function credentialsOf(headers: Readonly<Record<string, string>>): string[] {
  const out: string[] = []
  for (const [k, v] of Object.entries(headers)) {
    if (!CREDENTIAL_HEADERS.has(k.toLowerCase())) continue
    const bare = v.replace(/^(Bearer|Basic)\s+/i, '')
    if (bare.length < 8) continue
    const json = JSON.stringify(bare).slice(1, -1)
    for (const form of [json, json.replaceAll('/', '\\/'), encodeURIComponent(bare), bare]) if (!out.includes(form)) out.push(form)
  }
  // Longest first: a spelling that contains another is replaced whole.
  return out.sort((a, b) => b.length - a.length)
}

/** Replaces every literal occurrence of the given secrets (whatever their shape) and key-shaped substrings. */
export function redactCredentials(text: string, secrets: readonly string[]): string {
  let out = text
  for (const s of secrets) if (out.includes(s)) out = out.split(s).join('[redacted]')
  return out
}

export function headerValue(headers: HeaderMap, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v[0] : v
}

export interface ProviderErrorInfo {
  message?: string | undefined
  code?: string | undefined
  type?: string | undefined
  param?: string | undefined
}

const TYPE_BY_STATUS: Readonly<Record<number, string>> = {
  400: 'invalid_request_error', 401: 'authentication_error', 403: 'permission_error', 404: 'not_found_error',
  408: 'timeout_error', 409: 'conflict_error', 413: 'request_too_large', 422: 'invalid_request_error',
  429: 'rate_limit_error', 500: 'api_error', 502: 'api_error', 503: 'api_error', 504: 'timeout_error', 529: 'overloaded_error',
}

export function upstreamError(provider: string, status: number, info: ProviderErrorInfo, headers: HeaderMap): GatewayError {
  const retryAfter = headerValue(headers, 'retry-after')
  const out: Record<string, string> = {}
  if (retryAfter !== undefined && /^[0-9]+(\.[0-9]+)?$|^[A-Z][a-z]{2}, /.test(retryAfter)) out['retry-after'] = retryAfter
  // OpenAI and Azure also send the delay in milliseconds (honoured by their SDKs), sometimes without Retry-After.
  const retryAfterMs = headerValue(headers, 'retry-after-ms')
  if (retryAfterMs !== undefined && /^[0-9]+(\.[0-9]+)?$/.test(retryAfterMs)) {
    out['retry-after-ms'] = retryAfterMs
    // Clients that read only Retry-After (whole seconds, rounded up) still learn when to retry.
    out['retry-after'] ??= String(Math.ceil(Number(retryAfterMs) / 1000))
  }
  // The provider's own word on retrying (the official SDKs obey `x-should-retry` over their status rules). OpenAI's
  // insufficient_quota is a 429 that no retry gets past (the account is out of credit): said so when the provider did not.
  const shouldRetry = headerValue(headers, 'x-should-retry')
  if (shouldRetry === 'true' || shouldRetry === 'false') out['x-should-retry'] = shouldRetry
  else if (status === 429 && (info.code === 'insufficient_quota' || info.type === 'insufficient_quota')) out['x-should-retry'] = 'false'
  const st = status >= 400 && status <= 599 ? status : 502
  const message = scrubSecrets(info.message && info.message.length > 0 ? info.message : `HTTP ${status}`)
  return new GatewayError('MCP_ERR_UPSTREAM_ERROR', { provider, status, reason: message }, {
    status: st,
    message,
    type: info.type ?? TYPE_BY_STATUS[st] ?? (st >= 500 ? 'api_error' : 'invalid_request_error'),
    providerCode: info.code ?? null,
    param: info.param ?? null,
    details: `upstream.http_${status}`,
    headers: out,
  })
}

/** Parses a JSON error body leniently; returns undefined for non-JSON bodies. */
export function parseJsonBody(body: string): Record<string, unknown> | undefined {
  if (body === '') return undefined
  try {
    const v: unknown = JSON.parse(body)
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}
