/**
 * The cache key: SHA-256 of the canonical request, with keys sorted at every depth, so two requests
 * that differ only in key order share an entry. Everything counts (messages, tools, every parameter,
 * `user`, `metadata`) except `stream` and `stream_options`: a streamed request may be answered from a
 * non-streamed one's entry (replayed as a stream). The model is the one the client asked for (alias or
 * provider/model) and what it resolved to (the alias routed after its rules with the set of targets they left,
 * or provider/model: a budget downgrade re-points a request, a header rule picks other targets), and with scope
 * 'key' the caller's key id is part of the key.
 */
import { createHash } from 'node:crypto'
import type { ChatRequest } from '../../providers/types.ts'

/** JSON with object keys sorted (arrays keep their order); undefined values dropped like JSON.stringify. */
export function stableStringify(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null'
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : stableStringify(x))).join(',')}]`
  const o = v as Record<string, unknown>
  const parts: string[] = []
  for (const k of Object.keys(o).sort()) {
    const x = o[k]
    if (x === undefined || typeof x === 'function') continue
    parts.push(`${JSON.stringify(k)}:${stableStringify(x)}`)
  }
  return `{${parts.join(',')}}`
}

const SKIP = new Set(['model', 'stream', 'stream_options'])

export function cacheKey(chat: ChatRequest, requestedModel: string, scopeId: string, resolved = ''): string {
  const body: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(chat)) if (!SKIP.has(k)) body[k] = v
  return createHash('sha256').update(stableStringify({ v: 1, scope: scopeId, model: requestedModel, resolved, body })).digest('hex')
}
