/**
 * UUIDv7 (RFC 9562): a 48-bit Unix millisecond timestamp, the version (7), a 12-bit counter (rand_a), the variant
 * (10) and 62 random bits. Ids sort by creation time, so rows keyed by them (execution_logs' primary key
 * (id, created_at)) are inserted at the right edge of the btree instead of at random pages.
 *
 * Monotone within the process (RFC 9562 §6.2, method 1): the counter starts at a random value below 2048 at each new
 * millisecond and is incremented for every further id in that millisecond; when it overflows, or when the clock
 * goes backwards, the timestamp of the previous id is kept (advanced by one ms on overflow). Random bits come from
 * a pooled `randomFillSync` buffer (like `crypto.randomUUID`'s own cache), so one id costs no syscall.
 */
import { randomFillSync } from 'node:crypto'

const POOL_BYTES = 4096
/** Random bytes per id: two seed the counter, eight fill the tail. */
const ID_BYTES = 10
const pool = Buffer.alloc(POOL_BYTES)
let poolAt = POOL_BYTES
let lastMs = -Infinity
let counter = 0
/** `xxxxxxxx-xxxx-7` for lastMs: ids generated in the same millisecond share it. */
let prefixMs = NaN
let prefix = ''

const HEX: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))
const HEX1: readonly string[] = Array.from({ length: 16 }, (_, i) => i.toString(16))

/** A UUIDv7 string (lowercase, hyphenated). `now` (epoch ms) is for tests; default Date.now(). */
export function uuidv7(now: number = Date.now()): string {
  if (poolAt + ID_BYTES > POOL_BYTES) {
    randomFillSync(pool)
    poolAt = 0
  }
  const b = pool
  const i = poolAt
  poolAt += ID_BYTES
  if (now > lastMs) {
    lastMs = now
    counter = ((b[i]! << 8) | b[i + 1]!) & 0x7ff
  } else if (++counter > 0xfff) {
    lastMs++
    counter = ((b[i]! << 8) | b[i + 1]!) & 0x7ff
  }
  if (lastMs !== prefixMs) {
    const t = Math.floor(lastMs).toString(16).padStart(12, '0')
    prefix = `${t.slice(0, 8)}-${t.slice(8, 12)}-7`
    prefixMs = lastMs
  }
  return prefix + HEX1[counter >> 8]! + HEX[counter & 0xff]! + '-' + HEX[(b[i + 2]! & 0x3f) | 0x80]! + HEX[b[i + 3]!]! + '-'
    + HEX[b[i + 4]!]! + HEX[b[i + 5]!]! + HEX[b[i + 6]!]! + HEX[b[i + 7]!]! + HEX[b[i + 8]!]! + HEX[b[i + 9]!]!
}
