/**
 * OpenAI's rate-limit response headers: x-ratelimit-{limit,remaining,reset}-{requests,tokens}.
 * Reset is a duration in OpenAI's (Go) style: "20ms", "1.5s", "6m0s", "1h2m3s".
 */

export interface HeaderFigures {
  limit: number
  remaining: number
  resetMs: number
}

function trim(n: number): string {
  return String(Math.round(n * 1000) / 1000)
}

export function formatDuration(ms: number): string {
  const v = Math.max(0, Math.ceil(ms))
  if (v < 1000) return `${v}ms`
  const s = v / 1000
  if (s < 60) return `${trim(s)}s`
  const h = Math.floor(s / 3600)
  const m = Math.floor((s - h * 3600) / 60)
  const rest = s - h * 3600 - m * 60
  return `${h > 0 ? `${h}h` : ''}${m}m${trim(rest)}s`
}

/** Keeps the tighter of two figures: fewer remaining, then the later reset. */
export function tighter(a: HeaderFigures | undefined, b: HeaderFigures): HeaderFigures {
  if (!a) return b
  if (b.remaining < a.remaining || (b.remaining === a.remaining && b.resetMs > a.resetMs)) return b
  return a
}

export function writeHeaders(out: Record<string, string>, kind: 'requests' | 'tokens', f: HeaderFigures): void {
  out[`x-ratelimit-limit-${kind}`] = String(f.limit)
  out[`x-ratelimit-remaining-${kind}`] = String(f.remaining)
  out[`x-ratelimit-reset-${kind}`] = formatDuration(f.resetMs)
}
