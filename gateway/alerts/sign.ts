/**
 * Webhook signatures: `x-mcp-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
 * The timestamp is signed with the body, so a receiver can refuse replays older than its tolerance;
 * compare in constant time (verifySignature does both).
 */
import { createHmac, timingSafeEqual } from 'node:crypto'

export const SIGNATURE_HEADER = 'x-mcp-signature'

export function sign(secret: string, body: string, t: number): string {
  return createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')
}

export function signatureHeader(secret: string, body: string, t = Math.floor(Date.now() / 1000)): string {
  return `t=${t},v1=${sign(secret, body, t)}`
}

/** True when `header` signs `body` with `secret` and its timestamp is within `toleranceS` of now. */
export function verifySignature(secret: string, header: string | undefined, body: string, opts: { toleranceS?: number; now?: number } = {}): boolean {
  if (header === undefined) return false
  let t: number | undefined
  const sigs: string[] = []
  for (const part of header.split(',')) {
    const eq = part.indexOf('=')
    if (eq <= 0) continue
    const k = part.slice(0, eq).trim()
    const v = part.slice(eq + 1).trim()
    if (k === 't' && /^\d+$/.test(v)) t = Number(v)
    else if (k === 'v1' && /^[0-9a-f]{64}$/.test(v)) sigs.push(v)
  }
  if (t === undefined || sigs.length === 0) return false
  const now = opts.now ?? Math.floor(Date.now() / 1000)
  if (Math.abs(now - t) > (opts.toleranceS ?? 300)) return false
  const expected = Buffer.from(sign(secret, body, t), 'hex')
  return sigs.some((s) => timingSafeEqual(Buffer.from(s, 'hex'), expected))
}
