/**
 * Prompt templates: `{{name}}` / `{{ name }}` substitution and nothing else. A path may be dotted
 * (`{{user.name}}`, `{{items.0}}`); there are no helpers, conditionals, loops, filters, partials or expressions, so
 * rendering a template can never run code. `\{{` writes a literal `{{`; `\\{{x}}` writes one backslash, then x's value
 * (in a run of backslashes right before `{{`, each pair writes one and an odd one left over escapes the `{{`; other
 * backslashes are text).
 *
 * A template is compiled once (when a version is created, and when a snapshot loads it): any other `{{...}}` is a
 * syntax error naming the field and the offending tag. Rendering looks values up through own properties only
 * (`{{constructor}}` is a missing variable, not a prototype walk). Strings are inserted as they are, numbers and
 * booleans as their text, null as the empty string, objects and arrays as JSON.
 */
import type { ChatMessage } from '../providers/types.ts'

type Segment = string | { readonly path: readonly string[]; readonly name: string }

export interface CompiledText {
  readonly segments: readonly Segment[]
}

interface CompiledPart { readonly type: string; readonly text?: CompiledText; readonly rest: Readonly<Record<string, unknown>> }

interface CompiledMessage {
  readonly role: string
  readonly name?: string | undefined
  readonly content: CompiledText | readonly CompiledPart[]
}

export interface CompiledTemplate {
  readonly messages: readonly CompiledMessage[]
  /** Every variable path used, in order of first use (`user.name`). */
  readonly variables: readonly string[]
  /** Their first segments: the names a caller may send (`user`). */
  readonly roots: ReadonlySet<string>
}

export class TemplateSyntaxError extends Error {
  override name = 'TemplateSyntaxError'
  /** Where: `template`, `template[1].content`, `template[0].content[2].text`. */
  readonly field: string
  constructor(field: string, reason: string) {
    super(`${field}: ${reason}`)
    this.field = field
  }
}

export class TemplateVariablesError extends Error {
  override name = 'TemplateVariablesError'
  readonly missing: readonly string[]
  constructor(missing: readonly string[]) {
    super(`missing: ${missing.join(', ')}`)
    this.missing = missing
  }
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/
const INDEX = /^[0-9]+$/

function tagPath(inner: string): string[] | undefined {
  const parts = inner.trim().split('.')
  if (parts.length === 0 || !IDENT.test(parts[0]!)) return undefined
  for (const p of parts.slice(1)) if (!IDENT.test(p) && !INDEX.test(p)) return undefined
  return parts
}

export function compileText(text: string, field: string): CompiledText {
  const segments: Segment[] = []
  let literal = ''
  let i = 0
  while (i < text.length) {
    const open = text.indexOf('{{', i)
    if (open === -1) { literal += text.slice(i); break }
    // A run of backslashes right before {{: each pair writes one backslash; an odd one left over escapes the {{.
    let run = 0
    while (open - run - 1 >= i && text[open - run - 1] === '\\') run++
    literal += text.slice(i, open - run) + '\\'.repeat(run >> 1)
    if (run % 2 === 1) {
      literal += '{{'
      i = open + 2
      continue
    }
    const close = text.indexOf('}}', open + 2)
    if (close === -1) throw new TemplateSyntaxError(field, `'{{' at offset ${open} is never closed`)
    const inner = text.slice(open + 2, close)
    const path = tagPath(inner)
    if (!path) {
      const shown = `{{${inner.length > 40 ? inner.slice(0, 40) + '…' : inner}}}`
      throw new TemplateSyntaxError(field, `unsupported tag ${shown} at offset ${open}: only {{name}} and {{dotted.path}} substitutions exist (write \\{{ for a literal '{{')`)
    }
    if (literal !== '') { segments.push(literal); literal = '' }
    segments.push({ path, name: path.join('.') })
    i = close + 2
  }
  if (literal !== '') segments.push(literal)
  return { segments }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

/**
 * A template is a string (one user message) or an array of chat messages whose `content` is a string or an array
 * of parts; `text` parts are templated, other parts (images) pass unchanged. Throws TemplateSyntaxError.
 */
export function compileTemplate(template: unknown): CompiledTemplate {
  const messages: CompiledMessage[] = []
  if (typeof template === 'string') {
    messages.push({ role: 'user', content: compileText(template, 'template') })
  } else if (Array.isArray(template)) {
    for (const [i, m] of template.entries()) {
      if (!isRecord(m) || typeof m['role'] !== 'string') throw new TemplateSyntaxError(`template[${i}]`, 'must be a message {role, content}')
      const name = typeof m['name'] === 'string' ? m['name'] : undefined
      const content = m['content']
      if (typeof content === 'string') {
        messages.push({ role: m['role'], name, content: compileText(content, `template[${i}].content`) })
      } else if (Array.isArray(content)) {
        const parts = content.map((p: unknown, j): CompiledPart => {
          if (!isRecord(p) || typeof p['type'] !== 'string') throw new TemplateSyntaxError(`template[${i}].content[${j}]`, 'must be a content part {type, ...}')
          const { text, ...rest } = p
          if (p['type'] === 'text') {
            if (typeof text !== 'string') throw new TemplateSyntaxError(`template[${i}].content[${j}].text`, 'must be a string')
            return { type: 'text', text: compileText(text, `template[${i}].content[${j}].text`), rest }
          }
          return { type: p['type'], rest: p }
        })
        messages.push({ role: m['role'], name, content: parts })
      } else {
        throw new TemplateSyntaxError(`template[${i}].content`, 'must be a string or an array of content parts')
      }
    }
  } else {
    throw new TemplateSyntaxError('template', 'must be a string or an array of messages')
  }
  const variables: string[] = []
  const seen = new Set<string>()
  const visit = (t: CompiledText): void => {
    for (const s of t.segments) if (typeof s !== 'string' && !seen.has(s.name)) { seen.add(s.name); variables.push(s.name) }
  }
  for (const m of messages) {
    if (Array.isArray(m.content)) { for (const p of m.content as readonly CompiledPart[]) if (p.text) visit(p.text) } else visit(m.content as CompiledText)
  }
  return { messages, variables, roots: new Set(variables.map((v) => v.split('.', 1)[0]!)) }
}

const MISSING = Symbol('missing')

function lookup(vars: Readonly<Record<string, unknown>>, path: readonly string[]): unknown {
  let v: unknown = vars
  for (const p of path) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, p)) return MISSING
    v = (v as Record<string, unknown>)[p]
  }
  return v === undefined ? MISSING : v
}

function stringify(v: unknown): string {
  if (typeof v === 'string') return v
  if (v === null) return ''
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v)
  return JSON.stringify(v) ?? ''
}

/**
 * The most characters a rendered prompt may have, all messages together. A template repeats its variables: 200,000
 * `{{x}}` tags (a 1 MB template) with a 1,000-character `x` (a 1 KB request) would be 200 million characters.
 */
export const MAX_RENDERED_CHARS = 16 * 1024 * 1024

/** The rendered prompt would pass MAX_RENDERED_CHARS (rendering stops there). */
export class TemplateTooLargeError extends Error {
  override name = 'TemplateTooLargeError'
  constructor() { super(`the rendered prompt would be more than ${MAX_RENDERED_CHARS} characters`) }
}

interface RenderState { missing: Set<string>; chars: number }

function renderText(t: CompiledText, vars: Readonly<Record<string, unknown>>, st: RenderState): string {
  let out = ''
  for (const s of t.segments) {
    let text: string
    if (typeof s === 'string') text = s
    else {
      const v = lookup(vars, s.path)
      if (v === MISSING) { st.missing.add(s.name); continue }
      text = stringify(v)
    }
    st.chars += text.length
    if (st.chars > MAX_RENDERED_CHARS) throw new TemplateTooLargeError()
    out += text
  }
  return out
}

/** Renders the messages; throws TemplateVariablesError listing every missing path, TemplateTooLargeError past MAX_RENDERED_CHARS. */
export function renderTemplate(t: CompiledTemplate, vars: Readonly<Record<string, unknown>>): ChatMessage[] {
  const st: RenderState = { missing: new Set<string>(), chars: 0 }
  const missing = st.missing
  const out: ChatMessage[] = []
  for (const m of t.messages) {
    let content: unknown
    if (Array.isArray(m.content)) {
      content = (m.content as readonly CompiledPart[]).map((p) => (p.text ? { ...p.rest, type: 'text', text: renderText(p.text, vars, st) } : { ...p.rest }))
    } else {
      content = renderText(m.content as CompiledText, vars, st)
    }
    out.push({ role: m.role, content, ...(m.name !== undefined ? { name: m.name } : {}) } as ChatMessage)
  }
  if (missing.size > 0) throw new TemplateVariablesError([...missing])
  return out
}
