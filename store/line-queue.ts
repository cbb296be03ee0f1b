/**
 * LineQueue: the execution-log writer's queue of COPY lines, kept as UTF-8 bytes in pooled off-heap chunks rather
 * than as strings on the V8 heap.
 *
 * Why: a queued row waits for its batch (tens to hundreds of milliseconds under load), long enough to survive one
 * or two scavenges. As a heap string it was copied by each scavenge it survived and then promoted, and the old
 * generation filled with dead rows that the concurrent marker had to trace: about 20 µs of CPU per request at
 * 12,000 requests/s, more than building the row. Here the row's string dies young (it is encoded into a chunk at
 * once), the chunk's bytes are invisible to the GC, and a batch goes to COPY as views of the chunks with no
 * join and no second encoding.
 *
 * A chunk is returned to a small pool once every line in it has been taken and every batch that views it is
 * released; a batch stays retained while a database write may still be reading it (CopyBatch.retain/release),
 * so a write that timed out but is still in flight never sees its bytes overwritten.
 *
 * Lines put back at the head (`unshift`, rows the spool could not take) are kept as strings: that is the outage
 * path, where cost does not matter.
 */
import type { CopyChunks } from './types.ts'

const CHUNK_BYTES = 256 * 1024
const POOL_MAX = 16
const NL = 0x0a

interface Chunk {
  buf: Buffer
  used: number
  /** End offset (after the '\n') of each line written, in order. */
  ends: number[]
  /** Lines of `ends` already taken, and the byte offset where the next untaken line starts. */
  read: number
  readOff: number
  /** The queue's own reference (while the chunk still holds untaken lines or is being written) plus one per batch. */
  refs: number
}

/** A batch of COPY lines: as byte chunks for the database, as strings for the spool, bisection and logs. */
export interface CopyBatch extends CopyChunks {
  readonly count: number
  readonly bytes: number
  /** The lines as strings (decoded on demand; for the rare paths). */
  lines(): string[]
  retain(): void
  /** Drops one reference; the chunks it views may be reused once no reference is left. */
  release(): void
}

/** Encodes lines into COPY chunks of about `max` bytes each (lines are never split). */
export function encodeLines(lines: readonly string[], max = 1 << 20): Buffer[] {
  const out: Buffer[] = []
  let from = 0
  let size = 0
  for (let i = 0; i < lines.length; i++) {
    size += lines[i]!.length + 1
    if (size < max && i < lines.length - 1) continue
    out.push(Buffer.from(lines.slice(from, i + 1).join('\n') + '\n', 'utf8'))
    from = i + 1
    size = 0
  }
  return out
}

/** A batch of lines that are strings already (replays, bisected halves, requeued rows). */
export function stringBatch(lines: readonly string[]): CopyBatch {
  let chunks: Buffer[] | undefined
  let bytes = 0
  for (const l of lines) bytes += l.length + 1
  return {
    count: lines.length,
    bytes,
    get chunks() { return (chunks ??= encodeLines(lines)) },
    lines: () => [...lines],
    retain() {},
    release() {},
  }
}

class ChunkBatch implements CopyBatch {
  readonly chunks: Buffer[] = []
  readonly #from: Chunk[] = []
  readonly #queue: LineQueue
  #refs = 1
  count = 0
  bytes = 0

  constructor(queue: LineQueue) {
    this.#queue = queue
  }

  add(c: Chunk, start: number, end: number, lines: number): void {
    c.refs++
    this.#from.push(c)
    this.chunks.push(c.buf.subarray(start, end))
    this.count += lines
    this.bytes += end - start
  }

  lines(): string[] {
    if (this.#refs <= 0) throw new Error('CopyBatch: lines() after release')
    const out: string[] = []
    for (const b of this.chunks) {
      const s = b.toString('utf8')
      out.push(...s.slice(0, -1).split('\n'))
    }
    return out
  }

  retain(): void {
    this.#refs++
  }

  release(): void {
    if (this.#refs <= 0 || --this.#refs > 0) return
    for (const c of this.#from) this.#queue.unref(c)
    this.#from.length = 0
  }
}

export class LineQueue {
  /** Chunks with untaken lines, oldest first; the last one is written to. */
  readonly #chunks: Chunk[] = []
  readonly #pool: Chunk[] = []
  /** Lines put back at the head, as strings. */
  #front: string[] = []
  #length = 0
  #bytes = 0

  /** Queued lines. */
  get length(): number { return this.#length }
  /** Queued bytes (UTF-8, newlines included). */
  get bytes(): number { return this.#bytes }

  /** Appends one line (no newline in it); returns its size in bytes. */
  push(line: string): number {
    let c = this.#chunks[this.#chunks.length - 1]
    const worst = line.length * 3 + 1
    if (c === undefined || c.buf.length - c.used < worst) {
      if (c === undefined || c.buf.length - c.used < Buffer.byteLength(line, 'utf8') + 1) c = this.#newChunk(worst)
    }
    const n = c.buf.write(line, c.used, 'utf8')
    c.buf[c.used + n] = NL
    c.used += n + 1
    c.ends.push(c.used)
    this.#length++
    this.#bytes += n + 1
    return n + 1
  }

  /** Puts lines back at the head of the queue (in order). */
  unshift(lines: readonly string[]): void {
    if (lines.length === 0) return
    this.#front = lines.concat(this.#front)
    this.#length += lines.length
    for (const l of lines) this.#bytes += l.length + 1
  }

  /** The first `n` queued lines (fewer when lines put back at the head come first). The caller releases it. */
  take(n: number): CopyBatch {
    if (this.#front.length > 0) {
      const lines = n >= this.#front.length ? this.#front : this.#front.slice(0, n)
      this.#front = n >= this.#front.length ? [] : this.#front.slice(n)
      this.#length -= lines.length
      for (const l of lines) this.#bytes -= l.length + 1
      return stringBatch(lines)
    }
    const batch = new ChunkBatch(this)
    while (batch.count < n && this.#chunks.length > 0) {
      const c = this.#chunks[0]!
      const k = Math.min(n - batch.count, c.ends.length - c.read)
      if (k > 0) {
        const end = c.ends[c.read + k - 1]!
        batch.add(c, c.readOff, end, k)
        c.read += k
        c.readOff = end
      }
      // Fully taken and no longer written to: the queue lets go of it.
      if (c.read === c.ends.length && this.#chunks.length > 1) {
        this.#chunks.shift()
        this.unref(c)
      } else if (c.read === c.ends.length) break
    }
    this.#length -= batch.count
    this.#bytes -= batch.bytes
    return batch
  }

  /** @internal a batch's release. */
  unref(c: Chunk): void {
    if (--c.refs > 0) return
    if (c.buf.length === CHUNK_BYTES && this.#pool.length < POOL_MAX) {
      c.used = 0
      c.ends = []
      c.read = 0
      c.readOff = 0
      this.#pool.push(c)
    }
  }

  #newChunk(minBytes: number): Chunk {
    const last = this.#chunks[this.#chunks.length - 1]
    // The chunk being replaced keeps its untaken lines; once they are all taken it is dropped (take()).
    if (last !== undefined && last.read === last.ends.length) {
      this.#chunks.pop()
      this.unref(last)
    }
    const pooled = minBytes <= CHUNK_BYTES ? this.#pool.pop() : undefined
    const c: Chunk = pooled ?? { buf: Buffer.allocUnsafeSlow(Math.max(CHUNK_BYTES, minBytes)), used: 0, ends: [], read: 0, readOff: 0, refs: 0 }
    c.refs = 1
    this.#chunks.push(c)
    return c
  }
}
