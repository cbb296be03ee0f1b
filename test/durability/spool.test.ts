/**
 * The spool (store/spool.ts): append-only NDJSON segments, rotation by size, replay oldest first, delete after
 * commit, leftovers found by the next process, a torn last line skipped, the disk bound, the dead-letter file.
 */
import { mkdtemp, open, readdir, readFile, rm, stat, symlink, unlink, writeFile, appendFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
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

  it('an append cut part way by a write error (disk full) leaves no partial line for the next append to continue', async () => {
    const dir = await tempDir()
    const s = await Spool.open({ dir, fsyncIntervalMs: 0 })
    await s.append([line(0), line(1)])
    // The next append's first write stores part of the buffer, the write after it fails with ENOSPC.
    const probe = await open(join(dir, 'probe'), 'w')
    const proto = Object.getPrototypeOf(probe) as { write: (...a: unknown[]) => Promise<{ bytesWritten: number }> }
    await probe.close()
    const real = proto.write
    let calls = 0
    const spy = vi.spyOn(proto, 'write').mockImplementation(function (this: unknown, buf: unknown, off: unknown, len: unknown) {
      calls++
      if (calls === 1) return real.call(this, buf, off, Math.floor((len as number) / 2) + 3)
      return Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }))
    })
    await expect(s.append([line(2), line(3)])).rejects.toThrow(/ENOSPC/)
    spy.mockRestore()
    expect(calls).toBe(2)
    // The writer keeps rows[2..3] in memory and appends them again later; the next rows must come through whole.
    expect(await s.append([line(4)])).toBe(true)
    const seg = await s.readOldest()
    expect(seg?.lines).toEqual([line(0), line(1), line(4)])
    expect(s.rows).toBe(3)
    expect(s.bytes).toBe((await stat(join(dir, seg!.name))).size)
    await s.close()
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

  it('the dead-letter file is bounded: past maxRejectedBytes it rolls over to rejected.ndjson.1 (the one before is dropped)', async () => {
    const dir = await tempDir()
    const s = await Spool.open({ dir, maxRejectedBytes: 200 })
    for (let i = 0; i < 20; i++) await s.reject([line(i)])
    const current = await readFile(join(dir, 'rejected.ndjson'), 'utf8')
    const previous = await readFile(join(dir, 'rejected.ndjson.1'), 'utf8')
    expect(Buffer.byteLength(current)).toBeLessThanOrEqual(200)
    expect(Buffer.byteLength(previous)).toBeLessThanOrEqual(200)
    // The newest rows are kept, in order.
    expect((previous + current).trimEnd().split('\n').at(-1)).toBe(line(19))
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
    expect((await readdir(dir)).sort()).toEqual(['notes.txt', 'seg-000000000001.ndjson', 'spool.lock'])
    await s.close()
  })

  it('one process per spool: a second open is refused until the first closes, and a dead holder\'s lock is taken over', async () => {
    const dir = await tempDir()
    const a = await Spool.open({ dir })
    await a.append([line(0)])
    // Two writers on one spool would both append to seg-000000000001 and each delete it after replaying only what
    // it had read: rows lost.
    await expect(Spool.open({ dir })).rejects.toThrow(/already open in this process/)
    await a.close()
    const b = await Spool.open({ dir })
    expect(b.rows).toBe(1)
    await b.close()
    // Another live process holds it (the test's parent stands in for one); then a process that is gone.
    await symlink(`${process.ppid}:`, join(dir, 'spool.lock'))
    await expect(Spool.open({ dir })).rejects.toThrow(/in use by another process \(pid \d+/)
    await unlink(join(dir, 'spool.lock'))
    await symlink(`${2 ** 22 + 1}:`, join(dir, 'spool.lock'))
    const c = await Spool.open({ dir })
    expect(c.rows).toBe(1)
    await c.close()
  })
})
