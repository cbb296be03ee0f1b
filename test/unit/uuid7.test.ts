/** uuidv7: RFC 9562 layout (timestamp, version and variant bits), monotone in time and within one millisecond. */
import { describe, expect, it } from 'vitest'
import { uuidv7 } from '../../gateway/uuid7.ts'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

function timestampOf(id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16)
}

describe('uuidv7', () => {
  it('is a UUID string with version 7, variant 10 and the millisecond timestamp in its first 48 bits', () => {
    const before = Date.now()
    const ids = Array.from({ length: 1000 }, () => uuidv7())
    const after = Date.now()
    for (const id of ids) {
      expect(id).toMatch(UUID)
      expect(id[14]).toBe('7')
      expect(['8', '9', 'a', 'b']).toContain(id[19])
      expect(timestampOf(id)).toBeGreaterThanOrEqual(before)
      expect(timestampOf(id)).toBeLessThanOrEqual(after + 1)
    }
    expect(new Set(ids).size).toBe(ids.length)
  })

  it('is monotone: later milliseconds sort later, and ids within one millisecond sort in generation order', () => {
    const t = Date.now() + 10_000
    const ids = [uuidv7(t), uuidv7(t), uuidv7(t), uuidv7(t + 1), uuidv7(t + 1), uuidv7(t + 5)]
    expect([...ids].sort()).toEqual(ids)
    expect(new Set(ids).size).toBe(ids.length)
    expect(timestampOf(ids[3]!)).toBe(t + 1)
  })

  it('stays monotone when the counter overflows within one millisecond or the clock goes backwards', () => {
    const t = Date.now() + 20_000
    const ids = Array.from({ length: 10_000 }, () => uuidv7(t))
    ids.push(uuidv7(t - 1000))
    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true)
    // 10,000 ids cannot share one millisecond's 12-bit counter: the timestamp moved on by a few ms, never back.
    expect(timestampOf(ids.at(-1)!)).toBeGreaterThan(t)
    expect(timestampOf(ids.at(-1)!)).toBeLessThan(t + 10)
  })
})
