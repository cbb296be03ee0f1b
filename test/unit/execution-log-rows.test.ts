/**
 * The execution-log line form without a database: COPY text escaping, timestamps, neutralised values, the shape
 * check applied to spool lines, and the reader of the earlier JSON-array spool lines. (The database side of the
 * same lines is test/durability/writer.test.ts, on both engines.)
 */
import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { fromCopyLine, fromLegacyLine, isCopyLine, readSpoolLine, toCopyLine, type ExecutionLogRow } from '../../store/execution-log-rows.ts'

function row(over: Partial<ExecutionLogRow> = {}): ExecutionLogRow {
  return {
    id: randomUUID(), requestId: 'req-1', deploymentId: null, provider: 'openai', model: 'gpt-4o', status: 'ok', keyId: null,
    promptVersionId: null, createdAt: Date.parse('2026-03-04T05:06:07.089Z'), completedAt: Date.parse('2026-03-04T05:06:08.001Z'),
    request: { messages: [{ role: 'user', content: 'hi' }] }, response: { status: 200 }, metrics: { latencyMs: 1 }, ...over,
  }
}

function columns(line: string): string[] {
  return line.split('\t')
}

describe('execution-log lines', () => {
  it('writes the 13 columns in COPY text format: \\N for NULL, ISO 8601 UTC times, JSON text', () => {
    const r = row({ keyId: null, completedAt: null, response: null, metrics: undefined })
    expect(columns(toCopyLine(r))).toEqual([
      r.id, 'req-1', '\\N', 'openai', 'gpt-4o', 'ok', '\\N', '\\N', '2026-03-04T05:06:07.089Z', '\\N',
      '{"messages":[{"role":"user","content":"hi"}]}', '\\N', '\\N',
    ])
    // A missing request is {} (the column is NOT NULL), as before.
    expect(columns(toCopyLine(row({ request: undefined })))[10]).toBe('{}')
  })

  it('formats every millisecond like Date#toISOString, across second boundaries and in any order', () => {
    const base = Date.parse('2026-12-31T23:59:58.990Z')
    const times = [0, 999, 1000, base, base + 9, base + 10, base + 1010, base - 1, 1, base + 86_400_000 * 400, base + 0.4, base + 0.6]
    for (const t of [...times, ...times.reverse()]) {
      expect(columns(toCopyLine(row({ createdAt: t, completedAt: t + 1 })))[8]).toBe(new Date(Math.round(t)).toISOString())
    }
    // Not finite: now. Past what a Date holds: the bare number, which PostgreSQL refuses (the row is dead-lettered).
    expect(Date.parse(columns(toCopyLine(row({ createdAt: Number.NaN })))[8]!)).toBeGreaterThan(Date.now() - 1000)
    expect(columns(toCopyLine(row({ createdAt: 1e17 })))[8]).toBe('100000000000000000')
  })

  it('escapes backslash, tab, newline and CR, so a line never holds a raw one; NUL and lone surrogates become U+FFFD', () => {
    const r = row({
      requestId: 'a\tb\nc\rd\\e\u0000f\ud800g', model: 'pair \ud83d\ude00 ok',
      request: { content: 'tab\t nl\n quote" backslash\\ nul\u0000 lone\udc00 \\u0000 literal' },
    })
    const line = toCopyLine(r)
    expect(line).not.toMatch(/[\n\r\0]/)
    expect(columns(line)).toHaveLength(13)
    expect(columns(line)[1]).toBe('a\\tb\\nc\\rd\\\\e\ufffdf\ufffdg')
    expect(columns(line)[10]).toBe('{"content":"tab\\\\t nl\\\\n quote\\\\" backslash\\\\\\\\ nul\\\\ufffd lone\\\\ufffd \\\\\\\\u0000 literal"}')
    const back = fromCopyLine(line)
    expect(back.requestId).toBe('a\tb\nc\rd\\e\ufffdf\ufffdg')
    expect(back.model).toBe('pair \ud83d\ude00 ok')
    expect(back.request).toEqual({ content: 'tab\t nl\n quote" backslash\\ nul\ufffd lone\ufffd \\u0000 literal' })
  })

  it('cuts varchar values to their length, nulls malformed UUIDs and replaces a malformed row id', () => {
    const cols = columns(toCopyLine(row({ id: 'nope', requestId: 'r'.repeat(150), provider: 'p'.repeat(80), status: 's'.repeat(30), keyId: 'bootstrap', deploymentId: 'x' })))
    expect(cols[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(cols.slice(1, 7)).toEqual(['r'.repeat(128), '\\N', 'p'.repeat(50), 'gpt-4o', 's'.repeat(20), '\\N'])
  })

  it('accepts as spool lines only rows of its own shape', () => {
    const line = toCopyLine(row({ requestId: 'ends with a backslash \\', request: { s: '\\.' } }))
    expect(isCopyLine(line)).toBe(true)
    expect(readSpoolLine(line)).toBe(line)
    for (const bad of [
      '{"foreign":true}', '', 'not-a-uuid\tx', line.replace(/\t[^\t]*$/, ''), `${line}\textra`, line.replace('gpt-4o', 'gpt\r4o'),
      // An unescaped \. would end the COPY data there; a trailing lone backslash would join the next line.
      line.replace('gpt-4o', '\\.'), `${line}\\`,
    ]) {
      expect(isCopyLine(bad), bad).toBe(false)
      expect(readSpoolLine(bad)).toBeUndefined()
    }
  })

  it('reads the earlier JSON-array spool lines into COPY lines, and refuses arrays the old INSERT would have refused', () => {
    const r = row({ requestId: 'legacy\tid', keyId: randomUUID(), response: null })
    const legacy = JSON.stringify([r.id, r.requestId, r.deploymentId, r.provider, r.model, r.status, r.keyId, r.promptVersionId, r.createdAt, r.completedAt, r.request, r.response, r.metrics])
    expect(fromLegacyLine(legacy)).toBe(toCopyLine(r))
    expect(readSpoolLine(legacy)).toBe(toCopyLine(r))
    expect(fromLegacyLine('["not-a-uuid","x"]')).toBeUndefined()
    expect(fromLegacyLine(legacy.replace(String(r.createdAt), '"yesterday"'))).toBeUndefined()
    expect(fromLegacyLine('[torn')).toBeUndefined()
  })
})
