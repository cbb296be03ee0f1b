/**
 * One JSON Schema validator (ajv), compiled once per schema at boot or config compile, never per
 * request. Errors name the path of the bad field in dotted form: `plugins.auth.header: unknown key`.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import addFormatsModule from 'ajv-formats'

export type JSONSchema = Record<string, unknown>

// ajv-formats ships CommonJS; under ESM the callable is either the default export or the module itself.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (a: Ajv) => void

function newAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, coerceTypes: false })
  addFormats(ajv)
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
const compiled = new Map<string, Validator<unknown>>()
let generation = { ajv: newAjv(), compiles: 0 }

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
  if (e.keyword === 'pattern' && (e.params as { pattern?: string }).pattern === HEADER_VALUE_PATTERN) {
    return 'must be usable as an HTTP header value (no CR, LF or other control characters, nothing beyond Latin-1)'
  }
  if (e.keyword === 'pattern' && (e.params as { pattern?: string }).pattern === NO_CONTROL_PATTERN) return NO_CONTROL_MESSAGE
  switch (e.keyword) {
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

export function compileSchema<T>(schema: JSONSchema): Validator<T> {
  const key = JSON.stringify(schema)
  const hit = compiled.get(key)
  if (hit) {
    compiled.delete(key)
    compiled.set(key, hit)
    return hit as Validator<T>
  }
  if (generation.compiles >= GENERATION_SIZE) generation = { ajv: newAjv(), compiles: 0 }
  generation.compiles++
  const { ajv } = generation
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
