/** docs/errors.md lists exactly the codes of gateway/errors.ts, with their status and type. */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { ERRORS, type ErrorCode } from '../../gateway/errors.ts'

const DOC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs/errors.md')
const doc = readFileSync(DOC, 'utf8')
const codes = Object.keys(ERRORS) as ErrorCode[]

/** Table rows: | `CODE` | status | type | when | what to do | */
const rows = new Map<string, { status: string; type: string; cells: string[] }>()
for (const line of doc.split('\n')) {
  const m = /^\|\s*`(MCP_ERR_[A-Z0-9_]+)`\s*\|(.*)\|\s*$/.exec(line)
  if (!m) continue
  const cells = m[2]!.split('|').map((c) => c.trim())
  expect(rows.has(m[1]!), `${m[1]} listed twice`).toBe(false)
  rows.set(m[1]!, { status: cells[0] ?? '', type: cells[1] ?? '', cells })
}

describe('docs/errors.md', () => {
  it('lists every code of the error table', () => {
    const missing = codes.filter((c) => !rows.has(c))
    expect(missing).toEqual([])
  })

  it('mentions no code that does not exist', () => {
    const mentioned = new Set(doc.match(/MCP_ERR_[A-Z0-9_]*[A-Z0-9]/g) ?? [])
    const unknown = [...mentioned].filter((c) => !(c in ERRORS))
    expect(unknown).toEqual([])
  })

  it.each(codes)('%s: documented status and type match the table, with when and what to do', (code) => {
    const row = rows.get(code)
    expect(row).toBeDefined()
    expect(row!.status.split(' ')[0]).toBe(String(ERRORS[code].status))
    expect(row!.type.split(' ')[0]).toBe(ERRORS[code].type)
    expect(row!.cells).toHaveLength(4)
    expect(row!.cells[2]!.length).toBeGreaterThan(10)
    expect(row!.cells[3]!.length).toBeGreaterThan(5)
  })
})
