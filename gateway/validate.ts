/**
 * One JSON Schema validator (ajv), compiled once per schema at boot or config compile, never per
 * request. Errors name the path of the bad field in dotted form: `plugins.auth.header: unknown key`.
 */
import { Ajv, type ErrorObject, type Options, type ValidateFunction } from 'ajv'
import addFormatsModule from 'ajv-formats'
import { RE2JS } from 're2js'

export type JSONSchema = Record<string, unknown>

// ajv-formats ships CommonJS; under ESM the callable is either the default export or the module itself.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (a: Ajv) => void

function newAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, coerceTypes: false })
  addFormats(ajv)
  return ajv
}

/**
 * Schemas written by users (a prompt version's `variables`) are checked on every execute: their cost must stay in
 * proportion to the input (see also uniqueItems below).
 *
 * Patterns of schemas written by users run on a linear-time engine (RE2JS, a
 * JavaScript port of RE2), never on V8's backtracking RegExp: `"^(a+)+$"` against 30 characters blocked the process for
 * seconds with RegExp, and each further character doubles that. RE2 syntax: no backreferences, no lookaround (refused
 * when the schema is written). Linear time is O(program size × input length), so both are bounded too:
 * - the pattern: at most USER_PATTERN_MAX_LENGTH characters, and its repetition counts (`{n}`, `{n,m}`) together at
 *   most USER_PATTERN_MAX_REPEAT (compiling expands them: `a{1000}` is 1000 instructions);
 * - the input: a string is checked only when its length × the pattern's program size is within USER_PATTERN_STEPS
 *   (against a 13-instruction email pattern, ~150 000 characters); a longer string fails the pattern, and the error
 *   says so. About 75 ms in the worst case (RE2's NFA, ~37 ns a step here), usually far less (its DFA).
 */
export const USER_PATTERN_MAX_LENGTH = 512
export const USER_PATTERN_MAX_REPEAT = 1000
export const USER_PATTERN_STEPS = 2_000_000

/** Longest string each compiled user pattern is checked on (for the error message), by pattern; bounded. */
const patternInputLimits = new Map<string, number>()

/** Why a user-supplied pattern is refused, or undefined; compiles it (RE2JS) to know. */
export function userPatternProblem(pattern: string): string | undefined {
  try { linearRegExp(pattern, 'u') } catch (e) { return (e as Error).message }
  return undefined
}

const linearRegExp: NonNullable<NonNullable<Options['code']>['regExp']> = Object.assign((pattern: string, _flags: string) => {
  if (pattern.length > USER_PATTERN_MAX_LENGTH) throw new Error(`the pattern is longer than ${USER_PATTERN_MAX_LENGTH} characters`)
  let repeats = 0
  for (const m of pattern.matchAll(/\{(\d+)(?:,(\d*))?\}/g)) repeats += Math.max(Number(m[1]), Number(m[2] || 0))
  if (repeats > USER_PATTERN_MAX_REPEAT) throw new Error(`the pattern's repetition counts ({n}, {n,m}) add up to more than ${USER_PATTERN_MAX_REPEAT}`)
  let re: RE2JS
  try {
    re = RE2JS.compile(RE2JS.translateRegExp(pattern))
  } catch (e) {
    throw new Error(`the pattern is not supported by the linear-time engine (RE2 syntax: no backreferences or lookaround): ${(e as Error).message}`)
  }
  const insts = Number((re.re2Input.prog as { numInst(): number }).numInst())
  const limit = Math.max(1, Math.floor(USER_PATTERN_STEPS / Math.max(1, insts)))
  patternInputLimits.delete(pattern)
  patternInputLimits.set(pattern, limit)
  if (patternInputLimits.size > 10_000) patternInputLimits.delete(patternInputLimits.keys().next().value!)
  // ajv keys compiled patterns by toString(): one per source pattern.
  return { test: (s: string) => s.length <= limit && re.test(s), toString: () => `re2:${pattern}` }
}, { code: 'linearRegExp' })

/** JSON text of a value with object keys sorted: equal JSON values (JSON Schema's equality) give equal strings. */
function canonical(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null'
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`
  return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`
}

/**
 * `uniqueItems` in linear time. ajv compares every pair of items with a deep equality unless the schema types the items
 * as scalars: 20,000 small arrays took 3 s, a 10 MiB execute body hours. Here each item's canonical JSON goes into a
 * set: time in proportion to the array's size.
 */
function uniqueItems(schema: boolean, data: unknown[]): boolean {
  if (!schema) return true
  const seen = new Set<string>()
  try {
    for (const x of data) {
      const k = canonical(x)
      if (seen.has(k)) return false
      seen.add(k)
    }
  } catch {
    return false // nested too deep to compare (RangeError): refused, never a 500
  }
  return true
}

function newUserAjv(): Ajv {
  // verbose: errors carry the value and the pattern, so a string too long to be checked says so (messageOf).
  const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, coerceTypes: false, verbose: true, code: { regExp: linearRegExp } })
  addFormats(ajv)
  ajv.removeKeyword('uniqueItems')
  ajv.addKeyword({ keyword: 'uniqueItems', type: 'array', schemaType: 'boolean', validate: uniqueItems })
  return ajv
}

/**
 * Schemas also arrive at run time (a prompt version's variables schema: at version creation, on every deployment
 * write, at every snapshot load of a version), and an ajv instance keeps whatever it compiled for its whole life (its
 * schema cache and the scope holding every validate function). So validators are shared by content (the same schema
 * compiles once, LRU of CACHE_SIZE), and the instance is replaced after GENERATION_SIZE compiles: a retired instance
 * lives only as long as validators compiled by it are held.
 */
const CACHE_SIZE = 1000
const GENERATION_SIZE = 1000
interface Pool { compiled: Map<string, Validator<unknown>>; generation: { ajv: Ajv; compiles: number }; make: () => Ajv }
const internal: Pool = { compiled: new Map(), generation: { ajv: newAjv(), compiles: 0 }, make: newAjv }
const user: Pool = { compiled: new Map(), generation: { ajv: newUserAjv(), compiles: 0 }, make: newUserAjv }

export interface Validator<T> {
  (value: unknown): value is T
  /** Errors of the last call, as `path: message` strings. */
  errors(prefix?: string): string[]
}

function pathOf(e: ErrorObject, prefix: string): string {
  const parts = e.instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
  if (e.keyword === 'additionalProperties') parts.push(String((e.params as { additionalProperty: string }).additionalProperty))
  if (e.keyword === 'required') parts.push(String((e.params as { missingProperty: string }).missingProperty))
  const propertyName = (e as { propertyName?: string }).propertyName ?? (e.params as { propertyName?: string }).propertyName
  if (propertyName !== undefined && e.keyword !== 'propertyNames') parts.push(propertyName)
  const joined = parts.map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`)).join('')
  const full = (prefix + joined).replace(/^\./, '')
  return full === '' ? '(root)' : full
}

/**
 * What an HTTP header value may hold: tab, printable ASCII and Latin-1 (undici refuses anything else, so a provider
 * credential with a CR or LF would fail every call through it). The message names the rule, never the value.
 */
export const HEADER_VALUE_PATTERN = '^[\\t\\x20-\\x7e\\x80-\\xff]*$'
const HEADER_VALUE = new RegExp(HEADER_VALUE_PATTERN)

/** The string can be sent as an HTTP header value (HEADER_VALUE_PATTERN). */
export function isHeaderValue(s: string): boolean {
  return HEADER_VALUE.test(s)
}

/** Control characters (U+0000 to U+001F, U+007F), as a regex character range. */
const CONTROL_RANGE = '\\u0000-\\u001f\\u007f'
/** A name without control characters: model names, which go upstream and into logs. */
export const NO_CONTROL_PATTERN = `^[^${CONTROL_RANGE}]*$`
export const NO_CONTROL_MESSAGE = 'must not contain control characters'
const CONTROL = new RegExp(`[${CONTROL_RANGE}]`)

/** The string holds a control character (what NO_CONTROL_PATTERN refuses). */
export function hasControlChars(s: string): boolean {
  return CONTROL.test(s)
}

function messageOf(e: ErrorObject): string {
  if (e.keyword === 'pattern' && typeof e.data === 'string' && typeof e.schema === 'string') {
    const limit = patternInputLimits.get(e.schema)
    if (limit !== undefined && e.data.length > limit) return `is ${e.data.length} characters long, more than the ${limit} that its pattern is checked on`
  }
  if (e.keyword === 'pattern' && (e.params as { pattern?: string }).pattern === HEADER_VALUE_PATTERN) {
    return 'must be usable as an HTTP header value (no CR, LF or other control characters, nothing beyond Latin-1)'
  }
  if (e.keyword === 'pattern' && (e.params as { pattern?: string }).pattern === NO_CONTROL_PATTERN) return NO_CONTROL_MESSAGE
  // A provider's `headers` naming one the gateway's HTTP client owns (providers/openai/config.ts FORBIDDEN_CONFIG_HEADERS).
  if (e.keyword === 'not' && e.schemaPath.endsWith('/headers/propertyNames/not')) {
    return 'not allowed in a provider\'s headers: the gateway derives it from the baseUrl and the body (Host, Content-Length, Content-Encoding), or it belongs to the connection (Transfer-Encoding, Connection, Keep-Alive, Upgrade, Expect, TE, Trailer)'
  }
  switch (e.keyword) {
    case 'uniqueItems': return 'must NOT have duplicate items'
    case 'additionalProperties': return 'unknown key'
    case 'required': return 'is required'
    case 'enum': return `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`
    default: return e.message ?? e.keyword
  }
}

export function formatErrors(errs: readonly ErrorObject[] | null | undefined, prefix = ''): string[] {
  if (!errs) return []
  const seen = new Set<string>()
  const out: string[] = []
  for (const e of errs) {
    if (e.keyword === 'if' || e.keyword === 'anyOf' || e.keyword === 'oneOf' || e.keyword === 'propertyNames') continue
    const s = `${pathOf(e, prefix)}: ${messageOf(e)}`
    if (!seen.has(s)) { seen.add(s); out.push(s) }
  }
  if (out.length === 0 && errs.length > 0) out.push(`${pathOf(errs[0]!, prefix)}: ${messageOf(errs[0]!)}`)
  return out
}

/** A schema of the gateway's own (config, request bodies): V8's RegExp for its patterns. */
export function compileSchema<T>(schema: JSONSchema): Validator<T> {
  return compileIn<T>(internal, schema)
}

/**
 * A schema written by a user (a prompt version's `variables`): its patterns run on the linear-time engine, bounded
 * (linearRegExp). Throws when it does not compile, a pattern the engine refuses included.
 */
export function compileUserSchema<T>(schema: JSONSchema): Validator<T> {
  return compileIn<T>(user, schema)
}

function compileIn<T>(pool: Pool, schema: JSONSchema): Validator<T> {
  const { compiled } = pool
  const key = JSON.stringify(schema)
  const hit = compiled.get(key)
  if (hit) {
    compiled.delete(key)
    compiled.set(key, hit)
    return hit as Validator<T>
  }
  if (pool.generation.compiles >= GENERATION_SIZE) pool.generation = { ajv: pool.make(), compiles: 0 }
  pool.generation.compiles++
  const { ajv } = pool.generation
  let fn: ValidateFunction
  try {
    fn = ajv.compile(schema)
  } finally {
    ajv.removeSchema(schema) // the validate function keeps what it needs; ajv's cache need not keep the schema
  }
  const v = ((value: unknown) => fn(value)) as Validator<T>
  v.errors = (prefix = '') => formatErrors(fn.errors, prefix)
  compiled.set(key, v as Validator<unknown>)
  if (compiled.size > CACHE_SIZE) compiled.delete(compiled.keys().next().value!)
  return v
}
