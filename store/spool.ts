/**
 * The execution-log spool: a local append-only journal for rows the database could not take, one row per line
 * (the writer's COPY text lines, store/execution-log-rows.ts; segments written by earlier versions hold JSON
 * arrays, which the writer converts when it replays them). The spool itself only stores and returns lines.
 *
 * - Rows are appended to the active segment `seg-<seq>.ndjson` (one `write` per batch, straight to the OS: no
 *   user-space buffer, so a SIGKILL loses nothing that `append` resolved for; fsync'd at most every
 *   `fsyncIntervalMs`, on rotation and on close, which bounds what a power loss can take).
 * - A segment is sealed when it reaches `segmentBytes`; replay reads segments oldest first and deletes one only
 *   after every row in it was committed (`commit`). A crash between the commit and the delete replays the segment
 *   again: the writer's COPY then fails with a unique violation and the batch is merged with ON CONFLICT DO
 *   NOTHING, so that is harmless. (Files keep their `.ndjson` names from the JSON-lines days.)
 * - Leftover segments from a previous process (crash, SIGTERM during an outage) are found at `open` and replayed
 *   first; a torn last line (a write cut by the crash) is skipped and counted as corrupt.
 * - `maxBytes` bounds the disk: `append` returns false instead of writing past it.
 * - Rows that the database rejects for their content (not for being unreachable) go to `rejected.ndjson`,
 *   a dead-letter file kept for inspection and never replayed.
 *
 * One process per directory (like PGlite's data directory): two writers sharing a spool would append to the same
 * segment names and delete each other's segments after replaying only what they had read. `open` takes
 * `spool.lock` (store/dir-lock.ts) and fails while another live process holds it; `close` releases it.
 */
import { mkdir, open, readdir, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { lockDir } from './dir-lock.ts'

export interface SpoolOptions {
  dir: string
  /** Seal the active segment at this size. Default 8 MiB. */
  segmentBytes?: number
  /** Total size of the unreplayed segments. Default 1 GiB. */
  maxBytes?: number
  /** fsync the active segment at most this often, ms; 0 = after every append. Default 1000. */
  fsyncIntervalMs?: number
  /**
   * Size of the dead-letter file (rejected.ndjson) before it rolls over to rejected.ndjson.1, replacing the one
   * before: the rows the database refused keep at most twice this much disk. Default 64 MiB.
   */
  maxRejectedBytes?: number
}

export interface SpoolSegment {
  readonly name: string
  /** The complete lines of the segment, in append order (a torn last line is left out). */
  readonly lines: readonly string[]
}

interface SegmentInfo {
  seq: number
  name: string
  bytes: number
  rows: number
}

interface ActiveSegment {
  info: SegmentInfo
  fh: FileHandle
  /** Written since the last fsync. */
  dirty: boolean
}

const SEGMENT = /^seg-(\d{12})\.ndjson$/
const NEWLINE = 0x0a

function segmentName(seq: number): string {
  return `seg-${String(seq).padStart(12, '0')}.ndjson`
}

function countLines(buf: Buffer): number {
  let n = 0
  let i = buf.indexOf(NEWLINE)
  while (i !== -1) { n++; i = buf.indexOf(NEWLINE, i + 1) }
  return n
}

export class Spool {
  readonly dir: string
  readonly #segmentBytes: number
  readonly #maxBytes: number
  readonly #fsyncMs: number
  readonly #segments: SegmentInfo[]
  #nextSeq: number
  #active: ActiveSegment | undefined
  #syncTimer: NodeJS.Timeout | undefined
  #bytes: number
  #rows: number
  /** Operations run one at a time, in call order. */
  #chain: Promise<unknown> = Promise.resolve()
  #closed = false
  readonly #unlock: () => Promise<void>
  readonly #maxRejectedBytes: number

  private constructor(opts: SpoolOptions, segments: SegmentInfo[], unlock: () => Promise<void>) {
    this.#unlock = unlock
    this.dir = opts.dir
    this.#segmentBytes = opts.segmentBytes ?? 8 * 1024 * 1024
    this.#maxBytes = opts.maxBytes ?? 1024 * 1024 * 1024
    this.#maxRejectedBytes = opts.maxRejectedBytes ?? 64 * 1024 * 1024
    this.#fsyncMs = opts.fsyncIntervalMs ?? 1000
    this.#segments = segments
    this.#nextSeq = (segments.at(-1)?.seq ?? 0) + 1
    this.#bytes = segments.reduce((s, x) => s + x.bytes, 0)
    this.#rows = segments.reduce((s, x) => s + x.rows, 0)
  }

  /** Opens (creating) the directory and takes stock of the segments a previous process left. */
  static async open(opts: SpoolOptions): Promise<Spool> {
    await mkdir(opts.dir, { recursive: true })
    const unlock = await lockDir(join(opts.dir, 'spool.lock'), `the execution-log spool ${opts.dir}`)
    const segments: SegmentInfo[] = []
    try {
      for (const name of (await readdir(opts.dir)).sort()) {
        const m = SEGMENT.exec(name)
        if (!m) continue
        const path = join(opts.dir, name)
        const size = (await stat(path)).size
        if (size === 0) { await unlink(path).catch(() => {}); continue }
        segments.push({ seq: Number(m[1]), name, bytes: size, rows: countLines(await readFile(path)) })
      }
    } catch (e) {
      await unlock()
      throw e
    }
    return new Spool(opts, segments, unlock)
  }

  get bytes(): number { return this.#bytes }
  /** Rows waiting to be replayed. */
  get rows(): number { return this.#rows }
  get segments(): number { return this.#segments.length }
  get empty(): boolean { return this.#segments.length === 0 }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#chain.then(fn)
    this.#chain = p.catch(() => {})
    return p
  }

  /**
   * Appends lines (no newline inside any of them) as one write. Resolves false, writing nothing, when that would
   * take the spool past maxBytes; rejects on I/O errors (disk full, permissions).
   */
  append(lines: readonly string[]): Promise<boolean> {
    if (lines.length === 0) return Promise.resolve(true)
    return this.#serial(async () => {
      if (this.#closed) throw new Error('spool is closed')
      const buf = Buffer.from(lines.join('\n') + '\n', 'utf8')
      if (this.#bytes + buf.length > this.#maxBytes) return false
      const a = this.#active ?? await this.#openActive()
      let off = 0
      try {
        while (off < buf.length) off += (await a.fh.write(buf, off, buf.length - off)).bytesWritten
      } catch (e) {
        if (off > 0) await this.#cutPartial(a, off)
        throw e
      }
      a.info.bytes += buf.length
      a.info.rows += lines.length
      this.#bytes += buf.length
      this.#rows += lines.length
      a.dirty = true
      if (a.info.bytes >= this.#segmentBytes) await this.#seal()
      else if (this.#fsyncMs === 0) await this.#syncActive()
      else this.#syncTimer ??= setTimeout(() => { this.#syncTimer = undefined; void this.sync().catch(() => {}) }, this.#fsyncMs).unref()
      return true
    })
  }

  /**
   * A write that failed part way (disk full) left `written` bytes of this append, ending in a partial line that the
   * next append would continue (gluing a row to a fragment: a line that is not a row). The caller keeps the rows, so
   * the bytes are cut off; if that fails too, the segment is sealed as it is: the fragment stays its torn last line,
   * which replay leaves out.
   */
  async #cutPartial(a: ActiveSegment, written: number): Promise<void> {
    try {
      await a.fh.truncate(a.info.bytes)
    } catch {
      a.info.bytes += written
      this.#bytes += written
      await this.#seal().catch(() => {})
    }
  }

  async #openActive(): Promise<ActiveSegment> {
    const info: SegmentInfo = { seq: this.#nextSeq++, name: '', bytes: 0, rows: 0 }
    info.name = segmentName(info.seq)
    const fh = await open(join(this.dir, info.name), 'a')
    this.#segments.push(info)
    this.#active = { info, fh, dirty: false }
    return this.#active
  }

  async #syncActive(): Promise<void> {
    const a = this.#active
    if (a?.dirty) { a.dirty = false; await a.fh.datasync() }
  }

  async #seal(): Promise<void> {
    const a = this.#active
    if (!a) return
    this.#active = undefined
    try {
      if (a.dirty) await a.fh.datasync()
    } finally {
      await a.fh.close()
    }
  }

  /** fsync of the active segment (the timer calls it; close does too). */
  sync(): Promise<void> {
    return this.#serial(() => this.#syncActive())
  }

  /**
   * The oldest segment with its lines, or undefined when the spool is empty. When that segment is the one being
   * appended to, it is sealed first, so later appends go to a new segment.
   */
  readOldest(): Promise<SpoolSegment | undefined> {
    return this.#serial(async () => {
      const oldest = this.#segments[0]
      if (!oldest) return undefined
      if (this.#active?.info === oldest) await this.#seal()
      const text = await readFile(join(this.dir, oldest.name), 'utf8')
      const lines = text.split('\n')
      // The last element is '' after a final newline, or a torn line cut by a crash.
      lines.pop()
      return { name: oldest.name, lines: lines.filter((l) => l.length > 0) }
    })
  }

  /** Every row of the segment is in the database: delete it. */
  commit(segment: SpoolSegment): Promise<void> {
    return this.#serial(async () => {
      const i = this.#segments.findIndex((s) => s.name === segment.name)
      if (i === -1) return
      const info = this.#segments[i]!
      if (this.#active?.info === info) await this.#seal()
      await unlink(join(this.dir, info.name)).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e })
      this.#segments.splice(i, 1)
      this.#bytes -= info.bytes
      this.#rows -= info.rows
    })
  }

  /** Dead letter: rows the database refused for their content. Appended to rejected.ndjson, never replayed. */
  reject(lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return Promise.resolve()
    return this.#serial(async () => {
      const file = join(this.dir, 'rejected.ndjson')
      const text = lines.join('\n') + '\n'
      const size = await stat(file).then((x) => x.size, () => 0)
      // Bounded: the file rolls over (the previous roll-over is replaced) rather than grow with every refused row.
      if (size > 0 && size + Buffer.byteLength(text) > this.#maxRejectedBytes) await rename(file, `${file}.1`)
      const fh = await open(file, 'a')
      try {
        await fh.write(text)
        await fh.datasync()
      } finally {
        await fh.close()
      }
    })
  }

  /** fsync and close the active segment. Idempotent; segments stay on disk for the next process. */
  close(): Promise<void> {
    clearTimeout(this.#syncTimer)
    this.#syncTimer = undefined
    return this.#serial(async () => {
      if (this.#closed) return
      this.#closed = true
      try {
        await this.#seal()
      } finally {
        await this.#unlock()
      }
    })
  }
}
