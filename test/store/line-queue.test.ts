import { describe, expect, it } from 'vitest'
import { LineQueue, stringBatch } from '../../store/line-queue.ts'

const text = (chunks: readonly Uint8Array[]): string => chunks.map((c) => Buffer.from(c).toString('utf8')).join('')

describe('LineQueue', () => {
  it('keeps lines in order across chunk boundaries, multi-byte characters included, and hands them out as COPY chunks', () => {
    const q = new LineQueue()
    const lines = Array.from({ length: 3000 }, (_, i) => `${i}\t${'é€😀x'.repeat(i % 97)}\t{"k":"v${i}"}`)
    let bytes = 0
    for (const l of lines) bytes += q.push(l)
    expect(q.length).toBe(3000)
    expect(q.bytes).toBe(bytes)
    expect(bytes).toBe(lines.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0))
    const got: string[] = []
    while (q.length > 0) {
      const b = q.take(700)
      expect(b.count).toBeLessThanOrEqual(700)
      const t = text(b.chunks)
      expect(t.endsWith('\n')).toBe(true)
      expect(b.bytes).toBe(Buffer.byteLength(t))
      expect(b.lines()).toEqual(t.slice(0, -1).split('\n'))
      got.push(...b.lines())
      b.release()
    }
    expect(got).toEqual(lines)
    expect(q.bytes).toBe(0)
  })

  it('takes a line larger than a chunk', () => {
    const q = new LineQueue()
    const big = 'x'.repeat(600_000)
    q.push('a')
    q.push(big)
    q.push('b')
    const b = q.take(10)
    expect(b.lines()).toEqual(['a', big, 'b'])
    expect(text(b.chunks)).toBe(`a\n${big}\nb\n`)
  })

  it('does not reuse a chunk while a batch that views it is retained', () => {
    const q = new LineQueue()
    const first = Array.from({ length: 2000 }, (_, i) => `first-${i}-${'a'.repeat(200)}`)
    for (const l of first) q.push(l)
    const held = q.take(first.length)
    const snapshot = text(held.chunks)
    held.retain() // a database write still in flight
    held.release() // the writer is done with it
    // Enough new lines to need every chunk again, several times over.
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 2000; i++) q.push(`second-${round}-${i}-${'b'.repeat(200)}`)
      q.take(2000).release()
    }
    expect(text(held.chunks)).toBe(snapshot)
    held.release()
  })

  it('reuses released chunks (no growth under steady load)', () => {
    const q = new LineQueue()
    const seen = new Set<ArrayBufferLike>()
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 1000; i++) q.push(`${round}-${i}-${'c'.repeat(500)}`)
      const b = q.take(1000)
      for (const c of b.chunks) seen.add(c.buffer)
      b.release()
    }
    // 500 KB per round in 256 KiB chunks: a handful of distinct chunks, not one per round.
    expect(seen.size).toBeLessThan(8)
  })

  it('lines put back at the head come out first, as they were', () => {
    const q = new LineQueue()
    q.push('c')
    q.push('d')
    q.unshift(['a', 'b'])
    expect(q.length).toBe(4)
    expect(q.take(10).lines()).toEqual(['a', 'b'])
    expect(q.take(10).lines()).toEqual(['c', 'd'])
    expect(q.length).toBe(0)
  })

  it('a batch of strings encodes to the same COPY text', () => {
    const b = stringBatch(['x\ty', 'ü'])
    expect(text(b.chunks)).toBe('x\ty\nü\n')
    expect(b.count).toBe(2)
  })
})
