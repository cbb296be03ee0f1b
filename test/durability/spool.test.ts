/**
 * The spool (store/spool.ts): append-only NDJSON segments, rotation by size, replay oldest first, delete after
 * commit, leftovers found by the next process, a torn last line skipped, the disk bound, the dead-letter file.
 */
import { mkdtemp, readdir, readFile, rm, writeFile, appendFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Spool } from '../../store/spool.ts'

const dirs: string[] = []
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'mcp-spool-'))
  dirs.push(d)
  return d
}
afterEach(async () => { for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true }) })

const line = (i: number): string => JSON.stringify([`row-${i}`, 'x'.repeat(50)])

describe('spool', () => {
  it('appends lines to a segment and replays them in order, deleting the segment on commit', async () => {
    const dir = await tempDir()
    const s = await Spool.open({ dir })
    expect(s.empty).toBe(true)
    expect(await s.append([line(0), line(1)])).toBe(true)
    expect(await s.append([line(2)])).toBe(true)
    expect(s.rows).toBe(3)
    expect(s.bytes).toBe(3 * (line(0).length + 1))
    const seg = await s.readOldest()
    expect(seg?.lines).toEqual([line(0), line(1), line(2)])
    // Sealed: the next append opens a new segment.
    await s.append([line(3)])
    expect(s.segments).toBe(2)
    await s.commit(seg!)
    expect(s.rows).toBe(1)
    expect((await s.readOldest())?.lines).toEqual([line(3)])
    expect((await readdir(dir)).filter((f) => f.startsWith('seg-'))).toHaveLength(1)
    await s.close()
  })

  it('rotates segments by size and replays them oldest first', async () => {
    const dir = await tempDir()
    const s = await Spool.open({ dir, segmentBytes: 200 })
    for (let i = 0; i < 10; i++) await s.append([line(i)])
    expect(s.segments).toBe(3)
    const seen: string[] = []
    for (let seg = await s.readOldest(); seg; seg = await s.readOldest()) {
      seen.push(...seg.lines)
      await s.commit(seg)
    }
    expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => line(i)))
    expect(s.empty).toBe(true)
    expect(s.bytes).toBe(0)
    await s.close()
  })

  it('finds the segments a previous process left, skipping a torn last line', async () => {
    const dir = await tempDir()
    const a = await Spool.open({ dir })
    await a.append([line(0), line(1)])
    await a.close()
    // A crash in the middle of a write: the last line has no newline.
    const name = (await readdir(dir)).find((f) => f.startsWith('seg-'))!
    await appendFile(join(dir, name), '["row-2","tor')
    const b = await Spool.open({ dir })
    expect(b.rows).toBe(2)
    await b.append([line(3)])
    const first = await b.readOldest()
    expect(first?.lines).toEqual([line(0), line(1)])
    await b.commit(first!)
    expect((await b.readOldest())?.lines).toEqual([line(3)])
    await b.close()
  })

  it('refuses an append past maxBytes without writing anything', async () => {
    const dir = await tempDir()
    const s = await Spool.open({ dir, maxBytes: 300 })
    expect(await s.append([line(0), line(1), line(2), line(3)])).toBe(true)
    const before = s.bytes
    expect(await s.append([line(4), line(5)])).toBe(false)
    expect(s.bytes).toBe(before)
    await s.close()
  })

  it('keeps rejected rows in a dead-letter file that is never replayed', async () => {
    const dir = await tempDir()
    const s = await Spool.open({ dir })
    await s.reject([line(9)])
    expect(await readFile(join(dir, 'rejected.ndjson'), 'utf8')).toBe(line(9) + '\n')
    expect(await s.readOldest()).toBeUndefined()
    await s.close()
  })

  it('ignores empty leftover segments and foreign files', async () => {
    const dir = await tempDir()
    await writeFile(join(dir, 'seg-000000000007.ndjson'), '')
    await writeFile(join(dir, 'notes.txt'), 'hello\n')
    const s = await Spool.open({ dir })
    expect(s.empty).toBe(true)
    await s.append([line(0)])
    expect((await readdir(dir)).sort()).toEqual(['notes.txt', 'seg-000000000001.ndjson'])
    await s.close()
  })
})
