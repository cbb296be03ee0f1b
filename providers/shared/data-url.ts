/** `data:` URLs in content parts (images, files), read alike by every adapter that takes inline data. */
import { GatewayError } from '../../gateway/errors.ts'

/**
 * `data:<mime>[;params][;base64],<payload>` → its media type (parameters left out) and its bytes as base64, whichever
 * encoding it came in; undefined when `url` is not a data URL (no `data:` or no comma). A percent-encoded payload that
 * does not decode is a 400 naming `field`.
 */
export function parseDataUrl(url: string, field: string): { mimeType: string; data: string } | undefined {
  if (!url.startsWith('data:')) return undefined
  const comma = url.indexOf(',')
  if (comma === -1) return undefined
  const meta = url.slice(5, comma)
  const payload = url.slice(comma + 1)
  const base64 = meta.endsWith(';base64')
  const mimeType = (base64 ? meta.slice(0, -7) : meta).split(';')[0] || 'application/octet-stream'
  if (base64) return { mimeType, data: payload }
  let text: string
  try {
    text = decodeURIComponent(payload)
  } catch {
    throw new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason: `${field}: is not a valid percent-encoded data: URL` }, { param: field, details: 'request.body_invalid' })
  }
  return { mimeType, data: Buffer.from(text, 'utf8').toString('base64') }
}
