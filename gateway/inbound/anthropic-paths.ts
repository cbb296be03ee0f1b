/**
 * Canonical message paths → the Messages paths a client sent (`messages[3].content[1].image_url.url` →
 * `messages[2].content[0].content[1].source`). `anthropicToCanonical` moves indexes: the top-level `system` becomes
 * messages[0], a user turn holding tool_result blocks becomes several `tool` messages and user messages, an assistant's
 * tool_use blocks become `tool_calls[j]`. A provider translation's 400 names the canonical path; the error body names
 * the client's.
 *
 * Nothing is computed on the request path: the conversion only remembers the client's body (a WeakMap keyed by the
 * canonical request, so it never goes upstream, into logs or into a copy of the request), and the map is built from
 * it when an error names a `messages[...]` path. The walk mirrors the conversion in anthropic.ts (which has already
 * accepted the body, so its shapes hold); anthropic-paths.test.ts checks that both agree.
 */
import type { ChatRequest } from '../../providers/types.ts'

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v)

const BODIES = new WeakMap<ChatRequest, Obj>()

/** Called by the conversion: the client's body the canonical request came from. */
export function rememberClientBody(req: ChatRequest, body: Obj): void { BODIES.set(req, body) }

/** The client's Messages body a canonical request came from (undefined for any other request). */
export function clientBodyOf(req: ChatRequest): Readonly<Obj> | undefined { return BODIES.get(req) }

/**
 * Replaces the body a request that goes as sent will send (a plugin bounding it: the budget's `capWebSearches`). Only
 * for a request that has one; the client's own object is left as it was.
 */
export function replaceClientBody(req: ChatRequest, body: Obj): void { if (BODIES.has(req)) BODIES.set(req, body) }

/** The first part of a Messages body the canonical request could not carry (anthropic.ts nativeOnly). */
export interface NativeOnly {
  /** The client's field, e.g. `tools[0].type`. */
  readonly field: string
  readonly reason: string
}

const NATIVE = new WeakMap<ChatRequest, NativeOnly>()

/** Called by the conversion when the body holds what only Anthropic itself takes. */
export function rememberNativeOnly(req: ChatRequest, need: NativeOnly): void { NATIVE.set(req, need) }

/**
 * Why the request can only go to an Anthropic provider as the client sent it, or undefined (any provider, translated).
 * One WeakMap look-up; undefined for every request that did not come from `/v1/messages`.
 */
export function nativeOnlyOf(req: ChatRequest): NativeOnly | undefined { return NATIVE.get(req) }

/** Where one canonical message came from. */
type Origin =
  /** The top-level `system` string. */
  | { kind: 'system' }
  /** The top-level `system` blocks: content[k] is system[k]. */
  | { kind: 'system-blocks' }
  /** A message kept as one message (string content), at the client's `path`. */
  | { kind: 'same'; path: string }
  /** An assistant turn of blocks: canonical content[n], tool_calls[n], thinking_blocks[n] → block indexes. */
  | { kind: 'assistant'; path: string; texts: number[]; calls: number[]; thinking: number[] }
  /** A tool_result block at `path`: canonical content[n] → its content[texts[n]]. */
  | { kind: 'tool'; path: string; texts: number[] }
  /** User content of a turn at `path`: canonical content[n] → the block at parts[n] (its own or one inside a tool_result). */
  | { kind: 'user'; path: string; parts: string[] }

function origins(body: Obj): Origin[] {
  const out: Origin[] = []
  const system = body['system']
  if (typeof system === 'string') out.push({ kind: 'system' })
  else if (Array.isArray(system) && system.length > 0) out.push({ kind: 'system-blocks' })
  const messages = Array.isArray(body['messages']) ? body['messages'] : []
  messages.forEach((raw, i) => {
    const path = `messages[${i}]`
    const m = isObj(raw) ? raw : {}
    const content = m['content']
    if (!Array.isArray(content)) { out.push({ kind: 'same', path }); return }
    if (m['role'] === 'assistant') {
      const o: Origin = { kind: 'assistant', path, texts: [], calls: [], thinking: [] }
      content.forEach((b, j) => {
        const type = isObj(b) ? b['type'] : undefined
        if (type === 'text') o.texts.push(j)
        else if (type === 'tool_use') o.calls.push(j)
        else o.thinking.push(j)
      })
      out.push(o)
      return
    }
    // A user turn: as convertMessage splits it (parts flushed before each tool_result, media after the results).
    let parts: string[] = []
    const media: string[] = []
    const flush = (): void => { if (parts.length > 0) { out.push({ kind: 'user', path, parts }); parts = [] } }
    const takeMedia = (): void => { if (media.length > 0) parts.push(...media.splice(0)) }
    content.forEach((b, j) => {
      const p = `${path}.content[${j}]`
      const block = isObj(b) ? b : {}
      if (block['type'] !== 'tool_result') { takeMedia(); parts.push(p); return }
      flush()
      const texts: number[] = []
      const inner = block['content']
      if (Array.isArray(inner)) {
        inner.forEach((x, k) => {
          if (isObj(x) && x['type'] === 'text') texts.push(k)
          else media.push(`${p}.content[${k}]`)
        })
      }
      out.push({ kind: 'tool', path: p, texts })
    })
    takeMedia()
    flush()
  })
  return out
}

/** The rest of a canonical part's path (`.image_url.url`) → the Messages block's field. */
function partField(rest: string): string {
  if (rest.startsWith('.image_url')) return '.source'
  if (rest.startsWith('.file.file_data')) return '.source.data'
  if (rest.startsWith('.file.filename')) return '.title'
  // The part itself (`.file` is how ollama and google name a document they cannot take): the block.
  if (rest.startsWith('.file')) return ''
  return rest
}

/** The rest of a canonical tool call's path → the tool_use block's field. */
function callField(rest: string): string {
  if (rest.startsWith('.function.arguments')) return '.input'
  if (rest.startsWith('.function.name')) return '.name'
  if (rest.startsWith('.function')) return ''
  return rest
}

const INDEXED = /^\.(content|tool_calls|thinking_blocks)\[(\d+)\]/

function clientPath(o: Origin, rest: string): string {
  const m = INDEXED.exec(rest)
  const field = m?.[1]
  const n = m ? Number(m[2]) : -1
  const tail = m ? rest.slice(m[0].length) : rest
  switch (o.kind) {
    case 'system':
      return 'system'
    case 'system-blocks':
      return field === 'content' ? `system[${n}]${tail}` : 'system'
    case 'same':
      return `${o.path}${rest}`
    case 'assistant': {
      const j = field === 'content' ? o.texts[n] : field === 'tool_calls' ? o.calls[n] : field === 'thinking_blocks' ? o.thinking[n] : undefined
      if (j === undefined) return `${o.path}${m ? '.content' : rest}`
      return `${o.path}.content[${j}]${field === 'tool_calls' ? callField(tail) : tail}`
    }
    case 'tool': {
      if (field === 'content') { const k = o.texts[n]; return k === undefined ? `${o.path}.content` : `${o.path}.content[${k}]${tail}` }
      if (rest.startsWith('.tool_call_id')) return `${o.path}.tool_use_id`
      if (rest.startsWith('.content') || rest.startsWith('.is_error')) return `${o.path}${rest}`
      return o.path
    }
    case 'user': {
      const p = field === 'content' ? o.parts[n] : undefined
      if (p !== undefined) return `${p}${partField(tail)}`
      return `${o.path}${m ? '.content' : rest}`
    }
  }
}

const CANONICAL_PATH = /\bmessages\[(\d+)\]((?:\.[A-Za-z_]\w*|\[\d+\])*)/g

/**
 * A function that rewrites the canonical `messages[...]` paths in a text as the client's paths, or undefined when
 * `req` did not come from a Messages body. Indexes it cannot place are left as they are.
 */
export function clientPaths(req: ChatRequest | undefined): ((text: string) => string) | undefined {
  const body = req === undefined ? undefined : BODIES.get(req)
  if (body === undefined) return undefined
  let map: Origin[] | undefined
  return (text) => {
    if (!text.includes('messages[')) return text
    map ??= origins(body)
    const o = map
    return text.replace(CANONICAL_PATH, (whole: string, i: string, rest: string) => {
      const origin = o[Number(i)]
      return origin === undefined ? whole : clientPath(origin, rest)
    })
  }
}
