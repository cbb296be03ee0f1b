/**
 * Ollama error bodies (`{"error": "model \"x\" not found, try pulling it first"}`) → GatewayError.
 * Ollama sends no error codes; a 404 for a missing model gets the code `model_not_found`.
 */
import type { GatewayError } from '../../gateway/errors.ts'
import type { HeaderMap } from '../shared/http.ts'
import { parseJsonBody, upstreamError } from '../shared/upstream-error.ts'

export function toOllamaError(provider: string, status: number, body: string, headers: HeaderMap): GatewayError {
  const json = parseJsonBody(body)
  const e = json?.['error']
  const message = typeof e === 'string' ? e : e !== undefined ? JSON.stringify(e) : body.slice(0, 500)
  const code = status === 404 && /not found/i.test(message) ? 'model_not_found' : undefined
  return upstreamError(provider, status, { message, code }, headers)
}
