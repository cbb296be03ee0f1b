/**
 * One JSON Schema validator (ajv), compiled once per schema at boot or config compile, never per
 * request. Errors name the path of the bad field in dotted form: `plugins.auth.header: unknown key`.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import addFormatsModule from 'ajv-formats'

export type JSONSchema = Record<string, unknown>

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, coerceTypes: false })
// ajv-formats ships CommonJS; under ESM the callable is either the default export or the module itself.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (a: Ajv) => void
addFormats(ajv)

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

function messageOf(e: ErrorObject): string {
  if (e.keyword === 'pattern' && (e.params as { pattern?: string }).pattern === HEADER_VALUE_PATTERN) {
    return 'must be usable as an HTTP header value (no CR, LF or other control characters, nothing beyond Latin-1)'
  }
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
  const fn: ValidateFunction = ajv.compile(schema)
  const v = ((value: unknown) => fn(value)) as Validator<T>
  v.errors = (prefix = '') => formatErrors(fn.errors, prefix)
  return v
}
