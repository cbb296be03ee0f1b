/**
 * Syntax errors in configuration sources, described without quoting them. A config file holds secrets (provider keys,
 * webhook URLs), and a parser's own message quotes the lines around the fault: js-yaml prints a snippet of the file,
 * V8's JSON.parse the text around an unexpected token. Such a message would reach the reload endpoint's answer,
 * `GET /api/v1/mcp/config`, the log and the audit log. What is kept: the file, the line and column, and the parser's
 * reason (`bad indentation of a mapping entry`), never the text.
 */

export interface SyntaxFault {
  /** The parser's reason, with no source text in it. */
  reason: string
  /** 1-based, when the parser said where. */
  line?: number
  column?: number
}

/** `<source>: line L, column C: <reason>` (the place left out when unknown). */
export function describeFault(source: string, f: SyntaxFault): string {
  const where = f.line !== undefined ? `line ${f.line}${f.column !== undefined ? `, column ${f.column}` : ''}: ` : ''
  return `${source}: ${where}${f.reason}`
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : undefined)

/**
 * A YAML parser's error: js-yaml's (`reason`, and `mark` with 0-based `line` and `column`), or the `yaml` package's,
 * which node-config prefers when installed (`linePos` 1-based; its message's first line ends with the place, then a
 * snippet follows).
 */
export function yamlFault(e: unknown): SyntaxFault {
  const err = e as { reason?: unknown; mark?: { line?: unknown; column?: unknown }; linePos?: { line?: unknown; col?: unknown }[]; code?: unknown }
  if (typeof err?.reason === 'string' && err.mark !== undefined) {
    const line = num(err.mark.line)
    const column = num(err.mark.column)
    return { reason: err.reason, ...(line !== undefined ? { line: line + 1 } : {}), ...(column !== undefined ? { column: column + 1 } : {}) }
  }
  const pos = err?.linePos?.[0]
  if (pos !== undefined && typeof err.code === 'string') {
    const line = num(pos.line)
    const column = num(pos.col)
    return { reason: err.code.toLowerCase().replace(/_/g, ' '), ...(line !== undefined ? { line } : {}), ...(column !== undefined ? { column } : {}) }
  }
  return { reason: 'not valid YAML' }
}

/**
 * JSON5's error (node-config parses `.json`, `.jsonc` and `.json5` files with it): `lineNumber` and `columnNumber`; its
 * message quotes the offending character (`invalid character 'x' at 3:7`), which is left out.
 */
export function json5Fault(e: unknown): SyntaxFault {
  const err = e as { message?: unknown; lineNumber?: unknown; columnNumber?: unknown }
  const line = num(err?.lineNumber)
  const column = num(err?.columnNumber)
  const m = typeof err?.message === 'string' ? /^JSON5: (invalid (?:character|identifier character|end of input|escape))/.exec(err.message) : null
  return { reason: m?.[1] ?? 'not valid JSON', ...(line !== undefined ? { line } : {}), ...(column !== undefined ? { column } : {}) }
}

/**
 * V8's JSON.parse error. Most of its messages end with the place (`... in JSON at position 19 (line 2 column 2)`) and
 * quote nothing; `Unexpected token 'x', "...text..." is not valid JSON` quotes the text around the token, and
 * says nowhere where it is: `locate` (another parser's fault on the same text) may.
 */
export function jsonFault(e: unknown, locate?: () => SyntaxFault | undefined): SyntaxFault {
  const msg = typeof (e as Error)?.message === 'string' ? (e as Error).message : ''
  const m = /^([A-Za-z ',{}[\]:-]*?) in JSON at position \d+ \(line (\d+) column (\d+)\)$/.exec(msg)
  if (m) return { reason: m[1]!, line: Number(m[2]), column: Number(m[3]) }
  if (msg === 'Unexpected end of JSON input') return { reason: msg }
  const at = locate?.()
  return { reason: 'unexpected token', ...(at?.line !== undefined ? { line: at.line } : {}), ...(at?.column !== undefined ? { column: at.column } : {}) }
}

/** The fault of a config file by its extension; other formats keep only the error's name and place, when it has one. */
export function fileFault(file: string, e: unknown): SyntaxFault {
  const ext = file.slice(file.lastIndexOf('.') + 1).toLowerCase()
  if (ext === 'yaml' || ext === 'yml') return yamlFault(e)
  if (ext === 'json' || ext === 'jsonc' || ext === 'json5') return json5Fault(e)
  const err = e as { name?: unknown; lineNumber?: unknown; columnNumber?: unknown }
  const line = num(err?.lineNumber)
  const column = num(err?.columnNumber)
  return { reason: `cannot be parsed (${typeof err?.name === 'string' ? err.name : 'error'})`, ...(line !== undefined ? { line } : {}), ...(column !== undefined ? { column } : {}) }
}
